"""Emergency stop of a running liquid-handling job, over the in-process bus."""

from __future__ import annotations

import asyncio

import pytest

from drivers.liquid_handler.device import LiquidHandlerConfig, LiquidHandlerDevice
from labctl.bus import Command, EStop, connect, topics
from labctl.devicehost import DeviceHost


def transfer(dst: str, volume: float = 100.0) -> dict:
    return {"source": {"labware": "components", "well": "A1"},
            "destination": {"labware": "blend_plate", "well": dst}, "volume": volume}


async def wait_for(predicate, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.005)


async def test_estop_cuts_a_running_step_short_and_keeps_the_record():
    # speed 10: an aspirate takes 0.3 s, long enough to stop it part-way on a loaded machine.
    device = LiquidHandlerDevice(LiquidHandlerConfig(id="lh-estop", backend_options={"speed": 10}))
    url = "memory://liquid-estop"
    async with device, DeviceHost.connect(url, device), connect(url, client_id="controller") as bus:
        job = asyncio.create_task(bus.request(
            topics.device_commands("lh-estop"),
            Command(action="run_steps", params={"steps": [transfer("A1"), transfer("B1"), transfer("C1")],
                                                "job_id": "job-estop"}), timeout=30))
        # Stop while step 1 is dispensing: its aspirate is done, the dispense is not.
        await wait_for(lambda: (device.runner.in_progress or "").startswith("dispense")
                       and device._current is not None and device._current.steps[1].status == "running")
        await bus.publish(topics.ESTOP, EStop(source="technician", reason="test"))
        reply = await job
        assert not reply.ok and "emergency-stopped in step 1" in reply.error
        assert "cutting short: dispense 100 µL into blend_plate:B1" in reply.error

        record = (await bus.request(topics.device_commands("lh-estop"), Command(action="job",
                                    params={"job_id": "job-estop"}), timeout=5)).result
        assert record["status"] == "stopped"
        done, cut, pending = record["steps"]
        assert done["status"] == "done" and done["after"]["blend_plate:A1"] == 100
        assert cut["status"] == "interrupted"
        assert cut["operations"] == ["pick up tip tips_300:B1", "aspirate 100 µL from components:A1"]
        assert cut["interrupted_operation"] == "dispense 100 µL into blend_plate:B1"
        # The liquid is still in the tip: out of the source, not in the destination.
        assert cut["after"] == {"components:A1": 14800.0, "blend_plate:B1": 0.0}
        assert cut["tip_volume"] == 100.0
        assert pending["status"] == "pending" and pending["operations"] == []

        # Refused until reset; reset discards the tip and its liquid.
        again = await bus.request(topics.device_commands("lh-estop"),
                                  Command(action="run_steps", params={"steps": [transfer("D1")]}), timeout=5)
        assert not again.ok and "send reset first" in again.error
        reset = await bus.request(topics.device_commands("lh-estop"), Command(action="reset"), timeout=5)
        assert reset.ok and reset.result == {"ok": True, "discarded_tip": True, "liquid_lost_ul": 100.0}
        after = await bus.request(topics.device_commands("lh-estop"),
                                  Command(action="run_steps", params={"steps": [transfer("D1")]}), timeout=10)
        assert after.ok and after.result["steps"][0]["before"]["components:A1"] == 14800.0


async def test_estop_with_no_job_running_is_harmless(liquid_handler):
    await liquid_handler.emergency_stop()
    assert (await liquid_handler.status())["estopped"]
    with pytest.raises(RuntimeError, match="emergency-stopped"):
        await liquid_handler.run_steps([transfer("A1")])
    assert (await liquid_handler.reset())["discarded_tip"] is False
    assert (await liquid_handler.run_steps([transfer("A1")]))["status"] == "completed"
