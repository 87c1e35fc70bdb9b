"""A small simulated lab for engine tests: TimedDevice hosts on a bus, a store, an engine."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.bus import Bus, connect
from labctl.devicehost import DeviceHost
from labctl.jobs import CampaignSpec, JobEngine, JobSpec, StepSpec, Store
from labctl.jobs.timed_device import TimedDevice

DEFAULT_DEVICES = [("lh-1", "liquid_handler"), ("printer-1", "printer"), ("printer-2", "printer"), ("rig-1", "rig")]


def device_step(name: str, kind: str, op: str, seconds: float, specimen: str, **extra: Any) -> StepSpec:
    return StepSpec(name=name, kind=kind, action="run", params={"op": op, "seconds": seconds, "specimen": specimen},
                    token_param="token", recall_action="recall", duration_hint_s=seconds, **extra)


def fabrication_job(i: int, *, print_s: float = 60, block: str | None = None, on_interrupt: str = "ask",
                    handover: bool = True, wait_s: float = 5) -> JobSpec:
    sid = f"S{i:03d}"
    steps = [device_step("prepare", "liquid_handler", "prep", 10, sid, specimen_event="formulated"),
             device_step("print", "printer", "print", print_s, sid, block=block, on_interrupt=on_interrupt,
                         specimen_event="printed", specimen_location="bed of {device}")]
    if handover:
        steps.append(StepSpec(name="handover", kind="handover", specimen_location="rig grips"))
    steps += [StepSpec(name="condition", kind="wait", params={"seconds": wait_s}),
              device_step("test", "rig", "test", 20, sid, specimen_event="tested", specimen_location="rig-1 bin",
                          outputs=["test"])]
    return JobSpec(name=f"job-{sid}", specimen_id=sid, design={"level": i % 2}, method="ISO 527-2 1A",
                   steps=steps)


def campaign(n: int, *, submitter: str = "agent-a", key: str | None = None, blocks: int = 0, **kw: Any) -> CampaignSpec:
    job_kw = {k: v for k, v in kw.items() if k in ("print_s", "on_interrupt", "handover", "wait_s")}
    spec_kw = {k: v for k, v in kw.items() if k not in job_kw}
    return CampaignSpec(name=f"campaign-{submitter}", submitter=submitter, idempotency_key=key, hypothesis_id="H-1",
                        plan_id="P-1", blocking_factor="level" if blocks else None,
                        jobs=[fabrication_job(i, block=f"B{i % blocks}" if blocks else None, **job_kw)
                              for i in range(n)], **spec_kw)


@dataclass
class Lab:
    url: str
    bus: Bus
    store: Store
    engine: JobEngine
    devices: dict[str, TimedDevice]
    hosts: dict[str, DeviceHost] = field(default_factory=dict)
    engine_kw: dict[str, Any] = field(default_factory=dict)

    async def stop_engine(self) -> None:
        """Stop the engine as a crash would leave it: running steps stay `running` in the store."""
        await self.engine.__aexit__(None, None, None)

    async def start_engine(self) -> JobEngine:
        self.engine = JobEngine(self.store, self.bus, **self.engine_kw)
        await self.engine.__aenter__()
        return self.engine

    def kill_host(self, device_id: str) -> None:
        """The device host's process dies: the broker publishes its last will (offline)."""
        host_bus = self.hosts[device_id].bus
        host_bus.broker.kill(host_bus)  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def running_lab(tmp_path: Path, *, devices: list[tuple[str, str]] | None = None, time_scale: float = 0.002,
                      real: tuple[str, ...] = (), **engine_kw: Any) -> AsyncIterator[Lab]:
    url = f"memory://jobs-{uuid.uuid4().hex[:8]}"
    async with contextlib.AsyncExitStack() as stack:
        objs = {d: TimedDevice(d, k, time_scale=time_scale, simulated=d not in real, out_dir=tmp_path / "out")
                for d, k in (devices or DEFAULT_DEVICES)}
        hosts = {d: await stack.enter_async_context(DeviceHost.connect(url, o)) for d, o in objs.items()}
        bus = await stack.enter_async_context(connect(url, client_id="engine"))
        store = stack.enter_context(Store(tmp_path / "labctl.db"))
        engine_kw = {"time_scale": time_scale, "poll_interval": 0.05, **engine_kw}
        lab = Lab(url, bus, store, JobEngine(store, bus, **engine_kw), objs, hosts, engine_kw)
        await lab.engine.__aenter__()
        try:
            yield lab
        finally:
            await lab.engine.__aexit__(None, None, None)
