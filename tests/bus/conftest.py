"""The transports every conformance test runs against, unchanged."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiomqtt
import pytest

from labctl.bus import InProcessBroker
from labctl.bus.broker import EmbeddedBroker
from labctl.testing.mosquitto import Mosquitto

RawPublish = Callable[[str, bytes], Awaitable[None]]


@dataclass
class Transport:
    name: str
    url: str
    raw_publish: RawPublish


def _mqtt_raw_publisher(host: str, port: int) -> RawPublish:
    async def publish(topic: str, payload: bytes) -> None:
        async with aiomqtt.Client(host, port, identifier=f"raw-{uuid.uuid4().hex[:6]}") as client:
            await client.publish(topic, payload, qos=1)

    return publish


@pytest.fixture(params=["memory", "amqtt", "mosquitto"])
async def transport(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Transport]:
    if request.param == "memory":
        name = f"t-{uuid.uuid4().hex[:8]}"
        broker = InProcessBroker.named(name)

        async def raw(topic: str, payload: bytes) -> None:
            broker.route(topic, payload, False)

        yield Transport("memory", f"memory://{name}", raw)
    elif request.param == "amqtt":
        async with EmbeddedBroker(port=0) as embedded:
            yield Transport("amqtt", str(embedded.url), _mqtt_raw_publisher(embedded.host, embedded.port))
    else:
        with Mosquitto(tmp_path / "mosquitto") as mosquitto:
            yield Transport("mosquitto", str(mosquitto.url), _mqtt_raw_publisher("127.0.0.1", mosquitto.port))
