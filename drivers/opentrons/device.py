"""OpentronsDevice: an Opentrons robot (or its simulator) on the device bus, driven over HTTP.

A protocol runs only after it passes `opentrons_simulate` here and the robot's own analysis; the
report keeps the simulation's run log and the protocol's sha256 with the run's commands, for
provenance. An emergency stop sends `stop` to the run in progress.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from labctl.bus import DeviceInfo
from labctl.devicehost import command

from .client import OpentronsClient, OpentronsError, RunResource
from .simulate import check_protocol

MAX_KEPT_RUNS = 50


class OpentronsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = "ot2-1"
    url: str = Field("http://127.0.0.1:31950", description="The robot's HTTP API (port 31950 on a robot).")
    simulated: bool = Field(False, description="True when url points at labctl's robot simulator.")
    check_with_simulate: bool = Field(True, description="Run opentrons_simulate before uploading.")
    poll_interval: float = Field(0.2, gt=0)
    run_timeout: float = Field(3600.0, gt=0, description="Seconds a run may take before the driver gives up.")


class RunReport(BaseModel):
    job_id: str
    device: str
    protocol: str
    sha256: str | None = None
    simulation_log: str | None = Field(None, description="opentrons_simulate's run log.")
    analysis_result: str | None = None
    protocol_id: str | None = None
    run_id: str | None = None
    status: str = "pending"
    error: str | None = None
    commands: int = 0
    failed_commands: list[dict[str, Any]] = Field(default_factory=list)
    started: float = Field(default_factory=time.time)
    finished: float | None = None


class OpentronsDevice:
    def __init__(self, config: OpentronsConfig | None = None, **overrides: Any) -> None:
        self.config = config or OpentronsConfig(**overrides)
        self.client = OpentronsClient(self.config.url, poll_interval=self.config.poll_interval)
        self.info = DeviceInfo(id=self.config.id, kind="opentrons", driver="opentrons-http",
                               simulated=self.config.simulated, host=self.config.url,
                               capabilities=["validate", "run_protocol", "pause", "resume", "stop", "status", "health"])
        self.emit: Any = None
        self.set_status: Any = None
        self.reports: dict[str, RunReport] = {}
        self.current: RunReport | None = None

    async def __aenter__(self) -> "OpentronsDevice":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    @command()
    async def health(self) -> dict[str, Any]:
        return await self.client.health()

    @command()
    async def validate(self, protocol: str) -> dict[str, Any]:
        """opentrons_simulate on a protocol file; raises with Opentrons' message if it fails."""
        result = await check_protocol(protocol)
        return result.model_dump(exclude={"stderr"})

    @command()
    async def run_protocol(self, protocol: str, job_id: str | None = None) -> dict[str, Any]:
        """Check, upload, analyse and run a protocol to the end; returns the run report."""
        if self.current is not None and self.current.finished is None:
            raise RuntimeError(f"{self.info.id} is busy with job {self.current.job_id} (run {self.current.run_id})")
        report = RunReport(job_id=job_id or uuid.uuid4().hex[:12], device=self.info.id, protocol=str(protocol))
        self._remember(report)
        self.current = report
        try:
            await self._run(report, Path(protocol))
        except BaseException as exc:
            report.status = report.status if report.status in ("stopped", "failed") else "failed"
            report.error = report.error or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            report.finished = time.time()
            if self.set_status:
                await self.set_status("online")
        if report.status != "succeeded":
            raise OpentronsError(f"run {report.run_id} of {Path(protocol).name} ended {report.status}: {report.error}")
        return report.model_dump()

    @command()
    async def pause(self) -> dict[str, Any]:
        return await self.client.pause(self._run_id())

    @command()
    async def resume(self) -> dict[str, Any]:
        return await self.client.play(self._run_id())

    @command()
    async def stop(self) -> dict[str, Any]:
        return await self.client.stop(self._run_id())

    @command()
    async def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device": self.info.id, "url": self.config.url,
                               "runs": [r.model_dump(include={"job_id", "run_id", "status", "protocol"})
                                        for r in self.reports.values()]}
        if self.current and self.current.run_id:
            run = await self.client.get_run(self.current.run_id)
            out["current"] = {"job_id": self.current.job_id, "run_id": run.id, "status": run.status}
        return out

    @command()
    async def report(self, job_id: str) -> dict[str, Any]:
        if job_id not in self.reports:
            raise ValueError(f"no job {job_id!r} on {self.info.id}")
        return self.reports[job_id].model_dump()

    async def emergency_stop(self) -> None:
        report = self.current
        if report and report.run_id and report.finished is None:
            try:
                await self.client.stop(report.run_id)
            except OpentronsError as exc:  # already finished or robot gone: nothing left to stop
                report.error = f"emergency stop: {exc}"

    # -- internals ------------------------------------------------------------------------------
    def _run_id(self) -> str:
        if not self.current or not self.current.run_id:
            raise RuntimeError(f"{self.info.id} has no run")
        return self.current.run_id

    def _remember(self, report: RunReport) -> None:
        self.reports[report.job_id] = report
        while len(self.reports) > MAX_KEPT_RUNS:
            self.reports.pop(next(iter(self.reports)))

    async def _run(self, report: RunReport, path: Path) -> None:
        if self.config.check_with_simulate:
            report.status = "simulating"
            result = await check_protocol(path)  # ProtocolRefused carries Opentrons' message
            report.sha256, report.simulation_log = result.sha256, result.run_log
        report.status = "analysing"
        uploaded = await self.client.upload_protocol(path)
        report.protocol_id = uploaded.id
        analysis = await self.client.wait_for_analysis(uploaded)
        report.analysis_result = analysis.get("result")
        if analysis.get("result") != "ok":
            errors = analysis.get("errors") or [{}]
            report.status = "failed"
            report.error = f"the robot's analysis refused the protocol: {errors[0].get('detail', 'not ok')}"
            raise OpentronsError(report.error, errors=errors)
        run = await self.client.create_run(uploaded.id)
        report.run_id = run.id
        if self.set_status:
            await self.set_status("busy", job=report.job_id, run=run.id)
        await self.client.play(run.id)
        report.status = "running"
        run = await self._follow(report, run.id)
        commands = await self.client.commands(run.id)
        report.commands = len(commands)
        report.failed_commands = [{"id": c.id, "commandType": c.commandType, "error": c.error.model_dump()}
                                  for c in commands if c.status == "failed" and c.error]
        report.status = run.status
        report.error = run.error_summary()

    async def _follow(self, report: RunReport, run_id: str) -> RunResource:
        """Poll the run to its end, emitting progress when the command count moves."""
        deadline = time.monotonic() + self.config.run_timeout
        seen = -1
        while True:
            run = await self.client.get_run(run_id)
            if self.emit:
                count = len(await self.client.commands(run_id)) if not run.finished else seen
                if count != seen:
                    seen = count
                    await self.emit("progress", {"job_id": report.job_id, "run_id": run_id, "status": run.status,
                                                 "commands": count})
            if run.finished:
                return run
            if time.monotonic() > deadline:
                await self.client.stop(run_id)
                raise TimeoutError(f"run {run_id} took longer than {self.config.run_timeout} s; stopped")
            await asyncio.sleep(self.config.poll_interval)
