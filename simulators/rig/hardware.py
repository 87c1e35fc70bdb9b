"""The rig's hardware, simulated: the same interface firmware/rig/hw_rp2040.py gives the firmware.

A simulated clock (advanced by the simulator, one ADC period at a time), an ADC with offset, gain
error, Gaussian noise and 24-bit clipping, a stepper with exact targets, endstop switches at fixed
crosshead positions, settings kept in memory, and line buffers to the host. Fault injection
(corrupted or dropped frame lines) happens here, on the wire side.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

GRAVITY = 9.80665
ADC_LIMIT = 2 ** 23 - 1


class LoadPath(Protocol):
    broken: bool

    def force_at(self, travel_mm: float) -> float: ...


class SimHardware:
    def __init__(self, *, adc_hz: float, steps_per_mm: int, adc_counts_per_n: float, adc_zero_counts: int,
                 noise_n: float, endstop_min_mm: float, endstop_max_mm: float, seed: int,
                 stored_config: dict[str, Any], corrupt_every: int = 0, drop_every: int = 0,
                 on_command: Callable[[str], None] | None = None) -> None:
        self.now_us = 0
        self.adc_hz = adc_hz
        self.steps_per_mm = steps_per_mm
        self.counts_per_n = adc_counts_per_n
        self.zero_counts = adc_zero_counts
        self.noise_counts = noise_n * adc_counts_per_n
        self.endstop_min_mm = endstop_min_mm
        self.endstop_max_mm = endstop_max_mm
        self.rng = np.random.default_rng(seed)
        self._noise: list[float] = []
        self.config = dict(stored_config)
        self.corrupt_every = corrupt_every
        self.drop_every = drop_every
        self.on_command = on_command
        self.inbox: deque[str] = deque()
        self.outbox: list[str] = []
        self.frames_sent = 0
        self.frames_corrupted = 0
        self.frames_dropped = 0
        self._partial = b""
        self._adc_value: int | None = None
        self.position = 0.0          # steps, fractional between whole steps
        self.rate = 0.0              # steps/s
        self.target: int | None = None
        self.load: LoadPath | None = None
        self.mount_steps = 0         # where the specimen was gripped
        self.hanging_mass_g = 0.0
        self.force_n = 0.0

    # ----- driven by the simulator -----------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes from the host; complete lines become commands for the firmware."""
        buffer = self._partial + data
        *lines, self._partial = buffer.replace(b"\r", b"\n").split(b"\n")
        for line in lines:
            text = line.decode("ascii", "replace").strip()
            if text:
                self.inbox.append(text)

    def advance(self, dt_us: int) -> None:
        """Move the clock by one ADC period: step the motor, load the specimen, take a sample."""
        self.now_us += dt_us
        if self.rate:
            new = self.position + self.rate * dt_us / 1e6
            if self.target is not None and (self.rate > 0) == (new >= self.target):
                new = float(self.target)
                self.rate = 0.0
                self.target = None
            self.position = new
        travel = (math.floor(self.position) - self.mount_steps) / self.steps_per_mm
        force = self.load.force_at(travel) if self.load is not None else 0.0
        self.force_n = force + self.hanging_mass_g / 1000 * GRAVITY
        if not self._noise:
            self._noise = self.rng.standard_normal(4096).tolist()
        counts = self.zero_counts + self.force_n * self.counts_per_n + self.noise_counts * self._noise.pop()
        self._adc_value = int(max(-ADC_LIMIT - 1, min(ADC_LIMIT, round(counts))))

    def take_output(self) -> bytes:
        data = "".join(self.outbox).encode()
        self.outbox.clear()
        return data

    @property
    def crosshead_mm(self) -> float:
        return math.floor(self.position) / self.steps_per_mm

    # ----- the firmware's hardware interface ---------------------------------------------------
    def micros(self) -> int:
        return self.now_us

    def millis(self) -> int:
        return self.now_us // 1000

    def host_millis(self) -> int:
        # Host silence is measured on the wall clock: the host lives in real time, whatever --speed says.
        return int(time.monotonic() * 1000)

    def read_line(self) -> str | None:
        if not self.inbox:
            return None
        line = self.inbox.popleft()
        if self.on_command is not None:
            self.on_command(line)
        return line

    def write(self, text: str) -> None:
        if text.startswith("D,"):
            self.frames_sent += 1
            if self.drop_every and self.frames_sent % self.drop_every == 0:
                self.frames_dropped += 1
                return
            if self.corrupt_every and self.frames_sent % self.corrupt_every == 0:
                self.frames_corrupted += 1
                # One flipped digit in the force field: the kind of error a noisy UART makes.
                cut = text.rindex("*") - 2
                digit = text[cut]
                text = text[:cut] + ("7" if digit != "7" else "3") + text[cut + 1:]
        self.outbox.append(text)

    def adc_read(self) -> int | None:
        value, self._adc_value = self._adc_value, None
        return value

    def adc_rate(self) -> float:
        return self.adc_hz

    def motor_run(self, rate: float, target: int | None) -> None:
        self.rate = float(rate)
        self.target = target
        if target is not None and math.floor(self.position) == target:
            self.rate = 0.0
            self.target = None

    def motor_stop(self) -> None:
        self.rate = 0.0
        self.target = None
        self.position = float(math.floor(self.position))

    def motor_position(self) -> int:
        return math.floor(self.position)

    def motor_rate(self) -> float:
        return self.rate

    def endstop_min(self) -> bool:
        return self.crosshead_mm <= self.endstop_min_mm

    def endstop_max(self) -> bool:
        return self.crosshead_mm >= self.endstop_max_mm

    def load_config(self) -> dict[str, Any]:
        return dict(self.config)

    def save_config(self, cfg: dict[str, Any]) -> None:
        self.config = dict(cfg)
