"""Pydantic models of the rig driver: firmware identity, test parameters, link statistics, raw curve."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FirmwareIdentity(BaseModel):
    name: str
    version: str
    proto: int
    scale_counts_per_n: float
    zero_counts: int
    calibration_mass_g: float = Field(description="Mass of the last calibration; 0 means the factory scale.")
    steps_per_mm: int
    adc_hz: float

    @property
    def label(self) -> str:
        return f"{self.name} {self.version} (proto {self.proto})"


class RigTestParams(BaseModel):
    """What START needs: speeds, preload and end-of-test criteria, in the rig's own units."""

    model_config = ConfigDict(extra="forbid")

    speed_mm_min: float = Field(5.0, gt=0, description="Crosshead speed after the preload.")
    preload_n: float = Field(0.0, ge=0, description="Force that ends the preload phase; 0 skips it.")
    preload_speed_mm_min: float = Field(1.0, gt=0)
    preload_max_mm: float = Field(10.0, gt=0, description="Travel allowed to find the preload.")
    speed2_mm_min: float = Field(0.0, ge=0, description="Speed after switch_mm of extension; 0 = keep speed.")
    switch_mm: float = Field(0.0, ge=0)
    break_arm_n: float = Field(10.0, ge=0, description="Peak force that arms break detection.")
    break_drop_fraction: float = Field(0.2, ge=0, le=1,
                                       description="Break when force falls to this fraction of the peak.")
    max_extension_mm: float = Field(100.0, gt=0)
    force_limit_n: float | None = Field(None, gt=0, description="Firmware force limit for this test.")
    tare: bool = Field(True, description="Tare the load cell before starting.")

    @model_validator(mode="after")
    def _switch_needs_speed(self) -> RigTestParams:
        if self.switch_mm > 0 and self.speed2_mm_min == 0:
            raise ValueError("switch_mm is set but speed2_mm_min is 0")
        return self

    def start_line(self) -> str:
        return ("START " + " ".join([
            f"speed={self.speed_mm_min:g}", f"preload={self.preload_n:g}", f"pspeed={self.preload_speed_mm_min:g}",
            f"pmax={self.preload_max_mm:g}", f"speed2={self.speed2_mm_min:g}", f"switch={self.switch_mm:g}",
            f"arm={self.break_arm_n:g}", f"drop={self.break_drop_fraction:g}", f"maxext={self.max_extension_mm:g}"]))


class LinkStats(BaseModel):
    """What the host saw on the wire; nothing lost or damaged goes unrecorded."""

    frames: int = 0
    bad_checksums: int = 0
    bad_frames: int = Field(0, description="Frame lines rejected (bad checksum or malformed).")
    malformed: int = 0
    seq_gaps: int = Field(0, description="Places where the sequence number jumped.")
    missing_frames: int = Field(0, description="Frames never received (sum of the jumps).")
    restarts: int = Field(0, description="Sequence numbers going backwards (the firmware rebooted).")

    def minus(self, before: LinkStats) -> LinkStats:
        return LinkStats(**{k: getattr(self, k) - getattr(before, k) for k in LinkStats.model_fields})


class RawCurve(BaseModel):
    """One test as the rig measured it: crosshead displacement from the start position and force."""

    time_s: list[float]
    displacement_mm: list[float]
    force_n: list[float]
    end_reason: str = Field(description="break, max_extension, stop, preload_not_reached, or fault:<reason>.")
    fault: str | None = None
    peak_force_n: float
    preload_displacement_mm: float | None = Field(None, description="Where the preload was reached.")
    link: LinkStats
    firmware: FirmwareIdentity
    params: RigTestParams
    specimen_id: str | None = None
    started_at: float
    complete: bool = Field(description="True when no frame was missing or damaged.")

    @property
    def points(self) -> int:
        return len(self.force_n)

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["time_s", "displacement_mm", "force_n"])
            for row in zip(self.time_s, self.displacement_mm, self.force_n):
                writer.writerow([f"{row[0]:.6f}", f"{row[1]:.6f}", f"{row[2]:.4f}"])
        return path

    def metadata(self) -> dict[str, Any]:
        return self.model_dump(exclude={"time_s", "displacement_mm", "force_n"})

    def write_metadata(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.metadata(), indent=2, default=str))
        return path
