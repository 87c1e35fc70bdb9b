"""A PrusaSlicer-sliced trimesh part printed end to end; the printer as a bus device with an estop."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import trimesh

from drivers.printer import PrinterDevice, check_gcode
from labctl.bus import Command, EStop, connect, topics
from labctl.devicehost import DeviceHost
from simulators.printer import MarlinSimulator, SimulatorConfig

from printer_helpers import arc_gcode, numbered_commands


def slice_part(tmp_path: Path) -> Path:
    part = trimesh.creation.box(extents=(16.0, 10.0, 1.2))
    part.apply_translation((0, 0, 0.6))
    stl = tmp_path / "part.stl"
    part.export(stl)
    gcode = tmp_path / "part.gcode"
    slicer = shutil.which("prusa-slicer")
    assert slicer, "prusa-slicer is a declared dependency of this project (apt-get install prusa-slicer)"
    subprocess.run([slicer, "--export-gcode", "-o", str(gcode), str(stl)], check=True, capture_output=True, timeout=120)
    return gcode


async def test_prusaslicer_gcode_prints_end_to_end(tmp_path, make_printer):
    gcode_file = slice_part(tmp_path)
    lines = gcode_file.read_text().splitlines()
    commands = [command for _, command in check_gcode(lines)]
    assert any(c.startswith("M109") for c in commands) and sum(c.startswith("G1") for c in commands) > 100
    async with make_printer(speed=50, home_time_s=2.0) as (sim, driver):
        driver.baud = 250000 * 50
        result = await driver.print_file(gcode_file)
        executed = numbered_commands(sim)
    assert result.state == "done", result.error
    assert result.lines == len(commands)
    assert executed[-len(commands):] == commands
    assert sim.fw.hotend.temp_c > 150                     # it really heated (M109 waited)


async def test_printer_device_over_the_bus_obeys_estop(tmp_path):
    link = tmp_path / "bus-printer"
    url = f"memory://printer-{tmp_path.name}"
    async with MarlinSimulator(SimulatorConfig(baud=250000, home_time_s=0.2), link=link) as sim:
        device = PrinterDevice("printer-1", str(link), baud=250000, simulated=True)
        async with device, DeviceHost.connect(url, device), connect(url, client_id="controller") as bus:
            async with bus.subscribe(topics.device_telemetry("printer-1", "+")) as telemetry:
                status = await bus.request(topics.device_commands("printer-1"), Command(action="status"), timeout=5)
                assert status.ok and status.result["state"] == "idle"

                refused = await bus.request(topics.device_commands("printer-1"),
                                            Command(action="send_line", params={"line": "M500"}), timeout=5)
                assert not refused.ok and "EEPROM" in refused.error

                gcode = "\n".join(arc_gcode(5000, feed_mm_min=3000))
                started = await bus.request(topics.device_commands("printer-1"),
                                            Command(action="print_gcode", params={"gcode": gcode, "name": "arcs"}),
                                            timeout=5)
                assert started.ok and started.result["started"]
                streams = set()
                while "progress" not in streams:
                    item = await telemetry.get(timeout=5)
                    streams.add(item.message.stream)
                    if item.message.stream == "progress":
                        assert item.message.data["lines_total"] == 5005 and "eta_s" in item.message.data

                await bus.publish(topics.ESTOP, EStop(reason="test", source="controller"))
                for _ in range(200):
                    if sim.fw.killed and device.driver.state == "halted":
                        break
                    await asyncio.sleep(0.01)
                assert sim.fw.killed
                assert device.driver.job.state == "halted"
                status = await bus.request(topics.device_commands("printer-1"), Command(action="status"), timeout=5)
                assert status.result["state"] == "halted"
    assert len(numbered_commands(sim)) < 5000


async def test_simulated_printer_helper_gives_a_connected_device(tmp_path):
    from simulators.printer.lab import simulated_printer

    async with simulated_printer("printer-9", tmp_path, speed=20, home_time_s=0.5) as device:
        assert device.info.firmware.startswith("Marlin") and device.info.simulated
        result = await device.print_gcode("G28\nG1 X10 Y10 F3000\nM400", wait=True)
        assert result["state"] == "done"
        assert device.simulator.executed_commands[-3:] == ["G28", "G1 X10 Y10 F3000", "M400"]
        assert (await device.home(axes="XY"))["homed"] == "XY"
        moved = await device.jog(x=5.0, feedrate=1200)
        assert moved["target"]["x"] == 5.0
        report = await device.simulator_report()
        assert report["executed_count"] >= 6 and report["planner_underruns"] == 0 and "executed" not in report
