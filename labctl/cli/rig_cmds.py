"""Tensile rig commands: `labctl sim rig` (the simulator), `labctl rig test`, `labctl rig identify`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from .app import app, sim_app
from .common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_UNREACHABLE, JsonOption, console, fail, print_json, run

rig_app = typer.Typer(help="The tensile-test rig: run a test, identify its firmware.", no_args_is_help=True)
app.add_typer(rig_app, name="rig")


@sim_app.command("rig")
def sim_rig(
    link: Path = typer.Option(..., "--link", help="Create a symlink to the simulator's serial port here."),
    speed: float = typer.Option(1.0, "--speed", help="Simulated seconds per wall-clock second (a maximum)."),
    adc_hz: float = typer.Option(1000.0, "--adc-hz", help="Load-cell ADC rate, samples/s."),
    specimen: str = typer.Option("iso527-1ba", "--specimen", help="Specimen type gripped at each START."),
    material: str = typer.Option("PLA", "--material", help="PLA or PETG."),
    infill: float = typer.Option(100.0, "--infill", help="Infill density, %."),
    raster: float = typer.Option(0.0, "--raster", help="Raster angle to the load axis, degrees."),
    orientation: str = typer.Option("flat", "--orientation", help="flat, on_edge or upright."),
    layer_height: float = typer.Option(0.2, "--layer-height", help="Layer height, mm."),
    blend_b: float = typer.Option(0.0, "--blend-b", help="Component B in the formulation, %."),
    failure: str = typer.Option("auto", "--failure", help="auto, brittle or ductile."),
    seed: int = typer.Option(1, "--seed", help="Seed of the first specimen (each next one adds 1)."),
    frame_stiffness: float = typer.Option(762.0, "--frame-stiffness", help="Machine stiffness, N/mm."),
    noise: float = typer.Option(0.05, "--noise", help="Load-cell noise, N rms."),
    corrupt_every: int = typer.Option(0, "--corrupt-every", help="Corrupt every Nth frame (fault injection)."),
    drop_every: int = typer.Option(0, "--drop-every", help="Drop every Nth frame (fault injection)."),
) -> None:
    """Run the simulated tensile rig (its real firmware logic) on a pseudo-terminal until Ctrl-C.

    Example: labctl sim rig --link /tmp/rig0 --speed 20 --material PETG --blend-b 10
    """
    from protocols.specimens import SpecimenError, get_specimen
    from simulators.rig import PrintParams, RigSimConfig, RigSimulator

    try:
        config = RigSimConfig(
            link=link, speed=speed, adc_hz=adc_hz, specimen_type=specimen, failure=failure, seed=seed,
            frame_stiffness_n_per_mm=frame_stiffness, noise_n=noise, corrupt_every=corrupt_every,
            drop_every=drop_every,
            print_params=PrintParams(material=material, infill_pct=infill, raster_angle_deg=raster,
                                     orientation=orientation, layer_height_mm=layer_height, blend_b_pct=blend_b))
        get_specimen(specimen)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise fail(f"bad simulator option {'.'.join(str(p) for p in first['loc'])}: {first['msg']}",
                   EXIT_BAD_INPUT) from None
    except SpecimenError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None

    async def serve() -> None:
        try:
            sim = RigSimulator(config)
            await sim.start()
        except FileExistsError as exc:
            raise fail(str(exc), EXIT_BAD_INPUT) from None
        console.print(f"rig simulator on {sim.port_path} -> {sim.pty_name} "
                      f"(speed x{speed:g}, ADC {adc_hz:g} Hz, {specimen}, {material})", highlight=False)
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        waiters = {asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(sim.serve_forever())}
        try:
            done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done:
                task.result()  # a crashed simulator loop surfaces here, not silently
        finally:
            await sim.stop()  # removes the link

    run(serve())


@rig_app.command("test")
def rig_test(
    port: str = typer.Option(..., "--port", help="Serial port of the rig (or a simulator's --link)."),
    method: str = typer.Option(..., "--method", help="Test method, e.g. iso527-5, iso527-50, astm-d638."),
    specimen_id: str = typer.Option(..., "--specimen-id", help="Name of this specimen; names the output files."),
    specimen: str = typer.Option(None, "--specimen",
                                 help="Specimen type, e.g. iso527-1ba (needed when the method covers several)."),
    out: Path = typer.Option(Path("results/rig"), "--out", help="Directory for raw CSV, results and plot."),
    frame_stiffness: float = typer.Option(None, "--frame-stiffness",
                                          help="Machine stiffness (N/mm) for compliance correction."),
    compliance: Path = typer.Option(None, "--compliance", help="Compliance table CSV (force, displacement)."),
    json_out: bool = JsonOption,
) -> None:
    """Run one tensile test: preload, modulus and strength speeds, end criteria; write raw CSV, results, plot.

    Example: labctl rig test --port /tmp/rig0 --method iso527-5 --specimen-id S-001 --frame-stiffness 762 --json
    """
    from protocols.methods import MethodError, get_method
    from protocols.specimens import SpecimenError, get_specimen

    try:
        test_method = get_method(method)
        if specimen is None and len(test_method.specimen_types) > 1:
            raise MethodError(f"method {test_method.name} applies to {', '.join(test_method.specimen_types)}: "
                              "give --specimen")
        test_method.check_specimen(get_specimen(specimen or test_method.specimen_types[0]))
    except (MethodError, SpecimenError) as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    table = _compliance(frame_stiffness, compliance)
    result = run(_run_test(port, method, specimen_id, specimen, out, table, json_out))
    if json_out:
        print_json(result)
    else:
        _print_result(result)
    if result.get("fault") or "analysis_error" in result:
        raise typer.Exit(EXIT_FAILED)


def _compliance(frame_stiffness: float | None, path: Path | None) -> Any:
    from labctl.analysis import ComplianceTable, CurveFormatError, read_compliance_csv

    if frame_stiffness is not None and path is not None:
        raise fail("give --frame-stiffness or --compliance, not both", EXIT_BAD_INPUT)
    try:
        if path is not None:
            return read_compliance_csv(path)
        if frame_stiffness is not None:
            return ComplianceTable.from_stiffness(frame_stiffness)
    except (CurveFormatError, ValueError, OSError) as exc:
        raise fail(f"compliance: {exc}", EXIT_BAD_INPUT) from None
    return None


async def _run_test(port: str, method: str, specimen_id: str, specimen: str | None, out: Path, table: Any,
                    quiet: bool) -> dict[str, Any]:
    from drivers.rig import RigDevice, RigDriver, RigError

    try:
        driver = RigDriver(port)
        await driver.open()
    except RigError as exc:
        raise fail(str(exc), EXIT_UNREACHABLE) from None
    try:
        device = RigDevice(driver, "rig-cli", compliance=table, out_dir=out)
        status = None if quiet else console.status("waiting for the preload ...")

        async def show(stream: str, data: dict[str, Any]) -> None:
            if status is not None and data["force_n"]:
                spm = data.get("steps_per_mm") or 1
                status.update(f"{specimen_id}: {data['force_n'][-1]:8.2f} N at {data['steps'][-1] / spm:7.3f} mm "
                              f"(frame {data['seq'][-1]})")

        device.emit = show
        try:
            if status is not None:
                status.start()
            return await device.run_test(method=method, specimen_id=specimen_id, specimen=specimen)
        except (RigError, ValueError) as exc:
            raise fail(str(exc), EXIT_FAILED) from None
        finally:
            if status is not None:
                status.stop()
    finally:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await driver.close()


def _print_result(result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{result['specimen_id']} ({result['method']}, {result['specimen_type']})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("end of test", str(result["end_reason"]))
    link = result["link"]
    table.add_row("frames", f"{result['points']} ({link['missing_frames']} missing, {link['bad_frames']} damaged)")
    res = result.get("results")
    if res:
        table.add_row("modulus", f"{res['modulus_mpa'] / 1000:.3f} GPa ({res['modulus_points']} points)")
        table.add_row("tensile strength", f"{res['tensile_strength_mpa']:.2f} MPa")
        if res.get("yield_strength_mpa") is not None:
            table.add_row("yield", f"{res['yield_strength_mpa']:.2f} MPa ({res['yield_method']})")
        table.add_row("strain at break", f"{res['strain_at_break_pct']:.2f} %")
        table.add_row("toughness", f"{res['toughness_mj_m3']:.3f} MJ/m^3")
    if "analysis_error" in result:
        table.add_row("analysis", result["analysis_error"])
    console.print(table)
    for key in ("raw_csv", "results_json", "results_csv", "plot_png"):
        if key in result:
            console.print(f"{key}: {result[key]}", highlight=False)


@rig_app.command("identify")
def rig_identify(port: str = typer.Option(..., "--port", help="Serial port of the rig."),
                 json_out: bool = JsonOption) -> None:
    """Show the rig firmware's name, version, calibration and limits.

    Example: labctl rig identify --port /dev/ttyACM0 --json
    """
    from drivers.rig import RigDriver, RigError

    async def ask() -> dict[str, Any]:
        try:
            async with RigDriver(port) as driver:
                assert driver.identity is not None
                return driver.identity.model_dump() | {"limits": driver.limits}
        except RigError as exc:
            raise fail(str(exc), EXIT_UNREACHABLE) from None

    info = run(ask())
    if json_out:
        print_json(info)
    else:
        for key, value in info.items():
            console.print(f"{key}: {value}", highlight=False)
