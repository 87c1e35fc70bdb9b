"""Analysis of a whole dogbone: crosshead travel integrated over the real cross-section along the specimen."""

from __future__ import annotations

import numpy as np
import pytest
from tensile_synthetic import Bilinear

from labctl.analysis import ComplianceTable, Curve, analyze, analyze_specimen
from protocols.methods import get_method
from protocols.specimens import cross_section_areas, effective_length_mm, get_specimen

MATERIAL = Bilinear(modulus=2700.0, yield_stress=40.0, hardening=300.0, break_strain=0.04)


def strain_of(stress: np.ndarray) -> np.ndarray:
    m = MATERIAL
    return np.where(stress <= m.yield_stress, stress / m.modulus, m.yield_strain + (stress - m.yield_stress) / m.hardening)


def dogbone_curve(name: str, frame_n_per_mm: float | None = None, n: int = 3000) -> Curve:
    """Crosshead travel = sum over the gripped length of each slice's strain (from the mesh's sections)."""
    spec = get_specimen(name)
    x, area = cross_section_areas(spec, 1000)
    step = spec.overall_length_mm / 1000
    gripped = np.abs(x - spec.overall_length_mm / 2) <= spec.grip_separation_mm / 2
    peak = MATERIAL.strength * spec.narrow_area_mm2
    force = np.linspace(0, peak, n)
    travel = strain_of(force[:, None] / area[gripped][None, :]).sum(axis=1) * step
    if frame_n_per_mm:
        travel = travel + force / frame_n_per_mm
    force = np.concatenate([force, [0.3, 0.2]])
    travel = np.concatenate([travel, travel[-1] + [0.01, 0.02]])
    return Curve(force_n=force, displacement_mm=travel, source=f"{name} model")


@pytest.mark.parametrize("name", ["iso527-1ba", "iso527-1a", "astm-d638-iv"])
def test_effective_length_strain_recovers_the_modulus(name):
    method = get_method("iso527-5" if name.startswith("iso") else "astm-d638")
    analysis = analyze_specimen(dogbone_curve(name), name, method, specimen_id="A1")
    result = analysis.result
    assert result.modulus_mpa == pytest.approx(MATERIAL.modulus, rel=0.01)
    assert result.tensile_strength_mpa == pytest.approx(MATERIAL.strength, rel=1e-9)
    assert result.strain_length_mm == pytest.approx(effective_length_mm(name))
    assert result.metadata == {"specimen_type": name, "method": method.name, "strain_basis": "effective_length"}
    # Dividing by the gauge length instead overstates strain by L_eff / L0, so the modulus comes out low.
    gauge = analyze_specimen(dogbone_curve(name), name, method.model_copy(update={"strain_basis": "gauge_length"}))
    spec = get_specimen(name)
    assert gauge.result.modulus_mpa == pytest.approx(
        MATERIAL.modulus * spec.gauge_length_mm / effective_length_mm(name), rel=0.01)


def test_diy_frame_compliance_on_a_1ba():
    curve = dogbone_curve("iso527-1ba", frame_n_per_mm=762.0)
    raw = analyze_specimen(curve, "iso527-1ba", "iso527-5").result
    corrected = analyze_specimen(curve, "iso527-1ba", "iso527-5",
                                 compliance=ComplianceTable.from_stiffness(762.0)).result
    assert raw.modulus_mpa < 0.75 * MATERIAL.modulus
    assert corrected.modulus_mpa == pytest.approx(MATERIAL.modulus, rel=0.01)
    assert corrected.preload_n == 2.0


def localized_curve(name: str, n: int = 3000) -> Curve:
    """Plastic strain only in the narrow section, the rest elastic (as when a printed dogbone yields)."""
    spec = get_specimen(name)
    x, area = cross_section_areas(spec, 1000)
    step = spec.overall_length_mm / 1000
    gripped = np.abs(x - spec.overall_length_mm / 2) <= spec.grip_separation_mm / 2
    narrow = gripped & (area <= spec.narrow_area_mm2 * (1 + 1e-9))
    outer = gripped & ~narrow
    force = np.linspace(0, MATERIAL.strength * spec.narrow_area_mm2, n)
    travel = (strain_of(force / spec.narrow_area_mm2) * narrow.sum() * step
              + (force[:, None] / area[outer][None, :]).sum(axis=1) / MATERIAL.modulus * step)
    return Curve(force_n=np.concatenate([force, [0.3]]), displacement_mm=np.concatenate([travel, travel[-1:] + 0.01]),
                 source=f"{name} localized")


@pytest.mark.parametrize("name", ["iso527-1ba", "iso527-5a", "astm-d638-i"])
def test_narrow_section_strain_recovers_break_strain_and_toughness(name):
    method = get_method("iso527-5" if name.startswith("iso") else "astm-d638")
    result = analyze_specimen(localized_curve(name), name, method, preload_n=None).result
    assert result.strain_model == "narrow-section"
    assert result.narrow_length_mm == get_specimen(name).narrow_length_mm
    assert result.modulus_mpa == pytest.approx(MATERIAL.modulus, rel=0.01)
    assert result.strain_at_break_pct == pytest.approx(MATERIAL.break_strain * 100, rel=0.02)
    assert result.toughness_mj_m3 == pytest.approx(MATERIAL.toughness, rel=0.02)
    assert result.yield_strength_mpa == pytest.approx(MATERIAL.offset_yield()[1], rel=0.01)
    # Travel over the effective length alone spreads the narrow section's plastic strain over it.
    spec = get_specimen(name)
    uniform = analyze(localized_curve(name), spec.width_mm, spec.thickness_mm, effective_length_mm(name)).result
    assert uniform.strain_model == "uniform"
    assert uniform.strain_at_break_pct < 0.85 * MATERIAL.break_strain * 100
