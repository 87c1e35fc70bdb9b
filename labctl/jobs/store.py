"""The job store: SQLite in WAL mode, an append-only journal plus current-state tables.

Why stdlib sqlite3 and not SQLAlchemy or an ORM: the store is five tables and a dozen statements,
and what matters is exact control over transactions (`BEGIN IMMEDIATE`, one commit per state change
with its journal row) and over pragmas (WAL, busy timeout). An ORM would add a dependency and hide
exactly those. Job documents are pydantic models stored as JSON, so the schema stays small and the
model, not the table layout, is the contract.

Durability: WAL with synchronous=NORMAL survives a killed process (`kill -9`) without losing a
committed transaction; only an OS crash or power loss can lose the last few commits, and recovery
then reconciles with the devices anyway. Every state change is written as (journal row, new state)
in ONE transaction, committed BEFORE the engine acts on it (sends a command, publishes an event).

Several processes may open the same file (the engine and `labctl` CLI commands): the CLI never
changes a job directly; it files a request the engine applies (see `add_request`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .models import Campaign, CampaignSpec, Job, JobState, Specimen, StepRun, TERMINAL, canonical_hash, now

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS campaigns (
    id TEXT PRIMARY KEY, idem_key TEXT UNIQUE, submitter TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL REFERENCES campaigns(id), seq INTEGER NOT NULL UNIQUE,
    submitter TEXT NOT NULL, state TEXT NOT NULL, updated REAL NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_campaign ON jobs(campaign_id);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, entity TEXT NOT NULL, entity_id TEXT NOT NULL,
    event TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS journal_entity ON journal(entity_id);
CREATE TABLE IF NOT EXISTS block_map (
    campaign_id TEXT NOT NULL, kind TEXT NOT NULL, block TEXT NOT NULL, device_id TEXT NOT NULL,
    PRIMARY KEY (campaign_id, kind, block));
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, target TEXT NOT NULL, action TEXT NOT NULL,
    args TEXT NOT NULL, processed REAL, ok INTEGER, message TEXT);
"""

# Migrations from version N to N+1, applied in order; version 1 is the schema above.
_MIGRATIONS: dict[int, str] = {}


class StoreError(RuntimeError):
    pass


class NotFound(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


class IdempotencyConflict(StoreError):
    """The idempotency key was used before for a different submission."""


class JournalEntry(BaseModel):
    seq: int
    ts: float
    entity: str
    entity_id: str
    event: str
    data: dict[str, Any]


class Request(BaseModel):
    id: int
    ts: float
    target: str
    action: str
    args: dict[str, Any]
    processed: float | None
    ok: bool | None
    message: str | None


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Store:
    """The persistent job store. Open with `Store(path)` (creates the file) and `close()`, or `with`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, serialised by a lock: the engine calls from its event loop thread only,
        # but the lock keeps a stray executor thread from interleaving transactions.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._migrate()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # -- schema --------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self.transaction() as db:
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version == 0:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                return
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema version {version} is newer than this labctl "
                                 f"understands ({SCHEMA_VERSION}); upgrade labctl")
            while version < SCHEMA_VERSION:
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                version += 1
            db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))

    def schema_version(self) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _journal(db: sqlite3.Connection, entity: str, entity_id: str, event: str, data: dict[str, Any]) -> None:
        db.execute("INSERT INTO journal (ts, entity, entity_id, event, data) VALUES (?, ?, ?, ?, ?)",
                   (now(), entity, entity_id, event, json.dumps(data, default=str)))

    # -- submission ----------------------------------------------------------------------------
    def submit(self, spec: CampaignSpec) -> tuple[Campaign, list[Job], bool]:
        """Store a campaign and its jobs (state queued). Returns (campaign, jobs, created).

        With an idempotency key already used for the same spec, returns the existing campaign and
        created=False; for a different spec, raises IdempotencyConflict."""
        spec_hash = canonical_hash(spec.model_dump(mode="json", exclude={"idempotency_key"}))
        with self.transaction() as db:
            if spec.idempotency_key:
                row = db.execute("SELECT id FROM campaigns WHERE idem_key=?", (spec.idempotency_key,)).fetchone()
                if row:
                    campaign = self._campaign(db, row[0])
                    if campaign.spec_hash != spec_hash:
                        raise IdempotencyConflict(
                            f"idempotency key {spec.idempotency_key!r} was used for campaign {campaign.id} with a "
                            f"different spec; use a new key for a new submission")
                    return campaign, [self._job(db, j) for j in campaign.job_ids], False
            campaign = Campaign(id=new_id("cmp"), spec=spec, spec_hash=spec_hash)
            next_seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            jobs = []
            for i, job_spec in enumerate(spec.jobs):
                job = Job(id=new_id("job"), campaign_id=campaign.id, submitter=spec.submitter,
                          priority=job_spec.priority or spec.priority, seq=next_seq + i, spec=job_spec,
                          steps=[StepRun(name=s.name) for s in job_spec.steps],
                          specimen=Specimen(id=job_spec.specimen_id) if job_spec.specimen_id else None)
                jobs.append(job)
            campaign.job_ids = [j.id for j in jobs]
            db.execute("INSERT INTO campaigns VALUES (?, ?, ?, ?, ?, ?)",
                       (campaign.id, spec.idempotency_key, spec.submitter, campaign.status, campaign.created_at,
                        campaign.model_dump_json()))
            self._journal(db, "campaign", campaign.id, "submitted",
                          {"submitter": spec.submitter, "jobs": len(jobs), "idempotency_key": spec.idempotency_key})
            for job in jobs:
                db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (job.id, job.campaign_id, job.seq, job.submitter, job.state.value, job.updated_at,
                            job.model_dump_json()))
                self._journal(db, "job", job.id, "submitted", {"campaign_id": campaign.id, "seq": job.seq})
            return campaign, jobs, True

    # -- reads ---------------------------------------------------------------------------------
    def _job(self, db: sqlite3.Connection, job_id: str) -> Job:
        row = db.execute("SELECT doc FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id!r} in {self.path}")
        return Job.model_validate_json(row[0])

    def _campaign(self, db: sqlite3.Connection, campaign_id: str) -> Campaign:
        row = db.execute("SELECT doc FROM campaigns WHERE id=?", (campaign_id,)).fetchone()
        if row is None:
            raise NotFound(f"no campaign {campaign_id!r} in {self.path}")
        return Campaign.model_validate_json(row[0])

    def job(self, job_id: str) -> Job:
        with self._lock:
            return self._job(self._db, job_id)

    def campaign(self, campaign_id: str) -> Campaign:
        with self._lock:
            return self._campaign(self._db, campaign_id)

    def kind_of(self, some_id: str) -> str | None:
        """'job', 'campaign' or None for an id."""
        with self._lock:
            if self._db.execute("SELECT 1 FROM jobs WHERE id=?", (some_id,)).fetchone():
                return "job"
            if self._db.execute("SELECT 1 FROM campaigns WHERE id=?", (some_id,)).fetchone():
                return "campaign"
        return None

    def jobs(self, *, campaign_id: str | None = None, states: list[str] | None = None,
             after_seq: int = 0, active_only: bool = False, limit: int | None = None) -> list[Job]:
        sql, args = "SELECT doc FROM jobs WHERE seq > ?", [after_seq]
        if campaign_id:
            sql += " AND campaign_id = ?"
            args.append(campaign_id)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args.extend(states)
        if active_only:
            sql += f" AND state NOT IN ({','.join('?' * len(TERMINAL))})"
            args.extend(s.value for s in TERMINAL)
        sql += " ORDER BY seq"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            return [Job.model_validate_json(r[0]) for r in self._db.execute(sql, args)]

    def max_seq(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()[0])

    def campaigns(self) -> list[Campaign]:
        with self._lock:
            return [Campaign.model_validate_json(r[0])
                    for r in self._db.execute("SELECT doc FROM campaigns ORDER BY created")]

    def state_counts(self, campaign_id: str) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs WHERE campaign_id=? GROUP BY state",
                                    (campaign_id,)).fetchall()
        return dict(rows)

    def journal(self, entity_id: str | None = None, *, since: int = 0) -> list[JournalEntry]:
        sql, args = "SELECT seq, ts, entity, entity_id, event, data FROM journal WHERE seq > ?", [since]
        if entity_id:
            sql += " AND entity_id = ?"
            args.append(entity_id)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [JournalEntry(seq=r[0], ts=r[1], entity=r[2], entity_id=r[3], event=r[4], data=json.loads(r[5]))
                for r in rows]

    # -- writes --------------------------------------------------------------------------------
    def save_job(self, job: Job, event: str, data: dict[str, Any] | None = None) -> None:
        """Journal `event` and store the job's new state, in one transaction."""
        job.updated_at = now()
        with self.transaction() as db:
            self._journal(db, "job", job.id, event, data or {})
            cur = db.execute("UPDATE jobs SET state=?, updated=?, doc=? WHERE id=?",
                             (job.state.value, job.updated_at, job.model_dump_json(), job.id))
            if cur.rowcount != 1:
                raise NotFound(f"no job {job.id!r} in {self.path}")

    def save_campaign(self, campaign: Campaign, event: str, data: dict[str, Any] | None = None) -> None:
        with self.transaction() as db:
            self._journal(db, "campaign", campaign.id, event, data or {})
            db.execute("UPDATE campaigns SET status=?, doc=? WHERE id=?",
                       (campaign.status, campaign.model_dump_json(), campaign.id))

    def record(self, entity: str, entity_id: str, event: str, data: dict[str, Any]) -> None:
        with self.transaction() as db:
            self._journal(db, entity, entity_id, event, data)

    # -- blocking ------------------------------------------------------------------------------
    def block_map(self, campaign_id: str, kind: str) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute("SELECT block, device_id FROM block_map WHERE campaign_id=? AND kind=?",
                                    (campaign_id, kind)).fetchall()
        return dict(rows)

    def map_block(self, campaign_id: str, kind: str, block: str, device_id: str, reason: str) -> None:
        with self.transaction() as db:
            self._journal(db, "campaign", campaign_id, "block_mapped",
                          {"kind": kind, "block": block, "device_id": device_id, "reason": reason})
            db.execute("INSERT OR REPLACE INTO block_map VALUES (?, ?, ?, ?)", (campaign_id, kind, block, device_id))

    # -- requests from other processes (CLI) --------------------------------------------------
    def add_request(self, target: str, action: str, args: dict[str, Any] | None = None) -> int:
        with self.transaction() as db:
            cur = db.execute("INSERT INTO requests (ts, target, action, args) VALUES (?, ?, ?, ?)",
                             (now(), target, action, json.dumps(args or {})))
            self._journal(db, "request", target, f"requested_{action}", args or {})
            return int(cur.lastrowid or 0)

    def _requests(self, where: str, args: tuple[Any, ...]) -> list[Request]:
        with self._lock:
            rows = self._db.execute(f"SELECT id, ts, target, action, args, processed, ok, message FROM requests "
                                    f"WHERE {where} ORDER BY id", args).fetchall()
        return [Request(id=r[0], ts=r[1], target=r[2], action=r[3], args=json.loads(r[4]), processed=r[5],
                        ok=None if r[6] is None else bool(r[6]), message=r[7]) for r in rows]

    def pending_requests(self) -> list[Request]:
        return self._requests("processed IS NULL", ())

    def request(self, request_id: int) -> Request:
        found = self._requests("id = ?", (request_id,))
        if not found:
            raise NotFound(f"no request {request_id}")
        return found[0]

    def finish_request(self, request_id: int, ok: bool, message: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE requests SET processed=?, ok=?, message=? WHERE id=?",
                       (now(), int(ok), message, request_id))


ACTIVE_STATES = [s.value for s in JobState if s not in TERMINAL]
