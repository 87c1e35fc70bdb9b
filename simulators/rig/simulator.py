"""The tensile rig, simulated on a pseudo-terminal: the real firmware logic against a specimen model.

    async with RigSimulator(RigSimConfig(speed=50)) as sim:
        sim.port_path        # a PTY (symlinked at config.link if given) any serial client can open
        sim.mount(PrintParams(material="PETG"), specimen_id="S-1")   # the next specimen to test
        sim.hang_mass(1000)  # a calibration mass on the load cell (grams); hang_mass(0) removes it

firmware/rig/rigctl.py runs unchanged; simulators/rig/hardware.py stands in for the board. Each
START grips a fresh specimen: the queued one (`mount()`) whose id the host named in its
`NOTE specimen=<id> type=<type>` line, else the next queued one, else one of the NOTE's type (or the
config's) made from the config's print parameters with the next seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import tty
from collections import deque
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from firmware.rig import rigctl

from .hardware import SimHardware
from .material import PrintParams
from .specimen import MountedSpecimen, RigidBar

log = logging.getLogger("simulators.rig")

_MAX_BACKLOG = 4 * 1024 * 1024


class RigSimConfig(BaseModel):
    """Everything about the simulated rig and the specimens it will be given."""

    model_config = ConfigDict(extra="forbid")

    link: Path | None = Field(None, description="Symlink to create at this path, pointing at the PTY.")
    speed: float = Field(1.0, gt=0, le=10000, description="Simulated seconds per wall-clock second (a maximum).")
    adc_hz: float = Field(1000.0, gt=0, le=30000, description="ADC sample rate (an ADS1256 reaches kHz).")
    noise_n: float = Field(0.05, ge=0, description="Load-cell noise, N rms.")
    load_cell_counts_per_n: float = Field(1030.0, gt=0, description="True ADC gain (counts per newton).")
    load_cell_zero_counts: int = Field(12345, description="True ADC reading with no load.")
    calibrated: bool = Field(True, description="Start with the firmware holding the true calibration "
                                                "(else its factory value: 3 % gain error, no tare).")
    steps_per_mm: int = Field(3200, gt=0)
    frame_stiffness_n_per_mm: float = Field(762.0, gt=0, description="Machine (frame + grips + load cell) stiffness.")
    slack_mm: float = Field(0.02, ge=0, description="Grip slack taken up before the specimen carries load.")
    endstop_min_mm: float = Field(-15.0, description="Lower endstop switch, mm from power-on position.")
    endstop_max_mm: float = Field(140.0, description="Upper endstop switch, mm from power-on position.")
    specimen_type: str = Field("iso527-1ba", description="Specimen type used when none was mounted explicitly.")
    print_params: PrintParams = Field(default_factory=PrintParams)
    failure: Literal["auto", "brittle", "ductile"] = "auto"
    seed: int = 1
    corrupt_every: int = Field(0, ge=0, description="Corrupt every Nth frame on the wire (0 = never).")
    drop_every: int = Field(0, ge=0, description="Drop every Nth frame on the wire (0 = never).")


class MountRequest(BaseModel):
    specimen_type: str
    params: PrintParams
    seed: int
    specimen_id: str | None = None
    failure: Literal["auto", "brittle", "ductile"] = "auto"
    rigid: bool = False


class RigSimulator:
    def __init__(self, config: RigSimConfig | None = None) -> None:
        self.config = config or RigSimConfig()
        cfg = self.config
        stored = {"scale": cfg.load_cell_counts_per_n, "zero": cfg.load_cell_zero_counts, "calmass": 1000.0,
                  "spm": cfg.steps_per_mm} if cfg.calibrated else {"spm": cfg.steps_per_mm}
        self.hw = SimHardware(adc_hz=cfg.adc_hz, steps_per_mm=cfg.steps_per_mm,
                              adc_counts_per_n=cfg.load_cell_counts_per_n, adc_zero_counts=cfg.load_cell_zero_counts,
                              noise_n=cfg.noise_n, endstop_min_mm=cfg.endstop_min_mm,
                              endstop_max_mm=cfg.endstop_max_mm, seed=cfg.seed, stored_config=stored,
                              corrupt_every=cfg.corrupt_every, drop_every=cfg.drop_every,
                              on_command=self._on_command)
        self.firmware = rigctl.Rig(self.hw)
        self.queue: deque[MountRequest] = deque()
        self.specimens: list[MountedSpecimen | RigidBar] = []
        self._note: dict[str, str] = {}
        self._next_seed = cfg.seed
        self._master = self._slave = -1
        self.port_path = ""
        self.pty_name = ""
        self._task: asyncio.Task[None] | None = None
        self._backlog = bytearray()
        self._writer_armed = False
        self.bytes_dropped = 0

    # ----- specimens ---------------------------------------------------------------------------
    def mount(self, params: PrintParams | None = None, *, specimen_type: str | None = None,
              specimen_id: str | None = None, seed: int | None = None,
              failure: Literal["auto", "brittle", "ductile"] | None = None) -> None:
        """Queue the specimen the next START will pull (a technician loading the grips)."""
        from protocols.specimens import get_specimen

        kind = get_specimen(specimen_type or self.config.specimen_type).name  # fails early on a bad name
        self.queue.append(MountRequest(specimen_type=kind, params=params or self.config.print_params,
                                       seed=self._take_seed() if seed is None else seed, specimen_id=specimen_id,
                                       failure=failure or self.config.failure))

    def mount_rigid_bar(self) -> None:
        """Queue a rigid bar: pulling it measures the frame's own compliance."""
        self.queue.append(MountRequest(specimen_type=self.config.specimen_type, params=self.config.print_params,
                                       seed=0, rigid=True))

    def hang_mass(self, grams: float) -> None:
        self.hw.hanging_mass_g = grams

    @property
    def specimen(self) -> MountedSpecimen | RigidBar | None:
        return self.specimens[-1] if self.specimens else None

    def _take_seed(self) -> int:
        seed = self._next_seed
        self._next_seed += 1
        return seed

    def _on_command(self, line: str) -> None:
        verb = line.split()[0].upper()
        if verb == "NOTE":
            self._note = dict(word.split("=", 1) for word in line.split()[1:] if "=" in word)
        elif verb == "START" and self.firmware.state == rigctl.IDLE:
            self._grip_next()

    def _grip_next(self) -> None:
        """The simulated technician grips the specimen the host's NOTE names, else the next queued one."""
        cfg = self.config
        note, self._note = self._note, {}
        wanted = note.get("specimen")
        request = next((r for r in self.queue if wanted and r.specimen_id == wanted), None)
        if request is not None:
            self.queue.remove(request)
        elif self.queue:
            request = self.queue.popleft()
        else:
            kind = cfg.specimen_type
            with contextlib.suppress(Exception):
                from protocols.specimens import get_specimen

                kind = get_specimen(note.get("type", kind)).name
            request = MountRequest(specimen_type=kind, params=cfg.print_params, seed=self._take_seed(),
                                   failure=cfg.failure, specimen_id=wanted)
        if request.rigid:
            load: MountedSpecimen | RigidBar = RigidBar(frame_stiffness_n_per_mm=cfg.frame_stiffness_n_per_mm)
        else:
            load = MountedSpecimen(request.specimen_type, request.params, request.seed,
                                   frame_stiffness_n_per_mm=cfg.frame_stiffness_n_per_mm, slack_mm=cfg.slack_mm,
                                   failure=None if request.failure == "auto" else request.failure,
                                   specimen_id=request.specimen_id)
        self.hw.load = load
        self.hw.mount_steps = self.hw.motor_position()
        self.specimens.append(load)

    # ----- running -----------------------------------------------------------------------------
    async def __aenter__(self) -> RigSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.pty_name = self.port_path = os.ttyname(self._slave)
        if self.config.link is not None:
            link = Path(self.config.link)
            if link.is_symlink() or link.exists():
                if not link.is_symlink():
                    raise FileExistsError(f"{link} exists and is not a symlink; refusing to replace it")
                link.unlink()
            link.symlink_to(self.port_path)
            self.port_path = str(link)
        loop = asyncio.get_running_loop()
        loop.add_reader(self._master, self._on_readable)
        self._task = asyncio.create_task(self._run(), name="rig-simulator")

    async def stop(self) -> None:
        crash: BaseException | None = None
        if self._task is not None:
            if self._task.done() and not self._task.cancelled():
                crash = self._task.exception()
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        loop = asyncio.get_running_loop()
        if self._master >= 0:
            loop.remove_reader(self._master)
            if self._writer_armed:
                loop.remove_writer(self._master)
        if self.config.link is not None and Path(self.config.link).is_symlink():
            Path(self.config.link).unlink()
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if crash is not None:
            raise RuntimeError(f"rig simulator crashed: {crash!r}") from crash

    async def serve_forever(self) -> None:
        assert self._task is not None
        await self._task

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        self.hw.feed(data)

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except BaseException:
            # A crashed rig goes silent and drops its port, as hardware would; stop() re-raises.
            log.exception("rig simulator crashed")
            with contextlib.suppress(OSError):
                asyncio.get_running_loop().remove_reader(self._master)
                os.close(self._slave)
                os.close(self._master)
            self._master = self._slave = -1
            raise

    async def _loop(self) -> None:
        hw, firmware = self.hw, self.firmware
        tick_us = max(1, round(1e6 / self.config.adc_hz))
        speed = self.config.speed
        wall0 = time.monotonic()
        sim0 = hw.now_us
        while True:
            due = sim0 + (time.monotonic() - wall0) * speed * 1e6
            budget = 500  # ticks between yields, so the host side stays responsive
            while hw.now_us + tick_us <= due and budget:
                hw.advance(tick_us)
                firmware.poll()
                budget -= 1
            if not budget:
                # Cannot keep up: run flat out, but never let the backlog of owed time grow without bound.
                wall0 = time.monotonic()
                sim0 = hw.now_us
            firmware.poll()  # commands that arrived since the last sample
            self._send(hw.take_output())
            wait = (hw.now_us + tick_us - due) / speed / 1e6
            await asyncio.sleep(max(0.0005, min(wait, 0.01)) if budget else 0)

    def _send(self, data: bytes) -> None:
        if data:
            self._backlog += data
        if not self._backlog:
            return
        if len(self._backlog) > _MAX_BACKLOG:
            # Nobody reads the port: a real UART would lose these bytes too.
            drop = len(self._backlog) - _MAX_BACKLOG
            self.bytes_dropped += drop
            del self._backlog[:drop]
        try:
            written = os.write(self._master, self._backlog)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError:
            written = len(self._backlog)  # no reader attached: the bytes go nowhere
        del self._backlog[:written]
        loop = asyncio.get_running_loop()
        if self._backlog and not self._writer_armed:
            loop.add_writer(self._master, self._send, b"")
            self._writer_armed = True
        elif not self._backlog and self._writer_armed:
            loop.remove_writer(self._master)
            self._writer_armed = False
