"""serve, devices and estop driven as a technician would: real subprocesses, real brokers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

from labctl.bus import DeviceInfo
from labctl.devicehost import DeviceHost
from labctl.registry import DeviceRegistry
from labctl.bus import connect

LABCTL = [sys.executable, "-m", "labctl.cli"]


class Heater:
    def __init__(self) -> None:
        self.info = DeviceInfo(id="heater-1", kind="printer", driver="test", simulated=True,
                               limits={"nozzle_max_C": 280}, firmware="test 1.0")
        self.heating = True

    async def emergency_stop(self) -> None:
        self.heating = False


async def labctl(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(subprocess.run, [*LABCTL, *args], capture_output=True, text=True,
                                   timeout=60, env={**os.environ, **(env or {})})


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listening on {port}")


async def test_serve_devices_and_estop_on_the_embedded_broker(free_port):
    serve = subprocess.Popen([*LABCTL, "serve", "--listen", f"127.0.0.1:{free_port}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"mqtt://127.0.0.1:{free_port}"
    try:
        await asyncio.to_thread(_wait_port, free_port)
        heater = Heater()
        async with DeviceHost.connect(url, heater):
            listing = await labctl("devices", "--json", env={"LABCTL_BROKER": url})
            assert listing.returncode == 0, listing.stderr
            [device] = json.loads(listing.stdout)
            assert device["id"] == "heater-1" and device["status"] == "online" and device["simulated"] is True
            assert device["limits"] == {"nozzle_max_C": 280}

            stop = await labctl("estop", "--broker", url, "--reason", "smoke")
            assert stop.returncode == 0, stop.stderr
            for _ in range(100):
                if not heater.heating:
                    break
                await asyncio.sleep(0.05)
            assert heater.heating is False
            table = await labctl("devices", "--broker", url)
            assert "heater-1" in table.stdout and "estopped" in table.stdout
    finally:
        serve.send_signal(signal.SIGINT)
        out, err = serve.communicate(timeout=20)
    assert serve.returncode == 0, err
    assert f"127.0.0.1:{free_port}" in out


async def test_estop_works_with_no_controller_running(mosquitto_broker):
    heater = Heater()
    async with DeviceHost.connect(mosquitto_broker.url, heater), \
            connect(mosquitto_broker.url, client_id="watch") as watch:
        async with DeviceRegistry(watch) as registry:
            await registry.wait_for("heater-1", "online")
            result = await labctl("estop", "--broker", str(mosquitto_broker.url))
            assert result.returncode == 0, result.stderr
            state = await registry.wait_for("heater-1", "estopped")
            assert state.detail["reason"] == "operator emergency stop"
    assert heater.heating is False


async def test_unreachable_broker_and_bad_url_have_distinct_exit_codes(free_port):
    down = await labctl("estop", "--broker", f"mqtt://127.0.0.1:{free_port}")
    assert down.returncode == 3 and "NOT sent" in down.stderr
    bad = await labctl("devices", "--broker", "http://nowhere")
    assert bad.returncode == 2 and "scheme must be mqtt://" in bad.stderr


async def test_every_command_has_help_with_an_example():
    for command in ("serve", "devices", "estop"):
        result = await labctl(command, "--help")
        assert result.returncode == 0 and "Example:" in result.stdout, command
