"""Technician commands on a running lab: status, watch, device commands, reports."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.console import Group

from ..bus import BusError, Command, Event, Telemetry, connect, topics
from .app import app
from .common import (
    EXIT_BAD_INPUT, EXIT_FAILED, EXIT_UNREACHABLE, BrokerOption, JsonOption, console, fail, fetch_device_states,
    print_json, run, run_on_lab,
)

printer_app = typer.Typer(help="Technician commands for a printer on the bus (temperatures, home, jog, send).",
                          no_args_is_help=True)
app.add_typer(printer_app, name="printer")

# Actions that move or heat hardware ask for confirmation unless --yes is given.
ACTS_ON_HARDWARE = {"send_line", "home", "jog", "set_temperature", "print_file", "print_gcode", "run_test", "tare",
                    "calibrate", "run_steps", "prepare_formulation", "run_protocol", "resume_interrupted"}


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"parameter {pair!r}: write key=value (values are JSON, or plain text)")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


async def _request(broker: str | None, device_id: str, action: str, params: dict[str, Any],
                   timeout: float) -> dict[str, Any]:
    async with connect(broker, connect_timeout=5.0) as bus:
        reply = await bus.request(topics.device_commands(device_id), Command(action=action, params=params),
                                  timeout=timeout)
    if not reply.ok:
        raise RuntimeError(reply.error or f"{device_id}.{action} failed")
    return reply.result


def _device_call(broker: str | None, device_id: str, action: str, params: dict[str, Any], *, timeout: float,
                 yes: bool, json_out: bool) -> None:
    if action in ACTS_ON_HARDWARE and not yes:
        shown = " ".join(f"{k}={json.dumps(v)}" for k, v in params.items())
        if not typer.confirm(f"{device_id}: {action} {shown} acts on hardware. Go ahead?", default=False):
            raise fail("not confirmed; nothing was sent", EXIT_FAILED)
    try:
        result = run(_request(broker, device_id, action, params, timeout))
    except (BusError, TimeoutError) as exc:
        raise fail(str(exc), EXIT_UNREACHABLE) from None
    except RuntimeError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    if json_out:
        print_json(result)
    else:
        console.print_json(json.dumps(result, default=str))


@app.command()
def device(
    device_id: str = typer.Argument(..., help="Device id, e.g. printer-1."),
    action: str = typer.Argument("describe", help="Command name (`describe` lists them)."),
    params: list[str] = typer.Argument(None, help="Parameters as key=value (values are JSON or text)."),
    broker: Optional[str] = BrokerOption,
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for the reply."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before commands that move or heat."),
    json_out: bool = JsonOption,
) -> None:
    """Send one command to a device host and print its reply (`describe` lists a device's commands).

    Example: labctl device rig-1 tare samples=32 --yes
    """
    try:
        parsed = _parse_params(params or [])
    except ValueError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    _device_call(broker, device_id, action, parsed, timeout=timeout, yes=yes, json_out=json_out)


@printer_app.command("temps")
def printer_temps(device_id: str, hotend: Optional[float] = typer.Option(None, help="Hotend target, C."),
                  bed: Optional[float] = typer.Option(None, help="Bed target, C."),
                  broker: Optional[str] = BrokerOption, yes: bool = typer.Option(False, "--yes", "-y"),
                  json_out: bool = JsonOption) -> None:
    """Show temperatures, or set targets with --hotend/--bed (checked against the printer's limits).

    Example: labctl printer temps printer-1 --hotend 210 --bed 60
    """
    if hotend is None and bed is None:
        _device_call(broker, device_id, "status", {}, timeout=10, yes=True, json_out=json_out)
    else:
        _device_call(broker, device_id, "set_temperature", {"hotend": hotend, "bed": bed}, timeout=30, yes=yes,
                     json_out=json_out)


@printer_app.command("home")
def printer_home(device_id: str, axes: str = typer.Option("XYZ", help="Axes to home."),
                 broker: Optional[str] = BrokerOption, yes: bool = typer.Option(False, "--yes", "-y"),
                 json_out: bool = JsonOption) -> None:
    """Home the printer's axes.

    Example: labctl printer home printer-1 --axes XY
    """
    _device_call(broker, device_id, "home", {"axes": axes}, timeout=120, yes=yes, json_out=json_out)


@printer_app.command("jog")
def printer_jog(device_id: str, x: float = typer.Option(0.0), y: float = typer.Option(0.0), z: float = typer.Option(0.0),
                feedrate: float = typer.Option(3000.0, help="mm/min."), broker: Optional[str] = BrokerOption,
                yes: bool = typer.Option(False, "--yes", "-y"), json_out: bool = JsonOption) -> None:
    """Move the head relative to where it is (checked against the build volume first).

    Example: labctl printer jog printer-1 --z 5
    """
    _device_call(broker, device_id, "jog", {"x": x, "y": y, "z": z, "feedrate": feedrate}, timeout=60, yes=yes,
                 json_out=json_out)


@printer_app.command("send")
def printer_send(device_id: str, line: str = typer.Argument(..., help="One G-code line, e.g. 'G28 X'."),
                 broker: Optional[str] = BrokerOption, yes: bool = typer.Option(False, "--yes", "-y"),
                 json_out: bool = JsonOption) -> None:
    """Send one G-code line after confirmation; the printer's envelope and deny-list still apply.

    Example: labctl printer send printer-1 "M105"
    """
    _device_call(broker, device_id, "send_line", {"line": line}, timeout=60, yes=yes, json_out=json_out)


@app.command()
def status(broker: Optional[str] = BrokerOption, json_out: bool = JsonOption,
           db: Path = typer.Option(Path("labctl-data/labctl.db"), "--db", envvar="LABCTL_DB",
                                   help="The job store (as `labctl jobs`).")) -> None:
    """One screen on the lab: devices by status and jobs by state.

    Example: labctl status --json
    """

    states = run_on_lab(fetch_device_states(broker))
    jobs: dict[str, int] = {}
    if db.exists():
        from ..jobs import Store

        store = Store(db)
        try:
            for job in store.jobs():
                jobs[job.state] = jobs.get(job.state, 0) + 1
        finally:
            store.close()
    data = {"devices": [{"id": s.device.id, "kind": s.device.kind, "status": s.status,
                         "simulated": s.device.simulated} for s in states], "jobs": jobs}
    if json_out:
        print_json(data)
        return
    table = Table("device", "kind", "status", "simulated", title="devices")
    for d in data["devices"]:
        table.add_row(d["id"], d["kind"], d["status"], "yes" if d["simulated"] else "no")
    console.print(table)
    console.print("jobs: " + (", ".join(f"{k} {v}" for k, v in sorted(jobs.items())) or f"none in {db}"))


@app.command()
def watch(target: Optional[str] = typer.Argument(None, help="A job or campaign id; default: everything."),
          broker: Optional[str] = BrokerOption,
          seconds: Optional[float] = typer.Option(None, "--seconds", help="Stop after this long (default: Ctrl-C).")
          ) -> None:
    """Live progress per device and job, from the bus (printer progress, rig samples, job events).

    Example: labctl watch cmp-1234abcd
    """

    async def _watch() -> None:
        progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), TextColumn("{task.fields[info]}"),
                            console=console)
        bars: dict[str, Any] = {}
        events: list[str] = []
        states: dict[str, str] = {}

        def render() -> Group:
            table = Table("device", "status", title="devices", expand=True)
            for device_id, status_ in sorted(states.items()):
                table.add_row(device_id, status_)
            return Group(table, progress, "\n".join(events[-8:]) or "waiting for job events...")

        def bar(key: str, total: float = 100.0) -> Any:
            if key not in bars:
                bars[key] = progress.add_task(key, total=total, info="")
            return bars[key]

        async with connect(broker, connect_timeout=5.0) as bus, \
                bus.subscribe(topics.ALL_DEVICE_STATES) as device_states, \
                bus.subscribe("labctl/v1/devices/+/telemetry/#") as telemetry, \
                bus.subscribe(topics.job_events(target) if target else "labctl/v1/jobs/+/events") as job_events:
            deadline = time.monotonic() + seconds if seconds else None
            with Live(render(), console=console, refresh_per_second=4) as live:
                while deadline is None or time.monotonic() < deadline:
                    for item in _drain(device_states):
                        states[item.message.device.id] = item.message.status
                    for item in _drain(telemetry):
                        device_id = item.topic.split("/")[3]
                        data = item.message.data if isinstance(item.message, Telemetry) else {}
                        if "percent" in data:
                            eta = f"ETA {data['eta_s']:.0f} s" if data.get("eta_s") is not None else ""
                            progress.update(bar(f"{device_id} print"), completed=data["percent"],
                                            info=f"{data.get('lines')}/{data.get('lines_total')} lines {eta}")
                        elif "force_n" in data:
                            key = bar(f"{device_id} test", total=None)
                            peak = max(data["force_n"] or [0.0])
                            progress.update(key, advance=len(data["force_n"]), info=f"{peak:.1f} N")
                    for item in _drain(job_events):
                        if isinstance(item.message, Event):
                            d = item.message.data
                            events.append(f"{time.strftime('%H:%M:%S')} {item.message.name} {d.get('job_id', '')} "
                                          f"{d.get('to', '')} {d.get('step', '')}")
                    live.update(render())
                    await asyncio.sleep(0.25)

    try:
        run_on_lab(_watch())
    except KeyboardInterrupt:
        pass


def _drain(subscription: Any) -> list[Any]:
    items = []
    while (item := subscription.get_nowait()) is not None:
        items.append(item)
    return items


@app.command()
def report(campaign_id: str = typer.Argument(..., help="The agent campaign id (cmp-...)."),
           workdir: Path = typer.Option(Path("labctl-data"), "--workdir", help="The lab's data directory."),
           open_: bool = typer.Option(False, "--open", help="Open the report with the desktop's viewer."),
           json_out: bool = JsonOption) -> None:
    """Show where a campaign's report (Markdown + PNG plots) and provenance export are, and open it.

    Example: labctl report cmp-6683740387a9 --workdir labctl-demo --open
    """
    folder = workdir / "campaigns" / campaign_id
    report_md = folder / "report" / "report.md"
    if not report_md.exists():
        raise fail(f"no report for {campaign_id} under {workdir} (looked for {report_md})", EXIT_BAD_INPUT)
    exports = sorted(str(p) for p in (folder / "export").glob("*") if (p / "manifest.json").exists())
    data = {"campaign_id": campaign_id, "report": str(report_md), "plots": sorted(
        str(p) for p in report_md.parent.glob("*.png")), "exports": exports}
    if json_out:
        print_json(data)
    else:
        console.print(report_md.read_text())
        console.print(f"\nreport: {report_md}\nexports: {', '.join(exports) or 'none'}")
    if open_:
        opener = shutil.which("xdg-open") or shutil.which("open")
        if opener is None:
            raise fail(f"no desktop viewer (xdg-open) on this machine; the report is {report_md}", EXIT_FAILED)
        subprocess.Popen([opener, str(report_md)])


def _register_rig_commands() -> None:
    from .rig_cmds import rig_app

    @rig_app.command("tare")
    def rig_tare(device_id: str = typer.Argument(..., help="Rig device id on the bus, e.g. rig-1."),
                 samples: int = typer.Option(32, help="Readings averaged."), broker: Optional[str] = BrokerOption,
                 json_out: bool = JsonOption) -> None:
        """Zero the load cell of a rig on the bus (nothing may hang from the grips).

        Example: labctl rig tare rig-1
        """
        _device_call(broker, device_id, "tare", {"samples": samples}, timeout=60, yes=True, json_out=json_out)

    @rig_app.command("jog")
    def rig_jog(device_id: str = typer.Argument(..., help="Rig device id on the bus."),
                mm: float = typer.Option(..., "--mm", help="Crosshead travel, mm (negative: down)."),
                speed: float = typer.Option(10.0, "--speed", help="mm/min (the firmware's limit applies)."),
                broker: Optional[str] = BrokerOption, yes: bool = typer.Option(False, "--yes", "-y"),
                json_out: bool = JsonOption) -> None:
        """Move a rig's crosshead (travel limits and endstops are checked by the firmware).

        Example: labctl rig jog rig-1 --mm 5 --speed 20
        """
        _device_call(broker, device_id, "jog", {"distance_mm": mm, "speed_mm_min": speed}, timeout=120, yes=yes,
                     json_out=json_out)


_register_rig_commands()
