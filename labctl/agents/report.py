"""A campaign's report: Markdown with PNG plots (curves per group, the effect with its interval), the data
table and a link to the provenance manifest. Simulated data is labelled as such at the top."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .design import Plan
from .hypothesis import Hypothesis
from .verdict import Analysis, Observation

Curve = tuple[Sequence[float], Sequence[float]]  # (x, y): strain (%) and stress (MPa), or extension and force

UNITS = {"modulus": "MPa", "strength": "MPa", "strain_at_break": "", "toughness": "J", "curve_distance": ""}


def _figure(width: float = 7, height: float = 4.2) -> Figure:
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)  # Agg without pyplot's global state: safe in servers and threads
    return figure


def plot_curves(curves: Mapping[str, Curve], groups: Mapping[str, str], path: Path,
                labels: tuple[str, str] = ("strain (%)", "stress (MPa)")) -> Path:
    """One colour per group (level of the tested factor); every specimen's curve."""
    figure = _figure()
    axes = figure.add_subplot()
    colours: dict[str, str] = {}
    for run_id, (x, y) in curves.items():
        group = groups.get(run_id, "?")
        first = group not in colours
        colour = colours.setdefault(group, f"C{len(colours) % 10}")
        axes.plot(x, y, lw=1, color=colour, alpha=0.8, label=group if first else None)
    axes.set_xlabel(labels[0])
    axes.set_ylabel(labels[1])
    axes.grid(alpha=0.3)
    if colours:
        axes.legend(title="group", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def plot_effect(analysis: Analysis, path: Path) -> Path:
    """Group means with their values, and the effect with its confidence interval against the claim."""
    figure = _figure(8, 3.8)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for i, group in enumerate(analysis.groups):
        if group.n:
            sem = group.sem if math.isfinite(group.sem) else 0.0
            left.errorbar([i], [group.mean], yerr=[1.96 * sem], fmt="o", capsize=4, color="C0")
    left.set_xticks(range(len(analysis.groups)), [g.level for g in analysis.groups])
    left.set_xlabel(analysis.tested_factor)
    left.set_ylabel(f"{analysis.response} (mean, 95 % CI)")
    left.grid(alpha=0.3)
    effect = analysis.effect
    if effect is not None:
        scale = 100 if effect.scale == "relative" else 1
        unit = " (%)" if effect.scale == "relative" else ""
        right.errorbar([effect.estimate * scale], [0], xerr=[[(effect.estimate - effect.ci_low) * scale],
                                                            [(effect.ci_high - effect.estimate) * scale]],
                       fmt="s", capsize=6, color="C3", label=f"{effect.ci_level:.0%} CI")
        right.axvline(0, color="grey", lw=1)
        right.axvline(effect.minimum_effect * scale, color="C2", ls="--", lw=1, label="claimed minimum")
        right.set_yticks([])
        right.set_xlabel(f"effect {analysis.treatment} vs {analysis.baseline}{unit}")
        right.legend(fontsize=8)
    right.set_title(f"verdict: {analysis.verdict}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}"


def write_report(directory: str | Path, hypothesis: Hypothesis, plan: Plan, analysis: Analysis,
                 observations: Sequence[Observation], *, campaign_id: str, curves: Mapping[str, Curve] | None = None,
                 manifests: Sequence[str | Path] = (), curve_labels: tuple[str, str] = ("strain (%)", "stress (MPa)")) -> Path:
    """Write report.md (and its PNGs) into `directory`; returns the Markdown file's path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    runs = {r.run_id: r for r in plan.runs}
    tested = plan.tested_factor
    plot_effect(analysis, out / "effect.png")
    lines = [f"# Campaign {campaign_id}", ""]
    if analysis.simulated or plan.simulated:
        lines += ["> **SIMULATED DATA.** Every measurement below comes from simulated devices, not from hardware.", ""]
    lines += [f"**Hypothesis** ({plan.hypothesis_id}): {hypothesis.statement}", "",
              f"**Verdict: {analysis.verdict.upper()}**: {analysis.reason}", ""]
    effect = analysis.effect
    if effect is not None:
        pct = effect.scale == "relative"
        show = (lambda v: f"{v * 100:+.1f} %") if pct else (lambda v: f"{v:+.4g} {UNITS[analysis.response]}")
        lines += ["| quantity | value |", "|---|---|",
                  f"| response | {analysis.response} |",
                  f"| contrast | {tested}: {analysis.treatment} vs {analysis.baseline} |",
                  f"| effect | {show(effect.estimate)} |",
                  f"| {effect.ci_level:.0%} CI (decision) | {show(effect.ci_low)} to {show(effect.ci_high)} |",
                  f"| 95 % CI | {show(effect.ci95_low)} to {show(effect.ci95_high)} |",
                  f"| claimed minimum effect | {show(effect.minimum_effect)} |",
                  f"| standardised effect (g) | {_fmt(effect.standardised, 3)} |",
                  f"| test | {analysis.test}, p = {_fmt(analysis.p_value, 3)}, alpha = {analysis.alpha:g} |",
                  f"| power at the claimed minimum | {_fmt(analysis.power_at_minimum_effect, 3)} |"]
        if analysis.sequential:
            seq = analysis.sequential
            lines.append(f"| sequential e-values | support {_fmt(seq['e_support'], 3)}, refute "
                         f"{_fmt(seq['e_refute'], 3)} (threshold {seq['threshold']:g}) |")
        lines.append("")
    lines += ["![effect](effect.png)", ""]
    if curves:
        groups = {run_id: str(runs[run_id].cell.get(tested)) if run_id in runs else "?" for run_id in curves}
        plot_curves(curves, groups, out / "curves.png", curve_labels)
        lines += ["## Curves per group", "", "![curves](curves.png)", ""]
    lines += ["## Groups", "", "| level | n | mean | sd | CV |", "|---|---|---|---|---|"]
    lines += [f"| {g.level} | {g.n} | {_fmt(g.mean)} | {_fmt(g.sd)} | {_fmt(g.cv, 3)} |" for g in analysis.groups]
    lines += ["", "## Plan", "",
              f"Plan {plan.plan_id}: {plan.design}, {len(plan.cells)} cells x {plan.replicates_per_cell} replicates "
              f"(planned power {plan.planned_power:g}), blocked over {', '.join(plan.printers)}; "
              f"estimate {plan.estimate.duration_hours:g} h, {plan.estimate.material_g:g} g, "
              f"{plan.estimate.cost:g} {plan.estimate.currency}."]
    lines += [f"- warning: {w}" for w in plan.warnings]
    lines += ["", "## Data", "", f"| run | {' | '.join(f.name for f in hypothesis.factors)} | printer | {analysis.response} | simulated |",
              "|---|" + "---|" * (len(hypothesis.factors) + 3)]
    for obs in observations:
        run = runs.get(obs.run_id)
        cells = " | ".join(str(obs.cell.get(f.name)) for f in hypothesis.factors)
        lines.append(f"| {obs.run_id} | {cells} | {run.printer if run else '-'} | {_fmt(obs.value, 5)} | "
                     f"{'yes' if obs.simulated else 'no'} |")
    lines += ["", "## Provenance", ""]
    for manifest in map(Path, manifests):
        lines.append(f"- manifest of hashes: [{manifest.parent.name}/{manifest.name}]({manifest.resolve().as_uri()}) "
                     f"(`labctl verify {manifest.parent}` recomputes them)")
    if not manifests:
        lines.append("No provenance export yet.")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
