"""Async driver of the labctl tensile rig over its serial line protocol.

    async with RigDriver("/dev/ttyACM0") as rig:        # opens, identifies, checks the firmware
        await rig.tare()
        curve = await rig.run_test(RigTestParams(speed_mm_min=5, preload_n=2), on_samples=publish)

Every line is checksummed; damaged lines and sequence-number jumps are counted in `rig.link`
and in each curve's `link`, never accepted silently. While the port is open a keepalive PING
feeds the firmware's host watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import serial

from .models import FirmwareIdentity, LinkStats, RawCurve, RigTestParams
from .protocol import Frame, LineError, Message, parse_line

log = logging.getLogger("drivers.rig")

FIRMWARE_NAME = "labctl-rig"
SUPPORTED_PROTO = 1
SUPPORTED_MAJOR = 1

SampleBatch = list[Frame]
OnSamples = Callable[[SampleBatch], Awaitable[None]]


class RigError(RuntimeError):
    """The rig refused a command, faulted, or cannot be reached."""


class FirmwareMismatch(RigError):
    pass


class RigFault(RigError):
    def __init__(self, reason: str, fields: dict[str, str]) -> None:
        super().__init__(f"rig fault: {reason}")
        self.reason = reason
        self.fields = fields


class RigDriver:
    def __init__(self, port: str, *, baudrate: int = 921600, keepalive_s: float = 0.4,
                 command_timeout_s: float = 10.0, batch_interval_s: float = 0.1,
                 test_timeout_s: float | None = None) -> None:
        self.port = port
        self.baudrate = baudrate
        self.keepalive_s = keepalive_s
        self.command_timeout_s = command_timeout_s
        self.batch_interval_s = batch_interval_s
        self.test_timeout_s = test_timeout_s
        self.identity: FirmwareIdentity | None = None
        self.limits: dict[str, float] = {}
        self.link = LinkStats()
        self._serial: serial.Serial | None = None
        self._fd = -1
        self._buffer = b""
        self._lock = asyncio.Lock()
        self._pending: tuple[str, asyncio.Future[Message]] | None = None
        self._events: asyncio.Queue[Message] = asyncio.Queue()
        self._collector: list[Frame] | None = None
        self._expected_seq: int | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._flushed = 0
        self._preloaded: int | None = None
        self._closed = asyncio.Event()
        self._link_error: RigError | None = None
        self._closing = False
        self._silent = False

    # ----- connection --------------------------------------------------------------------------
    async def __aenter__(self) -> RigDriver:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> FirmwareIdentity:
        try:
            self._serial = serial.Serial(self.port, self.baudrate, timeout=0, write_timeout=2)
        except (serial.SerialException, OSError) as exc:
            raise RigError(f"cannot open rig port {self.port}: {exc}") from exc
        self._fd = self._serial.fileno()
        asyncio.get_running_loop().add_reader(self._fd, self._on_readable)
        try:
            identity = await self.identify()
            await self.set_limits()
        except BaseException:
            await self.close()
            raise
        self._keepalive = asyncio.create_task(self._keepalive_loop(), name=f"rig-keepalive-{self.port}")
        return identity

    async def close(self) -> None:
        self._closing = True
        if self._keepalive is not None:
            await _cancel(self._keepalive)
            self._keepalive = None
        if self._serial is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            self._serial.close()
            self._serial = None
        self._closed.set()

    def pause_keepalive(self) -> None:
        """Stop feeding the rig's watchdog (the rig will stop a moving crosshead); for tests of it."""
        self._silent = True
        if self._keepalive is not None:
            self._keepalive.cancel()

    async def _keepalive_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.keepalive_s)
            if self._silent:
                return
            try:
                await self.command("PING", timeout=max(2.0, self.keepalive_s * 4))
            except RigError as exc:
                log.warning("%s: keepalive failed: %s", self.port, exc)

    # ----- reading -----------------------------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._link_lost(f"read failed: {exc}")
            return
        if not data:
            self._link_lost("end of file")
            return
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        for raw in lines:
            try:
                self._on_line(raw.decode("ascii", "replace").strip("\r"))
            except Exception:  # one bad line must not lose the lines after it
                self.link.malformed += 1
                log.exception("%s: could not handle line %r", self.port, raw[:80])

    def _link_lost(self, why: str) -> None:
        log.error("%s: link lost: %s", self.port, why)
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._fd)
        error = RigError(f"rig port {self.port} lost: {why}")
        self._link_error = error
        self._fail_pending(error)
        self._events.put_nowait(Message("X", "LINK_LOST", {"why": why}))

    def _on_line(self, line: str) -> None:
        if not line:
            return
        try:
            item = parse_line(line)
        except LineError as exc:
            self.link.malformed += 0 if "checksum" in str(exc) else 1
            self.link.bad_checksums += 1 if "checksum" in str(exc) else 0
            self.link.bad_frames += 1 if exc.is_frame else 0
            damaged = self.link.bad_checksums + self.link.malformed
            if damaged <= 5 or damaged % 100 == 0:  # counted always; logged sparingly
                log.warning("%s: %s (%d damaged lines so far)", self.port, exc, damaged)
            return
        if isinstance(item, Frame):
            self._on_frame(item)
            return
        if item.kind == "E":
            self._events.put_nowait(item)
            return
        if item.kind == "OK" and item.name == "START" and "seq" in item.fields:
            # The test's first frame number: a frame lost right at the start still counts as a gap.
            self._expected_seq = int(item.fields["seq"])
        pending = self._pending
        if pending is not None and pending[0] == item.name and not pending[1].done():
            pending[1].set_result(item)
        else:
            log.debug("%s: unsolicited %s %s", self.port, item.kind, item.name)

    def _on_frame(self, frame: Frame) -> None:
        link = self.link
        link.frames += 1
        expected = self._expected_seq
        if expected is not None and frame.seq != expected:
            if frame.seq > expected:
                link.seq_gaps += 1
                link.missing_frames += frame.seq - expected
            else:
                link.restarts += 1
        self._expected_seq = frame.seq + 1
        if self._collector is not None:
            self._collector.append(frame)

    def _fail_pending(self, exc: Exception) -> None:
        if self._pending is not None and not self._pending[1].done():
            self._pending[1].set_exception(exc)

    # ----- commands ----------------------------------------------------------------------------
    def _write(self, line: str) -> None:
        if self._serial is None:
            raise RigError(f"rig port {self.port} is not open")
        if self._link_error is not None:
            raise self._link_error
        data = (line + "\n").encode()
        deadline = time.monotonic() + 2.0
        while data:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                # The rig is not reading; a command line is short, so this only waits on a wedged link.
                if time.monotonic() > deadline:
                    raise RigError(f"rig port {self.port}: output blocked for 2 s") from None
                time.sleep(0.001)
                continue
            except OSError as exc:
                raise RigError(f"cannot write to rig port {self.port}: {exc}") from exc
            data = data[written:]

    async def command(self, line: str, *, timeout: float | None = None) -> dict[str, str]:
        """Send one command and wait for its OK; raises RigError with the firmware's message on ERR."""
        verb = line.split()[0].upper()
        async with self._lock:
            future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
            self._pending = (verb, future)
            try:
                self._write(line)
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races
                # the reply, which left close() waiting forever on the keepalive task.
                async with asyncio.timeout(timeout or self.command_timeout_s):
                    reply = await future
            except asyncio.TimeoutError:
                raise RigError(f"rig on {self.port}: no reply to {verb} within "
                               f"{timeout or self.command_timeout_s:g} s "
                               f"({self.link.bad_checksums} damaged lines so far)") from None
            finally:
                self._pending = None
        if reply.kind == "ERR":
            raise RigError(f"rig refused {line!r}: {reply.fields.get('msg', '?').replace('_', ' ')}")
        return reply.fields

    async def identify(self) -> FirmwareIdentity:
        fields = await self.command("ID")
        try:
            identity = FirmwareIdentity(
                name=fields["name"], version=fields["version"], proto=int(fields["proto"]),
                scale_counts_per_n=float(fields["scale"]), zero_counts=int(fields["zero"]),
                calibration_mass_g=float(fields["calmass"]), steps_per_mm=int(fields["spm"]),
                adc_hz=float(fields["adc_hz"]))
        except (KeyError, ValueError) as exc:
            raise FirmwareMismatch(f"rig on {self.port}: ID reply lacks or garbles {exc}: {fields}") from None
        if identity.name != FIRMWARE_NAME:
            raise FirmwareMismatch(f"{self.port} runs {identity.name!r}, not {FIRMWARE_NAME!r}")
        major = identity.version.split(".")[0]
        if identity.proto != SUPPORTED_PROTO or not major.isdigit() or int(major) != SUPPORTED_MAJOR:
            raise FirmwareMismatch(f"{self.port}: firmware {identity.label} is not supported "
                                   f"(need version {SUPPORTED_MAJOR}.x, protocol {SUPPORTED_PROTO})")
        self.identity = identity
        return identity

    async def set_limits(self, **limits: float) -> dict[str, float]:
        """LIMITS fmax= nover= tmin= tmax= vmax= wdt=; with no arguments, reads them back."""
        line = "LIMITS " + " ".join(f"{k}={v:g}" for k, v in limits.items())
        fields = await self.command(line.strip())
        self.limits = {k: float(v) for k, v in fields.items()}
        return self.limits

    async def tare(self, samples: int = 32) -> dict[str, str]:
        return await self.command(f"TARE {samples}", timeout=self._sampling_timeout(samples))

    async def calibrate(self, mass_g: float, samples: int = 32) -> dict[str, str]:
        """With `mass_g` hanging on the load cell (after a tare without it)."""
        if mass_g <= 0:
            raise ValueError(f"calibration mass must be positive, got {mass_g} g")
        fields = await self.command(f"CAL {mass_g:g} {samples}", timeout=self._sampling_timeout(samples))
        await self.identify()
        return fields

    def _sampling_timeout(self, samples: int) -> float:
        rate = self.identity.adc_hz if self.identity else 10.0
        return self.command_timeout_s + samples / rate

    async def status(self) -> dict[str, str]:
        return await self.command("STATUS")

    async def stop(self) -> dict[str, str]:
        return await self.command("STOP")

    async def reset(self) -> dict[str, str]:
        return await self.command("RESET")

    async def emergency_stop(self) -> None:
        """ESTOP at once, without waiting for any command in flight."""
        self._write("ESTOP")

    def _drain_events(self) -> None:
        while not self._events.empty():
            self._events.get_nowait()

    async def _next_event(self, names: tuple[str, ...], timeout: float | None) -> Message:
        while True:
            if self._link_error is not None:
                raise self._link_error
            async with asyncio.timeout(timeout):
                event = await self._events.get()
            if event.name == "LINK_LOST":
                raise RigError(f"rig port {self.port} lost: {event.fields['why']}")
            if event.name in names:
                return event

    async def jog(self, distance_mm: float, speed_mm_min: float, *, timeout: float | None = None) -> dict[str, Any]:
        """Move the crosshead by `distance_mm` (positive pulls) and wait until it stops."""
        self._check_speed(speed_mm_min)
        self._drain_events()
        await self.command(f"JOG {distance_mm:g} {speed_mm_min:g}")
        wait = timeout or (abs(distance_mm) / speed_mm_min * 60 + self.command_timeout_s)
        event = await self._next_event(("JOGGED", "FAULT"), wait)
        if event.name == "FAULT":
            raise RigFault(event.fields.get("reason", "?"), event.fields)
        return {"steps": int(event.fields["steps"])}

    def _check_speed(self, speed_mm_min: float) -> None:
        vmax = self.limits.get("vmax")
        if vmax is not None and speed_mm_min > vmax:
            raise ValueError(f"speed {speed_mm_min} mm/min is over the rig's limit of {vmax:g} mm/min")

    # ----- a test ------------------------------------------------------------------------------
    async def run_test(self, params: RigTestParams, *, on_samples: OnSamples | None = None,
                       specimen_id: str | None = None, specimen_type: str | None = None,
                       timeout_s: float | None = None) -> RawCurve:
        """Run one test to its end criterion and return every frame as a raw curve.

        `on_samples` gets batches of frames as they arrive (every `batch_interval_s`). A firmware
        fault (force limit, endstop, watchdog, estop) ends the test: the curve up to it is returned
        with `end_reason = "fault:<reason>"`.
        """
        identity = self.identity or await self.identify()
        for speed in (params.speed_mm_min, params.preload_speed_mm_min, params.speed2_mm_min):
            self._check_speed(speed)
        if params.force_limit_n is not None:
            await self.set_limits(fmax=params.force_limit_n)
        if params.tare:
            await self.tare()
        note = " ".join(f"{k}={v}" for k, v in (("specimen", specimen_id), ("type", specimen_type))
                        if v and " " not in v)
        if note:
            await self.command(f"NOTE {note}")
        self._drain_events()
        link_before = self.link.model_copy()
        frames: list[Frame] = []
        self._collector = frames
        started_at = time.time()
        self._flushed = 0
        self._preloaded = None
        try:
            fields = await self.command(params.start_line())
            first_seq, start_steps = int(fields["seq"]), int(fields["steps"])
            flusher = asyncio.create_task(self._flush_batches(frames, on_samples))
            try:
                end = await self._wait_end(params, timeout_s if timeout_s is not None else self.test_timeout_s)
            finally:
                await _cancel(flusher)
        finally:
            self._collector = None
        if on_samples is not None:
            if self._flushed < len(frames):
                await on_samples(frames[self._flushed:])
        test_frames = [f for f in frames if f.seq >= first_seq]
        end_seq = int(end.fields.get("seq", first_seq + len(test_frames)))
        received = {f.seq for f in test_frames}
        link = self.link.minus(link_before)
        missing_tail = end_seq - (max(received) + 1 if received else first_seq)
        if missing_tail > 0:
            link.missing_frames += missing_tail
            link.seq_gaps += 1
            self.link.missing_frames += missing_tail
            self.link.seq_gaps += 1
        preload_mm = None
        if end.name == "FAULT":
            reason, fault = f"fault:{end.fields.get('reason', '?')}", end.fields.get("reason", "?")
        else:
            reason, fault = end.fields.get("reason", "?"), None
        if self._preloaded is not None:
            preload_mm = (self._preloaded - start_steps) / identity.steps_per_mm
        t0 = test_frames[0].t_us if test_frames else 0
        spm = identity.steps_per_mm
        return RawCurve(
            time_s=[(f.t_us - t0) / 1e6 for f in test_frames],
            displacement_mm=[(f.steps - start_steps) / spm for f in test_frames],
            force_n=[f.force_n for f in test_frames],
            end_reason=reason, fault=fault,
            peak_force_n=max((f.force_n for f in test_frames), default=0.0),
            preload_displacement_mm=preload_mm, link=link, firmware=identity, params=params,
            specimen_id=specimen_id, started_at=started_at,
            complete=link.missing_frames == 0 and link.bad_frames == 0,
        )

    async def _wait_end(self, params: RigTestParams, timeout_s: float | None) -> Message:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                event = await self._next_event(("PRELOADED", "END", "FAULT"), left)
            except asyncio.TimeoutError:
                await self.stop()
                raise RigError(f"test on {self.port} did not end within {timeout_s:g} s; crosshead stopped") from None
            if event.name == "PRELOADED":
                self._preloaded = int(event.fields["steps"])
                continue
            return event

    async def _flush_batches(self, frames: list[Frame], on_samples: OnSamples | None) -> None:
        if on_samples is None:
            return
        while True:
            await asyncio.sleep(self.batch_interval_s)
            upto = len(frames)
            if upto > self._flushed:
                batch = frames[self._flushed:upto]
                self._flushed = upto
                await on_samples(batch)


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel and wait; repeat if the task swallowed the cancellation (possible with 3.11's wait_for)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
