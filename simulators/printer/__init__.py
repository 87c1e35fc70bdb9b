"""A Marlin 2.1 compatible printer simulator on a real pseudo-terminal (see simulator.py)."""

from .config import FaultConfig, SimulatorConfig
from .firmware import MarlinFirmware
from .simulator import MarlinSimulator

__all__ = ["FaultConfig", "MarlinFirmware", "MarlinSimulator", "SimulatorConfig"]
