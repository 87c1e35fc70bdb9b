"""Printer commands: `labctl print` streams a G-code file; `labctl sim printer` runs simulated Marlin printers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import typer

from .app import app, sim_app
from .common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_UNREACHABLE, JsonOption, console, fail, print_json


@app.command("print")
def print_cmd(
    file: Path = typer.Argument(..., help="G-code file to print."),
    port: str = typer.Option(..., "--port", help="Serial port or simulator link, e.g. /dev/ttyUSB0."),
    baud: int = typer.Option(250000, "--baud", help="Baud rate (Marlin's default is 250000)."),
    rx_buffer: int = typer.Option(128, "--rx-buffer", help="The firmware's serial RX buffer in bytes (RX_BUFFER_SIZE)."),
    flow: str = typer.Option("auto", "--flow", help="auto (ADVANCED_OK if reported, else byte counting), "
                             "advanced_ok, bytes, or one (one line in flight)."),
    json_out: bool = JsonOption,
) -> None:
    """Check a G-code file against the printer's limits, then stream it and print a summary.

    Exit codes: 0 printed, 1 failed/halted/interrupted, 2 file refused or unreadable, 3 printer unreachable.

    Example: labctl print part.gcode --port /tmp/printer --baud 115200 --json
    """
    from drivers.printer import EnvelopeError, MarlinDriver, PrinterError, check_gcode

    if flow not in ("auto", "advanced_ok", "bytes", "one"):
        raise fail(f"--flow must be auto, advanced_ok, bytes or one, not {flow!r}", EXIT_BAD_INPUT)
    try:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc}", EXIT_BAD_INPUT) from exc
    try:
        check_gcode(lines, source=str(file))
    except EnvelopeError as exc:
        if json_out:
            print_json({"state": "refused", "file": str(file), "violations": [v.model_dump() for v in exc.violations]})
        raise fail(str(exc), EXIT_BAD_INPUT) from exc

    async def stream() -> dict:
        driver = MarlinDriver(port, baud=baud, rx_buffer=rx_buffer, flow=flow)  # type: ignore[arg-type]
        try:
            await driver.connect()
        except PrinterError as exc:
            raise fail(f"printer at {port} unreachable: {exc}", EXIT_UNREACHABLE) from exc
        try:
            if json_out:
                result = await driver.print_lines(lines, name=file.name, source=str(file))
            else:
                from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

                with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} lines"),
                              TimeRemainingColumn(), console=console) as progress:
                    task = progress.add_task(f"printing {file.name}", total=len(lines))
                    await driver.print_lines(lines, name=file.name, source=str(file), wait=False)
                    assert driver.job is not None
                    progress.update(task, total=driver.job.total)
                    while not driver.job.done.is_set():
                        progress.update(task, completed=driver.job.acked + 1)
                        await asyncio.sleep(0.2)
                    progress.update(task, completed=driver.job.acked + 1)
                    result = await driver.wait_job()
            summary = result.model_dump()
            summary.update({"file": str(file), "port": port, "baud": baud, "flow": driver.flow,
                            "firmware": driver.firmware.name, "planner_underruns": None,
                            "final_state": result.state, "line_errors": driver.stats["line_errors"]})
            return summary
        finally:
            await driver.close()

    started = time.monotonic()
    summary = asyncio.run(stream())
    summary.setdefault("wall_s", round(time.monotonic() - started, 3))
    if json_out:
        print_json(summary)
    else:
        console.print(f"{summary['final_state']}: {summary['lines']}/{summary['lines_total']} lines, "
                      f"{summary['bytes']} bytes, {summary['resends']} resends, {summary['duration_s']:.2f} s, "
                      f"{summary['lines_per_s']:.0f} lines/s")
        if summary.get("error"):
            console.print(f"[red]{summary['error']}[/red]")
    if summary["final_state"] != "done":
        raise typer.Exit(EXIT_FAILED)


@sim_app.command("printer")
def sim_printer(
    link: str = typer.Option(..., "--link", help="Symlink to create for the pseudo-terminal (with --count N: LINK0..)."),
    count: int = typer.Option(1, "--count", min=1, max=64, help="Number of printers in this process."),
    baud: int = typer.Option(250000, "--baud", help="Modelled baud rate (10 bits a byte)."),
    wire_timed: bool = typer.Option(True, "--wire-timed/--no-wire-timed", help="Charge wire time per byte."),
    usb_latency_ms: float = typer.Option(0.0, "--usb-latency-ms", help="Latency added to every transfer, each way."),
    rx_buffer: int = typer.Option(128, "--rx-buffer", help="Serial RX buffer in bytes; overflow drops bytes."),
    bufsize: int = typer.Option(4, "--bufsize", help="BUFSIZE command slots."),
    advanced_ok: bool = typer.Option(False, "--advanced-ok/--no-advanced-ok", help="Send ok N.. P.. B.."),
    emergency_parser: bool = typer.Option(True, "--emergency-parser/--no-emergency-parser",
                                          help="Act on M112/M108/M410 as their bytes arrive."),
    speed: float = typer.Option(1.0, "--speed", help="Simulated seconds per real second."),
    bit_error_rate: float = typer.Option(0.0, "--bit-error-rate", help="Probability that a line gets a flipped bit (both ways)."),
    drop_ok_rate: float = typer.Option(0.0, "--drop-ok-rate", help="Probability that an ok is never sent."),
    reset_after_line: int = typer.Option(None, "--reset-after-line", help="Spontaneous reset after line N."),
    disconnect_after_line: int = typer.Option(None, "--disconnect-after-line", help="USB disconnect after line N."),
    heater_fail_after_line: int = typer.Option(None, "--heater-fail-after-line", help="Hotend stops heating after line N."),
    stuck_busy_after_line: int = typer.Option(None, "--stuck-busy-after-line", help="Busy forever after line N."),
    report: Path = typer.Option(None, "--report", help="Write a JSON report (executed lines, hash, underruns) on exit."),
    duration: float = typer.Option(None, "--duration", help="Stop after this many seconds (default: until Ctrl-C)."),
) -> None:
    """Run a Marlin 2.1 compatible printer on a pseudo-terminal until Ctrl-C (SIGUSR1 presses reset).

    Example: labctl sim printer --link /tmp/printer --baud 115200 --usb-latency-ms 1 --report sim.json
    """
    from simulators.printer import FaultConfig, SimulatorConfig
    from simulators.printer.runner import link_paths, run_simulators

    try:
        config = SimulatorConfig(
            baud=baud, wire_timed=wire_timed, usb_latency_s=usb_latency_ms / 1000.0, rx_buffer=rx_buffer,
            bufsize=bufsize, advanced_ok=advanced_ok, emergency_parser=emergency_parser, speed=speed,
            faults=FaultConfig(bit_error_rate=bit_error_rate, drop_ok_rate=drop_ok_rate,
                               reset_after_line=reset_after_line, disconnect_after_line=disconnect_after_line,
                               heater_fail_after_line=heater_fail_after_line,
                               stuck_busy_after_line=stuck_busy_after_line))
    except ValueError as exc:
        raise fail(f"bad simulator option: {exc}", EXIT_BAD_INPUT) from exc
    links = link_paths(link, count)

    def ready(sims: list) -> None:
        for sim in sims:
            console.print(f"simulated Marlin printer on {sim.port_path} -> {sim._slave_name} ({baud} baud)")

    asyncio.run(run_simulators(config, links, report=str(report) if report else None, duration_s=duration,
                               ready=ready))
