"""Specimens to print: dogbone meshes (protocols.specimens) turned into G-code.

Public API:
  GcodeArtefact (artefact), GcodeSummary / summarise_gcode (gcode_summary),
  DogbonePrintParameters, dogbone_gcode, GcodeError (gcode: FullControl toolpaths),
  slice_mesh, SlicerError, prusa_slicer_version (slicer: PrusaSlicer CLI).
"""

from __future__ import annotations

from .artefact import GcodeArtefact
from .gcode import DogbonePrintParameters, dogbone_gcode
from .gcode_summary import GcodeSummary, summarise_gcode
from .slicer import SlicerError, prusa_slicer_version, slice_mesh
from .toolpath import GcodeError

__all__ = ["DogbonePrintParameters", "GcodeArtefact", "GcodeError", "GcodeSummary", "SlicerError", "dogbone_gcode",
           "prusa_slicer_version", "slice_mesh", "summarise_gcode"]
