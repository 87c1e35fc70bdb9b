"""Printer streaming benchmark: labctl's driver vs Printrun's printcore vs one line in flight.

Simulated Marlin printers run in their own process (`labctl sim printer --count N`), wire-timed at
115200 and 250000 baud with 1 ms USB latency each way, on a file of dense 0.1 mm arc segments.
Rates are measured by the firmware: executed arc lines / time between the first and last one.

    .venv/bin/python bench/printer_stream.py [--quick]

Prints one JSON document. Targets: >= 90 % of the wire limit, >= 2x printcore, zero planner
underruns where the feed rate allows, emergency stop p99 <= 10 ms, 20 printers at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.printer import MarlinDriver  # noqa: E402
from drivers.printer.gcode import frame  # noqa: E402

LATENCY_MS = 1.0
RX_BUFFER = 1024       # firmware/marlin/README.md: RX_BUFFER_SIZE 1024 (Marlin's AVR default is 128)
DEFAULT_RX = 128


def arc_file(segments: int, feed_mm_min: float, radius: float = 20.0) -> list[str]:
    cx = cy = radius + 2.0
    # Travel to the start and wait for it (M400), so the arcs start with empty queues.
    lines = ["G90", "M83", f"G1 X{cx + radius:.3f} Y{cy:.3f} Z0.2 F{feed_mm_min:g}", "M400"]
    step = 0.1 / radius
    for i in range(1, segments + 1):
        lines.append(f"G1 X{cx + radius * math.cos(i * step):.3f} Y{cy + radius * math.sin(i * step):.3f} E0.00333")
    return lines


def wire_limit_lines_per_s(lines: list[str], baud: int, first_n: int = 3) -> float:
    framed = [len(frame(first_n + i, line)) for i, line in enumerate(lines)]
    return baud / 10.0 / (sum(framed) / len(framed))


class SimProcess:
    """`labctl sim printer --count N` in a child process; its JSON report is read on stop."""

    def __init__(self, workdir: Path, name: str, count: int, baud: int) -> None:
        self.link = workdir / name
        self.report = workdir / f"{name}.json"
        self.count = count
        labctl = str(Path(sys.executable).with_name("labctl"))
        self.proc = subprocess.Popen(
            [labctl, "sim", "printer", "--link", str(self.link), "--count", str(count), "--baud", str(baud),
             "--usb-latency-ms", str(LATENCY_MS), "--rx-buffer", str(RX_BUFFER), "--report", str(self.report)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not all(Path(p).exists() for p in self.ports()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"simulator did not start: {self.proc.stderr.read().decode()[-500:]}")
            time.sleep(0.05)

    def ports(self) -> list[str]:
        return [str(self.link)] if self.count == 1 else [f"{self.link}{i}" for i in range(self.count)]

    def reset_all(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)

    def stop(self) -> list[dict]:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        data = json.loads(self.report.read_text())
        return data if isinstance(data, list) else [data]


def firmware_rate(report: dict, arc_lines: set[str]) -> dict:
    times = [t for (n, text), t in zip(report["executed"], report["executed_at"]) if n is not None and text in arc_lines]
    times = times[len(times) // 4:]   # steady state: after what queued during the M400
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
    return {"lines": len(times), "lines_per_s": round(rate, 1), "planner_underruns": report["planner_underruns"],
            "line_errors": report["line_errors"], "rx_dropped_bytes": report["rx_dropped_bytes"]}


# ---- senders ---------------------------------------------------------------------------------------
async def labctl_print(port: str, baud: int, lines: list[str], flow: str = "auto", rx_buffer: int = RX_BUFFER) -> dict:
    async with MarlinDriver(port, baud=baud, rx_buffer=rx_buffer, flow=flow) as driver:  # type: ignore[arg-type]
        result = await driver.print_lines(lines)
    return {"state": result.state, "host_lines_per_s": result.lines_per_s}


def printcore_print(port: str, baud: int, lines: list[str]) -> dict:
    from printrun import gcoder
    from printrun.printcore import printcore

    core = printcore(port, baud)
    deadline = time.monotonic() + 15
    while not core.online:
        if time.monotonic() > deadline:
            core.disconnect()
            raise RuntimeError("printcore did not come online")
        time.sleep(0.01)
    started = time.monotonic()
    core.startprint(gcoder.LightGCode(lines))
    time.sleep(0.05)
    while core.printing:
        time.sleep(0.01)
    duration = time.monotonic() - started
    time.sleep(0.2)
    core.disconnect()
    return {"state": "done", "host_lines_per_s": round(len(lines) / duration, 1)}


def compare_at(baud: int, segments: int, workdir: Path) -> dict:
    lines_probe = arc_file(segments, 6000)
    limit = wire_limit_lines_per_s(lines_probe, baud)
    fast_feed = 12000.0                                   # 2000 lines/s demanded: the wire is the limit
    feasible_feed = round(0.8 * limit * 0.1 * 60.0)       # demands 80 % of the wire limit
    senders = ["labctl", "labctl_rx128", "printcore", "one_in_flight"]
    sim = SimProcess(workdir, f"cmp{baud}", 2 * len(senders), baud)
    ports = sim.ports()
    runs = []
    try:
        for feed_index, feed in enumerate((fast_feed, feasible_feed)):
            lines = arc_file(segments, feed)
            for index, sender in enumerate(senders):
                port = ports[feed_index * len(senders) + index]
                if sender == "labctl":
                    host = asyncio.run(labctl_print(port, baud, lines))
                elif sender == "labctl_rx128":
                    host = asyncio.run(labctl_print(port, baud, lines, rx_buffer=DEFAULT_RX))
                elif sender == "one_in_flight":
                    host = asyncio.run(labctl_print(port, baud, lines, flow="one"))
                else:
                    try:
                        host = printcore_print(port, baud, lines)
                    except Exception as exc:   # report, do not hide
                        host = {"state": "error", "error": repr(exc)}
                runs.append({"sender": sender, "feed_mm_min": feed, "port_index": feed_index * len(senders) + index,
                             "lines": lines, **host})
    finally:
        reports = sim.stop()
    result: dict = {"baud": baud, "usb_latency_ms": LATENCY_MS, "rx_buffer": RX_BUFFER,
                    "wire_limit_lines_per_s": round(limit, 1), "fast_feed_mm_min": fast_feed,
                    "feasible_feed_mm_min": feasible_feed, "senders": {}}
    for run in runs:
        arc_lines = set(run.pop("lines")[4:])
        measured = firmware_rate(reports[run.pop("port_index")], arc_lines)
        key = "full_speed" if run["feed_mm_min"] == fast_feed else "feasible_feed"
        entry = result["senders"].setdefault(run["sender"], {})
        entry[key] = {**run, **measured, "percent_of_wire_limit": round(100.0 * measured["lines_per_s"] / limit, 1)}
    labctl_rate = result["senders"]["labctl"]["full_speed"]["lines_per_s"]
    core_rate = result["senders"]["printcore"]["full_speed"].get("lines_per_s") or 0.0
    result["labctl_vs_printcore"] = round(labctl_rate / core_rate, 2) if core_rate else None
    result["labctl_vs_one_in_flight"] = round(
        labctl_rate / max(1e-9, result["senders"]["one_in_flight"]["full_speed"]["lines_per_s"]), 2)
    return result


# ---- emergency stop latency --------------------------------------------------------------------------
async def estop_samples(samples: int, workdir: Path) -> dict:
    baud = 250000
    sim = SimProcess(workdir, "estop", 1, baud)
    calls: list[float] = []
    lines = arc_file(20000, 12000)
    try:
        for _ in range(samples):
            driver = MarlinDriver(sim.ports()[0], baud=baud, rx_buffer=RX_BUFFER)
            await driver.connect()
            await driver.print_lines(lines, wait=False)
            while driver.job.acked < 150:
                await asyncio.sleep(0.005)
            calls.append(time.monotonic())
            driver.emergency_stop()
            await driver.wait_halted(timeout=2.0)
            await driver.close()
            sim.reset_all()
            await asyncio.sleep(0.1)
    finally:
        report = sim.stop()[0]
    halts = report["halts"]
    modelled = sorted((h["t_monotonic"] - c) * 1000 for h, c in zip(halts, calls))
    processed = sorted((h["t_processed"] - c) * 1000 for h, c in zip(halts, calls))

    def pct(values: list[float], q: float) -> float:
        return round(values[min(len(values) - 1, math.ceil(q * len(values)) - 1)], 2)

    return {"samples": len(modelled), "baud": baud, "usb_latency_ms": LATENCY_MS,
            "p50_ms": pct(modelled, 0.5), "p99_ms": pct(modelled, 0.99), "max_ms": round(max(modelled), 2),
            "simulator_processed_p50_ms": pct(processed, 0.5), "simulator_processed_p99_ms": pct(processed, 0.99),
            "note": "call to emergency_stop() -> the simulated firmware's halt instant (wire-timed); "
                    "'processed' is when the simulator process got to it"}


# ---- one controller, 20 printers ---------------------------------------------------------------------
async def fleet(count: int, segments: int, workdir: Path, feasible: bool = False) -> dict:
    """20 printers at once: at full feed (the wire is the limit), or at a feed needing 80 % of the wire
    (where the target is zero planner underruns)."""
    baud = 250000
    # The simulated printers live in two processes (one per core); the controller is one process.
    sims = [SimProcess(workdir, f"fleet{i}{'f' if feasible else ''}-", count // 2, baud) for i in range(2)]
    lines = arc_file(segments, 12000)
    limit = wire_limit_lines_per_s(lines, baud)
    feed = round(0.8 * limit * 0.1 * 60.0) if feasible else 12000
    lines = arc_file(segments, feed)
    reports: list[dict] = []
    try:
        drivers = [MarlinDriver(port, baud=baud, rx_buffer=RX_BUFFER) for sim in sims for port in sim.ports()]
        await asyncio.gather(*(d.connect() for d in drivers))
        cpu0, wall0 = time.process_time(), time.monotonic()
        results = await asyncio.gather(*(d.print_lines(lines) for d in drivers))
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        await asyncio.gather(*(d.close() for d in drivers))
    finally:
        for sim in sims:
            reports += sim.stop()
    arc_lines = set(lines[4:])
    rates = [firmware_rate(r, arc_lines) for r in reports]
    per = [r["lines_per_s"] for r in rates]
    return {"printers": count, "baud": baud, "feed_mm_min": feed, "lines_each": len(lines), "all_done": all(r.state == "done" for r in results),
            "lines_per_s_each_median": round(statistics.median(per), 1), "lines_per_s_each_min": round(min(per), 1),
            "percent_of_wire_limit_median": round(100 * statistics.median(per) / limit, 1),
            "planner_underruns_total": sum(r["planner_underruns"] for r in rates),
            "controller_cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
            "simulator_processes": len(sims),
            "simulator_cpu_s_per_process": sorted({r.get("process_cpu_s") for r in reports}),
            "controller_cpu_percent_per_stream": round(100.0 * cpu / wall / count, 2),
            "cpu_ms_per_line": round(1000.0 * cpu / (count * len(lines)), 4), "cores": os.cpu_count()}


def printcore_status() -> dict:
    try:
        import printrun.printcore  # noqa: F401
        from importlib.metadata import version
        return {"imported": True, "version": version("printrun")}
    except Exception as exc:
        return {"imported": False, "why": repr(exc)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (fewer lines and samples)")
    parser.add_argument("--only", choices=["streaming", "estop", "fleet"], help="run one part only")
    args = parser.parse_args()
    segments, samples, fleet_segments = (400, 10, 300) if args.quick else (1500, 40, 1200)
    with tempfile.TemporaryDirectory(prefix="labctl-bench-") as tmp:
        workdir = Path(tmp)
        started = time.monotonic()
        out = {"benchmark": "printer_stream", "quick": args.quick, "printcore": printcore_status(),
               "file": f"{segments} arc segments of 0.1 mm (r = 20 mm)"}
        sections = {}
        mark = time.monotonic()
        if args.only in (None, "streaming"):
            out["streaming"] = [compare_at(baud, segments, workdir) for baud in (115200, 250000)]
            sections["streaming"], mark = round(time.monotonic() - mark, 1), time.monotonic()
        if args.only in (None, "estop"):
            out["estop_latency"] = asyncio.run(estop_samples(samples, workdir))
            sections["estop"], mark = round(time.monotonic() - mark, 1), time.monotonic()
        if args.only in (None, "fleet"):
            out["fleet"] = asyncio.run(fleet(20, fleet_segments, workdir))
            out["fleet_feasible_feed"] = asyncio.run(fleet(20, fleet_segments, workdir, feasible=True))
            sections["fleet"] = round(time.monotonic() - mark, 1)
        out["targets"] = {} if args.only else {
            "wire_limit_90pct": all(s["senders"]["labctl"]["full_speed"]["percent_of_wire_limit"] >= 90 for s in out["streaming"]),
            "vs_printcore_2x": all((s["labctl_vs_printcore"] or 0) >= 2 for s in out["streaming"]),
            "zero_underruns_feasible_feed": all(s["senders"]["labctl"]["feasible_feed"]["planner_underruns"] == 0
                                                for s in out["streaming"]),
            "estop_p99_10ms": out["estop_latency"]["p99_ms"] <= 10.0,
            "fleet_20_wire_90pct": out["fleet"]["percent_of_wire_limit_median"] >= 90,
            "fleet_20_zero_underruns_feasible_feed": out["fleet_feasible_feed"]["planner_underruns_total"] == 0,
        }
        out["wall_s"] = round(time.monotonic() - started, 1)
        out["section_wall_s"] = sections
    threading.Event().wait(0)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
