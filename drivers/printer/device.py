"""PrinterDevice: a Marlin printer on the device bus (see labctl.devicehost.DeviceHost).

    device = PrinterDevice("printer-1", "/dev/ttyUSB0", baud=250000)
    async with device, DeviceHost.connect(url, device) as host:
        await host.serve_forever()

Telemetry streams: `temperature`, `progress`, `state`, `job`. Every command that moves or heats is
checked against the printer's limits first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from labctl.bus import DeviceInfo
from labctl.devicehost import command

from .driver import MarlinDriver, PrinterError
from .envelope import EnvelopeError, PrinterLimits, check_gcode

log = logging.getLogger("drivers.printer.device")


TEMPERATURE_EMIT_INTERVAL_S = 0.5


class PrinterDevice:
    def __init__(self, device_id: str, port: str, *, baud: int = 250000, rx_buffer: int = 128,
                 limits: PrinterLimits | None = None, simulated: bool = False, flow: str = "auto") -> None:
        self.limits = limits or PrinterLimits()
        self.driver = MarlinDriver(port, baud=baud, rx_buffer=rx_buffer, limits=self.limits,
                                   flow=flow)  # type: ignore[arg-type]
        self.info = DeviceInfo(id=device_id, kind="printer", driver="marlin", simulated=simulated,
                               capabilities=["gcode", "print_file", "temperature", "estop"],
                               limits=self.limits.model_dump(mode="json", exclude={"deny"}))
        self.emit = None          # set by DeviceHost: async emit(stream, data)
        self.set_status = None    # set by DeviceHost: async set_status(status, **detail)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_temperature_emit = 0.0
        self.driver.listeners.append(self._on_driver_event)

    async def __aenter__(self) -> "PrinterDevice":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.driver.close()

    async def connect(self) -> None:
        firmware = await self.driver.connect()
        caps = [f"cap:{name}" for name, on in firmware.capabilities.items() if on]
        self.info = self.info.model_copy(update={
            "firmware": firmware.name,
            "capabilities": sorted(set(self.info.capabilities) | set(caps)
                                   | ({"cap:ADVANCED_OK"} if firmware.advanced_ok else set())),
        })

    # ---- telemetry -----------------------------------------------------------------------------
    def _on_driver_event(self, kind: str, data: dict[str, Any]) -> None:
        if self.emit is None:
            return
        if kind == "temperature":
            # A sped-up simulator auto-reports every few real milliseconds; the bus needs a reading
            # a person can follow, not a flood that starves job events.
            now = time.monotonic()
            if now - self._last_temperature_emit < TEMPERATURE_EMIT_INTERVAL_S:
                return
            self._last_temperature_emit = now
        task = asyncio.ensure_future(self._publish(kind, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, kind: str, data: dict[str, Any]) -> None:
        try:
            await self.emit(kind, data)  # type: ignore[misc]
            if kind == "state" and self.set_status is not None:
                status = {"printing": "busy", "paused": "busy", "halted": "fault",
                          "disconnected": "offline", "reset": "fault"}.get(data.get("state", ""), "online")
                await self.set_status(status, **data)
        except Exception:
            log.debug("telemetry publish failed", exc_info=True)

    async def _ready(self) -> None:
        if self.driver.state in ("disconnected", "reset") and not (
                self.driver.job and self.driver.job.state == "interrupted"):
            await self.connect()

    # ---- safety --------------------------------------------------------------------------------
    async def emergency_stop(self) -> None:
        self.driver.emergency_stop()
        await self.driver.wait_halted(timeout=1.0)

    # ---- commands ------------------------------------------------------------------------------
    @command()
    async def status(self) -> dict[str, Any]:
        return self.driver.status()

    @command()
    async def print_file(self, path: str, wait: bool = False) -> dict[str, Any]:
        """Check, then stream a G-code file. wait=False returns once streaming has started."""
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"no G-code file at {path}")
        return await self.print_gcode(file.read_text(encoding="utf-8", errors="replace"), name=file.name,
                                      wait=wait, source=str(file))

    @command()
    async def print_gcode(self, gcode: str, name: str = "gcode", wait: bool = False,
                          source: str = "G-code") -> dict[str, Any]:
        await self._ready()
        lines = gcode.splitlines()
        check_gcode(lines, self.limits, source=source)    # refuse before anything reaches the printer
        if wait:
            return (await self.driver.print_lines(lines, name=name, source=source)).model_dump()
        await self.driver.print_lines(lines, name=name, source=source, wait=False)
        return {"started": True, **(self.driver.job.progress() if self.driver.job else {})}

    @command()
    async def wait_job(self, timeout: float = 3600.0) -> dict[str, Any]:
        if self.driver.job is None:
            raise PrinterError("no job")
        return (await asyncio.wait_for(self.driver.wait_job(), timeout)).model_dump()

    @command()
    async def set_temperature(self, hotend: float | None = None, bed: float | None = None,
                              wait: bool = False) -> dict[str, Any]:
        await self._ready()
        lines = []
        if bed is not None:
            lines.append(f"{'M190' if wait else 'M140'} S{bed:g}")
        if hotend is not None:
            lines.append(f"{'M109' if wait else 'M104'} S{hotend:g}")
        if not lines:
            raise ValueError("give hotend and/or bed temperature in C")
        for line in check_gcode(lines, self.limits, source="set_temperature"):
            await self.driver.send(line[1])
        return {"sent": lines, "temperatures": dict(self.driver.temperatures)}

    @command()
    async def home(self, axes: str = "XYZ") -> dict[str, Any]:
        await self._ready()
        axes = "".join(a for a in axes.upper() if a in "XYZ")
        await self.driver.send(("G28 " + " ".join(axes)).strip())
        return {"homed": axes or "XYZ"}

    @command()
    async def jog(self, x: float = 0.0, y: float = 0.0, z: float = 0.0, feedrate: float = 3000.0) -> dict[str, Any]:
        """Relative move, checked against the build volume from the printer's reported position."""
        await self._ready()
        position = await self.position()
        target = [position["X"] + x, position["Y"] + y, position["Z"] + z]
        move = f"G1 X{target[0]:.3f} Y{target[1]:.3f} Z{target[2]:.3f} F{feedrate:g}"
        check_gcode(["G90", f"G92 X{position['X']:.3f} Y{position['Y']:.3f} Z{position['Z']:.3f}", move],
                    self.limits, source="jog")
        await self.driver.send("G90")
        await self.driver.send(move)
        return {"target": dict(zip("xyz", target))}

    async def position(self) -> dict[str, float]:
        import re
        lines = await self.driver.send("M114")
        for line in lines:
            found = dict(re.findall(r"([XYZE]):(-?[\d.]+)", line.split("Count")[0]))
            if found:
                return {k: float(v) for k, v in found.items()}
        raise PrinterError("the printer did not report its position (M114)")

    @command()
    async def send_line(self, line: str) -> dict[str, Any]:
        """One G-code line, envelope-checked (the deny-list applies)."""
        await self._ready()
        commands = check_gcode([line], self.limits, source="send_line")
        if not commands:
            raise EnvelopeError("send_line", [])
        output = await self.driver.send(commands[0][1])
        return {"sent": commands[0][1], "output": output}

    @command()
    async def pause(self) -> dict[str, Any]:
        self.driver.pause()
        return self.driver.status()

    @command()
    async def resume(self) -> dict[str, Any]:
        self.driver.resume()
        return self.driver.status()

    @command()
    async def cancel(self) -> dict[str, Any]:
        await self.driver.cancel()
        return self.driver.status()

    @command()
    async def resume_interrupted(self, confirm: bool = False, wait: bool = False) -> dict[str, Any]:
        """Continue an interrupted job after its last executed line; needs confirm=True."""
        if not confirm:
            job = self.driver.job
            last = job.last_executed() if job else None
            raise PrinterError("resume_interrupted needs confirm=true after a person has checked the printer"
                               + (f"; the job stopped after file line {last.file_line}" if last else ""))
        task = asyncio.ensure_future(self.driver.resume_interrupted(confirm=True))
        if wait:
            return (await task).model_dump()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), 0.05)
        return {"resuming": True, **self.driver.status()}
