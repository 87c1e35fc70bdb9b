"""`labctl serve --sim` as a technician starts it: a whole simulated lab other processes can reach."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from labctl.agents.mcp_server import AgentTokens
from labctl.bus.broker import free_port
from serve_process import LABCTL, read_until



async def test_serve_sim_hosts_a_lab_that_cli_and_mcp_clients_reach(tmp_path):
    broker_port, mcp_port = free_port(), free_port()
    tokens = tmp_path / "agents.json"
    tokens.write_text(json.dumps({"tokens": [{"token_sha256": AgentTokens.hash("secret-1"), "agent": "agent-1"}]}))
    url = f"mqtt://127.0.0.1:{broker_port}"
    serve = subprocess.Popen([*LABCTL, "serve", "--sim", "--printers", "2", "--listen", f"127.0.0.1:{broker_port}",
                              "--workdir", str(tmp_path / "data"), "--tokens", str(tokens),
                              "--mcp-listen", f"127.0.0.1:{mcp_port}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "COLUMNS": "300", "PYTHONUNBUFFERED": "1"})
    try:
        banner = await asyncio.to_thread(read_until, serve, "ready")
        assert "printer-1, printer-2, rig-1, liquid-1" in banner
        listing = await asyncio.to_thread(subprocess.run, [*LABCTL, "devices", "--json", "--broker", url],
                                          capture_output=True, text=True, timeout=60)
        devices = {d["id"]: d for d in json.loads(listing.stdout)}
        assert set(devices) == {"printer-1", "printer-2", "rig-1", "liquid-1"}
        assert all(d["simulated"] for d in devices.values())
        assert devices["printer-1"]["firmware"].startswith("Marlin")  # from M115 over the PTY

        endpoint = f"http://127.0.0.1:{mcp_port}/mcp"
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer secret-1"}) as http, \
                Client(streamable_http_client(endpoint, http_client=http)) as agent:
            status = (await agent.call_tool("lab_status", {})).structured_content
            assert {d["id"] for d in status["devices"]} >= {"printer-1", "rig-1", "liquid-1"}
        async with httpx2.AsyncClient() as anonymous:
            response = await anonymous.post(endpoint, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert response.status_code == 401

        stop = await asyncio.to_thread(subprocess.run, [*LABCTL, "estop", "--broker", url],
                                       capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0
        for _ in range(50):
            listing = await asyncio.to_thread(subprocess.run, [*LABCTL, "devices", "--json", "--broker", url],
                                              capture_output=True, text=True, timeout=60)
            if all(d["status"] == "estopped" for d in json.loads(listing.stdout)):
                break
            await asyncio.sleep(0.2)
        assert all(d["status"] == "estopped" for d in json.loads(listing.stdout))
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
    assert serve.returncode == 0, serve.stderr.read()[-3000:]
