"""Specimens and their analysis: `labctl analyze`, `labctl specimens`, `labctl specimen-gcode`, `labctl slice`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
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
        help="Length crosshead travel is divided by to give strain, mm (default: from --specimen, see "
             "--strain-basis)."),
    specimen: str = typer.Option(None, "--specimen", help="Specimen type for default dimensions, e.g. iso527-1ba."),
    strain_basis: str = typer.Option(
        "effective_length", "--strain-basis",
        help="With --specimen and no --gauge-length: effective_length (crosshead data), gauge_length "
             "(extensometer) or grip_separation."),
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
    """Analyse a tensile curve (ISO 527): modulus, strength, yield, strain at break, toughness.

    Corrects machine compliance (--compliance), trims the preload (--preload), fits the modulus between
    0.05 % and 0.25 % strain. Reads other rigs' CSVs (--force-col, --disp-col, --sep, --decimal, units).

    Example: labctl analyze run1.csv --width 5 --thickness 2 --gauge-length 25 --preload 2 --json
    """
    from protocols.specimens import SpecimenError, get_specimen

    from ..analysis import (
        AnalysisError, AnalysisSettings, CsvFormat, CurveFormatError, analyze, read_compliance_csv, read_curve_csv,
        write_results_csv, write_stress_strain_csv,
    )

    narrow_length = None
    try:
        if specimen is not None:
            spec = get_specimen(specimen)
            width = spec.width_mm if width is None else width
            thickness = spec.thickness_mm if thickness is None else thickness
            if gauge_length is None:
                gauge_length = _strain_length(spec, strain_basis)
                if strain_basis == "effective_length":  # crosshead data: narrow-section strain after the fit
                    narrow_length = spec.narrow_length_mm
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
                           settings=AnalysisSettings(preload_n=preload), specimen_id=specimen_id,
                           narrow_length_mm=narrow_length)
    except (CurveFormatError, SpecimenError) as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    except AnalysisError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    except ValueError as exc:  # pydantic validation of the options (unit, decimal mark, separator, basis)
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


@app.command("specimens")
def specimens_cmd(json_out: bool = JsonOption) -> None:
    """List the standard tensile specimens (ISO 527-2, ASTM D638) and the test methods for each.

    Example: labctl specimens --json
    """
    from protocols.methods import METHODS
    from protocols.specimens import SPECIMENS, effective_length_mm

    rows = []
    for spec in SPECIMENS.values():
        methods = [m.name for m in METHODS.values() if spec.name in m.specimen_types]
        rows.append({**spec.model_dump(), "fillet_length_mm": spec.fillet_length_mm,
                     "effective_length_mm": effective_length_mm(spec), "methods": methods})
    if json_out:
        print_json(rows)
        return
    table = Table(title="Tensile specimens (mm; L eff: crosshead strain length)", box=box.SIMPLE_HEAD,
                  collapse_padding=True, pad_edge=False)
    for column in ("name", "type", "L", "narrow", "L0", "w x t", "grips", "R", "end w", "Leff"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        radius = f"{row['fillet_radius_mm']:g}" + (f"/{row['outer_fillet_radius_mm']:g}"
                                                   if row["outer_fillet_radius_mm"] else "")
        table.add_row(row["name"], row["designation"], f"{row['overall_length_mm']:g}",
                      f"{row['narrow_length_mm']:g}", f"{row['gauge_length_mm']:g}",
                      f"{row['width_mm']:g} x {row['thickness_mm']:g}", f"{row['grip_separation_mm']:g}", radius,
                      f"{row['end_width_mm']:g}", f"{row['effective_length_mm']:.1f}")
    console.print(table)
    for row in rows:
        console.print(f"{row['name']}: methods {', '.join(row['methods'])}")


def _artefact_report(artefact, output: Path, json_out: bool) -> None:  # noqa: ANN001 - GcodeArtefact
    artefact.write(output)
    info = {"output": str(output), "sha256": artefact.sha256, "generator": artefact.generator,
            "generator_version": artefact.generator_version, "layers": artefact.summary.layer_count,
            "filament_mm": round(artefact.summary.extrusion_mm, 2), "parameters": artefact.parameters}
    if json_out:
        print_json(info)
        return
    console.print(f"{output}: {info['layers']} layers, {info['filament_mm']} mm filament, "
                  f"{artefact.generator} {artefact.generator_version}, sha256 {artefact.sha256}")


@app.command("specimen-gcode")
def specimen_gcode_cmd(
    specimen: str = typer.Argument(..., help="Specimen type, e.g. iso527-1ba (see labctl specimens)."),
    output: Path = typer.Option(..., "--output", "-o", help="G-code file to write."),
    layer_height: float = typer.Option(0.2, "--layer-height", help="mm; must divide the thickness."),
    extrusion_width: float = typer.Option(0.45, "--extrusion-width", help="mm."),
    raster: str = typer.Option("45,-45", "--raster", help="Raster angle per layer, cycled, degrees (0 = along the load)."),
    infill: float = typer.Option(1.0, "--infill", help="Infill density 0-1 (raster spacing = width / density)."),
    perimeters: int = typer.Option(1, "--perimeters", help="Wall loops per layer."),
    nozzle_temp: float = typer.Option(210.0, "--nozzle-temp", help="deg C."),
    bed_temp: float = typer.Option(60.0, "--bed-temp", help="deg C."),
    centre: str = typer.Option("110,110", "--centre", help="Bed position of the specimen centre, X,Y mm."),
    build_volume: str = typer.Option("220,220,250", "--build-volume", help="Printer build volume X,Y,Z mm."),
    json_out: bool = JsonOption,
) -> None:
    """Write G-code for a dogbone from FullControl toolpaths (exact raster angle, infill, layer height).

    Example: labctl specimen-gcode iso527-1ba -o s1.gcode --raster 0,90 --infill 1 --layer-height 0.2
    """
    from pydantic import ValidationError

    from ..specimens import DogbonePrintParameters, GcodeError, dogbone_gcode

    try:
        params = DogbonePrintParameters(
            specimen=specimen, layer_height_mm=layer_height, extrusion_width_mm=extrusion_width,
            raster_angles_deg=_numbers(raster, "--raster"), infill_density=infill, perimeters=perimeters,
            nozzle_temp_c=nozzle_temp, bed_temp_c=bed_temp, centre_xy_mm=_numbers(centre, "--centre", 2),
            build_volume_mm=_numbers(build_volume, "--build-volume", 3))
        artefact = dogbone_gcode(params)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'parameters'}: {e['msg']}" for e in exc.errors())
        raise fail(problems, EXIT_BAD_INPUT) from None
    except (GcodeError, ValueError) as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    _artefact_report(artefact, output, json_out)


@app.command("slice")
def slice_cmd(
    mesh: Path = typer.Argument(..., help="STL, OBJ or 3MF file."),
    output: Path = typer.Option(..., "--output", "-o", help="G-code file to write."),
    layer_height: float = typer.Option(0.2, "--layer-height", help="mm."),
    infill: float = typer.Option(1.0, "--infill", help="Infill density 0-1."),
    perimeters: int = typer.Option(2, "--perimeters"),
    nozzle_temp: float = typer.Option(210.0, "--nozzle-temp", help="deg C."),
    bed_temp: float = typer.Option(60.0, "--bed-temp", help="deg C."),
    build_volume: str = typer.Option("220,220,250", "--build-volume", help="Printer build volume X,Y,Z mm."),
    option: list[str] = typer.Option(None, "--option", help="Extra PrusaSlicer option KEY=VALUE (snake_case)."),
    json_out: bool = JsonOption,
) -> None:
    """Slice a mesh with PrusaSlicer (headless); the mesh is checked watertight and inside the build volume.

    Example: labctl slice part.stl -o part.gcode --layer-height 0.2 --option fill_angle=0
    """
    from ..specimens import SlicerError, slice_mesh

    extra: dict[str, str] = {}
    for item in option or []:
        key, sep_, value = item.partition("=")
        if not sep_:
            raise fail(f"--option {item!r}: expected KEY=VALUE", EXIT_BAD_INPUT)
        extra[key.strip()] = value.strip()
    try:
        artefact = slice_mesh(mesh, build_volume_mm=_numbers(build_volume, "--build-volume", 3),
                              layer_height_mm=layer_height, nozzle_temp_c=nozzle_temp, bed_temp_c=bed_temp,
                              infill_density=infill, perimeters=perimeters, config=extra)
    except SlicerError as exc:
        raise fail(str(exc), EXIT_FAILED if "PrusaSlicer failed" in str(exc) else EXIT_BAD_INPUT) from None
    except ValueError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    _artefact_report(artefact, output, json_out)


def _strain_length(spec, basis: str) -> float:  # noqa: ANN001 - SpecimenType
    from protocols.specimens import effective_length_mm

    lengths = {"effective_length": lambda: effective_length_mm(spec), "gauge_length": lambda: spec.gauge_length_mm,
               "grip_separation": lambda: spec.grip_separation_mm}
    if basis not in lengths:
        raise ValueError(f"--strain-basis {basis!r}: choose one of {', '.join(lengths)}")
    return lengths[basis]()


def _numbers(text: str, flag: str, count: int | None = None) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected comma-separated numbers") from None
    if count is not None and len(values) != count:
        raise ValueError(f"{flag} {text!r}: expected {count} numbers")
    return values
