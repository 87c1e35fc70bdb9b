"""Bus messages: versioned pydantic models serialised as JSON.

Every message carries a schema version, its type, the source that sent it, a timestamp and a
unique id (receivers use the id to drop the duplicates QoS 1 may deliver). Requests also carry a
correlation id and the topic to reply to.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 256 * 1024


class MessageError(ValueError):
    """A payload that is not a valid labctl message (malformed, oversized, wrong version, unknown type)."""


def _new_id() -> str:
    return uuid.uuid4().hex


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    type: str
    source: str = ""
    ts: float = Field(default_factory=time.time)
    id: str = Field(default_factory=_new_id)


class Command(Message):
    """A request to a device host (or any responder): `action` with `params`."""

    type: Literal["command"] = "command"
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    correlation_id: str = Field(default_factory=_new_id)
    reply_to: str | None = None


class Reply(Message):
    type: Literal["reply"] = "reply"
    correlation_id: str
    ok: bool
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


DeviceStatus = Literal["online", "busy", "offline", "fault", "estopped"]


class DeviceInfo(BaseModel):
    """What a device host announces about its device (retained on devices/<id>/state)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    kind: Literal["printer", "liquid_handler", "rig", "opentrons"] | str
    driver: str
    simulated: bool = False
    capabilities: list[str] = Field(default_factory=list)
    limits: dict[str, Any] = Field(default_factory=dict)
    firmware: str | None = None
    host: str | None = None


class DeviceState(Message):
    type: Literal["state"] = "state"
    device: DeviceInfo
    status: DeviceStatus
    detail: dict[str, Any] = Field(default_factory=dict)


class Telemetry(Message):
    type: Literal["telemetry"] = "telemetry"
    stream: str
    data: dict[str, Any] = Field(default_factory=dict)
    seq: int = 0


class EStop(Message):
    type: Literal["estop"] = "estop"
    reason: str = "emergency stop"


class Event(Message):
    """A job, campaign or device event (progress, transitions, reports)."""

    type: Literal["event"] = "event"
    name: str
    data: dict[str, Any] = Field(default_factory=dict)


AnyMessage = Annotated[
    Union[Command, Reply, DeviceState, Telemetry, EStop, Event], Field(discriminator="type")
]
_adapter: TypeAdapter[Any] = TypeAdapter(AnyMessage)


def encode(message: Message) -> bytes:
    data = message.model_dump_json().encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise MessageError(f"{message.type} message is {len(data)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit")
    return data


def decode(payload: bytes | bytearray | str) -> Message:
    """Parse a payload; raises MessageError naming what was wrong."""
    if isinstance(payload, str):
        payload = payload.encode()
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise MessageError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit")
    try:
        return _adapter.validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
        raise MessageError(f"invalid message at {where}: {first.get('msg')}") from None
