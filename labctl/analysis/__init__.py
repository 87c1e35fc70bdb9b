"""Tensile analysis: curves from any rig, machine compliance, ISO 527 results, exports and plots.

Public API:
  Curve, CsvFormat, CurveFormatError, read_curve_csv, write_curve_csv        (curves)
  ComplianceTable, read_compliance_csv                                       (compliance)
  AnalysisSettings, AnalysisError, TensileResult, TensileAnalysis, analyze, analyze_specimen,
  write_results_json, write_results_csv, read_results_csv, write_stress_strain_csv   (tensile)
  plot_stress_strain                                                         (plots; imported lazily)
"""

from __future__ import annotations

from typing import Any

from .compliance import ComplianceTable, read_compliance_csv
from .curves import Curve, CsvFormat, CurveFormatError, read_curve_csv, write_curve_csv
from .tensile import (
    AnalysisError, AnalysisSettings, TensileAnalysis, TensileResult, analyze, analyze_specimen, read_results_csv,
    write_results_csv, write_results_json, write_stress_strain_csv,
)

__all__ = [
    "AnalysisError", "AnalysisSettings", "ComplianceTable", "Curve", "CsvFormat", "CurveFormatError",
    "TensileAnalysis", "TensileResult", "analyze", "analyze_specimen", "plot_stress_strain", "read_compliance_csv",
    "read_curve_csv",
    "read_results_csv", "write_curve_csv", "write_results_csv", "write_results_json", "write_stress_strain_csv",
]


def __getattr__(name: str) -> Any:
    # matplotlib costs ~0.5 s to import; only plotting callers pay for it.
    if name == "plot_stress_strain":
        from .plots import plot_stress_strain

        return plot_stress_strain
    raise AttributeError(name)
