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

from .config import SimulatorConfig
from .simulator import MarlinSimulator


@contextlib.asynccontextmanager
async def simulated_printer(device_id: str, workdir: str | Path, *, limits: PrinterLimits | None = None,
                            **sim_options: Any) -> AsyncIterator[PrinterDevice]:
    """Start a MarlinSimulator on a PTY linked at workdir/<device_id>.tty and a connected PrinterDevice."""
    config = SimulatorConfig(**sim_options)
    link = Path(workdir) / f"{device_id}.tty"
    async with MarlinSimulator(config, link=link) as sim:
        # The driver paces writes at the baud rate; a sped-up simulator has a proportionally faster wire.
        device = PrinterDevice(device_id, str(link), baud=int(config.baud * config.speed),
                               rx_buffer=config.rx_buffer, limits=limits, simulated=True)
        device.simulator = sim  # type: ignore[attr-defined]
        async with device:
            yield device
