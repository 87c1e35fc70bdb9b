"""A simulated printer wired to its driver, ready for a device host (`labctl serve --sim`, demos).

    async with simulated_printer("printer-1", workdir, speed=20) as device:
        async with DeviceHost.connect(url, device) as host: ...
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from drivers.printer import PrinterDevice, PrinterLimits
from labctl.devicehost import command

from .config import SimulatorConfig
from .simulator import MarlinSimulator


class SimulatedPrinterDevice(PrinterDevice):
    """A PrinterDevice whose firmware is a MarlinSimulator; its records are readable on the bus."""

    simulator: MarlinSimulator

    @command()
    async def simulator_report(self, include_executed: bool = False) -> dict[str, Any]:
        """What the simulated firmware executed (count, SHA-256), planner underruns, dropped bytes, halts."""
        return self.simulator.report(include_executed=include_executed)


@contextlib.asynccontextmanager
async def simulated_printer(device_id: str, workdir: str | Path, *, limits: PrinterLimits | None = None,
                            **sim_options: Any) -> AsyncIterator[SimulatedPrinterDevice]:
    """Start a MarlinSimulator on a PTY linked at workdir/<device_id>.tty and a connected PrinterDevice."""
    config = SimulatorConfig(**sim_options)
    link = Path(workdir) / f"{device_id}.tty"
    async with MarlinSimulator(config, link=link) as sim:
        # The driver paces writes at the baud rate; a sped-up simulator has a proportionally faster wire.
        device = SimulatedPrinterDevice(device_id, str(link), baud=int(config.baud * config.speed),
                                        rx_buffer=config.rx_buffer, limits=limits, simulated=True)
        device.simulator = sim
        async with device:
            yield device
