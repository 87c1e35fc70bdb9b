"""Driver of the labctl tensile rig (firmware/rig) and its bus device."""

from .device import RigDevice, method_to_params, real_time_bound_s
from .driver import FirmwareMismatch, RigDriver, RigError, RigFault
from .models import FirmwareIdentity, LinkStats, RawCurve, RigTestParams
from .protocol import Frame

__all__ = ["FirmwareIdentity", "FirmwareMismatch", "Frame", "LinkStats", "RawCurve", "RigDevice", "RigDriver", "RigError",
           "RigFault", "RigTestParams", "method_to_params", "real_time_bound_s"]
