"""MQTT transport through aiomqtt, with reconnection, back-off and restored subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

import aiomqtt

from .base import Bus, BusError
from .messages import Message, encode
from .url import BrokerURL

log = logging.getLogger("labctl.bus.mqtt")

BACKOFF_FIRST = 0.05
BACKOFF_MAX = 5.0


class MqttBus(Bus):
    def __init__(self, url: BrokerURL, client_id: str, will: tuple[str, Message] | None = None,
                 *, connect_timeout: float = 10.0, keepalive: int = 10, persistent: bool = False) -> None:
        super().__init__(client_id, will)
        # A persistent session (clean_session=False) makes the broker keep this client's
        # subscriptions and queue its QoS 1 messages while it is away: for long-lived processes
        # with a stable client id (controller, device hosts), not for one-shot CLI clients.
        self.persistent = persistent
        self.url = url
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._first_error: BaseException | None = None
        self._ever_connected = False

    def _make_client(self) -> aiomqtt.Client:
        will = None
        if self.will is not None:
            topic, message = self.will
            will = aiomqtt.Will(topic, encode(message), qos=1, retain=True)
        client = aiomqtt.Client(
            self.url.host, self.url.port,
            username=self.url.username, password=self.url.password,
            identifier=self.client_id, will=will, clean_session=not self.persistent,
            keepalive=self.keepalive, timeout=self.connect_timeout,
            max_inflight_messages=100,
            # Small request/reply packets must not wait for Nagle + delayed ACK (~40 ms each way).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        # Telemetry bursts keep dozens of QoS 1 publishes in flight by design; aiomqtt would warn at 10.
        client.pending_calls_threshold = 10_000
        return client

    async def _transport_connect(self) -> None:
        self._runner = asyncio.create_task(self._run(), name=f"mqtt-{self.client_id}")
        waiter = asyncio.create_task(self._connected.wait())
        done, _ = await asyncio.wait({waiter, self._runner}, timeout=self.connect_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            error = self._first_error
            await self._stop_runner()
            raise BusError(f"could not connect to the MQTT broker at {self.url}: {error or 'timed out'}")

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._closing:
            try:
                async with self._make_client() as client:
                    self._client = client
                    for topic_filter in self.active_filters():
                        await client.subscribe(topic_filter, qos=1)
                    reconnected = self._ever_connected
                    self._ever_connected = True
                    self._connected.set()
                    backoff = BACKOFF_FIRST
                    if reconnected:
                        self.stats.reconnects += 1
                        log.info("%s reconnected to %s", self.client_id, self.url)
                        asyncio.create_task(self._run_reconnect_hooks())
                    async for message in client.messages:
                        payload = message.payload
                        if not isinstance(payload, (bytes, bytearray)):
                            payload = str(payload).encode() if payload is not None else b""
                        self._deliver(str(message.topic), bytes(payload), bool(message.retain))
            except aiomqtt.MqttError as exc:
                if self._first_error is None:
                    self._first_error = exc
                if not self._closing:
                    log.warning("%s lost the broker at %s (%s); retrying in %.2f s", self.client_id, self.url, exc, backoff)
            finally:
                self._connected.clear()
                self._client = None
            if self._closing:
                break
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _stop_runner(self) -> None:
        self._closing = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
            self._runner = None

    async def _transport_close(self, clean: bool) -> None:
        if not clean and self._client is not None:
            # Drop the connection without DISCONNECT, as a dying process would, so the broker
            # publishes the will. shutdown() rather than close(): the event loop still watches the fd.
            self._closing = True
            sock = self._client._client.socket()  # noqa: SLF001
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(TimeoutError, BusError):
                await asyncio.wait_for(self._wait_disconnected(), 2.0)
        await self._stop_runner()

    async def _wait_disconnected(self) -> None:
        while self._connected.is_set():
            await asyncio.sleep(0.01)

    async def _connected_client(self, deadline: float) -> aiomqtt.Client:
        while True:
            client = self._client
            if client is not None and self._connected.is_set():
                return client
            if self._closing:
                raise BusError(f"bus client {self.client_id} is closed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BusError(f"not connected to the MQTT broker at {self.url}")
            try:
                async with asyncio.timeout(remaining):
                    await self._connected.wait()
            except TimeoutError:
                raise BusError(f"not connected to the MQTT broker at {self.url}") from None

    async def _transport_publish(self, topic: str, payload: bytes, qos: int, retain: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            client = await self._connected_client(deadline)
            publish = asyncio.ensure_future(client.publish(
                topic, payload, qos=qos, retain=retain, timeout=max(deadline - time.monotonic(), 0.001)))
            # Race the acknowledgement against the connection dropping, so a lost broker is
            # noticed at once instead of at the time-out.
            disconnected = client._disconnected  # noqa: SLF001
            await asyncio.wait({publish, disconnected}, return_when=asyncio.FIRST_COMPLETED)
            if not publish.done():
                publish.cancel()
                with contextlib.suppress(BaseException):
                    await publish
            try:
                if publish.cancelled():
                    raise aiomqtt.MqttError("connection lost before the broker acknowledged")
                publish.result()
                return
            except aiomqtt.MqttError as exc:
                # The connection went away mid-publish: resend once it is back (at-least-once;
                # receivers drop duplicates by message id).
                if time.monotonic() >= deadline:
                    raise BusError(f"publish to {topic} not acknowledged by {self.url}: {exc}") from None
                self._connected.clear()
                await asyncio.sleep(0.01)

    async def _transport_subscribe(self, topic_filter: str) -> None:
        client = self._client
        if client is not None and self._connected.is_set():
            try:
                await client.subscribe(topic_filter, qos=1)
            except aiomqtt.MqttError:
                pass  # restored by the reconnect loop from active_filters()

    async def _transport_unsubscribe(self, topic_filter: str) -> None:
        client = self._client
        if client is not None and self._connected.is_set():
            with contextlib.suppress(aiomqtt.MqttError):
                await client.unsubscribe(topic_filter)
