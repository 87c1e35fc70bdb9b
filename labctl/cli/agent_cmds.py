"""Agent-facing commands: `labctl plan` (dry run of a hypothesis) and `labctl mcp` (the MCP server on stdio)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import typer
from rich.table import Table

from .app import app, sim_app  # noqa: F401
from .common import EXIT_BAD_INPUT, JsonOption, console, err_console, fail, print_json


@app.command("plan")
def plan_command(
    hypothesis: Path = typer.Argument(..., help="A hypothesis file (.json or .toml); examples in protocols/hypotheses/."),
    printers: int = typer.Option(3, "--printers", min=1, max=64,
                                 help="Plan for a simulated lab with this many printers (no device is touched)."),
    as_json: bool = JsonOption,
) -> None:
    """Plan the experiment a hypothesis implies (dry run): envelope check, replicates, run order, blocks, cost.

    Example: labctl plan protocols/hypotheses/infill_stiffness.json --json
    """
    from ..agents.capabilities import simulated_lab
    from ..agents.design import plan as design_plan
    from ..agents.hypothesis import load_hypothesis
    from ..agents.refusal import Refused

    try:
        result = design_plan(load_hypothesis(hypothesis), simulated_lab(printers))
    except Refused as exc:
        if as_json:
            print_json(exc.to_dict())
            raise typer.Exit(EXIT_BAD_INPUT) from None
        err_console.print(f"[red]refused:[/red] {exc.source or hypothesis}")
        for r in exc.refusals:
            err_console.print(f"  {r.field}: {r.reason} (value {r.value!r}, limit {r.limit})")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    console.print(f"[bold]{result.plan_id}[/bold] for {result.hypothesis_id}: {result.design}, "
                  f"tested factor {result.tested_factor} ({result.treatment} vs {result.baseline})")
    console.print(f"{len(result.cells)} cells x {result.replicates_per_cell} replicates = {len(result.runs)} specimens; "
                  f"power {result.planned_power:.2f} (target {result.target_power:g}) at "
                  f"{result.minimum_effect_sd_units:.2f} SD; "
                  + (f"sequential, {result.batches} batches of {result.batch_size}" if result.sequential else "fixed sample"))
    e = result.estimate
    console.print(f"estimate: {e.duration_hours:.2f} h on {len(result.printers)} printers, {e.print_hours:.2f} printer-h, "
                  f"{e.material_g:.1f} g, {e.cost:.2f} {e.currency}")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    table = Table("order", "run", "batch", "printer", *[k for k in result.cells[0]])
    for run in result.runs:
        table.add_row(str(run.order + 1), run.run_id, str(run.batch), run.printer, *[str(v) for v in run.cell.values()])
    console.print(table)


@app.command("mcp")
def mcp_command(
    sim: bool = typer.Option(False, "--sim", help="Serve a simulated lab started in this process."),
    url: str = typer.Option(None, "--url", help="Forward to a running lab's MCP endpoint, e.g. "
                                               "http://lab-host:8765/mcp (the token comes from --token-env)."),
    token_env: str = typer.Option("LABCTL_MCP_TOKEN", "--token-env",
                                  help="Environment variable holding this agent's bearer token for --url."),
    workdir: Path = typer.Option(None, "--workdir", help="Where campaigns, reports, the job store and the audit log go "
                                                        "(default: a new temporary directory)."),
    agent: str = typer.Option("local-agent", "--agent", help="The agent name written to the audit log."),
    printers: int = typer.Option(3, "--printers", min=1, max=16, help="Printers in the simulated lab."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated specimens."),
) -> None:
    """Serve the lab to an AI agent over MCP on stdin/stdout (tools: plan, submit, status, results, report, ...).

    Either a simulated lab in this process (--sim) or a running lab's HTTP endpoint (--url, with the
    agent's token in $LABCTL_MCP_TOKEN).

    Example: labctl mcp --sim --workdir /tmp/lab
    """
    if sim == bool(url):
        raise fail("labctl mcp needs exactly one of --sim (an in-process simulated lab) or --url "
                   "(a running lab's MCP endpoint, e.g. http://lab-host:8765/mcp)", EXIT_BAD_INPUT)
    from ..agents.mcp_server import run_stdio
    from ..agents.service import Agent

    folder = workdir or Path(tempfile.mkdtemp(prefix="labctl-mcp-"))
    if url:
        token = os.environ.get(token_env)
        if not token:
            raise fail(f"--url needs the agent's bearer token in ${token_env}", EXIT_BAD_INPUT)
        asyncio.run(_forward(url, token, folder, Agent(name=agent)))
        return
    from ..agents.simlab import SimulatedLab

    async def serve() -> None:
        async with SimulatedLab(folder, printers=printers, seed=seed) as lab:
            await run_stdio(lab.service, Agent(name=agent))

    asyncio.run(serve())


async def _forward(url: str, token: str, folder: Path, agent: object) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from ..agents.mcp_server import run_stdio
    from ..agents.remote import RemoteService
    from ..agents.service import AuditLog

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http, \
            Client(streamable_http_client(url, http_client=http)) as client:
        await run_stdio(RemoteService(client, AuditLog(folder / "audit.jsonl")), agent)  # type: ignore[arg-type]
