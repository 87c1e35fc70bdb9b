"""LiquidHandlerDevice: a PyLabRobot LiquidHandler on the device bus.

    device = LiquidHandlerDevice(LiquidHandlerConfig(id="liquid-1", deck="formulation_ot2"))
    async with device, DeviceHost.connect("memory://lab", device) as host:
        await host.serve_forever()

Every job is validated against the deck before anything moves; a refused job leaves the deck
untouched. Jobs run one at a time. An emergency stop cancels the job at once (part-way through an
operation on the simulated backend), keeps the record of what was done, and refuses new jobs until
`reset`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pylabrobot.liquid_handling import LiquidHandler
from pylabrobot.resources import Plate, set_tip_tracking, set_volume_tracking

from labctl.bus import DeviceInfo
from labctl.devicehost import command

from .backends import BACKENDS, make_backend
from .deck import DeckLayout, build_deck
from .runner import JobRecord, StepRecord, StepRunner, initial_composition
from .steps import Formulation, TransferStep, column_major_wells, formulation_plan
from .validation import CHANNEL, find_well, mounted_tip_volume, tip_spots

MAX_KEPT_JOBS = 50


class LiquidHandlerConfig(BaseModel):
    """How a lab configuration describes a liquid handler."""

    model_config = ConfigDict(extra="forbid")

    id: str = "liquid-1"
    deck: str = Field("formulation_ot2", description="Deck layout: a name in protocols/decks or a path.")
    backend: str = Field("simulated", description=f"One of {', '.join(BACKENDS)}.")
    backend_options: dict[str, Any] = Field(default_factory=dict)


class EmergencyStopped(RuntimeError):
    pass


def _pylabrobot_version() -> str:
    from importlib.metadata import version

    return version("pylabrobot")


class LiquidHandlerDevice:
    def __init__(self, config: LiquidHandlerConfig | None = None, **overrides: Any) -> None:
        self.config = config or LiquidHandlerConfig(**overrides)
        self.layout = DeckLayout.load(self.config.deck)
        # Trackers are attached when resources are created, so tracking must be on first.
        set_volume_tracking(True)
        set_tip_tracking(True)
        self.backend = make_backend(self.config.backend, **self.config.backend_options)
        self.lh = LiquidHandler(backend=self.backend, deck=build_deck(self.layout))
        self.runner = StepRunner(self.lh, initial_composition(self.layout))
        self.info = DeviceInfo(
            id=self.config.id, kind="liquid_handler", driver=f"pylabrobot/{self.config.backend}",
            simulated=self.config.backend == "simulated",
            capabilities=["run_steps", "validate_steps", "prepare_formulation", "status", "wells", "job", "reset"],
            limits={"channels": 1, "deck": self.layout.name, "deck_type": self.layout.deck,
                    "tip_max_ul": max((s.get_tip().maximal_volume for s in tip_spots(self.lh)), default=0)},
            firmware=f"pylabrobot {_pylabrobot_version()}",
        )
        self.emit: Any = None  # set by the DeviceHost
        self.set_status: Any = None
        self.jobs: dict[str, JobRecord] = {}
        self.estopped: str | None = None
        self._job_task: asyncio.Task[JobRecord] | None = None
        self._current: JobRecord | None = None
        self._setup_lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._setup_lock:
            if not self.lh.setup_finished:
                await self.lh.setup()

    async def close(self) -> None:
        if self._job_task and not self._job_task.done():
            self._job_task.cancel()
        if self.lh.setup_finished:
            await self.lh.stop()

    async def __aenter__(self) -> "LiquidHandlerDevice":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- commands -------------------------------------------------------------------------------
    @command()
    async def validate_steps(self, steps: list[dict[str, Any]]) -> dict[str, Any]:
        """Check steps against the deck as it is now; raises with every refused step."""
        await self.start()
        parsed = [TransferStep.model_validate(s) for s in steps]
        self.runner.validate(parsed)
        return {"ok": True, "steps": len(parsed)}

    @command()
    async def run_steps(self, steps: list[dict[str, Any]], job_id: str | None = None) -> dict[str, Any]:
        """Validate, then run the steps; returns the job record (volumes before/after every step)."""
        parsed = [TransferStep.model_validate(s) for s in steps]
        record = await self._run(parsed, job_id)
        return record.model_dump(mode="json")

    @command()
    async def prepare_formulation(self, formulation: dict[str, Any], job_id: str | None = None) -> dict[str, Any]:
        """Blend two components in set ratios into a plate; returns the plate map and the job record."""
        f = Formulation.model_validate(formulation)
        destination = self.lh.deck.get_resource(f.destination) if self.lh.deck.has_resource(f.destination) else None
        default_wells = None
        if isinstance(destination, Plate):
            # Without explicit wells, blends go to the plate's next empty wells, so successive jobs
            # (one per specimen) fill the plate instead of overflowing its first well.
            default_wells = [name for name in column_major_wells(destination.num_items_y, destination.num_items_x)
                             if destination.get_well(name).tracker.get_used_volume() <= 0]
        steps, blends = formulation_plan(f, default_wells)
        record = await self._run(steps, job_id)
        plate_map = []
        for blend in blends:
            mix = self.runner.composition.get(f"{f.destination}:{blend.well}", {})
            total = sum(mix.values())
            measured_b = 100.0 * mix.get(self._liquid_at(f.component_b), 0.0) / total if total else 0.0
            plate_map.append({**blend.model_dump(), "volume": round(total, 6),
                              "measured_percent_b": round(measured_b, 6)})
        return {"plate_map": plate_map, "job": record.model_dump(mode="json")}

    @command()
    async def status(self) -> dict[str, Any]:
        current = self._current
        return {
            "device": self.info.id, "backend": self.config.backend, "deck": self.layout.name,
            "estopped": self.estopped, "busy": bool(self._job_task and not self._job_task.done()),
            "current_job": current.job_id if current and current.status == "running" else None,
            "current_step": next((s.index for s in current.steps if s.status == "running"), None) if current else None,
            "tips_left": len(tip_spots(self.lh)), "tip_mounted": mounted_tip_volume(self.lh) is not None,
            "jobs": [{"job_id": j.job_id, "status": j.status, "steps": len(j.steps), "done": j.done_count}
                     for j in self.jobs.values()],
        }

    @command()
    async def wells(self, labware: str) -> dict[str, Any]:
        """Volume and composition of every non-empty well of one plate."""
        plate = self.lh.deck.get_resource(labware) if self.lh.deck.has_resource(labware) else None
        if not isinstance(plate, Plate):
            raise ValueError(f"no plate {labware!r} on deck {self.layout.name}")
        out = {}
        for well in plate.get_all_items():
            volume = well.tracker.get_used_volume()
            if volume > 0:
                key = f"{labware}:{well.get_identifier()}"
                out[well.get_identifier()] = {"volume": round(volume, 6), "max_volume": well.max_volume,
                                              "composition": {k: round(v, 6) for k, v in
                                                              self.runner.composition.get(key, {}).items() if v > 1e-9}}
        return {"labware": labware, "wells": out}

    @command()
    async def job(self, job_id: str) -> dict[str, Any]:
        if job_id not in self.jobs:
            raise ValueError(f"no job {job_id!r} on {self.info.id}")
        return self.jobs[job_id].model_dump(mode="json")

    @command()
    async def reset(self) -> dict[str, Any]:
        """Clear an emergency stop: discard any tip (its liquid is lost) and accept jobs again."""
        if self._job_task and not self._job_task.done():
            raise RuntimeError("a job is still running")
        await self.start()
        had_tip = self.runner.has_tip()
        lost = self.runner.tip_volume()
        await self.runner.drop_tip(None)
        self.estopped = None
        if self.set_status:
            await self.set_status("online")
        return {"ok": True, "discarded_tip": had_tip, "liquid_lost_ul": lost}

    async def emergency_stop(self) -> None:
        self.estopped = f"emergency stop at {time.strftime('%H:%M:%S')}"
        task = self._job_task
        if task and not task.done():
            task.cancel()
            # Let the job record its stop before the host reports the device estopped.
            await asyncio.wait([task], timeout=2.0)

    # -- internals ------------------------------------------------------------------------------
    def _liquid_at(self, ref: Any) -> str:
        mix = self.runner.composition.get(str(ref), {})
        return max(mix, key=mix.get) if mix else str(ref)

    async def _run(self, steps: list[TransferStep], job_id: str | None) -> JobRecord:
        await self.start()
        if self.estopped:
            raise EmergencyStopped(f"{self.info.id} is emergency-stopped ({self.estopped}); send reset first")
        if self._job_task and not self._job_task.done():
            raise RuntimeError(f"{self.info.id} is busy with job {self._current.job_id if self._current else '?'}")
        self.runner.validate(steps)  # raises StepsRefused; nothing has moved
        record = JobRecord(job_id=job_id or uuid.uuid4().hex[:12], device=self.info.id, backend=self.config.backend,
                           simulated=self.info.simulated, deck=self.layout.name,
                           steps=[StepRecord(index=i, step=s) for i, s in enumerate(steps)])
        self._remember(record)
        self._current = record
        if self.set_status:
            await self.set_status("busy", job=record.job_id)
        self._job_task = asyncio.create_task(self.runner.run(record, self._progress))
        try:
            await self._job_task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                self._job_task.cancel()
                self._mark_stopped(record, "the command was cancelled")
                raise
            self._mark_stopped(record, self.estopped or "stopped")
            raise EmergencyStopped(self._stop_summary(record)) from None
        except Exception as exc:
            self._mark_failed(record, exc)
            raise
        finally:
            if self.set_status and not self.estopped:
                await self.set_status("online")
        return record

    async def _progress(self, record: JobRecord, step: StepRecord) -> None:
        if self.emit:
            await self.emit("progress", {"job_id": record.job_id, "step": step.index, "of": len(record.steps),
                                         "done": record.done_count, "after": step.after})

    def _remember(self, record: JobRecord) -> None:
        self.jobs[record.job_id] = record
        while len(self.jobs) > MAX_KEPT_JOBS:
            self.jobs.pop(next(iter(self.jobs)))

    def _rollback_unfinished(self, step: StepRecord) -> None:
        # PyLabRobot commits volume changes only when an aspirate/dispense returns; one cut short
        # by a stop is left pending, and the record counts it as not done.
        for ref in (step.step.source, step.step.destination):
            find_well(self.lh, ref).tracker.rollback()
        head = self.lh.head[CHANNEL]
        if head.has_tip:
            head.get_tip().tracker.rollback()

    def _close_step(self, step: StepRecord, status: str, error: str) -> None:
        step.status = status  # type: ignore[assignment]
        step.error = error
        step.finished = time.time()
        step.after = {str(ref): round(find_well(self.lh, ref).tracker.get_used_volume(), 6)
                      for ref in (step.step.source, step.step.destination)}
        step.tip_volume = self.runner.tip_volume()

    def _mark_stopped(self, record: JobRecord, reason: str) -> None:
        for step in record.steps:
            if step.status == "running":
                step.interrupted_operation = self.runner.in_progress
                self._rollback_unfinished(step)
                self._close_step(step, "interrupted", reason)
        self.runner.in_progress = None
        record.status = "stopped"
        record.error = reason
        record.finished = time.time()

    def _mark_failed(self, record: JobRecord, exc: Exception) -> None:
        for step in record.steps:
            if step.status == "running":
                self._close_step(step, "failed", f"{type(exc).__name__}: {exc}")
        record.status = "failed"
        record.error = f"{type(exc).__name__}: {exc}"
        record.finished = time.time()

    def _stop_summary(self, record: JobRecord) -> str:
        step = next((s for s in record.steps if s.status == "interrupted"), None)
        where = (f"in step {step.index} ({step.step.describe()}) after {len(step.operations)} operation(s)"
                 f", cutting short: {step.interrupted_operation}" if step else "between steps")
        return (f"job {record.job_id} emergency-stopped {where}; {record.done_count} of {len(record.steps)} "
                f"steps done; {self.runner.tip_volume():g} µL left in the tip; record: job {record.job_id}")
