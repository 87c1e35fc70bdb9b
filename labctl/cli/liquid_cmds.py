"""Liquid handling: Opentrons protocol checks, transfer-step jobs, and the liquid simulators."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..bus import BusError, Command, RequestTimeout, connect, topics
from .app import app, sim_app
from .common import (
    EXIT_BAD_INPUT, EXIT_FAILED, EXIT_UNREACHABLE, BrokerOption, JsonOption, console, fail, print_json, run,
)

liquid_app = typer.Typer(help="Liquid handling: check Opentrons protocols, run transfer steps, see the deck.",
                         no_args_is_help=True)
app.add_typer(liquid_app, name="liquid")

DeviceOption = typer.Option("liquid-1", "--device", "-d", help="Liquid-handler device id on the bus.")


@liquid_app.command("validate")
def validate(protocol: Path = typer.Argument(..., help="An Opentrons Python protocol file."),
             json_out: bool = JsonOption,
             log: bool = typer.Option(False, "--log", help="Print opentrons_simulate's run log.")) -> None:
    """Check an Opentrons protocol with opentrons_simulate (Opentrons 9.0.0, its own tool environment).

    Exit 0 if it passes, 1 if Opentrons refuses it (its error message and line are printed),
    2 if the file does not exist, 3 if the Opentrons tool environment is missing.

    Example: labctl liquid validate protocols/opentrons/ot2_formulation.py --log
    """
    from drivers.opentrons.simulate import simulate_protocol

    if not protocol.is_file():
        raise fail(escape(f"no protocol file {protocol}"), EXIT_BAD_INPUT)
    try:
        with console.status(f"opentrons_simulate {protocol.name} ..."):
            result = run(simulate_protocol(protocol))
    except FileNotFoundError as exc:
        raise fail(escape(str(exc)), EXIT_UNREACHABLE) from None
    if json_out:
        print_json(result.model_dump(exclude={"stderr"} if result.ok else set()))
    else:
        if result.run_log.strip() and (log or not result.ok):
            console.print(result.run_log.rstrip(), markup=False, highlight=False)
        if result.ok:
            console.print(f"[green]ok[/green] {protocol}: {result.steps} steps, simulated in {result.seconds:.1f} s "
                          f"(sha256 {result.sha256[:12]})")
    if not result.ok:
        where = f"{protocol}:{result.error_line}" if result.error_line else str(protocol)
        raise fail(escape(f"{where}: refused by opentrons_simulate: {result.error}"), EXIT_FAILED)


@liquid_app.command("check")
def check(steps_file: Path = typer.Argument(..., help="JSON: a list of transfer steps, or {\"formulation\": {...}}."),
          deck: str = typer.Option("formulation_ot2", "--deck", help="Deck layout name (protocols/decks) or path."),
          json_out: bool = JsonOption) -> None:
    """Check transfer steps against a freshly loaded deck, offline: nothing moves, no bus needed.

    Example: labctl liquid check steps.json --deck formulation_ot2
    """
    from drivers.liquid_handler.deck import DeckError
    from drivers.liquid_handler.device import LiquidHandlerConfig, LiquidHandlerDevice
    from drivers.liquid_handler.steps import Formulation, StepsRefused, formulation_plan

    payload = _load_json(steps_file)

    async def _check() -> int:
        async with LiquidHandlerDevice(LiquidHandlerConfig(deck=deck)) as device:
            if isinstance(payload, dict) and "formulation" in payload:
                steps, _ = formulation_plan(Formulation.model_validate(payload["formulation"]))
                step_dicts = [s.model_dump() for s in steps]
            else:
                step_dicts = payload
            return (await device.validate_steps(step_dicts))["steps"]

    try:
        count = run(_check())
    except StepsRefused as exc:
        if json_out:
            print_json({"ok": False, "refusals": [r.model_dump() for r in exc.refusals]})
        raise fail(escape(f"{steps_file}: {exc}"), EXIT_BAD_INPUT) from None
    except (DeckError, ValueError) as exc:
        raise fail(escape(f"{steps_file}: {exc}"), EXIT_BAD_INPUT) from None
    if json_out:
        print_json({"ok": True, "steps": count})
    else:
        console.print(f"[green]ok[/green] {count} steps fit deck {deck}")


@liquid_app.command("run")
def run_steps(steps_file: Path = typer.Argument(..., help="JSON: a list of transfer steps, or {\"formulation\": {...}}."),
              device: str = DeviceOption, broker: Optional[str] = BrokerOption, json_out: bool = JsonOption,
              job_id: Optional[str] = typer.Option(None, "--job-id", help="Name the job (default: generated)."),
              timeout: float = typer.Option(600.0, "--timeout", help="Seconds to wait for the job.")) -> None:
    """Run transfer steps (or a formulation) on a liquid handler over the bus; prints the volumes record.

    Example: labctl liquid run blends.json --device liquid-1
    """
    payload = _load_json(steps_file)
    if isinstance(payload, dict) and "formulation" in payload:
        action, params = "prepare_formulation", {"formulation": payload["formulation"]}
    else:
        action, params = "run_steps", {"steps": payload}
    params["job_id"] = job_id
    result = _request(broker, device, action, params, timeout)
    job = result.get("job", result)
    if json_out:
        print_json(result)
        return
    table = Table("step", "transfer", "status", "before (µL)", "after (µL)")
    for s in job["steps"]:
        step = s["step"]
        table.add_row(str(s["index"]), f"{step['volume']:g} µL {step['source']['labware']}:{step['source']['well']} -> "
                      f"{step['destination']['labware']}:{step['destination']['well']}", s["status"],
                      _volumes(s["before"]), _volumes(s["after"]))
    console.print(table)
    for row in result.get("plate_map", []):
        console.print(f"{row['well']}: {row['measured_percent_b']:.1f} % B in {row['volume']:g} µL")
    console.print(f"job {job['job_id']}: {job['status']}")


@liquid_app.command("status")
def status(device: str = DeviceOption, broker: Optional[str] = BrokerOption, json_out: bool = JsonOption,
           timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for the device to answer.")) -> None:
    """A liquid handler's state: busy or not, estop, tips left, recent jobs.

    Example: labctl liquid status --device liquid-1 --json
    """
    result = _request(broker, device, "status", {}, timeout)
    if json_out:
        print_json(result)
        return
    console.print(f"{result['device']} ({result['backend']}, deck {result['deck']}): "
                  f"{'[red]EMERGENCY-STOPPED[/red] ' if result['estopped'] else ''}"
                  f"{'busy with ' + str(result['current_job']) if result['busy'] else 'idle'}; "
                  f"{result['tips_left']} tips left")
    for job in result["jobs"]:
        console.print(f"  job {job['job_id']}: {job['status']} ({job['done']}/{job['steps']} steps)")


@liquid_app.command("reset")
def reset(device: str = DeviceOption, broker: Optional[str] = BrokerOption) -> None:
    """Clear a liquid handler's emergency stop (discards the tip and any liquid in it).

    Example: labctl liquid reset --device liquid-1
    """
    result = _request(broker, device, "reset", {}, 30.0)
    console.print(f"{device} ready; tip discarded: {result['discarded_tip']} ({result['liquid_lost_ul']:g} µL lost)")


@sim_app.command("opentrons")
def sim_opentrons(
    port: int = typer.Option(31950, "--port", help="TCP port (a robot listens on 31950; 0 picks a free one)."),
    host: str = typer.Option("127.0.0.1", "--host"),
    speed: float = typer.Option(1.0, "--speed", help="Time factor: 10 runs a protocol ten times faster than a robot."),
    flex: bool = typer.Option(False, "--flex", help="Report itself as a Flex (OT-3 Standard) instead of an OT-2."),
    fail_command: Optional[str] = typer.Option(None, "--fail-command",
                                               help="Make the first run fail at this command type (e.g. aspirate)."),
    fail_occurrence: int = typer.Option(1, "--fail-occurrence", help="...at its Nth occurrence."),
) -> None:
    """Serve the Opentrons robot HTTP API: uploads are analysed by Opentrons 9.0.0 and run on a time model.

    Example: labctl sim opentrons --port 31950 --speed 20
    """
    from simulators.opentrons import Fault, OpentronsSimulator

    if speed <= 0:
        raise fail(escape("--speed must be > 0"), EXIT_BAD_INPUT)

    async def _serve() -> None:
        sim = OpentronsSimulator(host=host, port=port or None, speed=speed,
                                 robot_model="OT-3 Standard" if flex else "OT-2 Standard")
        if fail_command:
            sim.robot.next_fault = Fault(command_type=fail_command, occurrence=fail_occurrence)
        async with sim:
            console.print(f"Opentrons robot simulator on {sim.url} (speed x{speed:g}); Ctrl-C stops it")
            await _until_signal()

    try:
        run(_serve())
    except (OSError, SystemExit) as exc:
        raise fail(escape(f"cannot serve on {host}:{port}: {exc}"), EXIT_UNREACHABLE) from None


@sim_app.command("liquid-handler")
def sim_liquid_handler(
    broker: Optional[str] = BrokerOption,
    device_id: str = typer.Option("liquid-1", "--id", help="Device id to announce."),
    deck: str = typer.Option("formulation_ot2", "--deck", help="Deck layout name (protocols/decks) or path."),
    speed: float = typer.Option(1.0, "--speed", help="Time factor for the simulated pipette."),
) -> None:
    """Host a simulated PyLabRobot liquid handler (chatterbox backend, volume and tip tracking) on the bus.

    Example: labctl sim liquid-handler --broker mqtt://127.0.0.1:1883 --speed 10
    """
    from drivers.liquid_handler.deck import DeckError
    from drivers.liquid_handler.device import LiquidHandlerConfig, LiquidHandlerDevice

    from ..devicehost import DeviceHost

    async def _host() -> None:
        device = LiquidHandlerDevice(LiquidHandlerConfig(id=device_id, deck=deck, backend_options={"speed": speed}))
        async with device, DeviceHost.connect(broker, device):
            console.print(f"liquid handler {device_id} (deck {deck}) on the bus; Ctrl-C stops it")
            await _until_signal()

    try:
        run(_host())
    except (DeckError, ValueError) as exc:
        raise fail(escape(str(exc)), EXIT_BAD_INPUT) from None
    except BusError as exc:
        raise fail(escape(str(exc)), EXIT_UNREACHABLE) from None


# -- helpers ---------------------------------------------------------------------------------------
async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise fail(escape(f"no file {path}"), EXIT_BAD_INPUT)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise fail(escape(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}"), EXIT_BAD_INPUT) from None


def _request(broker: Optional[str], device: str, action: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    async def _go():
        async with connect(broker, client_id=None, connect_timeout=3.0) as bus:
            return await bus.request(topics.device_commands(device), Command(action=action, params=params),
                                     timeout=timeout)

    try:
        reply = run(_go())
    except ValueError as exc:
        raise fail(escape(str(exc)), EXIT_BAD_INPUT) from None
    except (BusError, RequestTimeout, TimeoutError) as exc:
        raise fail(escape(f"{device}: no answer ({type(exc).__name__}: {exc})"), EXIT_UNREACHABLE) from None
    if not reply.ok:
        raise fail(escape(reply.error or f"{device}.{action} failed"), EXIT_FAILED)
    return reply.result


def _volumes(volumes: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in volumes.items())
