"""The simulated robot behind the HTTP API: protocols, their analyses, and runs against a time model.

A run replays the commands of the robot's own analysis (opentrons.cli analyze from the Opentrons
tool environment), each taking the time the time model gives it divided by `speed`. Commands
appear in the run's command list as they start, as on a robot running a Python protocol. A
protocol whose analysis failed runs up to the failing command and then fails with the analysis's
error; a fault injected with `fail_next` fails a chosen command of the next run.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

Analyzer = Callable[[Path], Awaitable[dict[str, Any]]]

TERMINAL = ("stopped", "failed", "succeeded")
# Seconds per command at speed 1; liquid moves add volume / flow rate.
DURATIONS = {"home": 8.0, "pickUpTip": 4.0, "dropTip": 3.0, "dropTipInPlace": 1.5,
             "moveToAddressableAreaForDropTip": 2.0, "moveToWell": 1.5, "aspirate": 1.0, "dispense": 1.0,
             "blowout": 1.0, "blowOutInPlace": 0.5, "touchTip": 2.0, "comment": 0.0, "loadLabware": 0.0,
             "loadPipette": 0.0, "loadModule": 0.0, "loadLiquid": 0.0, "loadTrashBin": 0.0, "defineLiquid": 0.0}
DEFAULT_DURATION = 0.5
DEFAULT_FLOW_RATE = 92.86  # µL/s, a p300 gen2's default


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def new_id() -> str:
    return str(uuid.uuid4())


def command_seconds(command: dict[str, Any]) -> float:
    kind = command.get("commandType", "")
    params = command.get("params") or {}
    if kind == "waitForDuration":
        return float(params.get("seconds", 0.0))
    seconds = DURATIONS.get(kind, DEFAULT_DURATION)
    if kind in ("aspirate", "dispense") and params.get("volume"):
        seconds += float(params["volume"]) / float(params.get("flowRate") or DEFAULT_FLOW_RATE)
    return seconds


class ActionNotAllowed(Exception):
    pass


@dataclass
class Fault:
    """Fail the `occurrence`-th command of type `command_type` (any type if None) in the next run."""

    command_type: str | None = None
    occurrence: int = 1
    error_type: str = "PipetteOverpressureError"
    detail: str = "Simulated fault: overpressure detected while aspirating."
    error_code: str = "3006"


@dataclass
class Protocol:
    id: str
    created_at: str
    filename: str
    path: Path
    analysis_id: str
    analysis: dict[str, Any] | None = None
    analysis_status: str = "pending"
    analysis_error: str | None = None
    task: asyncio.Task[None] | None = None

    def resource(self) -> dict[str, Any]:
        a = self.analysis or {}
        return {"id": self.id, "createdAt": self.created_at, "protocolType": "python",
                "files": [{"name": self.filename, "role": "main"}],
                "metadata": a.get("metadata", {}), "robotType": a.get("robotType", "OT-2 Standard"),
                "analysisSummaries": [{"id": self.analysis_id, "status": self.analysis_status}],
                "key": None, "protocolKind": "standard"}

    def analysis_resource(self) -> dict[str, Any]:
        if self.analysis_status != "completed" or self.analysis is None:
            return {"id": self.analysis_id, "status": self.analysis_status}
        body = {k: v for k, v in self.analysis.items() if k not in ("createdAt", "files", "config")}
        return {"id": self.analysis_id, "status": "completed", **body}


@dataclass
class Run:
    id: str
    created_at: str
    protocol: Protocol
    status: str = "idle"
    current: bool = True
    actions: list[dict[str, Any]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    started_at: str | None = None
    completed_at: str | None = None
    fault: Fault | None = None
    task: asyncio.Task[None] | None = None
    resume: asyncio.Event = field(default_factory=asyncio.Event)

    def resource(self) -> dict[str, Any]:
        a = self.protocol.analysis or {}
        return {"id": self.id, "createdAt": self.created_at, "status": self.status, "current": self.current,
                "ok": True, "actions": self.actions, "errors": self.errors,
                "pipettes": a.get("pipettes", []), "labware": a.get("labware", []), "modules": a.get("modules", []),
                "liquids": a.get("liquids", []), "labwareOffsets": [], "protocolId": self.protocol.id,
                "startedAt": self.started_at, "completedAt": self.completed_at,
                "hasEverEnteredErrorRecovery": False, "runTimeParameters": []}


class SimulatedRobot:
    """State and time model of one robot; the HTTP layer (server.py) only translates."""

    def __init__(self, analyzer: Analyzer, *, speed: float = 1.0, robot_model: str = "OT-2 Standard",
                 name: str = "labctl-sim") -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.analyzer = analyzer
        self.speed = speed
        self.robot_model = robot_model
        self.name = name
        self.protocols: dict[str, Protocol] = {}
        self.runs: dict[str, Run] = {}
        self.next_fault: Fault | None = None

    # -- protocols ------------------------------------------------------------------------------
    def add_protocol(self, filename: str, path: Path) -> Protocol:
        protocol = Protocol(id=new_id(), created_at=now(), filename=filename, path=path, analysis_id=new_id())
        self.protocols[protocol.id] = protocol
        protocol.task = asyncio.create_task(self._analyse(protocol))
        return protocol

    async def _analyse(self, protocol: Protocol) -> None:
        try:
            protocol.analysis = await self.analyzer(protocol.path)
        except Exception as exc:  # the analyser itself broke; the protocol stays unrunnable
            protocol.analysis_error = f"{type(exc).__name__}: {exc}"
            protocol.analysis = {"result": "not-ok", "commands": [], "errors": [
                error_occurrence("AnalysisFailedError", "4000", protocol.analysis_error)]}
        protocol.analysis_status = "completed"

    # -- runs -----------------------------------------------------------------------------------
    def create_run(self, protocol_id: str) -> Run:
        protocol = self.protocols[protocol_id]
        active = [r for r in self.runs.values() if r.current and r.status not in TERMINAL]
        if active:
            raise ActionNotAllowed(f"run {active[0].id} is still active ({active[0].status}); stop it first")
        for run in self.runs.values():
            run.current = False
        run = Run(id=new_id(), created_at=now(), protocol=protocol, fault=self.next_fault)
        self.next_fault = None
        self.runs[run.id] = run
        return run

    def action(self, run: Run, action_type: str) -> dict[str, Any]:
        allowed = {"play": ("idle", "paused"), "pause": ("running",), "stop": ("idle", "running", "paused")}
        if action_type not in allowed:
            raise ValueError(f"unknown actionType {action_type!r}; expected play, pause or stop")
        if run.status not in allowed[action_type]:
            raise ActionNotAllowed(f"cannot {action_type} a run that is {run.status}")
        if action_type == "play" and run.status == "idle" and run.protocol.analysis_status != "completed":
            raise ActionNotAllowed("the protocol's analysis has not finished yet")
        action = {"id": new_id(), "createdAt": now(), "actionType": action_type}
        run.actions.append(action)
        if action_type == "play":
            run.status = "running"
            run.resume.set()
            if run.task is None:
                run.started_at = now()
                run.task = asyncio.create_task(self._execute(run))
        elif action_type == "pause":
            run.status = "paused"
            run.resume.clear()
        else:
            run.status = "stop-requested"
            run.resume.set()
            if run.task is None:
                self._finish(run, "stopped")
            else:
                run.task.cancel()
        return action

    async def _execute(self, run: Run) -> None:
        analysis = run.protocol.analysis or {}
        seen: dict[str | None, int] = {}
        try:
            for planned in analysis.get("commands", []):
                await run.resume.wait()  # a pause takes effect between commands
                command = {"id": new_id(), "key": planned.get("key"), "commandType": planned["commandType"],
                           "createdAt": now(), "startedAt": now(), "completedAt": None, "status": "running",
                           "params": planned.get("params", {}), "intent": "protocol", "notes": []}
                run.commands.append(command)
                await asyncio.sleep(command_seconds(planned) / self.speed)
                command["completedAt"] = now()
                error = planned.get("error") if planned.get("status") == "failed" else None
                if error is None and run.fault and self._fault_hits(run.fault, planned["commandType"], seen):
                    error = error_occurrence(run.fault.error_type, run.fault.error_code, run.fault.detail)
                if error is not None:
                    command["status"], command["error"] = "failed", error
                    run.errors.extend(analysis.get("errors") or [error])
                    self._finish(run, "failed")
                    return
                command["status"], command["result"] = "succeeded", planned.get("result", {})
            if analysis.get("result") == "not-ok" and analysis.get("errors"):
                run.errors.extend(analysis["errors"])
                self._finish(run, "failed")
                return
            run.status = "finishing"
            self._finish(run, "succeeded")
        except asyncio.CancelledError:
            for command in run.commands:
                if command["status"] == "running":
                    command.update(status="failed", completedAt=now(), error=error_occurrence(
                        "RunStoppedError", "4000", "Run was stopped during this command."))
            self._finish(run, "stopped")

    @staticmethod
    def _fault_hits(fault: Fault, command_type: str, seen: dict[str | None, int]) -> bool:
        if fault.command_type not in (None, command_type):
            return False
        seen[fault.command_type] = seen.get(fault.command_type, 0) + 1
        return seen[fault.command_type] == fault.occurrence

    @staticmethod
    def _finish(run: Run, status: str) -> None:
        run.status = status
        run.completed_at = now()

    async def close(self) -> None:
        tasks = [t for t in [*(p.task for p in self.protocols.values()), *(r.task for r in self.runs.values())]
                 if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def error_occurrence(error_type: str, code: str, detail: str) -> dict[str, Any]:
    return {"id": new_id(), "createdAt": now(), "isDefined": False, "errorType": error_type, "errorCode": code,
            "detail": detail, "errorInfo": {}, "wrappedErrors": []}
