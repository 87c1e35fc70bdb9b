"""Scheduling benchmark for the job engine; prints JSON.

1. Makespan of 48 specimens (prepare on 1 liquid handler -> print on 4 printers, blocked 4 ways ->
   hand-over -> condition -> test on 1 rig) against the lower bound the device times allow.
   Devices are real DeviceHost devices (labctl.jobs.timed_device) on the in-process bus; simulated
   time runs `1/TIME_SCALE` times faster than the wall clock. Target: within 5 % of the bound.
2. Scheduler overhead per device step (decision + journal commit before the command leaves).
   Target: < 5 ms.
3. 1,000 jobs from 50 submitters submitted while a campaign runs: submission rate, time to list
   them, and the running campaign's makespan with that load against without it.

    .venv/bin/python bench/campaign_schedule.py [--time-scale 0.00025]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from labctl.bus import connect
from labctl.devicehost import DeviceHost
from labctl.jobs import CampaignSpec, JobEngine, JobSpec, StepSpec, Store
from labctl.jobs.timed_device import TimedDevice

PREP_S, PRINT_S, CONDITION_S, TEST_S = 240.0, 2400.0, 1200.0, 300.0
PRINTERS = 4


def step(name: str, kind: str, seconds: float, specimen: str, **kw: object) -> StepSpec:
    return StepSpec(name=name, kind=kind, action="run", params={"op": name, "seconds": seconds, "specimen": specimen},
                    token_param="token", recall_action="recall", duration_hint_s=seconds, **kw)


def specimen_job(i: int, blocks: int = PRINTERS) -> JobSpec:
    sid = f"S{i:03d}"
    return JobSpec(name=sid, specimen_id=sid, design={"block": i % blocks}, steps=[
        step("prepare", "liquid_handler", PREP_S, sid),
        step("print", "printer", PRINT_S, sid, block=f"B{i % blocks}"),
        StepSpec(name="handover", kind="handover"),
        StepSpec(name="condition", kind="wait", params={"seconds": CONDITION_S}),
        step("test", "rig", TEST_S, sid)])


def lower_bound(n: int) -> float:
    """The makespan no schedule can beat, from device times alone (blocking ignored).

    Printers: specimen k (1-based) is formulated at k*PREP at the earliest (one liquid handler),
    so the specimens from k on need ceil((n-k+1)/P) print slots after k*PREP; the last one still
    needs conditioning and a test. The liquid handler and the rig give their own bounds."""
    printers = max(k * PREP_S + math.ceil((n - k + 1) / PRINTERS) * PRINT_S for k in range(1, n + 1))
    lh = n * PREP_S + PRINT_S + CONDITION_S + TEST_S
    rig = PREP_S + PRINT_S + CONDITION_S + n * TEST_S
    return max(printers + CONDITION_S + TEST_S, lh, rig)


@contextlib.asynccontextmanager
async def lab(tmp: Path, scale: float):
    url = f"memory://bench-{uuid.uuid4().hex[:6]}"
    devices = [("lh-1", "liquid_handler")] + [(f"printer-{i + 1}", "printer") for i in range(PRINTERS)] + \
              [("rig-1", "rig")]
    async with contextlib.AsyncExitStack() as stack:
        for device_id, kind in devices:
            await stack.enter_async_context(DeviceHost.connect(url, TimedDevice(device_id, kind, time_scale=scale)))
        bus = await stack.enter_async_context(connect(url, client_id="engine"))
        store = stack.enter_context(Store(tmp / f"{uuid.uuid4().hex[:6]}.db"))
        engine = await stack.enter_async_context(JobEngine(store, bus, time_scale=scale, poll_interval=0.1))
        yield engine


async def run_campaign(engine: JobEngine, n: int, scale: float, load: int = 0, submitters: int = 50) -> dict:
    t0 = time.perf_counter()
    c = await engine.submit(CampaignSpec(name="bench", submitter="agent-main", jobs=[specimen_job(i) for i in range(n)]))
    loaded: dict = {}
    if load:
        # queued work from many agents that must not slow the running campaign (it waits for approval)
        s0 = time.perf_counter()
        per = load // submitters
        for s in range(submitters):
            for j in range(per):
                await engine.submit_job(JobSpec(name=f"q{s}-{j}", steps=[step("print", "printer", PRINT_S, f"Q{s}-{j}")]),
                                        submitter=f"agent-{s:02d}", requires_approval=True)
        loaded["submit_seconds"] = time.perf_counter() - s0
        loaded["submissions_per_second"] = load / loaded["submit_seconds"]
        l0 = time.perf_counter()
        await engine.wait_until(lambda: sum(1 for j in engine.jobs.values() if j.state == "waiting_for_approval") >= load,
                                timeout=120)
        listed = engine.store.jobs(states=["waiting_for_approval"])
        loaded["list_seconds"] = time.perf_counter() - l0
        loaded["listed"] = len(listed)
        l1 = time.perf_counter()
        engine.store.jobs()
        loaded["list_all_seconds"] = time.perf_counter() - l1
    await engine.wait(c.id, timeout=3600)
    wall = time.perf_counter() - t0
    return {"makespan_s": wall / scale, "wall_s": wall, **loaded}


async def main(scale: float) -> dict:
    n = 48
    bound = lower_bound(n)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        async with lab(tmp, scale) as engine:
            base = await run_campaign(engine, n, scale)
            stats = dict(engine.stats)
            commits = []
            job = engine.store.jobs()[0]
            for _ in range(200):
                c0 = time.perf_counter()
                engine.store.save_job(job, "bench_commit", {})
                commits.append(time.perf_counter() - c0)
        small = 16
        async with lab(tmp, scale) as engine:
            quiet = await run_campaign(engine, small, scale)
        async with lab(tmp, scale) as engine:
            busy = await run_campaign(engine, small, scale, load=1000)
    dispatch_ms = stats["dispatch_seconds"] / max(stats["dispatched"], 1) * 1000
    return {
        "benchmark": "campaign_schedule",
        "time_scale": scale,
        "device_times_s": {"prepare": PREP_S, "print": PRINT_S, "condition": CONDITION_S, "test": TEST_S},
        "makespan_48": {
            "specimens": n, "printers": PRINTERS, "liquid_handlers": 1, "rigs": 1,
            "makespan_s": round(base["makespan_s"]), "lower_bound_s": round(bound),
            "ratio_to_bound": round(base["makespan_s"] / bound, 4), "target_ratio": 1.05,
            "wall_s": round(base["wall_s"], 2)},
        "scheduler_overhead": {
            "dispatch_ms_per_step": round(dispatch_ms, 3), "target_ms": 5.0,
            "device_steps": int(stats["dispatched"]), "ticks": int(stats["ticks"]),
            "journal_commit_ms_median": round(statistics.median(commits) * 1000, 3),
            "journal_commit_ms_p95": round(sorted(commits)[int(len(commits) * 0.95)] * 1000, 3)},
        "queued_load": {
            "jobs": 1000, "submitters": 50,
            "submissions_per_second": round(busy["submissions_per_second"], 1),
            "list_waiting_s": round(busy["list_seconds"], 3), "listed": busy["listed"],
            "list_all_s": round(busy["list_all_seconds"], 3),
            "running_campaign_specimens": small,
            "makespan_quiet_s": round(quiet["makespan_s"]), "makespan_loaded_s": round(busy["makespan_s"]),
            "slowdown_ratio": round(busy["makespan_s"] / quiet["makespan_s"], 4)},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Job engine scheduling benchmark (JSON on stdout).")
    parser.add_argument("--time-scale", type=float, default=0.00025,
                        help="wall seconds per simulated second (default 0.00025: 4000x)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.time_scale)), indent=2))
