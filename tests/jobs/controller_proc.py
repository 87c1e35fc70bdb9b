"""The controller as its own process, for the kill -9 tests: submit (idempotently), run, report.

    python controller_proc.py --db DB --broker URL --campaign SPEC.json --out RESULT.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from labctl.bus import connect
from labctl.jobs import CampaignSpec, JobEngine, Store


async def main(args: argparse.Namespace) -> None:
    spec = CampaignSpec.model_validate_json(Path(args.campaign).read_text())
    with Store(args.db) as store:
        async with connect(args.broker, client_id="controller") as bus, \
                JobEngine(store, bus, time_scale=args.time_scale, poll_interval=0.05) as engine:
            campaign = await engine.submit(spec)
            print("running", campaign.id, flush=True)
            await engine.wait(campaign.id)
            results = {job_id: engine.result(job_id).model_dump(mode="json") for job_id in campaign.job_ids}
    Path(args.out).write_text(json.dumps(results))
    print("finished", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--campaign", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--time-scale", type=float, default=1.0)
    asyncio.run(main(parser.parse_args()))
