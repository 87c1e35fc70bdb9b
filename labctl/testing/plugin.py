"""The labctl pytest plugin (entry point `labctl`): hardware-in-the-loop tests against the simulators.

Installed with labctl, so any project's tests can use these fixtures (no import needed):

- `labctl_sim`: a factory on a real MQTT broker (labctl's embedded amqtt, on a free port) that
  starts wire-level simulated devices on real pseudo-terminals, each with its real driver and
  device host, and tears everything down after the test:
  `await labctl_sim.printer("printer-1", faults={"bit_error_rate": 0.01})` -> the PrinterDevice
  (its `.simulator` is the MarlinSimulator), `await labctl_sim.rig("rig-1", corrupt_every=50)` ->
  (RigSimulator, RigDevice), `await labctl_sim.liquid_handler("liquid-1")`,
  `await labctl_sim.lab(printers=2)` -> a whole simulated Lab with job engine and protocol layer;
  `labctl_sim.url` is the broker URL to point your own code at, `labctl_sim.client()` a bus client.
- `mosquitto_broker`: a real Mosquitto process on a free loopback port (`.url`).
- `embedded_broker`: labctl's embedded amqtt broker on a free port (`.url`).

Fault injection is the simulators' own: printer `faults=` (bit errors, dropped ok, reset,
disconnect, heater failure, stuck busy; see simulators.printer.FaultConfig), rig `corrupt_every`,
`drop_every`, `failure=`, liquid handler over-aspiration and missing tips by what you ask of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..bus import Bus, connect
from ..bus.broker import EmbeddedBroker
from .mosquitto import Mosquitto


class SimulatedDevices:
    """Starts simulated devices hosted on one broker; everything stops with the test."""

    def __init__(self, stack: contextlib.AsyncExitStack, url: str, workdir: Path) -> None:
        self._stack = stack
        self.url = url
        self.workdir = workdir

    async def _host(self, device: Any) -> None:
        from ..devicehost import DeviceHost

        await self._stack.enter_async_context(DeviceHost.connect(self.url, device))

    async def printer(self, device_id: str = "printer-1", *, limits: Any = None, **sim_options: Any) -> Any:
        """A Marlin simulator + the real printer driver, hosted. Options: simulators.printer.SimulatorConfig."""
        from simulators.printer.lab import simulated_printer

        sim_options.setdefault("speed", 50.0)
        device = await self._stack.enter_async_context(
            simulated_printer(device_id, self.workdir, limits=limits, **sim_options))
        await self._host(device)
        return device

    async def rig(self, device_id: str = "rig-1", **sim_options: Any) -> tuple[Any, Any]:
        """The rig firmware on a simulated board + the real rig driver, hosted. Options: RigSimConfig."""
        from drivers.rig.hosting import simulated_rig
        from simulators.rig import RigSimConfig

        sim_options.setdefault("speed", 100.0)
        config = RigSimConfig(**sim_options)
        sim, device, _host = await self._stack.enter_async_context(
            simulated_rig(self.url, device_id, config, out_dir=self.workdir / device_id))
        return sim, device

    async def liquid_handler(self, device_id: str = "liquid-1", **options: Any) -> Any:
        """PyLabRobot's chatterbox backend with volume and tip tracking behind the real device host."""
        from drivers.liquid_handler import LiquidHandlerConfig, LiquidHandlerDevice

        options.setdefault("backend_options", {"speed": 100.0})
        device = await self._stack.enter_async_context(
            LiquidHandlerDevice(LiquidHandlerConfig(id=device_id, **options)))
        await self._host(device)
        return device

    async def lab(self, *, printers: int = 2, seed: int = 0) -> Any:
        """A whole simulated lab (devices, job engine, protocol layer) on this broker."""
        from ..lab import Lab

        return await self._stack.enter_async_context(
            Lab.simulated(self.workdir / "lab", printers=printers, bus_url=self.url, seed=seed))

    def client(self, client_id: str | None = None) -> Bus:
        return connect(self.url, client_id=client_id)


@pytest.fixture
async def labctl_sim(tmp_path: Path) -> AsyncIterator[SimulatedDevices]:
    async with contextlib.AsyncExitStack() as stack:
        broker = await stack.enter_async_context(EmbeddedBroker(port=0))
        yield SimulatedDevices(stack, str(broker.url), tmp_path)


@pytest.fixture
def mosquitto_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
async def embedded_broker() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker(port=0) as broker:
        yield broker
