"""Fabrication jobs: the job model, the SQLite store, the engine and scheduler, provenance.

    from labctl.jobs import JobEngine, Store, CampaignSpec, JobSpec, StepSpec

    spec = CampaignSpec(name="stiffness", submitter="agent-a", hypothesis_id="h1", plan_id="p1",
                        jobs=[JobSpec(specimen_id="s1", design={"b_pct": 30}, steps=[
                            StepSpec(name="print", kind="printer", action="print_file",
                                     inputs={"path": "gcode"}, block="A", outputs=["log"]),
                            StepSpec(name="handover", kind="handover"),
                            StepSpec(name="condition", kind="wait", params={"seconds": 600}),
                            StepSpec(name="test", kind="rig", action="run_test", outputs=["curve"])],
                            inputs=[Artefact.from_file("gcode", "gcode", "s1.gcode", generator="fullcontrol")])])
    async with connect(url) as bus, JobEngine(Store("labctl.db"), bus) as engine:
        campaign = await engine.submit(spec)
        await engine.wait(campaign.id)
        result = engine.result(campaign.job_ids[0])   # JobResult: results, artefacts, provenance
"""

from .engine import EngineError, JobEngine, LocalAction
from .executor import BusDirectory, BusExecutor, DeviceDirectory, StepError, StepExecutor, StepTimeout
from .models import (
    Approval, Artefact, Campaign, CampaignSpec, Handover, InvalidTransition, Job, JobResult, JobSpec, JobState,
    Provenance, Specimen, SpecimenEvent, StepRun, StepSpec, TRANSITIONS, check_transition,
)
from .provenance import VerifyReport, export_campaign, job_result, verify_export
from .store import IdempotencyConflict, NotFound, Store, StoreError

__all__ = [
    "Approval", "Artefact", "BusDirectory", "BusExecutor", "Campaign", "CampaignSpec", "DeviceDirectory",
    "EngineError", "Handover", "IdempotencyConflict", "InvalidTransition", "Job", "JobEngine", "JobResult", "JobSpec",
    "JobState", "LocalAction", "NotFound", "Provenance", "Specimen", "SpecimenEvent", "StepError", "StepExecutor",
    "StepRun", "StepSpec", "StepTimeout", "Store", "StoreError", "TRANSITIONS", "VerifyReport", "check_transition",
    "export_campaign", "job_result", "verify_export",
]
