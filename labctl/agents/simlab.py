"""A simulated lab in one process, for `labctl mcp --sim`, `labctl plan` and the tests.

In-process bus, the real job engine on a real SQLite store, device hosts for N printers, a liquid
handler and a tensile rig, and the protocol layer's service on top. Every device announces
`simulated=True`, so the engine auto-approves and auto-hands-over, and every result says simulated.

Printers and the liquid handler are the job engine's generic timed devices (they take time, keep
tokens, can be emergency-stopped); the rig is `SpecimenRig`, which pulls a simulated specimen
from the rig simulator's material and specimen model (simulators/rig) and returns the raw
force-extension curve, so the analysis, statistics and verdict run on the simulator's ground truth.
The lead's `labctl serve --sim` replaces these stand-ins with the wire-level simulators and drivers.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ..bus import DeviceInfo, connect
from ..devicehost import DeviceHost, command
from ..jobs import BusDirectory, JobEngine, StepSpec, Store
from ..jobs.timed_device import TimedDevice
from .design import Run
from .fabrication import Fabrication, write_curve_artifact
from .service import AuditLog, LabService, lab_from_registry


def material_params(design: dict[str, Any]) -> Any:
    """A run's checked print parameters in the rig simulator's terms."""
    from simulators.rig.material import PrintParams

    blend = float(design.get("formulation", {}).get("B", 0.0)) * 100
    return PrintParams(material=design.get("material", "PLA"), infill_pct=float(design.get("infill_density", 1.0)) * 100,
                       raster_angle_deg=min(90.0, abs(float(design.get("raster_angle", 0.0)))),
                       orientation=design.get("orientation", "flat"),
                       layer_height_mm=float(design.get("layer_height", 0.2)), blend_b_pct=min(50.0, blend))


class SpecimenRig:
    """A simulated tensile rig on the bus: pulls the simulator's specimen model at constant speed."""

    def __init__(self, device_id: str, out_dir: str | Path, *, seed: int = 0, simulated: bool = True,
                 frame_stiffness_n_per_mm: float = 1.0e5, sample_mm: float = 0.01) -> None:
        self.info = DeviceInfo(id=device_id, kind="rig", driver="specimen-model", simulated=simulated,
                               firmware="labctl-specimen-rig 1", capabilities=["run_test", "recall"],
                               limits={"max_force_n": 5000, "max_travel_mm": 200})
        self.out_dir = Path(out_dir)
        self.seed = seed
        self.frame_stiffness = frame_stiffness_n_per_mm
        self.sample_mm = sample_mm
        self.finished: dict[str, dict[str, Any]] = {}
        self.emit: Any = None
        self.set_status: Any = None
        self.tests = 0

    async def emergency_stop(self) -> None:
        pass  # a simulated pull is instantaneous; nothing keeps moving

    @command()
    async def run_test(self, method: str, specimen_id: str, specimen: str, design: dict[str, Any],
                       token: str | None = None) -> dict[str, Any]:
        """Pull a `specimen`-type specimen made with `design` to break; the raw curve comes back as an artefact."""
        from protocols.methods import get_method
        from simulators.rig.specimen import MountedSpecimen

        speed_mm_min = get_method(method).test_speed_mm_min
        specimen_type, specimen = specimen, specimen_id

        if token and token in self.finished:
            return self.finished[token]
        digest = hashlib.sha256(f"{self.seed}:{specimen}".encode()).digest()
        mounted = MountedSpecimen(specimen_type, material_params(design), int.from_bytes(digest[:4], "big"),
                                  frame_stiffness_n_per_mm=self.frame_stiffness, specimen_id=specimen)
        limit = mounted.spec.grip_separation_mm * 1.2
        # Dense where the modulus is fitted (the first 1 mm), coarser while drawing.
        grid = np.concatenate([np.arange(0.0, 1.0, self.sample_mm / 10), np.arange(1.0, limit, self.sample_mm * 2)])
        travel, force = [], []
        for t in grid:
            travel.append(float(t))
            force.append(mounted.force_at(t))
            if mounted.broken and len(force) > 10 and force[-1] <= 0.01 * max(force):
                break
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{specimen}.csv"
        displacement = np.asarray(travel)
        write_curve_artifact(path, np.asarray(force), displacement, displacement / (speed_mm_min / 60))
        self.tests += 1
        result = {"specimen": specimen, "max_force_n": round(max(force), 3), "points": len(force),
                  "artefacts": [{"name": "curve", "kind": "raw_curve", "uri": str(path)}]}
        if token:
            self.finished[token] = result
        return result

    @command()
    async def recall(self, token: str) -> dict[str, Any]:
        if token in self.finished:
            return {"state": "done", "result": self.finished[token]}
        return {"state": "unknown"}


class SimulatedFabrication(Fabrication):
    """The default job shape, with the timed devices' `run` action for mixing and printing."""

    def __init__(self, print_seconds: float = 0.05, mix_seconds: float = 0.02) -> None:
        super().__init__(mix_action="run", print_action="run", test_action="run_test")  # timed devices' action
        self.print_seconds = print_seconds
        self.mix_seconds = mix_seconds

    def mix_step(self, run: Run) -> StepSpec:
        return StepSpec(name="mix", kind="liquid_handler", action="run", token_param="token", recall_action="recall",
                        params={"op": "mix", "seconds": self.mix_seconds, "specimen": run.run_id},
                        specimen_event="formulated")

    def print_step(self, run: Run) -> StepSpec:
        return StepSpec(name="print", kind="printer", action="run", block=run.printer, token_param="token",
                        recall_action="recall", params={"op": "print", "seconds": self.print_seconds,
                                                        "specimen": run.run_id},
                        specimen_event="printed", specimen_location="{device} bed")

    def test_step(self, run: Run) -> StepSpec:
        # The stand-in rig needs the design to build its specimen; a real rig measures what is mounted.
        step = super().test_step(run)
        return step.model_copy(update={"token_param": "token", "recall_action": "recall",
                                       "params": {**step.params, "design": run.parameters.model_dump(mode="json")}})


class SimulatedLab:
    """`async with SimulatedLab(workdir) as lab:` then use `lab.service` (a LabService)."""

    def __init__(self, workdir: str | Path, *, printers: int = 3, seed: int = 0, time_scale: float = 0.01,
                 bus_url: str | None = None, announce_simulated: bool = True) -> None:
        """`announce_simulated=False` makes the devices announce themselves as hardware, to exercise what
        only real labs do (the technician's approval gate); everything still runs in simulation."""
        self.workdir = Path(workdir)
        self.printers = printers
        self.seed = seed
        self.time_scale = time_scale
        self.bus_url = bus_url or f"memory://simlab-{id(self)}"
        self.announce_simulated = announce_simulated
        self.devices: list[Any] = []
        self.service: LabService
        self.engine: JobEngine
        self.registry: Any  # labctl.registry.DeviceRegistry, shared with the engine's directory
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> "SimulatedLab":
        stack = self._stack
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            bus = await stack.enter_async_context(connect(self.bus_url, client_id="simlab-controller"))
            # One registry for the engine and the service (the engine's device directory wraps it).
            directory = await stack.enter_async_context(BusDirectory(bus))
            self.registry = directory.registry
            sim = self.announce_simulated
            self.devices = [TimedDevice(f"printer-{i + 1}", "printer", time_scale=1.0, simulated=sim)
                            for i in range(self.printers)]
            self.devices.append(TimedDevice("liquid-1", "liquid_handler", time_scale=1.0, simulated=sim))
            self.devices.append(SpecimenRig("rig-1", self.workdir / "curves", seed=self.seed, simulated=sim))
            for device in self.devices:
                await stack.enter_async_context(DeviceHost(bus, device))
            for device in self.devices:
                await self.registry.wait_for(device.info.id, "online", timeout=10)
            store = Store(self.workdir / "jobs.db")
            stack.callback(store.close)
            self.engine = await stack.enter_async_context(
                JobEngine(store, bus, directory=directory, time_scale=self.time_scale, poll_interval=0.05))
            lab, devices = lab_from_registry(self.registry)
            self.service = await stack.enter_async_context(
                LabService(self.engine, self.workdir, lab=lab, devices=devices,
                           fabrication=SimulatedFabrication(), audit=AuditLog(self.workdir / "audit.jsonl")))
        except BaseException:
            await stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
