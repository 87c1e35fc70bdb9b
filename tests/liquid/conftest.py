"""Fixtures for liquid handling: a simulated PyLabRobot liquid handler and the Opentrons tool env."""

from __future__ import annotations

import pytest

from drivers.liquid_handler.device import LiquidHandlerConfig, LiquidHandlerDevice
from drivers.opentrons.simulate import find_opentrons_simulate


@pytest.fixture
async def liquid_handler():
    # speed 1000: a 3 s aspirate takes 3 ms, so a whole plate runs in well under a second.
    async with LiquidHandlerDevice(LiquidHandlerConfig(id="lh-test", backend_options={"speed": 1000})) as device:
        yield device


@pytest.fixture(scope="session")
def opentrons_simulate() -> str:
    """The opentrons_simulate tool; fails (never skips) when the Opentrons tool env is missing."""
    try:
        return str(find_opentrons_simulate())
    except FileNotFoundError as exc:
        pytest.fail(f"{exc}  Build it with `make .venv-opentrons/.installed` (make test does this first).")
