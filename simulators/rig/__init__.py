"""The tensile rig simulated: firmware/rig logic unchanged, on a PTY, pulling a modelled specimen."""

from .material import MaterialProperties, PrintParams, SpecimenProperties, sample_properties, true_properties
from .simulator import RigSimConfig, RigSimulator

__all__ = ["MaterialProperties", "PrintParams", "RigSimConfig", "RigSimulator", "SpecimenProperties",
           "sample_properties", "true_properties"]
