"""The pytest plugin's fixtures, used as a lab's own hardware-in-the-loop tests would use them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from labctl.bus import Command, topics
from labctl.registry import DeviceRegistry

GCODE = "\n".join(["G28", "G90", "M83"] + [f"G1 X{10 + i * 0.5:.1f} Y20 E0.02 F3000" for i in range(300)] + ["M400"])


async def test_printer_with_line_noise_executes_every_line_once(labctl_sim):
    printer = await labctl_sim.printer("printer-1", faults={"bit_error_rate": 0.01, "seed": 3})
    async with labctl_sim.client() as bus:
        reply = await bus.request(topics.device_commands("printer-1"),
                                  Command(action="print_gcode", params={"gcode": GCODE, "wait": True}), timeout=120)
        assert reply.ok, reply.error
        assert reply.result["resends"] > 0  # the noise was real
        report = await bus.request(topics.device_commands("printer-1"), Command(action="simulator_report"))
    executed = [c for c in printer.simulator.executed_commands if c.startswith("G1 X")]
    assert executed == [line for line in GCODE.splitlines() if line.startswith("G1 X")]
    assert sum(report.result["bit_flips"].values()) > 0 and report.result["executed_count"] >= len(GCODE.splitlines())


async def test_rig_with_corrupted_frames_counts_them(labctl_sim):
    sim, _device = await labctl_sim.rig("rig-1", corrupt_every=40, adc_hz=200)
    async with labctl_sim.client() as bus:
        reply = await bus.request(topics.device_commands("rig-1"), Command(
            action="run_test", params={"method": "iso527-5", "specimen_id": "S1", "specimen": "iso527-1ba"}), timeout=300)
    assert reply.ok, reply.error
    link = reply.result["link"]
    assert link["bad_checksums"] > 0 and link["frames"] > 100


async def test_whole_lab_fixture_and_a_liquid_handler(labctl_sim):
    lab = await labctl_sim.lab(printers=2)
    extra = await labctl_sim.liquid_handler("liquid-2")
    async with labctl_sim.client() as bus, DeviceRegistry(bus) as registry:
        for device_id in ("printer-1", "printer-2", "rig-1", "liquid-1", "liquid-2"):
            state = await registry.wait_for(device_id, "online", timeout=30)
            assert state.device.simulated
    assert lab.engine is not None and extra.info.kind == "liquid_handler"


def test_a_users_test_file_gets_the_fixtures_from_the_entry_point(tmp_path):
    test_file = tmp_path / "test_my_protocol.py"
    test_file.write_text(textwrap.dedent("""
        from labctl.bus import Command, topics

        async def test_my_protocol_homes_the_printer(labctl_sim):
            printer = await labctl_sim.printer("my-printer")
            async with labctl_sim.client() as bus:
                reply = await bus.request(topics.device_commands("my-printer"), Command(action="home"), timeout=60)
            assert reply.ok
            assert any(c.startswith("G28") for c in printer.simulator.executed_commands)
    """))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto",
                             str(test_file)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
