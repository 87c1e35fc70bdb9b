"""The experiment designer: from a hypothesis to the cheapest plan that can settle it (a dry run).

- Design: a two-level contrast, a one-way layout, or the full factorial of every factor's levels.
- Replicates: the smallest number per group that reaches the stated power for the minimum effect
  at the assumed CV (two-sided two-sample t), spread over the other factors' cells, then capped
  by the specimen and hour budgets (the plan reports the power it really has).
- Sequential plans run in batches of `batch_size` replicates per cell, up to the budget.
- Blocking: every printer that can make all runs is a block; within each level of the tested
  factor runs go round-robin across printers, so each printer makes each level equally often
  (+-1, also at every batch boundary) and a printer's bias cannot masquerade as the effect.
- Randomised run order from the hypothesis's seed (within each batch when sequential).
- Cost and duration estimate from the lab's planning times.
`plan()` never touches a device.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from protocols.specimens import SPECIMENS

from .capabilities import MATERIALS, LabCapabilities
from .envelope import AgentQuota, eligible_printers, enforce
from .hypothesis import Hypothesis, Level, PrintParameters, parse_hypothesis
from .refusal import Refusal, Refused
from .stats import power_two_sample, replicates_for_power
from .verdict import minimum_effect_sd_units


class Run(BaseModel):
    """One specimen to make and test."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    order: int  # position in the randomised run order
    batch: int  # sequential batch (0 for fixed-sample plans)
    replicate: int
    cell: dict[str, Level]
    parameters: PrintParameters
    printer: str  # the block
    needs_formulation: bool


class Estimate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    specimens: int
    print_hours: float
    test_hours: float
    duration_hours: float
    material_g: float
    cost: float
    currency: str = "EUR"


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    plan_id: str
    hypothesis_id: str
    design: Literal["contrast", "one_way", "full_factorial"]
    tested_factor: str
    baseline: str
    treatment: str
    cells: list[dict[str, Level]]
    replicates_per_cell: int
    n_per_group: int  # tested-factor group size (replicates x other cells)
    planned_power: float
    target_power: float
    minimum_effect_sd_units: float
    sequential: bool
    batches: int
    batch_size: int
    printers: list[str]
    build_volume_mm: tuple[float, float, float]  # the smallest of the blocked printers': G-code fits them all
    runs: list[Run]
    estimate: Estimate
    simulated: bool
    warnings: list[str]

    def batch_runs(self, batch: int) -> list[Run]:
        return [r for r in self.runs if r.batch == batch]


def hypothesis_id(h: Hypothesis) -> str:
    canonical = json.dumps(h.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "hyp-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _specimen_grams(params: PrintParameters) -> float:
    volume_cm3 = SPECIMENS[params.specimen_type].volume_mm3 / 1000
    shell = 0.3  # perimeters and skins are always solid
    return volume_cm3 * MATERIALS[params.material].density_g_cm3 * (shell + (1 - shell) * params.infill_density)


def estimate(runs: list[Run], lab: LabCapabilities, printers: int) -> Estimate:
    n = len(runs)
    formulations = {json.dumps(r.parameters.formulation, sort_keys=True) for r in runs if r.needs_formulation}
    grams = [_specimen_grams(r.parameters) for r in runs]
    material_cost = sum(g / 1000 * MATERIALS[r.parameters.material].cost_per_kg for g, r in zip(grams, runs))
    print_hours = n * lab.print_minutes_per_specimen / 60
    return Estimate(specimens=n, print_hours=round(print_hours, 3),
                    test_hours=round(n * lab.test_minutes_per_specimen / 60, 3),
                    duration_hours=round(_duration_hours(n, lab, printers, len(formulations)) if n else 0.0, 3),
                    material_g=round(sum(grams), 2),
                    cost=round(material_cost + print_hours * lab.printer_cost_per_hour, 2))


def _duration_hours(specimens: int, lab: LabCapabilities, printers: int, formulations: int) -> float:
    rigs, handlers = max(1, len(lab.rigs)), max(1, len(lab.liquid_handlers))
    mix = math.ceil(formulations / handlers) * lab.mix_minutes_per_formulation
    prints = math.ceil(specimens / max(1, printers)) * lab.print_minutes_per_specimen
    tests = math.ceil(specimens / rigs) * lab.test_minutes_per_specimen
    return (mix + max(prints + lab.test_minutes_per_specimen, lab.print_minutes_per_specimen + tests)) / 60


def plan(hypothesis: Hypothesis | dict[str, Any] | str, lab: LabCapabilities, quota: AgentQuota | None = None) -> Plan:
    """Validate, check the envelope, and design the experiment; raises Refused with every problem found."""
    h = parse_hypothesis(hypothesis)
    enforce(h, lab, quota)
    eligible = eligible_printers(h, lab)
    printers = [p.id for p in eligible]
    cells = h.cells()
    tested = h.tested_factor()
    other_cells = len(cells) // len(tested.levels)
    formulations = len({json.dumps(h.parameters_for(c).formulation, sort_keys=True) for c in cells
                        if h.parameters_for(c).formulation})
    warnings: list[str] = []
    delta = minimum_effect_sd_units(h)

    # Budget caps on replicates per cell.
    cap_specimens = h.budget.max_specimens // len(cells)
    cap_hours = 0
    for r in range(1, cap_specimens + 1):
        if _duration_hours(r * len(cells), lab, len(printers), formulations) <= h.budget.max_hours:
            cap_hours = r
        else:
            break
    cap = min(cap_specimens, cap_hours)
    if cap < 2:
        raise Refused([Refusal(field="budget.max_hours", value=h.budget.max_hours,
                               limit=f">= {_duration_hours(2 * len(cells), lab, len(printers), formulations):.2f}",
                               reason="the budget cannot pay for 2 replicates per cell, the least an analysis needs")])

    sequential = h.sequential is not None and h.sequential.enabled
    needed_group = replicates_for_power(delta, h.alpha, h.power)
    needed = max(2, math.ceil(needed_group / other_cells))
    if sequential:
        batch_size = h.sequential.batch_size  # type: ignore[union-attr]
        replicates = max(cap - cap % batch_size, min(cap, batch_size * h.sequential.min_batches))  # type: ignore[union-attr]
        batches = math.ceil(replicates / batch_size)
    else:
        batch_size, replicates, batches = 0, min(needed, cap), 1
        if needed > cap:
            warnings.append(f"the budget allows {cap} replicates per cell; {needed} are needed for power {h.power:g}")
    if len(printers) < len(lab.printers):
        warnings.append("printers left out of the blocks because they cannot make every run: "
                        + ", ".join(sorted({p.id for p in lab.printers} - set(printers))))
    n_group = replicates * other_cells
    planned_power = power_two_sample(n_group, delta, h.alpha)
    hid = hypothesis_id(h)
    pid = "plan-" + hashlib.sha256(f"{hid}:{sorted(printers)}:{replicates}".encode()).hexdigest()[:12]

    runs = _runs(h, cells, replicates, batch_size, printers, pid)
    return Plan(plan_id=pid, hypothesis_id=hid,
                design="contrast" if len(cells) == 2 else "one_way" if len(h.factors) == 1 else "full_factorial",
                tested_factor=tested.name, baseline=str(h.baseline_level()), treatment=str(h.treatment_level()),
                cells=cells, replicates_per_cell=replicates, n_per_group=n_group, planned_power=round(planned_power, 4),
                target_power=h.power, minimum_effect_sd_units=round(delta, 4), sequential=sequential,
                batches=batches, batch_size=batch_size, printers=printers, runs=runs,
                build_volume_mm=tuple(min(p.build_volume_mm[i] for p in eligible) for i in range(3)),
                estimate=estimate(runs, lab, len(printers)), simulated=lab.simulated, warnings=warnings)


def _runs(h: Hypothesis, cells: list[dict[str, Level]], replicates: int, batch_size: int, printers: list[str],
          plan_id: str) -> list[Run]:
    tested = h.tested_factor().name
    rng = np.random.default_rng(h.seed)
    # (batch, replicate, cell index) in a stable order, then printers round-robin per tested level.
    slots = [((rep // batch_size) if batch_size else 0, rep, i) for rep in range(replicates) for i in range(len(cells))]
    turn: dict[str, int] = defaultdict(int)
    level_index = {str(v): k for k, v in enumerate(h.tested_factor().levels)}
    assigned = []
    for batch, rep, i in slots:
        level = str(cells[i][tested])
        printer = printers[(level_index[level] + turn[level]) % len(printers)]
        turn[level] += 1
        assigned.append((batch, rep, i, printer))
    order: list[tuple[int, int, int, str]] = []
    for batch in sorted({a[0] for a in assigned}):
        in_batch = [a for a in assigned if a[0] == batch]
        order.extend(in_batch[k] for k in rng.permutation(len(in_batch)))
    runs = []
    for position, (batch, rep, i, printer) in enumerate(order):
        params = h.parameters_for(cells[i])
        runs.append(Run(run_id=f"{plan_id}-r{position + 1:03d}", order=position, batch=batch, replicate=rep,
                        cell=cells[i], parameters=params, printer=printer, needs_formulation=bool(params.formulation)))
    return runs
