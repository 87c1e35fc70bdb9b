from __future__ import annotations

import json

import pytest

from labctl.agents.hypothesis import load_hypothesis, parse_hypothesis
from labctl.agents.refusal import Refused


def fields(exc: Refused) -> set[str]:
    return {r.field for r in exc.refusals}


def test_defaults_pick_first_and_last_levels(hypothesis_data):
    hypothesis_data["factors"][0]["levels"] = [0.2, 0.5, 0.9]
    h = parse_hypothesis(hypothesis_data)
    assert (h.baseline_level(), h.treatment_level()) == (0.2, 0.9)
    assert h.tested_factor().name == "infill_density"
    assert len(h.cells()) == 3


def test_full_factorial_cells_resolve_parameters(hypothesis_data):
    hypothesis_data["factors"].append({"name": "orientation", "levels": ["flat", "on_edge"]})
    hypothesis_data["factors"].append({"name": "formulation.B", "levels": [0.1, 0.3]})
    h = parse_hypothesis(hypothesis_data)
    cells = h.cells()
    assert len(cells) == 8
    params = h.parameters_for(cells[-1])
    assert (params.infill_density, params.orientation, params.formulation) == (0.8, "on_edge", {"B": 0.3})


def test_unknown_fields_and_raw_commands_are_refused(hypothesis_data):
    hypothesis_data["gcode"] = "M104 S300"
    hypothesis_data["fixed"] = {"robot_command": "aspirate 1000"}
    with pytest.raises(Refused) as err:
        parse_hypothesis(hypothesis_data)
    assert {"gcode", "fixed.robot_command"} <= fields(err.value)
    assert all(r.limit == "extra_forbidden" for r in err.value.refusals)


def test_factor_errors_name_the_level(hypothesis_data):
    hypothesis_data["factors"] = [{"name": "orientation", "levels": ["flat", "sideways"]}]
    with pytest.raises(Refused) as err:
        parse_hypothesis(hypothesis_data)
    [refusal] = err.value.refusals
    assert refusal.field == "factors.0"
    assert "levels[1]" in refusal.reason and "sideways" in refusal.reason


@pytest.mark.parametrize("change, field", [
    (lambda d: d["prediction"].update(factor="layer_height"), "<root>"),
    (lambda d: d["prediction"].update(treatment=0.55), "<root>"),
    (lambda d: d.update(response="curve_distance"), "<root>"),
    (lambda d: d.update(alpha=0.5), "alpha"),
    (lambda d: d["budget"].update(max_specimens=3), "<root>"),
    (lambda d: d["prediction"].update(minimum_effect=float("nan")), "prediction.minimum_effect"),
    (lambda d: d["prediction"].update(direction="decrease", minimum_effect=1.5), "<root>"),
    (lambda d: d["factors"].append(dict(d["factors"][0])), "<root>"),
    (lambda d: d["factors"][0].update(levels=[True, 0.5]), "factors.0.levels"),
])
def test_inconsistent_hypotheses_are_refused(hypothesis_data, change, field):
    change(hypothesis_data)
    with pytest.raises(Refused) as err:
        parse_hypothesis(hypothesis_data)
    assert field in fields(err.value)


def test_json_text_and_files(tmp_path, hypothesis_data):
    assert parse_hypothesis(json.dumps(hypothesis_data)).response == "modulus"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(Refused) as err:
        load_hypothesis(bad)
    assert err.value.refusals[0].limit == "syntax"
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**hypothesis_data, "alpha": 2}))
    with pytest.raises(Refused) as err:
        load_hypothesis(wrong)
    assert err.value.source == str(wrong) and str(wrong) in str(err.value)


def test_example_hypotheses_parse():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "protocols" / "hypotheses"
    files = sorted(folder.glob("*.json")) + sorted(folder.glob("*.toml"))
    assert len(files) >= 3
    for path in files:
        load_hypothesis(path)
