"""The job commands as a technician runs them: `labctl` subprocesses against the store of a running engine."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from jobs_lab import campaign, running_lab
from labctl.jobs import JobState, export_campaign



async def labctl(*args: str, db: Path | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "COLUMNS": "200"}
    if db is not None:
        env["LABCTL_DB"] = str(db)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from labctl.cli.app import main; main()", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_approve_and_list_through_the_cli(tmp_path):
    db = tmp_path / "labctl.db"
    async with running_lab(tmp_path) as lab:
        c = await lab.engine.submit(campaign(2, requires_approval=True))
        await lab.engine.wait_until(lambda: all(lab.engine.job(j).state == JobState.WAITING_FOR_APPROVAL
                                                for j in c.job_ids), timeout=5)
        code, out, err = await labctl("jobs", "--json", "--state", "waiting_for_approval", db=db)
        assert code == 0, err
        assert sorted(j["id"] for j in json.loads(out)) == sorted(c.job_ids)
        code, out, err = await labctl("reject", c.id, "--reason", " ", db=db)
        assert code == 2 and "--reason must not be empty" in err
        code, out, err = await labctl("approve", c.id, "--by", "alice", "--json", db=db)
        assert code == 0, err
        answer = json.loads(out)
        assert answer["applied"] and answer["ok"] and answer["message"] == "approved 2 job(s)"
        await lab.engine.wait(c.id, timeout=30)
        code, out, err = await labctl("campaigns", "--json", db=db)
        assert code == 0
        row = json.loads(out)[0]
        assert row["status"] == "finished" and row["states"] == {"done": 2}
        assert row["approvals"][0]["by"] == "alice"
        code, out, err = await labctl("handoff", c.job_ids[0], db=db)
        assert code == 2 and "has finished (done)" in err
        code, out, err = await labctl("approve", "cmp-nope", db=db)
        assert code == 2 and "no job or campaign 'cmp-nope'" in err


async def test_a_tampered_export_is_named_by_verify(tmp_path):
    async with running_lab(tmp_path) as lab:
        c = await lab.engine.submit(campaign(2))
        await lab.engine.wait(c.id, timeout=30)
        export = export_campaign(lab.store, c.id, tmp_path / "export")
    code, out, err = await labctl("verify", str(export), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] and report["checked"] >= 6
    manifest = json.loads((export / "manifest.json").read_text())
    job_file = next(f for f in manifest["files"] if f.startswith("jobs/"))
    artefact = next(f for f in manifest["files"] if f.startswith("artefacts/"))
    data = json.loads((export / job_file).read_text())
    data["results"]["test"]["value"] += 1  # one number nudged
    (export / job_file).write_text(json.dumps(data))
    (export / artefact).unlink()
    (export / "notes.txt").write_text("added later\n")
    code, out, err = await labctl("verify", str(export))
    assert code == 1
    assert f"changed {job_file}" in out and f"missing {artefact}" in out and "extra notes.txt" in out
    code, out, err = await labctl("verify", str(tmp_path / "nowhere"))
    assert code == 2 and "unreadable manifest" in out
