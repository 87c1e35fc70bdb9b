"""Tensile analysis of one specimen: from a force-displacement curve to modulus, strength, yield, break.

Steps, in order (ISO 527-1 terms):
 1. machine compliance: d_specimen = d_measured - d_machine(F), when a table is given;
 2. preload trim: displacement is zeroed where the force first reaches the preload (interpolated);
    the data before it (slack) is dropped. Without a preload, displacement counts from the first sample;
 3. stress = F / (width * thickness) in MPa; strain = displacement / strain length (the gauge length,
    or whatever length the caller chose: see protocols.methods.TestMethod.strain_length_mm);
 4. break: the last sample before the force first falls to ``break_force_fraction`` of its peak
    (after the peak); without such a fall the record's last sample is used and a warning says so;
 5. chord modulus: least-squares line of stress on strain for the samples between 0.05 % and 0.25 %
    strain (before the peak); too few samples there is an error, not a guess;
 6. tensile strength: maximum stress; yield: the first zero-slope maximum (ISO 527 sigma_y: the stress
    later falls ``yield_drop_fraction`` below it before the break), else the 0.2 % offset yield
    (where the curve crosses the modulus line shifted by the offset), else none (brittle);
 7. strain at break, stress at break, toughness (area under stress-strain to break, MJ/m^3 = MPa)
    and energy to break (J).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats
from scipy.ndimage import uniform_filter1d

from .compliance import ComplianceTable
from .curves import Curve


class AnalysisError(ValueError):
    """A curve that cannot give the asked-for result (too few points, window never reached, ...)."""


class AnalysisSettings(BaseModel):
    """Knobs of the analysis; the defaults follow ISO 527-1."""

    model_config = ConfigDict(extra="forbid")

    preload_n: float | None = Field(None, ge=0, description="Zero displacement where the force first reaches this.")
    modulus_strain_start_pct: float = Field(0.05, ge=0)
    modulus_strain_end_pct: float = Field(0.25, gt=0)
    min_modulus_points: int = Field(10, ge=3, description="Fewest samples accepted in the modulus window.")
    yield_offset_pct: float = Field(0.2, gt=0, description="Offset of the offset-yield line, % strain.")
    yield_drop_fraction: float = Field(
        0.01, gt=0, lt=1, description="A zero-slope yield must be followed by a stress drop of this fraction.")
    break_force_fraction: float = Field(
        0.2, gt=0, lt=1, description="Break = force at or below this fraction of its peak (0.2 = an 80 % drop).")

    @classmethod
    def from_method(cls, method: Any, **overrides: Any) -> AnalysisSettings:
        """Settings matching a protocols.methods.TestMethod (modulus window, preload, break rule)."""
        values: dict[str, Any] = {
            "preload_n": method.preload_force_n or None,
            "modulus_strain_start_pct": method.modulus_strain_start_pct,
            "modulus_strain_end_pct": method.modulus_strain_end_pct,
            "min_modulus_points": method.min_modulus_points,
            "break_force_fraction": method.end.break_force_fraction,
        }
        values.update(overrides)
        return cls(**values)


class TensileResult(BaseModel):
    """Results for one specimen. Stresses in MPa, strains in %, toughness in MJ/m^3, energy in J."""

    model_config = ConfigDict(extra="forbid")

    specimen_id: str | None = None
    source: str = ""
    width_mm: float
    thickness_mm: float
    area_mm2: float
    strain_length_mm: float = Field(description="Length crosshead travel was divided by (gauge length by default).")
    strain_model: Literal["uniform", "narrow-section"] = Field(
        "uniform", description="'uniform': travel / strain_length_mm; 'narrow-section': see analyze().")
    narrow_length_mm: float | None = None
    preload_n: float | None
    compliance_corrected: bool
    compliance_source: str | None = None
    n_points: int = Field(description="Samples analysed, after the preload trim.")
    modulus_mpa: float
    modulus_points: int = Field(description="Samples in the modulus window used by the regression.")
    modulus_r2: float
    modulus_stderr_mpa: float
    modulus_intercept_mpa: float
    modulus_strain_start_pct: float
    modulus_strain_end_pct: float
    tensile_strength_mpa: float
    max_force_n: float
    strain_at_tensile_strength_pct: float
    yield_strength_mpa: float | None
    yield_strain_pct: float | None
    yield_method: Literal["zero-slope", "offset"] | None = Field(
        description="'zero-slope': first maximum followed by a drop (ISO 527 sigma_y); 'offset': offset-line "
                    "intersection (see yield_offset_pct); None: no yield before break.")
    yield_offset_pct: float | None
    stress_at_break_mpa: float
    strain_at_break_pct: float
    break_detected: bool
    toughness_mj_m3: float = Field(description="Area under the stress-strain curve up to break (MJ/m^3 = MPa).")
    energy_to_break_j: float
    metadata: dict[str, Any] = Field(default_factory=dict, description="Provenance: method, rig, simulated, ...")
    warnings: list[str] = Field(default_factory=list)

    @property
    def modulus_gpa(self) -> float:
        return self.modulus_mpa / 1000.0


@dataclass(frozen=True)
class TensileAnalysis:
    """A result together with the processed curve it came from (for plots and CSV export)."""

    result: TensileResult
    force_n: np.ndarray
    displacement_mm: np.ndarray  # specimen displacement: compliance removed, zeroed at the preload
    strain: np.ndarray  # fraction, not %
    stress_mpa: np.ndarray
    time_s: np.ndarray | None
    break_index: int
    modulus_window: np.ndarray  # indexes of the samples used for the modulus fit


def _trim_preload(force: np.ndarray, disp: np.ndarray, time: np.ndarray | None, preload: float | None,
                  source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if not preload:
        return force, disp - disp[0], time
    reached = np.flatnonzero(force >= preload)
    if reached.size == 0:
        raise AnalysisError(f"{source}: the force never reaches the preload {preload} N (maximum {force.max():.3g} N)")
    i = int(reached[0])
    if i == 0:
        return force, disp - disp[0], time
    share = (preload - force[i - 1]) / (force[i] - force[i - 1])
    zero = disp[i - 1] + share * (disp[i] - disp[i - 1])
    new_time = None if time is None else np.concatenate([[time[i - 1] + share * (time[i] - time[i - 1])], time[i:]])
    return np.concatenate([[preload], force[i:]]), np.concatenate([[0.0], disp[i:] - zero]), new_time


def _break_index(force: np.ndarray, fraction: float) -> tuple[int, bool]:
    peak = int(np.argmax(force))
    fallen = np.flatnonzero(force[peak:] <= fraction * force[peak])
    if fallen.size == 0:
        return len(force) - 1, False
    return peak + int(fallen[0]) - 1, True


def _smoothing_window(n: int) -> int:
    window = max(5, n // 200)
    return window | 1


def _zero_slope_yield(stress: np.ndarray, drop_fraction: float) -> int | None:
    """Index of the first maximum that the (smoothed) stress later falls clearly below, before break."""
    smooth = uniform_filter1d(stress, _smoothing_window(len(stress)), mode="nearest")
    running_max = np.maximum.accumulate(smooth)
    # Ignore the toe, where noise is large compared with the stress itself.
    significant = running_max >= 0.5 * smooth.max()
    dropped = np.flatnonzero(significant & (smooth < running_max * (1 - drop_fraction)))
    if dropped.size == 0:
        return None
    # The smoothed peak drifts towards the flatter side of a sharp peak; the raw maximum near it does not.
    window = _smoothing_window(len(stress))
    centre = int(np.argmax(smooth[: dropped[0] + 1]))
    lo, hi = max(0, centre - window), min(len(stress), centre + window + 1)
    return lo + int(np.argmax(stress[lo:hi]))


def _offset_yield(strain: np.ndarray, stress: np.ndarray, modulus: float, intercept: float, offset: float,
                  start: int) -> tuple[float, float] | None:
    """(strain, stress) where the curve first falls below the modulus line shifted by ``offset`` strain."""
    smooth = uniform_filter1d(stress, _smoothing_window(len(stress)), mode="nearest")
    gap = smooth - (modulus * (strain - offset) + intercept)
    below = np.flatnonzero(gap[start:] <= 0)
    if below.size == 0:
        return None
    j = start + int(below[0])
    if j == 0:
        return float(strain[0]), float(smooth[0])
    share = gap[j - 1] / (gap[j - 1] - gap[j])
    return (float(strain[j - 1] + share * (strain[j] - strain[j - 1])),
            float(smooth[j - 1] + share * (smooth[j] - smooth[j - 1])))


def analyze(curve: Curve, width_mm: float, thickness_mm: float, gauge_length_mm: float,
            compliance: ComplianceTable | None = None, settings: AnalysisSettings | None = None,
            specimen_id: str | None = None, metadata: dict[str, Any] | None = None,
            narrow_length_mm: float | None = None) -> TensileAnalysis:
    """Analyse one curve. ``gauge_length_mm`` is the strain length: crosshead travel / it = strain.

    With ``narrow_length_mm`` (crosshead data over an effective length), strain beyond the modulus
    fit is narrow-section strain: the travel minus the elastic stretch of the rest of the specimen,
    over the narrow length, eps = (d - (sigma - b) / E * (L - L_n)) / L_n. Elastically this equals
    d / L; after yield, when plastic strain stays in the narrow section, it is that section's strain
    (d / L would understate strain at break). ``strain_model`` in the result says which was used.

    Raises AnalysisError with the curve's source when a result cannot be computed.
    """
    settings = settings or AnalysisSettings()
    source = curve.source or "curve"
    for name, value in (("width_mm", width_mm), ("thickness_mm", thickness_mm), ("gauge_length_mm", gauge_length_mm)):
        if not (np.isfinite(value) and value > 0):
            raise AnalysisError(f"{name} must be a positive number, got {value}")
    if settings.modulus_strain_end_pct <= settings.modulus_strain_start_pct:
        raise AnalysisError("modulus_strain_end_pct must exceed modulus_strain_start_pct")
    warnings: list[str] = []

    disp = curve.displacement_mm if compliance is None else compliance.correct(curve.force_n, curve.displacement_mm)
    force, disp, time = _trim_preload(curve.force_n, disp, curve.time_s, settings.preload_n, source)
    area = width_mm * thickness_mm
    stress = force / area
    strain = disp / gauge_length_mm

    break_i, broke = _break_index(force, settings.break_force_fraction)
    if not broke:
        warnings.append(f"no break: the force never fell to {settings.break_force_fraction:.0%} of its peak; "
                        "the last sample is taken as the end")
    peak_i = int(np.argmax(force[: break_i + 1]))

    lo, hi = settings.modulus_strain_start_pct / 100, settings.modulus_strain_end_pct / 100
    if strain[: peak_i + 1].max() < hi:
        raise AnalysisError(f"{source}: strain reaches only {strain[: peak_i + 1].max() * 100:.3g} % before the peak; "
                            f"the modulus window ends at {settings.modulus_strain_end_pct} %")
    window = np.flatnonzero((strain >= lo) & (strain <= hi) & (np.arange(len(strain)) <= peak_i))
    if window.size < settings.min_modulus_points:
        raise AnalysisError(f"{source}: {window.size} samples between {settings.modulus_strain_start_pct} % and "
                            f"{settings.modulus_strain_end_pct} % strain, need at least {settings.min_modulus_points}; "
                            "record faster or test slower")
    fit = stats.linregress(strain[window], stress[window])
    modulus, intercept = float(fit.slope), float(fit.intercept)
    if modulus <= 0:
        raise AnalysisError(f"{source}: modulus fit gives a non-positive slope ({modulus:.3g} MPa); is the "
                            "displacement column the right one, and its sign?")

    strain_model = "uniform"
    if narrow_length_mm is not None:
        if not 0 < narrow_length_mm <= gauge_length_mm:
            raise AnalysisError(f"narrow_length_mm must lie in (0, gauge_length_mm = {gauge_length_mm}], "
                                f"got {narrow_length_mm}")
        if narrow_length_mm < gauge_length_mm:
            outer_stretch = (stress - intercept) / modulus * (gauge_length_mm - narrow_length_mm)
            strain = (disp - outer_stretch) / narrow_length_mm
            strain_model = "narrow-section"

    pre_break_stress, pre_break_strain = stress[: break_i + 1], strain[: break_i + 1]
    yield_i = _zero_slope_yield(pre_break_stress, settings.yield_drop_fraction)
    yield_point: tuple[float, float] | None
    if yield_i is not None:
        yield_point, yield_method = (float(strain[yield_i]), float(stress[yield_i])), "zero-slope"
    else:
        yield_point = _offset_yield(pre_break_strain, pre_break_stress, modulus, intercept,
                                    settings.yield_offset_pct / 100, int(window[-1]))
        yield_method = "offset" if yield_point is not None else None

    toughness = float(np.trapezoid(pre_break_stress, pre_break_strain))
    energy_j = float(np.trapezoid(force[: break_i + 1], disp[: break_i + 1])) / 1000.0
    result = TensileResult(
        specimen_id=specimen_id, source=source, width_mm=width_mm, thickness_mm=thickness_mm, area_mm2=area,
        strain_length_mm=gauge_length_mm, strain_model=strain_model, narrow_length_mm=narrow_length_mm,
        preload_n=settings.preload_n, compliance_corrected=compliance is not None,
        compliance_source=compliance.source if compliance is not None else None, n_points=len(force),
        modulus_mpa=modulus, modulus_points=int(window.size), modulus_r2=float(fit.rvalue ** 2),
        modulus_stderr_mpa=float(fit.stderr), modulus_intercept_mpa=intercept,
        modulus_strain_start_pct=settings.modulus_strain_start_pct,
        modulus_strain_end_pct=settings.modulus_strain_end_pct,
        tensile_strength_mpa=float(stress[peak_i]), max_force_n=float(force[peak_i]),
        strain_at_tensile_strength_pct=float(strain[peak_i] * 100),
        yield_strength_mpa=None if yield_point is None else yield_point[1],
        yield_strain_pct=None if yield_point is None else yield_point[0] * 100,
        yield_method=yield_method,
        yield_offset_pct=settings.yield_offset_pct if yield_method == "offset" else None,
        stress_at_break_mpa=float(stress[break_i]), strain_at_break_pct=float(strain[break_i] * 100),
        break_detected=broke, toughness_mj_m3=toughness, energy_to_break_j=energy_j,
        metadata=dict(metadata or {}), warnings=warnings,
    )
    return TensileAnalysis(result=result, force_n=force, displacement_mm=disp, strain=strain, stress_mpa=stress,
                           time_s=time, break_index=break_i, modulus_window=window)


# ---- writers ---------------------------------------------------------------------------------------

def _flat_row(result: TensileResult) -> dict[str, Any]:
    row = result.model_dump()
    row["metadata"] = json.dumps(row["metadata"], sort_keys=True, default=str)
    row["warnings"] = "; ".join(row["warnings"])
    return row


def write_results_json(results: TensileResult | Sequence[TensileResult], path: str | Path) -> Path:
    """Results as a JSON list (one object per specimen)."""
    items = [results] if isinstance(results, TensileResult) else list(results)
    path = Path(path)
    path.write_text(json.dumps([r.model_dump(mode="json") for r in items], indent=2) + "\n", encoding="utf-8")
    return path


def write_results_csv(results: TensileResult | Sequence[TensileResult], path: str | Path) -> Path:
    """Results table: one row per specimen, one column per TensileResult field."""
    items = [results] if isinstance(results, TensileResult) else list(results)
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(TensileResult.model_fields))
        writer.writeheader()
        for item in items:
            writer.writerow(_flat_row(item))
    return path


def read_results_csv(path: str | Path) -> list[TensileResult]:
    """Read a table written by write_results_csv back into models."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        values: dict[str, Any] = {k: (None if v == "" else v) for k, v in row.items()}
        values["metadata"] = json.loads(row["metadata"] or "{}")
        values["warnings"] = [w for w in (row["warnings"] or "").split("; ") if w]
        out.append(TensileResult.model_validate(values))
    return out


def write_stress_strain_csv(analysis: TensileAnalysis, path: str | Path) -> Path:
    """The processed curve: time, force, specimen displacement, strain (%) and stress (MPa) per sample."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_s", "force_N", "displacement_mm", "strain_pct", "stress_MPa"])
        time = analysis.time_s if analysis.time_s is not None else [None] * len(analysis.force_n)
        for t, f, d, e, s in zip(time, analysis.force_n, analysis.displacement_mm, analysis.strain,
                                 analysis.stress_mpa):
            writer.writerow(["" if t is None else f"{t:.6g}", f"{f:.6g}", f"{d:.6g}", f"{e * 100:.6g}", f"{s:.6g}"])
    return path


def analyze_specimen(curve: Curve, specimen: Any, method: Any = None, compliance: ComplianceTable | None = None,
                     specimen_id: str | None = None, metadata: dict[str, Any] | None = None,
                     **setting_overrides: Any) -> TensileAnalysis:
    """Analyse a curve of a standard specimen under a test method (names or models from protocols).

    Dimensions come from the specimen, the strain length from the method's strain basis, and the
    preload, modulus window and break rule from the method; with the effective-length basis, strain
    after the modulus fit is narrow-section strain (see analyze). Without a method: gauge-length
    strain and ISO 527 defaults.
    """
    from protocols.methods import get_method
    from protocols.specimens import get_specimen

    spec = get_specimen(specimen)
    meta = {"specimen_type": spec.name, **(metadata or {})}
    if method is None:
        settings = AnalysisSettings(**setting_overrides)
        length = spec.gauge_length_mm
    else:
        method = get_method(method)
        settings = AnalysisSettings.from_method(method, **setting_overrides)
        length = method.strain_length_mm(spec)
        meta.setdefault("method", method.name)
        meta.setdefault("strain_basis", method.strain_basis)
    narrow = spec.narrow_length_mm if method is not None and method.strain_basis == "effective_length" else None
    return analyze(curve, spec.width_mm, spec.thickness_mm, length, compliance=compliance, settings=settings,
                   specimen_id=specimen_id, metadata=meta, narrow_length_mm=narrow)
