"""Transfer steps: what a liquid-handling job asks for, as data (validated before anything moves)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

WELL_NAME = re.compile(r"^[A-Z]{1,2}[0-9]{1,2}$")

TipPolicy = Literal["new", "reuse", "none"]
"""new: a fresh tip for this transfer, discarded after it; reuse: keep the mounted tip (pick one up
if none is mounted) and leave it on; none: no tip handling at all, a tip must already be mounted."""


class WellRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    labware: str = Field(min_length=1, description="Labware name in the deck layout.")
    well: str = Field(pattern=WELL_NAME.pattern, description="Well name, e.g. A1.")

    def __str__(self) -> str:
        return f"{self.labware}:{self.well}"


class Mix(BaseModel):
    """Mixing at the destination after the dispense: `cycles` aspirate/dispense pairs of `volume` µL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cycles: int = Field(ge=1, le=50)
    volume: float = Field(gt=0, description="µL per mixing stroke.")


class TransferStep(BaseModel):
    """Move `volume` µL from `source` to `destination` with one channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: WellRef
    destination: WellRef
    volume: float = Field(gt=0, le=100_000, description="µL")
    tip_policy: TipPolicy = "new"
    mix: Mix | None = None
    note: str = ""

    def describe(self) -> str:
        return f"{self.volume:g} µL {self.source} -> {self.destination}"


class StepRefusal(BaseModel):
    index: int
    step: str
    reason: str

    def __str__(self) -> str:
        return f"step {self.index} ({self.step}): {self.reason}"


class StepsRefused(ValueError):
    """The steps do not fit the deck; nothing was moved. Carries every refusal, first one first."""

    def __init__(self, refusals: list[StepRefusal]) -> None:
        self.refusals = refusals
        more = f" (and {len(refusals) - 1} more: " + "; ".join(str(r) for r in refusals[1:]) + ")" \
            if len(refusals) > 1 else ""
        super().__init__(f"refused before anything moved: {refusals[0]}{more}")


class Formulation(BaseModel):
    """Blends of two components in set ratios, one blend per destination well (replicates repeat a ratio).

    Component A goes into every well first with one reused tip (the wells are still empty, so the
    tip stays clean); component B follows with a new tip per well and mixes the blend.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    component_a: WellRef
    component_b: WellRef
    destination: str = Field(min_length=1, description="Labware that receives the blends.")
    percent_b: list[float] = Field(min_length=1, description="Share of component B per blend, 0-100 %.")
    total_volume: float = Field(gt=0, description="µL per well.")
    replicates: int = Field(1, ge=1, le=96)
    wells: list[str] | None = Field(None, description="Destination wells in order (default: A1, B1, ... by column).")
    mix: Mix | None = Mix(cycles=3, volume=50)

    @model_validator(mode="after")
    def _check(self) -> "Formulation":
        for i, share in enumerate(self.percent_b):
            if not 0 <= share <= 100:
                raise ValueError(f"percent_b[{i}] = {share} is outside 0-100 %")
        if self.wells is not None:
            for w in self.wells:
                if not WELL_NAME.match(w):
                    raise ValueError(f"destination well {w!r} is not a well name like A1")
            if len(self.wells) < self.blend_count:
                raise ValueError(f"{self.blend_count} blends need {self.blend_count} wells; {len(self.wells)} given")
        return self

    @property
    def blend_count(self) -> int:
        return len(self.percent_b) * self.replicates


def column_major_wells(rows: int = 8, columns: int = 12) -> list[str]:
    return [f"{chr(ord('A') + r)}{c + 1}" for c in range(columns) for r in range(rows)]


class Blend(BaseModel):
    well: str
    percent_b: float
    volume_a: float
    volume_b: float


def formulation_plan(f: Formulation, default_wells: list[str] | None = None) -> tuple[list[TransferStep], list[Blend]]:
    """The transfer steps that make the blends, and the plate map (well -> share of B and volumes)."""
    wells = f.wells or default_wells or column_major_wells()
    if len(wells) < f.blend_count:
        raise ValueError(f"{f.blend_count} blends do not fit the {len(wells)} wells of {f.destination}")
    blends: list[Blend] = []
    for share in f.percent_b:
        for _ in range(f.replicates):
            well = wells[len(blends)]
            volume_b = round(f.total_volume * share / 100.0, 6)
            blends.append(Blend(well=well, percent_b=share, volume_a=round(f.total_volume - volume_b, 6),
                                volume_b=volume_b))
    steps = [TransferStep(source=f.component_a, destination=WellRef(labware=f.destination, well=b.well),
                          volume=b.volume_a, tip_policy="reuse", note=f"component A for {b.percent_b:g} % B")
             for b in blends if b.volume_a > 0]
    # B mixes the blend, so every well gets its own tip; the reused A tip is dropped first.
    first_b = True
    for b in blends:
        if b.volume_b <= 0:
            continue
        mix = f.mix if f.mix and b.volume_a > 0 else None
        steps.append(TransferStep(source=f.component_b, destination=WellRef(labware=f.destination, well=b.well),
                                  volume=b.volume_b, tip_policy="new", mix=mix,
                                  note=f"component B for {b.percent_b:g} % B" + (" (drops the A tip)" if first_b else "")))
        first_b = False
    return steps, blends
