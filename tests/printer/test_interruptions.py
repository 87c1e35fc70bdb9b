"""Resets, disconnects, thermal runaway, long commands: the job always knows where it stands."""

from __future__ import annotations

import pytest

from drivers.printer import PrinterError
from simulators.printer import FaultConfig

from printer_helpers import arc_gcode, numbered_commands

HANDSHAKE = 3   # N0 M110, N1 M115, N2 M155: the first file line goes out as N3


@pytest.mark.parametrize("fault", ["reset", "disconnect"])
async def test_interrupted_mid_print_reports_exact_line_and_resumes_only_when_confirmed(make_printer, fault):
    gcode = arc_gcode(300, feed_mm_min=3000, heat=True)
    stop_after_file_index = 150
    faults = FaultConfig(**{f"{fault}_after_line": HANDSHAKE + stop_after_file_index, "reconnect_after_s": 0.3})
    async with make_printer(speed=20, faults=faults) as (sim, driver):
        driver.baud = 250000 * 20          # the simulated wire runs 20x faster too
        result = await driver.print_lines(gcode)
        assert result.state == "interrupted"
        assert result.last_executed is not None
        assert result.last_executed.index == stop_after_file_index
        assert result.last_executed.command == gcode[stop_after_file_index]
        executed_before = numbered_commands(sim)
        assert executed_before[-1] == gcode[stop_after_file_index]     # the firmware agrees
        assert f"last line executed: {stop_after_file_index + 1}" in (result.error or "")

        with pytest.raises(PrinterError, match="confirm"):
            await driver.resume_interrupted()
        assert numbered_commands(sim) == executed_before                 # nothing was sent

        resumed = await driver.resume_interrupted(confirm=True)
        assert resumed.state == "done", resumed.error
        executed = numbered_commands(sim)

    after = executed[len(executed_before):]
    remainder = gcode[stop_after_file_index + 1:]
    assert after[-len(remainder):] == remainder                          # continued at the next line
    preamble = after[:-len(remainder)]
    assert "G28 X Y" in preamble and "M109 S200" in preamble and any(c.startswith("G92 Z0.200") for c in preamble)
    file_lines_executed = executed_before[executed_before.index(gcode[0]):] + remainder
    assert file_lines_executed == gcode                                  # each file line exactly once
    assert sim.fw.resets == 1


async def test_thermal_runaway_halts_fails_the_job_and_reports_heaters_off(make_printer):
    gcode = arc_gcode(3000, feed_mm_min=600, heat=True)
    faults = FaultConfig(heater_fail_after_line=HANDSHAKE + 10)
    async with make_printer(speed=40, faults=faults) as (sim, driver):
        driver.baud = 250000 * 40
        result = await driver.print_lines(gcode)
        assert result.state == "failed"
        assert "Thermal Runaway" in (result.error or "")
        assert driver.state == "halted"
        assert driver.temperatures["hotend_target"] == 0 and driver.temperatures["bed_target"] == 0
        assert sim.fw.killed and sim.fw.hotend.target_c == 0 and sim.fw.bed.target_c == 0
        with pytest.raises(PrinterError, match="halted"):
            await driver.send("G28")


async def test_busy_keepalive_during_long_home_and_heat_is_not_a_timeout(make_printer):
    gcode = ["M104 S200", "G28", "M109 S200", "G1 X10 F3000"]
    async with make_printer(speed=4, home_time_s=12.0, keepalive_s=2.0,
                            driver_options={"response_timeout_s": 1.0}) as (sim, driver):
        busy_lines: list[str] = []
        original = driver._on_line
        driver._link._on_line = lambda line: (busy_lines.append(line) if "busy" in line else None, original(line))
        result = await driver.print_lines(gcode)
    assert result.state == "done", result.error
    assert any(line == "echo:busy: processing" for line in busy_lines)
    assert driver.temperatures["hotend"] >= 198


async def test_stuck_busy_firmware_fails_the_job_after_the_busy_limit(make_printer):
    gcode = ["G28", "G1 X10 F3000", "G1 X20"]
    faults = FaultConfig(stuck_busy_after_line=HANDSHAKE)
    async with make_printer(speed=10, faults=faults, driver_options={"busy_limit_s": 1.0}) as (sim, driver):
        result = await driver.print_lines(gcode)
    assert result.state == "failed"
    assert "busy" in (result.error or "")
