"""The simulator speaks Marlin 2.1 byte for byte on a real PTY (raw host, no driver)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import termios
import tty
from pathlib import Path

from drivers.printer.gcode import frame
from simulators.printer import MarlinSimulator, SimulatorConfig


class RawHost:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd, termios.TCSANOW)
        self.buffer = bytearray()
        asyncio.get_running_loop().add_reader(self.fd, self._read)

    def _read(self) -> None:
        self.buffer += os.read(self.fd, 65536)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    async def lines_until(self, last: str, timeout: float = 3.0) -> list[str]:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            lines = self.buffer.decode("latin-1").splitlines()
            if last in lines:
                del self.buffer[:]
                return lines
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {last!r} in {self.buffer!r}")

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)


async def test_line_errors_resend_and_m110_variants(tmp_path):
    async with MarlinSimulator(SimulatorConfig(), link=tmp_path / "p") as sim:
        host = RawHost(sim.port_path)
        boot = await host.lines_until("echo:Hardcoded Default Settings Loaded")
        assert boot[0] == "start"
        host.send(frame(0, "M110 N0"))
        assert await host.lines_until("ok") == ["ok"]
        host.send(b"N1 G28*0\n")
        assert await host.lines_until("ok") == ["Error:checksum mismatch, Last Line: 0", "Resend: 1", "ok"]
        host.send(frame(2, "G28"))
        assert await host.lines_until("ok") == [
            "Error:Line Number is not Last Line Number+1, Last Line: 0", "Resend: 1", "ok"]
        host.send(b"N1 G28\n")
        assert await host.lines_until("ok") == ["Error:No Checksum with line number, Last Line: 0", "Resend: 1", "ok"]
        host.send(b"G28*105\n")
        assert await host.lines_until("ok") == ["Error:No Line Number with checksum, Last Line: 0", "Resend: 1", "ok"]
        host.send(frame(101, "M110 N100") + frame(101, "M105"))     # N101 M110 N100: the last N wins
        lines = await host.lines_until("ok T:25.00 /0.00 B:25.00 /0.00 @:0 B@:0")
        assert lines == ["ok", "ok T:25.00 /0.00 B:25.00 /0.00 @:0 B@:0"]
        host.send(frame(102, "M110 N-1"))
        await host.lines_until("ok")
        host.send(frame(0, "M115"))
        lines = await host.lines_until("ok")
        assert lines[0].startswith("FIRMWARE_NAME:Marlin 2.1") and "Cap:EMERGENCY_PARSER:1" in lines
        host.close()


async def test_advanced_ok_rx_overflow_and_emergency_parser(tmp_path):
    config = SimulatorConfig(advanced_ok=True, rx_buffer=64, baud=115200)
    async with MarlinSimulator(config, link=tmp_path / "p") as sim:
        host = RawHost(sim.port_path)
        await host.lines_until("echo:Hardcoded Default Settings Loaded")
        host.send(frame(0, "M110 N0"))
        assert await host.lines_until("ok N0 P16 B4") == ["ok N0 P16 B4"]
        # A slow 200 mm move, then far more bytes than 4 slots + a 64-byte RX ring hold.
        burst = frame(1, "G1 X200 F600") + b"".join(frame(n, f"G1 X{200 * (n % 2)}") for n in range(2, 40))
        host.send(burst)
        await asyncio.sleep(0.5)
        assert sim.fw.rx_dropped_bytes > 0                       # Marlin drops what does not fit
        host.send(b"M112\n")                                      # the emergency parser acts on arrival
        await host.lines_until("Error:Printer halted. kill() called!")
        assert sim.fw.killed and sim.fw.halts[0]["reason"] == "M112"
        host.close()


def test_cli_simulator_writes_its_report_and_resets_on_sigusr1(tmp_path):
    link, report = tmp_path / "cli-printer", tmp_path / "report.json"
    labctl = str(Path(sys.executable).with_name("labctl"))
    proc = subprocess.Popen([labctl, "sim", "printer", "--link", str(link),
                             "--baud", "115200", "--report", str(report)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        for _ in range(100):
            if link.exists():
                break
            subprocess.run(["sleep", "0.05"])
        assert link.exists(), proc.stderr.read1().decode() if proc.poll() is not None else "no link"
        proc.send_signal(signal.SIGUSR1)
        subprocess.run(["sleep", "0.3"])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    data = json.loads(report.read_text())
    assert data["resets"] == 1 and data["config"]["baud"] == 115200
    assert not link.exists()


async def test_m0_waits_for_the_user_with_host_actions_until_m108(tmp_path):
    async with MarlinSimulator(SimulatorConfig(keepalive_s=2.0, speed=10), link=tmp_path / "p") as sim:
        host = RawHost(sim.port_path)
        await host.lines_until("echo:Hardcoded Default Settings Loaded")
        host.send(frame(0, "M110 N0") + frame(1, "M0"))
        lines = await host.lines_until("echo:busy: paused for user")
        assert lines == ["ok", "//action:paused", "echo:busy: paused for user"]
        host.send(b"M108\n")                  # emergency parser: M108 releases the wait at once
        await asyncio.sleep(0.2)
        lines = [line for line in await host.lines_until("ok", timeout=3) if not line.startswith("echo:busy")]
        assert lines == ["//action:resumed", "ok", "ok"]      # M0 finishes, then M108 is acknowledged
        assert sim.executed_commands[-2:] == ["M0", "M108"]
        host.close()
