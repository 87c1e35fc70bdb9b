"""Dogbone G-code from FullControl toolpaths: layers, raster angle, extrusion, safety of start and end."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from pydantic import ValidationError

from labctl.specimens import DogbonePrintParameters, GcodeArtefact, GcodeError, dogbone_gcode
from protocols.specimens import get_specimen, width_at

FILAMENT_AREA = math.pi * (1.75 / 2) ** 2


def extruding_moves(text: str) -> list[tuple[int, float, float, float, float, float]]:
    """(layer, x0, y0, x1, y1, e) for every extruding XY move, from relative-E G-code."""
    x = y = 0.0
    layer = -1
    moves = []
    for line in text.splitlines():
        if line.startswith(";LAYER:"):
            layer = int(line.split()[0].split(":")[1])
        code = line.split(";")[0]
        if not code.startswith(("G0", "G1")):
            continue
        words = dict(re.findall(r"([XYZE])(-?[\d.]+)", code))
        nx, ny = float(words.get("X", x)), float(words.get("Y", y))
        if "E" in words and float(words["E"]) > 0 and layer >= 0:
            moves.append((layer, x, y, nx, ny, float(words["E"])))
        x, y = nx, ny
    return moves


def layer_direction(moves, layer: int) -> tuple[float, float, float]:
    seg = np.array([m[1:5] for m in moves if m[0] == layer])
    dx, dy = seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1]
    return float(np.abs(dx).sum()), float(np.abs(dy).sum()), float(np.sum(dx * dy))


@pytest.mark.parametrize(("specimen", "layer_height", "layers"), [
    ("iso527-1ba", 0.2, 10), ("iso527-1ba", 0.1, 20), ("iso527-1a", 0.25, 16), ("astm-d638-v", 0.16, 20),
    ("astm-d638-iv", 0.32, 10), ("iso527-5a", 0.4, 5),
])
def test_layer_count_matches_thickness_over_layer_height(specimen, layer_height, layers):
    artefact = dogbone_gcode(specimen=specimen, layer_height_mm=layer_height, raster_angles_deg=(0,))
    assert artefact.summary.layer_count == layers
    assert artefact.summary.layer_heights_mm == pytest.approx([layer_height * (i + 1) for i in range(layers)])
    assert artefact.text.count(";LAYER:") == layers


def test_layer_height_that_does_not_divide_the_thickness_is_refused():
    with pytest.raises(ValidationError, match=r"layer_height_mm 0.3: the 2.0 mm thick iso527-1ba is not a whole"):
        DogbonePrintParameters(specimen="iso527-1ba", layer_height_mm=0.3)


def test_raster_angle_changes_the_toolpath():
    along = dogbone_gcode(raster_angles_deg=(0,), perimeters=0)
    across = dogbone_gcode(raster_angles_deg=(90,), perimeters=0)
    assert along.sha256 != across.sha256
    dx, dy, _ = layer_direction(extruding_moves(along.text), 3)
    assert dx > 20 * dy  # lines along the load direction
    dx, dy, _ = layer_direction(extruding_moves(across.text), 3)
    assert dy > 5 * dx  # lines across (the zig-zag links along x are short)
    cross = extruding_moves(dogbone_gcode(raster_angles_deg=(45, -45), perimeters=0).text)
    assert layer_direction(cross, 2)[2] > 0 > layer_direction(cross, 3)[2]  # +45 then -45, alternating


@pytest.mark.parametrize("specimen", ["iso527-1ba", "astm-d638-iv"])
def test_extrusion_totals_are_plausible(specimen):
    spec = get_specimen(specimen)
    height = 0.2 if specimen.startswith("iso") else 0.32
    full = dogbone_gcode(specimen=specimen, layer_height_mm=height, prime_line=False, infill_density=1.0)
    ratio = full.summary.extrusion_mm * FILAMENT_AREA / spec.volume_mm3
    assert 0.95 < ratio < 1.08  # a solid part: deposited volume ~ part volume
    half = dogbone_gcode(specimen=specimen, layer_height_mm=height, prime_line=False, infill_density=0.5,
                         perimeters=0)
    half_ratio = half.summary.extrusion_mm * FILAMENT_AREA / spec.volume_mm3
    assert 0.45 < half_ratio < 0.6
    flow = dogbone_gcode(specimen=specimen, layer_height_mm=height, prime_line=False, flow_multiplier=1.1)
    assert flow.summary.extrusion_mm == pytest.approx(1.1 * full.summary.extrusion_mm, rel=1e-4)


def test_every_bead_lies_inside_the_outline():
    params = DogbonePrintParameters(specimen="iso527-5a", raster_angles_deg=(30, -60), perimeters=2,
                                    centre_xy_mm=(100, 90))
    spec = get_specimen(params.specimen)
    moves = extruding_moves(dogbone_gcode(params).text)
    points = np.array([(m[3], m[4]) for m in moves])
    local_x = points[:, 0] - 100 + spec.overall_length_mm / 2
    local_y = points[:, 1] - 90
    half_width = params.extrusion_width_mm / 2
    assert local_x.min() >= half_width - 1e-3
    assert local_x.max() <= spec.overall_length_mm - half_width + 1e-3
    assert np.all(np.abs(local_y) <= width_at(spec, local_x) / 2 - half_width + 2e-3)


def test_same_parameters_same_sha256_and_artefact_is_consistent(tmp_path):
    a = dogbone_gcode(specimen="iso527-1ba", raster_angles_deg=(0, 90), nozzle_temp_c=215)
    b = dogbone_gcode(DogbonePrintParameters(specimen="iso527-1ba", raster_angles_deg=(0, 90), nozzle_temp_c=215))
    assert a.sha256 == b.sha256 and a.text == b.text
    assert dogbone_gcode(specimen="iso527-1ba", raster_angles_deg=(0, 90), nozzle_temp_c=216).sha256 != a.sha256
    assert a.generator == "fullcontrol" and re.match(r"\d+\.\d+", a.generator_version)
    assert a.parameters["raster_angles_deg"] == [0.0, 90.0] and a.parameters["kind"] == "dogbone"
    assert GcodeArtefact.model_validate_json(a.model_dump_json()).sha256 == a.sha256
    assert a.write(tmp_path / "part.gcode").read_text() == a.text
    with pytest.raises(ValidationError, match="sha256 does not match"):
        GcodeArtefact(**{**a.model_dump(), "text": a.text + "G28\n"})


def test_start_is_safe_marlin_and_end_switches_heaters_off():
    artefact = dogbone_gcode(nozzle_temp_c=205, bed_temp_c=55)
    lines = [ln.split(";")[0].strip() for ln in artefact.text.splitlines()]
    lines = [ln for ln in lines if ln]

    def first(prefix: str) -> int:
        return next(i for i, ln in enumerate(lines) if ln.startswith(prefix))

    first_extrusion = next(i for i, ln in enumerate(lines) if ln.startswith("G1") and " E" in ln)
    assert first("G21") < first("G90") < first("M140 S55") < first("M104 S205") < first("G28")
    assert first("G28") < first("M190 S55") < first("M109 S205") < first_extrusion
    assert first("M83") < first_extrusion
    last_extrusion = max(i for i, ln in enumerate(lines) if ln.startswith("G1") and " E" in ln)
    tail = lines[last_extrusion + 1:]
    assert "M104 S0" in tail and "M140 S0" in tail and "M84" in tail
    assert artefact.summary.max_nozzle_temp_c == 205 and artefact.summary.max_bed_temp_c == 55
    assert not any(ln.startswith(("M303", "M500", "M502", "M997", "G29")) for ln in lines)
    absolute = dogbone_gcode(relative_e=False)
    assert "M82" in absolute.text and "M83" not in absolute.text
    assert absolute.summary.extrusion_mm == pytest.approx(dogbone_gcode().summary.extrusion_mm, rel=1e-5)


def test_part_must_fit_the_bed_and_clear_the_prime_line():
    with pytest.raises(GcodeError, match=r"outside the 150.0 x 150.0 mm bed"):
        dogbone_gcode(specimen="iso527-1a", centre_xy_mm=(75, 75), build_volume_mm=(150, 150, 150))
    fitted = dogbone_gcode(specimen="iso527-1a", centre_xy_mm=(75, 75), build_volume_mm=(150, 150, 150),
                           rotate_on_bed_deg=45, prime_line=False)
    assert fitted.summary.extruded_xy_max_mm[0] <= 150
    with pytest.raises(GcodeError, match="would cross the prime line"):
        dogbone_gcode(centre_xy_mm=(60, 9))
    assert dogbone_gcode(centre_xy_mm=(110, 9)).summary.extruded_xy_min_mm[1] == pytest.approx(4.225)


def test_bad_parameters_name_the_field():
    with pytest.raises(ValidationError, match="infill_density"):
        DogbonePrintParameters(infill_density=0)
    with pytest.raises(ValidationError, match="valid names: iso527-1a"):
        DogbonePrintParameters(specimen="iso999")
    with pytest.raises(ValidationError, match="raster angles must lie in"):
        DogbonePrintParameters(raster_angles_deg=(200,))
    with pytest.raises(GcodeError, match="do not fit the 3.18 mm narrow section"):
        dogbone_gcode(specimen="astm-d638-v", layer_height_mm=0.2, perimeters=3, extrusion_width_mm=0.6)


@pytest.mark.parametrize("specimen", ["iso527-1a", "astm-d638-v"])
def test_generated_gcode_passes_the_printer_envelope(specimen):
    from drivers.printer.envelope import EnvelopeError, PrinterLimits, check_gcode

    limits = PrinterLimits(build_volume_mm=(250, 210, 210), max_hotend_c=260, max_bed_c=110)
    height = 0.2 if specimen.startswith("iso") else 0.32
    ok = dogbone_gcode(specimen=specimen, layer_height_mm=height, build_volume_mm=(250, 210, 210),
                       centre_xy_mm=(125, 105))
    assert len(check_gcode(ok.text.splitlines(), limits)) > 1000
    hot = dogbone_gcode(specimen=specimen, layer_height_mm=height, build_volume_mm=(250, 210, 210),
                        centre_xy_mm=(125, 105), nozzle_temp_c=280)
    with pytest.raises(EnvelopeError, match="M104"):
        check_gcode(hot.text.splitlines(), limits)
