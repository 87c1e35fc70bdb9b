"""The rig's line protocol, host side (firmware/rig/PROTOCOL.md): checksums and line parsing.

Written independently of the firmware's own code so a mistake on either side shows up as a
checksum failure in the tests instead of cancelling out.
"""

from __future__ import annotations

import binascii
from typing import NamedTuple


class Frame(NamedTuple):
    seq: int
    t_us: int
    steps: int
    raw: int
    force_n: float


class Message(NamedTuple):
    """A reply (`OK`/`ERR`) or an event (`E`): kind, verb or event name, key=value fields."""

    kind: str
    name: str
    fields: dict[str, str]


class LineError(ValueError):
    """A line with a bad checksum or a shape the protocol does not have."""

    def __init__(self, message: str, *, is_frame: bool) -> None:
        super().__init__(message)
        self.is_frame = is_frame


def checksum(body: str) -> str:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) as four upper-case hex digits."""
    return "%04X" % binascii.crc_hqx(body.encode("ascii", "replace"), 0xFFFF)


def seal(body: str) -> str:
    return f"{body}*{checksum(body)}\n"


def parse_line(line: str) -> Frame | Message:
    """Check the checksum and parse one line (without its newline)."""
    star = line.rfind("*")
    is_frame = line.startswith("D,")
    if star < 0 or len(line) - star != 5:
        raise LineError(f"no checksum in {line[:60]!r}", is_frame=is_frame)
    body, sent = line[:star], line[star + 1:]
    if checksum(body) != sent.upper():
        raise LineError(f"bad checksum {sent} (expected {checksum(body)}) in {line[:60]!r}", is_frame=is_frame)
    if is_frame:
        parts = body.split(",")
        if len(parts) != 6:
            raise LineError(f"frame with {len(parts) - 1} fields, expected 5: {line[:60]!r}", is_frame=True)
        try:
            return Frame(int(parts[1]), int(parts[2]), int(parts[3]), int(parts[4]), float(parts[5]))
        except ValueError:
            raise LineError(f"frame with a non-number: {line[:60]!r}", is_frame=True) from None
    words = body.split()
    if len(words) < 2 or words[0] not in ("OK", "ERR", "E"):
        raise LineError(f"unknown line {line[:60]!r}", is_frame=False)
    fields = {}
    for word in words[2:]:
        key, eq, value = word.partition("=")
        if eq:
            fields[key] = value
    return Message(words[0], words[1], fields)
