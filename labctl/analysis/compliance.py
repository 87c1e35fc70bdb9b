"""Machine compliance: how far the frame, grips and load cell give under a force.

Measured once on a rigid bar: the crosshead travel at each force is the machine's own deflection.
Correcting a specimen's curve subtracts it: d_specimen = d_measured - d_machine(F), with d_machine
interpolated linearly in the table and extrapolated with the end segments' slopes (a frame is close
to linear; refusing forces just outside the calibration would lose the break point).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .curves import CsvFormat, CurveFormatError, read_columns_csv


class ComplianceTable(BaseModel):
    """Machine deflection (mm) against force (N), forces strictly increasing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    force_n: tuple[float, ...] = Field(min_length=2)
    displacement_mm: tuple[float, ...] = Field(min_length=2)
    source: str = ""

    @model_validator(mode="after")
    def _monotone(self) -> ComplianceTable:
        if len(self.force_n) != len(self.displacement_mm):
            raise ValueError(f"compliance table {self.source}: {len(self.force_n)} forces but "
                             f"{len(self.displacement_mm)} displacements")
        steps = np.diff(self.force_n)
        if np.any(steps <= 0):
            bad = int(np.argmax(steps <= 0)) + 1
            raise ValueError(f"compliance table {self.source}: forces must increase strictly; data row {bad + 1} "
                             f"({self.force_n[bad]} N) does not exceed the one before ({self.force_n[bad - 1]} N)")
        return self

    @classmethod
    def from_stiffness(cls, stiffness_n_per_mm: float, max_force_n: float = 10_000.0) -> ComplianceTable:
        """A linear frame of the given stiffness (e.g. 762 N/mm for the DIY frame in the reference)."""
        if stiffness_n_per_mm <= 0:
            raise ValueError(f"stiffness_n_per_mm must be positive, got {stiffness_n_per_mm}")
        return cls(force_n=(0.0, max_force_n), displacement_mm=(0.0, max_force_n / stiffness_n_per_mm),
                   source=f"linear {stiffness_n_per_mm} N/mm")

    def machine_displacement(self, force_n: np.ndarray | float) -> np.ndarray:
        """Frame deflection at each force, interpolated, extrapolated linearly outside the table."""
        table_f = np.asarray(self.force_n)
        table_d = np.asarray(self.displacement_mm)
        force = np.asarray(force_n, dtype=float)
        result = np.interp(force, table_f, table_d)
        low_slope = (table_d[1] - table_d[0]) / (table_f[1] - table_f[0])
        high_slope = (table_d[-1] - table_d[-2]) / (table_f[-1] - table_f[-2])
        result = np.where(force < table_f[0], table_d[0] + (force - table_f[0]) * low_slope, result)
        return np.where(force > table_f[-1], table_d[-1] + (force - table_f[-1]) * high_slope, result)

    def correct(self, force_n: np.ndarray, displacement_mm: np.ndarray) -> np.ndarray:
        """Specimen displacement: measured crosshead travel minus the frame's deflection at that force."""
        return np.asarray(displacement_mm, dtype=float) - self.machine_displacement(force_n)


def read_compliance_csv(path: str | Path, fmt: CsvFormat | None = None) -> ComplianceTable:
    """Read a compliance table (force and displacement columns, any layout CsvFormat describes)."""
    curve = read_columns_csv(path, fmt or CsvFormat())
    try:
        return ComplianceTable(force_n=tuple(curve.force_n), displacement_mm=tuple(curve.displacement_mm),
                               source=str(path))
    except ValidationError as exc:
        raise CurveFormatError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
