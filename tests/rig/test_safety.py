"""Firmware safety on the simulator: force limit, endstops, travel limits, host watchdog, estop."""

from __future__ import annotations

import asyncio

import pytest

from drivers.rig import RigError, RigFault, RigTestParams
from firmware.rig import rigctl
from simulators.rig import PrintParams
from simulators.rig.hardware import SimHardware


async def _stays_still(sim, seconds: float = 0.2) -> bool:
    before = sim.hw.motor_position()
    await asyncio.sleep(seconds)
    return sim.hw.motor_rate() == 0 and sim.hw.motor_position() == before


async def test_over_force_stops_after_consecutive_samples(rig_factory) -> None:
    async with rig_factory(noise_n=0.01) as (sim, driver):
        sim.mount(PrintParams(), failure="brittle")
        curve = await driver.run_test(RigTestParams(speed_mm_min=5, force_limit_n=100))
        assert curve.end_reason == "fault:overforce"
        assert curve.fault == "overforce"
        nover = int(driver.limits["nover"])
        assert all(f > 100 for f in curve.force_n[-nover:])       # exactly N over-limit samples ...
        assert curve.force_n[-nover - 1] <= 100                   # ... and the stop came on the Nth
        assert await _stays_still(sim)
        status = await driver.status()
        assert status["state"] == "fault" and status["fault"] == "overforce"
        with pytest.raises(RigError, match="fault overforce"):
            await driver.jog(1, 10)
        await driver.reset()
        assert (await driver.status())["state"] == "idle"    # still loaded, but nothing adds load now
        with pytest.raises(RigFault, match="overforce"):
            await driver.jog(0.2, 10)                       # loading further trips again
        await driver.reset()
        await driver.jog(-0.5, 10)                          # unloading is allowed
        status = await driver.status()
        assert status["state"] == "idle" and float(status["force"]) < 100


class _OneSpike:
    """A load path that reads 0 N except one sample of 500 N: an electrical spike."""

    broken = False

    def __init__(self) -> None:
        self.calls = 0

    def force_at(self, travel_mm: float) -> float:
        self.calls += 1
        return 500.0 if self.calls == 20 else 0.0


@pytest.mark.parametrize(("nover", "trips"), [(3, False), (1, True)])
def test_single_sample_spike_needs_nover_one_to_trip(nover: int, trips: bool) -> None:
    hw = SimHardware(adc_hz=1000, steps_per_mm=3200, adc_counts_per_n=1000, adc_zero_counts=0, noise_n=0,
                     endstop_min_mm=-10, endstop_max_mm=100, seed=1, stored_config={"fmax": 100.0, "nover": nover})
    hw.load = _OneSpike()
    firmware = rigctl.Rig(hw)
    hw.feed(b"START speed=1 arm=0\n")
    for _ in range(50):
        hw.advance(1000)
        firmware.poll()
    assert (firmware.state == rigctl.FAULT) is trips
    assert ("E FAULT reason=overforce" in "".join(hw.outbox)) is trips


async def test_upper_endstop_stops_a_jog(rig_factory) -> None:
    async with rig_factory(endstop_max_mm=0.5) as (sim, driver):
        with pytest.raises(RigFault) as fault:
            await driver.jog(2.0, 60)
        assert fault.value.reason == "endstop_max"
        assert sim.hw.crosshead_mm == pytest.approx(0.5, abs=0.02)
        assert await _stays_still(sim)
        await driver.reset()
        with pytest.raises(RigError, match="endstop pressed"):
            await driver.jog(1.0, 60)                 # still on the switch: not further up
        await driver.jog(-1.0, 60)                    # but away from it is allowed
        assert sim.hw.crosshead_mm == pytest.approx(-0.5, abs=0.01)


async def test_upper_endstop_stops_a_test(rig_factory) -> None:
    async with rig_factory(endstop_max_mm=1.0) as (sim, driver):
        sim.mount(PrintParams(material="PETG"), failure="ductile")
        curve = await driver.run_test(RigTestParams(speed_mm_min=20))
        assert curve.end_reason == "fault:endstop_max"
        assert max(curve.displacement_mm) == pytest.approx(1.0, abs=0.05)
        assert await _stays_still(sim)


async def test_travel_limit_refuses_a_jog_beyond_it(rig_factory) -> None:
    async with rig_factory() as (sim, driver):
        await driver.set_limits(tmax=1.0)
        with pytest.raises(RigError, match="outside travel limits"):
            await driver.jog(5.0, 60)
        assert sim.hw.motor_position() == 0
        with pytest.raises(RigError, match="tmin must be below tmax"):
            await driver.set_limits(tmin=2.0)


async def test_speed_over_the_limit_is_refused_before_the_rig(rig_factory) -> None:
    async with rig_factory() as (sim, driver):
        await driver.set_limits(vmax=50)
        with pytest.raises(ValueError, match="over the rig's limit"):
            await driver.run_test(RigTestParams(speed_mm_min=80))
        assert sim.firmware.state == rigctl.IDLE and sim.hw.motor_position() == 0


async def test_host_silent_mid_test_watchdog_stops_the_crosshead(rig_factory) -> None:
    async with rig_factory(speed=1.0, adc_hz=200) as (sim, driver):
        await driver.set_limits(wdt=300)
        sim.mount(PrintParams(), failure="brittle")
        seen = asyncio.Event()

        async def on_samples(batch) -> None:
            seen.set()

        task = asyncio.create_task(driver.run_test(RigTestParams(speed_mm_min=1, tare=False), on_samples=on_samples))
        await asyncio.wait_for(seen.wait(), 10)
        assert sim.hw.motor_rate() > 0
        driver.pause_keepalive()                      # the host goes silent
        curve = await asyncio.wait_for(task, 10)
        assert curve.end_reason == "fault:watchdog"
        assert await _stays_still(sim)


async def test_emergency_stop_during_a_test(rig_factory) -> None:
    async with rig_factory(speed=5.0) as (sim, driver):
        sim.mount(PrintParams(), failure="brittle")
        seen = asyncio.Event()

        async def on_samples(batch) -> None:
            seen.set()

        task = asyncio.create_task(driver.run_test(RigTestParams(speed_mm_min=1), on_samples=on_samples))
        await asyncio.wait_for(seen.wait(), 10)
        await driver.emergency_stop()
        curve = await asyncio.wait_for(task, 10)
        assert curve.end_reason == "fault:estop"
        assert await _stays_still(sim)
