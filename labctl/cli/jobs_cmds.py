"""Job and campaign commands: list, decide (approve, reject, hand over, pause, resume, cancel), export, verify.

They work on the job store (SQLite; `--db` or $LABCTL_DB). Decisions are filed in the store and
applied by the running engine, which checks them against the job's state; the command waits a few
seconds for the engine's answer and reports it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..jobs.models import TERMINAL
from ..jobs.provenance import export_campaign, job_result, verify_export
from ..jobs.store import Store, StoreError
from .app import app, sim_app  # noqa: F401
from .common import EXIT_BAD_INPUT, EXIT_FAILED, JsonOption, console, fail, print_json

DB_ENV = "LABCTL_DB"
DEFAULT_DB = "./labctl-data/labctl.db"

DbOption = typer.Option(None, "--db", envvar=DB_ENV, help=f"The job store (SQLite). Default: {DEFAULT_DB}.")
WaitOption = typer.Option(5.0, "--wait", min=0, help="Seconds to wait for the running engine to apply it.")
ByOption = typer.Option(None, "--by", help="Who decides (default: $USER).")


def open_store(db: str | None, *, must_exist: bool = True) -> Store:
    path = Path(db or DEFAULT_DB)
    if must_exist and not path.exists():
        raise fail(f"no job store at {path} (set --db or ${DB_ENV})", EXIT_BAD_INPUT)
    try:
        return Store(path)
    except (StoreError, OSError, Exception) as exc:
        raise fail(f"cannot open the job store {path}: {exc}", EXIT_BAD_INPUT) from None


def _fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


@app.command("jobs")
def jobs_cmd(db: Optional[str] = DbOption, json_out: bool = JsonOption,
             campaign: Optional[str] = typer.Option(None, "--campaign", help="Only this campaign's jobs."),
             state: Optional[list[str]] = typer.Option(None, "--state", help="Only jobs in this state (repeatable)."),
             active: bool = typer.Option(False, "--active", help="Only jobs that have not finished.")) -> None:
    """List jobs: state, current step, device, specimen and where it is.

    Example: labctl jobs --state waiting_for_approval --json
    """
    with open_store(db) as store:
        jobs = store.jobs(campaign_id=campaign, states=state or None, active_only=active)
    if json_out:
        print_json([{"id": j.id, "campaign_id": j.campaign_id, "submitter": j.submitter, "priority": j.priority,
                     "state": j.state.value, "current_step": j.step_spec.name if j.step_spec else None,
                     "device_id": j.step_run.device_id if j.step_run else None, "reason": j.reason,
                     "specimen": j.specimen.model_dump(mode="json") if j.specimen else None,
                     "steps": [s.model_dump(mode="json", include={"name", "status", "device_id", "attempt", "line"})
                               for s in j.steps], "updated_at": j.updated_at} for j in jobs])
        return
    table = Table("job", "campaign", "submitter", "state", "step", "device", "specimen at", "reason")
    for j in jobs:
        table.add_row(j.id, j.campaign_id, j.submitter, j.state.value, j.step_spec.name if j.step_spec else "",
                      (j.step_run.device_id or "") if j.step_run else "", j.specimen.location if j.specimen else "",
                      j.reason or "")
    console.print(table if jobs else "no jobs")


@app.command("job")
def job_cmd(job_id: str = typer.Argument(..., help="Job id."), db: Optional[str] = DbOption,
            json_out: bool = JsonOption) -> None:
    """Show one job: each step's result and artefacts, where its specimen is and what happened to it,
    and its provenance (hypothesis, plan, G-code hash, firmware, devices, approvals, hand-overs).

    Example: labctl job job-1a2b3c4d5e6f --json
    """
    with open_store(db) as store:
        if store.kind_of(job_id) != "job":
            raise fail(f"no job {job_id!r} in {store.path}", EXIT_BAD_INPUT)
        job = store.job(job_id)
        result = job_result(job, store.campaign(job.campaign_id))
    if json_out:
        print_json(result.model_dump(mode="json"))
        return
    console.print(f"[bold]{job.id}[/bold] ({job.state.value}) campaign {job.campaign_id}, submitter {job.submitter}"
                  + (f": {job.reason}" if job.reason else ""))
    table = Table("step", "kind", "status", "device", "attempt", "finished", "artefacts")
    for spec, run in zip(job.spec.steps, job.steps):
        table.add_row(spec.name, spec.kind, run.status + (f" at line {run.line}" if run.line is not None else ""),
                      run.device_id or "", str(run.attempt), _fmt_time(run.finished_at),
                      ", ".join(f"{a.name} ({a.kind}, {a.sha256[:12]})" for a in run.artefacts))
    console.print(table)
    if job.specimen:
        console.print(f"specimen {job.specimen.id} is at: {job.specimen.location}")
        for event in job.specimen.history:
            console.print(f"  {_fmt_time(event.at)}  {event.event}  {event.location or ''}")
    p = result.provenance
    console.print(f"provenance: hypothesis {p.hypothesis_id}, plan {p.plan_id}, simulated={p.simulated}, "
                  f"devices {', '.join(d['id'] for d in p.devices) or 'none'}")


@app.command("campaigns")
def campaigns_cmd(db: Optional[str] = DbOption, json_out: bool = JsonOption) -> None:
    """List campaigns with their status and how many jobs are in each state.

    Example: labctl campaigns --json
    """
    with open_store(db) as store:
        rows = [(c, store.state_counts(c.id)) for c in store.campaigns()]
    if json_out:
        print_json([{"id": c.id, "name": c.spec.name, "submitter": c.spec.submitter, "status": c.status,
                     "priority": c.spec.priority, "hypothesis_id": c.spec.hypothesis_id, "plan_id": c.spec.plan_id,
                     "jobs": len(c.job_ids), "states": counts, "created_at": c.created_at,
                     "approvals": [a.model_dump(mode="json") for a in c.approvals]} for c, counts in rows])
        return
    table = Table("campaign", "name", "submitter", "status", "jobs", "states", "created")
    for c, counts in rows:
        table.add_row(c.id, c.spec.name, c.spec.submitter, c.status, str(len(c.job_ids)),
                      ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), _fmt_time(c.created_at))
    console.print(table if rows else "no campaigns")


def _decide(db: str | None, target: str, action: str, wait: float, json_out: bool, **args: object) -> None:
    with open_store(db) as store:
        kind = store.kind_of(target)
        if kind is None:
            raise fail(f"no job or campaign {target!r} in {store.path}", EXIT_BAD_INPUT)
        jobs = [store.job(target)] if kind == "job" else store.jobs(campaign_id=target)
        if all(j.state in TERMINAL for j in jobs):
            raise fail(f"{kind} {target} has finished ({', '.join(sorted({j.state.value for j in jobs}))}); "
                       f"nothing to {action}", EXIT_BAD_INPUT)
        request_id = store.add_request(target, action, {k: v for k, v in args.items() if v is not None})
        deadline = time.monotonic() + wait
        request = store.request(request_id)
        while request.processed is None and time.monotonic() < deadline:
            time.sleep(0.1)
            request = store.request(request_id)
    if json_out:
        print_json({"request": request_id, "target": target, "action": action,
                    "applied": request.processed is not None, "ok": request.ok, "message": request.message})
    if request.processed is None:
        if not json_out:
            console.print(f"{action} {target}: filed (request {request_id}); the engine applies it when it runs")
        return
    if not request.ok:
        raise fail(f"{action} {target}: refused: {request.message}", EXIT_FAILED)
    if not json_out:
        console.print(f"{action} {target}: {request.message}")


def _who(by: str | None) -> str:
    return by or os.environ.get("USER") or "technician"


@app.command()
def approve(target: str = typer.Argument(..., help="Campaign or job id."), db: Optional[str] = DbOption,
            by: Optional[str] = ByOption, reason: Optional[str] = typer.Option(None, "--reason"),
            wait: float = WaitOption, json_out: bool = JsonOption) -> None:
    """Approve a campaign (all its jobs) or a job waiting for approval, so it may run on the devices.

    Example: labctl approve cmp-1a2b3c4d5e6f --reason "checked the G-code previews"
    """
    _decide(db, target, "approve", wait, json_out, by=_who(by), reason=reason)


@app.command()
def reject(target: str = typer.Argument(..., help="Campaign or job id."),
           reason: str = typer.Option(..., "--reason", help="Why (kept in the provenance)."),
           db: Optional[str] = DbOption, by: Optional[str] = ByOption, wait: float = WaitOption,
           json_out: bool = JsonOption) -> None:
    """Reject a campaign or job waiting for approval; its jobs are cancelled and never reach a device.

    Example: labctl reject cmp-1a2b3c4d5e6f --reason "infill above the material's limit"
    """
    if not reason.strip():
        raise fail("--reason must not be empty", EXIT_BAD_INPUT)
    _decide(db, target, "reject", wait, json_out, by=_who(by), reason=reason)


@app.command()
def handoff(job: str = typer.Argument(..., help="Job id (waiting_for_handover)."), db: Optional[str] = DbOption,
            by: Optional[str] = ByOption, wait: float = WaitOption, json_out: bool = JsonOption) -> None:
    """Confirm that you moved the job's specimen to its next device (e.g. print bed to rig grips).

    Example: labctl handoff job-1a2b3c4d5e6f --by alice
    """
    _decide(db, job, "handoff", wait, json_out, by=_who(by))


@app.command()
def pause(target: str = typer.Argument(..., help="Campaign or job id."), db: Optional[str] = DbOption,
          by: Optional[str] = ByOption, wait: float = WaitOption, json_out: bool = JsonOption) -> None:
    """Pause jobs: no new step starts; a running step finishes first.

    Example: labctl pause cmp-1a2b3c4d5e6f
    """
    _decide(db, target, "pause", wait, json_out, by=_who(by))


@app.command()
def resume(target: str = typer.Argument(..., help="Campaign or job id."), db: Optional[str] = DbOption,
           by: Optional[str] = ByOption, wait: float = WaitOption, json_out: bool = JsonOption) -> None:
    """Resume paused jobs; for an interrupted job, run its interrupted step again (your decision).

    Example: labctl resume job-1a2b3c4d5e6f
    """
    _decide(db, target, "resume", wait, json_out, by=_who(by))


@app.command()
def cancel(target: str = typer.Argument(..., help="Campaign or job id."), db: Optional[str] = DbOption,
           by: Optional[str] = ByOption, reason: str = typer.Option("cancelled by a technician", "--reason"),
           wait: float = WaitOption, json_out: bool = JsonOption) -> None:
    """Cancel jobs. A device step that is running is not aborted mid-motion; its job ends after it.

    Example: labctl cancel cmp-1a2b3c4d5e6f --reason "wrong filament loaded"
    """
    _decide(db, target, "cancel", wait, json_out, by=_who(by), reason=reason)


@app.command()
def export(campaign: str = typer.Argument(..., help="Campaign id."),
           out: Path = typer.Argument(..., help="New directory to write."), db: Optional[str] = DbOption,
           json_out: bool = JsonOption) -> None:
    """Export a campaign with its provenance, journal and artefacts, and a manifest of SHA-256 hashes.

    Example: labctl export cmp-1a2b3c4d5e6f ./exports/stiffness
    """
    with open_store(db) as store:
        if store.kind_of(campaign) != "campaign":
            raise fail(f"no campaign {campaign!r} in {store.path}", EXIT_BAD_INPUT)
        try:
            path = export_campaign(store, campaign, out)
        except FileExistsError as exc:
            raise fail(str(exc), EXIT_BAD_INPUT) from None
    files = len(list(path.rglob("*")))
    if json_out:
        print_json({"campaign_id": campaign, "directory": str(path), "files": files})
    else:
        console.print(f"exported {campaign} to {path} ({files} entries); check it with: labctl verify {path}")


@app.command()
def verify(directory: Path = typer.Argument(..., help="An export directory (with manifest.json)."),
           json_out: bool = JsonOption) -> None:
    """Recompute every SHA-256 in an export's manifest; name each changed, missing or extra file.

    Exit code 0 when everything matches, 1 when anything differs, 2 when there is no readable manifest.
    Example: labctl verify ./exports/stiffness
    """
    report = verify_export(directory)
    if json_out:
        print_json(report.model_dump())
    else:
        for label, names in (("changed", report.changed), ("missing", report.missing), ("extra", report.extra)):
            for name in names:
                console.print(f"[red]{label}[/red] {name}")
        if report.error:
            console.print(f"[red]error[/red] {report.error}")
        if report.ok:
            console.print(f"ok: {report.checked} files match the manifest")
    if report.checked == 0 and report.error:
        raise typer.Exit(EXIT_BAD_INPUT)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)
