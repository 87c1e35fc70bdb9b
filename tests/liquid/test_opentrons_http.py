"""The Opentrons HTTP driver against the robot simulator, over real HTTP on a free port."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from drivers.opentrons.client import OpentronsClient, OpentronsError
from simulators.opentrons import OpentronsSimulator

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols" / "opentrons"


@pytest.fixture
async def robot(opentrons_simulate):
    # speed 200: the formulation protocol's ~5 minutes of robot time take about 1.5 s.
    async with OpentronsSimulator(speed=200) as sim, OpentronsClient(sim.url, poll_interval=0.02) as client:
        yield sim, client


async def upload_and_analyse(client: OpentronsClient, name: str) -> tuple[str, dict]:
    protocol = await client.upload_protocol(PROTOCOLS / name)
    assert protocol.analysisSummaries[0]["status"] in ("pending", "completed")
    return protocol.id, await client.wait_for_analysis(protocol)


async def test_whole_run_succeeds_and_reports_every_command(robot):
    sim, client = robot
    health = await client.health()
    assert health["robot_model"] == "OT-2 Standard"
    protocol_id, analysis = await upload_and_analyse(client, "ot2_formulation.py")
    assert analysis["result"] == "ok" and analysis["robotType"] == "OT-2 Standard"
    run = await client.create_run(protocol_id)
    assert run.status == "idle" and run.protocolId == protocol_id
    await client.play(run.id)
    run = await client.wait_for_run(run.id, timeout=60)
    assert run.status == "succeeded" and run.errors == [] and run.completedAt
    commands = await client.commands(run.id, page_length=7)  # several pages
    assert [c.commandType for c in commands] == [c["commandType"] for c in analysis["commands"]]
    assert all(c.status == "succeeded" for c in commands)
    assert sum(c.commandType == "pickUpTip" for c in commands) == 1 + 6
    assert [a["actionType"] for a in run.actions] == ["play"]


async def test_requests_without_version_header_are_refused(robot):
    sim, _ = robot
    async with httpx.AsyncClient(base_url=sim.url) as raw:
        response = await raw.get("/runs")
    assert response.status_code == 400
    assert response.json()["errors"][0]["id"] == "OpentronsVersionHeaderMissing"


async def test_pause_holds_the_run_and_stop_ends_it(robot):
    sim, client = robot
    sim.robot.speed = 20  # slower, so the run is still going when we act on it
    protocol_id, _ = await upload_and_analyse(client, "ot2_formulation.py")
    run = await client.create_run(protocol_id)
    await client.play(run.id)
    await client.wait_for_command_count(run.id, 10)
    await client.pause(run.id)
    assert (await client.get_run(run.id)).status == "paused"
    await asyncio.sleep(0.3)  # the command under way when pausing may finish, then nothing more
    held = len(await client.commands(run.id))
    await asyncio.sleep(0.5)
    assert len(await client.commands(run.id)) == held
    with pytest.raises(OpentronsError, match="HTTP 409: RunActionNotAllowed: cannot pause a run that is paused"):
        await client.pause(run.id)
    await client.play(run.id)
    await client.wait_for_command_count(run.id, held + 3)
    await client.stop(run.id)
    run = await client.wait_for_run(run.id, timeout=10)
    assert run.status == "stopped"
    commands = await client.commands(run.id)
    assert len(commands) < 89
    assert commands[-1].status == "failed" and commands[-1].error.errorType == "RunStoppedError"
    assert [a["actionType"] for a in run.actions] == ["play", "pause", "play", "stop"]
    with pytest.raises(OpentronsError, match="cannot play a run that is stopped"):
        await client.play(run.id)
    assert (await client.create_run(protocol_id)).status == "idle"  # the robot is free again


async def test_a_failing_command_fails_the_run_with_the_robot_error(robot):
    sim, client = robot
    async with httpx.AsyncClient(base_url=sim.url, headers={"Opentrons-Version": "*"}) as raw:
        fault = await raw.post("/labctl-sim/faults", json={"commandType": "aspirate", "occurrence": 2})
    assert fault.status_code == 201
    protocol_id, _ = await upload_and_analyse(client, "ot2_formulation.py")
    run = await client.create_run(protocol_id)
    await client.play(run.id)
    run = await client.wait_for_run(run.id, timeout=30)
    assert run.status == "failed"
    assert run.errors[0].errorType == "PipetteOverpressureError" and "overpressure" in run.error_summary()
    commands = await client.commands(run.id)
    assert [c.commandType for c in commands].count("aspirate") == 2
    assert commands[-1].commandType == "aspirate" and commands[-1].status == "failed"


async def test_a_protocol_that_fails_analysis_fails_its_run(robot):
    _, client = robot
    protocol_id, analysis = await upload_and_analyse(client, "fails_no_tip.py")
    assert analysis["result"] == "not-ok"
    run = await client.create_run(protocol_id)
    await client.play(run.id)
    run = await client.wait_for_run(run.id, timeout=30)
    assert run.status == "failed"
    assert "TipNotAttachedError" in run.error_summary() and "tip attached" in run.error_summary()
    last = (await client.commands(run.id))[-1]
    assert last.commandType == "aspirate" and last.error.errorType == "TipNotAttachedError"
    with pytest.raises(OpentronsError, match="HTTP 404: RunNotFound"):
        await client.get_run("no-such-run")


async def test_opentrons_device_over_the_bus_runs_and_estops(opentrons_simulate):
    from drivers.opentrons.device import OpentronsConfig, OpentronsDevice
    from labctl.bus import Command, EStop, connect, topics
    from labctl.devicehost import DeviceHost

    url = "memory://opentrons-device"
    async with OpentronsSimulator(speed=200) as sim:
        device = OpentronsDevice(OpentronsConfig(id="ot2-sim", url=sim.url, simulated=True, poll_interval=0.02))
        async with device, DeviceHost.connect(url, device), connect(url, client_id="ctl") as bus:
            commands = topics.device_commands("ot2-sim")
            ok = await bus.request(commands, Command(action="run_protocol", params={
                "protocol": str(PROTOCOLS / "ot2_formulation.py"), "job_id": "j1"}), timeout=60)
            assert ok.ok, ok.error
            assert ok.result["status"] == "succeeded" and ok.result["commands"] == 89
            assert "Transferring" in ok.result["simulation_log"] and len(ok.result["sha256"]) == 64

            refused = await bus.request(commands, Command(action="run_protocol", params={
                "protocol": str(PROTOCOLS / "fails_no_tip.py")}), timeout=60)
            assert not refused.ok and "fails_no_tip.py:13: refused by opentrons_simulate" in refused.error
            assert len(sim.robot.protocols) == 1  # refused before upload

            sim.robot.speed = 5
            running = asyncio.create_task(bus.request(commands, Command(action="run_protocol", params={
                "protocol": str(PROTOCOLS / "ot2_formulation.py"), "job_id": "j3"}), timeout=60))
            while not (device.current and device.current.job_id == "j3" and device.current.status == "running"):
                await asyncio.sleep(0.02)
            await bus.publish(topics.ESTOP, EStop(source="test", reason="estop test"))
            stopped = await running
            assert not stopped.ok and "ended stopped" in stopped.error
            report = (await bus.request(commands, Command(action="report", params={"job_id": "j3"}), timeout=5)).result
            assert report["status"] == "stopped" and report["commands"] < 89


async def test_robot_type_is_checked_at_upload(opentrons_simulate):
    async with OpentronsSimulator(speed=200) as ot2, OpentronsClient(ot2.url) as client:
        with pytest.raises(OpentronsError, match="HTTP 422: ProtocolRobotTypeMismatch: flex_formulation.py is for "
                                                 "OT-3 Standard; this robot is OT-2 Standard"):
            await client.upload_protocol(PROTOCOLS / "flex_formulation.py")
    async with OpentronsSimulator(speed=200, robot_model="OT-3 Standard") as flex, \
            OpentronsClient(flex.url, poll_interval=0.02) as client:
        protocol_id, analysis = await upload_and_analyse(client, "flex_formulation.py")
        assert analysis["result"] == "ok" and analysis["robotType"] == "OT-3 Standard"
        run = await client.create_run(protocol_id)
        await client.play(run.id)
        assert (await client.wait_for_run(run.id, timeout=60)).status == "succeeded"
