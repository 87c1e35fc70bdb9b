"""The transport-independent half of the bus: dispatch, subscriptions, request/reply.

A transport supplies four primitives (`_transport_publish`, `_transport_subscribe`,
`_transport_unsubscribe`, and delivery through `_deliver`); everything users call lives here,
so every transport behaves the same and runs the same conformance suite.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import topics
from .messages import Command, Message, MessageError, Reply, decode, encode

log = logging.getLogger("labctl.bus")

DEFAULT_SUBSCRIPTION_QUEUE = 100_000
_SEEN_IDS = 8192


class BusError(RuntimeError):
    """The bus could not do what was asked (not connected, timed out, closed)."""


class RequestTimeout(BusError, TimeoutError):
    pass


@dataclass(frozen=True)
class Received:
    topic: str
    message: Message
    retained: bool = False


@dataclass
class BusStats:
    published: int = 0
    delivered: int = 0
    dropped_invalid: int = 0
    dropped_duplicate: int = 0
    dropped_overflow: int = 0
    reconnects: int = 0


class Subscription:
    """Messages matching one topic filter. Use as an async context manager and iterate."""

    def __init__(self, bus: "Bus", topic_filter: str, maxsize: int) -> None:
        topics.validate_filter(topic_filter)
        self.bus = bus
        self.filter = topic_filter
        self._queue: asyncio.Queue[Received] = asyncio.Queue(maxsize=maxsize)
        self._active = False

    async def __aenter__(self) -> "Subscription":
        self._active = True  # before subscribing, so retained messages are not missed
        await self.bus._add_subscription(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._active = False
        await self.bus._remove_subscription(self)

    def _offer(self, item: Received) -> None:
        if self._queue.full():
            # Slow consumers lose the oldest, never block the receiver for everyone else.
            self._queue.get_nowait()
            self.bus.stats.dropped_overflow += 1
            log.warning("subscription %s overflowed; dropped the oldest message", self.filter)
        self._queue.put_nowait(item)

    def __aiter__(self) -> AsyncIterator[Received]:
        return self

    async def __anext__(self) -> Received:
        return await self._queue.get()

    async def get(self, timeout: float | None = None) -> Received:
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races with the result, and a cancelled consumer must stop.
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            raise TimeoutError(f"no message on {self.filter} within {timeout} s") from None

    def get_nowait(self) -> Received | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None


class Bus:
    """Publish, subscribe, request/reply and retained state over one transport.

    Use `labctl.bus.connect(url, client_id=...)` to get one; it is an async context manager that
    owns the connection.
    """

    def __init__(self, client_id: str, will: tuple[str, Message] | None = None) -> None:
        self.client_id = client_id
        self.will = will
        self.stats = BusStats()
        self._subscriptions: list[Subscription] = []
        self._filter_counts: dict[str, int] = {}
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._reconnect_hooks: list[Callable[[], Awaitable[None]]] = []
        self.reply_topic = topics.replies(client_id)

    # -- transport primitives -------------------------------------------------------------
    async def _transport_connect(self) -> None:
        raise NotImplementedError

    async def _transport_close(self, clean: bool) -> None:
        raise NotImplementedError

    async def _transport_publish(self, topic: str, payload: bytes, qos: int, retain: bool, timeout: float) -> None:
        raise NotImplementedError

    async def _transport_subscribe(self, topic_filter: str) -> None:
        raise NotImplementedError

    async def _transport_unsubscribe(self, topic_filter: str) -> None:
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> "Bus":
        await self._transport_connect()
        await self._acquire_filter(self.reply_topic)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, clean: bool = True) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BusError("bus closed before the reply arrived"))
        self._pending.clear()
        await self._transport_close(clean)

    def on_reconnect(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` after every reconnection (e.g. to re-announce retained state)."""
        self._reconnect_hooks.append(hook)

    async def _run_reconnect_hooks(self) -> None:
        for hook in self._reconnect_hooks:
            try:
                await hook()
            except Exception:  # a hook must not stop the reconnection of the others
                log.exception("reconnect hook failed")

    # -- user API --------------------------------------------------------------------------
    async def publish(
        self, topic: str, message: Message, *, retain: bool = False, qos: int = 1, timeout: float = 10.0
    ) -> None:
        """Publish; with qos=1 it returns once the broker has the message, or raises BusError."""
        if "+" in topic or "#" in topic:
            raise ValueError(f"cannot publish to a topic filter: {topic!r}")
        if not message.source:
            message = message.model_copy(update={"source": self.client_id})
        await self._transport_publish(topic, encode(message), qos, retain, timeout)
        self.stats.published += 1

    async def clear_retained(self, topic: str) -> None:
        await self._transport_publish(topic, b"", 1, True, 10.0)

    def subscribe(self, topic_filter: str, *, maxsize: int = DEFAULT_SUBSCRIPTION_QUEUE) -> Subscription:
        return Subscription(self, topic_filter, maxsize)

    async def request(self, topic: str, command: Command, *, timeout: float = 5.0) -> Reply:
        """Send a command and wait for its reply; raises RequestTimeout naming the topic."""
        command = command.model_copy(update={"reply_to": self.reply_topic, "source": command.source or self.client_id})
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[command.correlation_id] = future
        try:
            await self.publish(topic, command, qos=1, timeout=timeout)
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise RequestTimeout(f"no reply to {command.action!r} on {topic} within {timeout} s") from None
        finally:
            self._pending.pop(command.correlation_id, None)

    async def reply(self, command: Command, *, ok: bool = True, result: dict[str, Any] | None = None,
                    error: str | None = None) -> None:
        if not command.reply_to:
            return
        await self.publish(
            command.reply_to,
            Reply(correlation_id=command.correlation_id, ok=ok, result=result or {}, error=error),
            qos=1,
        )

    # -- subscription bookkeeping ------------------------------------------------------------
    async def _add_subscription(self, sub: Subscription) -> None:
        self._subscriptions.append(sub)
        await self._acquire_filter(sub.filter)

    async def _remove_subscription(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)
            await self._release_filter(sub.filter)

    async def _acquire_filter(self, topic_filter: str) -> None:
        self._filter_counts[topic_filter] = self._filter_counts.get(topic_filter, 0) + 1
        # Subscribe again even when the filter is already active: the broker then re-sends the
        # retained messages, which a new subscription needs (earlier ones see the current state again).
        await self._transport_subscribe(topic_filter)

    async def _release_filter(self, topic_filter: str) -> None:
        count = self._filter_counts.get(topic_filter, 0) - 1
        if count <= 0:
            self._filter_counts.pop(topic_filter, None)
            try:
                await self._transport_unsubscribe(topic_filter)
            except BusError:
                pass
        else:
            self._filter_counts[topic_filter] = count

    def active_filters(self) -> list[str]:
        return list(self._filter_counts)

    # -- delivery ------------------------------------------------------------------------------
    def _deliver(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """Called by the transport for every incoming payload. Never raises."""
        if not payload:
            return  # a cleared retained message
        try:
            message = decode(payload)
        except MessageError as exc:
            self.stats.dropped_invalid += 1
            log.warning("dropped message on %s: %s", topic, exc)
            return
        if not retained:
            if message.id in self._seen:
                self.stats.dropped_duplicate += 1
                return
            self._seen[message.id] = None
            if len(self._seen) > _SEEN_IDS:
                self._seen.popitem(last=False)
        self.stats.delivered += 1
        if topic == self.reply_topic and isinstance(message, Reply):
            future = self._pending.get(message.correlation_id)
            if future is not None and not future.done():
                future.set_result(message)
            return
        item = Received(topic, message, retained)
        for sub in self._subscriptions:
            if sub._active and topics.matches(sub.filter, topic):
                sub._offer(item)
