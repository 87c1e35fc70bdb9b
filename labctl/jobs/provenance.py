"""Provenance: what every result came from, campaign exports with a manifest of hashes, and verify.

An export is a directory:

    manifest.json          {"format": "labctl-export/1", "campaign_id": ..., "files": {relpath: sha256}}
    campaign.json          the campaign (spec, approvals, status)
    jobs/<job_id>.json     the job's result: step results, artefacts, specimen, provenance
    journal.jsonl          every journal entry of the campaign and its jobs, in order
    artefacts/<job_id>/... copies of every artefact file that exists locally

`verify_export(DIR)` recomputes every hash and names each changed, missing and extra file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from .models import Campaign, Job, JobResult, Provenance, canonical_hash, now, sha256_file

if TYPE_CHECKING:
    from .store import Store

EXPORT_FORMAT = "labctl-export/1"
MANIFEST = "manifest.json"


def provenance(job: Job, campaign: Campaign) -> Provenance:
    gcode = [{"name": a.name, "sha256": a.sha256, "generator": a.meta.get("generator"),
              "generator_version": a.meta.get("generator_version")}
             for a in job.artefacts().values() if a.kind == "gcode"]
    unique_gcode = list({g["sha256"] + g["name"]: g for g in gcode}.values())
    devices, steps = [], []
    for spec, run in zip(job.spec.steps, job.steps):
        if run.device_id:
            devices.append({"step": spec.name, "id": run.device_id, "kind": spec.kind, "driver": run.device_driver,
                            "firmware": run.device_firmware, "simulated": run.simulated})
        steps.append({"name": spec.name, "kind": spec.kind, "action": spec.action, "status": run.status,
                      "attempt": run.attempt, "device_id": run.device_id, "started_at": run.started_at,
                      "finished_at": run.finished_at, "error": run.error, "interrupted_reason": run.interrupted_reason,
                      "line": run.line})
    finished = max((r.finished_at for r in job.steps if r.finished_at), default=None)
    return Provenance(
        job_id=job.id, campaign_id=job.campaign_id, hypothesis_id=campaign.spec.hypothesis_id,
        plan_id=campaign.spec.plan_id, specimen_id=job.spec.specimen_id, design=job.spec.design,
        method=job.spec.method, gcode=unique_gcode, devices=devices, approvals=job.approvals,
        handovers=job.handovers, steps=steps,
        simulated=bool(devices) and all(d["simulated"] for d in devices), submitted_at=job.created_at,
        finished_at=finished)


def job_result(job: Job, campaign: Campaign) -> JobResult:
    return JobResult(job_id=job.id, state=job.state, reason=job.reason,
                     results={spec.name: run.result for spec, run in zip(job.spec.steps, job.steps)
                              if run.status == "done"},
                     artefacts={a.name: a for a in job.artefacts().values()}, specimen=job.specimen,
                     provenance=provenance(job, campaign))


def export_campaign(store: "Store", campaign_id: str, out_dir: str | Path) -> Path:
    """Write the campaign's export directory (refuses a non-empty directory)."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; export into a new directory")
    campaign = store.campaign(campaign_id)
    jobs = store.jobs(campaign_id=campaign_id)
    (out / "jobs").mkdir(parents=True)
    _write(out / "campaign.json", campaign.model_dump(mode="json"))
    ids = {campaign_id} | {j.id for j in jobs}
    with open(out / "journal.jsonl", "w") as f:
        for entry in store.journal():
            if entry.entity_id in ids:
                f.write(entry.model_dump_json() + "\n")
    for job in jobs:
        result = job_result(job, campaign).model_dump(mode="json")
        known = job.artefacts()
        for key in result["artefacts"]:
            art = known[key]
            src = art.path
            if src is not None and src.is_file():
                # content-addressed, so two artefacts with one file name cannot overwrite each other
                dest = out / "artefacts" / job.id / f"{art.sha256[:16]}-{src.name}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not dest.exists():
                    shutil.copy2(src, dest)
                result["artefacts"][key]["export_path"] = str(dest.relative_to(out))
        _write(out / "jobs" / f"{job.id}.json", result)
    files = {str(p.relative_to(out)): sha256_file(p) for p in sorted(out.rglob("*")) if p.is_file()}
    manifest = {"format": EXPORT_FORMAT, "campaign_id": campaign_id, "created_at": now(),
                "hypothesis_id": campaign.spec.hypothesis_id, "plan_id": campaign.spec.plan_id, "files": files}
    manifest["manifest_sha256"] = canonical_hash(files)
    _write(out / MANIFEST, manifest)
    return out


def _write(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


class VerifyReport(BaseModel):
    directory: str
    ok: bool
    checked: int
    changed: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    extra: list[str] = Field(default_factory=list)
    error: str | None = None


def verify_export(directory: str | Path) -> VerifyReport:
    """Recompute every hash in the export's manifest; name each changed, missing and extra file."""
    root = Path(directory)
    manifest_path = root / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files: dict[str, str] = manifest["files"]
        if manifest.get("format") != EXPORT_FORMAT:
            raise ValueError(f"format is {manifest.get('format')!r}, expected {EXPORT_FORMAT!r}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return VerifyReport(directory=str(root), ok=False, checked=0, error=f"{manifest_path}: unreadable manifest: {exc}")
    changed, missing = [], []
    for rel, digest in sorted(files.items()):
        path = root / rel
        if not path.is_file():
            missing.append(rel)
        elif sha256_file(path) != digest:
            changed.append(rel)
    present = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {MANIFEST}
    extra = sorted(present - set(files))
    error = None
    if manifest.get("manifest_sha256") != canonical_hash(files):
        error = "the manifest's own file list was edited (manifest_sha256 does not match)"
    return VerifyReport(directory=str(root), ok=not (changed or missing or extra or error), checked=len(files),
                        changed=changed, missing=missing, extra=extra, error=error)
