"""A full test on the simulator for every specimen type, analysed, against the specimen's true values."""

from __future__ import annotations

import pytest

from drivers.rig import method_to_params
from labctl.analysis import AnalysisSettings, ComplianceTable, Curve, analyze
from protocols.methods import get_method
from protocols.specimens import get_specimen
from simulators.rig import PrintParams

CASES = [("iso527-1a", "iso527-5"), ("iso527-1ba", "iso527-5"), ("iso527-5a", "iso527-5"),
         ("astm-d638-i", "astm-d638"), ("astm-d638-iv", "astm-d638"), ("astm-d638-v", "astm-d638-v")]


@pytest.mark.parametrize(("specimen_type", "method_name"), CASES)
async def test_full_test_recovers_true_modulus_and_strength(specimen_type: str, method_name: str, rig_factory) -> None:
    method = get_method(method_name)
    spec = get_specimen(specimen_type)
    async with rig_factory(seed=7) as (sim, driver):
        sim.mount(PrintParams(), specimen_type=specimen_type, specimen_id="S1", failure="brittle")
        curve = await driver.run_test(method_to_params(method, spec), specimen_id="S1", specimen_type=spec.name)
        truth = sim.specimen.props
    assert curve.end_reason == "break"
    assert curve.complete and curve.link.missing_frames == 0 and curve.link.bad_frames == 0
    assert curve.preload_displacement_mm is not None and curve.preload_displacement_mm > 0
    analysis = analyze(Curve(force_n=curve.force_n, displacement_mm=curve.displacement_mm, time_s=curve.time_s),
                       width_mm=spec.width_mm, thickness_mm=spec.thickness_mm,
                       gauge_length_mm=method.strain_length_mm(spec),
                       compliance=ComplianceTable.from_stiffness(762.0),
                       settings=AnalysisSettings.from_method(method))
    result = analysis.result
    assert result.modulus_mpa == pytest.approx(truth.modulus_mpa, rel=0.05)
    assert result.tensile_strength_mpa == pytest.approx(truth.tensile_strength_mpa, rel=0.01)
    assert result.modulus_points >= method.min_modulus_points
    assert result.break_detected


async def test_without_compliance_correction_modulus_is_underestimated(rig_factory) -> None:
    # Why the correction exists: a 762 N/mm frame in series with a ~520 N/mm 1BA specimen.
    method, spec = get_method("iso527-5"), get_specimen("iso527-1ba")
    async with rig_factory(seed=3) as (sim, driver):
        sim.mount(PrintParams(), specimen_type=spec.name, failure="brittle")
        curve = await driver.run_test(method_to_params(method, spec))
        truth = sim.specimen.props.modulus_mpa
    raw = analyze(Curve(force_n=curve.force_n, displacement_mm=curve.displacement_mm), width_mm=spec.width_mm,
                  thickness_mm=spec.thickness_mm, gauge_length_mm=method.strain_length_mm(spec),
                  settings=AnalysisSettings.from_method(method)).result.modulus_mpa
    assert raw < 0.75 * truth


async def test_speed_switches_after_the_modulus_window(rig_factory) -> None:
    method, spec = get_method("iso527-5"), get_specimen("iso527-1ba")
    async with rig_factory(seed=4) as (sim, driver):
        sim.mount(PrintParams(), specimen_type=spec.name, failure="brittle")
        params = method_to_params(method, spec)
        curve = await driver.run_test(params)
    # Crosshead speed from consecutive frames: 1 mm/min at first, 5 mm/min at the end.
    def speed(i: int, j: int) -> float:
        return (curve.displacement_mm[j] - curve.displacement_mm[i]) / (curve.time_s[j] - curve.time_s[i]) * 60
    n = len(curve.time_s)
    assert speed(0, 50) == pytest.approx(1.0, rel=0.05)
    assert speed(n - 60, n - 10) == pytest.approx(5.0, rel=0.05)
