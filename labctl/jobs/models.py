"""The job model: campaigns of jobs, jobs as ordered steps on device kinds, artefacts, states.

A step names a device KIND and an ACTION with params; the engine picks a device of that kind and
sends the action to its device host. Three step kinds need no device:

- `handover`: a physical hand-over (print bed to rig grips); a technician confirms it with
  `labctl handoff JOB`, or it completes by itself when every device the job used is simulated;
- `wait`: conditioning, `params={"seconds": N}` (scaled by the engine's time scale);
- `local`: an in-process action registered on the engine (analysis, report writing).

State changes go through `check_transition`, so an illegal one (done -> running) raises instead of
corrupting the journal.
"""

from __future__ import annotations

import hashlib
import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NO_DEVICE_KINDS = ("handover", "wait", "local")


class InvalidTransition(ValueError):
    """A state change the state machine does not allow."""


class JobState(StrEnum):
    QUEUED = "queued"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    WAITING_FOR_HANDOVER = "waiting_for_handover"
    PAUSED = "paused"
    INTERRUPTED = "interrupted"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})

# Every legal move. `scheduled` means "the next step may start as soon as a device is free";
# `running` always has a current step; `interrupted` waits for a technician (resume or cancel).
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.WAITING_FOR_APPROVAL, JobState.SCHEDULED, JobState.CANCELLED,
                                JobState.PAUSED}),
    JobState.WAITING_FOR_APPROVAL: frozenset({JobState.SCHEDULED, JobState.CANCELLED}),
    JobState.SCHEDULED: frozenset({JobState.RUNNING, JobState.WAITING_FOR_HANDOVER, JobState.PAUSED,
                                   JobState.DONE, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.SCHEDULED, JobState.WAITING_FOR_HANDOVER, JobState.PAUSED,
                                 JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED}),
    JobState.WAITING_FOR_HANDOVER: frozenset({JobState.SCHEDULED, JobState.DONE, JobState.CANCELLED,
                                              JobState.PAUSED}),
    JobState.PAUSED: frozenset({JobState.SCHEDULED, JobState.QUEUED, JobState.CANCELLED}),
    JobState.INTERRUPTED: frozenset({JobState.SCHEDULED, JobState.CANCELLED, JobState.FAILED}),
    JobState.DONE: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


def check_transition(job_id: str, old: JobState, new: JobState) -> None:
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(TRANSITIONS[old])) or "none (terminal)"
        raise InvalidTransition(f"job {job_id}: cannot go from {old} to {new}; allowed from {old}: {allowed}")


def now() -> float:
    return time.time()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


ArtefactKind = Literal["mesh", "gcode", "formulation", "raw_curve", "results", "report", "other"]


class Artefact(Strict):
    """A file a step consumed or produced. `meta` carries e.g. generator and version for G-code."""

    name: str = Field(min_length=1)
    kind: ArtefactKind
    uri: str = Field(min_length=1, description="a local path or a URI")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_file(cls, name: str, kind: ArtefactKind, path: str | Path, **meta: Any) -> "Artefact":
        p = Path(path)
        return cls(name=name, kind=kind, uri=str(p.resolve()), sha256=sha256_file(p), size=p.stat().st_size,
                   meta=meta)

    @property
    def path(self) -> Path | None:
        uri = self.uri.removeprefix("file://")
        return Path(uri) if "://" not in uri else None


class StepSpec(Strict):
    """One step: ACTION on a device of KIND (or a handover / wait / local step)."""

    name: str = Field(min_length=1)
    kind: str = Field(min_length=1, description="device kind (printer, rig, liquid_handler, ...) or handover/wait/local")
    action: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict,
                                   description="param name -> artefact name from an earlier step (or the job's inputs); "
                                               "the engine puts the artefact's uri in that param")
    outputs: list[str] = Field(default_factory=list, description="artefact names this step will produce")
    block: str | None = Field(None, description="blocking level: every step with the same block of a campaign runs on "
                                                "the same device of this kind")
    timeout_s: float = Field(3600.0, gt=0)
    duration_hint_s: float | None = Field(None, ge=0, description="expected duration, for fair-share accounting")
    token_param: str | None = Field(None, description="param the step's idempotency token is sent in, if the "
                                                      "device action accepts one")
    recall_action: str | None = Field(None, description="device action that answers what happened to a token: "
                                                       "{state or status: done|completed|running|interrupted|"
                                                       "stopped|failed|unknown, result, line}; an error reply "
                                                       "means unknown")
    recall_param: str = Field("token", description="the param the recall action takes the token in")
    on_interrupt: Literal["ask", "retry"] = Field(
        "ask", description="after device loss or emergency stop: wait for a technician (ask) or re-run on "
                           "another device (retry)")
    specimen_event: str | None = Field(None, description="what this step does to the specimen, e.g. printed, tested")
    specimen_location: str | None = Field(None, description="where the specimen is after the step; {device} expands")

    @model_validator(mode="after")
    def _check(self) -> "StepSpec":
        if self.kind == "wait":
            seconds = self.params.get("seconds")
            if not isinstance(seconds, int | float) or seconds < 0:
                raise ValueError(f"step {self.name!r}: a wait step needs params.seconds >= 0")
        elif self.kind != "handover" and not self.action:
            raise ValueError(f"step {self.name!r} on kind {self.kind!r} needs an action")
        return self

    @property
    def needs_device(self) -> bool:
        return self.kind not in NO_DEVICE_KINDS


class JobSpec(Strict):
    """What to do for one specimen (or any unit of work): ordered steps plus provenance context."""

    name: str = ""
    steps: list[StepSpec] = Field(min_length=1)
    specimen_id: str | None = None
    design: dict[str, Any] = Field(default_factory=dict, description="specimen design / factor levels")
    method: str | None = None
    inputs: list[Artefact] = Field(default_factory=list, description="artefacts the job starts with (mesh, G-code)")
    priority: int | None = Field(None, ge=1, le=100, description="overrides the campaign's priority")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_inputs(self) -> "JobSpec":
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"job {self.name!r}: step names must be unique, got {names}")
        known = {a.name for a in self.inputs}
        for i, step in enumerate(self.steps):
            for param, art in step.inputs.items():
                if art not in known:
                    raise ValueError(f"job {self.name!r} step {i} ({step.name}): input {param}={art!r} is not an "
                                     f"artefact of the job's inputs or of an earlier step's declared outputs "
                                     f"(known so far: {sorted(known) or 'none'})")
            known |= set(step.outputs) | {f"{step.name}.{o}" for o in step.outputs}
        return self


class CampaignSpec(Strict):
    """A group of jobs from one submitter, submitted (and approved) together."""

    name: str = Field(min_length=1)
    submitter: str = Field(min_length=1)
    priority: int = Field(1, ge=1, le=100, description="weight in the fair share between submitters")
    idempotency_key: str | None = Field(None, max_length=200)
    hypothesis_id: str | None = None
    plan_id: str | None = None
    blocking_factor: str | None = None
    requires_approval: bool = Field(
        False, description="always wait for a technician; without it, jobs are auto-approved only when every "
                           "device of the kinds they need is simulated (and then run on simulated devices only)")
    jobs: list[JobSpec] = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("jobs")
    @classmethod
    def _unique_specimens(cls, jobs: list[JobSpec]) -> list[JobSpec]:
        ids = [j.specimen_id for j in jobs if j.specimen_id]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"specimen ids must be unique in a campaign; repeated: {dupes}")
        return jobs


class Approval(Strict):
    decision: Literal["approved", "rejected"]
    by: str
    at: float = Field(default_factory=now)
    reason: str | None = None
    simulated_only: bool = False


class Handover(Strict):
    step: str
    by: str
    at: float = Field(default_factory=now)
    automatic: bool = False


class SpecimenEvent(Strict):
    at: float = Field(default_factory=now)
    event: str
    location: str | None = None
    step: str | None = None
    device_id: str | None = None


class Specimen(Strict):
    id: str
    location: str = "not made yet"
    history: list[SpecimenEvent] = Field(default_factory=list)


StepStatus = Literal["pending", "running", "done", "failed", "interrupted", "skipped"]


class StepRun(Strict):
    """What happened to one step (the latest attempt; earlier attempts are in the journal)."""

    name: str
    status: StepStatus = "pending"
    attempt: int = 0
    token: str | None = None
    device_id: str | None = None
    device_firmware: str | None = None
    device_driver: str | None = None
    simulated: bool | None = None
    started_at: float | None = None
    finished_at: float | None = None
    wait_until: float | None = None
    result: dict[str, Any] = Field(default_factory=dict)
    artefacts: list[Artefact] = Field(default_factory=list)
    error: str | None = None
    interrupted_reason: str | None = None
    line: int | None = None


class Job(Strict):
    id: str
    campaign_id: str
    submitter: str
    priority: int
    seq: int = 0
    state: JobState = JobState.QUEUED
    spec: JobSpec
    steps: list[StepRun]
    current_step: int = 0
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)
    reason: str | None = None
    approvals: list[Approval] = Field(default_factory=list)
    handovers: list[Handover] = Field(default_factory=list)
    specimen: Specimen | None = None
    pause_requested: bool = False
    cancel_requested: bool = False

    @property
    def step_spec(self) -> StepSpec | None:
        return self.spec.steps[self.current_step] if self.current_step < len(self.spec.steps) else None

    @property
    def step_run(self) -> StepRun | None:
        return self.steps[self.current_step] if self.current_step < len(self.steps) else None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def simulated_only(self) -> bool:
        return any(a.decision == "approved" and a.simulated_only for a in self.approvals[-1:])

    def artefacts(self) -> dict[str, Artefact]:
        """Every artefact known to the job: its inputs, then each finished step's outputs.

        A step's output is reachable both as `name` and as `step.name`."""
        found = {a.name: a for a in self.spec.inputs}
        for spec, run in zip(self.spec.steps, self.steps):
            if run.status == "done":
                for art in run.artefacts:
                    found[art.name] = art
                    found[f"{spec.name}.{art.name}"] = art
        return found


CampaignStatus = Literal["waiting_for_approval", "active", "finished", "rejected", "cancelled"]


class Campaign(Strict):
    id: str
    spec: CampaignSpec
    status: CampaignStatus = "active"
    job_ids: list[str] = Field(default_factory=list)
    created_at: float = Field(default_factory=now)
    approvals: list[Approval] = Field(default_factory=list)
    spec_hash: str = ""


class Provenance(Strict):
    """Where one job's result came from: enough to trace every number back to its source."""

    job_id: str
    campaign_id: str
    hypothesis_id: str | None
    plan_id: str | None
    specimen_id: str | None
    design: dict[str, Any]
    method: str | None
    gcode: list[dict[str, Any]] = Field(default_factory=list, description="sha256, generator, generator_version")
    devices: list[dict[str, Any]] = Field(default_factory=list, description="per step: id, kind, driver, firmware")
    approvals: list[Approval]
    handovers: list[Handover]
    steps: list[dict[str, Any]]
    simulated: bool
    submitted_at: float
    finished_at: float | None


class JobResult(Strict):
    """What a finished job hands back: its state, every step's result and artefacts, and provenance."""

    job_id: str
    state: JobState
    reason: str | None
    results: dict[str, dict[str, Any]] = Field(description="step name -> the device's result dict")
    artefacts: dict[str, Artefact]
    specimen: Specimen | None
    provenance: Provenance
