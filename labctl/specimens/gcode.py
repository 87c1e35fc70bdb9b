"""Dogbone G-code from FullControl toolpaths: every print parameter is an exact experimental factor.

A slicer decides raster angles, overlaps and line spacing by itself; here they are given: each layer is
``perimeters`` loops then parallel raster lines at the layer's angle, spaced extrusion_width /
infill_density, so a factor level in a hypothesis is exactly what the nozzle does. FullControl
(`fullcontrol` on PyPI) turns the toolpath into G-code and computes the extrusion (rectangle bead
model: E = length * width * height * flow / filament cross-section).

The start is plain Marlin and safe: units and absolute positioning, extrusion mode, bed and nozzle
heating without waiting, home, then wait for both temperatures, a prime line at the front of the bed,
the part, and an end that switches both heaters and the fan off before lifting the nozzle.
"""

from __future__ import annotations

import importlib.metadata
import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from protocols.specimens import get_specimen, outline_polygon

from .artefact import GcodeArtefact
from .toolpath import GcodeError, eroded_region, order_segments, perimeter_loops, raster_segments

GENERATOR = "fullcontrol"
PRIME_Y_MM = 5.0  # prime line runs along x at this y, clear of the part (checked)


class DogbonePrintParameters(BaseModel):
    """Everything that determines a dogbone's G-code. Temperatures in deg C, speeds in mm/s."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specimen: str = Field("iso527-1ba", description="Key of protocols.specimens.SPECIMENS.")
    layer_height_mm: float = Field(0.2, ge=0.04, le=1.0)
    extrusion_width_mm: float = Field(0.45, ge=0.15, le=1.5)
    raster_angles_deg: tuple[float, ...] = Field(
        (45.0, -45.0), min_length=1, description="Raster angle per layer, cycled; 0 = along the load direction.")
    infill_density: float = Field(1.0, gt=0.0, le=1.0, description="Raster spacing = extrusion width / density.")
    perimeters: int = Field(1, ge=0, le=10)
    infill_overlap: float = Field(0.25, ge=0.0, le=0.5, description="Raster ends overlap the perimeters by this x width.")
    nozzle_temp_c: float = Field(210.0, ge=0.0, le=320.0)
    bed_temp_c: float = Field(60.0, ge=0.0, le=130.0)
    print_speed_mm_s: float = Field(40.0, gt=0.0, le=300.0)
    first_layer_speed_mm_s: float = Field(20.0, gt=0.0, le=300.0)
    travel_speed_mm_s: float = Field(120.0, gt=0.0, le=500.0)
    fan_percent: float = Field(100.0, ge=0.0, le=100.0, description="Part fan from the second layer on.")
    flow_multiplier: float = Field(1.0, ge=0.5, le=1.5)
    filament_diameter_mm: float = Field(1.75, gt=0.5, le=3.5)
    relative_e: bool = Field(True, description="M83 relative extrusion (else M82 absolute).")
    centre_xy_mm: tuple[float, float] = Field((110.0, 110.0), description="Bed position of the specimen's centre.")
    rotate_on_bed_deg: float = Field(0.0, description="Rotation of the whole part about its centre on the bed.")
    build_volume_mm: tuple[float, float, float] = Field((220.0, 220.0, 250.0))
    prime_line: bool = True

    @field_validator("specimen")
    @classmethod
    def _known_specimen(cls, name: str) -> str:
        return get_specimen(name).name

    @field_validator("raster_angles_deg")
    @classmethod
    def _angles(cls, angles: tuple[float, ...]) -> tuple[float, ...]:
        bad = [a for a in angles if not -180.0 <= a <= 180.0]
        if bad:
            raise ValueError(f"raster angles must lie in [-180, 180] degrees, got {bad}")
        return angles

    @model_validator(mode="after")
    def _layers_fit(self) -> DogbonePrintParameters:
        thickness = get_specimen(self.specimen).thickness_mm
        layers = thickness / self.layer_height_mm
        if abs(layers - round(layers)) * self.layer_height_mm > 0.005:
            raise ValueError(f"layer_height_mm {self.layer_height_mm}: the {thickness} mm thick {self.specimen} is "
                             f"not a whole number of layers ({layers:.3f}); choose e.g. "
                             f"{thickness / max(1, round(layers)):.4g} mm")
        if self.extrusion_width_mm < self.layer_height_mm:
            raise ValueError(f"extrusion_width_mm {self.extrusion_width_mm} is below layer_height_mm "
                             f"{self.layer_height_mm}; the bead would be taller than wide")
        return self

    @property
    def layer_count(self) -> int:
        return round(get_specimen(self.specimen).thickness_mm / self.layer_height_mm)


def fullcontrol_version() -> str:
    return importlib.metadata.version("fullcontrol")


def _bed_transform(params: DogbonePrintParameters):
    spec = get_specimen(params.specimen)
    centre_local = np.array([spec.overall_length_mm / 2, 0.0])
    rot = math.radians(params.rotate_on_bed_deg)
    matrix = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
    offset = np.asarray(params.centre_xy_mm)

    def to_bed(points: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(points) - centre_local) @ matrix.T + offset

    return to_bed


def _prime_end(params: DogbonePrintParameters) -> float:
    return min(65.0, params.build_volume_mm[0] - 5.0)


def _check_on_bed(params: DogbonePrintParameters, outline_bed: np.ndarray) -> None:
    bx, by, bz = params.build_volume_mm
    lo, hi = outline_bed.min(axis=0), outline_bed.max(axis=0)
    if lo[0] < 0 or lo[1] < 0 or hi[0] > bx or hi[1] > by:
        raise GcodeError(f"specimen {params.specimen} at centre_xy_mm {params.centre_xy_mm} spans x "
                         f"{lo[0]:.1f}..{hi[0]:.1f}, y {lo[1]:.1f}..{hi[1]:.1f} mm: outside the {bx} x {by} mm bed")
    thickness = get_specimen(params.specimen).thickness_mm
    if thickness > bz:
        raise GcodeError(f"specimen thickness {thickness} mm exceeds build height {bz} mm")
    near_prime = np.any((outline_bed[:, 1] < PRIME_Y_MM + 5) & (outline_bed[:, 0] < _prime_end(params) + 5))
    if params.prime_line and near_prime:
        raise GcodeError(f"specimen reaches y = {lo[1]:.1f} mm and would cross the prime line at y = {PRIME_Y_MM} mm; "
                         "move centre_xy_mm or set prime_line false")


def _layer_paths(params: DogbonePrintParameters, layer: int) -> tuple[list[np.ndarray], list[tuple]]:
    spec = get_specimen(params.specimen)
    width = params.extrusion_width_mm
    loops = perimeter_loops(spec, params.perimeters, width)
    infill_edge = params.perimeters * width + width / 2 - params.infill_overlap * width
    try:
        region = eroded_region(spec, max(infill_edge, width / 2))
    except GcodeError as exc:
        raise GcodeError(f"{exc}: the raster would split into the two ends; use fewer perimeters or a "
                         "narrower extrusion_width_mm") from None
    angle = params.raster_angles_deg[layer % len(params.raster_angles_deg)]
    segments = raster_segments(region, angle, width / params.infill_density)
    return loops, segments


def dogbone_gcode(params: DogbonePrintParameters | None = None, **overrides: Any) -> GcodeArtefact:
    """G-code for one dogbone. Pass a DogbonePrintParameters or its fields as keywords.

    Raises GcodeError (or pydantic's ValidationError naming the field) for parameters that cannot print.
    """
    import fullcontrol as fc

    if params is None:
        params = DogbonePrintParameters(**overrides)
    elif overrides:
        params = params.model_copy(update=overrides)
        params = DogbonePrintParameters.model_validate(params.model_dump())
    spec = get_specimen(params.specimen)
    to_bed = _bed_transform(params)
    _check_on_bed(params, to_bed(outline_polygon(spec)))

    width, height = params.extrusion_width_mm, params.layer_height_mm
    connect_limit = 2.0 * width / params.infill_density
    travel = params.travel_speed_mm_s * 60
    steps: list[Any] = [
        fc.ManualGcode(text=f"; labctl dogbone {spec.name} ({spec.standard} {spec.designation}), "
                            f"generator {GENERATOR} {fullcontrol_version()}"),
        fc.ManualGcode(text="; parameters: " + params.model_dump_json()),
        fc.PrinterCommand(id="units_mm"),
        fc.PrinterCommand(id="absolute_coords"),
        fc.Extruder(relative_gcode=params.relative_e),
        fc.Fan(speed_percent=0),
        fc.Buildplate(temp=params.bed_temp_c, wait=False),
        fc.Hotend(temp=params.nozzle_temp_c, wait=False),
        fc.PrinterCommand(id="home"),
        fc.Buildplate(temp=params.bed_temp_c, wait=True),
        fc.Hotend(temp=params.nozzle_temp_c, wait=True),
        fc.ExtrusionGeometry(area_model="rectangle", width=width, height=height),
        fc.Printer(print_speed=params.first_layer_speed_mm_s * 60, travel_speed=travel),
        fc.Extruder(on=False),
        fc.Point(x=5.0, y=PRIME_Y_MM, z=height),
    ]
    if params.prime_line:
        steps += [fc.Extruder(on=True), fc.Point(x=_prime_end(params), y=PRIME_Y_MM, z=height),
                  fc.Extruder(on=False)]

    here = np.array([5.0, PRIME_Y_MM])
    for layer in range(params.layer_count):
        z = round((layer + 1) * height, 6)
        loops, segments = _layer_paths(params, layer)
        steps.append(fc.ManualGcode(text=f";LAYER:{layer} Z:{z:g}"))
        if layer == 1:
            steps += [fc.Printer(print_speed=params.print_speed_mm_s * 60, travel_speed=travel),
                      fc.Fan(speed_percent=params.fan_percent)]
        for loop in loops:
            bed = to_bed(loop)
            steps += [fc.Extruder(on=False), fc.Point(x=bed[0, 0], y=bed[0, 1], z=z), fc.Extruder(on=True)]
            steps += [fc.Point(x=p[0], y=p[1], z=z) for p in bed[1:]]
            here = bed[-1]
        steps.append(fc.Extruder(on=False))
        extruding = False
        local_here = here if not loops else loops[-1][-1]
        for start, end in order_segments(segments, local_here):
            a, b = to_bed(start)[0], to_bed(end)[0]
            gap = float(np.hypot(*(a - here)))
            if gap > connect_limit or not extruding:
                steps += [fc.Extruder(on=False), fc.Point(x=a[0], y=a[1], z=z), fc.Extruder(on=True)]
            else:
                steps.append(fc.Point(x=a[0], y=a[1], z=z))  # short zig-zag link, extruded
            steps.append(fc.Point(x=b[0], y=b[1], z=z))
            extruding, here = True, b
        steps.append(fc.Extruder(on=False))

    top = params.layer_count * height
    steps += [
        fc.ManualGcode(text="; end: heaters and fan off, then lift"),
        fc.Hotend(temp=0, wait=False),
        fc.Buildplate(temp=0, wait=False),
        fc.Fan(speed_percent=0),
        fc.Extruder(on=False),
        fc.Point(z=round(min(top + 10.0, params.build_volume_mm[2]), 6)),
        fc.ManualGcode(text="M84 ; motors off"),
    ]
    controls = fc.GcodeControls(printer_name="custom", initialization_data={
        "primer": "no_primer", "dia_feed": params.filament_diameter_mm,
        "extrusion_width": width, "extrusion_height": height, "e_units": "mm", "travel_format": "G0",
        "print_speed": params.first_layer_speed_mm_s * 60, "travel_speed": travel,
        "manual_e_ratio": params.flow_multiplier / (math.pi * (params.filament_diameter_mm / 2) ** 2),
    })
    text = fc.transform(steps, "gcode", controls, show_tips=False)
    text = _drop_banner(text) + "\n"
    return GcodeArtefact.build(text, GENERATOR, fullcontrol_version(),
                               {"kind": "dogbone", **params.model_dump(mode="json")})


def _drop_banner(text: str) -> str:
    """FullControl's 'custom' printer opens with a promotional comment; keep the file about the part."""
    lines = text.splitlines()
    while lines and lines[0].startswith(";") and "labctl" not in lines[0]:
        lines.pop(0)
    return "\n".join(lines)
