"""Toolpath geometry for a dogbone layer: perimeter loops and raster lines, in specimen coordinates.

Specimen frame (as protocols.specimens): x along the specimen 0..L, y across it, centred on 0.
Raster angle 0 deg = lines along x (the load direction), 90 deg = lines across the specimen.

Offsets are exact erosions of the outline: the region whose every point lies at least ``d`` from the
edge, computed as y_max(x) = min over |x' - x| <= d of h(x') - sqrt(d^2 - (x' - x)^2), where h is the
outline's half-width. That handles the fillet corners without a polygon-clipping library.
"""

from __future__ import annotations

import math

import numpy as np

from protocols.specimens import SpecimenType, width_at

_GRID_MM = 0.02  # sampling of the outline for the erosion; well below any extrusion width


class GcodeError(ValueError):
    """Print parameters that cannot make a part (e.g. too many perimeters for its width, off the bed)."""


def _simplify(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Ramer-Douglas-Peucker on an open polyline: drop points within ``tolerance`` of the chord."""
    keep = np.zeros(len(points), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        chord = points[last] - points[first]
        length = math.hypot(*chord)
        rel = points[first + 1:last] - points[first]
        dist = np.abs(chord[0] * rel[:, 1] - chord[1] * rel[:, 0]) / length if length else np.hypot(*rel.T)
        worst = int(np.argmax(dist))
        if dist[worst] > tolerance:
            split = first + 1 + worst
            keep[split] = True
            stack += [(first, split), (split, last)]
    return points[keep]


def eroded_region(spec: SpecimenType, distance_mm: float, tolerance_mm: float = 0.005) -> np.ndarray:
    """Closed outline (n, 2), counter-clockwise, of the specimen shrunk by ``distance_mm`` all round."""
    length = spec.overall_length_mm
    if distance_mm <= 0:
        raise GcodeError(f"erosion distance must be positive, got {distance_mm}")
    if 2 * distance_mm >= length:
        raise GcodeError(f"{spec.name}: offset {distance_mm} mm leaves nothing of a {length} mm specimen")
    n = int(round(length / _GRID_MM))
    x = np.linspace(0.0, length, n + 1)
    step = x[1] - x[0]
    half = width_at(spec, x) / 2
    reach = int(math.floor(distance_mm / step))
    inside = np.flatnonzero((x >= distance_mm - 1e-9) & (x <= length - distance_mm + 1e-9))
    top = np.full(inside.size, np.inf)
    for k in range(-reach, reach + 1):
        drop = math.sqrt(max(distance_mm ** 2 - (k * step) ** 2, 0.0))
        neighbour = np.clip(inside + k, 0, n)
        top = np.minimum(top, half[neighbour] - drop)
    if top.min() <= 0:
        raise GcodeError(f"{spec.name}: an offset of {distance_mm:.3f} mm closes the "
                            f"{spec.width_mm} mm wide narrow section")
    upper = _simplify(np.column_stack([x[inside], top]), tolerance_mm)
    lower = upper[::-1] * np.array([1.0, -1.0])
    # Counter-clockwise: along the bottom edge left to right, then the top edge right to left.
    return np.vstack([lower[::-1], upper[::-1]])


def perimeter_loops(spec: SpecimenType, count: int, width_mm: float) -> list[np.ndarray]:
    """``count`` closed loops (first point repeated at the end), outermost first.

    Each loop starts at its bottom-left corner, in a gripped end, so the seam stays out of the gauge.
    """
    loops = []
    for i in range(count):
        offset = width_mm / 2 + i * width_mm
        region = eroded_region(spec, offset)
        if np.abs(region[:, 1]).min() < width_mm / 2 - 1e-9:
            raise GcodeError(f"{spec.name}: {count} perimeters of {width_mm} mm do not fit the "
                                f"{spec.width_mm} mm narrow section")
        loops.append(np.vstack([region, region[:1]]))
    return loops


def raster_segments(region: np.ndarray, angle_deg: float, spacing_mm: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Parallel lines at ``angle_deg`` and ``spacing_mm`` clipped to a closed polygon, as (start, end) pairs.

    Lines are centred on the polygon's extent across them, so a symmetric part gets symmetric rasters.
    """
    theta = math.radians(angle_deg)
    along = np.array([math.cos(theta), math.sin(theta)])
    across = np.array([-math.sin(theta), math.cos(theta)])
    offsets = region @ across
    span_lo, span_hi = offsets.min(), offsets.max()
    count = int(math.floor((span_hi - span_lo) / spacing_mm)) + 1
    first = (span_lo + span_hi) / 2 - (count - 1) / 2 * spacing_mm
    start, end = region, np.roll(region, -1, axis=0)
    segments = []
    for c in first + spacing_mm * np.arange(count):
        f0, f1 = start @ across - c, end @ across - c
        crossing = np.flatnonzero((f0 >= 0) != (f1 >= 0))
        if crossing.size < 2:
            continue
        share = f0[crossing] / (f0[crossing] - f1[crossing])
        points = start[crossing] + share[:, None] * (end[crossing] - start[crossing])
        points = points[np.argsort(points @ along)]
        for a, b in zip(points[0::2], points[1::2]):
            if np.hypot(*(b - a)) > 1e-6:
                segments.append((a, b))
    return segments


def order_segments(segments: list[tuple[np.ndarray, np.ndarray]], start_xy: np.ndarray
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Greedy nearest-neighbour order, each segment flipped to start at the end nearer the nozzle."""
    if not segments:
        return []
    a = np.array([s[0] for s in segments])
    b = np.array([s[1] for s in segments])
    left = np.ones(len(segments), dtype=bool)
    here = np.asarray(start_xy, dtype=float)
    ordered = []
    for _ in range(len(segments)):
        da = np.where(left, np.hypot(*(a - here).T), np.inf)
        db = np.where(left, np.hypot(*(b - here).T), np.inf)
        i_a, i_b = int(np.argmin(da)), int(np.argmin(db))
        if da[i_a] <= db[i_b]:
            i, seg = i_a, (a[i_a], b[i_a])
        else:
            i, seg = i_b, (b[i_b], a[i_b])
        left[i] = False
        ordered.append(seg)
        here = seg[1]
    return ordered
