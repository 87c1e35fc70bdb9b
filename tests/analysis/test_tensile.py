"""Tensile analysis against curves whose results are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from tensile_synthetic import AREA, GAUGE, THICKNESS, WIDTH, Bilinear, Necking, record

from labctl.analysis import (
    AnalysisError, AnalysisSettings, ComplianceTable, Curve, analyze, read_results_csv, write_results_csv,
    write_results_json, write_stress_strain_csv,
)
from protocols.methods import get_method

MATERIAL = Bilinear()


def run(curve, **kwargs):
    return analyze(curve, WIDTH, THICKNESS, GAUGE, **kwargs)


def test_bilinear_noise_free_matches_closed_form():
    result = run(record(MATERIAL)).result
    assert result.modulus_mpa == pytest.approx(MATERIAL.modulus, rel=1e-9)
    assert result.modulus_r2 == pytest.approx(1.0)
    # 5000 samples to 5 % strain: 1e-5 strain apart, so 0.2 % wide window holds ~200 of them.
    assert 195 <= result.modulus_points <= 205
    assert result.tensile_strength_mpa == pytest.approx(MATERIAL.strength, rel=1e-9)
    assert result.max_force_n == pytest.approx(MATERIAL.strength * AREA, rel=1e-9)
    assert result.strain_at_break_pct == pytest.approx(MATERIAL.break_strain * 100, rel=1e-9)
    assert result.break_detected
    assert result.yield_method == "offset"
    strain_y, stress_y = MATERIAL.offset_yield()
    assert result.yield_strain_pct == pytest.approx(strain_y * 100, rel=1e-4)
    assert result.yield_strength_mpa == pytest.approx(stress_y, rel=1e-4)
    assert result.toughness_mj_m3 == pytest.approx(MATERIAL.toughness, rel=1e-4)
    # Energy (J) = toughness (MJ/m^3) x volume between the strain basis (m^3).
    assert result.energy_to_break_j == pytest.approx(MATERIAL.toughness * AREA * GAUGE * 1e-3, rel=1e-4)
    assert result.warnings == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bilinear_with_noise_stays_close(seed):
    result = run(record(MATERIAL, noise_n=0.3, seed=seed)).result  # 0.03 MPa noise on 10 mm^2
    assert result.modulus_mpa == pytest.approx(MATERIAL.modulus, rel=0.02)
    assert result.tensile_strength_mpa == pytest.approx(MATERIAL.strength, abs=0.15)
    assert result.strain_at_break_pct == pytest.approx(5.0, abs=0.01)
    assert result.yield_method == "offset"
    assert result.yield_strength_mpa == pytest.approx(MATERIAL.offset_yield()[1], rel=0.01)
    assert result.toughness_mj_m3 == pytest.approx(MATERIAL.toughness, rel=0.01)


def test_brittle_curve_has_no_yield():
    brittle = Bilinear(yield_stress=60.0, break_strain=0.015)  # breaks in the elastic part
    result = run(record(brittle, n=2000)).result
    assert result.yield_strength_mpa is None and result.yield_method is None
    assert result.tensile_strength_mpa == pytest.approx(45.0, rel=1e-9)
    assert result.toughness_mj_m3 == pytest.approx(0.5 * 45.0 * 0.015, rel=1e-6)


def test_necking_curve_gives_zero_slope_yield():
    material = Necking()
    result = run(record(material, n=20000, noise_n=0.2, seed=7)).result
    assert result.yield_method == "zero-slope"
    assert result.yield_strength_mpa == pytest.approx(material.yield_stress, rel=0.005)
    assert result.yield_strain_pct == pytest.approx(material.yield_strain * 100, rel=0.02)
    assert result.tensile_strength_mpa == pytest.approx(material.yield_stress, rel=0.005)
    assert result.strain_at_break_pct == pytest.approx(30.0, abs=0.01)
    assert result.stress_at_break_mpa == pytest.approx(material.plateau * material.yield_stress, rel=0.01)
    assert result.modulus_mpa == pytest.approx(material.modulus, rel=0.03)


def test_compliance_correction_recovers_true_modulus():
    # Frame of the DIY rig in the reference: 762 N/mm; the 1BA specimen here is E*A/L = 1200 N/mm.
    curve = record(MATERIAL, frame_stiffness_n_per_mm=762.0)
    uncorrected = run(curve).result.modulus_mpa
    series = 1 / (1 / 762.0 + GAUGE / (MATERIAL.modulus * AREA)) * GAUGE / AREA
    assert uncorrected == pytest.approx(series, rel=1e-6)  # badly underestimated, as the reference warns
    corrected = run(curve, compliance=ComplianceTable.from_stiffness(762.0)).result
    assert corrected.compliance_corrected
    assert corrected.modulus_mpa == pytest.approx(MATERIAL.modulus, rel=1e-6)
    assert corrected.strain_at_break_pct == pytest.approx(5.0, rel=1e-6)


def test_nonlinear_compliance_table_is_interpolated():
    def frame(force):  # a frame that stiffens: toe from grips seating
        return force / 900.0 + 0.02 * np.sqrt(np.maximum(force, 0.0) / 100.0)

    clean = record(MATERIAL)
    curve = Curve(force_n=clean.force_n, displacement_mm=clean.displacement_mm + frame(clean.force_n),
                  time_s=clean.time_s, source="nonlinear frame")
    forces = np.linspace(0, 800, 401)
    table = ComplianceTable(force_n=tuple(forces), displacement_mm=tuple(frame(forces)))
    result = run(curve, compliance=table).result
    assert result.modulus_mpa == pytest.approx(MATERIAL.modulus, rel=0.01)
    assert run(curve).result.modulus_mpa < 0.7 * MATERIAL.modulus


def test_compliance_table_validation_and_extrapolation():
    table = ComplianceTable(force_n=(0.0, 100.0, 200.0), displacement_mm=(0.0, 0.1, 0.15))
    assert table.machine_displacement(300.0) == pytest.approx(0.2)  # last segment's slope
    assert table.machine_displacement(-100.0) == pytest.approx(-0.1)
    assert table.machine_displacement(150.0) == pytest.approx(0.125)
    with pytest.raises(ValueError, match="forces must increase strictly; data row 3"):
        ComplianceTable(force_n=(0.0, 100.0, 100.0), displacement_mm=(0.0, 0.1, 0.2))


def test_preload_trim_zeroes_at_the_preload():
    preload = 2.0  # N -> 0.2 MPa -> strain offset 0.2 / E
    curve = record(MATERIAL, slack_mm=0.5)
    trimmed = run(curve, settings=AnalysisSettings(preload_n=preload))
    result = trimmed.result
    assert trimmed.force_n[0] == preload and trimmed.displacement_mm[0] == 0.0
    assert np.all(trimmed.force_n >= 0) and trimmed.displacement_mm.min() == 0.0
    expected_break = MATERIAL.break_strain - (preload / AREA) / MATERIAL.modulus
    assert result.strain_at_break_pct == pytest.approx(expected_break * 100, rel=1e-6)
    assert result.modulus_mpa == pytest.approx(MATERIAL.modulus, rel=1e-6)
    # Without the trim the 0.5 mm of slack (50 samples at zero force) fills the modulus window.
    with pytest.raises(AnalysisError, match=r"^synthetic: 5 samples between 0.05 % and 0.25 % strain"):
        run(curve)


def test_preload_never_reached_is_an_error():
    with pytest.raises(AnalysisError, match="never reaches the preload 1000"):
        run(record(MATERIAL), settings=AnalysisSettings(preload_n=1000))


def test_too_few_points_in_window_is_an_error():
    with pytest.raises(AnalysisError, match=r"(\d) samples between .* need at least 10; record faster"):
        run(record(MATERIAL, n=150))


def test_window_never_reached_is_an_error():
    tiny = Bilinear(yield_stress=3.0, hardening=-10.0, break_strain=0.002)
    with pytest.raises(AnalysisError, match="modulus window ends at 0.25 %"):
        run(record(tiny, n=500))


def test_bad_dimensions_are_refused():
    with pytest.raises(AnalysisError, match="thickness_mm must be a positive number"):
        analyze(record(MATERIAL), WIDTH, 0.0, GAUGE)


def test_record_without_break_is_flagged():
    curve = record(MATERIAL, after_break=0)
    result = run(curve).result
    assert not result.break_detected
    assert "no break" in result.warnings[0]
    assert result.strain_at_break_pct == pytest.approx(5.0)


def test_settings_from_method():
    settings = AnalysisSettings.from_method(get_method("iso527-5"))
    assert settings.preload_n == 2.0 and settings.break_force_fraction == pytest.approx(0.2)
    assert (settings.modulus_strain_start_pct, settings.modulus_strain_end_pct) == (0.05, 0.25)


def test_results_json_csv_and_curve_exports(tmp_path):
    analysis = analyze(record(MATERIAL, noise_n=0.2), WIDTH, THICKNESS, GAUGE, specimen_id="S-1",
                       metadata={"method": "iso527-5", "simulated": True})
    result = analysis.result
    json_path = write_results_json([result, result], tmp_path / "r.json")
    import json

    data = json.loads(json_path.read_text())
    assert len(data) == 2 and data[0]["specimen_id"] == "S-1" and data[0]["metadata"]["simulated"] is True
    back = read_results_csv(write_results_csv(result, tmp_path / "r.csv"))
    assert back[0].modulus_mpa == pytest.approx(result.modulus_mpa)
    assert back[0].metadata == {"method": "iso527-5", "simulated": True}
    assert back[0].yield_method == result.yield_method
    curve_path = write_stress_strain_csv(analysis, tmp_path / "c.csv")
    rows = curve_path.read_text().splitlines()
    assert rows[0] == "time_s,force_N,displacement_mm,strain_pct,stress_MPa"
    assert len(rows) == 1 + len(analysis.force_n)
    last = rows[analysis.break_index + 1].split(",")
    assert float(last[3]) == pytest.approx(result.strain_at_break_pct, rel=1e-5)


def test_plot_writes_png(tmp_path):
    from labctl.analysis import plot_stress_strain

    analyses = [run(record(MATERIAL, noise_n=0.2, seed=s)) for s in (1, 2)]
    path = plot_stress_strain(analyses, tmp_path / "curve.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_narrow_length_longer_than_strain_length_is_refused():
    with pytest.raises(AnalysisError, match=r"narrow_length_mm must lie in \(0, gauge_length_mm = 25"):
        analyze(record(MATERIAL), WIDTH, THICKNESS, GAUGE, narrow_length_mm=30.0)
    same = analyze(record(MATERIAL), WIDTH, THICKNESS, GAUGE, narrow_length_mm=GAUGE).result
    assert same.strain_model == "uniform"  # nothing outside the narrow section to subtract
