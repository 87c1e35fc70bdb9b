"""Benchmark: rig frames from the firmware to the bus, and points in a 1BA modulus window.

1. Streaming: the simulator runs in its own process (`labctl sim rig`, real time, ADC at N Hz) like a
   board on a USB port; the driver + RigDevice + DeviceHost publish batches on the bus; a subscriber
   counts samples. Reported per ADC rate: frames/s sustained end to end and frames lost (sequence
   numbers), against the 1,000 samples/s target.
2. Resolution: ISO 527 method iso527-5 on a 1BA specimen (modulus at 1 mm/min), ADC at 1 kHz; the
   analysis counts samples between 0.05 % and 0.25 % strain, against the 100-point target.

Prints one JSON object. Usage: .venv/bin/python bench/rig_stream.py [--seconds 5] [--rates 1000,2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.rig import RigDevice, RigDriver, RigTestParams, method_to_params  # noqa: E402
from labctl.analysis import AnalysisSettings, ComplianceTable, Curve, analyze  # noqa: E402
from labctl.bus import connect, topics  # noqa: E402
from labctl.devicehost import DeviceHost  # noqa: E402
from protocols.methods import get_method  # noqa: E402
from protocols.specimens import get_specimen  # noqa: E402
from simulators.rig import PrintParams, RigSimConfig, RigSimulator  # noqa: E402

TARGET_RATE = 1000.0
TARGET_POINTS = 100


async def stream(adc_hz: float, seconds: float, workdir: Path) -> dict[str, object]:
    link = workdir / f"rig-{int(adc_hz)}"
    labctl = Path(sys.executable).parent / "labctl"
    sim = subprocess.Popen([str(labctl), "sim", "rig", "--link", str(link), "--speed", "1", "--adc-hz", str(adc_hz),
                            "--failure", "ductile", "--material", "PETG"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not link.is_symlink():
            if sim.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"simulator did not start: {sim.stderr.read().decode() if sim.stderr else ''}")
            await asyncio.sleep(0.05)
        url = f"memory://bench-{int(adc_hz)}"
        async with RigDriver(str(link)) as driver:
            device = RigDevice(driver, "rig-bench", simulated=True, out_dir=workdir)
            seqs: list[int] = []
            arrival: list[tuple[float, int]] = []
            async with connect(url, client_id="host") as host_bus, DeviceHost(host_bus, device), \
                    connect(url, client_id="bench") as client:
                async with client.subscribe(topics.device_telemetry("rig-bench", "force")) as sub:
                    async def count() -> None:
                        async for item in sub:
                            seqs.extend(item.message.data["seq"])
                            arrival.append((time.perf_counter(), len(item.message.data["seq"])))

                    counter = asyncio.create_task(count())
                    # A slow pull that lasts `seconds`: 0.5 mm/min on a PETG specimen stays elastic.
                    travel = 0.5 / 60 * seconds
                    params = RigTestParams(speed_mm_min=0.5, max_extension_mm=travel, break_arm_n=1e6, tare=False)
                    started = time.perf_counter()
                    curve = await driver.run_test(params, on_samples=device._publisher("bench"))
                    elapsed = time.perf_counter() - started
                    await asyncio.sleep(0.5)
                    counter.cancel()
        expected = curve.points + curve.link.missing_frames
        contiguous = seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False
        lost = expected - len(seqs)
        # Sustained rate: samples after the first batch over the time between first and last batch on the bus.
        span = arrival[-1][0] - arrival[0][0] if len(arrival) > 1 else float("nan")
        sustained = sum(n for _, n in arrival[1:]) / span
        return {
            "adc_hz": adc_hz, "test_seconds": round(elapsed, 3), "frames_from_firmware": expected,
            "samples_on_bus": len(seqs), "lost": lost, "contiguous": contiguous,
            "bad_checksums": curve.link.bad_checksums,
            "bus_batches": len(arrival), "frames_per_s": round(sustained, 1),
            "ratio_vs_target": round(sustained / TARGET_RATE, 3),
        }
    finally:
        sim.terminate()
        sim.wait(timeout=10)


async def modulus_window(adc_hz: float) -> dict[str, object]:
    method, spec = get_method("iso527-5"), get_specimen("iso527-1ba")
    async with RigSimulator(RigSimConfig(speed=50, adc_hz=adc_hz)) as sim:
        sim.mount(PrintParams(), specimen_type=spec.name, failure="brittle")
        async with RigDriver(sim.port_path) as driver:
            curve = await driver.run_test(method_to_params(method, spec))
        truth = sim.specimen.props.modulus_mpa
    result = analyze(Curve(force_n=curve.force_n, displacement_mm=curve.displacement_mm),
                     width_mm=spec.width_mm, thickness_mm=spec.thickness_mm,
                     gauge_length_mm=method.strain_length_mm(spec), compliance=ComplianceTable.from_stiffness(762),
                     settings=AnalysisSettings.from_method(method)).result
    return {"specimen": spec.name, "method": method.name, "modulus_speed_mm_min": method.modulus_speed_mm_min,
            "adc_hz": adc_hz, "points_in_window": result.modulus_points, "target": TARGET_POINTS,
            "ratio_vs_target": round(result.modulus_points / TARGET_POINTS, 2),
            "modulus_mpa": round(result.modulus_mpa, 1), "true_modulus_mpa": round(truth, 1),
            "modulus_error_pct": round((result.modulus_mpa / truth - 1) * 100, 2),
            "link_complete": curve.complete}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="1000,5000")
    args = parser.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    with tempfile.TemporaryDirectory() as tmp:
        streams = [await stream(float(rate), args.seconds, Path(tmp)) for rate in args.rates.split(",")]
    window = await modulus_window(1000.0)
    sustained = max((s["frames_per_s"] for s in streams if s["lost"] == 0 and s["contiguous"]), default=0.0)
    print(json.dumps({
        "benchmark": "rig_stream",
        "stream": streams,
        "max_lossless_frames_per_s": sustained,
        "target_frames_per_s": TARGET_RATE,
        "ratio_vs_target": round(sustained / TARGET_RATE, 3),
        "modulus_window": window,
    }, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
