"""The safety envelope: a file is checked against the printer's limits before a byte is sent."""

from __future__ import annotations

import math
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from .gcode import code_of, strip_line, words

# Commands a print file must never contain, with the reason given to the user.
DENY_LIST: dict[str, str] = {
    "M500": "writes settings to EEPROM (a print file must not change the printer's stored configuration)",
    "M502": "resets the printer's settings to factory defaults",
    "M997": "starts a firmware update",
    "M303": "runs PID autotuning (heats unattended)",
    "M112": "emergency stop inside a file (use labctl's emergency stop instead)",
    "M110": "resets line numbers, which the driver owns",
    "M999": "restarts the firmware after a halt",
    "M928": "starts SD logging",
    "M30": "deletes a file on the SD card",
}


class PrinterLimits(BaseModel):
    """What this printer may be asked to do."""

    model_config = ConfigDict(extra="forbid")

    max_hotend_c: float = 260.0
    max_bed_c: float = 110.0
    build_volume_mm: tuple[float, float, float] = (250.0, 210.0, 210.0)
    min_position_mm: tuple[float, float, float] = (-2.0, -4.0, -0.2)   # nozzle wipe / purge lines
    max_feedrate_mm_min: float = 12000.0
    deny: dict[str, str] = Field(default_factory=lambda: dict(DENY_LIST))


class Violation(BaseModel):
    line: int          # 1-based line in the file
    command: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.command!r}: {self.reason}"


class EnvelopeError(ValueError):
    """The file was refused; nothing was sent. `violations` name each line and reason."""

    def __init__(self, source: str, violations: list[Violation]) -> None:
        self.source = source
        self.violations = violations
        shown = "; ".join(str(v) for v in violations[:5])
        more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
        super().__init__(f"{source} refused: {shown}{more}")


def check_gcode(lines: Iterable[str], limits: PrinterLimits | None = None, *, source: str = "G-code",
                max_violations: int = 50) -> list[tuple[int, str]]:
    """Check every line; return [(file line number, command)] to send, or raise EnvelopeError."""
    limits = limits or PrinterLimits()
    commands: list[tuple[int, str]] = []
    violations: list[Violation] = []
    absolute = True
    position = {"X": 0.0, "Y": 0.0, "Z": 0.0}
    offset = {"X": 0.0, "Y": 0.0, "Z": 0.0}   # G92 shifts logical against machine coordinates
    lows = dict(zip("XYZ", limits.min_position_mm))
    highs = dict(zip("XYZ", limits.build_volume_mm))

    def refuse(number: int, command: str, reason: str) -> None:
        violations.append(Violation(line=number, command=command, reason=reason))

    for number, raw in enumerate(lines, start=1):
        command = strip_line(raw)
        if not command:
            continue
        if not command.isascii():
            refuse(number, command, "contains non-ASCII characters")
            continue
        if len(command) > 90:
            refuse(number, command[:40] + "...", "longer than Marlin's 96-byte command buffer once framed")
            continue
        code = code_of(command)
        params = words(command)
        if code in limits.deny:
            refuse(number, command, limits.deny[code])
        elif code in ("M104", "M109") and params.get("S", params.get("R", 0.0)) > limits.max_hotend_c:
            refuse(number, command, f"hotend {params.get('S', params.get('R'))} C exceeds the limit {limits.max_hotend_c:g} C")
        elif code in ("M140", "M190") and params.get("S", params.get("R", 0.0)) > limits.max_bed_c:
            refuse(number, command, f"bed {params.get('S', params.get('R'))} C exceeds the limit {limits.max_bed_c:g} C")
        elif code in ("G90", "G91"):
            absolute = code == "G90"
        elif code == "G92":
            for axis in "XYZ":
                if axis in params and not math.isnan(params[axis]):
                    offset[axis] = position[axis] - params[axis]
        elif code == "G28":
            for axis in [a for a in "XYZ" if a in params] or list("XYZ"):
                position[axis] = 0.0
                offset[axis] = 0.0
        elif code in ("G0", "G1", "G2", "G3"):
            feed = params.get("F")
            if feed is not None and feed > limits.max_feedrate_mm_min:
                refuse(number, command, f"feed rate F{feed:g} exceeds the limit F{limits.max_feedrate_mm_min:g} mm/min")
            for axis in "XYZ":
                value = params.get(axis)
                if value is None or math.isnan(value):
                    continue
                position[axis] = value + offset[axis] if absolute else position[axis] + value
                if not lows[axis] <= position[axis] <= highs[axis]:
                    refuse(number, command, f"{axis}={position[axis]:.2f} mm is outside the build volume "
                                            f"[{lows[axis]:g}, {highs[axis]:g}] mm")
        commands.append((number, command))
        if len(violations) >= max_violations:
            break
    if violations:
        raise EnvelopeError(source, violations)
    return commands
