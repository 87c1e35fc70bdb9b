"""Stress-strain plots (PNG) with the modulus fit, strength, yield and break marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .tensile import TensileAnalysis


def plot_stress_strain(analyses: TensileAnalysis | Sequence[TensileAnalysis], path: str | Path,
                       title: str | None = None, dpi: int = 120) -> Path:
    """Write a PNG of one or more stress-strain curves; each with its modulus line and key points."""
    items = [analyses] if isinstance(analyses, TensileAnalysis) else list(analyses)
    if not items:
        raise ValueError("nothing to plot: no analyses given")
    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)  # Agg canvas without touching pyplot's global state
    axes = figure.add_subplot()
    for n, item in enumerate(items):
        r = item.result
        end = item.break_index + 1
        label = r.specimen_id or Path(r.source).name or f"specimen {n + 1}"
        (line,) = axes.plot(item.strain[:end] * 100, item.stress_mpa[:end], lw=1.2,
                            label=f"{label}: E = {r.modulus_mpa / 1000:.3g} GPa, UTS = {r.tensile_strength_mpa:.3g} MPa")
        colour = line.get_color()
        fit_strain = np.linspace(0, min(3 * r.modulus_strain_end_pct, r.strain_at_tensile_strength_pct), 20) / 100
        axes.plot(fit_strain * 100, r.modulus_mpa * fit_strain + r.modulus_intercept_mpa, ls="--", lw=0.9,
                  color=colour)
        window = item.modulus_window
        axes.plot(item.strain[window] * 100, item.stress_mpa[window], ".", ms=2, color=colour)
        axes.plot(r.strain_at_tensile_strength_pct, r.tensile_strength_mpa, "^", color=colour)
        if r.yield_strength_mpa is not None and r.yield_strain_pct is not None:
            axes.plot(r.yield_strain_pct, r.yield_strength_mpa, "o", mfc="none", color=colour)
        axes.plot(r.strain_at_break_pct, r.stress_at_break_mpa, "x", color=colour)
    axes.set_xlabel("strain (%)")
    axes.set_ylabel("stress (MPa)")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.set_title(title or "stress-strain (dashed: modulus fit; ^ strength, o yield, x break)", fontsize=10)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=dpi)
    return path
