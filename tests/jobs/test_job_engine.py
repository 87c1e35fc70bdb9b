"""The engine against real DeviceHost devices on the in-process bus."""

from __future__ import annotations

import asyncio
import time

import pytest

from jobs_lab import campaign, fabrication_job, running_lab
from labctl.bus import EStop, Event, topics
from labctl.jobs import CampaignSpec, EngineError, JobSpec, JobState, StepSpec


async def test_campaign_runs_every_step_once_with_provenance(tmp_path):
    async with running_lab(tmp_path) as lab:
        async with lab.bus.subscribe("labctl/v1/jobs/+/events") as events:
            c = await lab.engine.submit(campaign(4, blocks=2))
            done = await lab.engine.wait(c.id, timeout=30)
            seen = []
            while (item := events.get_nowait()) is not None:
                assert isinstance(item.message, Event)
                seen.append(item.message.name)
        assert done.status == "finished"
        for job_id in done.job_ids:
            r = lab.engine.result(job_id)
            assert r.state == JobState.DONE
            sid = r.provenance.specimen_id
            assert r.results["test"]["value"] == lab.devices["rig-1"].value_for(sid, "test")
            assert r.artefacts["test"].kind == "raw_curve" and len(r.artefacts["test"].sha256) == 64
            assert [d["id"] for d in r.provenance.devices][0] == "lh-1"
            assert r.provenance.hypothesis_id == "H-1" and r.provenance.plan_id == "P-1"
            assert r.provenance.simulated is True
            assert r.provenance.handovers[0].automatic is True
            assert r.provenance.approvals[0].by == "auto" and r.provenance.approvals[0].simulated_only
            assert all(d["firmware"] == "timed-device 1.0" for d in r.provenance.devices)
            assert [e.event for e in r.specimen.history] == ["formulated", "printed", "handed over", "condition",
                                                             "tested"]
            assert r.specimen.location == "rig-1 bin"
        # every device ran each token exactly once
        for device in lab.devices.values():
            assert all(n == 1 for n in device.executions.values())
        assert sum(len(d.executions) for d in lab.devices.values()) == 4 * 3
        assert "job.step_started" in seen and "job.done" in seen


async def test_blocks_map_consistently_to_printers(tmp_path):
    async with running_lab(tmp_path, devices=[("lh-1", "liquid_handler"), ("printer-1", "printer"),
                                              ("printer-2", "printer"), ("printer-3", "printer"),
                                              ("rig-1", "rig")]) as lab:
        c = await lab.engine.submit(campaign(9, blocks=3, print_s=30))
        done = await lab.engine.wait(c.id, timeout=30)
        by_block: dict[str, set[str]] = {}
        for job_id in done.job_ids:
            job = lab.store.job(job_id)
            block = job.spec.steps[1].block
            by_block.setdefault(block, set()).add(job.steps[1].device_id)
        assert all(len(devs) == 1 for devs in by_block.values()), by_block
        assert len(set().union(*by_block.values())) == 3  # three blocks spread over three printers


async def test_fair_share_between_submitters(tmp_path):
    # One printer; agent-a floods it with 12 jobs, agent-b submits 3 a moment later.
    devices = [("printer-1", "printer")]
    async with running_lab(tmp_path, devices=devices) as lab:
        def only_print(i: int, who: str) -> JobSpec:
            return JobSpec(name=f"{who}-{i}", steps=[StepSpec(name="print", kind="printer", action="run",
                                                              params={"seconds": 20}, duration_hint_s=20)])
        a = await lab.engine.submit(CampaignSpec(name="a", submitter="agent-a",
                                                 jobs=[only_print(i, "a") for i in range(12)]))
        await asyncio.sleep(0.05)
        b_arrives = time.time()
        b = await lab.engine.submit(CampaignSpec(name="b", submitter="agent-b",
                                                 jobs=[only_print(i, "b") for i in range(3)]))
        await lab.engine.wait(a.id, timeout=30)
        await lab.engine.wait(b.id, timeout=30)
        order = sorted((j for j in lab.store.jobs() if j.steps[0].started_at >= b_arrives),
                       key=lambda j: j.steps[0].started_at)
        b_positions = [i for i, j in enumerate(order) if j.submitter == "agent-b"]
        # from the moment b arrives, its jobs alternate with a's instead of waiting behind the rest
        assert len(b_positions) == 3 and b_positions[-1] <= 5, [j.submitter for j in order]


async def test_idempotent_resubmission_returns_the_same_campaign(tmp_path):
    async with running_lab(tmp_path) as lab:
        first = await lab.engine.submit(campaign(3, key="agent-a/attempt-1"))
        again = await lab.engine.submit(campaign(3, key="agent-a/attempt-1"))
        assert again.id == first.id and again.job_ids == first.job_ids
        assert len(lab.store.campaigns()) == 1 and len(lab.store.jobs()) == 3
        await lab.engine.wait(first.id, timeout=30)
        assert len(lab.devices["rig-1"].executions) == 3


async def test_device_offline_mid_step_replans_onto_another_printer(tmp_path):
    async with running_lab(tmp_path) as lab:
        c = await lab.engine.submit(campaign(2, print_s=400, on_interrupt="retry"))
        await lab.engine.wait_until(lambda: any(j.state == JobState.RUNNING and j.current_step == 1
                                                and j.step_run.device_id == "printer-1"
                                                for j in lab.engine.jobs.values()), timeout=10)
        victim = next(j for j in lab.engine.jobs.values() if j.step_run and j.step_run.device_id == "printer-1")
        lab.kill_host("printer-1")
        await lab.engine.wait(c.id, timeout=30)
        job = lab.store.job(victim.id)
        assert job.state == JobState.DONE
        assert job.steps[1].device_id == "printer-2" and job.steps[1].attempt == 2
        events = [e.event for e in lab.store.journal(victim.id)]
        assert "step_retry" in events
        retry = next(e for e in lab.store.journal(victim.id) if e.event == "step_retry")
        assert "printer-1 went offline" in retry.data["reason"]


async def test_device_offline_with_ask_waits_for_technician(tmp_path):
    async with running_lab(tmp_path) as lab:
        c = await lab.engine.submit(campaign(1, print_s=400))
        await lab.engine.wait_until(lambda: any(j.current_step == 1 and j.state == JobState.RUNNING
                                                for j in lab.engine.jobs.values()), timeout=10)
        job_id = c.job_ids[0]
        device = lab.engine.jobs[job_id].step_run.device_id
        lab.kill_host(device)
        await lab.engine.wait_until(lambda: lab.engine.job(job_id).state == JobState.INTERRUPTED, timeout=10)
        assert f"{device} went offline" in lab.engine.job(job_id).reason
        await lab.engine.resume(job_id, by="alice")
        await lab.engine.wait(job_id, timeout=30)
        job = lab.store.job(job_id)
        assert job.state == JobState.DONE and job.steps[1].device_id != device


async def test_emergency_stop_interrupts_every_running_step(tmp_path):
    async with running_lab(tmp_path) as lab:
        c = await lab.engine.submit(campaign(4, print_s=600))
        printers = [lab.devices["printer-1"], lab.devices["printer-2"]]
        await lab.engine.wait_until(lambda: all(p.current is not None for p in printers), timeout=10)
        running = [j.id for j in lab.engine.jobs.values() if j.state == JobState.RUNNING]
        await lab.bus.publish(topics.ESTOP, EStop(reason="smoke"))
        with pytest.raises(TimeoutError):  # the two scheduled jobs still count as able to move
            await lab.engine.wait(c.id, timeout=0.3, settled=True)
        await lab.engine.wait_until(lambda: all(lab.engine.job(j).state == JobState.INTERRUPTED for j in running),
                                    timeout=10)
        await asyncio.sleep(0.3)
        for job_id in running:
            job = lab.store.job(job_id)
            assert "emergency stop" in job.reason
            assert job.step_run.status == "interrupted"
        # nothing else was started on the stopped devices
        assert all(lab.engine.job(j).state in (JobState.INTERRUPTED, JobState.SCHEDULED) for j in c.job_ids)
        assert sum(len(p.executions) for p in printers) == 2
        assert all(p.interrupted for p in printers)
        # a technician clears the stop on every device and resumes the interrupted jobs
        for device in lab.devices.values():
            await device.clear_estop()
        for job_id in running:
            await lab.engine.resume(job_id, by="frank")
        done = await lab.engine.wait(c.id, timeout=30)
        assert done.status == "finished"
        assert all(lab.store.job(j).state == JobState.DONE for j in c.job_ids)
        assert sum(len(p.finished) for p in printers) == 4


async def test_approval_gate_for_real_devices(tmp_path):
    async with running_lab(tmp_path, real=("printer-2",)) as lab:
        c = await lab.engine.submit(campaign(2))
        await lab.engine.wait_until(lambda: all(lab.engine.job(j).state == JobState.WAITING_FOR_APPROVAL
                                                for j in c.job_ids), timeout=5)
        await asyncio.sleep(0.2)
        assert not any(d.executions for d in lab.devices.values())  # nothing reached a device
        assert lab.store.campaign(c.id).status == "waiting_for_approval"
        await lab.engine.approve(c.id, by="alice", reason="looked at it")
        # one specimen comes off the real printer-2: its hand-over needs a person
        await lab.engine.wait_until(lambda: any(lab.engine.job(j).state == JobState.WAITING_FOR_HANDOVER
                                                for j in c.job_ids), timeout=10)
        manual = next(j for j in c.job_ids if lab.engine.job(j).state == JobState.WAITING_FOR_HANDOVER)
        assert lab.engine.job(manual).steps[1].device_id == "printer-2"
        await lab.engine.handoff(manual, by="alice")
        await lab.engine.wait(c.id, timeout=30)
        for job_id in c.job_ids:
            job = lab.store.job(job_id)
            assert job.state == JobState.DONE and job.approvals[-1].by == "alice"
            assert job.approvals[-1].simulated_only is False
        assert lab.engine.result(manual).provenance.simulated is False


async def test_rejected_campaign_never_reaches_a_device(tmp_path):
    async with running_lab(tmp_path) as lab:
        c = await lab.engine.submit(campaign(2, requires_approval=True))
        await lab.engine.wait_until(lambda: all(lab.engine.job(j).state == JobState.WAITING_FOR_APPROVAL
                                                for j in c.job_ids), timeout=5)
        with pytest.raises(EngineError, match="needs a reason"):
            await lab.engine.reject(c.id, by="bob", reason="")
        await lab.engine.reject(c.id, by="bob", reason="infill too high")
        done = await lab.engine.wait(c.id, timeout=5)
        assert done.status == "rejected"
        assert all(lab.store.job(j).state == JobState.CANCELLED for j in c.job_ids)
        assert not any(d.executions for d in lab.devices.values())


async def test_manual_handover_waits_for_the_technician(tmp_path):
    async with running_lab(tmp_path, auto_handover_simulated=False) as lab:
        c = await lab.engine.submit(campaign(1))
        job_id = c.job_ids[0]
        await lab.engine.wait_until(lambda: lab.engine.job(job_id).state == JobState.WAITING_FOR_HANDOVER, timeout=10)
        await asyncio.sleep(0.2)
        assert not lab.devices["rig-1"].executions
        assert lab.engine.job(job_id).specimen.location.startswith("bed of printer-")
        # the CLI's path: a request in the store, applied by the engine's poll loop
        request = lab.store.add_request(job_id, "handoff", {"by": "carol"})
        await lab.engine.wait(job_id, timeout=30)
        assert lab.store.request(request).ok is True
        result = lab.engine.result(job_id)
        assert result.provenance.handovers[0].by == "carol" and not result.provenance.handovers[0].automatic


async def test_pause_resume_cancel(tmp_path):
    async with running_lab(tmp_path) as lab:
        c = await lab.engine.submit(campaign(3, print_s=100))
        first, second, third = c.job_ids
        await lab.engine.pause(first, by="dave")
        await lab.engine.cancel(third, reason="wrong filament")
        await lab.engine.wait(second, timeout=30)
        assert lab.engine.job(first).state == JobState.PAUSED
        assert lab.store.job(third).state == JobState.CANCELLED
        await lab.engine.resume(first)
        await lab.engine.wait(c.id, timeout=30)
        assert lab.store.job(first).state == JobState.DONE
        assert len(lab.devices["rig-1"].executions) == 2
        with pytest.raises(EngineError, match="done"):
            await lab.engine.pause(first)


async def test_failed_step_fails_the_job_with_the_device_error(tmp_path):
    async with running_lab(tmp_path) as lab:
        spec = fabrication_job(0)
        spec.steps[0].params["fail"] = True
        job = await lab.engine.submit_job(spec, submitter="agent-a")
        done = await lab.engine.wait(job.id, timeout=10)
        assert done.state == JobState.FAILED and "prep failed as asked" in done.reason
        assert done.steps[0].status == "failed"
        assert not lab.devices["printer-1"].executions and not lab.devices["printer-2"].executions


async def test_local_step_gets_artefacts_of_earlier_steps(tmp_path):
    seen = {}

    async def analyse(job, params):
        seen["curve"] = params["curve"]
        return {"modulus_mpa": 2100.0}

    async with running_lab(tmp_path, local_actions={"analyse": analyse}) as lab:
        spec = fabrication_job(0)
        spec.steps.append(StepSpec(name="analyse", kind="local", action="analyse", inputs={"curve": "test"}))
        job = await lab.engine.submit_job(JobSpec.model_validate(spec.model_dump()), submitter="agent-a")
        done = await lab.engine.wait(job.id, timeout=10)
        assert done.state == JobState.DONE
        assert seen["curve"] == done.steps[4].artefacts[0].uri
        assert lab.engine.result(job.id).results["analyse"] == {"modulus_mpa": 2100.0}


async def test_device_progress_is_forwarded_as_job_progress(tmp_path):
    async with running_lab(tmp_path) as lab:
        async with lab.bus.subscribe("labctl/v1/jobs/+/events") as events:
            job = await lab.engine.submit_job(fabrication_job(0), submitter="agent-a")
            await lab.engine.wait(job.id, timeout=10)
            progress = []
            while (item := events.get_nowait()) is not None:
                if item.message.name == "job.progress":
                    progress.append(item.message.data)
        assert {p["step_name"] for p in progress} == {"prepare", "print", "test"}
        assert all(p["job_id"] == job.id for p in progress)
        print_lines = [p["progress"]["line"] for p in progress if p["step_name"] == "print"]
        assert print_lines == sorted(print_lines) and print_lines[-1] > 0


async def test_a_step_that_outlives_its_lease_is_interrupted_and_the_busy_device_is_not_reused(tmp_path):
    async with running_lab(tmp_path, devices=[("printer-1", "printer")]) as lab:
        def slow(i: int) -> JobSpec:
            return JobSpec(name=f"slow-{i}", steps=[StepSpec(name="print", kind="printer", action="run",
                                                             params={"seconds": 400}, timeout_s=0.2)])
        first = await lab.engine.submit_job(slow(0), submitter="agent-a")
        await lab.engine.wait_until(lambda: lab.engine.job(first.id).state == JobState.INTERRUPTED, timeout=10)
        assert "timeout" in lab.engine.job(first.id).reason
        second = await lab.engine.submit_job(slow(1), submitter="agent-a")
        await asyncio.sleep(0.3)  # the printer still reports busy with the first print
        assert lab.engine.job(second.id).state == JobState.SCHEDULED
        assert len(lab.devices["printer-1"].executions) == 1


async def test_auto_approved_jobs_never_run_on_a_real_device_that_joins_later(tmp_path):
    from labctl.devicehost import DeviceHost
    from labctl.jobs.timed_device import TimedDevice

    async with running_lab(tmp_path, devices=[("printer-1", "printer")]) as lab:
        def only_print(i: int) -> JobSpec:
            return JobSpec(name=f"p{i}", steps=[StepSpec(name="print", kind="printer", action="run",
                                                         params={"seconds": 30})])
        c = await lab.engine.submit(CampaignSpec(name="c", submitter="agent-a", jobs=[only_print(i) for i in range(4)]))
        await lab.engine.wait_until(lambda: all(lab.engine.job(j).state != JobState.QUEUED for j in c.job_ids),
                                    timeout=5)
        real = TimedDevice("printer-9", "printer", time_scale=0.002, simulated=False)
        async with DeviceHost.connect(lab.url, real):
            await lab.engine.wait(c.id, timeout=30)
        assert not real.executions
        assert {lab.store.job(j).steps[0].device_id for j in c.job_ids} == {"printer-1"}
