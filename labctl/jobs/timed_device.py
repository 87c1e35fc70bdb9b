"""A generic simulated device for exercising the job engine: a real DeviceHost device whose one
action (`run`) takes a set time, remembers every token it ran and can be asked about it (`recall`).

It stands in for any device kind (printer, rig, liquid_handler) in engine tests and the scheduling
benchmark, where only timing and bookkeeping matter; the real drivers live in drivers/.

    python -m labctl.jobs.timed_device --broker mqtt://127.0.0.1:1883 printer-1:printer rig-1:rig
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
from pathlib import Path
from typing import Any

from ..bus import DeviceInfo
from ..devicehost import DeviceHost, TelemetrySink, command


class TimedDevice:
    LINES = 1000  # a step is `LINES` lines long, like a G-code file, so interruptions have a line

    def __init__(self, device_id: str, kind: str, *, time_scale: float = 1.0, simulated: bool = True,
                 out_dir: str | Path | None = None, firmware: str = "timed-device 1.0") -> None:
        self.info = DeviceInfo(id=device_id, kind=kind, driver="timed", simulated=simulated, firmware=firmware,
                               capabilities=["run", "recall"])
        self.time_scale = time_scale
        self.out_dir = Path(out_dir) if out_dir else None
        self.emit: TelemetrySink | None = None
        self.set_status: Any = None
        self.executions: dict[str, int] = {}
        self.finished: dict[str, dict[str, Any]] = {}
        self.interrupted: dict[str, int] = {}
        self.current: tuple[str, int] | None = None  # (token, line)
        self._running: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._estop = asyncio.Event()

    @staticmethod
    def value_for(specimen: str | None, op: str) -> float:
        """A deterministic measurement, so reruns and restarts can be compared exactly."""
        digest = hashlib.sha256(f"{specimen}:{op}".encode()).digest()
        return round(1000 + int.from_bytes(digest[:4], "big") / 2**32 * 500, 3)

    @command()
    async def run(self, op: str = "work", seconds: float = 1.0, token: str | None = None,
                  specimen: str | None = None, fail: bool = False) -> dict[str, Any]:
        """Work for `seconds` (times the time scale). A token already run returns its first result."""
        if token and token in self.finished:
            return self.finished[token]
        if token and token in self._running:
            return await asyncio.shield(self._running[token])
        if self._estop.is_set():
            raise RuntimeError(f"{self.info.id} is emergency-stopped; clear it first")
        key = token or f"anon-{len(self.executions)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        self.executions[key] = self.executions.get(key, 0) + 1
        try:
            result = await self._work(key, op, seconds, specimen, fail)
            future.set_result(result)
            return result
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            self._running.pop(key, None)
            self.current = None

    async def _work(self, key: str, op: str, seconds: float, specimen: str | None, fail: bool) -> dict[str, Any]:
        if self.set_status:
            await self.set_status("busy", token=key, op=op)
        total = max(seconds * self.time_scale, 0.0)
        chunks = 20
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(chunks):
            self.current = (key, int(self.LINES * i / chunks))
            if self.emit and i % 5 == 0:
                await self.emit("progress", {"token": key, "line": self.current[1], "of": self.LINES})
            # absolute deadlines, so timer overshoot does not add up over the chunks
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._estop.wait(), max(0.0, start + total * (i + 1) / chunks - loop.time()))
            if self._estop.is_set():
                self.interrupted[key] = self.current[1]
                raise RuntimeError(f"{self.info.id}: emergency stop at line {self.current[1]}")
        if fail:
            raise RuntimeError(f"{self.info.id}: {op} failed as asked")
        result: dict[str, Any] = {"op": op, "device": self.info.id, "specimen": specimen,
                                  "value": self.value_for(specimen, op), "lines": self.LINES}
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path = self.out_dir / f"{key.replace('/', '_')}-{op}.csv"
            path.write_text(f"specimen,op,value\n{specimen},{op},{result['value']}\n")
            result["artefacts"] = [{"name": op, "kind": "raw_curve" if op == "test" else "results",
                                    "uri": str(path)}]
        self.finished[key] = result
        if self.set_status:
            await self.set_status("online")
        return result

    @command()
    async def recall(self, token: str) -> dict[str, Any]:
        """What became of `token`: done (with its result), running, interrupted (with its line) or unknown."""
        if token in self.finished:
            return {"state": "done", "result": self.finished[token]}
        if token in self._running:
            return {"state": "running", "line": self.current[1] if self.current else None}
        if token in self.interrupted:
            return {"state": "interrupted", "line": self.interrupted[token]}
        return {"state": "unknown"}

    @command()
    async def stats(self) -> dict[str, Any]:
        return {"executions": dict(self.executions), "finished": sorted(self.finished),
                "interrupted": dict(self.interrupted)}

    @command()
    async def clear_estop(self) -> dict[str, Any]:
        self._estop.clear()
        if self.set_status:
            await self.set_status("online")
        return {"ok": True}

    async def emergency_stop(self) -> None:
        self._estop.set()


async def serve(url: str, specs: list[str], time_scale: float, out_dir: str | None) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for spec in specs:
            device_id, _, kind = spec.partition(":")
            device = TimedDevice(device_id, kind or "generic", time_scale=time_scale, out_dir=out_dir)
            await stack.enter_async_context(DeviceHost.connect(url, device))
        print("ready", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--out-dir")
    parser.add_argument("devices", nargs="+", help="id:kind")
    args = parser.parse_args()
    asyncio.run(serve(args.broker, args.devices, args.time_scale, args.out_dir))


if __name__ == "__main__":
    main()
