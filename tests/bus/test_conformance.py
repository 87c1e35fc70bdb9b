"""One conformance suite, run unchanged on every transport: in-process, amqtt, Mosquitto."""

from __future__ import annotations

import asyncio
import json

import pytest

from labctl.bus import (
    Command, DeviceInfo, DeviceState, EStop, Event, RequestTimeout, Telemetry, connect, encode, topics,
)
from labctl.bus.messages import MAX_PAYLOAD_BYTES
from labctl.devicehost import DeviceHost, command
from labctl.registry import DeviceRegistry, list_devices


async def _drain(sub, n: int, timeout: float = 5.0):
    return [await sub.get(timeout=timeout) for _ in range(n)]


async def test_publish_subscribe_with_wildcards(transport):
    async with connect(transport.url, client_id="a") as a, connect(transport.url, client_id="b") as b:
        async with b.subscribe("labctl/v1/devices/+/telemetry/#") as sub:
            await a.publish(topics.device_telemetry("p1", "temps"), Telemetry(stream="temps", data={"T": 210.0}))
            await a.publish(topics.device_state("p1"), DeviceState(
                device=DeviceInfo(id="p1", kind="printer", driver="x"), status="online"))  # not matched
            await a.publish(topics.device_telemetry("p2", "force/raw"), Telemetry(stream="force", data={"N": 1.5}))
            got = await _drain(sub, 2)
            assert [g.topic for g in got] == [
                "labctl/v1/devices/p1/telemetry/temps", "labctl/v1/devices/p2/telemetry/force/raw"]
            assert got[0].message.data == {"T": 210.0}
            assert got[0].message.source == "a"
            await asyncio.sleep(0.2)
            assert sub.get_nowait() is None


async def test_retained_state_reaches_late_subscribers_and_can_be_cleared(transport):
    info = DeviceInfo(id="rig-1", kind="rig", driver="sim", limits={"force_N": 500})
    async with connect(transport.url, client_id="host") as host:
        await host.publish(topics.device_state("rig-1"), DeviceState(device=info, status="online"), retain=True)
        async with connect(transport.url, client_id="late") as late:
            async with late.subscribe(topics.ALL_DEVICE_STATES) as sub:
                item = await sub.get(timeout=5)
                assert item.retained and item.message.device.limits == {"force_N": 500}
        await host.clear_retained(topics.device_state("rig-1"))
        async with connect(transport.url, client_id="later") as later:
            assert await list_devices(later, settle=0.3) == []


async def test_request_reply_correlates_concurrent_requests(transport):
    async with connect(transport.url, client_id="server") as server, connect(transport.url, client_id="client") as client:
        async with server.subscribe("labctl/v1/devices/echo/commands") as sub:
            async def serve():
                async for item in sub:
                    cmd = item.message
                    await asyncio.sleep(0.05 if cmd.params["n"] % 2 else 0)  # replies arrive out of order
                    asyncio.ensure_future(server.reply(cmd, result={"n2": cmd.params["n"] * 2}))

            task = asyncio.create_task(serve())
            replies = await asyncio.gather(*[
                client.request("labctl/v1/devices/echo/commands", Command(action="double", params={"n": n}), timeout=5)
                for n in range(10)])
            task.cancel()
            assert [r.result["n2"] for r in replies] == [n * 2 for n in range(10)]


async def test_request_times_out_naming_the_topic(transport):
    async with connect(transport.url, client_id="lonely") as bus:
        with pytest.raises(RequestTimeout, match="nobody/commands"):
            await bus.request("labctl/v1/devices/nobody/commands", Command(action="ping"), timeout=0.3)


async def test_last_will_marks_a_dead_host_offline(transport):
    info = DeviceInfo(id="p-will", kind="printer", driver="sim")
    async with connect(transport.url, client_id="observer") as observer:
        async with observer.subscribe(topics.device_state("p-will")) as sub:
            host = connect(transport.url, client_id="host-p-will", will=DeviceHost.will(info))
            await host.__aenter__()
            await host.publish(topics.device_state("p-will"), DeviceState(device=info, status="online"), retain=True)
            assert (await sub.get(timeout=5)).message.status == "online"
            await host.close(clean=False)  # the process "dies": no DISCONNECT
            state = (await sub.get(timeout=10)).message
            assert state.status == "offline" and state.detail["reason"] == "host lost"


@pytest.mark.parametrize("payload", [
    b"\x00\xff garbage", b'{"v": 1, "type": "telemetry", "stream": ', b"[]", b"null",
    json.dumps({"v": 2, "type": "telemetry", "stream": "x"}).encode(),
    json.dumps({"v": 1, "type": "no-such-type"}).encode(),
    json.dumps({"v": 1, "type": "telemetry", "stream": "x", "rogue_field": 1}).encode(),
    b"{" + b" " * (MAX_PAYLOAD_BYTES + 10) + b"}",
])
async def test_bad_payloads_are_dropped_and_the_receiver_keeps_working(transport, payload, caplog):
    topic = topics.device_telemetry("p1", "temps")
    async with connect(transport.url, client_id="rx") as rx, connect(transport.url, client_id="tx") as tx:
        async with rx.subscribe("labctl/v1/#") as sub:
            await transport.raw_publish(topic, payload)
            await tx.publish(topic, Telemetry(stream="temps", data={"ok": True}))
            item = await sub.get(timeout=5)
            assert item.message.data == {"ok": True}
            assert rx.stats.dropped_invalid == 1
            assert topic in caplog.text


async def test_duplicate_deliveries_are_dropped_by_message_id(transport):
    message = Event(name="step_done", data={"job": "j1"})
    async with connect(transport.url, client_id="rx") as rx:
        async with rx.subscribe(topics.job_events("j1")) as sub:
            for _ in range(3):  # what QoS 1 may do after a lost PUBACK
                await transport.raw_publish(topics.job_events("j1"), encode(message))
            assert (await sub.get(timeout=5)).message.id == message.id
            await asyncio.sleep(0.3)
            assert sub.get_nowait() is None
            assert rx.stats.dropped_duplicate == 2


class Lamp:
    def __init__(self) -> None:
        self.info = DeviceInfo(id="lamp-1", kind="lamp", driver="test", capabilities=["switch"])
        self.on = False
        self.stopped = asyncio.Event()
        self.emit = None

    @command()
    async def switch(self, on: bool) -> dict:
        self.on = on
        await self.emit("power", {"on": on})
        return {"on": self.on}

    @command()
    async def warm_up(self, seconds: float) -> dict:
        try:
            await asyncio.wait_for(self.stopped.wait(), seconds)
        except TimeoutError:
            return {"done": True}
        raise RuntimeError("warm-up aborted by emergency stop")

    @command()
    async def fail(self) -> dict:
        raise ValueError("bulb is broken")

    async def emergency_stop(self) -> None:
        self.on = False
        self.stopped.set()


async def test_device_host_commands_telemetry_errors_and_estop(transport):
    lamp = Lamp()
    async with DeviceHost.connect(transport.url, lamp), connect(transport.url, client_id="ctl") as ctl:
        async with DeviceRegistry(ctl) as registry:
            state = await registry.wait_for("lamp-1", "online")
            assert state.device.capabilities == ["switch"]
        cmd_topic = topics.device_commands("lamp-1")
        async with ctl.subscribe(topics.device_telemetry("lamp-1", "power")) as power:
            reply = await ctl.request(cmd_topic, Command(action="switch", params={"on": True}))
            assert reply.ok and reply.result == {"on": True}
            assert (await power.get(timeout=5)).message.data == {"on": True}
        bad = await ctl.request(cmd_topic, Command(action="explode"))
        assert not bad.ok and "no command 'explode'" in bad.error and "switch" in bad.error
        bad = await ctl.request(cmd_topic, Command(action="switch", params={"colour": "red"}))
        assert not bad.ok and "bad parameters" in bad.error
        failed = await ctl.request(cmd_topic, Command(action="fail"))
        assert not failed.ok and "bulb is broken" in failed.error
        # An emergency stop is obeyed while a long command is running.
        long_running = asyncio.create_task(
            ctl.request(cmd_topic, Command(action="warm_up", params={"seconds": 30}), timeout=30))
        await asyncio.sleep(0.2)
        async with ctl.subscribe(topics.device_state("lamp-1")) as states:
            await ctl.publish(topics.ESTOP, EStop(reason="test"))
            reply = await asyncio.wait_for(long_running, 5)
            assert not reply.ok and "aborted by emergency stop" in reply.error
            assert lamp.on is False
            status = None
            while status != "estopped":
                status = (await states.get(timeout=5)).message.status
    async with connect(transport.url, client_id="after") as after:
        [state] = await list_devices(after)
        assert state.status == "offline" and state.detail["reason"] == "host stopped"


async def test_stale_commands_are_refused_not_executed(transport):
    lamp = Lamp()
    async with DeviceHost.connect(transport.url, lamp), connect(transport.url, client_id="ctl") as ctl:
        import time as _time

        old = Command(action="switch", params={"on": True}, ts=_time.time() - 3600)
        reply = await ctl.request(topics.device_commands("lamp-1"), old)
        assert not reply.ok and "old" in reply.error
        assert lamp.on is False


async def test_a_second_subscription_to_the_same_filter_gets_retained_state(transport):
    info = DeviceInfo(id="p9", kind="printer", driver="sim")
    async with connect(transport.url, client_id="host") as host, connect(transport.url, client_id="ctl") as ctl:
        await host.publish(topics.device_state("p9"), DeviceState(device=info, status="online"), retain=True)
        async with ctl.subscribe(topics.ALL_DEVICE_STATES) as first:
            assert (await first.get(timeout=5)).message.device.id == "p9"
            async with ctl.subscribe(topics.ALL_DEVICE_STATES) as second:
                item = await second.get(timeout=5)
                assert item.retained and item.message.device.id == "p9"
