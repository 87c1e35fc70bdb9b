"""Reading other rigs' CSV files: column names, separators, decimal marks, units, bad rows."""

from __future__ import annotations

import numpy as np
import pytest
from tensile_synthetic import Bilinear, record

from labctl.analysis import (
    CsvFormat, CurveFormatError, read_compliance_csv, read_curve_csv, write_curve_csv,
)


def test_roundtrip_of_the_native_format(tmp_path):
    curve = record(Bilinear(), n=300, noise_n=0.1)
    back = read_curve_csv(write_curve_csv(curve, tmp_path / "raw.csv"))
    assert np.array_equal(back.force_n, curve.force_n)
    assert np.array_equal(back.displacement_mm, curve.displacement_mm)
    assert np.array_equal(back.time_s, curve.time_s)


def test_european_rig_semicolons_decimal_comma_kn(tmp_path):
    path = tmp_path / "zwick.csv"
    path.write_text("# exported by testXpert\nZeit;Standardweg;Standardkraft\n"
                    "0,0;0,000;0,0000\n0,5;0,010;0,0125\n1,0;0,020;0,0250\n", encoding="utf-8")
    fmt = CsvFormat(force_col="Standardkraft", disp_col="standardweg", time_col="Zeit", sep=";", decimal=",",
                    force_unit="kN")
    curve = read_curve_csv(path, fmt)
    assert curve.force_n == pytest.approx([0.0, 12.5, 25.0])
    assert curve.displacement_mm == pytest.approx([0.0, 0.01, 0.02])
    assert curve.time_s == pytest.approx([0.0, 0.5, 1.0])


def test_open_rig_lines_with_tabs_inches_and_guessed_columns(tmp_path):
    path = tmp_path / "diy.tsv"
    path.write_text("ms\tLoad (N)\tExtension\n0\t0.0\t0.0\n100\t5.0\t0.01\n200\t10.0\t0.02\n", encoding="utf-8")
    curve = read_curve_csv(path, CsvFormat(sep="\t", disp_unit="in", time_unit="ms"))
    assert curve.force_n == pytest.approx([0.0, 5.0, 10.0])
    assert curve.displacement_mm == pytest.approx([0.0, 0.254, 0.508])
    assert curve.time_s == pytest.approx([0.0, 0.1, 0.2])


def test_bad_row_is_reported_with_file_and_line(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("force_N,displacement_mm\n1,0.1\n2,0.2\n\n3,oops\n4,0.4\n", encoding="utf-8")
    with pytest.raises(CurveFormatError, match=r"broken.csv:5: displacement_mm value 'oops' is not a number"):
        read_curve_csv(path)


def test_short_row_and_missing_column_are_reported(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("force_N,displacement_mm\n1,0.1\n2\n", encoding="utf-8")
    with pytest.raises(CurveFormatError, match=r"short.csv:3: 1 fields, expected 2"):
        read_curve_csv(path)
    with pytest.raises(CurveFormatError, match=r"short.csv:1: no force column 'kraft'; the header has"):
        read_curve_csv(path, CsvFormat(force_col="kraft"))


def test_unguessable_columns_and_wrong_separator(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("a;b\n1;2\n3;4\n", encoding="utf-8")
    with pytest.raises(CurveFormatError, match=r"cannot tell which column is force; the header has \['a;b'\]"):
        read_curve_csv(path)


def test_empty_missing_and_nan(tmp_path):
    with pytest.raises(CurveFormatError, match="cannot read"):
        read_curve_csv(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("# nothing\n")
    with pytest.raises(CurveFormatError, match="empty file"):
        read_curve_csv(tmp_path / "empty.csv")
    (tmp_path / "nan.csv").write_text("force,disp\n1,nan\n")
    with pytest.raises(CurveFormatError, match=r"nan.csv:2: disp value 'nan' is not a finite number"):
        read_curve_csv(tmp_path / "nan.csv")


def test_compliance_table_from_csv(tmp_path):
    path = tmp_path / "frame.csv"
    path.write_text("force_N,displacement_mm\n0,0\n500,0.6\n1000,1.3\n")
    table = read_compliance_csv(path)
    assert table.machine_displacement(750.0) == pytest.approx(0.95)
    path.write_text("force_N,displacement_mm\n0,0\n500,0.6\n400,0.7\n")
    with pytest.raises(CurveFormatError, match="forces must increase strictly; data row 3"):
        read_compliance_csv(path)
