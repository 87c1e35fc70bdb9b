"""Backends by name, as a lab configuration names them.

    simulated  PyLabRobot's chatterbox backend with a time model (the default)
    star       Hamilton STAR over USB (pylabrobot STARBackend)
    ot2        an Opentrons OT-2 over its HTTP API (pylabrobot OpentronsOT2Backend; needs `ot_api`)
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pylabrobot.liquid_handling.backends import LiquidHandlerBackend, LiquidHandlerChatterboxBackend

log = logging.getLogger("drivers.liquid_handler.backend")

# Seconds per operation on a single-channel pipette at speed 1 (an OT-2 p300 is in this range).
DEFAULT_TIMINGS = {"pick_up_tips": 4.0, "drop_tips": 3.0, "aspirate": 3.0, "dispense": 3.0}


class SimulatedBackend(LiquidHandlerChatterboxBackend):
    """The chatterbox backend plus time: each operation takes its time from `timings`, divided by `speed`.

    The chatterbox prints a table per operation; that goes to this module's logger, not stdout.
    Waiting is an asyncio sleep, so an emergency stop cancels an operation part-way.
    """

    def __init__(self, num_channels: int = 1, speed: float = 1.0, timings: dict[str, float] | None = None) -> None:
        super().__init__(num_channels=num_channels)
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self.timings = {**DEFAULT_TIMINGS, **(timings or {})}
        self.operations = 0

    async def _timed(self, name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        await asyncio.sleep(self.timings.get(name, 0.0) / self.speed)
        # The chatterbox call never awaits, so no other task can print while stdout is redirected.
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            result = await call()
        log.debug("%s\n%s", name, out.getvalue().rstrip())
        self.operations += 1
        return result

    async def setup(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            await super().setup()

    async def stop(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            await super().stop()

    async def pick_up_tips(self, ops, use_channels, **kwargs):  # type: ignore[override]
        return await self._timed("pick_up_tips", lambda: super(SimulatedBackend, self).pick_up_tips(ops, use_channels, **kwargs))

    async def drop_tips(self, ops, use_channels, **kwargs):  # type: ignore[override]
        return await self._timed("drop_tips", lambda: super(SimulatedBackend, self).drop_tips(ops, use_channels, **kwargs))

    async def aspirate(self, ops, use_channels, **kwargs):  # type: ignore[override]
        return await self._timed("aspirate", lambda: super(SimulatedBackend, self).aspirate(ops, use_channels, **kwargs))

    async def dispense(self, ops, use_channels, **kwargs):  # type: ignore[override]
        return await self._timed("dispense", lambda: super(SimulatedBackend, self).dispense(ops, use_channels, **kwargs))


BACKENDS = ("simulated", "star", "ot2")


def make_backend(name: str, **options: Any) -> LiquidHandlerBackend:
    """The backend a lab configuration names; options go to its constructor."""
    if name == "simulated":
        return SimulatedBackend(**options)
    if name == "star":
        from pylabrobot.liquid_handling.backends import STARBackend

        return STARBackend(**options)
    if name == "ot2":
        from pylabrobot.liquid_handling.backends import OpentronsOT2Backend

        if "host" not in options:
            raise ValueError("backend ot2 needs options.host (the robot's address)")
        return OpentronsOT2Backend(**options)
    raise ValueError(f"unknown liquid-handler backend {name!r}; known: {', '.join(BACKENDS)}")
