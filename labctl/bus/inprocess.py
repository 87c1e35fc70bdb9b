"""In-process transport: a broker object inside this process, for tests and single-process labs."""

from __future__ import annotations

import asyncio

from . import topics
from .base import Bus, BusError
from .messages import Message, encode

_BROKERS: dict[str, "InProcessBroker"] = {}


class InProcessBroker:
    """Routes payloads between InProcessBus clients; keeps retained messages; fires wills."""

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self.retained: dict[str, bytes] = {}
        self.clients: set[InProcessBus] = set()

    @classmethod
    def named(cls, name: str) -> "InProcessBroker":
        if name not in _BROKERS:
            _BROKERS[name] = cls(name)
        return _BROKERS[name]

    def route(self, topic: str, payload: bytes, retain: bool) -> None:
        if retain:
            if payload:
                self.retained[topic] = payload
            else:
                self.retained.pop(topic, None)
        for client in list(self.clients):
            if any(topics.matches(f, topic) for f in client.active_filters()):
                client._deliver(topic, payload, False)

    def kill(self, client: "InProcessBus") -> None:
        """Drop a client as if its process died: its will is published."""
        if client in self.clients:
            self.clients.discard(client)
            client._alive = False
            if client.will is not None:
                topic, message = client.will
                self.route(topic, encode(message), True)


class InProcessBus(Bus):
    def __init__(self, broker: InProcessBroker, client_id: str, will: tuple[str, Message] | None = None) -> None:
        super().__init__(client_id, will)
        self.broker = broker
        self._alive = False

    async def _transport_connect(self) -> None:
        self._alive = True
        self.broker.clients.add(self)

    async def _transport_close(self, clean: bool) -> None:
        if not self._alive:
            return
        if clean:
            self.broker.clients.discard(self)
            self._alive = False
        else:
            self.broker.kill(self)

    def _check(self) -> None:
        if not self._alive:
            raise BusError(f"bus client {self.client_id} is not connected")

    async def _transport_publish(self, topic: str, payload: bytes, qos: int, retain: bool, timeout: float) -> None:
        self._check()
        self.broker.route(topic, payload, retain)
        await asyncio.sleep(0)  # a publish is a scheduling point on every transport

    async def _transport_subscribe(self, topic_filter: str) -> None:
        self._check()
        for topic, payload in list(self.broker.retained.items()):
            if topics.matches(topic_filter, topic):
                self._deliver(topic, payload, True)

    async def _transport_unsubscribe(self, topic_filter: str) -> None:
        return None
