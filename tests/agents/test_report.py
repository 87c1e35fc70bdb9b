from __future__ import annotations

import numpy as np

from labctl.agents.capabilities import simulated_lab
from labctl.agents.design import plan
from labctl.agents.hypothesis import parse_hypothesis
from labctl.agents.report import write_report
from labctl.agents.verdict import Observation, analyse


def test_report_has_verdict_plots_data_and_manifest(tmp_path, hypothesis_data):
    h = parse_hypothesis(hypothesis_data)
    p = plan(h, simulated_lab())
    rng = np.random.default_rng(0)
    observations, curves = [], {}
    for run in p.runs:
        modulus = 2600 * (1.4 if run.cell["infill_density"] == 0.8 else 1.0) * np.exp(rng.normal(0, 0.05))
        observations.append(Observation(run_id=run.run_id, cell=run.cell, value=float(modulus)))
        strain = np.linspace(0, 3, 50)
        curves[run.run_id] = (strain, modulus / 100 * strain)
    analysis = analyse(h, observations)
    manifest = tmp_path / "export" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text("{}")
    path = write_report(tmp_path / "report", h, p, analysis, observations, campaign_id="c-1", curves=curves,
                        manifests=[manifest])
    text = path.read_text()
    assert "SIMULATED DATA" in text and "Verdict: SUPPORTED" in text
    assert text.count(p.runs[0].run_id[:-4]) >= len(p.runs)  # every run in the data table
    assert "manifest.json" in text and "labctl verify" in text
    for png in ("effect.png", "curves.png"):
        data = (path.parent / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
