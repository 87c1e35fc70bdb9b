"""Marlin printer driver: G-code streaming over serial, envelope checks, and a bus device."""

from .driver import (
    MarlinDriver, PrinterDisconnected, PrinterError, PrinterHalted, PrinterReset, PrinterTimeout,
)
from .device import PrinterDevice
from .envelope import DENY_LIST, EnvelopeError, PrinterLimits, Violation, check_gcode
from .firmware_info import FirmwareInfo, parse_m115
from .job import JobResult, PrintJob

__all__ = [
    "DENY_LIST", "EnvelopeError", "PrinterDevice", "FirmwareInfo", "JobResult", "MarlinDriver", "PrintJob", "PrinterDisconnected",
    "PrinterError", "PrinterHalted", "PrinterLimits", "PrinterReset", "PrinterTimeout", "Violation", "check_gcode",
    "parse_m115",
]
