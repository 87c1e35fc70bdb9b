"""Opentrons protocols checked by the real opentrons_simulate, from its own tool environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.opentrons.simulate import ProtocolRefused, simulate_protocol

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols" / "opentrons"


@pytest.mark.parametrize("name, robot", [("ot2_formulation.py", "slot 12"), ("flex_formulation.py", "slot A3")])
async def test_example_protocols_pass(opentrons_simulate, name, robot, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # opentrons must not write a config into anyone's home
    result = await simulate_protocol(PROTOCOLS / name)
    assert result.ok and result.returncode == 0 and result.error is None, result.stderr[-2000:]
    assert "Picking up tip" in result.run_log and f"Dropping tip into Trash Bin on {robot}" in result.run_log
    assert result.steps >= 6 and len(result.sha256) == 64
    assert not (tmp_path / ".opentrons").exists()


async def test_failing_protocol_is_refused_with_opentrons_message(opentrons_simulate):
    result = await simulate_protocol(PROTOCOLS / "fails_no_tip.py")
    assert not result.ok and result.returncode != 0
    assert "TipNotAttachedError" in result.error and result.error_line == 13
    message = str(ProtocolRefused(result))
    assert "fails_no_tip.py:13: refused by opentrons_simulate: " in message
    assert message.endswith("Pipette should have a tip attached, but does not.")


async def test_syntax_error_names_the_line(opentrons_simulate, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('requirements = {"robotType": "OT-2", "apiLevel": "2.16"}\n\ndef run(protocol)\n    pass\n')
    result = await simulate_protocol(bad)
    assert not result.ok and "SyntaxError" in result.error and result.error_line == 3


async def test_missing_tool_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("LABCTL_OPENTRONS_SIMULATE", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="opentrons_simulate not found at .*nope"):
        await simulate_protocol(PROTOCOLS / "ot2_formulation.py")
