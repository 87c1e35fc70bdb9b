"""Which ready step gets which free device: fair share between submitters, blocking, simulation gates.

Pure logic over in-memory state (no I/O), so one decision costs microseconds and can be tested alone.

Fairness is start-time fair queuing over submitters: each submitter has a virtual time that grows by
(expected step duration / priority) for every step it is given; the submitter with the smallest
virtual time goes next. A submitter that was idle re-enters at the smallest virtual time of those
waiting, so it cannot bank credit, and a busy one cannot starve it. Inside one submitter, higher
priority first, then the job furthest along (finishing work frees devices and specimens sooner),
then submission order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..bus import DeviceState
from .models import Job, StepSpec


@dataclass(frozen=True)
class Assignment:
    job: Job
    step: StepSpec
    device: DeviceState


class FairShare:
    def __init__(self) -> None:
        self.vtime: dict[str, float] = {}

    def admit(self, submitters: Iterable[str]) -> None:
        active = set(submitters)
        if not active:
            return
        known = [self.vtime[s] for s in active if s in self.vtime]
        floor = min(known) if known else 0.0
        for s in active:
            self.vtime[s] = max(self.vtime.get(s, floor), floor)

    def charge(self, submitter: str, step: StepSpec, priority: int) -> None:
        cost = step.duration_hint_s if step.duration_hint_s else 1.0
        self.vtime[submitter] = self.vtime.get(submitter, 0.0) + cost / max(priority, 1)


def job_order(job: Job) -> tuple[int, int, int]:
    return (-job.priority, -job.current_step, job.seq)


def assign(ready: list[Job], free: dict[str, DeviceState], share: FairShare,
           eligible: Callable[[Job, StepSpec, dict[str, DeviceState]], list[DeviceState]]) -> list[Assignment]:
    """Pair ready jobs (whose current step needs a device) with free devices.

    `eligible(job, step, free)` returns the free devices the step may use (kind, block, simulation
    gate), best first. Returns the assignments in the order they should start."""
    by_submitter: dict[str, list[Job]] = defaultdict(list)
    for job in ready:
        by_submitter[job.submitter].append(job)
    for jobs in by_submitter.values():
        jobs.sort(key=job_order)
    share.admit(by_submitter)
    free = dict(free)
    out: list[Assignment] = []
    while free and by_submitter:
        progressed = False
        for submitter in sorted(by_submitter, key=lambda s: (share.vtime[s], s)):
            jobs = by_submitter[submitter]
            chosen = None
            for i, job in enumerate(jobs):
                step = job.step_spec
                assert step is not None
                devices = eligible(job, step, free)
                if devices:
                    chosen = (i, job, step, devices[0])
                    break
            if chosen is None:
                del by_submitter[submitter]  # nothing of theirs can start on what is free now
                progressed = True
                break
            i, job, step, device = chosen
            jobs.pop(i)
            if not jobs:
                del by_submitter[submitter]
            del free[device.device.id]
            share.charge(submitter, step, job.priority)
            out.append(Assignment(job, step, device))
            progressed = True
            break
        if not progressed:
            break
    return out
