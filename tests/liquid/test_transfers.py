"""Transfers and formulation plates on PyLabRobot's chatterbox backend, with volume and tip tracking."""

from __future__ import annotations

import pytest

from drivers.liquid_handler.deck import DeckError, DeckLayout, build_deck
from drivers.liquid_handler.steps import Formulation, StepsRefused, WellRef, formulation_plan

A1 = {"labware": "components", "well": "A1"}
A2 = {"labware": "components", "well": "A2"}


def step(src=A1, dst="blend_plate:A1", volume=100.0, **extra):
    labware, well = dst.split(":")
    return {"source": src, "destination": {"labware": labware, "well": well}, "volume": volume, **extra}


async def test_transfer_records_volumes_before_and_after(liquid_handler):
    record = await liquid_handler.run_steps([step(volume=120, mix={"cycles": 2, "volume": 60}),
                                             step(dst="blend_plate:B1", volume=80, tip_policy="reuse")])
    assert record["status"] == "completed"
    first, second = record["steps"]
    assert first["before"] == {"components:A1": 15000.0, "blend_plate:A1": 0.0}
    assert first["after"] == {"components:A1": 14880.0, "blend_plate:A1": 120.0}
    assert second["after"]["components:A1"] == 14800.0 and second["after"]["blend_plate:B1"] == 80.0
    assert first["operations"][0] == "pick up tip tips_300:A1" and first["operations"][-1] == "discard tip"
    assert sum("mix" in op for op in first["operations"]) == 4
    # reuse picks up a tip when none is mounted; the job ends with the tip discarded.
    assert second["operations"][0] == "pick up tip tips_300:B1"
    status = await liquid_handler.status()
    assert status["tips_left"] == 192 - 2 and status["tip_mounted"] is False
    wells = await liquid_handler.wells("blend_plate")
    assert wells["wells"]["A1"]["composition"] == {"component_A": 120.0}


async def test_formulation_plate_has_the_set_ratios(liquid_handler):
    result = await liquid_handler.prepare_formulation({
        "component_a": A1, "component_b": A2, "destination": "blend_plate",
        "percent_b": [10, 20, 30], "total_volume": 200, "replicates": 2})
    plate = {row["well"]: row for row in result["plate_map"]}
    assert list(plate) == ["A1", "B1", "C1", "D1", "E1", "F1"]
    for well, share in zip(plate, [10, 10, 20, 20, 30, 30]):
        assert plate[well]["volume"] == pytest.approx(200)
        assert plate[well]["measured_percent_b"] == pytest.approx(share)
    job = result["job"]
    assert job["status"] == "completed" and len(job["steps"]) == 12
    # A: one tip for all six wells; B: a new tip per well.
    pickups = [op for s in job["steps"] for op in s["operations"] if op.startswith("pick up tip")]
    assert len(pickups) == 1 + 6
    assert job["steps"][-1]["after"]["components:A2"] == pytest.approx(15000 - 2 * (20 + 40 + 60))


def test_formulation_plan_skips_zero_volume_transfers():
    f = Formulation(component_a=WellRef(**A1), component_b=WellRef(**A2), destination="p",
                    percent_b=[0, 100], total_volume=100, mix=None)
    steps, blends = formulation_plan(f)
    assert [(s.source.well, s.destination.well, s.volume) for s in steps] == [("A1", "A1", 100), ("A2", "B1", 100)]
    assert [b.percent_b for b in blends] == [0, 100]
    with pytest.raises(ValueError, match="percent_b\\[0\\] = 120"):
        Formulation(component_a=WellRef(**A1), component_b=WellRef(**A2), destination="p",
                    percent_b=[120], total_volume=100)


@pytest.mark.parametrize("steps, index, reason", [
    ([step(dst="no_such_plate:A1")], 0, "unknown labware 'no_such_plate'"),
    ([step(), step(dst="blend_plate:Q17")], 1, "unknown well Q17 on blend_plate"),
    ([step(volume=450)], 0, "volume 450 µL is beyond the tip (400 µL max)"),
    ([step(volume=300), step(volume=100)], 1, "beyond the well: blend_plate:A1 holds 300 of 360 µL"),
    ([step(src={"labware": "blend_plate", "well": "H12"}, dst="blend_plate:A1", volume=10)], 0,
     "not enough liquid: blend_plate:H12 holds 0 µL"),
    ([step(tip_policy="none")], 0, "missing tip"),
    ([step(volume=50, mix={"cycles": 3, "volume": 80})], 0, "mixing volume 80 µL is more than the 50 µL"),
])
async def test_refused_before_anything_moves(liquid_handler, steps, index, reason):
    before = await liquid_handler.wells("components")
    with pytest.raises(StepsRefused) as caught:
        await liquid_handler.run_steps(steps)
    refusal = caught.value.refusals[0]
    assert refusal.index == index and reason in refusal.reason, refusal
    assert f"step {index}" in str(caught.value)
    assert await liquid_handler.wells("components") == before
    assert (await liquid_handler.wells("blend_plate"))["wells"] == {}
    assert (await liquid_handler.status())["tips_left"] == 192
    assert liquid_handler.backend.operations == 0


async def test_refused_when_tips_run_out(tmp_path):
    from drivers.liquid_handler.device import LiquidHandlerConfig, LiquidHandlerDevice

    deck = tmp_path / "deck.json"
    deck.write_text('{"name": "two_tips", "labware": ['
                    '{"name": "tips", "definition": "hamilton_96_tiprack_300uL", "slot": 1, "tips": ["A1", "B1"]},'
                    '{"name": "src", "definition": "cor_96_wellplate_360uL_Fb", "slot": 2,'
                    ' "contents": {"A1": {"liquid": "water", "volume": 300}}}]}')
    async with LiquidHandlerDevice(LiquidHandlerConfig(deck=str(deck), backend_options={"speed": 1000})) as lh:
        s = {"source": {"labware": "src", "well": "A1"}, "destination": {"labware": "src", "well": "B1"}, "volume": 10}
        with pytest.raises(StepsRefused, match="step 2 .*no tips left"):
            await lh.run_steps([s, s, s])


def test_deck_layout_errors_name_the_place(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "labware": [{"name": "t", "definition": "opentrons_96_tiprack_300ul", "slot": 1}]}')
    with pytest.raises(DeckError, match=r"labware\[0\] t: .*downloads its JSON"):
        build_deck(DeckLayout.load(bad))
    bad.write_text('{"name": "x", "labware": [{"name": "p", "definition": "cor_96_wellplate_360uL_Fb", "slot": 1,'
                   ' "contents": {"A1": {"liquid": "w", "volume": 500}}}]}')
    with pytest.raises(DeckError, match="500 µL does not fit A1"):
        build_deck(DeckLayout.load(bad))
    bad.write_text('{"name": "x",\n "labware": [}')
    with pytest.raises(DeckError, match="bad.json:2: not valid JSON"):
        DeckLayout.load(bad)
    with pytest.raises(DeckError, match="known layouts: .*formulation_ot2"):
        DeckLayout.load("no_such_layout")


def test_backends_are_chosen_by_name():
    from drivers.liquid_handler.backends import SimulatedBackend, make_backend
    from drivers.liquid_handler.device import LiquidHandlerConfig, LiquidHandlerDevice

    assert isinstance(make_backend("simulated", speed=5), SimulatedBackend)
    with pytest.raises(ValueError, match="unknown liquid-handler backend 'tecan9000'; known: simulated, star, ot2"):
        LiquidHandlerDevice(LiquidHandlerConfig(backend="tecan9000"))
    with pytest.raises(ValueError, match="backend ot2 needs options.host"):
        make_backend("ot2")
    with pytest.raises(ValueError, match="speed must be > 0"):
        make_backend("simulated", speed=0)


async def test_formulation_on_a_starlet_deck():
    from drivers.liquid_handler.device import LiquidHandlerConfig, LiquidHandlerDevice

    async with LiquidHandlerDevice(LiquidHandlerConfig(deck="formulation_starlet",
                                                       backend_options={"speed": 1000})) as lh:
        result = await lh.prepare_formulation({"component_a": A1, "component_b": A2, "destination": "blend_plate",
                                               "percent_b": [10, 30], "total_volume": 150})
    assert [round(r["measured_percent_b"]) for r in result["plate_map"]] == [10, 30]
    assert result["job"]["steps"][0]["operations"][0] == "pick up tip tips_300:A1"


def test_hamilton_layout_needs_carriers(tmp_path):
    bad = tmp_path / "star.json"
    bad.write_text('{"name": "x", "deck": "starlet", "labware": [{"name": "p", "definition": '
                   '"cor_96_wellplate_360uL_Fb", "slot": 1}]}')
    with pytest.raises(DeckError, match=r"labware\.0\.p|labware\[0\] p: on a starlet deck give carrier and site"):
        DeckLayout.load(bad)


async def test_successive_formulations_fill_the_next_empty_wells():
    from drivers.liquid_handler import LiquidHandlerConfig, LiquidHandlerDevice

    formulation = {"component_a": {"labware": "components", "well": "A1"},
                   "component_b": {"labware": "components", "well": "A2"},
                   "destination": "blend_plate", "percent_b": [30.0], "total_volume": 200.0}
    async with LiquidHandlerDevice(LiquidHandlerConfig(backend_options={"speed": 1000})) as device:
        first = await device.prepare_formulation(formulation, job_id="s1")
        second = await device.prepare_formulation(formulation, job_id="s2")
        assert [b["well"] for b in first["plate_map"]] == ["A1"]
        assert [b["well"] for b in second["plate_map"]] == ["B1"]
        wells = (await device.wells("blend_plate"))["wells"]
        assert wells["A1"]["volume"] == wells["B1"]["volume"] == 200.0
