"""`labctl analyze` end to end, as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tensile_synthetic import Bilinear, record

from labctl.analysis import write_curve_csv
from protocols.specimens import effective_length_mm

MATERIAL = Bilinear()


def labctl(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("labctl")  # the installed console script, as a user runs it
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "COLUMNS": "120"})


def test_analyze_json_with_compliance_preload_and_outputs(tmp_path):
    curve_path = write_curve_csv(record(MATERIAL, slack_mm=0.2, frame_stiffness_n_per_mm=762.0), tmp_path / "c.csv")
    (tmp_path / "frame.csv").write_text("force_N,displacement_mm\n0,0\n1000,%r\n" % (1000 / 762.0))
    out = labctl("analyze", str(curve_path), "--width", "5", "--thickness", "2", "--gauge-length", "25",
                 "--compliance", str(tmp_path / "frame.csv"), "--preload", "2", "--id", "S-7", "--json",
                 "--plot", str(tmp_path / "p.png"), "--results-csv", str(tmp_path / "r.csv"),
                 "--curve-csv", str(tmp_path / "ss.csv"))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["specimen_id"] == "S-7" and result["compliance_corrected"] is True
    assert result["modulus_mpa"] == pytest.approx(MATERIAL.modulus, rel=1e-4)
    assert result["tensile_strength_mpa"] == pytest.approx(MATERIAL.strength, rel=1e-6)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert "modulus_mpa" in (tmp_path / "r.csv").read_text().splitlines()[0]
    assert (tmp_path / "ss.csv").read_text().startswith("time_s,force_N")


def test_analyze_other_rig_columns_and_specimen_defaults(tmp_path):
    curve = record(MATERIAL, n=3000)
    lines = ["Weg;Kraft"] + [f"{d:.6f};{f:.5f}".replace(".", ",") for d, f in zip(curve.displacement_mm,
                                                                                   curve.force_n)]
    (tmp_path / "zwick.csv").write_text("\n".join(lines) + "\n")
    out = labctl("analyze", str(tmp_path / "zwick.csv"), "--specimen", "iso527-1ba", "--force-col", "Kraft",
                 "--disp-col", "Weg", "--sep", ";", "--decimal", ",", "--strain-basis", "gauge_length", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["width_mm"], result["thickness_mm"], result["strain_length_mm"]) == (5.0, 2.0, 25.0)
    assert result["modulus_mpa"] == pytest.approx(MATERIAL.modulus, rel=1e-3)
    # Crosshead data by default: strain over the specimen's effective length.
    out = labctl("analyze", str(tmp_path / "zwick.csv"), "--specimen", "iso527-1ba", "--force-col", "Kraft",
                 "--disp-col", "Weg", "--sep", ";", "--decimal", ",", "--json")
    crosshead = json.loads(out.stdout)
    assert crosshead["strain_length_mm"] == pytest.approx(effective_length_mm("iso527-1ba"))
    assert crosshead["strain_model"] == "narrow-section" and crosshead["narrow_length_mm"] == 30.0
    out = labctl("analyze", str(tmp_path / "zwick.csv"), "--specimen", "iso527-1ba", "--strain-basis", "nope")
    assert out.returncode == 2 and "effective_length" in out.stderr


def test_analyze_table_output(tmp_path):
    curve_path = write_curve_csv(record(MATERIAL, n=2000), tmp_path / "c.csv")
    out = labctl("analyze", str(curve_path), "--width", "5", "--thickness", "2", "--gauge-length", "25")
    assert out.returncode == 0, out.stderr
    assert "tensile strength" in out.stdout and "47.33 MPa" in out.stdout


def test_analyze_bad_input_exit_codes(tmp_path):
    (tmp_path / "bad.csv").write_text("force_N,displacement_mm\n1,0.1\nx,0.2\n")
    out = labctl("analyze", str(tmp_path / "bad.csv"), "--width", "5", "--thickness", "2", "--gauge-length", "25")
    assert out.returncode == 2
    assert "bad.csv:3" in out.stderr
    out = labctl("analyze", str(tmp_path / "bad.csv"), "--width", "5")
    assert out.returncode == 2 and "--thickness" in out.stderr
    coarse = write_curve_csv(record(MATERIAL, n=100), tmp_path / "coarse.csv")
    out = labctl("analyze", str(coarse), "--specimen", "iso527-1ba")
    assert out.returncode == 1 and "need at least 10" in out.stderr
