"""A small reader of the Marlin G-code our generators emit: layers, extrusion, extents, temperatures.

Not a full interpreter: it follows G0/G1 moves, G90/G91, M82/M83, G92 and the temperature commands,
which is what the tests and the provenance record need.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

_WORD = re.compile(r"([A-Za-z])\s*(-?\d*\.?\d+(?:[eE][-+]?\d+)?)")


class GcodeSummary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lines: int
    moves: int
    layer_count: int  # distinct Z heights at which material was extruded
    layer_heights_mm: list[float]
    extrusion_mm: float  # filament fed, net of retractions
    extruded_xy_min_mm: tuple[float, float] | None
    extruded_xy_max_mm: tuple[float, float] | None
    max_xyz_mm: tuple[float, float, float]
    min_xyz_mm: tuple[float, float, float]
    max_nozzle_temp_c: float
    max_bed_temp_c: float
    homes: bool


def summarise_gcode(text: str) -> GcodeSummary:
    pos = {"X": 0.0, "Y": 0.0, "Z": 0.0, "E": 0.0}
    absolute_xyz, absolute_e = True, True
    extrusion = 0.0
    layer_z: set[float] = set()
    lo = [float("inf")] * 3
    hi = [float("-inf")] * 3
    ext_lo = [float("inf")] * 2
    ext_hi = [float("-inf")] * 2
    moves = 0
    nozzle = bed = 0.0
    homes = False
    lines = text.splitlines()
    for raw in lines:
        code = raw.split(";", 1)[0].strip().upper()
        if not code:
            continue
        words = dict((letter, float(value)) for letter, value in _WORD.findall(code[1:] if code[0] in "GM" else code))
        head = code.split()[0]
        if head in ("G0", "G1", "G00", "G01"):
            moves += 1
            new = dict(pos)
            for axis in "XYZ":
                if axis in words:
                    new[axis] = words[axis] if absolute_xyz else pos[axis] + words[axis]
            fed = 0.0
            if "E" in words:
                fed = words["E"] - pos["E"] if absolute_e else words["E"]
                new["E"] = words["E"] if absolute_e else pos["E"] + words["E"]
            extrusion += fed
            moved_xy = new["X"] != pos["X"] or new["Y"] != pos["Y"]
            if fed > 0 and moved_xy:
                layer_z.add(round(new["Z"], 4))
                for i, axis in enumerate("XY"):
                    ext_lo[i] = min(ext_lo[i], pos[axis], new[axis])
                    ext_hi[i] = max(ext_hi[i], pos[axis], new[axis])
            pos = new
            for i, axis in enumerate("XYZ"):
                lo[i], hi[i] = min(lo[i], pos[axis]), max(hi[i], pos[axis])
        elif head in ("G90",):
            absolute_xyz = True
        elif head in ("G91",):
            absolute_xyz = False
        elif head == "M82":
            absolute_e = True
        elif head == "M83":
            absolute_e = False
        elif head == "G92":
            for axis in "XYZE":
                if axis in words:
                    pos[axis] = words[axis]
        elif head == "G28":
            homes = True
            pos.update({"X": 0.0, "Y": 0.0, "Z": 0.0})
        elif head in ("M104", "M109") and "S" in words:
            nozzle = max(nozzle, words["S"])
        elif head in ("M140", "M190") and "S" in words:
            bed = max(bed, words["S"])
    heights = sorted(layer_z)
    return GcodeSummary(
        lines=len(lines), moves=moves, layer_count=len(heights), layer_heights_mm=heights, extrusion_mm=extrusion,
        extruded_xy_min_mm=tuple(ext_lo) if heights else None, extruded_xy_max_mm=tuple(ext_hi) if heights else None,
        max_xyz_mm=tuple(hi) if moves else (0.0, 0.0, 0.0), min_xyz_mm=tuple(lo) if moves else (0.0, 0.0, 0.0),
        max_nozzle_temp_c=nozzle, max_bed_temp_c=bed, homes=homes,
    )
