"""Specimen definitions: dimensions, outline, meshes, sections and the build-volume check."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.specimens import (
    SPECIMENS, DoesNotFitError, SpecimenError, SpecimenType, check_fits, cross_section_areas, dogbone_mesh,
    get_specimen, width_at,
)

# (overall, narrow, gauge, width, thickness, grip separation, fillet R) from the shared reference table.
REFERENCE = {
    "astm-d638-i": (165, 57, 50, 13, 3.2, 115, 76),
    "astm-d638-iv": (115, 33, 25, 6, 3.2, 65, 14),
    "astm-d638-v": (63.5, 9.53, 7.62, 3.18, 3.2, 25.4, 12.7),
    "iso527-1a": (170, 80, 75, 10, 4, 115, 24),
    "iso527-1ba": (75, 30, 25, 5, 2, 58, 30),
    "iso527-5a": (75, 25, 20, 4, 2, 50, 8),
}
ALL = sorted(SPECIMENS)


def test_every_required_type_is_defined():
    assert set(SPECIMENS) == set(REFERENCE)


@pytest.mark.parametrize("name", ALL)
def test_dimensions_match_reference(name):
    spec = get_specimen(name)
    got = (spec.overall_length_mm, spec.narrow_length_mm, spec.gauge_length_mm, spec.width_mm,
           spec.thickness_mm, spec.grip_separation_mm, spec.fillet_radius_mm)
    assert got == pytest.approx(REFERENCE[name])
    assert "derived" in spec.notes  # end widths are derived from the standards and must say so
    assert spec.end_length_mm > 0


def test_compound_fillets_have_outer_radius():
    assert get_specimen("astm-d638-iv").outer_fillet_radius_mm == 25
    assert get_specimen("iso527-5a").outer_fillet_radius_mm == 12.5
    assert get_specimen("astm-d638-i").outer_fillet_radius_mm is None


def test_unknown_name_lists_valid_names():
    with pytest.raises(SpecimenError) as err:
        get_specimen("iso527-9z")
    for name in ALL:
        assert name in str(err.value)


def test_lookup_is_case_insensitive_and_passes_models_through():
    spec = get_specimen("ISO527-1BA")
    assert spec.designation == "1BA"
    assert get_specimen(spec) is spec


def test_inconsistent_geometry_is_refused():
    with pytest.raises(ValueError, match="end_width_mm"):
        SpecimenType(name="bad", standard="ISO 527-2", designation="x", overall_length_mm=75, narrow_length_mm=30,
                     gauge_length_mm=25, width_mm=10, thickness_mm=2, grip_separation_mm=58, fillet_radius_mm=30,
                     end_width_mm=5)
    with pytest.raises(ValueError, match="overall_length_mm"):
        SpecimenType(name="bad", standard="ISO 527-2", designation="x", overall_length_mm=40, narrow_length_mm=30,
                     gauge_length_mm=25, width_mm=5, thickness_mm=2, grip_separation_mm=38, fillet_radius_mm=30,
                     end_width_mm=10)


@pytest.mark.parametrize("name", ALL)
def test_outline_is_continuous_and_monotone_in_each_half(name):
    spec = get_specimen(name)
    x = np.linspace(0, spec.overall_length_mm, 20001)
    w = width_at(spec, x)
    assert w.min() == pytest.approx(spec.width_mm)
    assert w.max() == pytest.approx(spec.end_width_mm)
    assert np.max(np.abs(np.diff(w))) < 0.05  # no jump anywhere, including the S-curve tangent point
    left = w[: len(w) // 2]
    assert np.all(np.diff(left) <= 1e-12)  # narrows towards the middle
    assert np.allclose(w, w[::-1])  # symmetric
    centre = spec.overall_length_mm / 2
    assert width_at(spec, centre + spec.narrow_length_mm / 2 - 0.01) == pytest.approx(spec.width_mm)
    assert width_at(spec, 0.0) == pytest.approx(spec.end_width_mm)


def test_width_outside_specimen_is_an_error():
    with pytest.raises(SpecimenError, match=r"x_mm must lie in \[0, 75"):
        width_at("iso527-1ba", 80.0)


@pytest.mark.parametrize("name", ALL)
def test_mesh_is_watertight_with_expected_extents_and_volume(name):
    spec = get_specimen(name)
    mesh = dogbone_mesh(name)
    assert mesh.is_watertight
    assert mesh.volume > 0
    assert mesh.extents == pytest.approx([spec.overall_length_mm, spec.end_width_mm, spec.thickness_mm])
    # Volume lies between the narrow bar and the full-width bar.
    assert spec.narrow_area_mm2 * spec.overall_length_mm < mesh.volume < (
        spec.end_width_mm * spec.thickness_mm * spec.overall_length_mm)
    assert mesh.volume == pytest.approx(spec.volume_mm3, rel=1e-9)


def test_mesh_copies_are_independent():
    a = dogbone_mesh("iso527-1ba")
    a.apply_translation([100, 0, 0])
    assert dogbone_mesh("iso527-1ba").bounds[0][0] == pytest.approx(0.0)


@pytest.mark.parametrize("name", ALL)
def test_cross_sections_match_width_times_thickness(name):
    spec = get_specimen(name)
    x, area = cross_section_areas(spec, 120)
    assert len(x) == len(area) == 120
    expected = width_at(spec, x) * spec.thickness_mm
    assert area == pytest.approx(expected, rel=2e-3)
    narrow = np.abs(x - spec.overall_length_mm / 2) < spec.narrow_length_mm / 2
    assert narrow.sum() > 0
    assert area[narrow] == pytest.approx(spec.width_mm * spec.thickness_mm, rel=1e-9)


def test_cross_sections_see_a_modified_mesh():
    spec = get_specimen("iso527-1a")
    mesh = dogbone_mesh(spec)
    mesh.apply_scale([1.0, 1.0, 0.5])  # a half-thickness print
    _, area = cross_section_areas(spec, 40, mesh=mesh)
    _, nominal = cross_section_areas(spec, 40)
    assert area == pytest.approx(nominal / 2, rel=1e-9)


def test_check_fits_accepts_and_refuses():
    mesh = dogbone_mesh("iso527-1a")  # 170 x 20 x 4
    check_fits(mesh, (220, 220, 250))
    with pytest.raises(DoesNotFitError, match=r"x: part 170.00 mm > build volume 150.00 mm") as err:
        check_fits(mesh, (150, 180, 100))
    assert "turned 90 degrees" in str(err.value)
    with pytest.raises(DoesNotFitError, match="z: part 4.00 mm"):
        check_fits(mesh, (200, 200, 3))
    with pytest.raises(SpecimenError, match="three positive numbers"):
        check_fits(mesh, (200, 200))


def test_check_fits_refuses_open_mesh():
    mesh = dogbone_mesh("iso527-1ba")
    mesh.update_faces(np.arange(len(mesh.faces) - 1))
    with pytest.raises(DoesNotFitError, match="not watertight"):
        check_fits(mesh, (200, 200, 200))
