"""How the engine reaches devices: two small Protocols and their bus implementations.

The engine never imports a driver. It sees devices as retained `DeviceState`s (a `DeviceDirectory`)
and runs actions through a `StepExecutor`. `BusExecutor` / `BusDirectory` do both over the device
bus, against device hosts (labctl.devicehost), whatever transport the bus uses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from ..bus import Bus, BusError, Command, DeviceState, RequestTimeout, topics
from ..registry import DeviceRegistry


class StepError(RuntimeError):
    """The device refused or failed the action (its host replied ok=false)."""


class StepTimeout(StepError):
    """No reply within the step's time-out."""


class StepExecutor(Protocol):
    async def run(self, device_id: str, action: str, params: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """Run `action` on the device; return its result dict, raise StepError / StepTimeout."""
        ...


class DeviceDirectory(Protocol):
    def states(self) -> dict[str, DeviceState]:
        """The newest known state of every device (online or not)."""
        ...

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call `callback` (no arguments) whenever a device's state changes."""
        ...


class BusExecutor:
    """Runs steps as bus commands to device hosts: `bus.request(devices/<id>/commands, Command)`."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def run(self, device_id: str, action: str, params: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        try:
            reply = await self.bus.request(topics.device_commands(device_id), Command(action=action, params=params),
                                           timeout=timeout)
        except RequestTimeout as exc:
            raise StepTimeout(str(exc)) from None
        except BusError as exc:
            raise StepError(f"{device_id}.{action}: bus error: {exc}") from None
        if not reply.ok:
            raise StepError(reply.error or f"{device_id}.{action} failed without a message")
        return dict(reply.result)


class BusDirectory:
    """Device states from the retained `devices/+/state` topics, with change callbacks."""

    def __init__(self, bus: Bus) -> None:
        self.registry = DeviceRegistry(bus)
        self._callbacks: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "BusDirectory":
        await self.registry.__aenter__()
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self.registry.__aexit__(*exc)

    def states(self) -> dict[str, DeviceState]:
        return self.registry.devices

    def on_change(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    async def _watch(self) -> None:
        while True:
            async with self.registry.changed:
                await self.registry.changed.wait()
            for callback in self._callbacks:
                callback()
