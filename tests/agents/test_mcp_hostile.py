"""Property-based: hostile tool arguments through the SDK's client never crash the server, are refused
with structured errors, and never reach a device."""

from __future__ import annotations

import asyncio
import copy

import pytest
import pytest_asyncio
from agent_examples import BASE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from labctl.agents.mcp_server import build_server
from labctl.agents.service import Agent
from labctl.agents.simlab import SimulatedLab

pytestmark = pytest.mark.asyncio(loop_scope="module")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**15, 10**15) | st.floats(allow_nan=False)
    | st.text(max_size=30) | st.sampled_from(["M104 S999", "G1 X500", "../../etc/passwd", "cmp-000000000000",
                                              "'; DROP TABLE jobs; --", "\u202e", "a" * 300]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
TOOLS = ["plan", "submit", "campaign_status", "results", "report", "specimen_curve", "cancel"]
ARG_NAMES = ["hypothesis", "campaign_id", "run_id", "reason", "idempotency_key", "gcode", "command"]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def lab_client(tmp_path_factory):
    # The client's anyio task group must be entered and left in one task: a task owns both.
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def own() -> None:
        async with SimulatedLab(tmp_path_factory.mktemp("hostile")) as lab:
            async with Client(build_server(lab.service, lambda: Agent(name="hostile"))) as client:
                ready.set_result((lab, client))
                await done.wait()

    owner = asyncio.create_task(own())
    yield await ready
    done.set()
    await owner


def assert_no_device_touched(lab) -> None:
    assert lab.devices[-1].tests == 0
    assert all(not getattr(d, "executions", {}) for d in lab.devices[:-1])
    assert lab.engine.store.jobs(limit=None) == []
    assert not lab.service.campaigns


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(tool=st.sampled_from(TOOLS), args=st.dictionaries(st.sampled_from(ARG_NAMES), json_values, max_size=4))
async def test_hostile_arguments(lab_client, tool, args):
    lab, client = lab_client
    audited = len(lab.service.audit.entries())
    result = await client.call_tool(tool, args)
    assert result.is_error or tool == "plan"
    entries = lab.service.audit.entries()
    assert len(entries) == audited + 1 and entries[-1]["call"] == tool  # every call is audited, once
    assert entries[-1]["outcome"] in ("refused", "rejected", "ok" if tool == "plan" else "refused")
    if result.structured_content is not None and result.is_error:
        assert result.structured_content["error"] in ("refused", "not_found", "forbidden")
        if result.structured_content["error"] == "refused":
            assert all(r["field"] and r["reason"] for r in result.structured_content["refusals"])
    assert result.content  # a message the agent can read
    assert_no_device_touched(lab)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from([("fixed", "nozzle_temp"), ("fixed", "bed_temp"), ("fixed", "layer_height"),
                             ("fixed", "specimen_type"), ("budget", "max_specimens"), ("budget", "max_hours"),
                             ("fixed", "formulation")]),
       value=json_values | st.floats(-1e9, 1e9))
async def test_hostile_hypotheses_are_refused_before_any_device(lab_client, path, value):
    lab, client = lab_client
    hypothesis = copy.deepcopy(BASE)
    hypothesis.setdefault(path[0], {})[path[1]] = value
    planned = await client.call_tool("plan", {"hypothesis": hypothesis})
    if not planned.is_error:
        return  # inside the envelope (e.g. a valid temperature); planning touches no device either
    refusal = planned.structured_content
    assert refusal["error"] == "refused" and refusal["refusals"]
    assert any(r["field"].startswith(".".join(path[:1])) for r in refusal["refusals"])
    assert_no_device_touched(lab)
