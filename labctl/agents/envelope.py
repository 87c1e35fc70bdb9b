"""The safety envelope: every run a hypothesis implies is checked against material, device and quota limits.

Agents never send G-code or robot commands: the hypothesis schema has no field for them, and the
G-code is generated later from checked parameters. This module checks those parameters, for every
cell of the design, before anything is planned or queued. A refusal names the field path that
broke the limit (`factors.0.levels.1`, `fixed.nozzle_temp`, `budget.max_specimens`), the limit,
the value and the reason; all refusals are reported at once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .capabilities import MATERIALS, PARAMETER_RANGES, SPECIMEN_SIZE_MM, LabCapabilities, PrinterCapability
from .hypothesis import FORMULATION_PREFIX, Hypothesis, Level, PrintParameters
from .refusal import Refusal, Refused


class AgentQuota(BaseModel):
    """What one agent may spend; the HTTP endpoint gives each token its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_specimens_per_campaign: int = Field(200, ge=1)
    max_hours_per_campaign: float = Field(72.0, gt=0)
    max_active_campaigns: int = Field(3, ge=0)
    max_specimens_total: int = Field(2000, ge=0)


def _path(hypothesis: Hypothesis, cell: dict[str, Level], name: str) -> str:
    """Where a resolved parameter came from: the factor level that set it, or the fixed parameters."""
    for i, factor in enumerate(hypothesis.factors):
        if factor.name == name and name in cell:
            return f"factors.{i}.levels.{[str(v) for v in factor.levels].index(str(cell[name]))}"
    if name.startswith(FORMULATION_PREFIX):
        return f"fixed.formulation.{name[len(FORMULATION_PREFIX):]}"
    return f"fixed.{name}"


def fits_build_volume(specimen_type: str, orientation: str, volume: tuple[float, float, float]) -> bool:
    length, width, thickness = SPECIMEN_SIZE_MM[specimen_type]
    long_side, short_side = max(volume[:2]), min(volume[:2])
    footprint, height = {"flat": ((length, width), thickness), "on_edge": ((length, thickness), width),
                         "upright": ((width, thickness), length)}[orientation]
    return max(footprint) <= long_side and min(footprint) <= short_side and height <= volume[2]


def _printer_problems(params: PrintParameters, printer: PrinterCapability) -> dict[str, tuple[str, Any, str]]:
    """Parameter -> (limit, value, reason) for everything this printer cannot do."""
    material = MATERIALS[params.material]
    problems: dict[str, tuple[str, Any, str]] = {}
    if params.material not in printer.materials:
        problems["material"] = (f"materials of {printer.id}", params.material, f"{printer.id} is not loaded with it")
    nozzle = params.nozzle_temp if params.nozzle_temp is not None else material.default_nozzle_temp
    if nozzle > printer.max_nozzle_temp:
        problems["nozzle_temp"] = (f"<= {printer.max_nozzle_temp:g}", nozzle, f"{printer.id}'s hot end maximum")
    bed = params.bed_temp if params.bed_temp is not None else material.default_bed_temp
    if bed > printer.max_bed_temp:
        problems["bed_temp"] = (f"<= {printer.max_bed_temp:g}", bed, f"{printer.id}'s bed maximum")
    if params.layer_height > 0.8 * printer.nozzle_diameter:
        problems["layer_height"] = (f"<= {0.8 * printer.nozzle_diameter:g}", params.layer_height,
                                    f"80 % of {printer.id}'s {printer.nozzle_diameter:g} mm nozzle")
    if not fits_build_volume(params.specimen_type, params.orientation, printer.build_volume_mm):
        problems["orientation"] = ("build volume " + "x".join(f"{v:g}" for v in printer.build_volume_mm),
                                   f"{params.specimen_type} {params.orientation}",
                                   f"does not fit {printer.id}'s build volume")
    return problems


def _parameter_problems(params: PrintParameters) -> dict[str, tuple[str, Any, str]]:
    """Limits that hold whatever the printer: material temperature windows, parameter ranges, formulation."""
    material = MATERIALS[params.material]
    problems: dict[str, tuple[str, Any, str]] = {}
    for name, (low, high) in PARAMETER_RANGES.items():
        value = getattr(params, name)
        if not low <= value <= high:
            problems[name] = (f"[{low:g}, {high:g}]", value, f"{name} outside the range any print can use")
    for name, (low, high) in (("nozzle_temp", material.nozzle_temp), ("bed_temp", material.bed_temp)):
        value = getattr(params, name)
        if value is not None and not low <= value <= high:
            problems[name] = (f"[{low:g}, {high:g}] for {params.material}", value,
                              f"{name} outside {params.material}'s safe window")
    for component, fraction in params.formulation.items():
        if not 0.0 <= fraction <= 1.0:
            problems[FORMULATION_PREFIX + component] = ("[0, 1]", fraction, "a mass fraction is between 0 and 1")
    if sum(params.formulation.values()) > 1.0 + 1e-9:
        problems["formulation"] = ("sum <= 1", round(sum(params.formulation.values()), 6),
                                   "formulation fractions add up to more than 1")
    return problems


def eligible_printers(hypothesis: Hypothesis, lab: LabCapabilities) -> list[PrinterCapability]:
    """Printers that can make every run of the design (blocking needs each printer to see every level)."""
    runs = [hypothesis.parameters_for(cell) for cell in hypothesis.cells()]
    return [p for p in lab.printers if all(not _printer_problems(params, p) for params in runs)]


def check(hypothesis: Hypothesis, lab: LabCapabilities, quota: AgentQuota | None = None) -> list[Refusal]:
    """Every limit the hypothesis breaks, as refusals; an empty list means it is inside the envelope."""
    found: dict[tuple[str, str], Refusal] = {}

    def refuse(field: str, limit: str, value: Any, reason: str) -> None:
        found.setdefault((field, limit), Refusal(field=field, limit=limit, value=value, reason=reason))

    needs_liquid = False
    for cell in hypothesis.cells():
        params = hypothesis.parameters_for(cell)
        needs_liquid = needs_liquid or bool(params.formulation)
        for name, (limit, value, reason) in _parameter_problems(params).items():
            field = "fixed.formulation" if name == "formulation" else _path(hypothesis, cell, name)
            refuse(field, limit, value, reason)
        if lab.printers:
            per_printer = [_printer_problems(params, p) for p in lab.printers]
            if all(per_printer):
                # No printer can make this run: blame the parameters every printer objects to.
                common = set.intersection(*(set(problems) for problems in per_printer))
                for name in sorted(common) or sorted(per_printer[0]):
                    limit, value, reason = per_printer[0][name]
                    blamed = name
                    if name == "orientation" and "orientation" not in cell and "specimen_type" in cell:
                        blamed = "specimen_type"  # the geometry check fails because of the specimen the factor picks
                    if len(per_printer) > 1:
                        reason += " (and every other printer's)"
                    refuse(_path(hypothesis, cell, blamed), limit, value, reason)
    if not lab.printers:
        refuse("<lab>.printers", ">= 1 printer", 0, "the lab has no printer online")
    elif not found and not eligible_printers(hypothesis, lab):
        refuse("factors", "one printer makes every run", None,
               "each run fits some printer, but no printer can make all of them, so the design cannot be blocked")
    if not lab.rigs:
        refuse("<lab>.rigs", ">= 1 rig", 0, "the lab has no tensile rig online")
    if needs_liquid and not lab.liquid_handlers:
        refuse("fixed.formulation", ">= 1 liquid handler", 0, "formulations need a liquid handler and none is online")
    if quota is not None:
        if hypothesis.budget.max_specimens > quota.max_specimens_per_campaign:
            refuse("budget.max_specimens", f"<= {quota.max_specimens_per_campaign}", hypothesis.budget.max_specimens,
                   "over this agent's per-campaign specimen quota")
        if hypothesis.budget.max_hours > quota.max_hours_per_campaign:
            refuse("budget.max_hours", f"<= {quota.max_hours_per_campaign:g}", hypothesis.budget.max_hours,
                   "over this agent's per-campaign time quota")
    return list(found.values())


def enforce(hypothesis: Hypothesis, lab: LabCapabilities, quota: AgentQuota | None = None) -> None:
    """Raise Refused with every broken limit, or return if the hypothesis is inside the envelope."""
    refusals = check(hypothesis, lab, quota)
    if refusals:
        raise Refused(refusals)
