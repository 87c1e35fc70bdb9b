"""Mosquitto with a password file and docs/mosquitto-acl.conf: who may publish what."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from labctl.bus import BusError, Command, DeviceInfo, DeviceState, connect, topics
from labctl.devicehost import DeviceHost
from labctl.testing.mosquitto import Mosquitto

ACL = (Path(__file__).parents[2] / "docs" / "mosquitto-acl.conf").read_text()
USERS = {"controller": "c-secret", "technician": "t-secret", "printer-1": "p1-secret", "printer-2": "p2-secret"}


class Probe:
    def __init__(self, device_id: str) -> None:
        self.info = DeviceInfo(id=device_id, kind="printer", driver="test")

    async def emergency_stop(self) -> None:
        pass


@pytest.fixture
def secured(tmp_path):
    with Mosquitto(tmp_path / "mq", users=USERS, acl=ACL) as broker:
        yield broker


async def test_client_without_credentials_cannot_command_devices(secured):
    async with connect(secured.url_for("controller"), client_id="ctl") as ctl, \
            connect(secured.url, client_id="anon") as anon:
        async with ctl.subscribe("labctl/v1/devices/+/commands") as commands:
            await anon.publish(topics.device_commands("printer-1"), Command(action="home"))
            await ctl.publish(topics.device_commands("printer-1"), Command(action="status"))
            item = await commands.get(timeout=5)
            assert item.message.action == "status"  # the anonymous "home" never arrived
            await asyncio.sleep(0.3)
            assert commands.get_nowait() is None


async def test_device_host_publishes_only_under_its_own_id(secured):
    p1_info = DeviceInfo(id="printer-1", kind="printer", driver="test")
    async with connect(secured.url_for("controller"), client_id="ctl") as ctl, \
            connect(secured.url_for("printer-1"), client_id="host-printer-1") as p1:
        async with ctl.subscribe(topics.ALL_DEVICE_STATES) as states:
            forged = DeviceState(device=DeviceInfo(id="printer-2", kind="printer", driver="test"), status="fault")
            await p1.publish(topics.device_state("printer-2"), forged)
            await p1.publish(topics.device_state("printer-1"), DeviceState(device=p1_info, status="online"))
            item = await states.get(timeout=5)
            assert item.topic == topics.device_state("printer-1")
            await asyncio.sleep(0.3)
            assert states.get_nowait() is None


async def test_authorised_host_serves_commands_and_bad_password_is_refused(secured):
    url = secured.url_for("printer-2")
    async with DeviceHost.connect(url, Probe("printer-2")), \
            connect(secured.url_for("controller"), client_id="ctl") as ctl:
        reply = await ctl.request(topics.device_commands("printer-2"), Command(action="describe"))
        assert reply.ok and reply.result["device"]["id"] == "printer-2"
    wrong = url.__class__(url.scheme, url.host, url.port, "printer-2", "wrong")
    with pytest.raises(BusError, match="could not connect"):
        async with connect(wrong, client_id="intruder", connect_timeout=2):
            pass
