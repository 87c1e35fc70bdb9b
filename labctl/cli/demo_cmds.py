"""`labctl demo`: the README's main job, a whole hypothesis campaign on a simulated lab."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.console import Group

from .app import app
from .common import EXIT_BAD_INPUT, EXIT_FAILED, console, fail, print_json, run

DEFAULT_HYPOTHESIS = Path(__file__).resolve().parents[2] / "protocols" / "hypotheses" / "demo_formulation.json"


def _device_table(states: list[Any]) -> Table:
    table = Table("device", "kind", "status", "doing", title="devices (wire-level simulators)", expand=True)
    for state in sorted(states, key=lambda s: s.device.id):
        doing = state.detail.get("action") or state.detail.get("reason") or ""
        if state.detail.get("specimen_id"):
            doing += f" {state.detail['specimen_id']}"
        colour = {"online": "green", "busy": "yellow", "offline": "red", "fault": "red", "estopped": "red"}
        table.add_row(state.device.id, state.device.kind, f"[{colour.get(state.status, 'white')}]{state.status}",
                      doing)
    return table


async def _run_demo(workdir: Path, hypothesis_path: Path, printers: int, seed: int, timeout: float,
                    quiet: bool) -> dict[str, Any]:
    from ..agents.hypothesis import load_hypothesis
    from ..agents.service import Agent
    from ..lab import Lab, ground_truth

    hypothesis = load_hypothesis(hypothesis_path)
    truth = ground_truth(hypothesis)
    agent = Agent(name="demo-agent")
    started = time.monotonic()
    if not quiet:
        console.print(Panel(f"[bold]{hypothesis.statement}[/bold]\nresponse: {hypothesis.response}; "
                            f"alpha {hypothesis.alpha}; budget {hypothesis.budget.max_specimens} specimens",
                            title="hypothesis (submitted as an agent would, through the protocol layer)"))
    async with Lab.simulated(workdir, printers=printers, seed=seed) as lab:
        submitted = await lab.service.submit(agent, hypothesis.model_dump(mode="json"))
        campaign_id = submitted["campaign_id"]
        planned = submitted.get("planned_specimens") or 0
        progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeElapsedColumn(), console=console)
        specimens = progress.add_task(f"campaign {campaign_id}: specimens measured", total=planned)
        waiter = asyncio.create_task(lab.service.wait(campaign_id, timeout=timeout))
        last_line = ""

        def render() -> Group:
            return Group(progress, _device_table(list(lab.registry.devices.values())))

        with Live(render(), console=console, refresh_per_second=4, transient=False,
                  redirect_stdout=False) if console.is_terminal and not quiet else contextlib.nullcontext() as live:
            while not waiter.done():
                status = await lab.service.campaign_status(agent, campaign_id)
                progress.update(specimens, completed=status.get("measured", 0),
                                total=max(planned, status.get("measured", 0)))
                line = (f"measured {status.get('measured', 0)}/{planned}, "
                        f"batches {status.get('batches_done', 0)}/{status.get('batches_planned', '?')}, "
                        f"jobs {status.get('jobs', {})}")
                if live is not None:
                    live.update(render())
                elif not quiet and line != last_line:
                    console.print(f"[{time.monotonic() - started:6.1f} s] {line}")
                last_line = line
                await asyncio.wait({waiter}, timeout=0.5)
            await waiter
        results = await lab.service.results(agent, campaign_id)
        report = await lab.service.report(agent, campaign_id)
        status = await lab.service.campaign_status(agent, campaign_id)
    analysis = results.get("analysis") or {}
    return {
        "campaign_id": campaign_id, "hypothesis": hypothesis.statement, "verdict": analysis.get("verdict"),
        "reason": analysis.get("reason"), "effect": analysis.get("effect"), "groups": analysis.get("groups"),
        "specimens_measured": len(results.get("observations", [])), "specimens_planned": planned,
        "failed_runs": results.get("failed_runs", {}), "ground_truth": truth,
        "matches_ground_truth": truth is not None and analysis.get("verdict") == truth["verdict"],
        "report": report["path"], "exports": results.get("exports") or [], "simulated": True,
        "wall_time_s": round(time.monotonic() - started, 1), "workdir": str(workdir),
    }


@app.command()
def demo(
    workdir: Path = typer.Option(Path("labctl-demo"), "--workdir", help="Where the lab keeps its data, report and export."),
    hypothesis: Path = typer.Option(DEFAULT_HYPOTHESIS, "--hypothesis", help="Hypothesis file (JSON or TOML)."),
    printers: int = typer.Option(3, "--printers", min=1, max=8, help="Simulated printers."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated lab (specimen scatter, faults)."),
    timeout: float = typer.Option(900.0, "--timeout", help="Give up after this many seconds."),
    json_out: bool = typer.Option(False, "--json", help="Print the outcome as JSON (no live display)."),
) -> None:
    """The main job: a whole hypothesis campaign on a simulated lab, with live progress and a report.

    Starts a lab in this process (Marlin printer simulators on pseudo-terminals driven by the real
    printer driver, the rig's firmware pulling modelled specimens, a PyLabRobot liquid handler), then
    acts as an agent: submits a hypothesis that needs all three device kinds, shows progress, and ends
    with the verdict, the report (Markdown + PNG plots) and the provenance export. Exit code 0 when the
    verdict matches the simulator's ground truth, 1 when it does not.

    Example: labctl demo --workdir /tmp/labctl-demo
    """
    from ..agents.refusal import Refused

    if workdir.exists() and any(workdir.iterdir()):
        workdir = workdir / time.strftime("run-%Y%m%d-%H%M%S")
    try:
        outcome = run(_run_demo(workdir, hypothesis, printers, seed, timeout, quiet=json_out))
    except Refused as exc:
        raise fail(f"{hypothesis}: refused: {json.dumps(exc.to_dict())}", EXIT_BAD_INPUT) from None
    except (FileNotFoundError, ValueError) as exc:
        raise fail(f"{hypothesis}: {exc}", EXIT_BAD_INPUT) from None
    except TimeoutError:
        raise fail(f"the campaign did not finish within {timeout:.0f} s", EXIT_FAILED) from None
    if json_out:
        print_json(outcome)
    else:
        truth = outcome["ground_truth"]
        effect = outcome["effect"] or {}
        lines = [f"[bold]verdict: {outcome['verdict']}[/bold] ({outcome['reason']})"]
        if effect:
            lines.append(f"effect: {effect['estimate']:+.1%} (95 % CI {effect['ci95_low']:+.1%} to "
                         f"{effect['ci95_high']:+.1%}); claimed at least {effect['minimum_effect']:+.1%}")
        lines.append(f"specimens measured: {outcome['specimens_measured']} of {outcome['specimens_planned']} planned")
        if truth:
            lines.append(f"simulator ground truth: effect {truth['effect']:+.1%} -> {truth['verdict']}; "
                         + ("[green]the lab's verdict matches[/green]" if outcome["matches_ground_truth"]
                            else "[red]the lab's verdict does NOT match[/red]"))
        lines.append(f"report: {outcome['report']}")
        for export in outcome["exports"]:
            lines.append(f"provenance export: {export}  (check it: labctl verify {export})")
        lines.append(f"wall time: {outcome['wall_time_s']} s; all data labelled simulated")
        console.print(Panel("\n".join(lines), title=f"campaign {outcome['campaign_id']}"))
    if outcome["ground_truth"] is not None and not outcome["matches_ground_truth"]:
        raise typer.Exit(EXIT_FAILED)
