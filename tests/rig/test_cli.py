"""`labctl sim rig` and `labctl rig test` as a technician runs them: two processes and a PTY between."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

LABCTL = [str(Path(sys.executable).parent / "labctl")]


@pytest.fixture
def sim_link(tmp_path: Path):
    link = tmp_path / "rig0"
    proc = subprocess.Popen(LABCTL + ["sim", "rig", "--link", str(link), "--speed", "100", "--adc-hz", "200",
                                      "--failure", "brittle", "--seed", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not link.is_symlink():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "simulator did not create its link"
        time.sleep(0.05)
    yield link
    proc.terminate()
    proc.wait(timeout=10)
    assert not link.is_symlink()                                  # cleaned up on exit


def test_rig_test_json_writes_results(sim_link: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(LABCTL + ["rig", "test", "--port", str(sim_link), "--method", "iso527-5",
                                    "--specimen", "iso527-1ba", "--specimen-id", "S-001", "--frame-stiffness", "762",
                                    "--out", str(out), "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["end_reason"] == "break" and result["complete"]
    assert 2000 < result["results"]["modulus_mpa"] < 3500
    assert 44 < result["results"]["tensile_strength_mpa"] < 51
    for name in ("S-001.raw.csv", "S-001.results.json", "S-001.results.csv", "S-001.png", "S-001.meta.json"):
        assert (out / name).stat().st_size > 0
    header = (out / "S-001.raw.csv").read_text().splitlines()[0]
    assert header == "time_s,displacement_mm,force_n"


def test_rig_identify(sim_link: Path) -> None:
    proc = subprocess.run(LABCTL + ["rig", "identify", "--port", str(sim_link), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["version"] == "1.0.0"


def test_bad_input_and_unreachable_exit_codes(tmp_path: Path) -> None:
    bad = subprocess.run(LABCTL + ["rig", "test", "--port", str(tmp_path / "x"), "--method", "nope",
                                   "--specimen-id", "S"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown test method 'nope'" in bad.stderr
    ambiguous = subprocess.run(LABCTL + ["rig", "test", "--port", str(tmp_path / "x"), "--method", "iso527-5",
                                         "--specimen-id", "S"], capture_output=True, text=True, timeout=60)
    assert ambiguous.returncode == 2 and "--specimen" in ambiguous.stderr
    missing = subprocess.run(LABCTL + ["rig", "test", "--port", str(tmp_path / "x"), "--method", "astm-d638-v",
                                       "--specimen-id", "S"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 3 and "cannot open rig port" in missing.stderr
    sim = subprocess.run(LABCTL + ["sim", "rig", "--link", str(tmp_path / "l"), "--material", "ABS"],
                         capture_output=True, text=True, timeout=60)
    assert sim.returncode == 2 and "material" in sim.stderr
