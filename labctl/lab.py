"""The lab as one object: device hosts, the job engine and the agent protocol layer on one bus.

This is the composition root, the one place that knows concrete drivers: `labctl serve`, `labctl
demo`, `labctl mcp` and the pytest plugin build a `Lab`; the job engine and the protocol layer below
it never import a driver.

`Lab.simulated(...)` is the whole lab at wire level: Marlin simulators on pseudo-terminals streamed
to by the real printer driver, the rig's own firmware logic on a pseudo-terminal pulling a modelled
specimen, read by the real rig driver, and PyLabRobot's chatterbox backend with volume and tip
tracking behind the real liquid-handler host. A driver cannot tell these from hardware.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bus import Bus, connect
from .devicehost import DeviceHost, command
from .jobs import BusDirectory, JobEngine, Store

DesignLookup = Callable[[str], dict[str, Any] | None]
STORE_NAME = "labctl.db"  # where `labctl jobs`, `approve`, `handoff` look by default (labctl-data/labctl.db)


@dataclass
class SimulationSpeeds:
    """Simulated seconds per real second, per device kind (the demo runs a day's lab in minutes)."""

    printer: float = 1000.0
    rig: float = 400.0
    liquid_handler: float = 200.0
    rig_adc_hz: float = 250.0


def _simulated_rig_class():
    from drivers.rig import RigDevice

    class HandoverRig(RigDevice):
        """The rig driver and device, unchanged, plus the simulated hand-over: before a test, the
        specimen that the job printed is mounted in the simulator's grips with the parameters it was
        printed with (a real specimen carries its properties with it)."""

        def __init__(self, *args: Any, simulator: Any, design_for: DesignLookup, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.simulator = simulator
            self.design_for = design_for

        @command()
        async def run_test(self, method: str, specimen_id: str, specimen: str | None = None,
                           out_dir: str | None = None, analyse: bool = True) -> dict[str, Any]:
            from labctl.agents.simlab import material_params

            design = self.design_for(specimen_id)
            if design is not None:
                self.simulator.mount(material_params(design), specimen_type=specimen, specimen_id=specimen_id)
            return await super().run_test(method, specimen_id, specimen, out_dir, analyse)

    return HandoverRig


@dataclass
class Lab:
    workdir: Path
    bus_url: str
    bus: Bus | None = None
    engine: JobEngine | None = None
    service: Any = None
    registry: Any = None
    devices: list[Any] = field(default_factory=list)
    simulators: list[Any] = field(default_factory=list)
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Any, *, bus_url: str) -> "ConfiguredLab":
        return ConfiguredLab(Path(config.storage.dir), bus_url, config=config)

    @classmethod
    def simulated(cls, workdir: str | Path, *, printers: int = 3, bus_url: str | None = None, seed: int = 0,
                  speeds: SimulationSpeeds | None = None) -> "SimulatedLab":
        return SimulatedLab(Path(workdir), bus_url or f"memory://lab-{uuid.uuid4().hex[:8]}", printers=printers,
                            seed=seed, speeds=speeds or SimulationSpeeds())

    async def __aenter__(self) -> "Lab":
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        raise NotImplementedError

    async def _start_controller(self) -> None:
        """Job engine on SQLite and the protocol layer's service, on this lab's bus."""
        from .agents.fabrication import Fabrication, FormulationDeck
        from .agents.service import AuditLog, LabService, lab_from_registry

        stack = self._stack
        assert self.bus is not None
        directory = await stack.enter_async_context(BusDirectory(self.bus))
        self.registry = directory.registry
        for device in self.devices:
            await directory.registry.wait_for(device.info.id, "online", timeout=30)
        store = Store(self.workdir / STORE_NAME)
        stack.callback(store.close)
        self.engine = await stack.enter_async_context(JobEngine(store, self.bus, directory=directory,
                                                                poll_interval=0.05))
        lab, devices = lab_from_registry(directory.registry)
        deck = FormulationDeck(component_a={"labware": "components", "well": "A1"},
                               component_b={"labware": "components", "well": "A2"}, destination="blend_plate")
        self.service = await stack.enter_async_context(LabService(
            self.engine, self.workdir, lab=lab, devices=devices, fabrication=Fabrication(formulation_deck=deck),
            audit=AuditLog(self.workdir / "audit.jsonl")))

    async def _host(self, device: Any) -> None:
        assert self.bus is not None
        await self._stack.enter_async_context(DeviceHost(self.bus, device))
        self.devices.append(device)

    def design_for(self, specimen_id: str) -> dict[str, Any] | None:
        """The parameters a specimen was printed with, from its job (for the simulated hand-over)."""
        if self.engine is None:
            return None
        for job in self.engine.store.jobs():
            if job.spec.specimen_id == specimen_id:
                return job.spec.design.get("parameters")
        return None


@dataclass
class SimulatedLab(Lab):
    printers: int = 3
    seed: int = 0
    speeds: SimulationSpeeds = field(default_factory=SimulationSpeeds)

    async def _start(self) -> None:
        from drivers.liquid_handler import LiquidHandlerConfig, LiquidHandlerDevice
        from drivers.rig import RigDriver
        from labctl.analysis import ComplianceTable
        from simulators.printer.lab import simulated_printer
        from simulators.rig import RigSimConfig, RigSimulator

        stack, speeds = self._stack, self.speeds
        links = self.workdir / "dev"
        links.mkdir(parents=True, exist_ok=True)
        self.bus = await stack.enter_async_context(connect(self.bus_url, client_id="labctl-controller"))
        for index in range(1, self.printers + 1):
            printer = await stack.enter_async_context(simulated_printer(
                f"printer-{index}", links, speed=speeds.printer, wire_timed=False, advanced_ok=True,
                rx_buffer=1024, faults={"seed": self.seed + index}))
            self.simulators.append(printer.simulator)
            await self._host(printer)

        rig_config = RigSimConfig(speed=speeds.rig, adc_hz=speeds.rig_adc_hz, seed=self.seed + 100,
                                  link=links / "rig-1")
        rig_sim = await stack.enter_async_context(RigSimulator(rig_config))
        driver = await stack.enter_async_context(RigDriver(rig_sim.port_path))
        rig = _simulated_rig_class()(driver, "rig-1", simulated=True, out_dir=self.workdir / "rig",
                                     compliance=ComplianceTable.from_stiffness(rig_config.frame_stiffness_n_per_mm),
                                     simulator=rig_sim, design_for=self.design_for)
        self.simulators.append(rig_sim)
        await self._host(rig)

        liquid = await stack.enter_async_context(LiquidHandlerDevice(
            LiquidHandlerConfig(id="liquid-1", backend_options={"speed": speeds.liquid_handler})))
        await self._host(liquid)
        await self._start_controller()


@dataclass
class ConfiguredLab(Lab):
    """Devices from a lab configuration (lab.toml): real hardware, or simulators a config points at."""

    config: Any = None

    async def _start(self) -> None:
        self.bus = await self._stack.enter_async_context(connect(self.bus_url, client_id="labctl-controller"))
        for device_config in self.config.devices:
            device = await self._stack.enter_async_context(_open_device(device_config, self.workdir))
            await self._host(device)
        await self._start_controller()


@contextlib.asynccontextmanager
async def _open_device(cfg: Any, workdir: Path):
    """A device object for one [[devices]] entry, connected; the driver is chosen by name."""
    import importlib

    from .config import ConfigError

    def need(field_name: str) -> Any:
        value = getattr(cfg, field_name)
        if value is None:
            raise ConfigError(f"devices[{cfg.id}]: driver {cfg.driver!r} needs `{field_name}`")
        return value

    if cfg.driver == "marlin":
        from drivers.printer import PrinterDevice, PrinterLimits

        limits = PrinterLimits.model_validate(cfg.limits) if cfg.limits else None
        async with PrinterDevice(cfg.id, need("port"), baud=cfg.baud or 250000, limits=limits,
                                 simulated=cfg.simulated, **cfg.options) as device:
            yield device
    elif cfg.driver == "labctl-rig":
        from drivers.rig import RigDevice, RigDriver
        from labctl.analysis import ComplianceTable, read_compliance_csv

        compliance = cfg.options.get("compliance_csv")
        table = read_compliance_csv(compliance) if compliance else (
            ComplianceTable.from_stiffness(cfg.options["frame_stiffness_n_per_mm"])
            if "frame_stiffness_n_per_mm" in cfg.options else None)
        async with RigDriver(need("port")) as driver:
            yield RigDevice(driver, cfg.id, simulated=cfg.simulated, compliance=table, out_dir=workdir / cfg.id)
    elif cfg.driver == "pylabrobot":
        from drivers.liquid_handler import LiquidHandlerConfig, LiquidHandlerDevice

        async with LiquidHandlerDevice(LiquidHandlerConfig(id=cfg.id, **cfg.options)) as device:
            yield device
    elif cfg.driver == "opentrons-http":
        from drivers.opentrons import OpentronsConfig, OpentronsDevice

        async with OpentronsDevice(OpentronsConfig(id=cfg.id, url=need("url"), simulated=cfg.simulated,
                                                   **cfg.options)) as device:
            yield device
    elif ":" in cfg.driver:
        module, _, attr = cfg.driver.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        device = factory(cfg)
        if hasattr(device, "__aenter__"):
            async with device as entered:
                yield entered
        else:
            yield device
    else:
        raise ConfigError(f"devices[{cfg.id}]: unknown driver {cfg.driver!r}; use marlin, labctl-rig, pylabrobot, "
                          "opentrons-http or module.path:factory")


def ground_truth(hypothesis: Any) -> dict[str, Any] | None:
    """What the simulated lab's material model says the answer is (None if it has no closed form).

    The true effect of the tested factor, treatment vs baseline, with every other factor at its first
    level, and the verdict an infallible experiment would reach: supported when the true effect is in
    the predicted direction and at least the claimed minimum, else refuted.
    """
    from labctl.agents.simlab import material_params
    from simulators.rig import true_properties

    field_of = {"modulus": "modulus_mpa", "strength": "tensile_strength_mpa"}
    if hypothesis.response not in field_of or hypothesis.prediction.direction == "differ":
        return None
    tested = hypothesis.tested_factor()
    others = {f.name: f.levels[0] for f in hypothesis.factors if f.name != tested.name}

    def truth(level: Any) -> float:
        params = hypothesis.parameters_for({**others, tested.name: level}).model_dump(mode="json")
        return getattr(true_properties(material_params(params)), field_of[hypothesis.response])

    base, treat = truth(hypothesis.baseline_level()), truth(hypothesis.treatment_level())
    relative = hypothesis.prediction.scale == "relative"
    effect = treat / base - 1 if relative else treat - base
    sign = 1.0 if hypothesis.prediction.direction == "increase" else -1.0
    verdict = "supported" if sign * effect >= hypothesis.prediction.minimum_effect else "refuted"
    return {"baseline": base, "treatment": treat, "effect": effect, "scale": "relative" if relative else "absolute",
            "minimum_effect": hypothesis.prediction.minimum_effect, "verdict": verdict}
