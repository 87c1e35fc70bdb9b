"""The rig as a bus device (labctl.devicehost contract): commands, telemetry batches, emergency stop.

    async with RigDriver(port) as driver:
        device = RigDevice(driver, "rig-1", simulated=True, compliance=ComplianceTable.from_stiffness(762))
        async with DeviceHost.connect("mqtt://127.0.0.1:1883", device) as host:
            await host.serve_forever()

Force samples go out on `devices/<id>/telemetry/force` in batches: {"specimen_id", "seq": [...],
"t_s": [...], "steps": [...], "force_n": [...], "steps_per_mm"}. `run_test` writes the raw curve (CSV plus a JSON
sidecar with the firmware identity, method, link statistics) and, through labctl.analysis, the
results (JSON, CSV) and a stress-strain plot (PNG).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from labctl.bus import DeviceInfo
from labctl.devicehost import TelemetrySink, command

from .driver import RigDriver, RigError
from .models import RawCurve, RigTestParams
from .protocol import Frame

# The speed switch waits for this multiple of the window's end strain times the strain length of
# crosshead travel: frame deflection adds up to ~1.7x the specimen's own elongation on a DIY frame.
_SWITCH_MARGIN = 3.0
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def method_to_params(method: Any, specimen: Any) -> RigTestParams:
    """RigTestParams for a protocols.methods.TestMethod on a protocols.specimens.SpecimenType."""
    two_speeds = method.test_speed_mm_min != method.modulus_speed_mm_min
    switch = _SWITCH_MARGIN * method.modulus_strain_end_pct / 100 * method.strain_length_mm(specimen)
    return RigTestParams(
        speed_mm_min=method.modulus_speed_mm_min, preload_n=method.preload_force_n,
        preload_speed_mm_min=method.preload_speed_mm_min,
        speed2_mm_min=method.test_speed_mm_min if two_speeds else 0.0, switch_mm=switch if two_speeds else 0.0,
        break_arm_n=method.end.activation_force_n, break_drop_fraction=method.end.break_force_fraction,
        max_extension_mm=method.end.max_extension_mm, force_limit_n=method.end.force_limit_n, tare=True)


def real_time_bound_s(params: RigTestParams) -> float:
    """Longest a test with these parameters can take on real hardware (with margin): then it is stuck."""
    final = params.speed2_mm_min or params.speed_mm_min
    minutes = (params.preload_max_mm / params.preload_speed_mm_min + params.switch_mm / params.speed_mm_min
               + params.max_extension_mm / final)
    return minutes * 60 * 1.5 + 60


MAX_FRAMES_PER_MESSAGE = 1000  # ~60 kB of JSON, a quarter of the bus's 256 KiB limit


class RigDevice:
    def __init__(self, driver: RigDriver, device_id: str = "rig-1", *, simulated: bool = False,
                 compliance: Any = None, out_dir: str | Path = "results/rig", host: str | None = None) -> None:
        identity = driver.identity
        if identity is None:
            raise RigError("open the RigDriver (async with) before making a RigDevice from it")
        self.driver = driver
        self.compliance = compliance
        self.out_dir = Path(out_dir)
        self.info = DeviceInfo(
            id=device_id, kind="rig", driver="drivers.rig", simulated=simulated, firmware=identity.label, host=host,
            capabilities=["tare", "calibrate", "jog", "run_test", "status", "stop", "reset"],
            limits={"force_limit_n": driver.limits.get("fmax"), "max_speed_mm_min": driver.limits.get("vmax"),
                    "travel_mm": [driver.limits.get("tmin"), driver.limits.get("tmax")],
                    "adc_hz": identity.adc_hz, "steps_per_mm": identity.steps_per_mm})
        self.emit: TelemetrySink | None = None
        self.set_status: Any = None
        self._busy = asyncio.Lock()
        self._estopped = False

    async def emergency_stop(self) -> None:
        self._estopped = True
        await self.driver.emergency_stop()

    async def _status(self, status: str, **detail: Any) -> None:
        if self.set_status is not None:
            await self.set_status(status, **detail)

    @command()
    async def identify(self) -> dict[str, Any]:
        identity = await self.driver.identify()
        return identity.model_dump()

    @command()
    async def status(self) -> dict[str, Any]:
        fields = await self.driver.status()
        return {**fields, "link": self.driver.link.model_dump()}

    @command()
    async def tare(self, samples: int = 32) -> dict[str, Any]:
        return await self.driver.tare(samples)

    @command()
    async def calibrate(self, mass_g: float, samples: int = 32) -> dict[str, Any]:
        return await self.driver.calibrate(mass_g, samples)

    @command()
    async def jog(self, distance_mm: float, speed_mm_min: float = 10.0) -> dict[str, Any]:
        async with self._exclusive("jog"):
            return await self.driver.jog(distance_mm, speed_mm_min)

    @command()
    async def stop(self) -> dict[str, Any]:
        return await self.driver.stop()

    @command()
    async def reset(self) -> dict[str, Any]:
        """Clear a latched fault (estop, force limit, endstop, watchdog) once the cause is dealt with."""
        result = await self.driver.reset()
        self._estopped = False
        await self._status("online")
        return result

    @command()
    async def run_test(self, method: str, specimen_id: str, specimen: str | None = None,
                       out_dir: str | None = None, analyse: bool = True) -> dict[str, Any]:
        """Run one test of `specimen` (a specimen type, e.g. iso527-1ba) with `method` (e.g. iso527-5)."""
        from protocols.methods import get_method
        from protocols.specimens import get_specimen

        if not _SAFE_ID.match(specimen_id):
            raise ValueError(f"specimen_id {specimen_id!r}: use letters, digits, '.', '_' or '-' (max 64)")
        test_method = get_method(method)
        if specimen is None and len(test_method.specimen_types) > 1:
            raise ValueError(f"method {test_method.name} applies to {', '.join(test_method.specimen_types)}: "
                             "name the specimen type")
        spec = test_method.check_specimen(get_specimen(specimen or test_method.specimen_types[0]))
        params = method_to_params(test_method, spec)
        directory = Path(out_dir) if out_dir else self.out_dir
        directory.mkdir(parents=True, exist_ok=True)
        async with self._exclusive("run_test"):
            await self._status("busy", action="run_test", specimen_id=specimen_id, method=test_method.name)
            curve = None
            try:
                curve = await self.driver.run_test(params, on_samples=self._publisher(specimen_id),
                                                   specimen_id=specimen_id, specimen_type=spec.name,
                                                   timeout_s=self.driver.test_timeout_s or real_time_bound_s(params))
            finally:
                # An estop's status stands until reset; a firmware fault is latched on the rig too.
                if not self._estopped:
                    if curve is not None and curve.fault:
                        await self._status("fault", reason=curve.fault, specimen_id=specimen_id)
                    else:
                        await self._status("online")
        raw_csv = curve.write_csv(directory / f"{specimen_id}.raw.csv")
        meta = curve.metadata() | {"method": test_method.name, "specimen_type": spec.name,
                                   "simulated": self.info.simulated, "device": self.info.id}
        meta_path = directory / f"{specimen_id}.meta.json"
        meta_path.write_text(_json(meta))
        result: dict[str, Any] = {
            "specimen_id": specimen_id, "method": test_method.name, "specimen_type": spec.name,
            "raw_csv": str(raw_csv), "metadata_json": str(meta_path), "end_reason": curve.end_reason,
            "fault": curve.fault, "points": curve.points, "peak_force_n": curve.peak_force_n,
            "complete": curve.complete, "link": curve.link.model_dump(), "firmware": curve.firmware.label,
            # The machine's own compliance travels with the curve: whoever re-analyses the raw data
            # must subtract it, or a stiff specimen's modulus is badly underestimated.
            "compliance": self.compliance.model_dump(mode="json") if self.compliance is not None else None,
        }
        if analyse and curve.fault is None:
            result.update(self._analyse(curve, test_method, spec, directory, meta))
        # Files a job engine keeps (hashed) as the test's artefacts, for provenance.
        result["artefacts"] = [{"name": name, "kind": kind, "uri": result[key]}
                               for name, kind, key in (("curve", "raw_curve", "raw_csv"),
                                                       ("test_metadata", "results", "metadata_json"),
                                                       ("results", "results", "results_json"),
                                                       ("plot", "other", "plot_png"))
                               if result.get(key)]
        return result

    def _analyse(self, curve: RawCurve, method: Any, spec: Any, directory: Path, meta: dict[str, Any]) -> dict[str, Any]:
        from labctl.analysis import (
            AnalysisError, Curve, analyze_specimen, plot_stress_strain, write_results_csv, write_results_json,
        )

        specimen_id = curve.specimen_id or "specimen"
        try:
            # analyze_specimen: the method's strain basis, and narrow-section strain after the modulus fit
            # (crosshead travel over the effective length understates strain at break after yield).
            analysis = analyze_specimen(
                Curve(force_n=curve.force_n, displacement_mm=curve.displacement_mm, time_s=curve.time_s,
                      source=str(directory / f"{specimen_id}.raw.csv")),
                spec, method, compliance=self.compliance, specimen_id=specimen_id,
                metadata={k: meta[k] for k in ("method", "specimen_type", "simulated", "device", "end_reason")}
                | {"firmware": curve.firmware.label, "complete": curve.complete})
        except AnalysisError as exc:
            return {"analysis_error": str(exc)}
        return {
            "results": analysis.result.model_dump(),
            "results_json": str(write_results_json(analysis.result, directory / f"{specimen_id}.results.json")),
            "results_csv": str(write_results_csv(analysis.result, directory / f"{specimen_id}.results.csv")),
            "plot_png": str(plot_stress_strain(analysis, directory / f"{specimen_id}.png",
                                               title=f"{specimen_id} ({method.name}, {spec.name})")),
        }

    def _publisher(self, specimen_id: str):
        async def publish(batch: list[Frame]) -> None:
            if self.emit is None or not batch:
                return
            # A slow host can gather thousands of frames between two publishes; chunk them so each
            # message stays far below the bus's payload limit.
            for start in range(0, len(batch), MAX_FRAMES_PER_MESSAGE):
                chunk = batch[start:start + MAX_FRAMES_PER_MESSAGE]
                await self.emit("force", {
                    "specimen_id": specimen_id, "seq": [f.seq for f in chunk],
                    "t_s": [f.t_us / 1e6 for f in chunk], "steps": [f.steps for f in chunk],
                    "force_n": [f.force_n for f in chunk], "steps_per_mm": self.driver.identity.steps_per_mm if
                    self.driver.identity else None})
        return publish

    def _exclusive(self, action: str) -> asyncio.Lock:
        if self._busy.locked():
            raise RigError(f"{self.info.id} is busy; {action} refused")
        return self._busy


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, indent=2, default=str)
