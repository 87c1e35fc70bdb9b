"""What the firmware says about itself (M115) and what the driver does when a capability is missing."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

# Capability -> what the driver falls back to without it.
DEGRADATIONS = {
    "EMERGENCY_PARSER": "emergency stop (M112) waits behind the lines already queued in the firmware",
    "AUTOREPORT_TEMP": "temperatures are polled with M105 instead of reported by the firmware",
    "HOST_ACTION_COMMANDS": "pauses and prompts started on the printer are not seen by the host",
    "THERMAL_PROTECTION": "a runaway heater is not stopped by the firmware; do not print unattended",
}


class FirmwareInfo(BaseModel):
    name: str = "unknown"
    fields: dict[str, str] = Field(default_factory=dict)
    capabilities: dict[str, bool] = Field(default_factory=dict)
    advanced_ok: bool = False

    def has(self, cap: str) -> bool:
        return self.capabilities.get(cap, False)

    def degradations(self) -> list[str]:
        notes = [f"no {cap}: {what}" for cap, what in DEGRADATIONS.items() if not self.has(cap)]
        if not self.advanced_ok:
            notes.append("no ADVANCED_OK: flow control counts unacknowledged bytes against the configured RX buffer")
        return notes


_FIELD = re.compile(r"([A-Z_]+):(.*?)(?= [A-Z_]+:|$)")


def parse_m115(lines: list[str]) -> FirmwareInfo:
    info = FirmwareInfo()
    for line in lines:
        if line.startswith("FIRMWARE_NAME:"):
            info.fields = {key: value.strip() for key, value in _FIELD.findall(line)}
            info.name = info.fields.get("FIRMWARE_NAME", "unknown")
        elif line.startswith("Cap:"):
            parts = line[4:].rsplit(":", 1)
            if len(parts) == 2:
                info.capabilities[parts[0]] = parts[1].strip() == "1"
    return info
