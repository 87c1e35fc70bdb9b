"""Run simulated printers until told to stop (SIGINT/SIGTERM); SIGUSR1 presses every reset button."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from typing import Any

from .config import SimulatorConfig
from .simulator import MarlinSimulator


def link_paths(link: str, count: int) -> list[Path]:
    return [Path(link)] if count == 1 else [Path(f"{link}{i}") for i in range(count)]


async def run_simulators(config: SimulatorConfig, links: list[Path], *, report: str | None = None,
                         duration_s: float | None = None, ready: Any = None) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    sims = [MarlinSimulator(config.model_copy(update={"faults": config.faults.model_copy(
        update={"seed": config.faults.seed + i})}), link=link) for i, link in enumerate(links)]
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGUSR1, lambda: [sim.reset() for sim in sims])
    async with contextlib.AsyncExitStack() as stack:
        for sim in sims:
            await stack.enter_async_context(sim)
        if ready is not None:
            ready(sims)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), duration_s)
        reports = [sim.report() for sim in sims]
        cpu = time.process_time()
        for entry in reports:
            entry["process_cpu_s"] = round(cpu, 3)
    if report:
        Path(report).write_text(json.dumps(reports[0] if len(reports) == 1 else reports, indent=1))
    return reports
