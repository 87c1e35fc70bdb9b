"""Opentrons robots: protocol checks with opentrons_simulate, and the robot HTTP API (port 31950)."""

from .client import OpentronsClient, OpentronsError, OpentronsUnreachable, RunCommand, RunResource
from .device import OpentronsConfig, OpentronsDevice, RunReport
from .simulate import ProtocolRefused, SimulationResult, analyze_protocol, check_protocol, simulate_protocol

__all__ = [
    "OpentronsClient", "OpentronsConfig", "OpentronsDevice", "OpentronsError", "OpentronsUnreachable",
    "ProtocolRefused", "RunCommand", "RunReport", "RunResource", "SimulationResult", "analyze_protocol",
    "check_protocol", "simulate_protocol",
]
