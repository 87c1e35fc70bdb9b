"""The labctl pytest plugin (entry point `labctl`): fixtures for hardware-in-the-loop tests.

Fixtures:
- `mosquitto_broker`: a real Mosquitto process on a free loopback port (a `Mosquitto`; `.url`).
- `embedded_broker`: labctl's embedded amqtt broker on a free port (async; `.url`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ..bus.broker import EmbeddedBroker
from .mosquitto import Mosquitto


@pytest.fixture
def mosquitto_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
async def embedded_broker() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker(port=0) as broker:
        yield broker
