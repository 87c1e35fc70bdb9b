"""The device bus: one async interface over several transports (in-process, MQTT).

    async with connect("mqtt://127.0.0.1:1883", client_id="controller") as bus:
        async with bus.subscribe("labctl/v1/devices/+/state") as states:
            ...
        reply = await bus.request(topics.device_commands("printer-1"), Command(action="status"))
"""

from __future__ import annotations

import uuid

from . import topics
from .base import Bus, BusError, Received, RequestTimeout, Subscription
from .inprocess import InProcessBroker, InProcessBus
from .messages import (
    Command, DeviceInfo, DeviceState, EStop, Event, Message, MessageError, Reply, Telemetry, decode, encode,
)
from .url import BrokerURL, parse_broker_url

__all__ = [
    "Bus", "BusError", "BrokerURL", "Command", "DeviceInfo", "DeviceState", "EStop", "Event", "InProcessBroker",
    "Message", "MessageError", "Received", "Reply", "RequestTimeout", "Subscription", "Telemetry", "connect",
    "decode", "encode", "parse_broker_url", "topics",
]


def connect(url: str | BrokerURL | None = None, *, client_id: str | None = None,
            will: tuple[str, Message] | None = None, **options: object) -> Bus:
    """A bus client for `url` (mqtt://[user:pass@]host:port or memory://name); use `async with`.

    `options` go to the MQTT transport (e.g. persistent=True); the in-process transport has none.
    """
    broker_url = url if isinstance(url, BrokerURL) else parse_broker_url(url)
    client_id = client_id or f"labctl-{uuid.uuid4().hex[:8]}"
    if broker_url.is_memory:
        return InProcessBus(InProcessBroker.named(broker_url.host), client_id, will)
    from .mqtt import MqttBus

    return MqttBus(broker_url, client_id, will, **options)  # type: ignore[arg-type]
