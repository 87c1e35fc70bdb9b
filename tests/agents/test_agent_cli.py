"""`labctl plan` and `labctl mcp` driven as a user would, in subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "protocols" / "hypotheses"
LABCTL = str(Path(sys.executable).parent / "labctl")


def labctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LABCTL, *args], capture_output=True, text=True, timeout=60)


def test_plan_json_and_table():
    out = labctl("plan", str(EXAMPLES / "upright_strength.toml"), "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["tested_factor"] == "orientation" and plan["runs"] and plan["simulated"]
    table = labctl("plan", str(EXAMPLES / "infill_stiffness.json"), "--printers", "2")
    assert table.returncode == 0 and "specimens" in table.stdout and "printer-2" in table.stdout


def test_plan_refusal_names_field_and_exits_2(tmp_path):
    bad = tmp_path / "hot.json"
    data = json.loads((EXAMPLES / "infill_stiffness.json").read_text())
    data["fixed"]["nozzle_temp"] = 300
    bad.write_text(json.dumps(data))
    out = labctl("plan", str(bad), "--json")
    assert out.returncode == 2
    refusal = json.loads(out.stdout)
    assert refusal["refusals"][0]["field"] == "fixed.nozzle_temp"
    human = labctl("plan", str(bad))
    assert human.returncode == 2 and "fixed.nozzle_temp" in human.stderr


def test_mcp_without_sim_explains_itself():
    out = labctl("mcp")
    assert out.returncode == 2 and "--sim" in out.stderr
    assert "Example:" in labctl("mcp", "--help").stdout
