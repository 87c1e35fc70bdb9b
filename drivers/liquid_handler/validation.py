"""Check transfer steps against the deck before anything moves.

A dry run over a copy of the deck's state: current well volumes and capacities, tips left in the
racks, the tip on the channel. Every refusal names the step and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pylabrobot.liquid_handling import LiquidHandler
from pylabrobot.resources import Plate, TipRack, TipSpot, Well
from pylabrobot.resources.errors import ResourceNotFoundError

from .steps import StepRefusal, StepsRefused, TransferStep, WellRef

CHANNEL = 0


def find_well(lh: LiquidHandler, ref: WellRef) -> Well:
    """The PyLabRobot well `ref` names; ValueError with the reason if there is none."""
    try:
        labware = lh.deck.get_resource(ref.labware)
    except ResourceNotFoundError:
        names = ", ".join(sorted(r.name for r in lh.deck.get_all_resources() if isinstance(r, (Plate, TipRack))))
        raise ValueError(f"unknown labware {ref.labware!r} (on the deck: {names})") from None
    if not isinstance(labware, Plate):
        raise ValueError(f"{ref.labware} is a {type(labware).__name__}, not a plate")
    try:
        return labware.get_well(ref.well)
    except (IndexError, KeyError, ValueError):
        raise ValueError(f"unknown well {ref.well} on {ref.labware} "
                         f"({labware.num_items_y} rows x {labware.num_items_x} columns)") from None


def tip_spots(lh: LiquidHandler) -> list[TipSpot]:
    """Every spot still holding a tip, in the order tips are used (rack by rack, column by column).

    Zero-volume tips are fixtures (a Hamilton deck's teaching rack in the waste block), not for pipetting.
    """
    racks = [r for r in lh.deck.get_all_resources() if isinstance(r, TipRack)]
    return [spot for rack in racks for spot in rack.get_all_items()
            if spot.tracker.has_tip and spot.get_tip().maximal_volume > 0]


def mounted_tip_volume(lh: LiquidHandler) -> float | None:
    tracker = lh.head.get(CHANNEL)
    return tracker.get_tip().maximal_volume if tracker is not None and tracker.has_tip else None


@dataclass
class _DryRun:
    volumes: dict[str, float]
    capacities: dict[str, float]
    tips: list[float]
    mounted: float | None
    refusals: list[StepRefusal] = field(default_factory=list)


def validate_steps(lh: LiquidHandler, steps: list[TransferStep]) -> None:
    """Raise StepsRefused listing every step that would fail; return None if all would succeed."""
    state = _DryRun(volumes={}, capacities={}, tips=[s.get_tip().maximal_volume for s in tip_spots(lh)],
                    mounted=mounted_tip_volume(lh))
    for index, step in enumerate(steps):
        reason = _check_step(lh, state, step)
        if reason:
            state.refusals.append(StepRefusal(index=index, step=step.describe(), reason=reason))
    if state.refusals:
        raise StepsRefused(state.refusals)


def _check_step(lh: LiquidHandler, state: _DryRun, step: TransferStep) -> str | None:
    wells: dict[str, Well] = {}
    for role, ref in (("source", step.source), ("destination", step.destination)):
        try:
            well = find_well(lh, ref)
        except ValueError as exc:
            return f"{role}: {exc}"
        key = str(ref)
        wells[key] = well
        state.volumes.setdefault(key, well.tracker.get_used_volume())
        state.capacities.setdefault(key, well.max_volume)

    if step.tip_policy == "new" or (step.tip_policy == "reuse" and state.mounted is None):
        if not state.tips:
            return "no tips left on the deck"
        state.mounted = state.tips.pop(0)
    elif step.tip_policy == "none" and state.mounted is None:
        return "missing tip: tip_policy 'none' needs a tip already on the channel, and none is mounted"
    tip_max = state.mounted
    assert tip_max is not None

    src, dst = str(step.source), str(step.destination)
    if step.volume > tip_max:
        reason = f"volume {step.volume:g} µL is beyond the tip ({tip_max:g} µL max); split the transfer"
    elif state.volumes[src] < step.volume:
        reason = f"not enough liquid: {src} holds {state.volumes[src]:g} µL, the step needs {step.volume:g} µL"
    elif src != dst and state.volumes[dst] + step.volume > state.capacities[dst]:
        reason = (f"beyond the well: {dst} holds {state.volumes[dst]:g} of {state.capacities[dst]:g} µL; "
                  f"{step.volume:g} µL more would overflow it")
    elif step.mix and step.mix.volume > tip_max:
        reason = f"mixing volume {step.mix.volume:g} µL is beyond the tip ({tip_max:g} µL max)"
    elif step.mix and step.mix.volume > state.volumes[dst] + (0 if src == dst else step.volume):
        reason = (f"mixing volume {step.mix.volume:g} µL is more than the "
                  f"{state.volumes[dst] + (0 if src == dst else step.volume):g} µL that will be in {dst}")
    else:
        reason = None
    if reason:
        return reason
    state.volumes[src] -= step.volume
    state.volumes[dst] += step.volume
    if step.tip_policy == "new":
        state.mounted = None
    return None
