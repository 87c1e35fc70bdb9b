from __future__ import annotations

import pytest

from labctl.agents.capabilities import LabCapabilities, PrinterCapability, simulated_lab
from labctl.agents.envelope import AgentQuota, check, enforce, fits_build_volume
from labctl.agents.hypothesis import parse_hypothesis
from labctl.agents.refusal import Refused
from labctl.bus import DeviceInfo


def by_field(refusals):
    return {r.field: r for r in refusals}


def test_inside_the_envelope(hypothesis_data):
    assert check(parse_hypothesis(hypothesis_data), simulated_lab()) == []


def test_material_window_names_the_level(hypothesis_data):
    hypothesis_data["factors"] = [{"name": "nozzle_temp", "levels": [200, 250]}]
    refusals = by_field(check(parse_hypothesis(hypothesis_data), simulated_lab()))
    assert set(refusals) == {"factors.0.levels.1"}
    assert refusals["factors.0.levels.1"].value == 250
    assert "PLA" in refusals["factors.0.levels.1"].limit


def test_material_factor_changes_the_window(hypothesis_data):
    # 235 C is fine for PETG and too hot for PLA: the fixed temperature is what breaks.
    hypothesis_data["factors"] = [{"name": "material", "levels": ["PLA", "PETG"]}]
    hypothesis_data["fixed"] = {"nozzle_temp": 235}
    refusals = by_field(check(parse_hypothesis(hypothesis_data), simulated_lab()))
    assert "fixed.nozzle_temp" in refusals


def test_device_limits_from_announcements(hypothesis_data):
    # The printer driver announces PrinterLimits (max_hotend_c, max_bed_c, build_volume_mm).
    hot = DeviceInfo(id="p-hot", kind="printer", driver="marlin",
                     limits={"max_hotend_c": 280, "max_bed_c": 110, "build_volume_mm": [250, 210, 210]})
    cold = DeviceInfo(id="p-cold", kind="printer", driver="marlin", limits={"max_hotend_c": 215})
    rig = DeviceInfo(id="rig-1", kind="rig", driver="rig")
    lab = LabCapabilities.from_devices([hot, cold, rig])
    assert lab.printers[1].max_nozzle_temp == 215
    assert lab.printers[0].build_volume_mm == (250, 210, 210) and lab.printers[0].max_bed_temp == 110
    hypothesis_data["factors"] = [{"name": "nozzle_temp", "levels": [200, 220]}]
    h = parse_hypothesis(hypothesis_data)
    # One printer can make every run: accepted, and only that printer is eligible.
    assert check(h, lab) == []
    only_cold = LabCapabilities.from_devices([cold, rig])
    refusals = by_field(check(h, only_cold))
    assert refusals["factors.0.levels.1"].limit == "<= 215"


def test_build_volume(hypothesis_data):
    assert fits_build_volume("iso527-1a", "flat", (220, 220, 250))
    assert not fits_build_volume("iso527-1a", "flat", (150, 150, 150))
    assert not fits_build_volume("iso527-1a", "upright", (220, 220, 160))
    small = LabCapabilities(printers=[PrinterCapability(id="mini", build_volume_mm=(180, 180, 100))],
                            rigs=simulated_lab().rigs)
    hypothesis_data["factors"] = [{"name": "orientation", "levels": ["flat", "upright"]}]
    hypothesis_data["fixed"] = {"specimen_type": "iso527-1a"}
    refusals = by_field(check(parse_hypothesis(hypothesis_data), small))
    assert set(refusals) == {"factors.0.levels.1"}
    assert "build volume" in refusals["factors.0.levels.1"].reason


def test_formulations_need_a_liquid_handler_and_add_up(hypothesis_data):
    hypothesis_data["factors"] = [{"name": "formulation.B", "levels": [0.1, 0.5]}]
    hypothesis_data["fixed"] = {"formulation": {"A": 0.6}}
    lab = simulated_lab()
    refusals = by_field(check(parse_hypothesis(hypothesis_data), lab))
    assert refusals["fixed.formulation"].limit == "sum <= 1"
    no_handler = lab.model_copy(update={"liquid_handlers": []})
    hypothesis_data["factors"][0]["levels"] = [0.1, 0.3]
    refusals = by_field(check(parse_hypothesis(hypothesis_data), no_handler))
    assert refusals["fixed.formulation"].limit == ">= 1 liquid handler"


def test_quota_and_missing_devices(hypothesis_data):
    h = parse_hypothesis(hypothesis_data)
    quota = AgentQuota(max_specimens_per_campaign=10, max_hours_per_campaign=5)
    with pytest.raises(Refused) as err:
        enforce(h, LabCapabilities(), quota)
    assert {"budget.max_specimens", "budget.max_hours", "<lab>.printers", "<lab>.rigs"} == {r.field for r in err.value.refusals}
