from __future__ import annotations

from collections import Counter

import pytest

from labctl.agents.capabilities import simulated_lab
from labctl.agents.design import plan
from labctl.agents.refusal import Refused
from labctl.agents.stats import power_two_sample


def test_replicates_from_power_and_estimate(hypothesis_data):
    p = plan(hypothesis_data, simulated_lab())
    assert p.design == "contrast" and p.tested_factor == "infill_density"
    # 15 % on a 10 % CV is ~1.47 SD: 9 per group reach 80 % power, 8 do not.
    assert p.replicates_per_cell == p.n_per_group == 9
    assert power_two_sample(8, p.minimum_effect_sd_units, 0.05) < 0.8 <= p.planned_power
    assert p.estimate.specimens == len(p.runs) == 18
    assert p.estimate.duration_hours < p.estimate.print_hours  # three printers work in parallel
    assert p.simulated and not p.warnings


def test_budget_caps_replicates_with_a_warning(hypothesis_data):
    hypothesis_data["budget"]["max_specimens"] = 10
    p = plan(hypothesis_data, simulated_lab())
    assert p.replicates_per_cell == 5 and p.planned_power < 0.8
    assert "budget allows 5" in p.warnings[0]
    hypothesis_data["budget"]["max_hours"] = 0.5
    with pytest.raises(Refused) as err:
        plan(hypothesis_data, simulated_lab())
    assert err.value.refusals[0].field == "budget.max_hours"


def test_blocking_balances_levels_across_printers(hypothesis_data):
    hypothesis_data["factors"].append({"name": "raster_angle", "levels": [0, 90]})
    hypothesis_data["budget"]["max_specimens"] = 80
    p = plan(hypothesis_data, simulated_lab(printers=4))
    assert p.design == "full_factorial" and len(p.cells) == 4
    for level in ("0.4", "0.8"):
        counts = Counter(r.printer for r in p.runs if str(r.cell["infill_density"]) == level)
        assert set(counts) == set(p.printers)
        assert max(counts.values()) - min(counts.values()) <= 1


def test_run_order_is_random_but_reproducible(hypothesis_data):
    a = plan(hypothesis_data, simulated_lab())
    b = plan(hypothesis_data, simulated_lab())
    hypothesis_data["seed"] = 99
    c = plan(hypothesis_data, simulated_lab())
    cells = lambda p: [str(r.cell) for r in p.runs]  # noqa: E731
    assert cells(a) == cells(b) != cells(c)
    assert cells(a) != sorted(cells(a))
    assert sorted(cells(a)) == sorted(cells(c))
    assert len({r.run_id for r in a.runs}) == len(a.runs)


def test_sequential_batches_fill_the_budget(hypothesis_data):
    hypothesis_data["sequential"] = {"batch_size": 2}
    hypothesis_data["budget"]["max_specimens"] = 20
    p = plan(hypothesis_data, simulated_lab())
    assert p.sequential and p.batch_size == 2 and p.batches == 5 and len(p.runs) == 20
    for batch in range(p.batches):
        runs = p.batch_runs(batch)
        assert Counter(str(r.cell["infill_density"]) for r in runs) == {"0.4": 2, "0.8": 2}
    assert [r.order for r in p.runs] == list(range(20))


def test_plan_refuses_outside_the_envelope(hypothesis_data):
    hypothesis_data["fixed"] = {"nozzle_temp": 300}
    with pytest.raises(Refused) as err:
        plan(hypothesis_data, simulated_lab())
    assert err.value.refusals[0].field == "fixed.nozzle_temp"


def test_example_hypotheses_plan():
    from pathlib import Path

    from labctl.agents.hypothesis import load_hypothesis

    for path in sorted((Path(__file__).resolve().parents[2] / "protocols" / "hypotheses").iterdir()):
        p = plan(load_hypothesis(path), simulated_lab())
        assert p.runs and p.estimate.specimens <= load_hypothesis(path).budget.max_specimens


def test_generated_gcode_passes_the_printer_drivers_envelope_or_is_refused(tmp_path, hypothesis_data):
    from labctl.agents.capabilities import LabCapabilities, PrinterCapability
    from labctl.agents.fabrication import Fabrication

    lab = simulated_lab()
    p = plan(hypothesis_data, lab)
    fabrication = Fabrication()
    fabrication.prepare(p, tmp_path, lab)  # FullControl G-code inside a 220 x 220 x 250 printer's envelope
    assert len(list(tmp_path.glob("*.gcode"))) == 2
    # A smaller printer gets G-code centred on its own bed, inside the driver's envelope.
    small = LabCapabilities(printers=[PrinterCapability(id="small", build_volume_mm=(100, 100, 100))], rigs=lab.rigs)
    small_plan = plan(hypothesis_data, small)
    assert small_plan.build_volume_mm == (100, 100, 100)
    Fabrication().prepare(small_plan, tmp_path / "small", small)
    # Limits that changed between planning and submission: the driver's check refuses the G-code
    # (the bed at PLA's 60 C over a printer now announcing 50 C).
    cooler = LabCapabilities(printers=[lab.printers[0].model_copy(update={"max_bed_temp": 50})], rigs=lab.rigs)
    with pytest.raises(Refused) as err:
        Fabrication().prepare(p, tmp_path / "cooler", cooler)
    assert "printer-1" in err.value.refusals[0].limit and "M140" in err.value.refusals[0].reason


def test_mix_step_speaks_the_liquid_handlers_formulation(hypothesis_data):
    from drivers.liquid_handler.steps import Formulation

    from labctl.agents.fabrication import Fabrication, FormulationDeck

    hypothesis_data["factors"] = [{"name": "formulation.B", "levels": [0.1, 0.3]}]
    p = plan(hypothesis_data, simulated_lab())
    deck = FormulationDeck(component_a={"labware": "reservoir", "well": "A1"},
                           component_b={"labware": "reservoir", "well": "A2"}, destination="blend_plate")
    step = Fabrication(formulation_deck=deck).mix_step(p.runs[0])
    formulation = Formulation.model_validate(step.params["formulation"])  # the device's own model accepts it
    assert formulation.percent_b == [100 * p.runs[0].parameters.formulation["B"]]
    assert step.params["job_id"] == p.runs[0].run_id
