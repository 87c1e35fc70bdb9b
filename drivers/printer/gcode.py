"""G-code text: comments, framing (`N<n> <cmd>*<cs>`), words, and which commands run long."""

from __future__ import annotations

import re

_WORD = re.compile(r"([A-Za-z])\s*([-+]?\d*\.?\d+)?")


def strip_line(raw: str) -> str:
    """The command as a host must send it: no comment, no surrounding blanks ('' for none)."""
    semicolon = raw.find(";")
    if semicolon >= 0:
        raw = raw[:semicolon]
    paren = raw.find("(")
    if paren >= 0 and raw.strip().startswith(("G", "M", "T")):
        raw = re.sub(r"\([^)]*\)", "", raw)
    return raw.strip()


def checksum(text: str) -> int:
    value = 0
    for byte in text.encode("ascii", "replace"):
        value ^= byte
    return value


def frame(line_number: int, command: str) -> bytes:
    """`N12 G1 X1*cs\\n`: the checksum is the XOR of every byte before `*`."""
    body = f"N{line_number} {command}"
    return f"{body}*{checksum(body)}\n".encode("ascii", "replace")


def code_of(command: str) -> str:
    """`G1`, `M104`, `T0`... upper-cased; '' for an empty command."""
    head = command.split(None, 1)[0] if command else ""
    return head.upper()


def words(command: str) -> dict[str, float]:
    """Parameter letters and values after the code (a bare letter maps to nan)."""
    found: dict[str, float] = {}
    rest = command.split(None, 1)
    if len(rest) < 2:
        return found
    for letter, value in _WORD.findall(rest[1]):
        found[letter.upper()] = float(value) if value else float("nan")
    return found


# Seconds to wait for the `ok` of a command that legitimately takes long when the firmware sends
# no keepalive (HOST_KEEPALIVE off). None: waits for a person, no time-out.
LONG_COMMAND_TIMEOUTS: dict[str, float | None] = {
    "G28": 180.0, "G29": 600.0, "M109": 900.0, "M190": 1200.0, "M400": 900.0, "M303": 1200.0,
    "M600": None, "M0": None, "M1": None, "M84": 120.0,
}


def command_timeout(command: str, default: float) -> float | None:
    code = code_of(command)
    if code == "G4":
        params = words(command)
        seconds = params.get("S", 0.0) if "S" in params else params.get("P", 0.0) / 1000.0
        return max(default, seconds + default)
    return LONG_COMMAND_TIMEOUTS.get(code, default)
