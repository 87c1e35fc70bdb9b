"""Bus benchmark: request/reply latency and 20 x 1 kHz telemetry, per transport. Prints JSON.

    python bench/bus.py [--seconds 5] [--requests 2000] [--transports memory,amqtt,mosquitto]

Telemetry: 20 simulated devices each sample at 1 kHz and publish batches of `--batch` samples
(10 ms of data per message by default, as the rig driver does), QoS 1, from a separate process
(the devices' machine), to a subscriber in this process (the controller). Loss is counted
per sample from per-device sequence numbers. Targets: no sample lost at 20 x 1 kHz on Mosquitto;
request/reply p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labctl.bus import Command, Telemetry, connect, topics  # noqa: E402
from labctl.bus.broker import EmbeddedBroker  # noqa: E402
from labctl.testing.mosquitto import Mosquitto  # noqa: E402

DEVICES = 20
RATE_HZ = 1000


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_request_reply(url: str, n: int) -> dict:
    async with connect(url, client_id="bench-server") as server, connect(url, client_id="bench-client") as client:
        async with server.subscribe(topics.device_commands("echo")) as sub:
            async def serve() -> None:
                async for item in sub:
                    await server.reply(item.message, result={"n": item.message.params["n"]})

            task = asyncio.create_task(serve())
            for i in range(20):  # warm-up
                await client.request(topics.device_commands("echo"), Command(action="echo", params={"n": i}))
            rtts = []
            start = time.perf_counter()
            for i in range(n):
                t0 = time.perf_counter()
                await client.request(topics.device_commands("echo"), Command(action="echo", params={"n": i}))
                rtts.append((time.perf_counter() - t0) * 1000)
            elapsed = time.perf_counter() - start
            task.cancel()
    return {"requests": n, "requests_per_s": round(n / elapsed, 1),
            "p50_ms": round(statistics.median(rtts), 3), "p99_ms": round(_percentile(rtts, 0.99), 3)}


async def _devices(url: str, seconds: float, batch: int, start_at: float) -> None:
    async def device(index: int) -> None:
        async with connect(url, client_id=f"bench-dev-{index}") as bus:
            topic = topics.device_telemetry(f"dev-{index}", "force")
            period = batch / RATE_HZ
            sample = 0
            total = int(seconds * RATE_HZ)
            while time.time() < start_at:
                await asyncio.sleep(0.005)
            t0 = time.perf_counter()
            publishes = []
            while sample < total:
                values = [0.001 * (sample + k) for k in range(batch)]
                publishes.append(asyncio.ensure_future(bus.publish(
                    topic, Telemetry(stream="force", seq=sample, data={"first": sample, "N": values}), qos=1)))
                sample += batch
                delay = t0 + (sample / RATE_HZ) - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.gather(*publishes)

    await asyncio.gather(*(device(i) for i in range(DEVICES)))


def _device_process(url: str, seconds: float, batch: int, start_at: float) -> None:
    asyncio.run(_devices(url, seconds, batch, start_at))


async def bench_telemetry(url: str, seconds: float, batch: int, separate_process: bool) -> dict:
    expected = int(seconds * RATE_HZ) * DEVICES
    received: dict[str, set[int]] = {}
    async with connect(url, client_id="bench-controller") as controller:
        async with controller.subscribe("labctl/v1/devices/+/telemetry/#") as sub:
            start_at = time.time() + 1.0
            if separate_process:
                proc = mp.get_context("spawn").Process(target=_device_process, args=(url, seconds, batch, start_at))
                proc.start()
                producer = asyncio.create_task(asyncio.to_thread(proc.join))
            else:
                producer = asyncio.create_task(_devices(url, seconds, batch, start_at))
            count = 0
            first = last = None
            while count < expected:
                try:
                    item = await sub.get(timeout=10)
                except TimeoutError:
                    break
                now = time.perf_counter()
                first = first or now
                last = now
                data = item.message.data
                seen = received.setdefault(item.topic, set())
                for k in range(len(data["N"])):
                    seen.add(data["first"] + k)
                count += len(data["N"])
            await producer
    got = sum(len(s) for s in received.values())
    span = (last - first) if first and last and last > first else seconds
    return {"devices": DEVICES, "rate_hz_per_device": RATE_HZ, "batch_samples": batch, "seconds": seconds,
            "samples_expected": expected, "samples_received": got, "samples_lost": expected - got,
            "samples_per_s": round(got / span, 1), "messages_per_s": round(got / batch / span, 1),
            "dropped_by_receiver": controller.stats.dropped_overflow}


async def run_transport(name: str, args: argparse.Namespace, workdir: Path) -> dict:
    if name == "memory":
        url = "memory://bench"
        rr = await bench_request_reply(url, args.requests)
        tel = await bench_telemetry(url, args.seconds, args.batch, separate_process=False)
        return {"request_reply": rr, "telemetry": tel}
    if name == "amqtt":
        async with EmbeddedBroker(port=0) as broker:
            rr = await bench_request_reply(str(broker.url), args.requests)
            tel = await bench_telemetry(str(broker.url), args.seconds, args.batch, separate_process=True)
            return {"request_reply": rr, "telemetry": tel}
    with Mosquitto(workdir / "mosquitto") as broker:
        rr = await bench_request_reply(str(broker.url), args.requests)
        tel = await bench_telemetry(str(broker.url), args.seconds, args.batch, separate_process=True)
        return {"request_reply": rr, "telemetry": tel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--transports", default="memory,amqtt,mosquitto")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.transports.split(","):
            results[name] = asyncio.run(run_transport(name, args, Path(tmp)))
    targets = {}
    if "mosquitto" in results:
        m = results["mosquitto"]
        targets = {
            "mosquitto_telemetry_zero_loss": m["telemetry"]["samples_lost"] == 0,
            "mosquitto_request_reply_p99_ms": m["request_reply"]["p99_ms"],
            "request_reply_p99_vs_20ms_target": round(m["request_reply"]["p99_ms"] / 20.0, 3),
            "telemetry_received_vs_offered": round(m["telemetry"]["samples_per_s"] / (DEVICES * RATE_HZ), 3),
        }
    print(json.dumps({"benchmark": "bus", "results": results, "targets": targets}, indent=2))


if __name__ == "__main__":
    main()
