"""A long command's ok lost on the wire must not stall the job (found by the HIL plugin's noise test)."""

from __future__ import annotations

from simulators.printer.lab import simulated_printer


async def test_the_lost_ok_of_a_final_m400_is_recovered(tmp_path):
    # Lines 1-2 are the driver's handshake (M115, M155); the job is 3: G28, 4: G1, 5: M400.
    async with simulated_printer("p1", tmp_path, speed=50.0, faults={"drop_ok_after_lines": [5]}) as printer:
        result = await printer.print_gcode("G28\nG1 X10 F3000\nM400", wait=True)
        assert result["state"] == "done"
        assert printer.driver.stats["stall_syncs"] >= 1
        job_lines = [text for _, text in printer.simulator.fw.executed if text != "M105"]  # M105: the sync
        assert job_lines[-3:] == ["G28", "G1 X10 F3000", "M400"]
        assert printer.simulator.report()["oks_dropped"] == 1
