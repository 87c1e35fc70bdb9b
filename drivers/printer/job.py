"""A print job as the driver streams it, and how an interrupted job is resumed."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from .gcode import code_of, words

JobStateName = Literal["streaming", "paused", "done", "failed", "cancelled", "halted", "interrupted"]
FINAL_STATES = {"done", "failed", "cancelled", "halted"}


class ExecutedLine(BaseModel):
    index: int          # position among the file's commands (0-based)
    file_line: int      # 1-based line number in the file
    command: str


class JobResult(BaseModel):
    name: str
    state: JobStateName
    lines: int
    lines_total: int
    bytes: int
    resends: int
    duration_s: float
    lines_per_s: float
    last_executed: ExecutedLine | None
    error: str | None = None
    notes: list[str] = []


@dataclass
class PrintJob:
    name: str
    commands: list[tuple[int, str]]          # (file line number, command)
    cursor: int = 0                          # next command to hand to the sender
    acked: int = -1                          # last command the firmware acknowledged
    state: JobStateName = "streaming"
    error: str | None = None
    resends: int = 0
    bytes_sent: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    notes: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def total(self) -> int:
        return len(self.commands)

    def last_executed(self) -> ExecutedLine | None:
        if self.acked < 0:
            return None
        number, command = self.commands[self.acked]
        return ExecutedLine(index=self.acked, file_line=number, command=command)

    def finish(self, state: JobStateName, error: str | None = None) -> None:
        if self.state in FINAL_STATES:
            return
        self.state = state
        if error and not self.error:
            self.error = error
        if state != "interrupted":
            self.finished = time.monotonic()
        self.done.set()

    def result(self) -> JobResult:
        end = self.finished or time.monotonic()
        duration = max(1e-9, end - self.started)
        return JobResult(name=self.name, state=self.state, lines=self.acked + 1, lines_total=self.total,
                         bytes=self.bytes_sent, resends=self.resends, duration_s=round(duration, 4),
                         lines_per_s=round((self.acked + 1) / duration, 2), last_executed=self.last_executed(),
                         error=self.error, notes=list(self.notes))

    def progress(self) -> dict[str, object]:
        elapsed = time.monotonic() - self.started
        done = self.acked + 1
        rate = done / elapsed if elapsed > 0 else 0.0
        remaining = (self.total - done) / rate if rate > 0 else None
        return {"job": self.name, "state": self.state, "lines": done, "lines_total": self.total,
                "bytes": self.bytes_sent, "percent": round(100.0 * done / max(1, self.total), 2),
                "eta_s": round(remaining, 1) if remaining is not None else None, "resends": self.resends}


class MachineState(BaseModel):
    """What the file had set up by a given line: enough to pick the print up again there."""

    hotend_c: float = 0.0
    bed_c: float = 0.0
    fan: float = 0.0
    absolute: bool = True
    absolute_e: bool = True
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    e: float = 0.0
    feedrate: float = 1500.0


def machine_state_at(commands: list[tuple[int, str]], index: int) -> MachineState:
    state = MachineState()
    for _, command in commands[: index + 1]:
        code = code_of(command)
        params = words(command)

        def value(letter: str, default: float) -> float:
            v = params.get(letter, default)
            return default if math.isnan(v) else v

        if code in ("M104", "M109"):
            state.hotend_c = value("S", value("R", state.hotend_c))
        elif code in ("M140", "M190"):
            state.bed_c = value("S", value("R", state.bed_c))
        elif code == "M106":
            state.fan = value("S", 255.0)
        elif code == "M107":
            state.fan = 0.0
        elif code in ("G90", "G91"):
            state.absolute = state.absolute_e = code == "G90"
        elif code in ("M82", "M83"):
            state.absolute_e = code == "M82"
        elif code == "G92":
            state.x, state.y, state.z = value("X", state.x), value("Y", state.y), value("Z", state.z)
            state.e = value("E", state.e)
        elif code == "G28":
            for axis in [a for a in "XYZ" if a in params] or list("XYZ"):
                setattr(state, axis.lower(), 0.0)
        elif code in ("G0", "G1", "G2", "G3"):
            state.feedrate = value("F", state.feedrate)
            for axis in "xyz":
                if axis.upper() in params:
                    v = value(axis.upper(), 0.0)
                    setattr(state, axis, v if state.absolute else getattr(state, axis) + v)
            if "E" in params:
                v = value("E", 0.0)
                state.e = v if state.absolute_e else state.e + v
    return state


def resume_preamble(state: MachineState) -> list[str]:
    """Re-heat, home X/Y only (the part is under the nozzle), declare Z and E, then go back."""
    lines = []
    if state.bed_c > 0:
        lines.append(f"M140 S{state.bed_c:g}")
    if state.hotend_c > 0:
        lines.append(f"M104 S{state.hotend_c:g}")
    if state.bed_c > 0:
        lines.append(f"M190 S{state.bed_c:g}")
    if state.hotend_c > 0:
        lines.append(f"M109 S{state.hotend_c:g}")
    lines += ["G28 X Y", "G90", f"G92 Z{state.z:.3f} E{state.e:.5f}", "M82" if state.absolute_e else "M83",
              f"G1 X{state.x:.3f} Y{state.y:.3f} F3000", f"G1 F{state.feedrate:g}"]
    if state.fan > 0:
        lines.append(f"M106 S{state.fan:g}")
    if not state.absolute:
        lines.append("G91")
    return lines
