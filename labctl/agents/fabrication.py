"""How a planned run becomes a fabrication job, and how a finished job becomes a measurement.

`Fabrication` is the seam between the protocol layer and the devices: the job engine runs the
steps, device hosts do the work. The default turns a run into mix (when there is a formulation) ->
print (on the run's printer block) -> hand-over -> tensile test, and reads the rig's raw curve
back through labctl.analysis. The device action names are constructor arguments so a lab (or a
test) can point them at the actions its device hosts expose.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from protocols.specimens import get_specimen

from ..jobs import Artefact, JobResult, JobSpec, StepSpec
from .capabilities import MATERIALS, LabCapabilities
from .design import Plan, Run
from .hypothesis import Hypothesis, PrintParameters
from .refusal import Refusal, Refused


class Measurement(BaseModel):
    """One specimen's response, with its curve for plots and the curve tool."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    value: float
    curve_x: list[float]
    curve_y: list[float]
    curve_labels: tuple[str, str] = ("strain (%)", "stress (MPa)")
    simulated: bool
    results: dict[str, Any]


class MeasurementError(RuntimeError):
    """A finished job whose data cannot give the response (no curve, an analysis error)."""


def curve_distance(strain_pct: np.ndarray, stress: np.ndarray, target_x: list[float], target_y: list[float]) -> float:
    """RMS stress difference (MPa) over the target's strain range; past the measured break the stress is 0."""
    x = np.asarray(target_x, float)
    measured = np.interp(x, strain_pct, stress, left=0.0, right=0.0)
    return float(np.sqrt(np.mean((measured - np.asarray(target_y, float)) ** 2)))


def method_for(params: PrintParameters) -> str:
    """The test method for a specimen: ISO 527 at 50 mm/min for ductile PETG, else the first that fits."""
    from protocols.methods import METHODS

    fitting = [m.name for m in METHODS.values() if params.specimen_type in m.specimen_types]
    if params.material == "PETG" and "iso527-50" in fitting:
        return "iso527-50"
    return fitting[0]


def gcode_for(params: PrintParameters, build_volume_mm: tuple[float, float, float] = (220, 220, 250)) -> Any:
    """G-code for one specimen: FullControl toolpaths for flat prints (exact rasters), PrusaSlicer otherwise."""
    from ..specimens import dogbone_gcode, slice_mesh

    material = MATERIALS[params.material]
    nozzle = params.nozzle_temp if params.nozzle_temp is not None else material.default_nozzle_temp
    bed = params.bed_temp if params.bed_temp is not None else material.default_bed_temp
    if params.orientation == "flat":
        return dogbone_gcode(specimen=params.specimen_type, layer_height_mm=params.layer_height,
                             raster_angles_deg=(params.raster_angle, -params.raster_angle),
                             infill_density=params.infill_density, nozzle_temp_c=nozzle, bed_temp_c=bed,
                             print_speed_mm_s=params.print_speed, build_volume_mm=build_volume_mm,
                             centre_xy_mm=(build_volume_mm[0] / 2, build_volume_mm[1] / 2))
    import trimesh

    from protocols.specimens import dogbone_mesh

    mesh = dogbone_mesh(params.specimen_type)
    axis = [1, 0, 0] if params.orientation == "on_edge" else [0, 1, 0]  # on edge: about the long axis
    mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, axis))
    return slice_mesh(mesh, build_volume_mm=build_volume_mm, layer_height_mm=params.layer_height, nozzle_temp_c=nozzle,
                      bed_temp_c=bed, infill_density=params.infill_density, fill_angle_deg=params.raster_angle)


class FormulationDeck(BaseModel):
    """Where the liquid handler finds the two components and puts the blend (names from its deck layout)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    component_a: dict[str, str] = Field(description="WellRef of component A, e.g. {'labware': 'reservoir', 'well': 'A1'}")
    component_b: dict[str, str]
    destination: str = Field(description="labware receiving the blend")
    total_volume_ul: float = Field(200.0, gt=0)
    b_component: str = Field("B", description="the formulation component dispensed as component B")


class Fabrication:
    def __init__(self, *, mix_action: str = "prepare_formulation", print_action: str = "print_file",
                 test_action: str = "run_test", formulation_deck: FormulationDeck | None = None) -> None:
        self.mix_action = mix_action
        self.print_action = print_action
        self.test_action = test_action
        self.formulation_deck = formulation_deck
        self._gcode: dict[str, Artefact] = {}

    # -- run -> job -------------------------------------------------------------------------------
    def gcode_artefact(self, run: Run, directory: Path, build_volume_mm: tuple[float, float, float]) -> Artefact:
        """Generate (once per distinct parameter set) and store the run's G-code; an Artefact with its hash."""
        key = run.parameters.model_dump_json() + str(build_volume_mm)
        if key not in self._gcode or not Path(self._gcode[key].uri).exists():
            gcode = gcode_for(run.parameters, build_volume_mm)
            directory.mkdir(parents=True, exist_ok=True)
            path = gcode.write(directory / f"{gcode.sha256[:16]}.gcode")
            self._gcode[key] = Artefact.from_file("gcode", "gcode", path, generator=gcode.generator,
                                                  generator_version=gcode.generator_version)
        return self._gcode[key]

    def prepare(self, plan: Plan, directory: Path, lab: LabCapabilities | None = None) -> None:
        """Generate every distinct G-code of the plan now and run the printer driver's envelope check on it
        for each printer of the plan, so G-code no printer may run is refused at submission, before a job
        exists (the driver checks it again before sending a line)."""
        from pydantic import ValidationError

        from drivers.printer.envelope import EnvelopeError, PrinterLimits, check_gcode

        from ..specimens import GcodeError, SlicerError

        printers = [p for p in (lab.printers if lab else []) if p.id in plan.printers]
        for run in {r.parameters.model_dump_json(): r for r in plan.runs}.values():
            try:
                artefact = self.gcode_artefact(run, directory, plan.build_volume_mm)
            except (GcodeError, SlicerError, ValidationError, ValueError) as exc:
                raise Refused([Refusal(field="factors", value=run.cell, limit="printable G-code",
                                       reason=f"cannot generate G-code for {run.cell}: {str(exc)[:300]}")]) from None
            lines = Path(artefact.uri).read_text().splitlines()
            for printer in printers:
                limits = PrinterLimits(max_hotend_c=printer.max_nozzle_temp, max_bed_c=printer.max_bed_temp,
                                       build_volume_mm=printer.build_volume_mm)
                try:
                    check_gcode(lines, limits, source=f"{run.cell} on {printer.id}")
                except EnvelopeError as exc:
                    raise Refused([Refusal(field="factors", value=run.cell, limit=f"{printer.id}'s G-code envelope",
                                           reason=str(exc)[:400])]) from None

    def mix_step(self, run: Run) -> StepSpec:
        deck = self.formulation_deck
        if deck is None:  # a device that takes the formulation as fractions by component name
            params: dict[str, Any] = {"specimen": run.run_id, "formulation": run.parameters.formulation}
        else:  # drivers/liquid_handler's prepare_formulation: a two-component blend, % of B
            params = {"job_id": run.run_id, "formulation": {
                "component_a": deck.component_a, "component_b": deck.component_b, "destination": deck.destination,
                "percent_b": [round(100 * run.parameters.formulation.get(deck.b_component, 0.0), 6)],
                "total_volume": deck.total_volume_ul}}
        return StepSpec(name="mix", kind="liquid_handler", action=self.mix_action, params=params,
                        specimen_event="formulated")

    def print_step(self, run: Run) -> StepSpec:
        # The printer driver runs its own envelope check on the G-code before a line is sent.
        return StepSpec(name="print", kind="printer", action=self.print_action, block=run.printer,
                        inputs={"path": "gcode"}, params={"wait": True}, specimen_event="printed",
                        specimen_location="{device} bed",
                        on_interrupt="ask")

    def test_step(self, run: Run) -> StepSpec:
        return StepSpec(name="test", kind="rig", action=self.test_action,
                        params={"method": method_for(run.parameters), "specimen_id": run.run_id,
                                "specimen": run.parameters.specimen_type},
                        outputs=["curve"], specimen_event="tested", specimen_location="{device} bin")

    def job_for(self, run: Run, plan: Plan, directory: Path) -> JobSpec:
        steps = [self.mix_step(run)] if run.needs_formulation else []
        steps += [self.print_step(run), StepSpec(name="handover", kind="handover"), self.test_step(run)]
        return JobSpec(name=run.run_id, specimen_id=run.run_id, steps=steps, method=method_for(run.parameters),
                       inputs=[self.gcode_artefact(run, directory, plan.build_volume_mm)],
                       design={"cell": run.cell, "parameters": run.parameters.model_dump(mode="json"),
                               "printer_block": run.printer, "batch": run.batch},
                       metadata={"plan_id": plan.plan_id, "run_order": run.order})

    # -- job -> measurement -----------------------------------------------------------------------
    def measure(self, run: Run, hypothesis: Hypothesis, result: JobResult) -> Measurement:
        from ..analysis import AnalysisError, ComplianceTable, CurveFormatError, analyze_specimen, read_curve_csv

        curve_art = next((a for a in result.artefacts.values() if a.kind == "raw_curve"), None)
        raw = curve_art.path if curve_art is not None else result.results.get("test", {}).get("raw_csv")
        if raw is None:
            raise MeasurementError(f"job {result.job_id}: the test produced no raw curve")
        spec = get_specimen(run.parameters.specimen_type)
        test = result.results.get("test", {})
        try:
            # The rig's compliance (if it reports one) is subtracted; the method fixes the strain basis
            # (crosshead travel over the effective length, narrow-section strain after the modulus fit).
            compliance = ComplianceTable.model_validate(test["compliance"]) if test.get("compliance") else None
            analysis = analyze_specimen(read_curve_csv(raw), spec, test.get("method") or method_for(run.parameters),
                                        compliance=compliance, specimen_id=run.run_id)
        except (AnalysisError, CurveFormatError, ValueError) as exc:
            raise MeasurementError(f"job {result.job_id}: {exc}") from None
        r = analysis.result
        strain_pct, stress = analysis.strain * 100, analysis.stress_mpa
        values = {"modulus": r.modulus_mpa, "strength": r.tensile_strength_mpa,
                  "strain_at_break": r.strain_at_break_pct / 100, "toughness": r.energy_to_break_j}
        if hypothesis.response == "curve_distance":
            assert hypothesis.target_curve is not None
            value = curve_distance(strain_pct, stress, hypothesis.target_curve.x, hypothesis.target_curve.y)
        else:
            value = values[hypothesis.response]
        if not math.isfinite(value):
            raise MeasurementError(f"job {result.job_id}: {hypothesis.response} is not a finite number")
        step = max(1, len(strain_pct) // 400)  # enough points for a plot, small enough for a tool reply
        return Measurement(run_id=run.run_id, value=float(value), curve_x=strain_pct[::step].round(5).tolist(),
                           curve_y=stress[::step].round(4).tolist(), simulated=result.provenance.simulated,
                           results=r.model_dump(mode="json", exclude={"metadata", "warnings"}))


def write_curve_artifact(path: Path, force: np.ndarray, displacement: np.ndarray, time: np.ndarray | None = None) -> Path:
    """Write a raw curve the default measure() reads (used by simulated rigs)."""
    from ..analysis import Curve, write_curve_csv

    return write_curve_csv(Curve(force_n=force, displacement_mm=displacement, time_s=time), path)
