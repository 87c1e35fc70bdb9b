"""A specimen mounted in the simulated rig: force as a function of crosshead travel.

The dogbone between the grips is cut into slices (areas from the trimesh mesh of its specimen
type). Strain localises in the narrow section, whose engineering strain is the state variable;
wider slices follow the loading branch of the same curve at their lower stress, keeping the
plastic strain reached at the highest force. Crosshead travel is slack + specimen elongation +
frame deflection (force / frame stiffness). Tabulated once per specimen, so each ADC sample costs a
binary search. Where the tabulated travel falls (a yield drop or fracture steeper than the frame
can follow) the crosshead jumps to the next point it reaches: the snap-back a real test shows.
"""

from __future__ import annotations

import bisect

import numpy as np

from .material import PrintParams, SpecimenProperties, _FRACTURE_STRAIN, peak_strain, sample_properties, stress_at

_SLICES = 200
_TABLE_POINTS = 6000


class MountedSpecimen:
    """Force (N) at crosshead travel (mm from the mount position) for one specimen."""

    def __init__(self, specimen_type: str, params: PrintParams, seed: int, *, frame_stiffness_n_per_mm: float,
                 slack_mm: float = 0.0, failure: str | None = None, specimen_id: str | None = None) -> None:
        from protocols.specimens import cross_section_areas, get_specimen

        self.spec = get_specimen(specimen_type)
        self.params = params
        self.seed = seed
        self.specimen_id = specimen_id
        self.props: SpecimenProperties = sample_properties(params, seed, failure)  # type: ignore[arg-type]
        self.frame_stiffness = frame_stiffness_n_per_mm
        self.slack_mm = slack_mm
        x, areas = cross_section_areas(self.spec, _SLICES)
        length = self.spec.overall_length_mm
        in_grips = np.abs(x - length / 2) < self.spec.grip_separation_mm / 2
        dx = length / _SLICES
        areas = areas[in_grips]
        narrow_area = float(areas.min())
        narrow = areas <= narrow_area * 1.001
        self.narrow_area_mm2 = narrow_area
        self.narrow_length_mm = float(narrow.sum() * dx)
        outer_areas = areas[~narrow]
        self.elastic_stiffness = self.props.modulus_mpa / float((dx / areas).sum())
        self._build_table(outer_areas, dx)
        self.max_travel = 0.0
        self.broken = False

    def _build_table(self, outer_areas: np.ndarray, dx: float) -> None:
        props = self.props
        end = props.strain_at_break + 2 * _FRACTURE_STRAIN
        knee = min(2 * peak_strain(props), end)
        # Dense where the curve bends (up to twice the peak strain, and around fracture), coarse in drawing.
        strain = np.unique(np.concatenate([np.linspace(0.0, knee, _TABLE_POINTS // 2),
                                           np.linspace(knee, end, _TABLE_POINTS // 2),
                                           np.linspace(props.strain_at_break - 0.001, end, 200)]))
        force = stress_at(props, strain) * self.narrow_area_mm2
        # Loading branch (up to the peak) inverted, for the wider slices at their lower stress.
        branch = np.linspace(0.0, peak_strain(props), 2000)
        branch_stress = stress_at(props, branch)
        highest = np.maximum.accumulate(force)
        outer_stress_max = highest[:, None] / outer_areas[None, :]
        outer_plastic = np.interp(outer_stress_max, branch_stress, branch) - outer_stress_max / props.modulus_mpa
        outer_strain = force[:, None] / outer_areas[None, :] / props.modulus_mpa + outer_plastic
        elongation = self.narrow_length_mm * strain + dx * outer_strain.sum(axis=1)
        travel = self.slack_mm + elongation + force / self.frame_stiffness
        reach = np.maximum.accumulate(travel)
        self._travel = reach.tolist()
        self._force = force.tolist()
        self._rising = np.concatenate([[True], np.diff(reach) > 0]).tolist()
        self.strain_table = strain
        self._end_travel = float(reach[-1])

    def force_at(self, travel_mm: float) -> float:
        """Force at this crosshead travel; the specimen remembers how far it has been pulled."""
        if self.broken:
            return 0.0
        if travel_mm >= self.max_travel:
            self.max_travel = travel_mm
            return self._loading_force(travel_mm)
        # Pulled back: elastic unloading from the furthest point, never into compression (slack grips).
        peak_force = self._loading_force(self.max_travel)
        series = 1 / (1 / self.elastic_stiffness + 1 / self.frame_stiffness)
        return max(0.0, peak_force - series * (self.max_travel - travel_mm))

    def _loading_force(self, travel_mm: float) -> float:
        table = self._travel
        if travel_mm <= self.slack_mm:
            return 0.0
        if travel_mm >= self._end_travel:
            self.broken = True
            return 0.0
        i = bisect.bisect_left(table, travel_mm)
        if i == 0:
            return 0.0
        lo, hi = table[i - 1], table[i]
        if not self._rising[i] or hi <= lo:
            force = self._force[i]
        else:
            w = (travel_mm - lo) / (hi - lo)
            force = self._force[i - 1] + w * (self._force[i] - self._force[i - 1])
        if force <= 0.0 and self._strain_index_past_peak(i):
            self.broken = True
        return max(force, 0.0)

    def _strain_index_past_peak(self, i: int) -> bool:
        return float(self.strain_table[i]) > peak_strain(self.props)


class RigidBar:
    """A steel bar in place of a specimen: what a frame-compliance calibration pulls."""

    def __init__(self, *, frame_stiffness_n_per_mm: float, bar_stiffness_n_per_mm: float = 2.0e5) -> None:
        self.stiffness = 1 / (1 / frame_stiffness_n_per_mm + 1 / bar_stiffness_n_per_mm)
        self.broken = False
        self.specimen_id = "rigid-bar"

    def force_at(self, travel_mm: float) -> float:
        return max(0.0, self.stiffness * travel_mm)
