"""A technician at the CLI of a running simulated lab: status, device commands, confirmations, watch."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time

import pytest

from labctl.bus.broker import free_port
from serve_process import LABCTL, read_until

ENV = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    port = free_port()
    workdir = tmp_path_factory.mktemp("lab")
    serve = subprocess.Popen([*LABCTL, "serve", "--sim", "--printers", "2", "--listen", f"127.0.0.1:{port}",
                              "--workdir", str(workdir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=ENV)
    read_until(serve, "ready")
    yield {"url": f"mqtt://127.0.0.1:{port}", "db": str(workdir / "labctl.db")}
    serve.send_signal(signal.SIGINT)
    serve.wait(60)


def labctl(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*LABCTL, *args], capture_output=True, text=True, timeout=120, env=ENV, input=input)


def test_status_lists_every_device(lab):
    result = labctl("status", "--json", "--broker", lab["url"], "--db", lab["db"])
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {d["id"] for d in data["devices"]} == {"printer-1", "printer-2", "rig-1", "liquid-1"}


def test_hardware_commands_need_confirmation_and_the_envelope_still_applies(lab):
    declined = labctl("printer", "send", "printer-1", "G28", "--broker", lab["url"], input="n\n")
    assert declined.returncode == 1 and "nothing was sent" in declined.stderr
    refused = labctl("printer", "send", "printer-1", "M500", "--yes", "--broker", lab["url"])
    assert refused.returncode == 1 and "M500" in refused.stderr
    homed = labctl("printer", "home", "printer-1", "--yes", "--json", "--broker", lab["url"])
    assert homed.returncode == 0, homed.stderr
    temps = labctl("printer", "temps", "printer-1", "--json", "--broker", lab["url"])
    assert "temperatures" in json.loads(temps.stdout)
    described = labctl("device", "rig-1", "describe", "--json", "--broker", lab["url"])
    assert "run_test" in json.loads(described.stdout)["commands"]
    bad = labctl("device", "rig-1", "tare", "samples", "--broker", lab["url"])
    assert bad.returncode == 2 and "key=value" in bad.stderr


def test_watch_shows_live_printer_progress_in_a_terminal(lab):
    master, slave = pty.openpty()
    watch = subprocess.Popen([*LABCTL, "watch", "--broker", lab["url"], "--seconds", "20"], stdin=slave,
                             stdout=slave, stderr=slave, env={**ENV, "TERM": "xterm", "COLUMNS": "120"})
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 60
    while b"devices" not in screen and time.monotonic() < deadline:  # its subscriptions are live
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            screen += os.read(master, 65536)
    gcode = "\n".join(["G28", "G90"] + [f"G1 X{10 + i * 0.2:.1f} Y30 F1200" for i in range(400)])
    printing = labctl("device", "printer-2", "print_gcode", f"gcode={json.dumps(gcode)}", "--yes", "--broker",
                      lab["url"])
    assert printing.returncode == 0, printing.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and watch.poll() is None:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                screen += os.read(master, 65536)
            except OSError:
                break
    watch.wait(30)
    text = screen.decode(errors="replace")
    assert watch.returncode == 0
    assert "printer-2 print" in text and "lines" in text and "rig-1" in text
