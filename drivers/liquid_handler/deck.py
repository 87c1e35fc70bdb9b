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
    slot: int | None = Field(None, ge=1, le=11, description="OT-2 deck slot (12 is the fixed trash).")
    carrier: str | None = Field(None, description="Hamilton decks: the carrier that holds this labware.")
    site: int | None = Field(None, ge=0, description="Hamilton decks: the carrier site, 0 at the front.")
    contents: dict[str, WellContents] = Field(default_factory=dict, description="Initial liquid per well.")
    tips: Literal["full", "empty"] | list[str] = Field("full", description="Tip racks: which spots hold tips.")

    @model_validator(mode="after")
    def _wells(self) -> "LabwarePlacement":
        for well in self.contents:
            if not WELL_NAME.match(well):
                raise ValueError(f"contents: {well!r} is not a well name like A1")
        return self


class CarrierPlacement(BaseModel):
    """A Hamilton carrier (e.g. TIP_CAR_480_A00, PLT_CAR_L5AC_A00) on the deck's rails."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,40}$")
    definition: str
    rails: int = Field(ge=1, le=55)


class DeckLayout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    deck: Literal["ot2", "starlet", "star"] = Field("ot2", description="OT-2 slots, or a Hamilton STARlet/STAR "
                                                                       "deck with carriers on rails.")
    description: str = ""
    carriers: list[CarrierPlacement] = Field(default_factory=list)
    labware: list[LabwarePlacement]

    @model_validator(mode="after")
    def _consistent(self) -> "DeckLayout":
        hamilton = self.deck != "ot2"
        carriers = {c.name for c in self.carriers}
        if not hamilton and self.carriers:
            raise ValueError("carriers: an OT-2 deck has slots, not carriers")
        for i, lw in enumerate(self.labware):
            if hamilton and (lw.carrier is None or lw.site is None or lw.slot is not None):
                raise ValueError(f"labware[{i}] {lw.name}: on a {self.deck} deck give carrier and site, not slot")
            if hamilton and lw.carrier not in carriers:
                raise ValueError(f"labware[{i}] {lw.name}: no carrier {lw.carrier!r} in carriers")
            if not hamilton and (lw.slot is None or lw.carrier is not None):
                raise ValueError(f"labware[{i}] {lw.name}: on an OT-2 deck give slot, not carrier/site")
        names = [lw.name for lw in self.labware] + [c.name for c in self.carriers]
        places = [lw.slot if lw.slot is not None else f"{lw.carrier}[{lw.site}]" for lw in self.labware]
        for label, values in (("name", names), ("place", places)):
            dup = {str(v) for v in values if values.count(v) > 1}
            if dup:
                raise ValueError(f"{label} used twice: {', '.join(sorted(dup))}")
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
    """A PyLabRobot deck (OTDeck, STARLetDeck or STARDeck) with the layout's labware placed, tips
    filled and wells filled.

    Call only after volume and tip tracking have been switched on (`tracking.enable()`), or the
    resources are created without trackers.
    """
    from pylabrobot.resources import Plate, STARDeck, STARLetDeck, TipRack
    from pylabrobot.resources.opentrons import OTDeck

    deck = {"ot2": OTDeck, "starlet": STARLetDeck, "star": STARDeck}[layout.deck]()
    carriers = {}
    for i, c in enumerate(layout.carriers):
        try:
            carriers[c.name] = labware_factory(c.definition)(name=c.name)
            deck.assign_child_resource(carriers[c.name], rails=c.rails)
        except (DeckError, ValueError) as exc:
            raise DeckError(f"deck {layout.name}: carriers[{i}] {c.name}: {exc}") from None
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
        try:
            if placement.slot is not None:
                deck.assign_child_at_slot(resource, placement.slot)
            else:
                carriers[placement.carrier][placement.site] = resource
        except (ValueError, IndexError, KeyError) as exc:
            raise DeckError(f"{where}: cannot place it: {exc}") from None
    return deck
