"""Test methods: speeds from the standards, end criteria, strain basis, lookup errors."""

from __future__ import annotations

import pytest

from protocols.methods import METHODS, EndCriteria, MethodError, TestMethod, get_method
from protocols.specimens import SPECIMENS, effective_length_mm, get_specimen


def test_every_specimen_type_has_a_method():
    covered = {s for m in METHODS.values() for s in m.specimen_types}
    assert covered == set(SPECIMENS)


@pytest.mark.parametrize(("name", "modulus", "test"), [
    ("iso527-5", 1.0, 5.0), ("iso527-50", 1.0, 50.0), ("astm-d638", 5.0, 5.0), ("astm-d638-v", 1.0, 1.0),
])
def test_speeds_follow_the_standards(name, modulus, test):
    method = get_method(name)
    assert (method.modulus_speed_mm_min, method.test_speed_mm_min) == (modulus, test)
    assert (method.modulus_strain_start_pct, method.modulus_strain_end_pct) == (0.05, 0.25)
    assert method.sample_rate_hz >= 22  # ISO 527 modulus window
    assert method.speed_at(0.1) == modulus
    assert method.speed_at(1.0) == test


def test_end_criteria_break_rule():
    end = EndCriteria(break_drop_percent=80, activation_force_n=20)
    assert end.break_force_fraction == pytest.approx(0.2)
    assert end.is_break(force_n=19.0, peak_force_n=100.0)
    assert not end.is_break(force_n=21.0, peak_force_n=100.0)
    assert not end.is_break(force_n=1.0, peak_force_n=15.0)  # never armed


def test_strain_length_per_basis():
    method = get_method("iso527-5")
    spec = get_specimen("iso527-1ba")
    assert method.strain_length_mm(spec) == pytest.approx(effective_length_mm(spec))
    assert spec.gauge_length_mm < method.strain_length_mm(spec) < spec.grip_separation_mm
    gauge = method.model_copy(update={"strain_basis": "gauge_length"})
    assert gauge.strain_length_mm("iso527-1ba") == 25.0


def test_method_checks_its_specimen_and_preload_limit():
    method = get_method("astm-d638")
    assert method.check_specimen("astm-d638-iv").designation == "IV"
    with pytest.raises(MethodError, match="does not apply to specimen 'astm-d638-v'"):
        method.check_specimen("astm-d638-v")
    # 1BA, E = 2500 MPa, UTS = 47 MPa: 0.05 % strain -> 1.25 MPa; 1 % of UTS -> 0.47 MPa; area 10 mm^2.
    assert get_method("iso527-5").max_preload_n("iso527-1ba", 2500, 47) == pytest.approx(4.7)
    assert get_method("iso527-5").preload_force_n < 4.7


def test_unknown_method_and_bad_definitions():
    with pytest.raises(MethodError, match="valid names: iso527-5, iso527-50, astm-d638, astm-d638-v"):
        get_method("iso999")
    with pytest.raises(ValueError, match="unknown specimen types"):
        TestMethod(name="x", standard="ISO 527", specimen_types=("nope",), preload_force_n=1,
                   preload_speed_mm_min=1, modulus_speed_mm_min=1, test_speed_mm_min=5, sample_rate_hz=50)
    with pytest.raises(ValueError, match="modulus_strain_end_pct"):
        TestMethod(name="x", standard="ISO 527", specimen_types=("iso527-1a",), preload_force_n=1,
                   preload_speed_mm_min=1, modulus_speed_mm_min=1, test_speed_mm_min=5, sample_rate_hz=50,
                   modulus_strain_start_pct=0.3)
