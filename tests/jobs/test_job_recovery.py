"""Restart reconciliation, in process: the engine stops mid-step (its store left as a crash leaves
it) while the devices carry on, then a new engine reconciles with what the devices report."""

from __future__ import annotations

import asyncio

from jobs_lab import campaign, running_lab
from labctl.bus import EStop, topics
from labctl.jobs import JobState


def running_step(lab, job_id: str, step: int) -> bool:
    job = lab.engine.jobs.get(job_id)
    return job is not None and job.state == JobState.RUNNING and job.current_step == step


async def test_a_finished_test_is_not_run_again(tmp_path):
    async with running_lab(tmp_path) as lab:
        c = await lab.engine.submit(campaign(1))
        job_id = c.job_ids[0]
        await lab.engine.wait_until(lambda: running_step(lab, job_id, 4), timeout=10)
        token = lab.engine.jobs[job_id].step_run.token
        await lab.stop_engine()
        rig = lab.devices["rig-1"]
        for _ in range(200):  # the rig finishes the test while no controller is running
            if token in rig.finished:
                break
            await asyncio.sleep(0.02)
        assert lab.store.job(job_id).state == JobState.RUNNING
        await lab.start_engine()
        done = await lab.engine.wait(job_id, timeout=10)
        assert done.state == JobState.DONE
        assert rig.executions == {token: 1}
        recovered = [e for e in lab.store.journal(job_id) if e.event == "done"]
        assert recovered[0].data["recovered"] is True


async def test_an_interrupted_print_waits_for_a_technician_with_its_line(tmp_path):
    async with running_lab(tmp_path) as lab:
        c = await lab.engine.submit(campaign(1, print_s=2000))
        job_id = c.job_ids[0]
        await lab.engine.wait_until(lambda: running_step(lab, job_id, 1), timeout=10)
        await asyncio.sleep(0.3)
        printer_id = lab.engine.jobs[job_id].step_run.device_id
        await lab.stop_engine()
        await lab.bus.publish(topics.ESTOP, EStop(reason="filament runout"))  # while the controller is down
        printer = lab.devices[printer_id]
        for _ in range(100):
            if printer.interrupted:
                break
            await asyncio.sleep(0.02)
        line = next(iter(printer.interrupted.values()))
        assert line > 0
        for device in lab.devices.values():
            await device.clear_estop()
        await lab.start_engine()
        await lab.engine.wait_until(lambda: lab.engine.job(job_id).state == JobState.INTERRUPTED, timeout=10)
        job = lab.engine.job(job_id)
        assert job.steps[1].line == line and "interrupted" in job.reason
        await asyncio.sleep(0.2)
        assert lab.engine.job(job_id).state == JobState.INTERRUPTED  # nothing re-runs without a decision
        await lab.engine.resume(job_id, by="erin")
        await lab.engine.wait_until(lambda: running_step(lab, job_id, 1), timeout=10)
        assert lab.engine.job(job_id).steps[1].attempt == 2


async def test_a_step_without_recall_is_left_for_the_technician(tmp_path):
    async with running_lab(tmp_path) as lab:
        spec = campaign(1, print_s=2000)
        spec.jobs[0].steps[1].recall_action = None
        c = await lab.engine.submit(spec)
        job_id = c.job_ids[0]
        await lab.engine.wait_until(lambda: running_step(lab, job_id, 1), timeout=10)
        await lab.stop_engine()
        await lab.start_engine()
        settled = await lab.engine.wait(c.id, timeout=10, settled=True)
        assert settled.id == c.id and lab.engine.job(job_id).state == JobState.INTERRUPTED
        assert "cannot say what became of it" in lab.engine.job(job_id).reason


async def test_a_step_the_device_never_received_runs_once(tmp_path):
    async with running_lab(tmp_path) as lab:
        c = await lab.engine.submit(campaign(1))
        job_id = c.job_ids[0]
        await lab.engine.wait_until(lambda: running_step(lab, job_id, 0), timeout=10)
        await lab.stop_engine()
        # as if the crash came between the journal entry and the command: the device never saw it
        job = lab.store.job(job_id)
        lh = lab.devices["lh-1"]
        for _ in range(100):
            if job.step_run.token in lh.finished:
                break
            await asyncio.sleep(0.02)
        lh.executions.pop(job.step_run.token, None)
        lh.finished.pop(job.step_run.token, None)
        await lab.start_engine()
        done = await lab.engine.wait(job_id, timeout=20)
        assert done.state == JobState.DONE and done.steps[0].attempt == 2
        assert "step_not_started" in [e.event for e in lab.store.journal(job_id)]
