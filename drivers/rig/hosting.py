"""Put a rig on the bus: a real one on a serial port, or a simulated one (simulator + driver + host).

    async with hosted_rig("mqtt://127.0.0.1:1883", "/dev/ttyACM0", "rig-1", compliance=table) as (device, host):
        await host.serve_forever()

    async with simulated_rig("memory://lab", "rig-1", RigSimConfig(speed=50)) as (sim, device, host):
        sim.mount(PrintParams(blend_b_pct=30), specimen_type="iso527-1ba", specimen_id="S-1")
        ...  # commands to topics.device_commands("rig-1"): run_test(method=..., specimen_id="S-1", ...)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from labctl.devicehost import DeviceHost

from .device import RigDevice
from .driver import RigDriver


@contextlib.asynccontextmanager
async def hosted_rig(url: str | None, port: str, device_id: str = "rig-1", *, simulated: bool = False,
                     compliance: Any = None, out_dir: str | Path = "results/rig", bus: Any = None,
                     **driver_options: Any) -> AsyncIterator[tuple[RigDevice, DeviceHost]]:
    """Open the rig on `port`, wrap it as a RigDevice and host it on the bus (`bus`, or a new client of `url`).

    `driver_options` go to RigDriver (e.g. test_timeout_s, keepalive_s)."""
    async with RigDriver(port, **driver_options) as driver:
        device = RigDevice(driver, device_id, simulated=simulated, compliance=compliance, out_dir=out_dir)
        if bus is not None:
            async with DeviceHost(bus, device) as host:
                yield device, host
        else:
            async with DeviceHost.connect(url, device) as host:
                yield device, host


@contextlib.asynccontextmanager
async def simulated_rig(url: str | None, device_id: str = "rig-1", config: Any = None, *,
                        compliance: Any = "frame", out_dir: str | Path = "results/rig", bus: Any = None,
                        **driver_options: Any) -> AsyncIterator[tuple[Any, RigDevice, DeviceHost]]:
    """A RigSimulator on a PTY, hosted like real hardware. compliance="frame" uses the simulated frame's stiffness."""
    from simulators.rig import RigSimConfig, RigSimulator

    config = config or RigSimConfig()
    if compliance == "frame":
        from labctl.analysis import ComplianceTable

        compliance = ComplianceTable.from_stiffness(config.frame_stiffness_n_per_mm)
    async with RigSimulator(config) as sim:
        async with hosted_rig(url, sim.port_path, device_id, simulated=True, compliance=compliance, out_dir=out_dir,
                              bus=bus, **driver_options) as (device, host):
            yield sim, device, host
