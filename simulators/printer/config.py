"""Configuration of the Marlin simulator: the firmware build, the wire, and the faults to inject."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FaultConfig(BaseModel):
    """Faults to inject. Line numbers are the host's `N` numbers of executed lines."""

    model_config = ConfigDict(extra="forbid")

    bit_error_rate: float = Field(0.0, ge=0, le=1, description=(
        "probability that a line crossing the wire (either direction) has one bit flipped"))
    bit_error_to_firmware: bool = True
    bit_error_to_host: bool = True
    drop_ok_rate: float = Field(0.0, ge=0, le=1, description="probability that an `ok` is never sent")
    drop_ok_after_lines: list[int] = Field(default_factory=list, description="drop the ok of these lines")
    reset_after_line: int | None = Field(None, description="spontaneous reset once this line's ok is on the wire")
    disconnect_after_line: int | None = Field(None, description="USB disconnect once this line's ok is on the wire")
    reconnect_after_s: float = Field(0.5, ge=0, description="real seconds before the port reappears")
    heater_fail_after_line: int | None = Field(None, description="the heater stops heating after this line")
    heater_fail_id: str = Field("E0", pattern="^(E0|bed)$")
    stuck_busy_after_line: int | None = Field(None, description="the next command never finishes (busy forever)")
    seed: int = 1


class SimulatorConfig(BaseModel):
    """A simulated Marlin 2.1 printer. Defaults are Marlin's own defaults unless noted."""

    model_config = ConfigDict(extra="forbid")

    baud: int = Field(250000, gt=0)
    wire_timed: bool = Field(True, description="charge 10 bits a byte of wire time at `baud`")
    usb_latency_s: float = Field(0.0, ge=0, description="added to every transfer, each way")
    rx_buffer: int = Field(128, ge=32, description="serial RX ring in bytes; overflow drops bytes")
    bufsize: int = Field(4, ge=1, description="BUFSIZE command slots")
    max_cmd_size: int = 96
    block_buffer_size: int = 16
    advanced_ok: bool = False
    emergency_parser: bool = True
    host_action_commands: bool = True
    autoreport_temp: bool = True
    keepalive_s: float = Field(2.0, gt=0, description="HOST_KEEPALIVE interval (M113)")
    speed: float = Field(1.0, gt=0, description="simulated seconds per real second")
    thermal_protection: bool = True
    home_time_s: float = 2.0
    bed_level_time_s: float = 10.0
    max_temp_hotend: float = 275.0
    max_temp_bed: float = 120.0
    build_volume_mm: tuple[float, float, float] = (250.0, 210.0, 210.0)
    record_executed: bool = True
    faults: FaultConfig = Field(default_factory=FaultConfig)
