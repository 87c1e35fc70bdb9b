"""The liquid-handling CLI: protocol validation, offline step checks, and the simulators as processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from labctl.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
LABCTL = [str(Path(sys.executable).parent / "labctl")]
runner = CliRunner()


def flat(text: str) -> str:
    """Output without rich's line wrapping."""
    return " ".join(text.split())


def test_validate_exit_codes(opentrons_simulate):
    ok = runner.invoke(app, ["liquid", "validate", str(ROOT / "protocols/opentrons/ot2_formulation.py"), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["ok"] is True
    bad = runner.invoke(app, ["liquid", "validate", str(ROOT / "protocols/opentrons/fails_no_tip.py")])
    assert bad.exit_code == 1
    assert "fails_no_tip.py:13: refused by opentrons_simulate" in flat(bad.output)
    assert "TipNotAttachedError" in flat(bad.output)
    missing = runner.invoke(app, ["liquid", "validate", "no/such/protocol.py"])
    assert missing.exit_code == 2 and "no protocol file" in flat(missing.output)


def test_check_steps_offline(tmp_path):
    steps = tmp_path / "steps.json"
    steps.write_text(json.dumps([
        {"source": {"labware": "components", "well": "A1"}, "destination": {"labware": "blend_plate", "well": "A1"},
         "volume": 100},
        {"source": {"labware": "components", "well": "A1"}, "destination": {"labware": "blend_plate", "well": "A1"},
         "volume": 300}]))
    refused = runner.invoke(app, ["liquid", "check", str(steps)])
    assert refused.exit_code == 2 and "step 1" in flat(refused.output) and "overflow" in flat(refused.output)
    blends = tmp_path / "blends.json"
    blends.write_text(json.dumps({"formulation": {
        "component_a": {"labware": "components", "well": "A1"}, "component_b": {"labware": "components", "well": "A2"},
        "destination": "blend_plate", "percent_b": [10, 20, 30], "total_volume": 200}}))
    ok = runner.invoke(app, ["liquid", "check", str(blends), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout) == {"ok": True, "steps": 6}


def _wait_until(predicate, timeout=30.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if predicate():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("timed out")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_sim_opentrons_serves_the_robot_api(free_port, opentrons_simulate):
    proc = subprocess.Popen([*LABCTL, "sim", "opentrons", "--port", str(free_port), "--speed", "100"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{free_port}"
        _wait_until(lambda: httpx.get(f"{url}/health", headers={"Opentrons-Version": "*"}).status_code == 200,
                    proc=proc)
        assert httpx.get(f"{url}/health").status_code == 400  # no Opentrons-Version header
    finally:
        _stop(proc)
    assert proc.returncode == 0, proc.stderr.read()


def test_run_and_status_over_mqtt(mosquitto_broker, tmp_path):
    broker = str(mosquitto_broker.url)
    host = subprocess.Popen([*LABCTL, "sim", "liquid-handler", "--broker", broker, "--id", "lh-cli", "--speed", "1000"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def status():
            out = subprocess.run([*LABCTL, "liquid", "status", "--device", "lh-cli", "--broker", broker, "--json"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=30)
            return out
        announced = host.stdout.readline()  # printed once the device host is on the bus
        assert "lh-cli" in announced, host.stderr.read()
        blends = tmp_path / "blends.json"
        blends.write_text(json.dumps({"formulation": {
            "component_a": {"labware": "components", "well": "A1"},
            "component_b": {"labware": "components", "well": "A2"},
            "destination": "blend_plate", "percent_b": [25], "total_volume": 200}}))
        done = subprocess.run([*LABCTL, "liquid", "run", str(blends), "--device", "lh-cli", "--broker", broker,
                               "--json", "--job-id", "cli-job"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["plate_map"][0]["measured_percent_b"] == pytest.approx(25)
        assert result["job"]["job_id"] == "cli-job" and result["job"]["status"] == "completed"
        state = json.loads(status().stdout)
        assert state["jobs"] == [{"job_id": "cli-job", "status": "completed", "steps": 2, "done": 2}]
        assert state["tips_left"] == 190
        missing = subprocess.run([*LABCTL, "liquid", "status", "--device", "no-such-lh", "--broker", broker,
                                  "--timeout", "1"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=60,
                                 env={**os.environ, "COLUMNS": "200"})
        assert missing.returncode == 3
    finally:
        _stop(host)
