"""The MCP server through the SDK's own client: stdio subprocess, streamable HTTP with tokens, in-process."""

from __future__ import annotations

import asyncio
import contextlib
import base64
import copy
import json
import socket
import sys
from pathlib import Path

import httpx2
import pytest
import uvicorn
from agent_examples import BASE
from mcp import Client, StdioServerParameters

from labctl.agents.mcp_server import AgentTokens, TokenEntry, build_http_app, build_server
from labctl.agents.service import Agent
from labctl.agents.simlab import SimulatedLab

LABCTL = str(Path(sys.executable).parent / "labctl")


async def wait_finished(client: Client, campaign_id: str, timeout: float = 120) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        status = (await client.call_tool("campaign_status", {"campaign_id": campaign_id})).structured_content
        if status["state"] != "running":
            return status
        await asyncio.sleep(0.2)
    raise TimeoutError(campaign_id)


async def test_stdio_whole_campaign(tmp_path):
    params = StdioServerParameters(command=LABCTL, args=["mcp", "--sim", "--workdir", str(tmp_path), "--agent", "claude"])
    async with Client(params) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"lab_status", "capabilities", "plan", "submit", "campaign_status", "results", "report",
                "specimen_curve", "cancel"} <= set(tools)
        for name in ("lab_status", "capabilities", "plan", "campaign_status", "results", "report", "specimen_curve"):
            assert tools[name].annotations.read_only_hint is True
        assert tools["submit"].annotations.read_only_hint is False
        assert tools["cancel"].annotations.destructive_hint is True
        status = (await client.call_tool("lab_status", {})).structured_content
        assert status["simulated"] and {d["kind"] for d in status["devices"]} == {"printer", "rig", "liquid_handler"}
        planned = await client.call_tool("plan", {"hypothesis": copy.deepcopy(BASE)})
        assert not planned.is_error and planned.structured_content["replicates_per_cell"] == 9
        submitted = (await client.call_tool("submit", {"hypothesis": copy.deepcopy(BASE)})).structured_content
        final = await wait_finished(client, submitted["campaign_id"])
        assert final["state"] == "finished" and final["verdict"] == "supported" and final["simulated"]
        results = (await client.call_tool("results", {"campaign_id": submitted["campaign_id"]})).structured_content
        assert results["analysis"]["effect"]["ci_low"] > 0
        run_id = results["observations"][0]["run_id"]
        curve = (await client.call_tool("specimen_curve", {"campaign_id": submitted["campaign_id"],
                                                           "run_id": run_id})).structured_content
        assert curve["simulated"] and len(curve["x"]) > 50
        resource = await client.read_resource(f"labctl://campaigns/{submitted['campaign_id']}/report")
        assert "SIMULATED DATA" in resource.contents[0].text
        plot = await client.read_resource(f"labctl://campaigns/{submitted['campaign_id']}/plots/effect.png")
        assert base64.b64decode(plot.contents[0].blob)[:4] == b"\x89PNG"
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert {e["agent"] for e in audit} == {"claude"}
    assert [e["call"] for e in audit if e["call"] == "submit"] == ["submit"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def http_lab(workdir: Path, tokens: AgentTokens):
    """A simulated lab serving MCP over streamable HTTP on a free port (real uvicorn server)."""
    port = free_port()
    async with SimulatedLab(workdir) as lab:
        app = build_http_app(lab.service, tokens, public_url=f"http://127.0.0.1:{port}")
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
        task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                await asyncio.sleep(0.05)
            yield lab, f"http://127.0.0.1:{port}/mcp"
        finally:
            server.should_exit = True
            await task


async def test_http_tokens_scopes_and_refusals(tmp_path):
    tokens = AgentTokens([
        TokenEntry(token_sha256=AgentTokens.hash("tok-writer"), agent="writer"),
        TokenEntry(token_sha256=AgentTokens.hash("tok-reader"), agent="reader", scopes=["lab:read"]),
    ])
    async with http_lab(tmp_path, tokens) as (lab, url):
        async with httpx2.AsyncClient() as anonymous:
            response = await anonymous.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert response.status_code == 401
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer tok-writer"}) as http, \
                Client(_transport(url, http)) as writer:
            planned = await writer.call_tool("plan", {"hypothesis": copy.deepcopy(BASE)})
            assert not planned.is_error
            hot = copy.deepcopy(BASE)
            hot["factors"] = [{"name": "nozzle_temp", "levels": [200, 320]}]
            refused = await writer.call_tool("submit", {"hypothesis": hot})
            assert refused.is_error
            assert refused.structured_content["refusals"][0]["field"] == "factors.0.levels.1"
            submitted = (await writer.call_tool("submit", {"hypothesis": copy.deepcopy(BASE)})).structured_content
            campaign_id = submitted["campaign_id"]
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer tok-reader"}) as http, \
                Client(_transport(url, http)) as reader:
            forbidden = await reader.call_tool("submit", {"hypothesis": copy.deepcopy(BASE)})
            assert forbidden.is_error and forbidden.structured_content["error"] == "forbidden"
            hidden = await reader.call_tool("campaign_status", {"campaign_id": campaign_id})
            assert hidden.structured_content["error"] == "not_found"
        await lab.service.wait(campaign_id, timeout=120)
    calls = [(e["agent"], e["call"], e["outcome"]) for e in lab.service.audit.entries()]
    assert ("writer", "submit", "refused") in calls and ("writer", "submit", "ok") in calls
    assert ("reader", "submit", "forbidden") in calls


def _transport(url: str, http: httpx2.AsyncClient):
    from mcp.client.streamable_http import streamable_http_client

    return streamable_http_client(url, http_client=http)


async def test_stdio_bridge_to_the_http_endpoint(tmp_path):
    """`labctl mcp --url` (what a desktop agent starts) forwards to a running lab with the agent's token."""
    import os

    tokens = AgentTokens([TokenEntry(token_sha256=AgentTokens.hash("tok-desk"), agent="desktop")])
    async with http_lab(tmp_path / "lab", tokens) as (lab, url):
        params = StdioServerParameters(
            command=LABCTL, args=["mcp", "--url", url, "--workdir", str(tmp_path / "bridge")],
            env={**os.environ, "LABCTL_MCP_TOKEN": "tok-desk"})
        async with Client(params) as client:
            hot = copy.deepcopy(BASE)
            hot["fixed"] = {"bed_temp": 150}
            refused = await client.call_tool("submit", {"hypothesis": hot})
            assert refused.is_error and refused.structured_content["refusals"][0]["field"] == "fixed.bed_temp"
            submitted = (await client.call_tool("submit", {"hypothesis": copy.deepcopy(BASE)})).structured_content
            final = await wait_finished(client, submitted["campaign_id"])
            assert final["verdict"] == "supported" and final["simulated"]
            plot = await client.read_resource(f"labctl://campaigns/{submitted['campaign_id']}/plots/curves.png")
            assert base64.b64decode(plot.contents[0].blob)[:4] == b"\x89PNG"
    lab_calls = {(e["agent"], e["call"], e["outcome"]) for e in lab.service.audit.entries()}
    assert ("desktop", "submit", "refused") in lab_calls and ("desktop", "plot", "ok") in lab_calls
    bridge = [json.loads(line) for line in (tmp_path / "bridge" / "audit.jsonl").read_text().splitlines()]
    assert {e["call"] for e in bridge} >= {"submit", "campaign_status"}
