"""Fixtures for the rig tests: a simulator on a real PTY and a driver connected to it."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.rig import RigDriver
from simulators.rig import RigSimConfig, RigSimulator

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stuck test here fails in 90 s with a stack trace instead of holding a worker for 5 minutes.
    for item in items:
        if Path(str(item.fspath)).parent == _HERE and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(90))


@contextlib.asynccontextmanager
async def rig(**config: object) -> AsyncIterator[tuple[RigSimulator, RigDriver]]:
    """A simulator (fast by default: x100 at 200 Hz) and an open driver on its PTY."""
    settings = {"speed": 100.0, "adc_hz": 200.0} | config
    async with RigSimulator(RigSimConfig(**settings)) as sim:
        async with RigDriver(sim.port_path, test_timeout_s=45) as driver:
            # A loaded CI machine can stall the loop for a while; only the watchdog test wants it short.
            await driver.set_limits(wdt=10000)
            try:
                yield sim, driver
            except BaseException:
                # What the rig was doing when the test failed (shown with the failure).
                print(f"rig state at failure: firmware={sim.firmware.state} fault={sim.firmware.fault!r} "
                      f"test={sim.firmware.test} rate={sim.hw.motor_rate()} crosshead={sim.hw.crosshead_mm} mm "
                      f"force={sim.hw.force_n:.2f} N frames_sent={sim.hw.frames_sent} link={driver.link} "
                      f"events_queued={driver._events.qsize()} sim_alive={not sim._task.done()} "
                      f"sim_us={sim.hw.now_us} backlog={len(sim._backlog)} outbox={len(sim.hw.outbox)} "
                      f"inbox={list(sim.hw.inbox)[:5]}")
                for task in asyncio.all_tasks():
                    task.print_stack(limit=3, file=sys.stdout)
                raise


@pytest.fixture
def rig_factory():
    return rig
