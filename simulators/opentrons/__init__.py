"""A simulator of the Opentrons robot HTTP API (see server.py and robot.py)."""

from .robot import Fault, SimulatedRobot, command_seconds
from .server import DEFAULT_PORT, OpentronsSimulator, create_app

__all__ = ["DEFAULT_PORT", "Fault", "OpentronsSimulator", "SimulatedRobot", "command_seconds", "create_app"]
