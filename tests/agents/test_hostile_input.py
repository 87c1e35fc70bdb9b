"""Property-based: malformed and hostile hypotheses are refused with structured errors, never crash."""

from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.agents.capabilities import simulated_lab
from labctl.agents.design import plan
from labctl.agents.envelope import AgentQuota, check
from labctl.agents.hypothesis import parse_hypothesis
from labctl.agents.refusal import Refused

from agent_examples import BASE

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40) | st.sampled_from(["M104 S999", "G28", "; rm -rf /", "{{7*7}}", "\x00", "PLA", "flat"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
KEYS = ["statement", "response", "factors", "fixed", "prediction", "alpha", "power", "budget", "sequential",
        "assumptions", "target_curve", "seed", "gcode", "commands"]
PATHS = [("factors", 0, "name"), ("factors", 0, "levels"), ("factors", 0, "levels", 1), ("prediction", "minimum_effect"),
         ("prediction", "direction"), ("budget", "max_specimens"), ("fixed",), ("prediction", "treatment")]

LAB = simulated_lab()
QUOTA = AgentQuota(max_specimens_per_campaign=100, max_hours_per_campaign=48)


def assert_structured(exc: Refused) -> None:
    assert exc.refusals
    for r in exc.refusals:
        assert r.field and r.limit and r.reason
    json.dumps(exc.to_dict())  # always serialisable for the MCP client


def attempt(data) -> None:
    try:
        p = plan(data, LAB, QUOTA)
    except Refused as exc:
        assert_structured(exc)
        return
    # Accepted: then it really is inside the envelope and within budget.
    h = parse_hypothesis(data)
    assert check(h, LAB, QUOTA) == []
    assert len(p.runs) <= h.budget.max_specimens
    for run in p.runs:
        assert 190 <= (run.parameters.nozzle_temp or 210) <= 260


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6))
def test_replaced_top_level_fields(changes):
    data = copy.deepcopy(BASE)
    data.update(changes)
    attempt(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), json_values)
def test_replaced_nested_fields(path, value):
    data = copy.deepcopy(BASE)
    target = data
    for key in path[:-1]:
        target = target[key]
    if isinstance(target, list) and path[-1] >= len(target):
        target.append(value)
    else:
        target[path[-1]] = value
    attempt(data)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["nozzle_temp", "bed_temp", "infill_density", "layer_height", "raster_angle", "print_speed",
                        "formulation.B"]),
       st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=3, unique=True))
def test_numeric_levels_are_checked_against_limits(name, levels):
    data = copy.deepcopy(BASE)
    data["factors"] = [{"name": name, "levels": levels}]
    attempt(data)


@settings(max_examples=50, deadline=None)
@given(st.one_of(json_values, st.text(max_size=200), st.binary(max_size=64).map(lambda b: b.decode("latin-1"))))
def test_arbitrary_documents(document):
    attempt(document)
