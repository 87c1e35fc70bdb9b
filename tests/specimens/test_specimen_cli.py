"""`labctl specimens`, `labctl specimen-gcode` and `labctl slice` as a user runs them."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from protocols.specimens import dogbone_mesh


def labctl(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("labctl")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "COLUMNS": "120"})


def test_specimens_json_lists_every_type_with_methods():
    out = labctl("specimens", "--json")
    assert out.returncode == 0, out.stderr
    rows = {row["name"]: row for row in json.loads(out.stdout)}
    assert len(rows) == 6
    assert rows["iso527-1ba"]["methods"] == ["iso527-5", "iso527-50"]
    assert rows["astm-d638-v"]["methods"] == ["astm-d638-v"]
    assert 25 < rows["iso527-1ba"]["effective_length_mm"] < 58


def test_specimen_gcode_writes_the_artefact(tmp_path):
    target = tmp_path / "s.gcode"
    out = labctl("specimen-gcode", "iso527-5a", "-o", str(target), "--raster", "0,90", "--layer-height", "0.25",
                 "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert info["layers"] == 8 and info["parameters"]["raster_angles_deg"] == [0.0, 90.0]


def test_specimen_gcode_bad_input_exit_2(tmp_path):
    out = labctl("specimen-gcode", "iso527-1ba", "-o", str(tmp_path / "x.gcode"), "--layer-height", "0.3")
    assert out.returncode == 2 and "layer_height_mm" in out.stderr
    assert not (tmp_path / "x.gcode").exists()
    out = labctl("specimen-gcode", "nope", "-o", str(tmp_path / "x.gcode"))
    assert out.returncode == 2 and "valid names" in out.stderr


def test_slice_cli(tmp_path):
    stl = tmp_path / "d.stl"
    dogbone_mesh("iso527-1ba").export(stl)
    out = labctl("slice", str(stl), "-o", str(tmp_path / "d.gcode"), "--option", "fill_angle=0", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["generator"] == "prusa-slicer"
    refused = labctl("slice", str(stl), "-o", str(tmp_path / "e.gcode"), "--option", "post_process=/bin/sh")
    assert refused.returncode == 2 and "post_process" in refused.stderr
    assert not (tmp_path / "e.gcode").exists()
