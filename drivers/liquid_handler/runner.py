"""Run validated transfer steps on a PyLabRobot LiquidHandler, recording what each step did.

Every step records the volumes of the wells it touches before and after, the operations that
completed, and the composition of the destination (which liquids, how many µL of each), so a
blend's ratio traces back to the transfers that made it. A stopped job keeps the record of the
step it was in, down to the last completed operation.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, Field
from pylabrobot.liquid_handling import LiquidHandler
from pylabrobot.resources import Well

from .steps import TransferStep, WellRef
from .validation import CHANNEL, find_well, tip_spots, validate_steps

StepStatus = Literal["pending", "running", "done", "interrupted", "failed"]
JobStatus = Literal["running", "completed", "stopped", "failed"]


class StepRecord(BaseModel):
    index: int
    step: TransferStep
    status: StepStatus = "pending"
    before: dict[str, float] = Field(default_factory=dict, description="µL per touched well before the step.")
    after: dict[str, float] = Field(default_factory=dict, description="µL per touched well after the step.")
    operations: list[str] = Field(default_factory=list, description="Operations completed, in order.")
    destination_composition: dict[str, float] = Field(default_factory=dict, description="µL of each liquid.")
    tip_volume: float = Field(0.0, description="µL left in the tip when the step ended.")
    interrupted_operation: str | None = Field(None, description="The operation a stop cut short (not done).")
    error: str | None = None
    started: float | None = None
    finished: float | None = None


class JobRecord(BaseModel):
    job_id: str
    device: str
    backend: str
    simulated: bool
    deck: str
    status: JobStatus = "running"
    steps: list[StepRecord]
    started: float = Field(default_factory=time.time)
    finished: float | None = None
    error: str | None = None

    @property
    def done_count(self) -> int:
        return sum(1 for s in self.steps if s.status == "done")


Composition = dict[str, dict[str, float]]  # "labware:well" -> liquid -> µL
ProgressSink = Callable[[JobRecord, StepRecord], Awaitable[None]]


def _volume(well: Well) -> float:
    return round(well.tracker.get_used_volume(), 6)


def _take(mix: dict[str, float], volume: float) -> dict[str, float]:
    total = sum(mix.values())
    if total <= 0:
        return {}
    taken = {liquid: v * volume / total for liquid, v in mix.items()}
    for liquid, v in taken.items():
        mix[liquid] = max(mix[liquid] - v, 0.0)
    return taken


def _add(mix: dict[str, float], portion: dict[str, float]) -> None:
    for liquid, v in portion.items():
        mix[liquid] = mix.get(liquid, 0.0) + v


class StepRunner:
    """Runs steps on one LiquidHandler (single channel) and keeps the liquids' composition per well."""

    def __init__(self, lh: LiquidHandler, composition: Composition) -> None:
        self.lh = lh
        self.composition = composition
        self._tip_contents: dict[str, float] = {}
        self.in_progress: str | None = None  # the operation under way, for the record of a stop

    async def _op(self, description: str, call: Awaitable[Any]) -> None:
        self.in_progress = description
        await call
        self.in_progress = None

    def validate(self, steps: list[TransferStep]) -> None:
        validate_steps(self.lh, steps)

    async def run(self, record: JobRecord, progress: ProgressSink | None = None) -> JobRecord:
        """Run every step of `record` (already validated), updating it in place as operations complete."""
        for step_record in record.steps:
            step_record.status = "running"
            step_record.started = time.time()
            await self._run_step(step_record)
            step_record.status = "done"
            step_record.finished = time.time()
            if progress:
                await progress(record, step_record)
        await self.drop_tip(None)
        record.status = "completed"
        record.finished = time.time()
        return record

    def has_tip(self) -> bool:
        return self.lh.head[CHANNEL].has_tip

    def tip_volume(self) -> float:
        if not self.has_tip():
            return 0.0
        return round(self.lh.head[CHANNEL].get_tip().tracker.get_used_volume(), 6)

    async def drop_tip(self, record: StepRecord | None) -> None:
        if self.has_tip():
            await self._op("discard tip", self.lh.discard_tips(use_channels=[CHANNEL]))
            self._tip_contents = {}
            if record is not None:
                record.operations.append("discard tip")

    async def _run_step(self, rec: StepRecord) -> None:
        step = rec.step
        src, dst = find_well(self.lh, step.source), find_well(self.lh, step.destination)
        rec.before = {str(step.source): _volume(src), str(step.destination): _volume(dst)}
        if step.tip_policy == "new":
            await self.drop_tip(rec)
        if step.tip_policy in ("new", "reuse") and not self.has_tip():
            spot = tip_spots(self.lh)[0]
            what = f"pick up tip {spot.parent.name}:{spot.get_identifier()}"
            await self._op(what, self.lh.pick_up_tips([spot], use_channels=[CHANNEL]))
            rec.operations.append(what)
        await self._move(rec, step.source, src, step.destination, dst, step.volume)
        if step.mix:
            for cycle in range(step.mix.cycles):
                await self._move(rec, step.destination, dst, step.destination, dst, step.mix.volume,
                                 label=f"mix {cycle + 1}/{step.mix.cycles}")
        if step.tip_policy == "new":
            await self.drop_tip(rec)
        rec.after = {str(step.source): _volume(src), str(step.destination): _volume(dst)}
        rec.destination_composition = {k: round(v, 6) for k, v in
                                       self.composition.get(str(step.destination), {}).items() if v > 1e-9}
        rec.tip_volume = self.tip_volume()

    async def _move(self, rec: StepRecord, src_ref: WellRef, src: Well, dst_ref: WellRef, dst: Well,
                    volume: float, label: str = "") -> None:
        prefix = f"{label}: " if label else ""
        await self._op(f"{prefix}aspirate {volume:g} µL from {src_ref}",
                       self.lh.aspirate([src], vols=[volume], use_channels=[CHANNEL]))
        portion = _take(self.composition.setdefault(str(src_ref), {}), volume)
        _add(self._tip_contents, portion)
        rec.operations.append(f"{prefix}aspirate {volume:g} µL from {src_ref}")
        await self._op(f"{prefix}dispense {volume:g} µL into {dst_ref}",
                       self.lh.dispense([dst], vols=[volume], use_channels=[CHANNEL]))
        _add(self.composition.setdefault(str(dst_ref), {}), _take(self._tip_contents, volume))
        rec.operations.append(f"{prefix}dispense {volume:g} µL into {dst_ref}")


def initial_composition(layout: Any) -> Composition:
    """Liquids per well from a deck layout's `contents`."""
    return {f"{lw.name}:{well}": {c.liquid: c.volume} for lw in layout.labware for well, c in lw.contents.items()
            if c.volume > 0}
