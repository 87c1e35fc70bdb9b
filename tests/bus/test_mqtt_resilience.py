"""What only a networked broker can do to a client: go away, come back, and see a host die."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

from labctl.bus import DeviceInfo, Event, connect, topics
from labctl.bus.broker import EmbeddedBroker
from labctl.devicehost import DeviceHost
from labctl.registry import DeviceRegistry
from labctl.testing.mosquitto import Mosquitto


class Probe:
    def __init__(self, device_id: str) -> None:
        self.info = DeviceInfo(id=device_id, kind="probe", driver="test")

    async def emergency_stop(self) -> None:
        pass


async def _publish_sequence(bus, topic: str, start: int, count: int, gap: float = 0.005) -> list[int]:
    sent = []
    for n in range(start, start + count):
        await bus.publish(topic, Event(name="tick", data={"n": n}), qos=1, timeout=30)
        sent.append(n)
        await asyncio.sleep(gap)
    return sent


async def test_mosquitto_restart_during_traffic_loses_nothing(tmp_path):
    """Persistent sessions + QoS 1: every event the controller published arrives exactly once."""
    broker = Mosquitto(tmp_path / "mq", persistence=True).start()
    topic = topics.job_events("j1")
    try:
        async with connect(broker.url, client_id="observer", persistent=True) as observer, \
                connect(broker.url, client_id="controller", persistent=True) as controller:
            async with observer.subscribe(topics.job_events("+")) as sub:
                publisher = asyncio.create_task(_publish_sequence(controller, topic, 0, 300))
                await asyncio.sleep(0.4)
                await asyncio.to_thread(broker.restart, 0.5)
                sent = await asyncio.wait_for(publisher, 60)
                received = [(await sub.get(timeout=15)).message.data["n"] for _ in range(len(sent))]
                assert sorted(received) == sent
                await asyncio.sleep(0.3)
                assert sub.get_nowait() is None  # and nothing twice
            assert observer.stats.reconnects >= 1 and controller.stats.reconnects >= 1
    finally:
        broker.stop()


async def test_embedded_broker_restart_restores_subscriptions_and_retained_state(free_port):
    embedded = await EmbeddedBroker(port=free_port).start()
    try:
        async with DeviceHost.connect(embedded.url, Probe("probe-1")), \
                connect(embedded.url, client_id="watcher") as watcher:
            async with watcher.subscribe(topics.job_events("+")) as sub:
                await embedded.stop()
                await asyncio.sleep(0.3)
                embedded = await EmbeddedBroker(port=free_port).start()
                # The publish waits for the broker to come back instead of failing or vanishing.
                async with connect(embedded.url, client_id="ctl") as ctl:
                    for _ in range(100):  # until the watcher has restored its subscription
                        await ctl.publish(topics.job_events("j2"), Event(name="hello"))
                        try:
                            item = await sub.get(timeout=0.2)
                            break
                        except TimeoutError:
                            continue
                    assert item.message.name == "hello"
                    # The device host re-announced its retained state to the new broker.
                    async with DeviceRegistry(ctl) as registry:
                        state = await registry.wait_for("probe-1", "online", timeout=10)
                        assert state.device.kind == "probe"
            assert watcher.stats.reconnects >= 1
    finally:
        await embedded.stop()


async def test_sigkilled_device_host_is_shown_offline_by_its_will(tmp_path):
    with Mosquitto(tmp_path / "mq") as broker:
        script = textwrap.dedent(f"""
            import asyncio, sys
            sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
            from test_mqtt_resilience import Probe
            from labctl.devicehost import DeviceHost
            async def main():
                async with DeviceHost.connect({str(broker.url)!r}, Probe("doomed-1")) as host:
                    print("ready", flush=True)
                    await host.serve_forever()
            asyncio.run(main())
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        try:
            assert proc.stdout.readline().strip() == b"ready"
            async with connect(broker.url, client_id="ctl") as ctl:
                async with DeviceRegistry(ctl) as registry:
                    await registry.wait_for("doomed-1", "online", timeout=10)
                    proc.kill()
                    state = await registry.wait_for("doomed-1", "offline", timeout=10)
                    assert state.detail == {"reason": "host lost"}
        finally:
            proc.kill()
            proc.wait()
