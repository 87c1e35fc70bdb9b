"""The embedded MQTT broker (amqtt) that `labctl serve` starts when no external broker is given."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from .url import BrokerURL

log = logging.getLogger("labctl.bus.broker")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """An amqtt broker on host:port, owned by an async context manager.

    >>> async with EmbeddedBroker(port=0) as broker:   # 0 picks a free port
    ...     print(broker.url)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._broker: Any = None

    @property
    def url(self) -> BrokerURL:
        return BrokerURL("mqtt", self.host, self.port)

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 1000}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

    async def start(self) -> "EmbeddedBroker":
        from amqtt.broker import Broker

        # amqtt logs every connection at INFO; keep the controller's log readable.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._broker = Broker(self._config())
        try:
            await self._broker.start()
        except Exception as exc:
            raise RuntimeError(f"could not start the embedded MQTT broker on {self.host}:{self.port}: {exc}") from exc
        log.info("embedded MQTT broker listening on %s", self.url)
        return self

    async def stop(self) -> None:
        if self._broker is not None:
            try:
                await asyncio.wait_for(self._broker.shutdown(), 10)
            except Exception:  # shutting down must not mask the caller's error
                log.exception("embedded broker shutdown failed")
            self._broker = None

    async def __aenter__(self) -> "EmbeddedBroker":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
