"""Synthetic tensile curves whose results are known in closed form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.analysis import Curve

WIDTH, THICKNESS, GAUGE = 5.0, 2.0, 25.0  # ISO 527-2 1BA
AREA = WIDTH * THICKNESS


@dataclass(frozen=True)
class Bilinear:
    """Linear elastic to (eps_y, sigma_y), then linear hardening with slope H to break at eps_b."""

    modulus: float = 3000.0  # MPa
    yield_stress: float = 40.0  # MPa
    hardening: float = 200.0  # MPa
    break_strain: float = 0.05

    @property
    def yield_strain(self) -> float:
        return self.yield_stress / self.modulus

    @property
    def strength(self) -> float:
        return self.yield_stress + self.hardening * (self.break_strain - self.yield_strain)

    def offset_yield(self, offset: float = 0.002) -> tuple[float, float]:
        e, h, sy, ey = self.modulus, self.hardening, self.yield_stress, self.yield_strain
        strain = (sy - h * ey + offset * e) / (e - h)
        return strain, e * (strain - offset)

    @property
    def toughness(self) -> float:
        return 0.5 * self.yield_stress * self.yield_strain + 0.5 * (self.yield_stress + self.strength) * (
            self.break_strain - self.yield_strain)

    def stress(self, strain: np.ndarray) -> np.ndarray:
        elastic = self.modulus * strain
        plastic = self.yield_stress + self.hardening * (strain - self.yield_strain)
        return np.where(strain <= self.yield_strain, elastic, plastic)


def record(material, n: int = 5000, slack_mm: float = 0.0, noise_n: float = 0.0, seed: int = 0,
           frame_stiffness_n_per_mm: float | None = None, after_break: int = 20) -> Curve:
    """Sample the material to break (n points), then a few points near zero force, as a rig would."""
    rng = np.random.default_rng(seed)
    strain = np.linspace(0.0, material.break_strain, n)
    force = material.stress(strain) * AREA
    disp = strain * GAUGE
    slack = np.linspace(0.0, slack_mm, 50, endpoint=False) if slack_mm else np.empty(0)
    force = np.concatenate([np.zeros(slack.size), force, np.full(after_break, 0.5)])
    disp = np.concatenate([slack, disp + slack_mm,
                           disp[-1] + slack_mm + np.linspace(0.01, 0.2, after_break)])
    if frame_stiffness_n_per_mm is not None:
        disp = disp + force / frame_stiffness_n_per_mm
    if noise_n:
        force = force + rng.normal(0.0, noise_n, force.size)
    time = np.arange(force.size) * 0.01
    return Curve(force_n=force, displacement_mm=disp, time_s=time, source="synthetic")


@dataclass(frozen=True)
class Necking:
    """Elastic to a yield peak, softening with slope -S to a plateau at ``plateau`` x yield, break at eps_b."""

    modulus: float = 2000.0
    yield_stress: float = 35.0
    softening: float = 500.0
    plateau: float = 0.85
    break_strain: float = 0.3

    @property
    def yield_strain(self) -> float:
        return self.yield_stress / self.modulus

    def stress(self, strain: np.ndarray) -> np.ndarray:
        elastic = self.modulus * strain
        softened = np.maximum(self.yield_stress - self.softening * (strain - self.yield_strain),
                              self.plateau * self.yield_stress)
        return np.where(strain <= self.yield_strain, elastic, softened)
