"""MarlinDriver: streams G-code to a Marlin printer at the speed of the wire, without overrunning it.

    async with MarlinDriver("/dev/ttyUSB0", baud=250000, rx_buffer=128) as printer:
        result = await printer.print_file("part.gcode")

Flow control, in order of preference:
- "advanced_ok": the firmware's `ok N<n> P<p> B<b>` names the line it acknowledges, so a lost `ok`
  costs nothing; unacknowledged bytes are still kept within the RX buffer.
- "bytes": count unacknowledged bytes against the RX buffer (grbl's character counting).
- "one": one line in flight (fallback when the firmware misbehaves: repeated resends of a line).
Writes are also paced at the baud rate so that little sits in the OS transmit queue: an emergency
stop then reaches the firmware within a few milliseconds instead of behind a queue.
Correctness does not depend on any of that: Marlin executes a numbered line only if it is the
previous one plus one, so a resend never executes a line twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .envelope import PrinterLimits, check_gcode
from .firmware_info import FirmwareInfo, parse_m115
from .gcode import code_of, command_timeout, frame
from .job import JobResult, PrintJob, machine_state_at, resume_preamble
from .serial_link import LinkClosed, SerialLink

log = logging.getLogger("drivers.printer")

FlowMode = Literal["auto", "advanced_ok", "bytes", "one"]
_RESEND = re.compile(r"^(?:Resend:|rs)\s*N?(\d+)", re.IGNORECASE)
_ADV_OK = re.compile(r"^ok\s+N(-?\d+)")
_TEMP = re.compile(r"(T\d?|B):\s*(-?[\d.]+)\s*/\s*(-?[\d.]+)")
HISTORY = 4096
_GARBLED_NEWLINE = re.compile("[\x02\x08\x0b\x0e\x1a\x8a]")


class PrinterError(RuntimeError):
    pass


class PrinterHalted(PrinterError):
    pass


class PrinterReset(PrinterError):
    pass


class PrinterDisconnected(PrinterError):
    pass


class PrinterTimeout(PrinterError):
    pass


@dataclass(eq=False)
class Entry:
    command: str
    data: bytes
    line_number: int | None
    job_index: int | None = None            # index into the job's commands, for file lines
    future: asyncio.Future[list[str]] | None = None
    output: list[str] = field(default_factory=list)
    sent_at: float = 0.0
    timeout: float | None = 0.0


LONG_COMMAND_SILENCE_S = 3.0  # > 1.5 x Marlin's default 2 s busy keepalive


class MarlinDriver:
    def __init__(self, port: str, *, baud: int = 250000, rx_buffer: int = 128, flow: FlowMode = "auto",
                 limits: PrinterLimits | None = None, report_interval_s: float = 2.0,
                 response_timeout_s: float = 10.0, busy_limit_s: float | None = None,
                 pacing: bool = True, pacing_window_s: float = 0.0025, max_resends_per_line: int = 25) -> None:
        self.port = port
        self.baud = baud
        self.rx_buffer = rx_buffer
        self.flow_requested = flow
        self.flow: FlowMode = "bytes" if flow == "auto" else flow
        self.limits = limits or PrinterLimits()
        self.report_interval_s = report_interval_s
        self.response_timeout_s = response_timeout_s
        self.busy_limit_s = busy_limit_s
        self.pacing = pacing
        self.pacing_window_s = pacing_window_s
        self.max_resends_per_line = max_resends_per_line
        self.firmware = FirmwareInfo()
        self.temperatures: dict[str, float] = {}
        self.state = "disconnected"        # disconnected, idle, printing, paused, halted, reset
        self.halt_reason: str | None = None
        self.job: PrintJob | None = None
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.estop_sent_at: float | None = None
        self.halted_at: float | None = None
        self.stats = {"resends": 0, "line_errors": 0, "stall_syncs": 0, "lines_sent": 0}
        self._link: SerialLink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reset_state()
        self._watchdog: asyncio.Task[None] | None = None
        self._pump_timer: asyncio.TimerHandle | None = None
        self._connected = asyncio.Event()
        self._byte_time = 10.0 / baud

    def _reset_state(self) -> None:
        self._next_n = 0
        self._history: dict[int, Entry] = {}
        self._in_flight: deque[Entry] = deque()
        self._in_flight_bytes = 0
        self._resend_queue: deque[Entry] = deque()
        self._priority: deque[Entry] = deque()
        self._expect_error_ok = False
        self._last_error_kind: str | None = None
        self._last_error_n: int | None = None
        self._sync_sent_at = 0.0
        self._rewind_n: int | None = None
        self._rewind_dups = 0
        self._rewind_copy_sent = False
        self._resend_counts: dict[int, int] = {}
        self._wire_free_at = 0.0
        self._last_rx = time.monotonic()
        self._busy_since: float | None = None
        self._sync_outstanding: Entry | None = None
        self._stalled_since: float | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._output: list[str] = []
        self._staged: Entry | None = None

    # ---- connection ----------------------------------------------------------------------------
    async def __aenter__(self) -> "MarlinDriver":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            try:
                listener(kind, data)
            except Exception:
                log.exception("printer listener failed")

    def _set_state(self, state: str, **detail: Any) -> None:
        if state != self.state:
            self.state = state
            self._emit("state", {"state": state, **detail})

    async def connect(self, timeout: float = 10.0) -> FirmwareInfo:
        """Open the port, reset line numbers (M110), read capabilities (M115), start reports."""
        self._loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        while True:
            link = SerialLink(self.port, self.baud, self._on_line, self._on_lost)
            try:
                link.open()
                break
            except LinkClosed:
                if time.monotonic() > deadline:
                    raise PrinterDisconnected(f"cannot open printer port {self.port}") from None
                await asyncio.sleep(0.1)
        self._link = link
        self._reset_state()
        self.halt_reason = None
        self._set_state("connecting")
        self._connected.set()
        last_error: Exception | None = None
        for _ in range(4):
            try:
                self._reset_state()
                self._set_state("connecting")
                await asyncio.wait_for(self._send_command("M110 N0", line_number=0, timeout=3.0), 3.0)
                break
            except (PrinterTimeout, PrinterReset, asyncio.TimeoutError) as exc:
                last_error = exc
                await asyncio.sleep(0.2)   # a board that resets when the port opens is still booting
        else:
            raise PrinterTimeout(f"{self.port}: no answer to M110 ({last_error})")
        lines = await asyncio.wait_for(self._send_command("M115", timeout=5.0), 5.0)
        info = parse_m115(lines)
        info.advanced_ok = self.firmware.advanced_ok
        self.firmware = info
        if self.flow_requested == "auto":
            self.flow = "advanced_ok" if info.advanced_ok else "bytes"
        if info.has("AUTOREPORT_TEMP"):
            await self._send_command(f"M155 S{max(1, round(self.report_interval_s))}", timeout=5.0)
        self._set_state("idle")
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch())
        for note in info.degradations():
            log.info("%s: %s", self.port, note)
        return info

    async def close(self) -> None:
        if self._watchdog:
            self._watchdog.cancel()
            with contextlib.suppress(BaseException):
                await self._watchdog
            self._watchdog = None
        if self._pump_timer:
            self._pump_timer.cancel()
        if self._link:
            self._link.close()
        self._link = None
        self._set_state("disconnected")

    # ---- sending -------------------------------------------------------------------------------
    def _assign(self, entry: Entry) -> None:
        """Give an entry its line number as it goes on the wire (so no number is ever skipped)."""
        if entry.line_number is None:
            entry.line_number = self._next_n
            entry.data = frame(entry.line_number, entry.command)
        self._next_n = entry.line_number + 1
        self._history[entry.line_number] = entry
        if len(self._history) > HISTORY:
            self._history.pop(next(iter(self._history)))

    async def _send_command(self, command: str, *, line_number: int | None = None,
                            timeout: float | None = None) -> list[str]:
        """Send one numbered command ahead of any file lines; return its output lines at its ok."""
        if self._link is None or not self._link.is_open:
            raise PrinterDisconnected(f"{self.port} is not connected")
        if self.state == "halted":
            raise PrinterHalted(f"printer halted ({self.halt_reason}); reset it first")
        assert self._loop is not None
        entry = Entry(command, frame(line_number, command) if line_number is not None else b"", line_number)
        entry.future = self._loop.create_future()
        entry.timeout = command_timeout(command, self.response_timeout_s) if timeout is None else timeout
        self._priority.append(entry)
        self._pump()
        return await entry.future

    async def send(self, command: str, timeout: float | None = None) -> list[str]:
        """Send one command (no envelope check here: PrinterDevice.send_line checks)."""
        return await self._send_command(command, timeout=timeout)

    def _next_entry(self) -> tuple[Entry | None, str]:
        if self._resend_queue:
            return self._resend_queue[0], "resend"
        if self._priority:
            return self._priority[0], "priority"
        job = self.job
        if job is not None and job.state == "streaming" and job.cursor < job.total:
            staged = self._staged
            if staged is None or staged.job_index != job.cursor:
                command = job.commands[job.cursor][1]
                staged = self._staged = Entry(command, b"", None, job_index=job.cursor,
                                              timeout=command_timeout(command, self.response_timeout_s))
            return staged, "job"
        return None, ""

    def _pump(self) -> None:
        """Send as many lines as flow control and pacing allow. Called whenever something changes."""
        link = self._link
        if link is None or not link.is_open or self.state in ("halted", "reset"):
            return
        budget = self.rx_buffer - 8       # room kept for a bare M105 sync
        while True:
            entry, origin = self._next_entry()
            if entry is None:
                return
            size = len(entry.data) if entry.data else len(entry.command) + len(str(self._next_n)) + 7
            if self._in_flight:
                if self.flow == "one" or self._in_flight_bytes + size > budget:
                    return
            now = time.monotonic()
            if self.pacing:
                # Keep at most ~2.5 ms (or 1.5 lines) queued ahead of the wire: enough to keep it busy,
                # little enough that an emergency stop is not stuck behind a queue.
                line_time = size * self._byte_time
                window = max(self.pacing_window_s, 1.5 * line_time)
                backlog = self._wire_free_at - now
                if backlog > 0 and backlog + line_time > window:
                    self._schedule_pump(self._wire_free_at - (window - line_time))
                    return
            if origin == "resend":
                self._resend_queue.popleft()
                if entry.line_number == self._rewind_n:
                    self._rewind_copy_sent = True
            elif origin == "priority":
                self._priority.popleft()
                self._assign(entry)
            else:
                assert self.job is not None
                self.job.cursor += 1
                self._staged = None
                self._assign(entry)
            try:
                link.write(entry.data)
            except LinkClosed:
                return
            self.stats["lines_sent"] += 1
            self._wire_free_at = max(now, self._wire_free_at) + len(entry.data) * self._byte_time
            entry.sent_at = now
            self._in_flight.append(entry)
            self._in_flight_bytes += len(entry.data)
            if self.job is not None and entry.job_index is not None:
                self.job.bytes_sent += len(entry.data)

    def _schedule_pump(self, when_monotonic: float) -> None:
        if self._pump_timer is not None:
            return
        assert self._loop is not None
        delay = max(0.0, when_monotonic - time.monotonic())

        def fire() -> None:
            self._pump_timer = None
            self._pump()

        self._pump_timer = self._loop.call_later(delay, fire)

    # ---- receiving -----------------------------------------------------------------------------
    def _on_line(self, line: str) -> None:
        if not line:
            return
        if _GARBLED_NEWLINE.search(line):
            # A newline with one flipped bit joins two lines; Marlin never sends these bytes.
            for part in _GARBLED_NEWLINE.split(line):
                self._on_line(part.strip())
            return
        if len(line) == 2 and line != "ok" and (line[0] == "o" or line[1] == "k"):
            line = "ok"    # one flipped bit in an "ok": losing it would cost credit until the next sync
        if not line.startswith(("T:", "T0:", "B:")):
            self._last_rx = time.monotonic()   # temperature reports say nothing about our lines
        if line.startswith("ok"):
            self._on_ok(line)
        elif line.startswith(("T:", "T0:")) or (line.startswith("B:") and "T:" in line):
            self._on_temperatures(line)
        elif line.startswith("echo:busy:"):
            if self._busy_since is None:
                self._busy_since = self._last_rx
            if "paused for user" in line:
                self._emit("prompt", {"message": "printer is waiting for the user"})
        elif _RESEND.match(line):
            self._on_resend(int(_RESEND.match(line).group(1)))  # type: ignore[union-attr]
        elif line.startswith("Error:") or line.startswith("!!"):
            self._on_error(line[6:] if line.startswith("Error:") else line[2:].strip())
        elif line == "start":
            self._on_reset()
        elif line.startswith("//action:"):
            self._on_action(line[9:].strip())
        elif line == "wait":
            pass
        else:
            self._output.append(line)

    def _ack(self, entry: Entry) -> None:
        self._in_flight_bytes -= len(entry.data)
        if entry.future is not None and not entry.future.done():
            entry.future.set_result(self._output)
        self._output = []
        if entry is self._sync_outstanding:
            self._sync_outstanding = None
        job = self.job
        if job is not None and entry.job_index is not None and entry.job_index > job.acked:
            job.acked = entry.job_index
            if job.acked + 1 >= job.total and job.state == "streaming":
                job.finish("done")
                self._set_state("idle")

    def _on_ok(self, line: str) -> None:
        self._busy_since = None
        if self._expect_error_ok:
            self._expect_error_ok = False
            return
        if "T:" in line:
            self._on_temperatures(line)
        in_flight = self._in_flight
        numbered = _ADV_OK.match(line)
        if numbered:
            if not self.firmware.advanced_ok:
                self.firmware.advanced_ok = True
            acked_n = int(numbered.group(1))
            if any(e.line_number == acked_n for e in in_flight):
                while in_flight:
                    entry = in_flight.popleft()
                    self._ack(entry)
                    if entry.line_number == acked_n:
                        break
        elif "T:" in line:
            # An M105 reply: everything sent before that M105 has been processed (FIFO). A reply with
            # no M105 in flight belongs to a sync we already wrote off; it acknowledges nothing.
            if any(code_of(e.command) == "M105" for e in in_flight):
                while in_flight:
                    entry = in_flight.popleft()
                    self._ack(entry)
                    if code_of(entry.command) == "M105":
                        break
        elif in_flight:
            self._ack(in_flight.popleft())
        self._pump()

    def _on_temperatures(self, line: str) -> None:
        for label, current, target in _TEMP.findall(line):
            key = "bed" if label == "B" else "hotend"
            self.temperatures[key] = float(current)
            self.temperatures[key + "_target"] = float(target)
        self._emit("temperature", dict(self.temperatures))

    def _on_error(self, message: str) -> None:
        if "Last Line" in message:
            self.stats["line_errors"] += 1
            self._last_error_kind = "line_number" if message.startswith("Line Number") else "corrupt"
            last = re.search(r"Last Line:\s*(-?\d+)\s*$", message)
            self._last_error_n = int(last.group(1)) if last else None
            return
        if "halted" in message or "kill()" in message:
            self._on_halt()
            return
        if "Unknown command" in message:
            return
        self.halt_reason = message     # a cause (thermal runaway, MAXTEMP...) precedes the halt line

    def _on_resend(self, n: int) -> None:
        self._expect_error_ok = True
        kind, self._last_error_kind = self._last_error_kind, None
        last_error_n, self._last_error_n = self._last_error_n, None
        if (n not in self._history and n != self._next_n) or n > self._next_n:
            return   # a corrupted number: the firmware repeats its request on the next line
        if kind is not None and last_error_n is not None and last_error_n + 1 != n:
            return   # "Last Line" and "Resend" disagree: one was corrupted on the wire
        if n == self._rewind_n and kind == "line_number" and (self._rewind_dups > 0 or not self._rewind_copy_sent):
            # A line that was already on its way when we rewound, not the copy we sent since.
            self._rewind_dups = max(0, self._rewind_dups - 1)
            return
        count = self._resend_counts[n] = self._resend_counts.get(n, 0) + 1
        self.stats["resends"] += 1
        if self.job is not None:
            self.job.resends += 1
        if count == 4 and self.flow != "one":
            self.flow = "one"
            note = f"line N{n} re-requested {count} times: falling back to one line in flight"
            log.warning("%s: %s", self.port, note)
            if self.job is not None:
                self.job.notes.append(note)
        if count > self.max_resends_per_line:
            self._fail_job(f"resend loop: the firmware asked for line N{n} {count} times")
            return
        dead = [e for e in self._in_flight if e.line_number is not None and e.line_number >= n]
        for entry in dead:
            self._in_flight.remove(entry)
            self._in_flight_bytes -= len(entry.data)
        self._rewind_n = n
        self._rewind_dups = max(0, len(dead) - 1)
        self._rewind_copy_sent = False
        self._resend_queue = deque(self._history[k] for k in range(n, self._next_n) if k in self._history)
        self._pump()

    def _on_reset(self) -> None:
        if self.state == "connecting":
            self._interrupt("firmware reset during the handshake", PrinterReset)
            return
        log.warning("%s: firmware reset (start)", self.port)
        self._interrupt("firmware reset", PrinterReset)
        self._set_state("reset")

    def _on_lost(self, exc: Exception | None) -> None:
        log.warning("%s: disconnected (%s)", self.port, exc)
        self._interrupt(f"disconnected: {exc or 'port closed'}", PrinterDisconnected)
        self._link = None
        self._connected.clear()
        self._set_state("disconnected")

    def _interrupt(self, why: str, error: type[PrinterError]) -> None:
        for entry in list(self._in_flight) + list(self._priority) + list(self._resend_queue):
            if entry.future is not None and not entry.future.done():
                entry.future.set_exception(error(f"{self.port}: {why} while waiting for {entry.command!r}"))
        job = self.job
        self._reset_state()
        if job is not None and job.state in ("streaming", "paused"):
            last = job.last_executed()
            job.error = f"{why}; last line executed: " + (
                f"{last.file_line} ({last.command})" if last else "none")
            job.finish("interrupted")  # announced by _announce_end

    def _on_halt(self) -> None:
        self.halted_at = time.monotonic()
        reason = self.halt_reason or ("emergency stop" if self.estop_sent_at else "printer halted")
        self.halt_reason = reason
        for entry in list(self._in_flight) + list(self._priority) + list(self._resend_queue):
            if entry.future is not None and not entry.future.done():
                entry.future.set_exception(PrinterHalted(f"{self.port}: printer halted: {reason}"))
        self._in_flight.clear()
        self._priority.clear()
        self._resend_queue.clear()
        self._in_flight_bytes = 0
        # Marlin's kill() turns every heater off.
        for key in ("hotend_target", "bed_target"):
            self.temperatures[key] = 0.0
        job = self.job
        if job is not None and job.state in ("streaming", "paused"):
            job.finish("halted" if self.estop_sent_at else "failed", f"printer halted: {reason}")
        self._set_state("halted", reason=reason)

    def _on_action(self, action: str) -> None:
        self._emit("action", {"action": action})
        if action in ("pause", "paused") and self.job is not None and self.job.state == "streaming":
            self.job.state = "paused"
            self._set_state("paused", by="printer")
        elif action in ("resume", "resumed") and self.job is not None and self.job.state == "paused":
            self.job.state = "streaming"
            self._set_state("printing")
            self._pump()
        elif action == "cancel" and self.job is not None:
            asyncio.ensure_future(self.cancel())

    def _fail_job(self, error: str) -> None:
        log.error("%s: %s", self.port, error)
        if self.job is not None:
            self.job.finish("failed", error)
        self._resend_queue.clear()
        self._priority.clear()

    # ---- watchdog: stalls, lost oks, time-outs, progress -----------------------------------------
    async def _watch(self) -> None:
        last_progress = 0.0
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            if self.job is not None and self.job.state == "streaming" and now - last_progress > 0.5:
                last_progress = now
                self._emit("progress", self.job.progress())
            if not self.firmware.has("AUTOREPORT_TEMP") and self.state in ("idle", "printing", "paused") \
                    and self._link is not None and now - self._last_rx > self.report_interval_s \
                    and not self._in_flight and not self._priority:
                self._sync()
            if not self._in_flight or self.state in ("halted", "reset", "disconnected"):
                continue
            oldest = self._in_flight[0]
            if self._busy_since is not None and self.busy_limit_s is not None \
                    and now - self._busy_since > self.busy_limit_s:
                self._give_up(f"printer busy for more than {self.busy_limit_s:g} s on {oldest.command!r}")
                continue
            quiet = now - self._last_rx
            limit = oldest.timeout
            if limit is None or limit > self.response_timeout_s:
                # A long command (G28, M109, M400...) keeps the firmware talking: `busy` every 2 s
                # (HOST_KEEPALIVE) or temperature reports. Silence well past that means it finished
                # and its ok was lost on the wire: an M105's reply acknowledges everything before it.
                if quiet > LONG_COMMAND_SILENCE_S:
                    self._sync()
                if limit is None:
                    continue
            elif quiet > min(limit, 0.5):
                self._sync()      # a lost ok? an M105's reply acknowledges everything before it
            if quiet > limit:
                self._give_up(f"no response for {quiet:.1f} s waiting for {oldest.command!r}")

    def _sync(self) -> None:
        if self._sync_outstanding is not None and time.monotonic() - self._sync_sent_at > 1.0:
            # Its reply was lost or garbled: write it off (left in flight, it would shift every later
            # reply by one and, with one line in flight, block the stream) and try again.
            with contextlib.suppress(ValueError):
                self._in_flight.remove(self._sync_outstanding)
                self._in_flight_bytes -= len(self._sync_outstanding.data)
            self._sync_outstanding = None
        if self._link is None or not self._link.is_open or self._sync_outstanding is not None:
            return
        self._sync_sent_at = time.monotonic()
        entry = Entry("M105", b"M105\n", None, timeout=self.response_timeout_s)
        self._sync_outstanding = entry
        self.stats["stall_syncs"] += 1
        with contextlib.suppress(LinkClosed):
            self._link.write(entry.data)
            self._in_flight.append(entry)
            self._in_flight_bytes += len(entry.data)
        self._last_rx = time.monotonic()

    def _give_up(self, why: str) -> None:
        log.error("%s: %s", self.port, why)
        for entry in list(self._in_flight) + list(self._priority):
            if entry.future is not None and not entry.future.done():
                entry.future.set_exception(PrinterTimeout(f"{self.port}: {why}"))
        if self.job is not None and self.job.state in ("streaming", "paused"):
            self.job.finish("failed", why)
        self._in_flight.clear()
        self._in_flight_bytes = 0
        self._priority.clear()
        self._resend_queue.clear()

    # ---- jobs ----------------------------------------------------------------------------------
    def check(self, lines: Iterable[str], source: str = "G-code") -> list[tuple[int, str]]:
        """Envelope check; raises EnvelopeError naming file line and reason. Sends nothing."""
        return check_gcode(lines, self.limits, source=source)

    async def print_file(self, path: str | Path, **kwargs: Any) -> JobResult:
        path = Path(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        return await self.print_lines(text.splitlines(), name=path.name, source=str(path), **kwargs)

    async def print_lines(self, lines: Iterable[str], *, name: str = "gcode", source: str = "G-code",
                          wait: bool = True) -> JobResult:
        commands = self.check(list(lines), source=source)   # refuse before anything is sent
        if self.state == "halted":
            raise PrinterHalted(f"printer halted ({self.halt_reason}); reset it first")
        if self._link is None:
            raise PrinterDisconnected(f"{self.port} is not connected")
        if self.job is not None and self.job.state in ("streaming", "paused", "interrupted"):
            raise PrinterError(f"a job is already {self.job.state}: {self.job.name}")
        self._resend_counts.clear()
        self.flow = self.flow if self.flow_requested != "auto" else (
            "advanced_ok" if self.firmware.advanced_ok else "bytes")
        job = PrintJob(name=name, commands=commands)
        self.job = job
        self.estop_sent_at = None
        self._set_state("printing", job=name)
        self._emit("job", job.progress())
        # Every job's end is announced, whether or not anyone waits for it.
        announcer = asyncio.ensure_future(self._announce_end(job))
        self._background.add(announcer)
        announcer.add_done_callback(self._background.discard)
        if not commands:
            job.finish("done")
        self._pump()
        if not wait:
            return job.result()
        return await self.wait_job()

    async def _announce_end(self, job: PrintJob) -> None:
        await job.done.wait()
        self._emit("job", {**job.progress(), "result": job.result().model_dump()})

    async def wait_job(self) -> JobResult:
        assert self.job is not None
        await self.job.done.wait()
        return self.job.result()

    def pause(self) -> None:
        """Stop sending file lines; what the firmware already has finishes."""
        if self.job is not None and self.job.state == "streaming":
            self.job.state = "paused"
            self._set_state("paused", by="host")

    def resume(self) -> None:
        if self.job is not None and self.job.state == "paused":
            self.job.state = "streaming"
            self._set_state("printing")
            self._pump()

    async def cancel(self) -> None:
        """Stop sending, then heaters off, fan off, motors off."""
        job = self.job
        if job is not None and job.state in ("streaming", "paused"):
            job.finish("cancelled", "cancelled by the host")
        with contextlib.suppress(PrinterError):
            for command in ("M104 S0", "M140 S0", "M107", "M84"):
                await self._send_command(command, timeout=60.0)
        if self.state not in ("halted", "disconnected", "reset"):
            self._set_state("idle")

    def emergency_stop(self) -> None:
        """M112 on the wire now, ahead of everything queued; the job is marked halted."""
        self.estop_sent_at = time.monotonic()
        self._priority.clear()
        self._resend_queue.clear()
        if self.job is not None and self.job.state in ("streaming", "paused"):
            self.job.finish("halted", "emergency stop")
        if self._link is not None and self._link.is_open:
            with contextlib.suppress(LinkClosed):
                self._link.write_now(b"M112\n")
        self._emit("estop", {"sent_at": self.estop_sent_at})

    async def wait_halted(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.state != "halted" and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return self.state == "halted"

    async def resume_interrupted(self, confirm: bool = False, timeout: float = 30.0) -> JobResult:
        """Pick an interrupted job up after its last executed line: re-heat, home X/Y, declare Z
        and E, continue. Refuses without confirm=True (a person must have checked the printer)."""
        job = self.job
        if job is None or job.state != "interrupted":
            raise PrinterError("no interrupted job to resume")
        if not confirm:
            last = job.last_executed()
            raise PrinterError("resuming needs confirm=True after checking the printer; the job stopped after "
                               f"file line {last.file_line if last else 0}")
        if self._link is None or not self._link.is_open or self.state in ("reset", "disconnected"):
            if self._link is not None:
                self._link.close()
                self._link = None
            await self.connect(timeout=timeout)
        state = machine_state_at(job.commands, job.acked)
        preamble = resume_preamble(state)
        job.notes.append(f"resumed after file line {job.commands[job.acked][0] if job.acked >= 0 else 0} with: "
                         + "; ".join(preamble))
        for command in preamble:
            await self._send_command(command)
        job.state = "streaming"
        job.cursor = job.acked + 1
        job.done = asyncio.Event()
        self._set_state("printing", job=job.name)
        if job.cursor >= job.total:
            job.finish("done")
        self._pump()
        return await self.wait_job()

    def status(self) -> dict[str, Any]:
        return {"port": self.port, "state": self.state, "flow": self.flow, "firmware": self.firmware.name,
                "temperatures": dict(self.temperatures), "halt_reason": self.halt_reason,
                "job": self.job.progress() if self.job else None, "stats": dict(self.stats),
                "degradations": self.firmware.degradations()}
