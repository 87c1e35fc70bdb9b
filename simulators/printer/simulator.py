"""MarlinSimulator: a simulated Marlin 2.1 printer on a real pseudo-terminal.

    async with MarlinSimulator(SimulatorConfig(baud=115200), link=tmp_path / "printer") as sim:
        ...open sim.port_path with any serial host...
        sim.report()   # executed commands (in order, hashed), underruns, dropped bytes, halts

The wire is modelled: each byte takes 10 bits of time at `baud`, plus `usb_latency_s` per transfer,
in both directions. Everything runs on the event loop it is started in; `speed` scales simulated
time against real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import math
import os
import random
import termios
import time
import tty
from collections import deque
from pathlib import Path
from typing import Any

from .config import SimulatorConfig
from .firmware import MarlinFirmware

log = logging.getLogger("simulators.printer")
INF = math.inf


def _flip_bits(data: bytes, rate: float, rng: random.Random) -> tuple[bytes, int]:
    """Flip one random bit in each newline-terminated line with probability `rate`."""
    if rate <= 0:
        return data, 0
    out = bytearray(data)
    flips = 0
    start = 0
    while start < len(out):
        end = out.find(b"\n", start)
        end = len(out) - 1 if end < 0 else end
        if rng.random() < rate:
            index = rng.randrange(start, end + 1)
            out[index] ^= 1 << rng.randrange(8)
            flips += 1
        start = end + 1
    return bytes(out), flips


class MarlinSimulator:
    def __init__(self, config: SimulatorConfig | None = None, *, link: str | os.PathLike[str] | None = None,
                 **overrides: Any) -> None:
        base = config or SimulatorConfig()
        self.config = base.model_copy(update=overrides) if overrides else base
        self.link = Path(link) if link else None
        self._rng = random.Random(self.config.faults.seed + 7)
        self._byte_time = 10.0 / self.config.baud if self.config.wire_timed else 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_name = ""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = INF
        self._wire_in: deque[list[Any]] = deque()   # [arrival time of byte 0, data, offset]
        self._in_free = 0.0
        self._out: deque[tuple[float, bytes]] = deque()
        self._out_free = 0.0
        self._out_pending = b""
        self._fault_at: float | None = None
        self._reconnect: asyncio.TimerHandle | None = None
        self.bit_flips = {"to_firmware": 0, "to_host": 0}
        self.disconnects = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.halt_times: list[dict[str, Any]] = []
        self.fw = MarlinFirmware(self.config, self._emit)
        self._t0 = 0.0

    # ---- lifecycle -----------------------------------------------------------------------------
    @property
    def port_path(self) -> str:
        return str(self.link) if self.link else self._slave_name

    @property
    def firmware(self) -> MarlinFirmware:
        return self.fw

    async def __aenter__(self) -> "MarlinSimulator":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self._open_pty()
        self._schedule(0.0)

    async def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        if self._reconnect:
            self._reconnect.cancel()
        self._close_pty()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)   # no echo, no line discipline: bytes pass unchanged
        attrs = termios.tcgetattr(slave)
        speed = getattr(termios, f"B{self.config.baud}", termios.B115200)
        attrs[4] = attrs[5] = speed
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        flags = fcntl.fcntl(master, fcntl.F_GETFL)
        fcntl.fcntl(master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._master, self._slave = master, slave
        self._slave_name = os.ttyname(slave)
        if self.link:
            tmp = self.link.with_name(self.link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(self._slave_name, tmp)
            os.replace(tmp, self.link)
        assert self._loop is not None
        self._loop.add_reader(master, self._on_readable)

    def _close_pty(self) -> None:
        if self._master is None:
            return
        assert self._loop is not None
        self._loop.remove_reader(self._master)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)  # type: ignore[arg-type]
        self._master = self._slave = None
        if self.link:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()

    def reset(self) -> None:
        """Press the reset button: everything in flight is lost, the firmware boots."""
        self._wire_in.clear()
        self._out.clear()
        self._out_pending = b""
        self._fault_at = None
        self.fw.now = self.sim_now()
        self._out_free = self.fw.now
        self.fw.boot()
        self._tick()

    # ---- time ----------------------------------------------------------------------------------
    def sim_now(self) -> float:
        assert self._loop is not None
        return (self._loop.time() - self._t0) * self.config.speed

    def _real_time(self, sim_t: float) -> float:
        return self._t0 + sim_t / self.config.speed

    def _schedule(self, sim_t: float) -> None:
        assert self._loop is not None
        if sim_t >= INF:
            return
        when = self._real_time(sim_t)
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = INF
        self._tick()

    # ---- bytes in ------------------------------------------------------------------------------
    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 65536)  # type: ignore[arg-type]
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            return
        self.bytes_in += len(data)
        faults = self.config.faults
        if faults.bit_error_to_firmware and faults.bit_error_rate:
            data, flips = _flip_bits(data, faults.bit_error_rate, self._rng)
            self.bit_flips["to_firmware"] += flips
        now = self.sim_now()
        first = max(now + self.config.usb_latency_s, self._in_free) + self._byte_time
        self._in_free = first + (len(data) - 1) * self._byte_time
        self._wire_in.append([first, data, 0])
        self._tick()

    def _next_arrival(self) -> float:
        if not self._wire_in:
            return INF
        t0, data, off = self._wire_in[0]
        nl = data.find(b"\n", off)
        return t0 + (nl if nl >= 0 else len(data) - 1) * self._byte_time

    def _deliver_one(self) -> None:
        chunk = self._wire_in[0]
        _, data, off = chunk
        nl = data.find(b"\n", off)
        end = nl + 1 if nl >= 0 else len(data)
        self.fw.feed(data[off:end])
        if end >= len(data):
            self._wire_in.popleft()
        else:
            chunk[2] = end

    # ---- bytes out -----------------------------------------------------------------------------
    def _emit(self, text: str) -> None:
        data = text.encode("latin-1") + b"\n"
        faults = self.config.faults
        if faults.bit_error_to_host and faults.bit_error_rate:
            data, flips = _flip_bits(data, faults.bit_error_rate, self._rng)
            self.bit_flips["to_host"] += flips
        now = self.fw.now if hasattr(self, "fw") else 0.0   # the firmware boots inside its constructor
        done = max(now, self._out_free) + len(data) * self._byte_time
        self._out_free = done
        self._out.append((done + self.config.usb_latency_s, data))

    def _flush_out(self, now: float) -> None:
        ready = [self._out_pending] if self._out_pending else []
        while self._out and self._out[0][0] <= now:
            ready.append(self._out.popleft()[1])
        if not ready or self._master is None:
            return
        data = b"".join(ready)
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        except OSError:
            written = len(data)
        self.bytes_out += written
        self._out_pending = data[written:]

    # ---- the clock -----------------------------------------------------------------------------
    def _tick(self) -> None:
        if self._master is None:
            return
        now = self.sim_now()
        fw = self.fw
        for _ in range(200000):
            t_arrival = self._next_arrival()
            t = min(fw.next_event(), t_arrival)
            if t > now:
                break
            fw.now = max(fw.now, t)
            if t_arrival <= fw.now:
                self._deliver_one()
            fw.run()
        fw.now = max(fw.now, now)
        fw.run()
        self._note_halts()
        if fw.pending_fault and self._fault_at is None and self._master is not None:
            self._fault_at = self._out[-1][0] if self._out else now
        self._flush_out(now)
        if self._fault_at is not None and now >= self._fault_at and not self._out and not self._out_pending:
            fault = fw.pending_fault or "reset"
            self._fault_at = None
            fw.pending_fault = None     # the firmware stays frozen until it boots again
            if fault == "disconnect":
                # Let the host read the last ok before the port vanishes ("once its ok is on the wire").
                assert self._loop is not None
                self._loop.call_later(0.05, self._inject, fault)
            else:
                self._inject(fault)
            return
        candidates = [fw.next_event(), self._next_arrival()]
        if self._out:
            candidates.append(self._out[0][0])
        if self._out_pending:
            candidates.append(now + 0.001 * self.config.speed)
        if self._fault_at is not None:
            candidates.append(self._fault_at)
        self._schedule(min(candidates))

    def _note_halts(self) -> None:
        while len(self.halt_times) < len(self.fw.halts):
            halt = dict(self.fw.halts[len(self.halt_times)])
            halt["t_monotonic"] = self._real_time(halt["t_sim"])
            halt["t_processed"] = time.monotonic()
            self.halt_times.append(halt)

    def _inject(self, fault: str) -> None:
        self._fault_at = None
        if fault == "reset":
            log.info("simulated printer: spontaneous reset")
            self.reset()
            return
        log.info("simulated printer: USB disconnect")
        self.disconnects += 1
        self._close_pty()
        self._wire_in.clear()
        self._out.clear()
        self._out_pending = b""
        self.fw.pending_fault = None
        assert self._loop is not None
        self._reconnect = self._loop.call_later(self.config.faults.reconnect_after_s, self._come_back)

    def _come_back(self) -> None:
        self._reconnect = None
        self._open_pty()
        self.fw.now = self.sim_now()
        self._out_free = self.fw.now
        self.fw.boot()   # the host's DTR toggle on reconnect resets the board
        self._tick()

    # ---- records -------------------------------------------------------------------------------
    @property
    def executed_commands(self) -> list[str]:
        return [text for _, text in self.fw.executed]

    def report(self, include_executed: bool = True) -> dict[str, Any]:
        fw = self.fw
        data: dict[str, Any] = {
            "port": self.port_path,
            "config": self.config.model_dump(mode="json"),
            "executed_count": len(fw.executed),
            "executed_sha256": fw.executed_hash,
            "moves": fw.moves,
            "planner_underruns": fw.underruns,
            "rx_dropped_bytes": fw.rx_dropped_bytes,
            "line_errors": fw.line_errors,
            "oks_dropped": fw.oks_dropped,
            "bit_flips": self.bit_flips,
            "resets": fw.resets,
            "disconnects": self.disconnects,
            "halts": self.halt_times,
            "killed": fw.killed,
            "temperatures": fw.temperatures(),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "sim_time_s": round(self.fw.now, 3),
        }
        if include_executed:
            data["executed"] = [[n, text] for n, text in fw.executed]
            data["executed_at"] = [round(t, 6) for t in fw.executed_at]
        return data

    def write_report(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.report(), indent=1))
