"""The protocol layer's facade: what an agent may ask the lab, used by the MCP server and `labctl demo`.

Every call names the agent (identity, scopes, quota), is validated before anything else happens,
and is written to the audit log with its outcome. Input problems raise `Refused` (structured, no
side effect); unknown campaigns raise `NotFoundError`; scope problems raise `Forbidden`.

A campaign is this layer's unit: one hypothesis, one plan, one or more job-engine campaigns (one
per sequential batch), the observations, the analysis and the report. Its record lives in
`<workdir>/campaigns/<id>/campaign.json`; restarting the service resumes campaigns that were
running (batch submissions carry idempotency keys, so nothing is made twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..bus import DeviceState
from ..jobs import CampaignSpec, JobEngine, JobState, export_campaign
from .capabilities import MATERIALS, PARAMETER_RANGES, SPECIMEN_SIZE_MM, LabCapabilities
from .design import Plan, plan as design_plan
from .envelope import AgentQuota
from .fabrication import Fabrication, Measurement, MeasurementError
from .hypothesis import Hypothesis, parse_hypothesis
from .refusal import Refusal, Refused
from .report import write_report
from .verdict import Analysis, Observation, analyse, sequential_decision

log = logging.getLogger(__name__)

SCOPES = ("lab:read", "lab:plan", "lab:submit", "lab:cancel", "lab:admin")


class Agent(BaseModel):
    """Who is calling: a name, what they may do, what they may spend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
    scopes: tuple[str, ...] = ("lab:read", "lab:plan", "lab:submit", "lab:cancel")
    quota: AgentQuota = Field(default_factory=AgentQuota)


class Forbidden(PermissionError):
    """The agent lacks the scope (or ownership) the call needs."""


class NotFoundError(LookupError):
    pass


class AuditLog:
    """JSON lines: one per agent call, with its arguments (truncated) and outcome."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, agent: str, call: str, args: dict[str, Any], outcome: str, detail: Any = None) -> None:
        text = json.dumps(args, default=str, sort_keys=True)
        entry = {"ts": time.time(), "agent": agent, "call": call,
                 "args": text if len(text) <= 4000 else text[:4000] + "...", "outcome": outcome, "detail": detail}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str) + "\n")

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


CampaignState = Literal["running", "finished", "cancelled", "failed"]


class CampaignRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    agent: str
    state: CampaignState = "running"
    created_at: float = Field(default_factory=time.time)
    finished_at: float | None = None
    hypothesis: Hypothesis
    plan: Plan
    engine_campaigns: list[str] = Field(default_factory=list)
    jobs: dict[str, str] = Field(default_factory=dict, description="run id -> job id")
    measurements: dict[str, Measurement] = Field(default_factory=dict)
    failed_runs: dict[str, str] = Field(default_factory=dict)
    batches_done: int = 0
    analysis: Analysis | None = None
    report: str | None = None
    exports: list[str] = Field(default_factory=list)
    error: str | None = None

    @property
    def simulated(self) -> bool:
        return self.plan.simulated or any(m.simulated for m in self.measurements.values())

    def observations(self) -> list[Observation]:
        runs = {r.run_id: r for r in self.plan.runs}
        return [Observation(run_id=m.run_id, cell=runs[m.run_id].cell, value=m.value, simulated=m.simulated)
                for m in self.measurements.values() if m.run_id in runs]


LabProvider = Callable[[], Awaitable[LabCapabilities]]


def lab_from_registry(registry: Any) -> tuple[LabProvider, Callable[[], list[DeviceState]]]:
    """The `lab` and `devices` arguments of LabService from a live labctl.registry.DeviceRegistry:
    capabilities of the devices online now (their announced limits), and every device's state."""
    async def lab() -> LabCapabilities:
        return LabCapabilities.from_devices(s.device for s in registry.online())

    def devices() -> list[DeviceState]:
        return sorted(registry.devices.values(), key=lambda s: s.device.id)

    return lab, devices


class LabService:
    """Facade over the job engine and the device registry for agents."""

    def __init__(self, engine: JobEngine, workdir: str | Path, *, lab: LabProvider,
                 devices: Callable[[], list[DeviceState]] | None = None, fabrication: Fabrication | None = None,
                 audit: AuditLog | None = None, batch_timeout: float | None = None) -> None:
        self.engine = engine
        self.workdir = Path(workdir)
        self.lab = lab
        self.devices = devices or (lambda: [])
        self.fabrication = fabrication or Fabrication()
        self.audit = audit or AuditLog(self.workdir / "audit.jsonl")
        self.batch_timeout = batch_timeout
        self.campaigns: dict[str, CampaignRecord] = {}
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Condition()
        (self.workdir / "campaigns").mkdir(parents=True, exist_ok=True)

    async def __aenter__(self) -> "LabService":
        for path in sorted((self.workdir / "campaigns").glob("*/campaign.json")):
            record = CampaignRecord.model_validate_json(path.read_text())
            self.campaigns[record.id] = record
            if record.state == "running":
                self._start(record)
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = list(self._runners.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._runners.clear()

    # ------------------------------------------------------------------ bookkeeping
    def _save(self, record: CampaignRecord) -> None:
        folder = self.workdir / "campaigns" / record.id
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "campaign.json.tmp"
        tmp.write_text(record.model_dump_json(indent=1))
        tmp.replace(folder / "campaign.json")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _audited(self, agent: Agent, call: str, args: dict[str, Any], scope: str) -> None:
        if scope not in agent.scopes and "lab:admin" not in agent.scopes:
            self.audit.write(agent.name, call, args, "forbidden", f"needs scope {scope}")
            raise Forbidden(f"agent {agent.name} lacks scope {scope} for {call}")

    async def _call(self, agent: Agent, call: str, args: dict[str, Any], scope: str,
                    body: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        self._audited(agent, call, args, scope)
        try:
            out = await body()
        except Refused as exc:
            self.audit.write(agent.name, call, args, "refused", exc.to_dict()["refusals"])
            raise
        except (NotFoundError, Forbidden) as exc:
            self.audit.write(agent.name, call, args, "refused", str(exc))
            raise
        except Exception as exc:
            self.audit.write(agent.name, call, args, "error", repr(exc)[:500])
            raise
        self.audit.write(agent.name, call, args, "ok", _summary(out))
        return out

    def _own(self, agent: Agent, campaign_id: str) -> CampaignRecord:
        record = self.campaigns.get(str(campaign_id))
        if record is None or (record.agent != agent.name and "lab:admin" not in agent.scopes):
            # Another agent's campaign is reported as unknown, so ids cannot be probed.
            raise NotFoundError(f"no campaign {str(campaign_id)[:80]!r} for agent {agent.name}")
        return record

    # ------------------------------------------------------------------ read-only calls
    async def lab_status(self, agent: Agent) -> dict[str, Any]:
        async def body() -> dict[str, Any]:
            lab = await self.lab()
            states = self.devices()
            mine = [c for c in self.campaigns.values() if c.agent == agent.name]
            return {"simulated": lab.simulated,
                    "devices": [{"id": s.device.id, "kind": s.device.kind, "status": s.status,
                                 "simulated": s.device.simulated} for s in states],
                    "printers": len(lab.printers), "rigs": len(lab.rigs), "liquid_handlers": len(lab.liquid_handlers),
                    "campaigns": {state: sum(c.state == state for c in mine)
                                  for state in ("running", "finished", "cancelled", "failed")}}
        return await self._call(agent, "lab_status", {}, "lab:read", body)

    async def capabilities(self, agent: Agent) -> dict[str, Any]:
        async def body() -> dict[str, Any]:
            lab = await self.lab()
            return {"simulated": lab.simulated, "lab": lab.model_dump(mode="json"),
                    "materials": {k: v.model_dump(mode="json") for k, v in MATERIALS.items()},
                    "parameter_ranges": PARAMETER_RANGES, "specimen_types": sorted(SPECIMEN_SIZE_MM),
                    "quota": agent.quota.model_dump(), "scopes": list(agent.scopes),
                    "hypothesis_schema": Hypothesis.model_json_schema()}
        return await self._call(agent, "capabilities", {}, "lab:read", body)

    async def plan(self, agent: Agent, hypothesis: Any) -> dict[str, Any]:
        async def body() -> dict[str, Any]:
            return plan_summary(design_plan(hypothesis, await self.lab(), agent.quota))
        return await self._call(agent, "plan", {"hypothesis": hypothesis}, "lab:plan", body)

    async def campaign_status(self, agent: Agent, campaign_id: str) -> dict[str, Any]:
        async def body() -> dict[str, Any]:
            return self._status(self._own(agent, campaign_id))
        return await self._call(agent, "campaign_status", {"campaign_id": campaign_id}, "lab:read", body)

    def _status(self, record: CampaignRecord) -> dict[str, Any]:
        states: dict[str, int] = {}
        for job_id in record.jobs.values():
            try:
                state = str(self.engine.job(job_id).state)
            except Exception:
                state = "unknown"
            states[state] = states.get(state, 0) + 1
        return {"campaign_id": record.id, "state": record.state, "simulated": record.simulated,
                "statement": record.hypothesis.statement, "plan_id": record.plan.plan_id,
                "planned_specimens": len(record.plan.runs), "measured": len(record.measurements),
                "failed_runs": len(record.failed_runs), "batches_done": record.batches_done,
                "batches_planned": record.plan.batches, "jobs": states,
                "verdict": record.analysis.verdict if record.analysis else None, "error": record.error}

    async def results(self, agent: Agent, campaign_id: str) -> dict[str, Any]:
        async def body() -> dict[str, Any]:
            record = self._own(agent, campaign_id)
            observations = record.observations()
            analysis = record.analysis or (analyse(record.hypothesis, observations) if observations else None)
            return {"campaign_id": record.id, "state": record.state, "simulated": record.simulated,
                    "final": record.analysis is not None,
                    "analysis": analysis.model_dump(mode="json") if analysis else None,
                    "observations": [o.model_dump(mode="json") for o in observations],
                    "failed_runs": record.failed_runs, "exports": record.exports}
        return await self._call(agent, "results", {"campaign_id": campaign_id}, "lab:read", body)

    async def report(self, agent: Agent, campaign_id: str) -> dict[str, Any]:
        async def body() -> dict[str, Any]:
            record = self._own(agent, campaign_id)
            if record.report is None:
                raise NotFoundError(f"campaign {record.id} has no report yet (state {record.state})")
            return {"campaign_id": record.id, "simulated": record.simulated, "path": record.report,
                    "markdown": Path(record.report).read_text(), "uri": f"labctl://campaigns/{record.id}/report"}
        return await self._call(agent, "report", {"campaign_id": campaign_id}, "lab:read", body)

    async def specimen_curve(self, agent: Agent, campaign_id: str, run_id: str) -> dict[str, Any]:
        async def body() -> dict[str, Any]:
            record = self._own(agent, campaign_id)
            m = record.measurements.get(str(run_id))
            if m is None:
                raise NotFoundError(f"campaign {record.id} has no measured specimen {str(run_id)[:80]!r}")
            return {"campaign_id": record.id, "run_id": m.run_id, "simulated": m.simulated,
                    "x_label": m.curve_labels[0], "y_label": m.curve_labels[1], "x": m.curve_x, "y": m.curve_y,
                    "response": record.hypothesis.response, "value": m.value, "results": m.results}
        return await self._call(agent, "specimen_curve", {"campaign_id": campaign_id, "run_id": run_id},
                                "lab:read", body)

    async def plot(self, agent: Agent, campaign_id: str, name: str) -> bytes:
        """A report plot's PNG bytes (effect.png or curves.png); audited like every call."""
        async def body() -> dict[str, Any]:
            if name not in ("effect.png", "curves.png"):
                raise NotFoundError(f"no plot {str(name)[:40]!r}; the plots are effect.png and curves.png")
            record = self._own(agent, campaign_id)
            path = Path(record.report).parent / name if record.report else None
            if path is None or not path.is_file():
                raise NotFoundError(f"campaign {record.id} has no {name} yet (state {record.state})")
            return {"campaign_id": record.id, "png": path.read_bytes()}
        out = await self._call(agent, "plot", {"campaign_id": campaign_id, "name": name}, "lab:read", body)
        return out["png"]

    # ------------------------------------------------------------------ calls that act on hardware
    async def submit(self, agent: Agent, hypothesis: Any, idempotency_key: Any = None) -> dict[str, Any]:
        async def body() -> dict[str, Any]:
            if idempotency_key is not None and not (isinstance(idempotency_key, str) and 0 < len(idempotency_key) <= 200):
                raise Refused([Refusal(field="idempotency_key", value=str(idempotency_key)[:120],
                                       limit="string of 1-200 characters", reason="not a usable idempotency key")])
            h = parse_hypothesis(hypothesis)
            lab = await self.lab()
            p = design_plan(h, lab, agent.quota)
            key = idempotency_key or f"{p.plan_id}:{uuid.uuid4().hex}"
            cid = "cmp-" + hashlib.sha256(f"{agent.name}:{key}".encode()).hexdigest()[:12]
            if cid in self.campaigns:
                return {**self._status(self.campaigns[cid]), "resubmitted": True}
            self._check_quota(agent, p)
            await asyncio.to_thread(self.fabrication.prepare, p, self.workdir / "campaigns" / cid / "gcode", lab)
            record = CampaignRecord(id=cid, agent=agent.name, hypothesis=h, plan=p)
            self.campaigns[cid] = record
            self._save(record)
            self._start(record)
            return {**self._status(record), "plan": plan_summary(p, runs=False)}
        return await self._call(agent, "submit", {"hypothesis": hypothesis, "idempotency_key": idempotency_key},
                                "lab:submit", body)

    def _check_quota(self, agent: Agent, p: Plan) -> None:
        mine = [c for c in self.campaigns.values() if c.agent == agent.name]
        active = sum(c.state == "running" for c in mine)
        if active >= agent.quota.max_active_campaigns:
            raise Refused([Refusal(field="<agent>.active_campaigns", value=active,
                                   limit=f"< {agent.quota.max_active_campaigns}",
                                   reason="this agent already runs as many campaigns as its quota allows")])
        # A cancelled campaign spent what it made; the others spend their whole plan.
        spent = sum(len(c.measurements) + len(c.failed_runs) if c.state == "cancelled" else len(c.plan.runs)
                    for c in mine)
        if spent + len(p.runs) > agent.quota.max_specimens_total:
            raise Refused([Refusal(field="budget.max_specimens", value=len(p.runs),
                                   limit=f"<= {agent.quota.max_specimens_total - spent} left of "
                                         f"{agent.quota.max_specimens_total}",
                                   reason="over this agent's total specimen quota")])

    async def cancel(self, agent: Agent, campaign_id: str, reason: str = "cancelled by agent") -> dict[str, Any]:
        async def body() -> dict[str, Any]:
            record = self._own(agent, campaign_id)
            if record.state != "running":
                return self._status(record)
            task = self._runners.pop(record.id, None)
            if task:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            for engine_id in record.engine_campaigns:
                with contextlib.suppress(Exception):
                    await self.engine.cancel(engine_id, by=f"agent:{agent.name}", reason=str(reason)[:200])
            record.state, record.finished_at = "cancelled", time.time()
            self._save(record)
            await self._notify()
            return self._status(record)
        return await self._call(agent, "cancel", {"campaign_id": campaign_id, "reason": reason}, "lab:cancel", body)

    async def wait(self, campaign_id: str, timeout: float | None = None) -> CampaignRecord:
        """Wait until a campaign leaves the running state (for `labctl demo` and tests)."""
        async def _wait() -> None:
            async with self._changed:
                while self.campaigns[campaign_id].state == "running":
                    await self._changed.wait()
        await asyncio.wait_for(_wait(), timeout)
        return self.campaigns[campaign_id]

    # ------------------------------------------------------------------ the campaign runner
    def _start(self, record: CampaignRecord) -> None:
        self._runners[record.id] = asyncio.create_task(self._run(record), name=f"campaign-{record.id}")

    async def _run(self, record: CampaignRecord) -> None:
        try:
            await self._run_batches(record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a campaign's failure is recorded, never lost
            log.exception("campaign %s failed", record.id)
            record.state, record.error, record.finished_at = "failed", repr(exc)[:500], time.time()
            self._save(record)
            await self._notify()
        finally:
            self._runners.pop(record.id, None)

    async def _run_batches(self, record: CampaignRecord) -> None:
        h, p = record.hypothesis, record.plan
        while record.batches_done < p.batches:
            batch = record.batches_done
            runs = p.batch_runs(batch)
            spec = CampaignSpec(name=f"{record.id} batch {batch + 1}/{p.batches}", submitter=record.agent,
                                idempotency_key=f"{record.id}-b{batch}", hypothesis_id=p.hypothesis_id,
                                plan_id=p.plan_id, blocking_factor=p.tested_factor,
                                jobs=[self.fabrication.job_for(run, p, self.workdir / "campaigns" / record.id / "gcode")
                                      for run in runs],
                                metadata={"agent_campaign": record.id, "batch": batch, "statement": h.statement})
            engine_campaign = await self.engine.submit(spec)
            if engine_campaign.id not in record.engine_campaigns:
                record.engine_campaigns.append(engine_campaign.id)
            record.jobs.update({run.run_id: job_id for run, job_id in zip(runs, engine_campaign.job_ids)})
            self._save(record)
            await self.engine.wait(engine_campaign.id, timeout=self.batch_timeout)
            for run in runs:
                self._collect(record, run)
            record.batches_done = batch + 1
            self._save(record)
            await self._notify()
            if p.sequential:
                decision = sequential_decision(h, record.observations(), budget_left=record.batches_done < p.batches)
                if decision.stop:
                    break
        await self._finish(record)

    def _collect(self, record: CampaignRecord, run: Any) -> None:
        job_id = record.jobs[run.run_id]
        result = self.engine.result(job_id)
        if result.state != JobState.DONE:
            record.failed_runs[run.run_id] = f"job {job_id} {result.state}: {result.reason or ''}".strip()
            return
        try:
            record.measurements[run.run_id] = self.fabrication.measure(run, record.hypothesis, result)
        except MeasurementError as exc:
            record.failed_runs[run.run_id] = str(exc)

    async def _finish(self, record: CampaignRecord) -> None:
        h, p = record.hypothesis, record.plan
        observations = record.observations()
        if p.sequential:
            from .verdict import analyse_sequential

            analysis = analyse_sequential(h, observations, budget_left=False) if observations else None
        else:
            analysis = analyse(h, observations) if observations else None
        folder = self.workdir / "campaigns" / record.id
        exports = []
        for i, engine_id in enumerate(record.engine_campaigns):
            target = folder / "export" / f"batch-{i + 1}"
            if not target.exists():
                export_campaign(self.engine.store, engine_id, target)
            exports.append(str(target))
        record.exports = exports
        if analysis is not None:
            record.analysis = analysis
            curves = {m.run_id: (m.curve_x, m.curve_y) for m in record.measurements.values()}
            record.report = str(write_report(folder / "report", h, p, analysis, observations, campaign_id=record.id,
                                             curves=curves, manifests=[Path(e) / "manifest.json" for e in exports]))
        else:
            record.error = "no specimen gave a measurement"
        record.state = "finished" if analysis is not None else "failed"
        record.finished_at = time.time()
        self._save(record)
        await self._notify()


def plan_summary(p: Plan, runs: bool = True) -> dict[str, Any]:
    """A plan as JSON for an agent; with every run (parameters, printer block, order) unless runs=False."""
    data = p.model_dump(mode="json")
    if not runs:
        data.pop("runs")
    return data


def _summary(out: dict[str, Any]) -> dict[str, Any]:
    keys = ("campaign_id", "state", "verdict", "plan_id", "simulated")
    return {k: out[k] for k in keys if k in out}
