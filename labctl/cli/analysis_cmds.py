"""`labctl analyze`: ISO 527 analysis of a force-displacement curve recorded by any rig."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .app import app, sim_app  # noqa: F401
from .common import EXIT_BAD_INPUT, EXIT_FAILED, JsonOption, console, fail, print_json


def _result_table(result) -> Table:  # noqa: ANN001 - TensileResult, imported lazily
    table = Table(title=f"Tensile results: {result.specimen_id or result.source}", show_header=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    yield_text = ("none (brittle)" if result.yield_strength_mpa is None else
                  f"{result.yield_strength_mpa:.4g} MPa at {result.yield_strain_pct:.3g} % ({result.yield_method})")
    rows = [
        ("modulus", f"{result.modulus_mpa:.5g} MPa ({result.modulus_points} points, R^2 {result.modulus_r2:.5f})"),
        ("tensile strength", f"{result.tensile_strength_mpa:.4g} MPa at {result.strain_at_tensile_strength_pct:.3g} %"),
        ("max force", f"{result.max_force_n:.5g} N"),
        ("yield", yield_text),
        ("strain at break", f"{result.strain_at_break_pct:.4g} %" + ("" if result.break_detected else " (no break)")),
        ("toughness", f"{result.toughness_mj_m3:.4g} MJ/m^3"),
        ("energy to break", f"{result.energy_to_break_j:.4g} J"),
        ("compliance corrected", "yes" if result.compliance_corrected else "no"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


@app.command("analyze")
def analyze_cmd(
    curve: Path = typer.Argument(..., help="CSV file with force and displacement columns (and time, optionally)."),
    width: float = typer.Option(None, "--width", help="Narrow-section width, mm (default: from --specimen)."),
    thickness: float = typer.Option(None, "--thickness", help="Thickness, mm (default: from --specimen)."),
    gauge_length: float = typer.Option(
        None, "--gauge-length",
        help="Length crosshead travel is divided by to give strain, mm (default: --specimen's gauge length)."),
    specimen: str = typer.Option(None, "--specimen", help="Specimen type for default dimensions, e.g. iso527-1ba."),
    compliance: Path = typer.Option(None, "--compliance", help="Machine compliance table CSV (force, displacement)."),
    force_col: str = typer.Option(None, "--force-col", help="Force column name (default: guessed, e.g. force_N)."),
    disp_col: str = typer.Option(None, "--disp-col", help="Displacement column name (default: guessed)."),
    sep: str = typer.Option(",", "--sep", help="Field separator; 'tab' for a tab."),
    decimal: str = typer.Option(".", "--decimal", help="Decimal mark: '.' or ','."),
    force_unit: str = typer.Option("N", "--force-unit", help="N, kN, mN, lbf or kgf."),
    disp_unit: str = typer.Option("mm", "--disp-unit", help="mm, m, um or in."),
    preload: float = typer.Option(None, "--preload", help="Zero displacement where the force reaches this, N."),
    specimen_id: str = typer.Option(None, "--id", help="Specimen id to record in the results."),
    plot: Path = typer.Option(None, "--plot", help="Write a stress-strain PNG with the modulus fit here."),
    results_csv: Path = typer.Option(None, "--results-csv", help="Write the results as a one-row CSV here."),
    curve_csv: Path = typer.Option(None, "--curve-csv", help="Write the processed stress-strain curve CSV here."),
    json_out: bool = JsonOption,
) -> None:
    """Analyse a tensile curve: compliance correction, preload trim, modulus (0.05-0.25 % strain),
    strength, yield, strain at break, toughness.

    Example: labctl analyze run1.csv --width 5 --thickness 2 --gauge-length 25 --preload 2 --json
    """
    from protocols.specimens import SpecimenError, get_specimen

    from ..analysis import (
        AnalysisError, AnalysisSettings, CsvFormat, CurveFormatError, analyze, read_compliance_csv, read_curve_csv,
        write_results_csv, write_stress_strain_csv,
    )

    try:
        if specimen is not None:
            spec = get_specimen(specimen)
            width = spec.width_mm if width is None else width
            thickness = spec.thickness_mm if thickness is None else thickness
            gauge_length = spec.gauge_length_mm if gauge_length is None else gauge_length
        missing = [flag for flag, value in (("--width", width), ("--thickness", thickness),
                                            ("--gauge-length", gauge_length)) if value is None]
        if missing:
            raise fail(f"missing {', '.join(missing)} (or give --specimen NAME for standard dimensions)",
                       EXIT_BAD_INPUT)
        fmt = CsvFormat(force_col=force_col, disp_col=disp_col, sep="\t" if sep.lower() in ("tab", "\\t") else sep,
                        decimal=decimal, force_unit=force_unit, disp_unit=disp_unit)
        data = read_curve_csv(curve, fmt)
        table = read_compliance_csv(compliance) if compliance is not None else None
        analysis = analyze(data, width, thickness, gauge_length, compliance=table,
                           settings=AnalysisSettings(preload_n=preload), specimen_id=specimen_id)
    except (CurveFormatError, SpecimenError) as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    except AnalysisError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    except ValueError as exc:  # pydantic validation of the options (unit, decimal mark, separator)
        raise fail(f"bad option: {exc}", EXIT_BAD_INPUT) from None

    result = analysis.result
    if plot is not None:
        from ..analysis.plots import plot_stress_strain

        plot_stress_strain(analysis, plot)
    if results_csv is not None:
        write_results_csv(result, results_csv)
    if curve_csv is not None:
        write_stress_strain_csv(analysis, curve_csv)
    if json_out:
        print_json(result.model_dump(mode="json"))
        return
    console.print(_result_table(result))
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    for label, target in (("plot", plot), ("results", results_csv), ("curve", curve_csv)):
        if target is not None:
            console.print(f"{label}: {target}")
