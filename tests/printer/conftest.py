"""Fixtures for printer tests: a simulated Marlin printer on a real pseudo-terminal."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.printer import MarlinDriver
from simulators.printer import FaultConfig, MarlinSimulator, SimulatorConfig


@pytest.fixture
def make_printer(tmp_path: Path) -> Callable[..., Any]:
    """make_printer(sim options..., faults=FaultConfig(...)) -> async context giving (sim, driver)."""
    counter = iter(range(1000))

    @contextlib.asynccontextmanager
    async def factory(*, driver_options: dict[str, Any] | None = None, faults: FaultConfig | None = None,
                      **sim_options: Any) -> AsyncIterator[tuple[MarlinSimulator, MarlinDriver]]:
        sim_options.setdefault("baud", 250000)
        sim_options.setdefault("home_time_s", 0.2)
        config = SimulatorConfig(faults=faults or FaultConfig(), **sim_options)
        link = tmp_path / f"printer{next(counter)}"
        async with MarlinSimulator(config, link=link) as sim:
            options = {"baud": config.baud, "rx_buffer": config.rx_buffer, **(driver_options or {})}
            driver = MarlinDriver(str(link), **options)
            await driver.connect()
            try:
                yield sim, driver
            finally:
                await driver.close()

    return factory
