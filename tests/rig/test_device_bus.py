"""RigDevice over the in-process bus: commands, telemetry batches without loss, estop on topics.ESTOP."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from drivers.rig import RigDevice
from labctl.analysis import ComplianceTable
from labctl.bus import Command, EStop, connect, topics
from labctl.devicehost import DeviceHost
from simulators.rig import PrintParams


async def _collect(sub, into: list, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            item = await sub.get(timeout=0.2)
        except (asyncio.TimeoutError, TimeoutError):
            continue
        into.append(item.message)


async def test_run_test_over_the_bus_with_telemetry(rig_factory, tmp_path) -> None:
    url = f"memory://rig-{uuid.uuid4().hex[:8]}"
    async with rig_factory(seed=21) as (sim, driver):
        device = RigDevice(driver, "rig-1", simulated=True, compliance=ComplianceTable.from_stiffness(762),
                           out_dir=tmp_path)
        async with connect(url, client_id="host") as host_bus, DeviceHost(host_bus, device), \
                connect(url, client_id="ctl") as ctl:
            described = await ctl.request(topics.device_commands("rig-1"), Command(action="describe"), timeout=5)
            assert {"run_test", "tare", "calibrate", "jog", "identify", "status"} <= set(described.result["commands"])
            ident = await ctl.request(topics.device_commands("rig-1"), Command(action="identify"), timeout=5)
            assert ident.ok and ident.result["name"] == "labctl-rig"
            batches: list = []
            stop = asyncio.Event()
            async with ctl.subscribe(topics.device_telemetry("rig-1", "force")) as sub:
                collector = asyncio.create_task(_collect(sub, batches, stop))
                sim.mount(PrintParams(), specimen_type="iso527-1ba", specimen_id="S-7", failure="brittle")
                reply = await ctl.request(topics.device_commands("rig-1"), Command(
                    action="run_test", params={"method": "iso527-5", "specimen_id": "S-7", "specimen": "iso527-1ba"}),
                    timeout=60)
                await asyncio.sleep(0.3)
                stop.set()
                await collector
    assert reply.ok, reply.error
    result = reply.result
    assert result["end_reason"] == "break" and result["complete"]
    seqs = [s for b in batches for s in b.data["seq"]]
    assert len(seqs) == result["points"]                          # every frame reached the bus ...
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))      # ... once, in order
    assert len(batches) > 1                                        # in batches, not one at the end
    assert sim.specimen.specimen_id == "S-7"                       # the simulator gripped the named one
    assert result["results"]["modulus_mpa"] == pytest.approx(sim.specimen.props.modulus_mpa, rel=0.05)
    for key in ("raw_csv", "results_json", "results_csv", "plot_png", "metadata_json"):
        assert (tmp_path / result[key].split("/")[-1]).stat().st_size > 0
    meta = json.loads((tmp_path / "S-7.meta.json").read_text())
    assert meta["firmware"]["version"] == "1.0.0" and meta["simulated"] is True


async def test_bad_parameters_are_refused_by_name(rig_factory, tmp_path) -> None:
    url = f"memory://rig-{uuid.uuid4().hex[:8]}"
    async with rig_factory() as (sim, driver):
        device = RigDevice(driver, "rig-2", out_dir=tmp_path)
        async with connect(url, client_id="host") as host_bus, DeviceHost(host_bus, device), \
                connect(url, client_id="ctl") as ctl:
            reply = await ctl.request(topics.device_commands("rig-2"), Command(
                action="run_test", params={"method": "nope", "specimen_id": "S"}), timeout=5)
            assert not reply.ok and "unknown test method 'nope'" in reply.error
            reply = await ctl.request(topics.device_commands("rig-2"), Command(
                action="run_test", params={"method": "iso527-5", "specimen_id": "S"}), timeout=5)
            assert not reply.ok and "name the specimen type" in reply.error
            reply = await ctl.request(topics.device_commands("rig-2"), Command(
                action="run_test", params={"method": "iso527-5", "specimen_id": "../x", "specimen": "iso527-1ba"}),
                timeout=5)
            assert not reply.ok and "specimen_id" in reply.error
    assert sim.hw.motor_position() == 0 and not sim.specimens            # nothing reached the rig


async def test_estop_on_the_bus_stops_a_running_test(rig_factory, tmp_path) -> None:
    url = f"memory://rig-{uuid.uuid4().hex[:8]}"
    async with rig_factory(speed=5.0) as (sim, driver):
        device = RigDevice(driver, "rig-3", simulated=True, out_dir=tmp_path)
        async with connect(url, client_id="host") as host_bus, DeviceHost(host_bus, device), \
                connect(url, client_id="ctl") as ctl:
            async with ctl.subscribe(topics.device_telemetry("rig-3", "force")) as sub, \
                    ctl.subscribe(topics.device_state("rig-3")) as states:
                sim.mount(PrintParams(), failure="brittle")
                running = asyncio.create_task(ctl.request(topics.device_commands("rig-3"), Command(
                    action="run_test", params={"method": "iso527-5", "specimen_id": "S-9", "specimen": "iso527-1ba"}),
                    timeout=60))
                await sub.get(timeout=20)                      # the test is streaming
                await ctl.publish(topics.ESTOP, EStop(reason="test estop", source="ctl"))
                reply = await asyncio.wait_for(running, 20)
                statuses = []
                while "estopped" not in statuses:
                    statuses.append((await states.get(timeout=5)).message.status)
                await asyncio.sleep(0.2)
                described = await ctl.request(topics.device_commands("rig-3"), Command(action="describe"), timeout=5)
                assert described.result["status"] == "estopped"       # not overwritten when run_test returns
                await ctl.request(topics.device_commands("rig-3"), Command(action="reset"), timeout=5)
                described = await ctl.request(topics.device_commands("rig-3"), Command(action="describe"), timeout=5)
                assert described.result["status"] == "online"
    assert reply.ok and reply.result["end_reason"] == "fault:estop"
    assert "results" not in reply.result
    assert sim.firmware.state == "idle"                      # after the reset
    assert sim.hw.motor_rate() == 0
