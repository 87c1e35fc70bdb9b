"""Helpers shared by the printer tests (G-code loads, executed-log filters)."""

from __future__ import annotations

import math

from simulators.printer import MarlinSimulator


def arc_gcode(segments: int, *, feed_mm_min: float = 3000.0, radius: float = 20.0, heat: bool = False) -> list[str]:
    """Dense 0.1 mm segments around a circle: the load that makes one-line-in-flight hosts stutter."""
    cx = cy = radius + 2.0
    lines = ["G28", "G90", "M83", f"G1 X{cx + radius:.3f} Y{cy:.3f} Z0.2 F6000", f"G1 F{feed_mm_min:g}"]
    if heat:
        lines[:0] = ["M140 S60", "M104 S200", "M190 S60", "M109 S200"]
    step = 0.1 / radius
    for i in range(1, segments + 1):
        angle = i * step
        lines.append(f"G1 X{cx + radius * math.cos(angle):.3f} Y{cy + radius * math.sin(angle):.3f} E0.00333")
    return lines


def numbered_commands(sim: MarlinSimulator) -> list[str]:
    """What the firmware executed from numbered lines (the driver's own bare M105 syncs left out)."""
    return [text for number, text in sim.fw.executed if number is not None]


def after_handshake(commands: list[str]) -> list[str]:
    """Drop the driver's handshake (M110, M115, M155) from an executed log."""
    index = 0
    while index < len(commands) and commands[index].split()[0] in ("M110", "M115", "M155"):
        index += 1
    return commands[index:]
