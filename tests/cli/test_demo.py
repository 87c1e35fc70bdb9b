"""`labctl demo`, the README's main job, end to end as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_runs_a_whole_campaign_and_matches_ground_truth(tmp_path):
    result = subprocess.run([sys.executable, "-m", "labctl.cli", "demo", "--json", "--workdir", str(tmp_path / "lab")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert outcome["verdict"] == outcome["ground_truth"]["verdict"] and outcome["matches_ground_truth"]
    assert outcome["specimens_measured"] >= 4 and not outcome["failed_runs"]
    report = Path(outcome["report"])
    assert "SIMULATED DATA" in report.read_text()
    assert (report.parent / "curves.png").stat().st_size > 1000
    # The provenance export verifies; every device kind took part.
    for export in outcome["exports"]:
        verify = subprocess.run([sys.executable, "-m", "labctl.cli", "verify", export], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    export = Path(outcome["exports"][0])
    manifest = json.loads((export / "manifest.json").read_text())
    assert any(name.endswith(".raw.csv") for name in manifest["files"])  # raw data travels with the result
    assert any(name.endswith(".gcode") for name in manifest["files"])
    jobs = " ".join(p.read_text() for p in (export / "jobs").glob("*.json"))
    for device in ("liquid-1", "rig-1", "printer-"):  # every device kind took part
        assert device in jobs
