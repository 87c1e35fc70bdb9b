"""A device host: bridges one device object to the bus.

A device is any object with an `info: DeviceInfo`, an `async emergency_stop()` and methods marked
with `@command`. The host announces the device (retained state, with a last will that marks it
offline), runs commands as they arrive (each in its own task, so the host stays responsive), and
obeys `labctl/v1/estop` at once, whatever else is running.

    class Lamp:
        info = DeviceInfo(id="lamp-1", kind="lamp", driver="demo")
        emit: TelemetrySink | None = None
        @command()
        async def switch(self, on: bool) -> dict: ...
        async def emergency_stop(self) -> None: ...

    async with DeviceHost.connect("mqtt://127.0.0.1:1883", Lamp()) as host:
        await host.serve_forever()
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from .bus import Bus, Command, DeviceInfo, DeviceState, EStop, Telemetry, connect, topics
from .bus.url import BrokerURL

log = logging.getLogger("labctl.devicehost")

TelemetrySink = Callable[[str, dict[str, Any]], Awaitable[None]]


@runtime_checkable
class Device(Protocol):
    info: DeviceInfo

    async def emergency_stop(self) -> None: ...


def command(name: str | None = None) -> Callable[[Callable[..., Awaitable[dict[str, Any] | None]]], Any]:
    """Mark an async method as a bus command (`name` defaults to the method's name)."""

    def mark(func: Callable[..., Awaitable[dict[str, Any] | None]]) -> Any:
        func.__labctl_command__ = name or func.__name__  # type: ignore[attr-defined]
        return func

    return mark


def device_commands(device: object) -> dict[str, Callable[..., Awaitable[Any]]]:
    found: dict[str, Callable[..., Awaitable[Any]]] = {}
    for attr in dir(type(device)):
        func = getattr(type(device), attr, None)
        name = getattr(func, "__labctl_command__", None)
        if name:
            found[name] = getattr(device, attr)
    return found


class DeviceHost:
    max_command_age_s = 60.0

    def __init__(self, bus: Bus, device: Device) -> None:
        self.bus = bus
        self.device = device
        self.info = device.info
        self.status = "online"
        self.detail: dict[str, Any] = {}
        self.commands = device_commands(device)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._seq: dict[str, int] = {}
        self._stop = asyncio.Event()
        if hasattr(device, "emit"):
            device.emit = self.emit  # type: ignore[attr-defined]
        if hasattr(device, "set_status"):
            device.set_status = self.set_status  # type: ignore[attr-defined]

    @staticmethod
    def will(info: DeviceInfo) -> tuple[str, DeviceState]:
        return topics.device_state(info.id), DeviceState(device=info, status="offline", source=info.id,
                                                        detail={"reason": "host lost"})

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str | BrokerURL | None, device: Device):
        """Connect a bus client for this device (with its will) and run the host inside it."""
        # A persistent session: commands and emergency stops sent during a broker restart are queued
        # for this host, not lost (stale commands are refused on arrival, see _run_command).
        async with connect(url, client_id=f"host-{device.info.id}", will=cls.will(device.info),
                           persistent=True) as bus:
            host = cls(bus, device)
            async with host:
                yield host

    async def __aenter__(self) -> "DeviceHost":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._estop_sub = self.bus.subscribe(topics.ESTOP)
        self._command_sub = self.bus.subscribe(topics.device_commands(self.info.id))
        await self._estop_sub.__aenter__()
        await self._command_sub.__aenter__()
        self.bus.on_reconnect(self.announce)
        await self.announce()
        self._spawn(self._estop_loop())
        self._spawn(self._command_loop())

    async def stop(self) -> None:
        self._stop.set()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self.bus.publish(topics.device_state(self.info.id),
                                   DeviceState(device=self.info, status="offline", detail={"reason": "host stopped"}),
                                   retain=True, timeout=2.0)
        await self._command_sub.__aexit__()
        await self._estop_sub.__aexit__()

    async def serve_forever(self) -> None:
        await self._stop.wait()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def announce(self) -> None:
        await self.bus.publish(topics.device_state(self.info.id),
                               DeviceState(device=self.info, status=self.status, detail=self.detail), retain=True)

    async def set_status(self, status: str, **detail: Any) -> None:
        if self.status == "estopped" and status not in ("online", "offline"):
            # An emergency stop stands until the device is reset (which reports "online"); the
            # device's own consequences of it (halted, fault) are kept as detail, not as the status.
            detail = {**self.detail, "device_status": status, **detail}
            status = "estopped"
        self.status = status
        self.detail = detail
        await self.announce()

    async def emit(self, stream: str, data: dict[str, Any]) -> None:
        seq = self._seq.get(stream, 0)
        self._seq[stream] = seq + 1
        await self.bus.publish(topics.device_telemetry(self.info.id, stream),
                               Telemetry(stream=stream, data=data, seq=seq), qos=1)

    async def _estop_loop(self) -> None:
        async for item in self._estop_sub:
            if not isinstance(item.message, EStop):
                continue
            log.warning("%s: emergency stop from %s (%s)", self.info.id, item.message.source, item.message.reason)
            try:
                await self.device.emergency_stop()
            except Exception:
                log.exception("%s: emergency_stop raised", self.info.id)
            await self.set_status("estopped", reason=item.message.reason, by=item.message.source)

    async def _command_loop(self) -> None:
        async for item in self._command_sub:
            if isinstance(item.message, Command):
                self._spawn(self._run_command(item.message))

    async def _run_command(self, cmd: Command) -> None:
        age = time.time() - cmd.ts
        if age > self.max_command_age_s:
            # Queued while this host was away: the sender has long given up; acting now would surprise it.
            await self.bus.reply(cmd, ok=False, error=(
                f"{self.info.id}.{cmd.action}: refused, the command is {age:.0f} s old "
                f"(limit {self.max_command_age_s:.0f} s)"))
            return
        if cmd.action == "describe":
            await self.bus.reply(cmd, result={"device": self.info.model_dump(), "status": self.status,
                                              "commands": sorted(self.commands)})
            return
        handler = self.commands.get(cmd.action)
        if handler is None:
            await self.bus.reply(cmd, ok=False, error=(
                f"device {self.info.id} has no command {cmd.action!r}; it has: {', '.join(sorted(self.commands))}"))
            return
        try:
            inspect.signature(handler).bind(**cmd.params)
        except TypeError as exc:
            await self.bus.reply(cmd, ok=False, error=f"{self.info.id}.{cmd.action}: bad parameters: {exc}")
            return
        try:
            result = await handler(**cmd.params)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s.%s failed: %s", self.info.id, cmd.action, exc)
            await self.bus.reply(cmd, ok=False, error=f"{self.info.id}.{cmd.action}: {exc}")
            return
        await self.bus.reply(cmd, result=result or {})
