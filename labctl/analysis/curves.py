"""Force-displacement curves and reading them from any rig's CSV file.

Other rigs write their own column names, separators, decimal marks and units; ``CsvFormat``
describes them. Every bad row is reported with the file and line it came from.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# Unit -> factor to newtons / millimetres / seconds.
FORCE_UNITS = {"N": 1.0, "kN": 1000.0, "mN": 0.001, "lbf": 4.4482216152605, "kgf": 9.80665}
LENGTH_UNITS = {"mm": 1.0, "m": 1000.0, "um": 0.001, "in": 25.4}
TIME_UNITS = {"s": 1.0, "ms": 0.001, "min": 60.0}

# Names tried, case-insensitively, when a column is not named explicitly.
FORCE_ALIASES = ("force_n", "force", "force (n)", "force [n]", "load_n", "load", "load (n)", "load [n]", "f_n", "f")
DISP_ALIASES = ("displacement_mm", "displacement", "displacement (mm)", "displacement [mm]", "extension_mm",
                "extension", "extension (mm)", "position_mm", "crosshead_mm", "crosshead", "elongation_mm",
                "elongation", "disp_mm", "disp", "mm")
TIME_ALIASES = ("time_s", "time", "time (s)", "time [s]", "t_s", "t", "ms", "time_ms")


class CurveFormatError(ValueError):
    """A curve or table file that cannot be read; the message names the file and line."""


class CsvFormat(BaseModel):
    """How a rig's CSV file is laid out. Column names are matched case-insensitively."""

    model_config = ConfigDict(extra="forbid")

    force_col: str | None = Field(None, description="Force column; None tries common names (force_N, Load, ...).")
    disp_col: str | None = Field(None, description="Displacement column; None tries common names.")
    time_col: str | None = Field(None, description="Time column (optional); None tries common names.")
    sep: str = Field(",", min_length=1, max_length=1, description="Field separator, e.g. ',' ';' or '\\t'.")
    decimal: Literal[".", ","] = Field(".", description="Decimal mark (',' for many European rigs).")
    force_unit: Literal["N", "kN", "mN", "lbf", "kgf"] = "N"
    disp_unit: Literal["mm", "m", "um", "in"] = "mm"
    time_unit: Literal["s", "ms", "min"] = "s"
    comment: str = Field("#", description="Lines starting with this are skipped.")


@dataclass(frozen=True)
class Curve:
    """A recorded test: force (N) against crosshead displacement (mm), optionally time (s)."""

    force_n: np.ndarray
    displacement_mm: np.ndarray
    time_s: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        force = np.asarray(self.force_n, dtype=float)
        disp = np.asarray(self.displacement_mm, dtype=float)
        if force.ndim != 1 or force.shape != disp.shape:
            raise CurveFormatError(f"{self.source or 'curve'}: force and displacement must be 1-D arrays of one "
                                   f"length, got {force.shape} and {disp.shape}")
        if not (np.all(np.isfinite(force)) and np.all(np.isfinite(disp))):
            raise CurveFormatError(f"{self.source or 'curve'}: force and displacement must be finite numbers")
        object.__setattr__(self, "force_n", force)
        object.__setattr__(self, "displacement_mm", disp)
        if self.time_s is not None:
            object.__setattr__(self, "time_s", np.asarray(self.time_s, dtype=float))

    def __len__(self) -> int:
        return len(self.force_n)


def _pick(header: list[str], wanted: str | None, aliases: tuple[str, ...], what: str, where: str,
          required: bool = True) -> int | None:
    lowered = [h.strip().lower() for h in header]
    if wanted is not None:
        if wanted.strip().lower() in lowered:
            return lowered.index(wanted.strip().lower())
        raise CurveFormatError(f"{where}: no {what} column {wanted!r}; the header has {header}")
    for alias in aliases:
        if alias in lowered:
            return lowered.index(alias)
    if required:
        raise CurveFormatError(f"{where}: cannot tell which column is {what}; the header has {header}; "
                               f"name it explicitly (e.g. --{'force' if what == 'force' else 'disp'}-col)")
    return None


def _number(text: str, decimal: str, where: str, column: str) -> float:
    cleaned = text.strip()
    if decimal == ",":
        cleaned = cleaned.replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        raise CurveFormatError(f"{where}: {column} value {text.strip()!r} is not a number") from None
    if not np.isfinite(value):
        raise CurveFormatError(f"{where}: {column} value {text.strip()!r} is not a finite number")
    return value


def read_columns_csv(source: str | Path, fmt: CsvFormat, text: str | None = None) -> Curve:
    """Read force, displacement (and time if present) from CSV text; see read_curve_csv."""
    name = str(source)
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise CurveFormatError(f"{name}: cannot read: {exc.strerror or exc}") from None
    rows = csv.reader(io.StringIO(text), delimiter=fmt.sep)
    header: list[str] | None = None
    force, disp, time = [], [], []
    force_i = disp_i = time_i = None
    for line_no, row in enumerate(rows, start=1):
        if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith(fmt.comment):
            continue
        where = f"{name}:{line_no}"
        if header is None:
            header = row
            force_i = _pick(header, fmt.force_col, FORCE_ALIASES, "force", where)
            disp_i = _pick(header, fmt.disp_col, DISP_ALIASES, "displacement", where)
            time_i = _pick(header, fmt.time_col, TIME_ALIASES, "time", where, required=False)
            continue
        needed = max(i for i in (force_i, disp_i, time_i) if i is not None)
        if len(row) <= needed:
            raise CurveFormatError(f"{where}: {len(row)} fields, expected {len(header)} (separator {fmt.sep!r})")
        force.append(_number(row[force_i], fmt.decimal, where, header[force_i].strip()))
        disp.append(_number(row[disp_i], fmt.decimal, where, header[disp_i].strip()))
        if time_i is not None:
            time.append(_number(row[time_i], fmt.decimal, where, header[time_i].strip()))
    if header is None:
        raise CurveFormatError(f"{name}: empty file (no header line)")
    if len(force) < 2:
        raise CurveFormatError(f"{name}: {len(force)} data rows; a curve needs at least 2")
    return Curve(
        force_n=np.array(force) * FORCE_UNITS[fmt.force_unit],
        displacement_mm=np.array(disp) * LENGTH_UNITS[fmt.disp_unit],
        time_s=np.array(time) * TIME_UNITS[fmt.time_unit] if time_i is not None else None,
        source=name,
    )


def read_curve_csv(path: str | Path, fmt: CsvFormat | None = None) -> Curve:
    """Read a force-displacement curve from a CSV file written by any rig.

    Raises CurveFormatError naming the file and line of the first bad row.
    """
    return read_columns_csv(path, fmt or CsvFormat())


def write_curve_csv(curve: Curve, path: str | Path) -> Path:
    """Write a raw curve (time_s, force_N, displacement_mm) that read_curve_csv reads back unchanged."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if curve.time_s is not None:
            writer.writerow(["time_s", "force_N", "displacement_mm"])
            writer.writerows(zip((repr(float(t)) for t in curve.time_s), (repr(float(f)) for f in curve.force_n),
                                 (repr(float(d)) for d in curve.displacement_mm)))
        else:
            writer.writerow(["force_N", "displacement_mm"])
            writer.writerows(zip((repr(float(f)) for f in curve.force_n),
                                 (repr(float(d)) for d in curve.displacement_mm)))
    return path
