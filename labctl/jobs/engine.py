"""The job engine: runs campaigns of jobs on the lab's devices, durably.

    async with connect("memory://lab") as bus, JobEngine(Store("lab.db"), bus) as engine:
        campaign = await engine.submit(CampaignSpec(name="c1", submitter="agent-a", jobs=[...]))
        done = await engine.wait(campaign.id, timeout=600)
        results = [engine.result(job_id) for job_id in done.job_ids]

Rules it keeps:
- every change is journalled (store) before its effect (a device command, a bus event);
- a device runs one step at a time (the engine reserves it for the step's run);
- a restart reconciles running steps with their devices instead of re-running them blindly;
- an emergency stop interrupts every running device step; a device going offline interrupts
  its step and, if the step allows it (`on_interrupt="retry"`), re-runs it on another device.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..bus import Bus, DeviceState, EStop, Event, Telemetry, topics
from .executor import BusDirectory, BusExecutor, DeviceDirectory, StepError, StepExecutor, StepTimeout
from .models import (
    Approval, Artefact, Campaign, CampaignSpec, Handover, InvalidTransition, Job, JobResult, JobSpec, JobState,
    SpecimenEvent, StepSpec, check_transition, now, sha256_file,
)
from .provenance import job_result
from .scheduler import FairShare, assign
from .store import NotFound, Store

log = logging.getLogger("labctl.jobs")

LocalAction = Callable[[Job, dict[str, Any]], Awaitable[dict[str, Any]]]
UNAVAILABLE = ("offline", "fault", "estopped")
ERROR_GRACE_S = 0.2
PROGRESS_TOPICS = f"{topics.ROOT}/devices/+/telemetry/progress"
CAMPAIGN_ENDED = ("finished", "rejected", "cancelled")
NEEDS_A_PERSON = (JobState.WAITING_FOR_APPROVAL, JobState.WAITING_FOR_HANDOVER, JobState.INTERRUPTED,
                  JobState.PAUSED)
RECALL_SETTLE_S = 0.5


_RECALL_STATES = {"done": "done", "completed": "done", "finished": "done", "succeeded": "done",
                  "running": "running", "busy": "running", "queued": "running", "printing": "running",
                  "interrupted": "interrupted", "stopped": "interrupted", "estopped": "interrupted",
                  "aborted": "interrupted", "paused": "interrupted", "failed": "failed", "error": "failed",
                  "unknown": "unknown"}


def recall_state(answer: dict[str, Any]) -> str:
    """done, running, interrupted, failed or unknown, from a device's answer about a token."""
    raw = str(answer.get("state") or answer.get("status") or "unknown").lower()
    return _RECALL_STATES.get(raw, "running")


class EngineError(RuntimeError):
    """A request the engine cannot honour (unknown id, wrong state); the message says why."""


class JobEngine:
    def __init__(self, store: Store, bus: Bus, *, executor: StepExecutor | None = None,
                 directory: DeviceDirectory | None = None, time_scale: float = 1.0,
                 auto_approve_simulated: bool = True, auto_handover_simulated: bool = True,
                 poll_interval: float = 0.25, recall_timeout: float = 5.0,
                 local_actions: dict[str, LocalAction] | None = None) -> None:
        self.store = store
        self.bus = bus
        self.executor: StepExecutor = executor or BusExecutor(bus)
        self._own_directory = directory is None
        self.directory: DeviceDirectory = directory or BusDirectory(bus)
        self.time_scale = time_scale
        self.auto_approve_simulated = auto_approve_simulated
        self.auto_handover_simulated = auto_handover_simulated
        self.poll_interval = poll_interval
        self.recall_timeout = recall_timeout
        self.local_actions: dict[str, LocalAction] = dict(local_actions or {})
        self.jobs: dict[str, Job] = {}  # every non-terminal job
        self._in_state: dict[JobState, set[str]] = {state: set() for state in JobState}  # index over self.jobs
        self.campaigns: dict[str, Campaign] = {}
        self.share = FairShare()
        self.reserved: dict[str, str] = {}  # device id -> job id
        self.stats: dict[str, float] = {"dispatched": 0, "dispatch_seconds": 0.0, "ticks": 0, "commits": 0,
                                        "commit_seconds": 0.0}
        self._running: dict[str, asyncio.Task[None]] = {}  # job id -> task of its current step
        self._blocks: dict[tuple[str, str], dict[str, str]] = {}  # (campaign, kind) -> block -> device
        self._max_seq = 0
        self._wake = asyncio.Event()
        self._estop_held: dict[str, DeviceState] = {}  # device states seen when the last estop came
        self._admission_dirty = True
        self._changed = asyncio.Condition()
        self._events: asyncio.Queue[tuple[str, Event]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    # ---------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> "JobEngine":
        if self._own_directory:
            await self.directory.__aenter__()  # type: ignore[attr-defined]
        self.directory.on_change(self._on_devices_changed)
        self._estop_sub = self.bus.subscribe(topics.ESTOP)
        await self._estop_sub.__aenter__()
        self._progress_sub = self.bus.subscribe(PROGRESS_TOPICS)
        await self._progress_sub.__aenter__()
        self._load()
        self._tasks = [asyncio.create_task(self._loop(), name="jobs-loop"),
                       asyncio.create_task(self._poll_loop(), name="jobs-poll"),
                       asyncio.create_task(self._estop_loop(), name="jobs-estop"),
                       asyncio.create_task(self._progress_loop(), name="jobs-progress"),
                       asyncio.create_task(self._publish_loop(), name="jobs-events")]
        await self._recover()
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Stopping leaves running steps as they are in the store: the next start reconciles them.
        for task in list(self._running.values()) + self._tasks:
            task.cancel()
        for task in list(self._running.values()) + self._tasks:
            with contextlib.suppress(BaseException):
                await task
        await self._estop_sub.__aexit__()
        await self._progress_sub.__aexit__()
        if self._own_directory:
            await self.directory.__aexit__(*exc)  # type: ignore[attr-defined]

    def _load(self) -> None:
        for job in self.store.jobs(active_only=True):
            self.jobs[job.id] = job
            self._in_state[job.state].add(job.id)
            if job.campaign_id not in self.campaigns:
                self.campaigns[job.campaign_id] = self.store.campaign(job.campaign_id)
        self._max_seq = self.store.max_seq()

    # ---------------------------------------------------------------- submission
    async def submit(self, spec: CampaignSpec) -> Campaign:
        """Store and queue a campaign. A retried submission with the same idempotency key returns
        the campaign it created the first time (IdempotencyConflict if the spec differs)."""
        # In a worker thread: a large submission must not stall the steps that are running.
        campaign, jobs, created = await asyncio.to_thread(self.store.submit, spec)
        if created:
            self._adopt(campaign, jobs)
        return campaign

    async def submit_job(self, spec: JobSpec, *, submitter: str, idempotency_key: str | None = None,
                         priority: int = 1, requires_approval: bool = False, **context: Any) -> Job:
        """Submit one job (stored as a campaign of one). `context`: hypothesis_id, plan_id, metadata."""
        campaign = await self.submit(CampaignSpec(name=spec.name or "job", submitter=submitter, priority=priority,
                                                  idempotency_key=idempotency_key, jobs=[spec],
                                                  requires_approval=requires_approval, **context))
        return self.job(campaign.job_ids[0])

    def _adopt(self, campaign: Campaign, jobs: list[Job]) -> None:
        self.campaigns[campaign.id] = campaign
        for job in jobs:
            if not job.terminal and job.id not in self.jobs:
                self.jobs[job.id] = job
                self._in_state[job.state].add(job.id)
            self._max_seq = max(self._max_seq, job.seq)
        self._admission_dirty = True
        self._wake.set()

    # ---------------------------------------------------------------- reads
    def job(self, job_id: str) -> Job:
        return self.jobs[job_id] if job_id in self.jobs else self.store.job(job_id)

    def campaign(self, campaign_id: str) -> Campaign:
        return self.campaigns[campaign_id] if campaign_id in self.campaigns else self.store.campaign(campaign_id)

    def result(self, job_id: str) -> JobResult:
        job = self.job(job_id)
        return job_result(job, self.campaign(job.campaign_id))

    def _finished(self, some_id: str) -> bool:
        if some_id in self.jobs:
            return False
        campaign = self.campaigns.get(some_id)
        if campaign is not None:
            return campaign.status in CAMPAIGN_ENDED
        kind = self.store.kind_of(some_id)
        if kind == "job":
            return self.store.job(some_id).terminal
        if kind == "campaign":
            return self.store.campaign(some_id).status in CAMPAIGN_ENDED
        raise EngineError(f"no job or campaign {some_id!r}")

    async def wait(self, some_id: str, timeout: float | None = None, *, settled: bool = False) -> Job | Campaign:
        """Wait until a job is done/failed/cancelled or a campaign has finished; return it.

        With settled=True, also return when nothing can move without a person: every unfinished job
        waits for an approval, a hand-over, a resume (interrupted, paused). Raises TimeoutError."""
        if settled:
            await self.wait_until(lambda: self._finished(some_id) or self._settled(some_id), timeout)
        else:
            await self.wait_until(lambda: self._finished(some_id), timeout)
        return self.job(some_id) if self.store.kind_of(some_id) == "job" else self.campaign(some_id)

    def _settled(self, some_id: str) -> bool:
        ids = [some_id] if some_id in self.jobs else self.campaign(some_id).job_ids if some_id in self.campaigns else []
        live = [self.jobs[i] for i in ids if i in self.jobs]
        return bool(live) and all(j.state in NEEDS_A_PERSON for j in live)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until `predicate()` holds. It is checked after every job change and, for predicates
        that also look at things outside the engine, every poll interval. Raises TimeoutError."""
        async def _wait() -> None:
            async with self._changed:
                while not predicate():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), self.poll_interval)
        await asyncio.wait_for(_wait(), timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ---------------------------------------------------------------- state changes
    async def _commit(self, job: Job, event: str, new_state: JobState | None = None, **data: Any) -> None:
        """Journal the change and store the job (one transaction), then publish it."""
        old = job.state
        if new_state is not None and new_state != old:
            check_transition(job.id, old, new_state)
            job.state = new_state
        payload = {"from": old.value, "to": job.state.value, "step": job.current_step, **data}
        t0 = time.perf_counter()
        self.store.save_job(job, event, payload)
        self.stats["commit_seconds"] += time.perf_counter() - t0
        self.stats["commits"] += 1
        self._in_state[old].discard(job.id)
        self._in_state[job.state].add(job.id)
        self._events.put_nowait((job.id, Event(name=f"job.{event}", data={"job_id": job.id, "campaign_id":
                                                                           job.campaign_id, **payload})))
        if job.terminal:
            self.jobs.pop(job.id, None)
            self._in_state[job.state].discard(job.id)
            await self._check_campaign(job.campaign_id)
        self._wake.set()
        await self._notify()

    async def _check_campaign(self, campaign_id: str) -> None:
        campaign = self.campaigns.get(campaign_id)
        if campaign is None or any(self.jobs.get(j) is not None for j in campaign.job_ids):
            return
        if campaign.status in ("active", "waiting_for_approval"):
            counts = self.store.state_counts(campaign_id)
            campaign.status = "cancelled" if set(counts) == {JobState.CANCELLED.value} else "finished"
            self.store.save_campaign(campaign, campaign.status, {"states": counts})
            self._events.put_nowait((campaign_id, Event(name="campaign.finished", data={"campaign_id": campaign_id})))
        self.campaigns.pop(campaign_id, None)

    def _resolve(self, some_id: str) -> list[Job]:
        if some_id in self.jobs:
            return [self.jobs[some_id]]
        kind = self.store.kind_of(some_id)
        if kind == "job":
            raise EngineError(f"job {some_id} is {self.store.job(some_id).state}; nothing to change")
        if kind == "campaign":
            return [j for j in (self.jobs.get(i) for i in self.store.campaign(some_id).job_ids) if j is not None]
        raise EngineError(f"no job or campaign {some_id!r}")

    # ---------------------------------------------------------------- technician decisions
    async def approve(self, some_id: str, *, by: str, reason: str | None = None) -> list[str]:
        """Approve a campaign (all its jobs) or one job that waits for approval."""
        approval = Approval(decision="approved", by=by, reason=reason)
        waiting = self._waiting_for_approval(some_id)
        await self._campaign_decision(some_id, approval, "active")
        for job in waiting:
            job.approvals.append(approval)
            await self._commit(job, "approved", JobState.SCHEDULED, by=by)
        return [j.id for j in waiting]

    def _waiting_for_approval(self, some_id: str) -> list[Job]:
        waiting = [j for j in self._resolve(some_id)
                   if j.state in (JobState.WAITING_FOR_APPROVAL, JobState.QUEUED)]
        if not waiting:
            raise EngineError(f"{some_id}: nothing waits for approval")
        return waiting

    async def reject(self, some_id: str, *, by: str, reason: str) -> list[str]:
        if not reason:
            raise EngineError("a rejection needs a reason")
        approval = Approval(decision="rejected", by=by, reason=reason)
        waiting = self._waiting_for_approval(some_id)
        await self._campaign_decision(some_id, approval, "rejected")
        for job in waiting:
            job.approvals.append(approval)
            job.reason = f"rejected by {by}: {reason}"
            await self._commit(job, "rejected", JobState.CANCELLED, by=by, reason=reason)
        return [j.id for j in waiting]

    async def _campaign_decision(self, some_id: str, approval: Approval, status: str) -> None:
        if self.store.kind_of(some_id) != "campaign":
            return
        campaign = self.campaign(some_id)
        campaign.approvals.append(approval)
        campaign.status = status  # type: ignore[assignment]
        self.store.save_campaign(campaign, approval.decision, approval.model_dump())

    async def handoff(self, job_id: str, *, by: str) -> None:
        """A technician confirms the physical hand-over the job waits for."""
        job = self.jobs.get(job_id)
        if job is None or job.state != JobState.WAITING_FOR_HANDOVER:
            state = job.state if job else self.store.job(job_id).state
            raise EngineError(f"job {job_id} is {state}, not waiting_for_handover")
        await self._complete_handover(job, by=by, automatic=False)

    async def pause(self, some_id: str, *, by: str = "technician") -> list[str]:
        changed = []
        for job in self._resolve(some_id):
            if job.state in (JobState.QUEUED, JobState.SCHEDULED, JobState.WAITING_FOR_HANDOVER):
                await self._commit(job, "paused", JobState.PAUSED, by=by)
            elif job.state == JobState.RUNNING:
                job.pause_requested = True
                await self._commit(job, "pause_requested", by=by)
            else:
                continue
            changed.append(job.id)
        if not changed:
            raise EngineError(f"{some_id}: nothing to pause (only scheduled, running or waiting jobs pause)")
        return changed

    async def resume(self, some_id: str, *, by: str = "technician") -> list[str]:
        """Resume paused jobs; re-run the interrupted step of interrupted jobs (the technician's call)."""
        changed = []
        for job in self._resolve(some_id):
            run = job.step_run
            if job.state == JobState.PAUSED:
                job.pause_requested = False
                # a job paused before its approval goes back through the approval gate
                approved = bool(job.approvals) and job.approvals[-1].decision == "approved"
                await self._commit(job, "resumed", JobState.SCHEDULED if approved else JobState.QUEUED, by=by)
                self._admission_dirty = True
            elif job.state == JobState.INTERRUPTED and run is not None:
                run.status = "pending"
                job.reason = None
                await self._commit(job, "resumed_after_interruption", JobState.SCHEDULED, by=by,
                                   step_name=run.name)
            elif job.pause_requested:
                job.pause_requested = False
                await self._commit(job, "pause_withdrawn", by=by)
            else:
                continue
            changed.append(job.id)
        if not changed:
            raise EngineError(f"{some_id}: nothing paused or interrupted")
        return changed

    async def cancel(self, some_id: str, *, by: str = "technician", reason: str = "cancelled") -> list[str]:
        """Cancel jobs. A running device step is not aborted mid-motion: its job ends after it."""
        changed = []
        for job in self._resolve(some_id):
            spec = job.step_spec
            if job.state == JobState.RUNNING and spec is not None and spec.needs_device:
                job.cancel_requested = True
                await self._commit(job, "cancel_requested", by=by, reason=reason)
            else:
                task = self._running.pop(job.id, None)
                if task:
                    task.cancel()
                job.reason = f"{reason} (by {by})"
                await self._commit(job, "cancelled", JobState.CANCELLED, by=by, reason=reason)
            changed.append(job.id)
        if self.store.kind_of(some_id) == "campaign" and some_id in self.campaigns:
            campaign = self.campaigns[some_id]
            if campaign.status in ("active", "waiting_for_approval") and not any(
                    j in self.jobs and self.jobs[j].state == JobState.RUNNING for j in campaign.job_ids):
                campaign.status = "cancelled"
                self.store.save_campaign(campaign, "cancelled", {"by": by, "reason": reason})
        return changed

    async def apply_request(self, action: str, target: str, args: dict[str, Any]) -> str:
        """Apply a decision filed by another process (the CLI) through the store."""
        by = str(args.get("by") or "technician")
        if action == "approve":
            return f"approved {len(await self.approve(target, by=by, reason=args.get('reason')))} job(s)"
        if action == "reject":
            return f"rejected {len(await self.reject(target, by=by, reason=str(args.get('reason') or '')))} job(s)"
        if action == "handoff":
            await self.handoff(target, by=by)
            return "hand-over confirmed"
        if action == "pause":
            return f"paused {len(await self.pause(target, by=by))} job(s)"
        if action == "resume":
            return f"resumed {len(await self.resume(target, by=by))} job(s)"
        if action == "cancel":
            return f"cancelled {len(await self.cancel(target, by=by, reason=str(args.get('reason') or 'cancelled')))} job(s)"
        raise EngineError(f"unknown request action {action!r}")

    # ---------------------------------------------------------------- loops
    def _on_devices_changed(self) -> None:
        self._admission_dirty = True
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._tick()
            except Exception:
                log.exception("scheduler tick failed")
                await asyncio.sleep(self.poll_interval)

    async def _tick(self) -> None:
        self.stats["ticks"] += 1
        await self._check_devices()
        if self._admission_dirty:
            self._admission_dirty = False
            await self._admit()
        await self._start_ready()

    async def _poll_loop(self) -> None:
        """Pick up work filed by other processes: submissions and CLI decisions."""
        while True:
            try:
                new = self.store.jobs(after_seq=self._max_seq)
                for job in new:
                    if job.id not in self.jobs and not job.terminal:
                        if job.campaign_id not in self.campaigns:
                            self.campaigns[job.campaign_id] = self.store.campaign(job.campaign_id)
                        self._adopt(self.campaigns[job.campaign_id], [job])
                    self._max_seq = max(self._max_seq, job.seq)
                for request in self.store.pending_requests():
                    try:
                        message = await self.apply_request(request.action, request.target, request.args)
                        self.store.finish_request(request.id, True, message)
                    except (EngineError, InvalidTransition, NotFound) as exc:
                        self.store.finish_request(request.id, False, str(exc))
                    except Exception as exc:  # answered, never retried forever
                        log.exception("request %s failed", request.id)
                        self.store.finish_request(request.id, False, f"{type(exc).__name__}: {exc}")
            except Exception:
                log.exception("polling the store failed")
            await asyncio.sleep(self.poll_interval)

    async def _estop_loop(self) -> None:
        async for item in self._estop_sub:
            if isinstance(item.message, EStop):
                await self.emergency_stop(item.message.reason, source=item.message.source)

    async def emergency_stop(self, reason: str, *, source: str = "") -> None:
        """Interrupt every running device step (the device hosts stop the devices themselves)."""
        self._estop_held = dict(self.directory.states())
        for job_id in list(self._running):
            job = self.jobs.get(job_id)
            spec = job.step_spec if job else None
            if job is None or spec is None or not spec.needs_device or job.state != JobState.RUNNING:
                continue
            await self._interrupt(job, f"emergency stop: {reason}", retry=False, source=source)

    async def _progress_loop(self) -> None:
        """Forward a device's `progress` telemetry as `job.progress` events of the job it works for."""
        async for item in self._progress_sub:
            if not isinstance(item.message, Telemetry):
                continue
            device_id = item.topic.split("/")[3]
            job = self.jobs.get(self.reserved.get(device_id, ""))
            if job is None or job.state != JobState.RUNNING:
                continue
            data = {"job_id": job.id, "campaign_id": job.campaign_id, "step": job.current_step,
                    "step_name": job.step_run.name if job.step_run else None, "device_id": device_id,
                    "progress": item.message.data}
            self._events.put_nowait((job.id, Event(name="job.progress", data=data)))

    async def _publish_loop(self) -> None:
        while True:
            job_id, event = await self._events.get()
            try:
                await self.bus.publish(topics.job_events(job_id), event, qos=1, timeout=5)
            except Exception as exc:  # the journal has it; the bus is only the live view
                log.warning("could not publish %s for %s: %s", event.name, job_id, exc)

    # ---------------------------------------------------------------- admission and approval
    def _kinds_all_simulated(self, job: Job) -> bool:
        states = self.directory.states()
        for kind in {s.kind for s in job.spec.steps if s.needs_device}:
            devices = [s for s in states.values() if s.device.kind == kind]
            if not devices or not all(s.device.simulated for s in devices):
                return False
        return True

    async def _admit(self) -> None:
        for job in [self.jobs[i] for i in sorted(self._in_state[JobState.QUEUED], key=lambda i: self.jobs[i].seq)]:
            campaign = self.campaign(job.campaign_id)
            if campaign.status == "rejected":
                await self._commit(job, "rejected", JobState.CANCELLED, reason="campaign rejected")
                continue
            approved = [a for a in campaign.approvals if a.decision == "approved"]
            if approved:
                job.approvals.append(approved[-1])
                await self._commit(job, "approved", JobState.SCHEDULED, by=approved[-1].by)
                continue
            if not campaign.spec.requires_approval and self.auto_approve_simulated:
                kinds = {s.kind for s in job.spec.steps if s.needs_device}
                known = {s.device.kind for s in self.directory.states().values()}
                if not kinds <= known:
                    continue  # cannot tell yet whether this would run on real devices
                if self._kinds_all_simulated(job):
                    job.approvals.append(Approval(decision="approved", by="auto", simulated_only=True,
                                                  reason="every device of the kinds it needs is simulated"))
                    await self._commit(job, "approved", JobState.SCHEDULED, by="auto", simulated_only=True)
                    continue
            await self._commit(job, "waiting_for_approval", JobState.WAITING_FOR_APPROVAL)
            if campaign.status == "active":
                campaign.status = "waiting_for_approval"
                self.store.save_campaign(campaign, "waiting_for_approval", {})

    # ---------------------------------------------------------------- dispatch
    def _eligible(self, job: Job, step: StepSpec, free: dict[str, DeviceState]) -> list[DeviceState]:
        candidates = [s for s in free.values() if s.device.kind == step.kind]
        if job.simulated_only:
            candidates = [s for s in candidates if s.device.simulated]
        if step.block is None or not candidates:
            return sorted(candidates, key=lambda s: s.device.id)
        device_id = self._block_device(job, step)
        return [s for s in candidates if s.device.id == device_id]

    def _block_device(self, job: Job, step: StepSpec) -> str | None:
        assert step.block is not None
        key = (job.campaign_id, step.kind)
        if key not in self._blocks:
            self._blocks[key] = self.store.block_map(job.campaign_id, step.kind)
        blocks = self._blocks[key]
        states = self.directory.states()
        usable = sorted(s.device.id for s in states.values() if s.device.kind == step.kind
                        and s.status not in UNAVAILABLE and (s.device.simulated or not job.simulated_only))
        current = blocks.get(step.block)
        if current in usable:
            return current
        if not usable:
            return None
        load = {d: 0 for d in usable}
        for block, device in blocks.items():
            if device in load and block != step.block:
                load[device] += 1
        chosen = min(usable, key=lambda d: (load[d], d))
        reason = "first use" if current is None else f"{current} unavailable"
        self.store.map_block(job.campaign_id, step.kind, step.block, chosen, reason)
        blocks[step.block] = chosen
        return chosen

    async def _start_ready(self) -> None:
        t0 = time.perf_counter()
        ready = []
        for job in [self.jobs[i] for i in self._in_state[JobState.SCHEDULED]]:
            if job.id in self._running:
                continue
            spec = job.step_spec
            if spec is None:
                await self._commit(job, "done", JobState.DONE)
            elif spec.kind == "handover":
                await self._start_handover(job, spec)
            elif spec.kind in ("wait", "local"):
                await self._start_inline(job, spec)
            else:
                ready.append(job)
        if not ready:
            return
        states = self.directory.states()
        # After an emergency stop, a device is used again only once it has announced itself anew
        # (its host marks it estopped, and online again when a technician clears it).
        # (Compared by identity, not timestamp: a device host's clock may differ from ours.)
        free = {i: s for i, s in states.items() if s.status == "online" and i not in self.reserved
                and self._estop_held.get(i) is not s}
        if not free:
            return
        for a in assign(ready, free, self.share, self._eligible):
            await self._start_device_step(a.job, a.step, a.device)
        self.stats["dispatch_seconds"] += time.perf_counter() - t0

    def _params(self, job: Job, spec: StepSpec) -> dict[str, Any]:
        params = dict(spec.params)
        known = job.artefacts()
        for param, name in spec.inputs.items():
            if name not in known:
                raise StepError(f"step {spec.name}: input artefact {name!r} does not exist yet")
            params[param] = known[name].uri
        if spec.token_param and job.step_run:
            params[spec.token_param] = job.step_run.token
        return params

    async def _start_device_step(self, job: Job, spec: StepSpec, device: DeviceState) -> None:
        run = job.steps[job.current_step]
        run.attempt += 1
        run.status = "running"
        run.token = f"{job.id}.{job.current_step}.{run.attempt}"
        run.device_id = device.device.id
        run.device_firmware = device.device.firmware
        run.device_driver = device.device.driver
        run.simulated = device.device.simulated
        run.started_at = now()
        run.finished_at, run.error, run.interrupted_reason, run.line = None, None, None, None
        self.reserved[device.device.id] = job.id
        self.stats["dispatched"] += 1
        # Journalled before the command leaves: a crash after this line is reconciled on restart.
        await self._commit(job, "step_started", JobState.RUNNING, step_name=spec.name, device_id=device.device.id,
                           token=run.token, attempt=run.attempt)
        self._spawn(job, self._run_device_step(job, spec, device.device.id))

    def _spawn(self, job: Job, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._running[job.id] = task

        def _done(t: asyncio.Task[None], job_id: str = job.id) -> None:
            if self._running.get(job_id) is t:
                del self._running[job_id]
            if not t.cancelled() and t.exception() is not None:
                log.error("step task of %s crashed", job_id, exc_info=t.exception())
            self._wake.set()

        task.add_done_callback(_done)

    async def _run_device_step(self, job: Job, spec: StepSpec, device_id: str) -> None:
        try:
            params = self._params(job, spec)
            result = await self.executor.run(device_id, spec.action, params, timeout=spec.timeout_s)
        except StepTimeout as exc:
            await self._interrupt(job, f"timeout: {exc}", retry=True)
        except StepError as exc:
            # An emergency stop or a lost device also makes the command fail; give that news a moment
            # to arrive so the step is marked interrupted (recoverable), not failed.
            await asyncio.sleep(ERROR_GRACE_S)
            state = self.directory.states().get(device_id)
            if state is not None and state.status in UNAVAILABLE:
                what = "emergency stop" if state.status == "estopped" else f"device {device_id} is {state.status}"
                await self._interrupt(job, f"{what} on {device_id}: {exc}",
                                      retry=state.status != "estopped")
            else:
                await self._fail_step(job, str(exc))
        else:
            await self._finish_step(job, result)

    async def _reattach(self, job: Job, spec: StepSpec, device_id: str) -> None:
        """After a restart: ask the device what became of the step's token, and act on the answer."""
        assert spec.recall_action and job.step_run and job.step_run.token
        deadline = asyncio.get_running_loop().time() + spec.timeout_s
        unknown_once = False
        while asyncio.get_running_loop().time() < deadline:
            try:
                answer = await self.executor.run(device_id, spec.recall_action,
                                                 {spec.recall_param: job.step_run.token}, timeout=self.recall_timeout)
            except StepTimeout as exc:
                await self._interrupt(job, f"device {device_id} could not report on the step: {exc}", retry=False)
                return
            except StepError:
                answer = {"state": "unknown"}  # it answered, and does not know the token
            state = recall_state(answer)
            if state == "done":
                await self._finish_step(job, dict(answer.get("result") or answer), recovered=True)
                return
            if state == "failed":
                await self._fail_step(job, f"device {device_id} reports the step failed: "
                                           f"{answer.get('error') or answer.get('reason') or answer}")
                return
            if state == "interrupted":
                await self._interrupt(job, f"device {device_id} reports the step interrupted", retry=False,
                                      line=answer.get("line"))
                return
            if state == "unknown":
                if not unknown_once:  # a command still in flight from before the crash may land late
                    unknown_once = True
                    await asyncio.sleep(RECALL_SETTLE_S)
                    continue
                await self._requeue_unstarted(job, device_id)
                return
            await asyncio.sleep(self.poll_interval)
        await self._interrupt(job, "timeout while re-attaching after a restart", retry=False)

    async def _requeue_unstarted(self, job: Job, device_id: str) -> None:
        run = job.steps[job.current_step]
        run.status = "pending"
        self.reserved.pop(device_id, None)
        await self._commit(job, "step_not_started", JobState.SCHEDULED, device_id=device_id,
                           reason="the device never received the command")

    def _artefacts(self, spec: StepSpec, result: dict[str, Any]) -> list[Artefact]:
        out = []
        for i, raw in enumerate(result.pop("artefacts", None) or []):
            if not isinstance(raw, dict):
                raise StepError(f"step {spec.name}: artefacts[{i}] is not an object")
            raw = dict(raw)
            if not raw.get("sha256"):
                path = str(raw.get("uri", "")).removeprefix("file://")
                try:
                    raw["sha256"] = sha256_file(path)
                except OSError as exc:
                    raise StepError(f"step {spec.name}: artefacts[{i}] ({raw.get('name')}) has no sha256 and "
                                    f"{path!r} cannot be read: {exc}") from None
            try:
                out.append(Artefact.model_validate(raw))
            except ValueError as exc:
                raise StepError(f"step {spec.name}: artefacts[{i}] is invalid: {exc}") from None
        return out

    async def _finish_step(self, job: Job, result: dict[str, Any], *, recovered: bool = False) -> None:
        spec = job.step_spec
        run = job.step_run
        assert spec is not None and run is not None
        try:
            artefacts = self._artefacts(spec, result)
        except StepError as exc:
            await self._fail_step(job, str(exc))
            return
        if run.device_id:
            self.reserved.pop(run.device_id, None)
        run.status, run.result, run.artefacts, run.finished_at = "done", result, artefacts, now()
        self._track_specimen(job, spec, run.device_id)
        job.current_step += 1
        if job.cancel_requested:
            new_state, event = JobState.CANCELLED, "cancelled"
            job.reason = job.reason or "cancelled after the running step"
        elif job.current_step >= len(job.spec.steps):
            new_state, event = JobState.DONE, "done"
        elif job.pause_requested:
            new_state, event = JobState.PAUSED, "paused"
        else:
            new_state, event = JobState.SCHEDULED, "step_done"
        await self._commit(job, event, new_state, step_name=spec.name, device_id=run.device_id,
                           artefacts=[a.name for a in artefacts], recovered=recovered)

    def _track_specimen(self, job: Job, spec: StepSpec, device_id: str | None) -> None:
        if job.specimen is None:
            return
        location = spec.specimen_location.format(device=device_id or "") if spec.specimen_location else (
            device_id or job.specimen.location)
        job.specimen.location = location
        job.specimen.history.append(SpecimenEvent(event=spec.specimen_event or spec.name, location=location,
                                                  step=spec.name, device_id=device_id))

    async def _fail_step(self, job: Job, error: str) -> None:
        run = job.step_run
        assert run is not None
        if run.device_id:
            self.reserved.pop(run.device_id, None)
        run.status, run.error, run.finished_at = "failed", error, now()
        job.reason = error
        await self._commit(job, "failed", JobState.FAILED, step_name=run.name, error=error)

    async def _interrupt(self, job: Job, reason: str, *, retry: bool, line: int | None = None,
                         source: str = "") -> None:
        task = self._running.pop(job.id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        run, spec = job.step_run, job.step_spec
        assert run is not None and spec is not None
        if run.device_id:
            self.reserved.pop(run.device_id, None)
        run.status, run.interrupted_reason, run.line = "interrupted", reason, line
        if retry and spec.on_interrupt == "retry":
            run.status = "pending"
            await self._commit(job, "step_retry", JobState.SCHEDULED, step_name=spec.name, reason=reason,
                               device_id=run.device_id)
            return
        job.reason = reason
        await self._commit(job, "interrupted", JobState.INTERRUPTED, step_name=spec.name, reason=reason,
                           device_id=run.device_id, line=line, source=source)

    async def _check_devices(self) -> None:
        """Interrupt steps whose device went offline, faulted or was emergency-stopped."""
        states = self.directory.states()
        for device_id, job_id in list(self.reserved.items()):
            state = states.get(device_id)
            job = self.jobs.get(job_id)
            if state is None or job is None or state.status not in UNAVAILABLE or job.state != JobState.RUNNING:
                continue
            if state.status == "estopped":
                await self._interrupt(job, f"emergency stop on {device_id}", retry=False)
            else:
                await self._interrupt(job, f"device {device_id} went {state.status}: "
                                           f"{state.detail.get('reason', '')}".rstrip(": "), retry=True,
                                      line=state.detail.get("line"))

    # ---------------------------------------------------------------- no-device steps
    async def _start_handover(self, job: Job, spec: StepSpec) -> None:
        used = [r for r in job.steps[:job.current_step] if r.device_id]
        if self.auto_handover_simulated and used and all(r.simulated for r in used):
            await self._complete_handover(job, by="simulation", automatic=True)
        else:
            await self._commit(job, "waiting_for_handover", JobState.WAITING_FOR_HANDOVER, step_name=spec.name)

    async def _complete_handover(self, job: Job, *, by: str, automatic: bool) -> None:
        spec, run = job.step_spec, job.step_run
        assert spec is not None and run is not None
        job.handovers.append(Handover(step=spec.name, by=by, automatic=automatic))
        run.status, run.started_at, run.finished_at = "done", run.started_at or now(), now()
        run.result = {"by": by, "automatic": automatic}
        if job.specimen is not None:
            location = spec.specimen_location or "handed over"
            job.specimen.location = location
            job.specimen.history.append(SpecimenEvent(event=spec.specimen_event or "handed over",
                                                      location=location, step=spec.name))
        job.current_step += 1
        if job.current_step >= len(job.spec.steps):
            new_state = JobState.DONE
        elif job.pause_requested:
            new_state = JobState.PAUSED
        else:
            new_state = JobState.SCHEDULED
        if job.state == new_state == JobState.SCHEDULED:
            await self._commit(job, "handover_done", by=by, automatic=automatic, step_name=spec.name)
        else:
            await self._commit(job, "handover_done", new_state, by=by, automatic=automatic, step_name=spec.name)

    async def _start_inline(self, job: Job, spec: StepSpec) -> None:
        run = job.steps[job.current_step]
        run.attempt += 1
        run.status, run.started_at = "running", now()
        if spec.kind == "wait":
            run.wait_until = now() + float(spec.params["seconds"]) * self.time_scale
        await self._commit(job, "step_started", JobState.RUNNING, step_name=spec.name, wait_until=run.wait_until)
        self._spawn(job, self._run_inline(job, spec))

    async def _run_inline(self, job: Job, spec: StepSpec) -> None:
        run = job.step_run
        assert run is not None
        if spec.kind == "wait":
            await asyncio.sleep(max(0.0, (run.wait_until or 0) - now()))
            await self._finish_step(job, {"waited_s": spec.params["seconds"]})
            return
        action = self.local_actions.get(spec.action)
        if action is None:
            await self._fail_step(job, f"step {spec.name}: no local action {spec.action!r} is registered "
                                       f"(registered: {sorted(self.local_actions) or 'none'})")
            return
        try:
            result = await action(job, self._params(job, spec))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._fail_step(job, f"step {spec.name}: {type(exc).__name__}: {exc}")
            return
        await self._finish_step(job, dict(result or {}))

    # ---------------------------------------------------------------- recovery
    async def _recover(self) -> None:
        """Reconcile jobs that were mid-step when the previous engine stopped or died."""
        for job in [j for j in self.jobs.values() if j.state == JobState.RUNNING]:
            spec, run = job.step_spec, job.step_run
            assert spec is not None and run is not None
            self.store.record("job", job.id, "recovering", {"step": spec.name, "token": run.token,
                                                           "device_id": run.device_id})
            if not spec.needs_device:
                self._spawn(job, self._run_inline(job, spec))  # waits resume; local actions re-run
                continue
            assert run.device_id is not None
            self.reserved[run.device_id] = job.id
            if spec.recall_action:
                self._spawn(job, self._reattach(job, spec, run.device_id))
            else:
                self._spawn(job, self._interrupt_unknown(job, run.device_id))
        self._wake.set()

    async def _interrupt_unknown(self, job: Job, device_id: str) -> None:
        state = self.directory.states().get(device_id)
        detail = state.detail if state else {}
        await self._interrupt(job, f"the controller restarted during this step and {device_id} cannot say what "
                                   f"became of it (device status: {state.status if state else 'unknown'}); "
                                   f"a technician decides: resume re-runs the step, cancel ends the job",
                              retry=False, line=detail.get("line"))
