"""simulated_rig(): the whole chain a campaign uses, with specimens of known (true) properties."""

from __future__ import annotations

import uuid

import pytest

from drivers.rig.hosting import simulated_rig
from labctl.bus import Command, connect, topics
from simulators.rig import PrintParams, RigSimConfig, true_properties


async def test_campaign_sees_the_blend_effect_the_ground_truth_defines(tmp_path) -> None:
    url = f"memory://lab-{uuid.uuid4().hex[:8]}"
    config = RigSimConfig(speed=100, adc_hz=200, failure="brittle")
    async with simulated_rig(url, "rig-1", config, out_dir=tmp_path, test_timeout_s=45) as (sim, device, host), \
            connect(url, client_id="engine") as engine:
        await device.driver.set_limits(wdt=10000)      # robust on a loaded machine
        plan = {f"B{b}-{n}": b for b in (10, 30) for n in range(2)}
        # Queued in one order, tested in another: each test pulls the specimen it names.
        for seed, (specimen_id, blend) in enumerate(plan.items()):
            sim.mount(PrintParams(blend_b_pct=blend), specimen_type="iso527-1ba", specimen_id=specimen_id,
                      seed=100 + seed)
        measured: dict[str, float] = {}
        for specimen_id in reversed(plan):
            reply = await engine.request(topics.device_commands("rig-1"), Command(action="run_test", params={
                "method": "iso527-5", "specimen_id": specimen_id, "specimen": "iso527-1ba"}), timeout=60)
            assert reply.ok, f"{reply.error}; rig: {sim.firmware.state} {sim.firmware.fault} {sim.firmware.test} " \
                             f"rate={sim.hw.motor_rate()} seq={sim.firmware.seq} link={device.driver.link} " \
                             f"sim_alive={not sim._task.done()} backlog={len(sim._backlog)}"
            assert sim.specimen.specimen_id == specimen_id
            assert reply.result["results"]["modulus_mpa"] == pytest.approx(sim.specimen.props.modulus_mpa, rel=0.05)
            measured[specimen_id] = reply.result["results"]["modulus_mpa"]
        assert not sim.queue
    mean = {b: sum(v for k, v in measured.items() if plan[k] == b) / 2 for b in (10, 30)}
    truth = (true_properties(PrintParams(blend_b_pct=30)).modulus_mpa
             / true_properties(PrintParams(blend_b_pct=10)).modulus_mpa)
    assert truth == pytest.approx(1.26, abs=0.01)
    assert mean[30] / mean[10] > 1.1                      # the effect is there to be found
