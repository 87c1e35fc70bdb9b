"""Kill the controller (SIGKILL, a real subprocess) at random points of a campaign and restart it.

Devices are real DeviceHost hosts in this test process on a real MQTT broker (mosquitto), so they
outlive the controller, as they would in a lab. After the last restart the campaign must finish
with the same results as an undisturbed run, every job exactly once, every device action exactly
once per specimen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

from jobs_lab import DEFAULT_DEVICES, campaign
from labctl.bus.broker import free_port
from labctl.devicehost import DeviceHost
from labctl.jobs import Store
from labctl.jobs.timed_device import TimedDevice

HERE = Path(__file__).parent
TIME_SCALE = 0.004
JOBS = 6

pytestmark = [pytest.mark.mqtt, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs mosquitto (apt install mosquitto)")]


@contextlib.asynccontextmanager
async def mosquitto(tmp_path: Path):
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = await asyncio.create_subprocess_exec("mosquitto", "-c", str(conf), stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.05)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        await proc.wait()


async def start_controller(tmp_path: Path, url: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), os.environ.get("PYTHONPATH", "")])}
    return await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "controller_proc.py"), "--db", str(tmp_path / "labctl.db"), "--broker", url,
        "--campaign", str(tmp_path / "campaign.json"), "--out", str(tmp_path / "results.json"),
        "--time-scale", str(TIME_SCALE), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_kill_9_mid_campaign_loses_and_duplicates_nothing(tmp_path, seed):
    rng = random.Random(seed)
    spec = campaign(JOBS, key=f"crash-test-{seed}", blocks=2, print_s=150, wait_s=20)
    (tmp_path / "campaign.json").write_text(spec.model_dump_json())
    async with mosquitto(tmp_path) as url, contextlib.AsyncExitStack() as stack:
        devices = {d: TimedDevice(d, k, time_scale=TIME_SCALE, out_dir=tmp_path / "out") for d, k in DEFAULT_DEVICES}
        for device in devices.values():
            await stack.enter_async_context(DeviceHost.connect(url, device))
        kills = 0
        for _ in range(3):
            proc = await start_controller(tmp_path, url)
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line.startswith(b"running"), (line, await proc.stderr.read())
            await asyncio.sleep(rng.uniform(0.05, 0.8))
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            await proc.wait()
        assert kills >= 2
        proc = await start_controller(tmp_path, url)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-2000:]

    results = json.loads((tmp_path / "results.json").read_text())
    with Store(tmp_path / "labctl.db") as store:
        assert len(store.campaigns()) == 1 and len(store.jobs()) == JOBS  # resubmitted on every start, stored once
        submitted = Counter(e.entity_id for e in store.journal() if e.event == "submitted" and e.entity == "job")
        assert set(submitted.values()) == {1}
        recovered = [e for e in store.journal() if e.event == "recovering"]
    assert len(results) == JOBS
    for result in results.values():
        assert result["state"] == "done"
        sid = result["provenance"]["specimen_id"]
        for step, op in (("prepare", "prep"), ("print", "print"), ("test", "test")):
            assert result["results"][step]["value"] == TimedDevice.value_for(sid, op)
    # each specimen formulated, printed and tested exactly once, whatever the kills interrupted
    performed = Counter((r["specimen"], r["op"]) for d in devices.values() for r in d.finished.values())
    assert len(performed) == JOBS * 3 and set(performed.values()) == {1}, performed
    assert all(n == 1 for d in devices.values() for n in d.executions.values())
    assert recovered, "no kill hit a running step; the seeds should make some"
