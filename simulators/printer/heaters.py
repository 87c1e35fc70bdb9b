"""First-order heater models with Marlin's thermal protection (watch period, runaway, MAXTEMP)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

AMBIENT_C = 25.0


class ThermalError(Exception):
    """A Marlin thermal protection trip; the message is Marlin's own text."""


@dataclass
class Heater:
    heater_id: str            # "E0" or "bed", as Marlin prints it in Heater_ID
    label: str                # "T" or "B" in temperature reports
    equilibrium_c: float      # temperature at full power forever
    tau_s: float              # first-order time constant
    max_temp_c: float
    watch_period_s: float     # WATCH_TEMP_PERIOD / WATCH_BED_TEMP_PERIOD
    watch_increase_c: float   # WATCH_TEMP_INCREASE
    runaway_period_s: float   # THERMAL_PROTECTION_PERIOD
    runaway_hysteresis_c: float
    protection: bool = True
    temp_c: float = AMBIENT_C
    target_c: float = 0.0
    power: float = 0.0
    failed: bool = False      # fault injection: the element no longer heats
    _reached: bool = False
    _watch_deadline: float | None = None
    _watch_temp: float = 0.0
    _runaway_since: float | None = None
    history: list[tuple[float, float]] = field(default_factory=list)

    def set_target(self, target_c: float, now: float) -> None:
        self.target_c = max(0.0, target_c)
        self._runaway_since = None
        if self.target_c <= 0:
            self._reached = False
            self._watch_deadline = None
            return
        if self.temp_c < self.target_c - self.runaway_hysteresis_c:
            # Marlin's start_watching_heater(): the temperature must rise within the watch period.
            self._reached = False
            self._watch_deadline = now + self.watch_period_s
            self._watch_temp = self.temp_c + self.watch_increase_c

    def step(self, dt: float, now: float) -> None:
        """Advance the model by dt seconds (dt small) and apply thermal protection."""
        if self.target_c > 0 and not self.failed:
            error = self.target_c - self.temp_c
            hold = (self.target_c - AMBIENT_C) / (self.equilibrium_c - AMBIENT_C)
            self.power = min(1.0, max(0.0, hold + error / 4.0))
        else:
            self.power = 0.0
        drive = self.power * (self.equilibrium_c - AMBIENT_C) - (self.temp_c - AMBIENT_C)
        self.temp_c += drive * (1.0 - math.exp(-dt / self.tau_s))
        if self.temp_c > self.max_temp_c:
            raise ThermalError(f"MAXTEMP triggered, system stopped! Heater_ID: {self.heater_id}")
        if not self.protection or self.target_c <= 0:
            return
        if not self._reached and self.temp_c >= self.target_c - 1.0:
            self._reached = True
            self._watch_deadline = None
        if self._watch_deadline is not None and now >= self._watch_deadline:
            if self.temp_c < self._watch_temp:
                raise ThermalError(f"Heating failed, system stopped! Heater_ID: {self.heater_id}")
            self._watch_deadline = now + self.watch_period_s
            self._watch_temp = self.temp_c + self.watch_increase_c
        if self._reached:
            if self.temp_c < self.target_c - self.runaway_hysteresis_c:
                if self._runaway_since is None:
                    self._runaway_since = now
                elif now - self._runaway_since >= self.runaway_period_s:
                    raise ThermalError(f"Thermal Runaway, system stopped! Heater_ID: {self.heater_id}")
            else:
                self._runaway_since = None

    def off(self) -> None:
        self.target_c = 0.0
        self.power = 0.0
        self._reached = False
        self._watch_deadline = None
        self._runaway_since = None

    @property
    def pwm(self) -> int:
        return int(round(self.power * 127))


def make_hotend(max_temp_c: float, protection: bool) -> Heater:
    return Heater("E0", "T", equilibrium_c=320.0, tau_s=20.0, max_temp_c=max_temp_c, watch_period_s=40.0,
                  watch_increase_c=2.0, runaway_period_s=40.0, runaway_hysteresis_c=4.0, protection=protection)


def make_bed(max_temp_c: float, protection: bool) -> Heater:
    return Heater("bed", "B", equilibrium_c=140.0, tau_s=60.0, max_temp_c=max_temp_c, watch_period_s=60.0,
                  watch_increase_c=2.0, runaway_period_s=20.0, runaway_hysteresis_c=2.0, protection=protection)


def format_temperatures(hotend: Heater, bed: Heater) -> str:
    """Marlin's print_heater_states(): ` T:210.00 /210.00 B:60.00 /60.00 @:127 B@:0`."""
    return (f" T:{hotend.temp_c:.2f} /{hotend.target_c:.2f} B:{bed.temp_c:.2f} /{bed.target_c:.2f}"
            f" @:{hotend.pwm} B@:{bed.pwm}")
