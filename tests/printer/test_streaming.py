"""Streaming over a real PTY: every line executed exactly once, in order, whatever the line noise."""

from __future__ import annotations

import pytest

from simulators.printer import FaultConfig

from printer_helpers import after_handshake, arc_gcode, numbered_commands


@pytest.mark.parametrize("advanced_ok", [False, True], ids=["byte-counting", "advanced-ok"])
async def test_one_percent_bit_errors_both_ways_execute_every_line_once_in_order(make_printer, advanced_ok):
    gcode = arc_gcode(700, feed_mm_min=6000)
    faults = FaultConfig(bit_error_rate=0.01, seed=11 if advanced_ok else 5)
    async with make_printer(advanced_ok=advanced_ok, faults=faults) as (sim, driver):
        assert driver.flow == ("advanced_ok" if advanced_ok else "bytes")
        result = await driver.print_lines(gcode)
        executed = after_handshake(numbered_commands(sim))
    assert result.state == "done", result.error
    assert executed == gcode                      # exactly once, in order
    assert sim.fw.line_errors > 0                  # the noise really hit
    assert sim.bit_flips["to_firmware"] > 0 and sim.bit_flips["to_host"] > 0
    assert result.resends > 0
    assert result.last_executed is not None and result.last_executed.command == gcode[-1]


async def test_clean_stream_keeps_several_lines_in_flight_and_never_overruns(make_printer):
    # 10 mm/s of 0.1 mm segments needs 100 lines/s, a third of what 115200 baud carries: the planner
    # (16 blocks), the 4 command slots and the 128-byte RX buffer all fill up and stay full.
    gcode = arc_gcode(300, feed_mm_min=600)
    async with make_printer(baud=115200, rx_buffer=128, usb_latency_s=0.001) as (sim, driver):
        result = await driver.print_lines(gcode)
    assert result.state == "done"
    assert after_handshake(numbered_commands(sim)) == gcode
    assert sim.fw.rx_dropped_bytes == 0           # never overran the RX buffer although it was full
    assert sim.fw.line_errors == 0
    # The feed rate allows a full planner throughout; a stall of this test process for longer than
    # the ~0.2 s the queues hold (a loaded CI machine) is the only way to starve it.
    assert sim.fw.underruns <= 2


async def test_lost_oks_do_not_stall_the_stream(make_printer):
    gcode = arc_gcode(200, feed_mm_min=3000)
    async with make_printer(faults=FaultConfig(drop_ok_rate=0.02, seed=3)) as (sim, driver):
        result = await driver.print_lines(gcode)
    assert result.state == "done"
    assert sim.fw.oks_dropped > 0
    assert after_handshake(numbered_commands(sim)) == gcode


async def test_one_line_in_flight_fallback_streams_correctly(make_printer):
    gcode = arc_gcode(100)
    async with make_printer(driver_options={"flow": "one"}) as (sim, driver):
        result = await driver.print_lines(gcode)
    assert result.state == "done" and driver.flow == "one"
    assert after_handshake(numbered_commands(sim)) == gcode


async def test_handshake_reads_capabilities_and_reports_degradations(make_printer):
    async with make_printer(emergency_parser=False, advanced_ok=False) as (sim, driver):
        info = driver.firmware
    assert info.name.startswith("Marlin 2.1")
    assert info.has("AUTOREPORT_TEMP") and not info.has("EMERGENCY_PARSER")
    notes = " ".join(info.degradations())
    assert "EMERGENCY_PARSER" in notes and "ADVANCED_OK" in notes


@pytest.mark.parametrize("seed", [21, 22, 23])
async def test_heavy_noise_with_lost_oks_still_executes_each_line_once(make_printer, seed):
    gcode = arc_gcode(250, feed_mm_min=6000)
    faults = FaultConfig(bit_error_rate=0.04, drop_ok_rate=0.01, seed=seed)
    async with make_printer(faults=faults) as (sim, driver):
        result = await driver.print_lines(gcode)
    assert result.state == "done", result.error
    assert after_handshake(numbered_commands(sim)) == gcode
    assert sim.fw.line_errors > 0
