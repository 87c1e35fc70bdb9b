"""The material model against the published figures it is calibrated to, and its documented trends."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.rig import PrintParams, sample_properties, true_properties
from simulators.rig.material import stress_at


def test_base_conditions_reproduce_the_diy_rig_figures() -> None:
    pla = true_properties(PrintParams(material="PLA"))
    petg = true_properties(PrintParams(material="PETG"))
    assert (pla.modulus_mpa, pla.tensile_strength_mpa) == pytest.approx((2680, 47.4))
    assert (petg.modulus_mpa, petg.tensile_strength_mpa) == pytest.approx((1630, 34.8))
    assert petg.p_ductile == 1.0 and petg.ductile_strain_at_break_pct == pytest.approx(77.1)
    assert 0 < pla.p_ductile < 1                                # PLA sits at the brittle/ductile transition
    assert pla.brittle_strain_at_break_pct == pytest.approx(3.3, abs=0.3)  # Ingeo 3D850: 3.3 %


def test_upright_ratios_follow_polyterra_and_materiale_plastice() -> None:
    flat = true_properties(PrintParams())
    upright = true_properties(PrintParams(orientation="upright"))
    assert upright.tensile_strength_mpa / flat.tensile_strength_mpa == pytest.approx(0.5)
    assert 0.7 <= upright.modulus_mpa / flat.modulus_mpa <= 0.82
    assert upright.p_ductile == 0 and upright.strain_at_break_pct < 1.5


def test_on_edge_advantage_at_partial_infill_matches_materiale_plastice() -> None:
    flat = true_properties(PrintParams(infill_pct=55))
    edge = true_properties(PrintParams(infill_pct=55, orientation="on_edge"))
    assert edge.modulus_mpa / flat.modulus_mpa == pytest.approx(2.9 / 2.4)
    assert edge.tensile_strength_mpa / flat.tensile_strength_mpa == pytest.approx(47 / 33)


@pytest.mark.parametrize("field", ["modulus_mpa", "tensile_strength_mpa"])
def test_properties_rise_with_infill_and_fall_with_raster_angle(field: str) -> None:
    by_infill = [getattr(true_properties(PrintParams(infill_pct=p)), field) for p in (20, 40, 70, 100)]
    by_angle = [getattr(true_properties(PrintParams(raster_angle_deg=a)), field) for a in (0, 30, 60, 90)]
    assert by_infill == sorted(by_infill) and by_infill[0] < by_infill[-1]
    assert by_angle == sorted(by_angle, reverse=True) and by_angle[-1] < by_angle[0]


def test_blend_b_stiffens_monotonically_and_weakens() -> None:
    levels = [0, 10, 20, 30, 40]
    props = [true_properties(PrintParams(blend_b_pct=b)) for b in levels]
    moduli = [p.modulus_mpa for p in props]
    assert all(b > a for a, b in zip(moduli, moduli[1:]))
    assert all(b.tensile_strength_mpa < a.tensile_strength_mpa for a, b in zip(props, props[1:]))
    # The ground truth behind the example hypothesis: B at 30 % is >= 20 % stiffer than at 10 %.
    assert moduli[3] / moduli[1] == pytest.approx(1.45 / 1.15)


def test_specimen_scatter_has_the_published_coefficients_of_variation() -> None:
    params = PrintParams()
    draws = [sample_properties(params, seed) for seed in range(400)]
    e = np.array([d.modulus_mpa for d in draws])
    s = np.array([d.tensile_strength_mpa for d in draws])
    assert 0.05 <= e.std() / e.mean() <= 0.17
    assert 0.01 <= s.std() / s.mean() <= 0.03
    assert e.mean() == pytest.approx(2680, rel=0.02) and s.mean() == pytest.approx(47.4, rel=0.01)
    modes = {d.failure for d in draws}
    assert modes == {"brittle", "ductile"}
    assert sample_properties(params, 5) == sample_properties(params, 5)      # seeded, reproducible


def test_curve_is_linear_in_the_modulus_window_and_peaks_at_the_strength() -> None:
    props = sample_properties(PrintParams(), 1, failure="ductile")
    window = np.linspace(0.0005, 0.0025, 50)
    assert np.allclose(stress_at(props, window), props.modulus_mpa * window)
    strain = np.linspace(0, props.strain_at_break + 0.01, 20000)
    stress = stress_at(props, strain)
    assert stress.max() == pytest.approx(props.tensile_strength_mpa, rel=1e-3)
    assert stress[-1] == 0.0
