"""The SQLite store: WAL, schema version, journal, idempotent submission (also across connections)."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from pydantic import ValidationError

from jobs_lab import campaign
from labctl.jobs import (
    IdempotencyConflict, InvalidTransition, JobSpec, JobState, StepSpec, Store, StoreError, check_transition,
)


def test_wal_mode_and_schema_version(tmp_path):
    with Store(tmp_path / "s.db") as store:
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.schema_version() == 1
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        Store(tmp_path / "s.db")


def test_idempotent_submission_and_conflict(tmp_path):
    with Store(tmp_path / "s.db") as store:
        first, jobs, created = store.submit(campaign(3, key="k-1"))
        again, jobs_again, created_again = store.submit(campaign(3, key="k-1"))
        assert created and not created_again
        assert again.id == first.id and [j.id for j in jobs_again] == [j.id for j in jobs]
        with pytest.raises(IdempotencyConflict, match="k-1"):
            store.submit(campaign(4, key="k-1"))
        other, _, created_other = store.submit(campaign(3, key="k-2"))
        assert created_other and other.id != first.id
        assert len(store.campaigns()) == 2 and len(store.jobs()) == 6
        assert [j.seq for j in store.jobs()] == list(range(1, 7))


def test_concurrent_submissions_with_one_key_make_one_campaign(tmp_path):
    path = tmp_path / "s.db"
    Store(path).close()
    ids: list[str] = []

    def submit() -> None:
        with Store(path) as store:  # its own connection, as another process would have
            ids.append(store.submit(campaign(2, key="same"))[0].id)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1 and len(ids) == 8
    with Store(path) as store:
        assert len(store.jobs()) == 2


def test_every_change_is_journalled_with_the_state(tmp_path):
    with Store(tmp_path / "s.db") as store:
        _, jobs, _ = store.submit(campaign(1))
        job = jobs[0]
        job.state = JobState.SCHEDULED
        store.save_job(job, "approved", {"by": "auto"})
        entries = store.journal(job.id)
        assert [e.event for e in entries] == ["submitted", "approved"]
        assert entries[1].data == {"by": "auto"}
        assert store.job(job.id).state == JobState.SCHEDULED


def test_transitions_are_checked():
    check_transition("j", JobState.SCHEDULED, JobState.RUNNING)
    with pytest.raises(InvalidTransition, match="cannot go from done to running"):
        check_transition("j", JobState.DONE, JobState.RUNNING)
    with pytest.raises(InvalidTransition, match="waiting_for_approval"):
        check_transition("j", JobState.WAITING_FOR_APPROVAL, JobState.RUNNING)


def test_bad_job_specs_name_the_step_and_field():
    with pytest.raises(ValidationError, match=r"step 1 \(test\): input curve='mesh'"):
        JobSpec(name="j", steps=[StepSpec(name="print", kind="printer", action="run"),
                                 StepSpec(name="test", kind="rig", action="run", inputs={"curve": "mesh"})])
    with pytest.raises(ValidationError, match="wait step needs params.seconds"):
        StepSpec(name="cond", kind="wait")
    with pytest.raises(ValidationError, match="needs an action"):
        StepSpec(name="print", kind="printer")
    with pytest.raises(ValidationError, match="step names must be unique"):
        JobSpec(steps=[StepSpec(name="a", kind="rig", action="x"), StepSpec(name="a", kind="rig", action="x")])
