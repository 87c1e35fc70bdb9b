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
from pydantic import BaseModel, ConfigDict

from protocols.specimens import effective_length_mm, get_specimen

from ..jobs import JobResult, JobSpec, StepSpec
from .design import Plan, Run
from .hypothesis import Hypothesis


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


class Fabrication:
    def __init__(self, *, mix_action: str = "prepare_formulation", print_action: str = "print_specimen",
                 test_action: str = "run_test", test_speed_mm_min: float = 5.0) -> None:
        self.mix_action = mix_action
        self.print_action = print_action
        self.test_action = test_action
        self.test_speed_mm_min = test_speed_mm_min

    # -- run -> job -------------------------------------------------------------------------------
    def mix_step(self, run: Run) -> StepSpec:
        return StepSpec(name="mix", kind="liquid_handler", action=self.mix_action,
                        params={"specimen": run.run_id, "formulation": run.parameters.formulation},
                        specimen_event="formulated")

    def print_step(self, run: Run) -> StepSpec:
        # The printer's device host generates and envelope-checks the G-code from these checked parameters.
        return StepSpec(name="print", kind="printer", action=self.print_action, block=run.printer,
                        params={"specimen": run.run_id, "parameters": run.parameters.model_dump(mode="json")},
                        specimen_event="printed", specimen_location="{device} bed", on_interrupt="ask")

    def test_step(self, run: Run) -> StepSpec:
        return StepSpec(name="test", kind="rig", action=self.test_action,
                        params={"specimen": run.run_id, "specimen_type": run.parameters.specimen_type,
                                "speed_mm_min": self.test_speed_mm_min,
                                "design": run.parameters.model_dump(mode="json")},
                        outputs=["curve"], specimen_event="tested", specimen_location="{device} bin")

    def job_for(self, run: Run, plan: Plan) -> JobSpec:
        steps = [self.mix_step(run)] if run.needs_formulation else []
        steps += [self.print_step(run), StepSpec(name="handover", kind="handover"), self.test_step(run)]
        return JobSpec(name=run.run_id, specimen_id=run.run_id, steps=steps, method="ISO 527-2",
                       design={"cell": run.cell, "parameters": run.parameters.model_dump(mode="json"),
                               "printer_block": run.printer, "batch": run.batch},
                       metadata={"plan_id": plan.plan_id, "run_order": run.order})

    # -- job -> measurement -----------------------------------------------------------------------
    def measure(self, run: Run, hypothesis: Hypothesis, result: JobResult) -> Measurement:
        from ..analysis import AnalysisError, CurveFormatError, analyze, read_curve_csv

        curve_art = next((a for a in result.artefacts.values() if a.kind == "raw_curve"), None)
        if curve_art is None or curve_art.path is None:
            raise MeasurementError(f"job {result.job_id}: the test produced no raw curve")
        spec = get_specimen(run.parameters.specimen_type)
        try:
            # Crosshead strain: travel over the effective length, not the gauge length (no extensometer).
            analysis = analyze(read_curve_csv(curve_art.path), spec.width_mm, spec.thickness_mm,
                               effective_length_mm(spec), specimen_id=run.run_id)
        except (AnalysisError, CurveFormatError) as exc:
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
