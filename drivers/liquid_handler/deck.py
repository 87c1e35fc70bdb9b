"""Deck layouts as data (protocols/decks/*.json), built into PyLabRobot resources.

Labware comes from PyLabRobot's own resource library, whose definitions are code that ships with
the package (e.g. `cor_96_wellplate_360uL_Fb`, `hamilton_96_tiprack_300uL`). PyLabRobot's
Opentrons loaders fetch JSON from GitHub at run time, so they are refused here.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .steps import WELL_NAME

DECKS_DIR = Path(__file__).resolve().parents[2] / "protocols" / "decks"

# Modules whose "definitions" download from the internet when called.
_DOWNLOADING_MODULES = ("pylabrobot.resources.opentrons.tip_racks", "pylabrobot.resources.opentrons.tube_racks",
                        "pylabrobot.resources.opentrons.load")


class DeckError(ValueError):
    """A deck layout that cannot be built; the message names the file and the field."""


class WellContents(BaseModel):
    model_config = ConfigDict(extra="forbid")

    liquid: str = Field(min_length=1)
    volume: float = Field(ge=0, description="µL")


class LabwarePlacement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,40}$")
    definition: str = Field(description="A PyLabRobot resource factory, e.g. cor_96_wellplate_360uL_Fb.")
    slot: int = Field(ge=1, le=11, description="OT-2 deck slot (12 is the fixed trash).")
    contents: dict[str, WellContents] = Field(default_factory=dict, description="Initial liquid per well.")
    tips: Literal["full", "empty"] | list[str] = Field("full", description="Tip racks: which spots hold tips.")

    @model_validator(mode="after")
    def _wells(self) -> "LabwarePlacement":
        for well in self.contents:
            if not WELL_NAME.match(well):
                raise ValueError(f"contents: {well!r} is not a well name like A1")
        return self


class DeckLayout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    deck: Literal["ot2"] = "ot2"
    description: str = ""
    labware: list[LabwarePlacement]

    @model_validator(mode="after")
    def _unique(self) -> "DeckLayout":
        names = [lw.name for lw in self.labware]
        slots = [lw.slot for lw in self.labware]
        for label, values in (("labware name", names), ("slot", slots)):
            dup = {v for v in values if values.count(v) > 1}
            if dup:
                raise ValueError(f"{label} used twice: {', '.join(map(str, sorted(dup)))}")
        return self

    @classmethod
    def load(cls, path: str | Path) -> "DeckLayout":
        """Load a layout from a path or from a name in protocols/decks (without .json)."""
        path = resolve_deck_path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DeckError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "<root>"
            raise DeckError(f"{path}: {where}: {first['msg']}") from None


def resolve_deck_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.exists():
        return path
    candidate = DECKS_DIR / f"{name_or_path}.json"
    if candidate.exists():
        return candidate
    known = ", ".join(sorted(p.stem for p in DECKS_DIR.glob("*.json")))
    raise DeckError(f"no deck layout {str(name_or_path)!r} (not a file; known layouts: {known})")


def labware_factory(definition: str):
    """The PyLabRobot resource factory named `definition`, refusing ones that download at run time."""
    import pylabrobot.resources as resources

    factory = getattr(resources, definition, None)
    if factory is None or not callable(factory) or inspect.isclass(factory):
        raise DeckError(f"labware definition {definition!r} is not in PyLabRobot's resource library")
    if getattr(factory, "__module__", "").startswith(_DOWNLOADING_MODULES):
        raise DeckError(f"labware definition {definition!r} downloads its JSON from GitHub at run time; "
                        "use a definition shipped as code (e.g. hamilton_96_tiprack_300uL, cor_96_wellplate_360uL_Fb)")
    return factory


def build_deck(layout: DeckLayout):
    """A PyLabRobot OTDeck with the layout's labware placed, tips filled and wells filled.

    Call only after volume and tip tracking have been switched on (`tracking.enable()`), or the
    resources are created without trackers.
    """
    from pylabrobot.resources import Plate, TipRack
    from pylabrobot.resources.opentrons import OTDeck

    deck = OTDeck()
    for i, placement in enumerate(layout.labware):
        where = f"deck {layout.name}: labware[{i}] {placement.name}"
        try:
            resource = labware_factory(placement.definition)(name=placement.name)
        except DeckError as exc:
            raise DeckError(f"{where}: {exc}") from None
        if isinstance(resource, TipRack):
            if placement.contents:
                raise DeckError(f"{where}: a tip rack holds no liquid")
            if placement.tips == "full":
                resource.fill()
            elif placement.tips == "empty":
                resource.empty()
            else:
                try:
                    resource.set_tip_state({spot: spot in placement.tips for spot in
                                            [s.get_identifier() for s in resource.get_all_items()]})
                except Exception as exc:
                    raise DeckError(f"{where}: tips: {exc}") from None
        elif isinstance(resource, Plate):
            for well_name, contents in placement.contents.items():
                try:
                    well = resource.get_well(well_name)
                except (IndexError, KeyError, ValueError):
                    raise DeckError(f"{where}: contents: no well {well_name} in {placement.definition}") from None
                if contents.volume > well.max_volume:
                    raise DeckError(f"{where}: contents: {contents.volume:g} µL does not fit {well_name} "
                                    f"(holds {well.max_volume:g} µL)")
                well.tracker.set_volume(contents.volume)
        else:
            raise DeckError(f"{where}: {placement.definition} is a {type(resource).__name__}; "
                            "only plates and tip racks are supported")
        deck.assign_child_at_slot(resource, placement.slot)
    return deck
