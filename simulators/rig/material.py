"""Material model of printed tensile specimens: print parameters and formulation -> properties -> curve.

`true_properties(params)` is the ground truth a hypothesis campaign tries to discover: the expected
(mean) modulus, strength and ductility for the given print parameters and blend. `sample_properties`
draws one specimen's properties around it (seeded scatter); `stress_at` is that specimen's
engineering stress-strain curve. MATERIAL_MODEL.md says which published numbers are reproduced and
which relations are modelling assumptions.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Material = Literal["PLA", "PETG"]
Orientation = Literal["flat", "on_edge", "upright"]
FailureMode = Literal["brittle", "ductile"]


class PrintParams(BaseModel):
    """How a specimen was made: the factors an experiment can vary."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    material: Material = "PLA"
    infill_pct: float = Field(100.0, ge=10.0, le=100.0, description="Infill density, %.")
    raster_angle_deg: float = Field(0.0, ge=0.0, le=90.0,
                                    description="Angle between the rasters and the load axis (+-angle layers).")
    orientation: Orientation = Field("flat", description="Build orientation: flat (XY), on_edge, upright (Z).")
    layer_height_mm: float = Field(0.2, ge=0.05, le=0.4)
    blend_b_pct: float = Field(0.0, ge=0.0, le=50.0,
                               description="Mass fraction of component B in the formulation, %.")


class MaterialProperties(BaseModel):
    """Expected (true) properties for a set of print parameters."""

    model_config = ConfigDict(frozen=True)

    modulus_mpa: float
    tensile_strength_mpa: float
    p_ductile: float = Field(description="Probability that a specimen cold-draws instead of breaking at its peak.")
    brittle_strain_at_break_pct: float
    ductile_strain_at_break_pct: float
    strain_at_break_pct: float = Field(description="Expected strain at break over both failure modes.")
    yield_strength_mpa: float | None = Field(description="Stress at the yield peak for a ductile specimen.")


class SpecimenProperties(BaseModel):
    """One specimen's drawn properties (the true values behind its curve)."""

    model_config = ConfigDict(frozen=True)

    modulus_mpa: float
    tensile_strength_mpa: float
    failure: FailureMode
    strain_at_break: float = Field(description="Engineering strain (not %) where fracture starts.")
    proportional_fraction: float = Field(description="Stress / strength where the curve leaves the linear line.")
    draw_fraction: float = Field(0.85, description="Drawing stress / strength after the yield drop (ductile).")


# Published anchors (shared/reference/tensile-testing.md): the DIY rig, ISO 1BA, 5 mm/min, 100 % infill,
# 0 deg raster, flat. PLA: E 2.68 GPa, UTS 47.4 MPa, 12-103 % (brittle or cold drawing).
# PETG: E 1.63 GPa, UTS 34.8 MPa, 77.1 % elongation.
BASE = {
    "PLA": {"modulus": 2680.0, "strength": 47.4, "p_ductile": 0.5, "ductile_break_pct": 45.0, "ductile_cv": 0.5},
    "PETG": {"modulus": 1630.0, "strength": 34.8, "p_ductile": 1.0, "ductile_break_pct": 77.1, "ductile_cv": 0.113},
}
# Specimen-to-specimen scatter (reference: CV 1-3 % on strength, 5-17 % on modulus).
STRENGTH_CV = 0.02
MODULUS_CV = 0.08

# Rasters as a +-theta laminate of an orthotropic bead (assumed ratios to the 0-degree values).
_TRANSVERSE_STIFFNESS = 0.8
_SHEAR_STIFFNESS = 0.35
_POISSON = 0.35
_TRANSVERSE_STRENGTH = 0.6
_SHEAR_STRENGTH = 0.55

# Orientation ratios to flat: upright from PolyTerra (E 1.62/2.00, UTS 12.2/23.2) and Materiale
# Plastice (UTS 16/33); on-edge from Materiale Plastice at 40/70 % infill (E 2.9/2.4, UTS 47/33).
_UPRIGHT_MODULUS = 0.81
_UPRIGHT_STRENGTH = 0.5
_EDGE_MODULUS = 2.9 / 2.4
_EDGE_STRENGTH = 47.0 / 33.0

# Component B: a stiff additive. Modulus rises linearly, strength and ductility fall (assumption).
BLEND_MODULUS_SLOPE = 1.5      # E x (1 + 1.5 * phi)
BLEND_STRENGTH_SLOPE = 0.3     # UTS x (1 - 0.3 * phi)
BLEND_DUCTILITY_SLOPE = 2.0    # p_ductile x (1 - 2 * phi)


def _infill_factors(infill_pct: float) -> tuple[float, float]:
    # Walls and top/bottom skins carry ~30 % of the section whatever the infill (assumption).
    effective = 0.3 + 0.7 * infill_pct / 100.0
    return effective, effective ** 1.2


def _raster_factors(theta_deg: float) -> tuple[float, float]:
    c2 = math.cos(math.radians(theta_deg)) ** 2
    s2 = 1.0 - c2
    compliance = c2 * c2 + s2 * s2 / _TRANSVERSE_STIFFNESS + c2 * s2 * (1 / _SHEAR_STIFFNESS - 2 * _POISSON)
    tsai_hill = c2 * c2 + c2 * s2 * (1 / _SHEAR_STRENGTH ** 2 - 1) + s2 * s2 / _TRANSVERSE_STRENGTH ** 2
    return 1.0 / compliance, 1.0 / math.sqrt(tsai_hill)


def _orientation_factors(params: PrintParams) -> tuple[float, float]:
    if params.orientation == "upright":
        return _UPRIGHT_MODULUS, _UPRIGHT_STRENGTH
    if params.orientation == "on_edge":
        # The published on-edge advantage was measured at 40/70 % infill; it fades to none at 100 %.
        weight = min(1.0, (100.0 - params.infill_pct) / 45.0)
        return 1 + (_EDGE_MODULUS - 1) * weight, 1 + (_EDGE_STRENGTH - 1) * weight
    return 1.0, 1.0


def _layer_factors(params: PrintParams) -> tuple[float, float]:
    excess = params.layer_height_mm - 0.2
    interlayer = 1.5 if params.orientation == "upright" else 0.5
    return max(0.5, 1 - 0.3 * excess), max(0.4, 1 - interlayer * excess)


def _proportional_fraction(params: PrintParams) -> float:
    # Upright specimens break across layers almost linearly (PolyTerra Z: 0.9 % at 12.2 MPa).
    return 0.8 if params.orientation == "upright" else 0.5


def _peak_strain(modulus: float, strength: float, proportional: float) -> float:
    return strength / modulus * (proportional + _HARDENING_EXPONENT * (1 - proportional))


_HARDENING_EXPONENT = 2.5


def true_properties(params: PrintParams) -> MaterialProperties:
    """The ground truth: expected properties (no scatter) for these print parameters and blend."""
    base = BASE[params.material]
    phi = params.blend_b_pct / 100.0
    infill_e, infill_s = _infill_factors(params.infill_pct)
    raster_e, raster_s = (1.0, 1.0) if params.orientation == "upright" else _raster_factors(params.raster_angle_deg)
    orient_e, orient_s = _orientation_factors(params)
    layer_e, layer_s = _layer_factors(params)
    modulus = base["modulus"] * infill_e * raster_e * orient_e * layer_e * (1 + BLEND_MODULUS_SLOPE * phi)
    strength = base["strength"] * infill_s * raster_s * orient_s * layer_s * (1 - BLEND_STRENGTH_SLOPE * phi)
    if params.orientation == "upright":
        p_ductile = 0.0
    else:
        cos2 = math.cos(math.radians(params.raster_angle_deg)) ** 2
        p_ductile = base["p_ductile"] * cos2 * max(0.0, 1 - BLEND_DUCTILITY_SLOPE * phi)
    brittle = _peak_strain(modulus, strength, _proportional_fraction(params)) * 100
    ductile = base["ductile_break_pct"] * (1 - phi)
    return MaterialProperties(
        modulus_mpa=modulus, tensile_strength_mpa=strength, p_ductile=p_ductile,
        brittle_strain_at_break_pct=brittle, ductile_strain_at_break_pct=ductile,
        strain_at_break_pct=p_ductile * ductile + (1 - p_ductile) * brittle,
        yield_strength_mpa=strength if p_ductile > 0 else None,
    )


def sample_properties(params: PrintParams, seed: int, failure: FailureMode | None = None) -> SpecimenProperties:
    """One specimen's properties: the truth plus seeded scatter; `failure` forces the failure mode."""
    truth = true_properties(params)
    rng = np.random.default_rng(seed)
    sigma_e = math.sqrt(math.log(1 + MODULUS_CV ** 2))
    modulus = truth.modulus_mpa * float(rng.lognormal(-sigma_e ** 2 / 2, sigma_e))
    strength = truth.tensile_strength_mpa * (1 + STRENGTH_CV * float(np.clip(rng.standard_normal(), -3, 3)))
    mode: FailureMode = failure or ("ductile" if rng.random() < truth.p_ductile else "brittle")
    proportional = _proportional_fraction(params)
    peak = _peak_strain(modulus, strength, proportional)
    if mode == "brittle":
        at_break = peak
    else:
        cv = BASE[params.material]["ductile_cv"]
        sigma = math.sqrt(math.log(1 + cv ** 2))
        drawn = truth.ductile_strain_at_break_pct / 100 * float(rng.lognormal(-sigma ** 2 / 2, sigma))
        at_break = float(np.clip(drawn, peak + _NECK_STRAIN + 0.02, 1.05))
    return SpecimenProperties(modulus_mpa=modulus, tensile_strength_mpa=strength, failure=mode,
                              strain_at_break=at_break, proportional_fraction=proportional)


_NECK_STRAIN = 0.03        # strain over which a ductile specimen's stress drops to the drawing stress
_FRACTURE_STRAIN = 0.002   # strain over which the stress of a breaking section falls to zero


def peak_strain(props: SpecimenProperties) -> float:
    return _peak_strain(props.modulus_mpa, props.tensile_strength_mpa, props.proportional_fraction)


def stress_at(props: SpecimenProperties, strain: np.ndarray) -> np.ndarray:
    """Engineering stress (MPa) of the narrow section at engineering `strain` (loading path)."""
    eps = np.asarray(strain, dtype=float)
    modulus, strength = props.modulus_mpa, props.tensile_strength_mpa
    sigma_p = props.proportional_fraction * strength
    eps_p = sigma_p / modulus
    eps_m = peak_strain(props)
    s = np.clip((eps - eps_p) / (eps_m - eps_p), 0.0, 1.0)
    rising = np.where(eps <= eps_p, modulus * eps, sigma_p + (strength - sigma_p) * (1 - (1 - s) ** _HARDENING_EXPONENT))
    if props.failure == "brittle":
        end, level = eps_m, strength
        stress = rising
    else:
        draw = props.draw_fraction * strength
        neck = np.clip((eps - eps_m) / _NECK_STRAIN, 0.0, 1.0)
        smooth = neck * neck * (3 - 2 * neck)
        drawing = draw * (1 + 0.1 * np.clip((eps - eps_m - _NECK_STRAIN) / (props.strain_at_break - eps_m - _NECK_STRAIN),
                                            0.0, 1.0))
        necked = np.where(eps <= eps_m + _NECK_STRAIN, strength - (strength - draw) * smooth, drawing)
        stress = np.where(eps <= eps_m, rising, necked)
        end = props.strain_at_break
        level = draw * 1.1
    fracture = np.clip(1 - (eps - end) / _FRACTURE_STRAIN, 0.0, 1.0)
    return np.where(eps <= end, stress, level * fracture)
