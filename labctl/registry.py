"""The device registry: what device hosts have announced (retained state on the bus)."""

from __future__ import annotations

import asyncio

from .bus import Bus, DeviceState, topics


async def list_devices(bus: Bus, *, settle: float = 0.3) -> list[DeviceState]:
    """Every device whose host has announced itself (online or not), newest state each."""
    found: dict[str, DeviceState] = {}
    async with bus.subscribe(topics.ALL_DEVICE_STATES) as states:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle
        while (remaining := deadline - loop.time()) > 0:
            try:
                item = await states.get(timeout=remaining)
            except TimeoutError:
                break
            if isinstance(item.message, DeviceState):
                found[item.message.device.id] = item.message
    return sorted(found.values(), key=lambda s: s.device.id)


class DeviceRegistry:
    """A live view of every device's state, kept up to date from the bus."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.devices: dict[str, DeviceState] = {}
        self.changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "DeviceRegistry":
        self._sub = self.bus.subscribe(topics.ALL_DEVICE_STATES)
        await self._sub.__aenter__()
        self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
        await self._sub.__aexit__()

    async def _follow(self) -> None:
        async for item in self._sub:
            if isinstance(item.message, DeviceState):
                self.devices[item.message.device.id] = item.message
                async with self.changed:
                    self.changed.notify_all()

    def online(self, kind: str | None = None) -> list[DeviceState]:
        return [s for s in self.devices.values()
                if s.status in ("online", "busy") and (kind is None or s.device.kind == kind)]

    async def wait_for(self, device_id: str, status: str, timeout: float = 5.0) -> DeviceState:
        async def _wait() -> DeviceState:
            async with self.changed:
                while True:
                    state = self.devices.get(device_id)
                    if state is not None and state.status == status:
                        return state
                    await self.changed.wait()
        try:
            async with asyncio.timeout(timeout):
                return await _wait()
        except TimeoutError:
            now = self.devices.get(device_id)
            raise TimeoutError(f"device {device_id} not {status} within {timeout} s "
                               f"(last seen: {now.status if now else 'never'})") from None
