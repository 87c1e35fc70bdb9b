"""The wire: damaged and lost frames are counted exactly; identify, version check, tare and calibration."""

from __future__ import annotations

import pytest

from drivers.rig import FirmwareMismatch, RigDriver, RigError, RigTestParams
from drivers.rig.protocol import LineError, checksum, parse_line
from firmware.rig import rigctl, rigproto
from simulators.rig import PrintParams, RigSimConfig, RigSimulator


def test_host_and_firmware_checksums_agree() -> None:
    line = rigproto.frame(12, 3456, 789, -1011, 12.5).rstrip("\n")
    assert parse_line(line).force_n == 12.5
    assert rigproto.crc16("123456789") == 0x29B1              # CRC-16/CCITT-FALSE check value
    assert checksum("123456789") == "29B1"
    with pytest.raises(LineError, match="bad checksum") as exc:
        parse_line(line.replace("12.5000", "12.5001"))
    assert exc.value.is_frame


async def test_corrupted_and_dropped_frames_are_counted(rig_factory) -> None:
    async with rig_factory(corrupt_every=40, drop_every=55) as (sim, driver):
        sim.mount(PrintParams(), failure="brittle")
        curve = await driver.run_test(RigTestParams(speed_mm_min=5, preload_n=2))
        corrupted, dropped = sim.hw.frames_corrupted, sim.hw.frames_dropped
    assert corrupted > 10 and dropped > 10
    assert curve.link.bad_checksums == corrupted
    assert curve.link.bad_frames == corrupted
    assert curve.link.missing_frames == corrupted + dropped
    assert curve.points == sim.hw.frames_sent - corrupted - dropped
    assert not curve.complete
    assert curve.end_reason == "break"


async def test_a_lost_last_frame_is_still_counted(rig_factory) -> None:
    # END carries the next sequence number, so even a missing final frame shows up.
    async with rig_factory(drop_every=1) as (sim, driver):
        curve = await driver.run_test(RigTestParams(speed_mm_min=60, max_extension_mm=0.05, tare=False))
    assert curve.points == 0
    assert curve.link.missing_frames == sim.hw.frames_dropped > 0


async def test_identify_reports_firmware_and_calibration(rig_factory) -> None:
    async with rig_factory() as (sim, driver):
        identity = driver.identity
    assert identity.name == "labctl-rig" and identity.version == rigctl.VERSION and identity.proto == 1
    assert identity.scale_counts_per_n == pytest.approx(1030.0)
    assert identity.steps_per_mm == 3200 and identity.adc_hz == 200


async def test_unsupported_firmware_version_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(rigctl, "VERSION", "2.0.0")
    async with RigSimulator(RigSimConfig(speed=10, adc_hz=200)) as sim:
        with pytest.raises(FirmwareMismatch, match="2.0.0"):
            async with RigDriver(sim.port_path):
                pass


async def test_unreachable_port_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(RigError, match="cannot open rig port"):
        await RigDriver(str(tmp_path / "no-such-port")).open()


async def test_tare_and_calibrate_with_a_known_mass(rig_factory) -> None:
    async with rig_factory(calibrated=False, noise_n=0.02) as (sim, driver):
        assert driver.identity.calibration_mass_g == 0
        await driver.tare(64)
        with pytest.raises(RigError, match="no load seen"):
            await driver.calibrate(500, 16)
        sim.hang_mass(2000)
        await driver.calibrate(2000, 64)
        assert driver.identity.calibration_mass_g == 2000
        assert driver.identity.scale_counts_per_n == pytest.approx(1030.0, rel=0.002)
        sim.hang_mass(500)
        await driver.command("PING")
        status = await driver.status()
        assert float(status["force"]) == pytest.approx(0.5 * 9.80665, abs=0.1)
