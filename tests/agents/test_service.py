"""The service facade on an in-process simulated lab: real job engine, SQLite store, bus and device hosts."""

from __future__ import annotations

import asyncio
import copy
import json

import pytest
from agent_examples import BASE

from labctl.agents.envelope import AgentQuota
from labctl.agents.refusal import Refused
from labctl.agents.service import Agent, Forbidden, NotFoundError
from labctl.agents.simlab import SimulatedLab

AGENT = Agent(name="agent-a")


async def run_campaign(lab, hypothesis, agent=AGENT):
    out = await lab.service.submit(agent, hypothesis)
    return await lab.service.wait(out["campaign_id"], timeout=120)


@pytest.mark.parametrize("seed", [1, 6])
async def test_whole_campaign_matches_ground_truth(tmp_path, seed):
    """A real effect in the simulator (40 -> 80 % infill: +48 % modulus) is supported, with a report."""
    hypothesis = copy.deepcopy(BASE)
    hypothesis["seed"] = seed
    async with SimulatedLab(tmp_path, seed=seed) as lab:
        record = await run_campaign(lab, hypothesis)
        assert record.state == "finished" and not record.failed_runs
        assert record.analysis.verdict == "supported" and record.analysis.simulated
        assert 0.3 < record.analysis.effect.estimate < 0.7
        assert len(record.measurements) == len(record.plan.runs)
        # The engine keeps the plan's blocks: one printer per block, a different printer for each block.
        devices_of_block: dict[str, set[str]] = {}
        for run in record.plan.runs:
            job = lab.engine.job(record.jobs[run.run_id])
            devices_of_block.setdefault(run.printer, set()).add(job.steps[0].device_id)
        assert all(len(d) == 1 for d in devices_of_block.values())
        assert len(set.union(*devices_of_block.values())) == len(devices_of_block) == 3
        report = (tmp_path / "campaigns" / record.id / "report" / "report.md").read_text()
        assert "SIMULATED DATA" in report and "manifest.json" in report
        from labctl.jobs import verify_export

        assert all(verify_export(e).ok for e in record.exports)
        provenance = lab.engine.result(record.jobs[record.plan.runs[0].run_id]).provenance
        assert provenance.simulated and provenance.gcode[0]["generator"] == "fullcontrol"
        assert provenance.hypothesis_id == record.plan.hypothesis_id and provenance.plan_id == record.plan.plan_id
        curve = await lab.service.specimen_curve(AGENT, record.id, record.plan.runs[0].run_id)
        assert curve["simulated"] and len(curve["x"]) == len(curve["y"]) > 50


@pytest.mark.parametrize("seed", [2, 3, 4])
async def test_no_effect_in_ground_truth_is_not_supported(tmp_path, seed):
    """Print speed is not in the simulator's material model: claiming it raises stiffness must not be supported."""
    hypothesis = copy.deepcopy(BASE)
    hypothesis["factors"] = [{"name": "print_speed", "levels": [30, 60]}]
    hypothesis["statement"] = "Printing at 60 mm/s gives at least 15 % stiffer specimens than at 30 mm/s"
    hypothesis["seed"] = seed
    async with SimulatedLab(tmp_path, seed=seed) as lab:
        record = await run_campaign(lab, hypothesis)
    assert record.state == "finished"
    assert record.analysis.verdict != "supported"
    assert abs(record.analysis.effect.estimate) < 0.15


async def test_sequential_campaign_stops_early_with_all_three_device_kinds(tmp_path):
    """Formulation on the liquid handler, printing, testing; stops before the budget once decisive."""
    hypothesis = json.loads((__import__("pathlib").Path(__file__).parents[2] / "protocols" / "hypotheses"
                             / "formulation_stiffness.json").read_text())
    async with SimulatedLab(tmp_path, seed=5) as lab:
        record = await run_campaign(lab, hypothesis)
        kinds = {lab.engine.job(j).steps[0].device_id.split("-")[0] for j in record.jobs.values()}
    assert kinds == {"liquid"}  # every job started on the liquid handler
    assert record.plan.sequential and record.analysis.sequential is not None
    assert record.analysis.verdict in ("supported", "refuted")
    assert record.batches_done <= record.plan.batches
    assert len(record.measurements) == record.batches_done * record.plan.batch_size * len(record.plan.cells)


async def test_refusals_scopes_quotas_ownership_and_audit(tmp_path):
    reader = Agent(name="reader", scopes=("lab:read",))
    small = Agent(name="small", quota=AgentQuota(max_active_campaigns=1, max_specimens_total=30))
    async with SimulatedLab(tmp_path) as lab:
        service = lab.service
        hostile = copy.deepcopy(BASE)
        hostile["fixed"] = {"nozzle_temp": 400}
        with pytest.raises(Refused) as err:
            await service.submit(AGENT, hostile)
        assert err.value.refusals[0].field == "fixed.nozzle_temp"
        assert not service.campaigns and lab.devices[-1].tests == 0  # nothing queued, no device touched
        with pytest.raises(Forbidden):
            await service.submit(reader, copy.deepcopy(BASE))
        first = await service.submit(small, copy.deepcopy(BASE))
        with pytest.raises(Refused) as err:
            await service.submit(small, copy.deepcopy(BASE))
        assert err.value.refusals[0].field == "<agent>.active_campaigns"
        with pytest.raises(NotFoundError):  # another agent's campaign is invisible
            await service.campaign_status(AGENT, first["campaign_id"])
        await service.wait(first["campaign_id"], timeout=120)
        with pytest.raises(Refused) as err:  # 18 spent + 18 more > 30 total
            await service.submit(small, copy.deepcopy(BASE))
        assert err.value.refusals[0].field == "budget.max_specimens"
        running = await service.submit(AGENT, copy.deepcopy(BASE))
        cancelled = await service.cancel(AGENT, running["campaign_id"])
        assert cancelled["state"] == "cancelled"
        jobs = [lab.engine.job(j) for j in service.campaigns[running["campaign_id"]].jobs.values()]
        assert all(str(j.state) in ("cancelled", "done") for j in jobs)
        again = await service.submit(AGENT, copy.deepcopy(BASE), idempotency_key="k1")
        same = await service.submit(AGENT, copy.deepcopy(BASE), idempotency_key="k1")
        assert same["campaign_id"] == again["campaign_id"] and same["resubmitted"]
        await service.wait(again["campaign_id"], timeout=120)
    entries = service.audit.entries()
    outcomes = [(e["agent"], e["call"], e["outcome"]) for e in entries]
    assert ("agent-a", "submit", "refused") in outcomes
    assert ("reader", "submit", "forbidden") in outcomes
    assert ("agent-a", "cancel", "ok") in outcomes
    assert all("ts" in e and "args" in e for e in entries)


async def test_restart_resumes_a_running_campaign(tmp_path):
    async with SimulatedLab(tmp_path) as lab:
        out = await lab.service.submit(AGENT, copy.deepcopy(BASE))
    # Stopped mid-campaign; a new service on the same workdir and store finishes it, nothing made twice.
    async with SimulatedLab(tmp_path) as lab:
        record = await lab.service.wait(out["campaign_id"], timeout=120)
        assert record.state == "finished"
        assert len(record.measurements) == len(record.plan.runs)
        assert len(set(record.jobs.values())) == len(record.plan.runs)
        assert len(lab.engine.store.jobs(limit=None)) == len(record.plan.runs)


async def test_real_hardware_waits_for_a_technician(tmp_path):
    """Devices that announce themselves as hardware: no auto-approval; the campaign runs once approved."""
    async with SimulatedLab(tmp_path, announce_simulated=False) as lab:
        out = await lab.service.submit(AGENT, copy.deepcopy(BASE))
        assert out["simulated"] is False
        record = lab.service.campaigns[out["campaign_id"]]
        await lab.engine.wait_until(lambda: bool(record.engine_campaigns) and all(
            str(lab.engine.job(j).state) == "waiting_for_approval" for j in record.jobs.values()), timeout=30)
        status = await lab.service.campaign_status(AGENT, out["campaign_id"])
        assert status["state"] == "running" and status["jobs"] == {"waiting_for_approval": len(record.plan.runs)}
        assert lab.devices[-1].tests == 0
        await lab.engine.approve(record.engine_campaigns[0], by="technician")

        async def technician() -> None:  # confirms each print-bed-to-rig hand-over, as `labctl handoff` would
            while True:
                for job_id in record.jobs.values():
                    if str(lab.engine.job(job_id).state) == "waiting_for_handover":
                        await lab.engine.handoff(job_id, by="technician")
                await asyncio.sleep(0.05)

        helper = asyncio.create_task(technician())
        try:
            record = await lab.service.wait(out["campaign_id"], timeout=120)
        finally:
            helper.cancel()
        assert all(lab.engine.job(j).handovers[0].by == "technician" for j in record.jobs.values())
    assert record.state == "finished" and not record.analysis.simulated
    report = (tmp_path / "campaigns" / record.id / "report" / "report.md").read_text()
    assert "SIMULATED DATA" not in report
