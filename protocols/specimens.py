"""Tensile specimen definitions (ISO 527-2 1A, 1BA, 5A; ASTM D638 I, IV, V) and their geometry.

Coordinates used everywhere in this module (and by the meshes it builds):
  x runs along the specimen, 0 at one end and ``overall_length_mm`` at the other;
  y runs across it, centred on 0 (the outline is symmetric);
  z is the thickness, 0 on the print bed up to ``thickness_mm``.

Dimensions come from /work/shared/reference/tensile-testing.md (ISO 527-2:2012 and ASTM D638-14
tables). End widths are not in that table; they are taken from the standards and marked
``derived`` in each specimen's ``notes``. Fillets are circular arcs tangent to the narrow section;
where a standard gives two radii (ASTM D638 IV: R 14 and outer RO 25; ISO 527-2 5A: r1 8 and r2
12.5) the transition is an S-curve of the inner (concave) arc followed by the outer (convex) arc,
tangent to each other, to the narrow section and to the end. With a single radius the arc meets the
end's edge at an angle, as on the standard drawings.

Public API (used by the rig simulator, the analysis and the specimen G-code generator):
  SpecimenType, SPECIMENS, get_specimen(name), width_at(spec, x_mm), outline_polygon(spec),
  dogbone_mesh(spec_or_name), cross_section_areas(spec_or_name, n, mesh=None),
  effective_length_mm(spec_or_name), check_fits(mesh, build_volume_mm), SpecimenError, DoesNotFitError.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # trimesh is imported lazily: importing it costs ~0.3 s and most users only need numbers
    import trimesh


class SpecimenError(ValueError):
    """A specimen name or geometry that does not exist or cannot be built."""


class DoesNotFitError(SpecimenError):
    """A part larger than the printer's build volume."""


class SpecimenType(BaseModel):
    """One standard dogbone. All lengths in millimetres."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Short key, e.g. 'iso527-1ba'.")
    standard: Literal["ISO 527-2", "ASTM D638"]
    designation: str = Field(description="Type as the standard names it, e.g. '1BA' or 'IV'.")
    overall_length_mm: float = Field(gt=0, description="Overall length (ISO l3, ASTM LO).")
    narrow_length_mm: float = Field(gt=0, description="Length of the narrow parallel section (ISO l1, ASTM L).")
    gauge_length_mm: float = Field(gt=0, description="Gauge length L0 (ISO L0, ASTM G).")
    width_mm: float = Field(gt=0, description="Width of the narrow section (ISO b1, ASTM W).")
    thickness_mm: float = Field(gt=0, description="Thickness (ISO h, ASTM T).")
    grip_separation_mm: float = Field(gt=0, description="Initial distance between grips (ISO L, ASTM D).")
    fillet_radius_mm: float = Field(gt=0, description="Radius of the arc leaving the narrow section (ISO r / r1, ASTM R).")
    outer_fillet_radius_mm: float | None = Field(
        default=None, gt=0, description="Second, convex radius into the end (ISO r2, ASTM RO); None for one arc.")
    end_width_mm: float = Field(gt=0, description="Width of the gripped ends (ISO b2, ASTM WO).")
    notes: str = Field(default="", description="Sources, and which values are derived.")

    @model_validator(mode="after")
    def _consistent(self) -> SpecimenType:
        if self.end_width_mm <= self.width_mm:
            raise ValueError(f"{self.name}: end_width_mm ({self.end_width_mm}) must exceed width_mm ({self.width_mm})")
        if self.gauge_length_mm > self.narrow_length_mm:
            raise ValueError(f"{self.name}: gauge_length_mm ({self.gauge_length_mm}) is longer than the narrow "
                             f"section ({self.narrow_length_mm})")
        step = (self.end_width_mm - self.width_mm) / 2
        if self.outer_fillet_radius_mm is None and self.fillet_radius_mm < step:
            raise ValueError(f"{self.name}: fillet_radius_mm ({self.fillet_radius_mm}) is smaller than the "
                             f"half-width step ({step}); the arc cannot reach the end width")
        if self.end_length_mm <= 0:
            raise ValueError(f"{self.name}: narrow section plus fillets ({self.narrow_length_mm + 2 * self.fillet_length_mm:.2f} mm) "
                             f"do not fit in overall_length_mm ({self.overall_length_mm})")
        if self.grip_separation_mm > self.overall_length_mm:
            raise ValueError(f"{self.name}: grip_separation_mm exceeds overall_length_mm")
        return self

    @property
    def fillet_length_mm(self) -> float:
        """Length along x of one transition from the narrow section to an end."""
        step = (self.end_width_mm - self.width_mm) / 2
        r1 = self.fillet_radius_mm
        if self.outer_fillet_radius_mm is None:
            return math.sqrt(r1 * r1 - (r1 - step) ** 2)
        total = r1 + self.outer_fillet_radius_mm
        return math.sqrt(total * total - (total - step) ** 2)

    @property
    def end_length_mm(self) -> float:
        """Length of one parallel-sided gripped end."""
        return (self.overall_length_mm - self.narrow_length_mm) / 2 - self.fillet_length_mm

    @property
    def narrow_area_mm2(self) -> float:
        """Cross-section of the narrow section, the area the stress is computed on."""
        return self.width_mm * self.thickness_mm

    @property
    def volume_mm3(self) -> float:
        return float(abs(_shoelace(outline_polygon(self))) * self.thickness_mm)


def _iso(name: str, designation: str, **dims: float | None) -> SpecimenType:
    return SpecimenType(name=name, standard="ISO 527-2", designation=designation, **dims)


def _astm(name: str, designation: str, **dims: float | None) -> SpecimenType:
    return SpecimenType(name=name, standard="ASTM D638", designation=designation, **dims)


_TABLE = "Dimensions from ISO 527-2:2012 / ASTM D638-14 as in the shared reference table."

SPECIMENS: dict[str, SpecimenType] = {s.name: s for s in (
    _iso("iso527-1a", "1A", overall_length_mm=170, narrow_length_mm=80, gauge_length_mm=75, width_mm=10,
         thickness_mm=4, grip_separation_mm=115, fillet_radius_mm=24, end_width_mm=20,
         notes=f"{_TABLE} end width b2 = 20 derived from ISO 527-2 Fig. 1 (b2 = 20.0 +- 0.2)."),
    _iso("iso527-1ba", "1BA", overall_length_mm=75, narrow_length_mm=30, gauge_length_mm=25, width_mm=5,
         thickness_mm=2, grip_separation_mm=58, fillet_radius_mm=30, end_width_mm=10,
         notes=f"{_TABLE} end width b2 = 10 derived from ISO 527-2 Annex A (b2 = 10 +- 0.5). With r = 30 "
               "(the minimum) the wide ends start 54 mm apart; the standard allows l2 = 58 +- 2 with r >= 30."),
    _iso("iso527-5a", "5A", overall_length_mm=75, narrow_length_mm=25, gauge_length_mm=20, width_mm=4,
         thickness_mm=2, grip_separation_mm=50, fillet_radius_mm=8, outer_fillet_radius_mm=12.5,
         end_width_mm=12.5,
         notes=f"{_TABLE} end width b2 = 12.5 derived from ISO 527-2 Annex A / ISO 37 (b2 = 12.5 +- 1); "
               "r1 = 8 concave then r2 = 12.5 convex."),
    _astm("astm-d638-i", "I", overall_length_mm=165, narrow_length_mm=57, gauge_length_mm=50, width_mm=13,
          thickness_mm=3.2, grip_separation_mm=115, fillet_radius_mm=76, end_width_mm=19,
          notes=f"{_TABLE} end width WO = 19 derived from ASTM D638 Fig. 1 (WO = 19 + 6.4)."),
    _astm("astm-d638-iv", "IV", overall_length_mm=115, narrow_length_mm=33, gauge_length_mm=25, width_mm=6,
          thickness_mm=3.2, grip_separation_mm=65, fillet_radius_mm=14, outer_fillet_radius_mm=25,
          end_width_mm=19,
          notes=f"{_TABLE} end width WO = 19 derived from ASTM D638 Fig. 1 (type IV WO = 19 + 6.4); "
                "R = 14 concave then RO = 25 convex."),
    _astm("astm-d638-v", "V", overall_length_mm=63.5, narrow_length_mm=9.53, gauge_length_mm=7.62, width_mm=3.18,
          thickness_mm=3.2, grip_separation_mm=25.4, fillet_radius_mm=12.7, end_width_mm=9.53,
          notes=f"{_TABLE} end width WO = 9.53 derived from ASTM D638 Fig. 1 (type V WO = 9.53 + 3.18)."),
)}


def get_specimen(name: str | SpecimenType) -> SpecimenType:
    """The specimen called ``name`` (case-insensitive); a SpecimenType is returned unchanged."""
    if isinstance(name, SpecimenType):
        return name
    key = str(name).strip().lower()
    try:
        return SPECIMENS[key]
    except KeyError:
        raise SpecimenError(f"unknown specimen type {name!r}; valid names: {', '.join(SPECIMENS)}") from None


def width_at(spec: SpecimenType | str, x_mm: float | np.ndarray) -> float | np.ndarray:
    """Width of the outline at ``x_mm`` from one end (ends, fillets, narrow section).

    Accepts a scalar or an array; raises SpecimenError for x outside [0, overall_length_mm].
    """
    spec = get_specimen(spec)
    x = np.asarray(x_mm, dtype=float)
    if np.any(x < -1e-9) or np.any(x > spec.overall_length_mm + 1e-9):
        raise SpecimenError(f"{spec.name}: x_mm must lie in [0, {spec.overall_length_mm}], got "
                            f"{float(x.min())}..{float(x.max())}")
    centre_distance = np.abs(x - spec.overall_length_mm / 2)
    u = np.clip(centre_distance - spec.narrow_length_mm / 2, 0.0, spec.fillet_length_mm)
    half = _fillet_half_width(spec, u)
    half = np.where(centre_distance - spec.narrow_length_mm / 2 >= spec.fillet_length_mm, spec.end_width_mm / 2, half)
    width = 2 * half
    return float(width) if width.ndim == 0 else width


def _fillet_half_width(spec: SpecimenType, u: np.ndarray) -> np.ndarray:
    """Half-width at distance u (0..fillet_length) past the end of the narrow section."""
    half_narrow, half_end = spec.width_mm / 2, spec.end_width_mm / 2
    r1 = spec.fillet_radius_mm
    concave = half_narrow + r1 - np.sqrt(np.maximum(r1 * r1 - u * u, 0.0))
    if spec.outer_fillet_radius_mm is None:
        return concave
    r2 = spec.outer_fillet_radius_mm
    length = spec.fillet_length_mm
    tangent_u = length * r1 / (r1 + r2)
    convex = half_end - r2 + np.sqrt(np.maximum(r2 * r2 - (u - length) ** 2, 0.0))
    return np.where(u <= tangent_u, concave, convex)


def outline_polygon(spec: SpecimenType | str, arc_step_mm: float = 0.25) -> np.ndarray:
    """The closed outline as (n, 2) points, counter-clockwise, without repeating the first point."""
    spec = get_specimen(spec)
    length = spec.overall_length_mm
    half_narrow_len = spec.narrow_length_mm / 2
    fillet = spec.fillet_length_mm
    n_arc = max(8, math.ceil(fillet / arc_step_mm))
    # x positions along the top edge, left to right: the end, fillet, narrow, fillet, end.
    left_fillet = length / 2 - half_narrow_len - fillet + np.linspace(0, fillet, n_arc + 1)
    right_fillet = length / 2 + half_narrow_len + np.linspace(0, fillet, n_arc + 1)
    xs = np.concatenate([[0.0], left_fillet, right_fillet, [length]])
    half = width_at(spec, xs) / 2
    bottom_left_to_right = np.column_stack([xs, -half])
    top_right_to_left = np.column_stack([xs, half])[::-1]
    return np.vstack([bottom_left_to_right, top_right_to_left])


def _shoelace(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


@lru_cache(maxsize=32)
def _mesh_for(spec: SpecimenType) -> trimesh.Trimesh:
    import mapbox_earcut
    import trimesh

    outline = outline_polygon(spec)
    if _shoelace(outline) < 0:
        outline = outline[::-1]
    triangles = mapbox_earcut.triangulate_float64(outline, np.array([len(outline)], dtype=np.uint32))
    faces = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    mesh = trimesh.creation.extrude_triangulation(outline, faces, spec.thickness_mm)
    if not mesh.is_watertight:
        raise SpecimenError(f"{spec.name}: extruded dogbone mesh is not watertight")
    if mesh.volume <= 0:
        mesh.invert()
    mesh.metadata["specimen"] = spec.name
    return mesh


def dogbone_mesh(spec_or_name: SpecimenType | str) -> trimesh.Trimesh:
    """A watertight trimesh of the dogbone lying flat: x in [0, L], y centred, z in [0, thickness]."""
    return _mesh_for(get_specimen(spec_or_name)).copy()


def cross_section_areas(spec_or_name: SpecimenType | str, n: int = 200,
                        mesh: trimesh.Trimesh | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cross-section area (mm^2) at ``n`` stations along x, cut from the mesh with trimesh sections.

    Stations sit at cell centres (x = (i + 0.5) * L / n), so no plane hits an end face. Pass ``mesh``
    to section a mesh other than the nominal dogbone (e.g. one with a defect), in the same frame.
    """
    spec = get_specimen(spec_or_name)
    if n < 1:
        raise SpecimenError(f"n must be >= 1, got {n}")
    if mesh is None:
        x, areas = _nominal_sections(spec, n)
        return x.copy(), areas.copy()
    return _sections(spec, n, mesh)


@lru_cache(maxsize=64)
def _nominal_sections(spec: SpecimenType, n: int) -> tuple[np.ndarray, np.ndarray]:
    return _sections(spec, n, _mesh_for(spec))


def _sections(spec: SpecimenType, n: int, mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    x = (np.arange(n) + 0.5) * spec.overall_length_mm / n
    sections = mesh.section_multiplane(plane_origin=[0.0, 0.0, 0.0], plane_normal=[1.0, 0.0, 0.0], heights=x)
    areas = np.array([0.0 if s is None else sum(abs(_shoelace(loop)) for loop in s.discrete) for s in sections])
    return x, areas


def check_fits(mesh: trimesh.Trimesh, build_volume_mm: tuple[float, float, float] | list[float]) -> None:
    """Refuse (DoesNotFitError) a mesh that is not watertight or whose extents exceed the build volume.

    The part is checked in the orientation given; the error names the axis, the part's extent and the
    printer's limit, and says whether turning it 90 degrees on the bed would fit.
    """
    volume = np.asarray(build_volume_mm, dtype=float)
    if volume.shape != (3,) or np.any(volume <= 0):
        raise SpecimenError(f"build_volume_mm must be three positive numbers (x, y, z), got {build_volume_mm!r}")
    if not mesh.is_watertight:
        raise DoesNotFitError("mesh is not watertight; a slicer cannot print it reliably")
    extents = np.asarray(mesh.extents, dtype=float)
    over = [axis for axis, extent, limit in zip("xyz", extents, volume) if extent > limit + 1e-9]
    if not over:
        return
    detail = "; ".join(f"{axis}: part {extents['xyz'.index(axis)]:.2f} mm > build volume "
                       f"{volume['xyz'.index(axis)]:.2f} mm" for axis in over)
    turned = extents[[1, 0, 2]]
    hint = " (it would fit turned 90 degrees about z)" if np.all(turned <= volume + 1e-9) else ""
    raise DoesNotFitError(f"part does not fit the build volume: {detail}{hint}")


def effective_length_mm(spec_or_name: SpecimenType | str, n: int = 4001) -> float:
    """Length of narrow section that stretches as much as the whole specimen between the grips.

    L_eff = A_narrow * integral(dx / A(x)) over the grip separation (centred). Under elastic load the
    crosshead travel (compliance removed) is F * L_eff / (E * A_narrow), so strain = travel / L_eff
    is the narrow-section strain; dividing by the gauge length overstates strain, by the grip
    separation understates it. After yield the strain localises in the narrow section and no single
    length is exact: this is the usual limitation of crosshead-only strain.
    """
    spec = get_specimen(spec_or_name)
    centre, half_grip = spec.overall_length_mm / 2, spec.grip_separation_mm / 2
    x = np.linspace(centre - half_grip, centre + half_grip, n)
    return float(np.trapezoid(spec.width_mm / width_at(spec, x), x))
