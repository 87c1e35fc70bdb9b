"""Fixtures for the rig tests: a simulator on a real PTY and a driver connected to it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from drivers.rig import RigDriver
from simulators.rig import RigSimConfig, RigSimulator


@contextlib.asynccontextmanager
async def rig(**config: object) -> AsyncIterator[tuple[RigSimulator, RigDriver]]:
    """A simulator (fast by default: x100 at 200 Hz) and an open driver on its PTY."""
    settings = {"speed": 100.0, "adc_hz": 200.0} | config
    async with RigSimulator(RigSimConfig(**settings)) as sim:
        async with RigDriver(sim.port_path) as driver:
            yield sim, driver


@pytest.fixture
def rig_factory():
    return rig
