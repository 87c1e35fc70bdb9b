"""The lab configuration (TOML), validated by pydantic; errors name the file, the key and the reason.

    [broker]
    url = "mqtt://controller:secret@lab-broker:1883"   # omit to start the embedded broker
    listen = "127.0.0.1:1883"                           # where the embedded broker listens

    [storage]
    dir = "labctl-data"

    [[devices]]
    id = "printer-1"
    kind = "printer"
    driver = "marlin"                 # or "module.path:factory" for a lab's own driver
    port = "/dev/ttyACM0"
    baud = 250000
    [devices.limits]
    nozzle_max_C = 280
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A lab configuration that cannot be used; the message names file, key and reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerConfig(_Strict):
    url: str | None = None
    listen: str = "127.0.0.1:1883"


class StorageConfig(_Strict):
    dir: Path = Path("labctl-data")


class DeviceConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    kind: Literal["printer", "rig", "liquid_handler", "opentrons"]
    driver: str
    simulated: bool = False
    port: str | None = None
    url: str | None = None
    baud: int | None = Field(default=None, gt=0)
    limits: dict[str, Any] = Field(default_factory=dict)
    materials: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)


class LabConfig(_Strict):
    name: str = "lab"
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    devices: list[DeviceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> "LabConfig":
        seen: set[str] = set()
        for index, device in enumerate(self.devices):
            if device.id in seen:
                raise ValueError(f"devices[{index}].id: {device.id!r} is used by another device")
            seen.add(device.id)
        return self


def _describe(error: dict[str, Any]) -> str:
    path = ""
    for part in error.get("loc", ()):
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return f"{path or '<top level>'}: {error.get('msg')}"


def load_config(path: str | Path) -> LabConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such lab configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return LabConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: " + "; ".join(_describe(e) for e in exc.errors())) from None
