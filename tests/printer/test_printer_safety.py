"""Envelope refusals, emergency stop during a full-speed stream, cancel."""

from __future__ import annotations

import asyncio
import time

import pytest

from drivers.printer import EnvelopeError, PrinterLimits, check_gcode

from printer_helpers import arc_gcode, numbered_commands


@pytest.mark.parametrize("line, reason", [
    ("M500", "EEPROM"), ("M502", "factory"), ("M997", "firmware update"), ("M303 E0 S200 C8", "autotun"),
    ("M112", "emergency stop"), ("M104 S320", "hotend 320"), ("M190 S150", "bed 150"),
    ("G1 X300 Y10", "X=300.00"), ("G1 Z250", "Z=250.00"), ("G1 X10 F60000", "feed rate"),
])
def test_envelope_names_the_line_and_reason(line, reason):
    lines = ["; sliced", "G28", "G90", "M104 S200", line, "G1 X5"]
    with pytest.raises(EnvelopeError) as refused:
        check_gcode(lines, PrinterLimits(), source="part.gcode")
    violation = refused.value.violations[0]
    assert violation.line == 5
    assert reason in violation.reason
    assert "part.gcode refused: line 5" in str(refused.value)


def test_envelope_follows_relative_moves_and_g92():
    ok = ["G28", "G91", *["G1 X20"] * 12, "G90", "G92 X0", "G1 X10"]
    assert len(check_gcode(ok)) == len(ok)
    with pytest.raises(EnvelopeError, match="line 15: .G1 X20.: X=260.00"):
        check_gcode(["G28", "G91", *["G1 X20"] * 13])


async def test_refused_file_sends_nothing_to_the_printer(make_printer):
    gcode = arc_gcode(50) + ["M500"]
    async with make_printer() as (sim, driver):
        await asyncio.sleep(0.05)
        bytes_before, executed_before = sim.bytes_in, list(sim.fw.executed)
        with pytest.raises(EnvelopeError) as refused:
            await driver.print_lines(gcode, source="bad.gcode")
        await asyncio.sleep(0.1)
        assert refused.value.violations[0].line == len(gcode)
        assert sim.bytes_in == bytes_before and sim.fw.executed == executed_before
        assert driver.job is None


async def test_emergency_stop_during_full_speed_stream_halts_at_once(make_printer):
    gcode = arc_gcode(5000, feed_mm_min=12000)
    async with make_printer(baud=250000, usb_latency_s=0.001) as (sim, driver):
        await driver.print_lines(gcode, wait=False)
        while driver.job.acked < 300:
            await asyncio.sleep(0.01)
        called = time.monotonic()
        driver.emergency_stop()
        assert await driver.wait_halted(timeout=2.0)
        result = await driver.wait_job()
        executed_at_halt = len(sim.fw.executed)
        await asyncio.sleep(0.2)
        assert len(sim.fw.executed) == executed_at_halt           # nothing runs after the halt
    assert result.state == "halted"
    assert sim.fw.killed and sim.fw.halts[0]["reason"] == "M112"
    halt = sim.halt_times[0]
    assert halt["t_monotonic"] - called < 0.5                    # generous: speed targets live in bench/
    assert len(numbered_commands(sim)) < len(gcode)
    assert sim.fw.hotend.target_c == 0


async def test_emergency_stop_without_emergency_parser_still_halts(make_printer):
    gcode = arc_gcode(3000, feed_mm_min=12000)
    async with make_printer(emergency_parser=False) as (sim, driver):
        assert any("EMERGENCY_PARSER" in note for note in driver.firmware.degradations())
        await driver.print_lines(gcode, wait=False)
        while driver.job.acked < 100:
            await asyncio.sleep(0.01)
        driver.emergency_stop()
        assert await driver.wait_halted(timeout=5.0)
    assert sim.fw.killed


async def test_cancel_stops_sending_and_turns_heaters_and_motors_off(make_printer):
    gcode = ["M104 S200", "M140 S60"] + arc_gcode(2000, feed_mm_min=1200)
    async with make_printer() as (sim, driver):
        await driver.print_lines(gcode, wait=False)
        while driver.job.acked < 50:
            await asyncio.sleep(0.01)
        await driver.cancel()
        result = await driver.wait_job()
        executed = numbered_commands(sim)
    assert result.state == "cancelled"
    assert executed[-4:] == ["M104 S0", "M140 S0", "M107", "M84"]
    assert len(executed) < len(gcode)
    assert sim.fw.hotend.target_c == 0 and sim.fw.bed.target_c == 0


async def test_pause_holds_the_stream_and_resume_continues(make_printer):
    gcode = arc_gcode(600, feed_mm_min=6000)
    async with make_printer() as (sim, driver):
        await driver.print_lines(gcode, wait=False)
        while driver.job.acked < 100:
            await asyncio.sleep(0.005)
        driver.pause()
        await asyncio.sleep(0.3)
        held = len(numbered_commands(sim))
        await asyncio.sleep(0.3)
        assert len(numbered_commands(sim)) == held and driver.job.state == "paused"
        driver.resume()
        result = await driver.wait_job()
    assert result.state == "done"
    assert numbered_commands(sim)[-len(gcode):] == gcode
