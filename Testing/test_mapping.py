"""Node -> pixel mapping checked against a brute-force per-node, per-pixel reference on oblique slices."""

from __future__ import annotations

import numpy as np
import pytest

from cardioscar.errors import CardioScarError
from cardioscar.prepare.mapping import map_slices_to_nodes
from cardioscar.prepare.slices import SliceLayer, slices_from_array


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def oblique_stack(seed: int, spacing=(1.3, 0.7, 4.0), shape_kji=(3, 5, 6), half_thickness=3.0):
    """Slices of an oblique, anisotropic volume whose voxels all hold different values."""
    rng = np.random.default_rng(seed)
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = random_rotation(rng) @ np.diag(spacing)
    ijk_to_lps[:3, 3] = rng.uniform(-50, 50, 3)
    volume = (np.arange(np.prod(shape_kji)).reshape(shape_kji) + 1.0) / (np.prod(shape_kji) + 1.0)
    slices = slices_from_array(volume, ijk_to_lps, "z", None, half_thickness=half_thickness)
    return rng, ijk_to_lps, slices


def nodes_near_borders(rng: np.random.Generator, ijk_to_lps: np.ndarray, shape_kji, n_random=400) -> np.ndarray:
    """Nodes just inside / just outside pixel borders, between slices (two slabs) and at random."""
    nk, nj, ni = shape_kji
    ijk = []
    for k in np.arange(-0.5, nk, 0.5):
        for j in range(-1, nj + 1):
            for i in range(-1, ni + 1):
                for di, dj in ((0.499, 0.0), (-0.499, 0.0), (0.501, 0.0), (0.0, 0.499), (0.0, -0.501),
                               (0.499, -0.499), (-0.501, 0.501)):
                    ijk.append((i + di, j + dj, k))
    ijk = np.array(ijk + list(rng.uniform([-1, -1, -1], [ni, nj, nk], size=(n_random, 3))))
    return ijk @ ijk_to_lps[:3, :3].T + ijk_to_lps[:3, 3]


def brute_force(points: np.ndarray, slices: list[SliceLayer]) -> set[tuple[int, int, int, int, float]]:
    """(node, slice, i, j, value) memberships by testing every node against every pixel's box."""
    rows = set()
    for s, layer in enumerate(slices):
        n_rows, n_cols = layer.values.shape
        for j in range(n_rows):
            for i in range(n_cols):
                centre = layer.origin + i * layer.spacing[0] * layer.axis_i + j * layer.spacing[1] * layer.axis_j
                rel = points - centre
                a = rel @ layer.axis_i / layer.spacing[0]
                b = rel @ layer.axis_j / layer.spacing[1]
                d = rel @ layer.normal
                inside = (a >= -0.5) & (a < 0.5) & (b >= -0.5) & (b < 0.5) & (d >= -layer.half_thickness) \
                    & (d < layer.half_thickness)
                if np.isfinite(layer.values[j, i]):
                    rows.update((int(n), s, i, j, float(layer.values[j, i])) for n in np.flatnonzero(inside))
    return rows


def mapped_rows(points: np.ndarray, slices: list[SliceLayer]) -> set[tuple[int, int, int, int, float]]:
    mapping = map_slices_to_nodes(points, slices)
    g = mapping.group_ids
    return {(int(n), int(mapping.group_slice[gi]), int(mapping.group_pixel[gi, 0]), int(mapping.group_pixel[gi, 1]),
             float(v)) for n, gi, v in zip(mapping.node_ids, g, mapping.row_values)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_on_oblique_stacks(seed: int) -> None:
    shape = (3, 5, 6)
    rng, ijk_to_lps, slices = oblique_stack(seed, shape_kji=shape)
    points = nodes_near_borders(rng, ijk_to_lps, shape)
    expected = brute_force(points, slices)
    got = mapped_rows(points, slices)
    assert got == expected
    assert map_slices_to_nodes(points, slices).n_rows == len(expected)  # no duplicated rows
    # The stack is 4 mm apart with 3 mm half-slabs: nodes between slices belong to two groups.
    nodes = [row[0] for row in got]
    assert max(np.bincount(nodes)) == 2
    # Target comes from the group's own pixel (values are unique per voxel, so any shift shows).
    assert all(slices[s].values[j, i] == v for _, s, i, j, v in got)


def test_a_node_on_the_face_of_two_touching_slabs_is_in_one_slice() -> None:
    """A stack 10 mm apart with 5 mm half-slabs (the documented default on ACDC-like data): the
    slabs touch, and a mesh built from the same image (marching cubes) puts many nodes exactly on
    the shared faces. Each must belong to one slice (the one above, as the pixel square's lower
    edge belongs to its pixel), not to two groups with two different targets."""
    ijk_to_lps = np.diag([1.5, 1.5, 10.0, 1.0])
    ijk_to_lps[:3, 3] = [-20.0, 7.0, 3.0]
    volume = np.arange(3 * 4 * 4, dtype=float).reshape(3, 4, 4) / 48.0
    slices = slices_from_array(volume, ijk_to_lps, "z", None, half_thickness=5.0)
    ij = np.array([[i, j] for j in range(4) for i in range(4)], dtype=float)
    faces = np.array([-0.5, 0.5, 1.5, 2.5])  # in k: the stack's lower face, two shared faces, its upper face
    ijk = np.array([[i, j, k] for k in faces for i, j in ij])
    points = ijk @ ijk_to_lps[:3, :3].T + ijk_to_lps[:3, 3]
    mapping = map_slices_to_nodes(points, slices)
    slice_of = {int(n): int(mapping.group_slice[g]) for n, g in zip(mapping.node_ids, mapping.group_ids)}
    assert mapping.n_rows == len(slice_of) == 3 * 16  # none twice, the upper face in none
    per_face = [sorted({slice_of.get(n) for n in range(f * 16, (f + 1) * 16)}, key=str) for f in range(4)]
    assert per_face == [[0], [1], [2], [None]]
    # the same rule everywhere else, oblique: the brute force above uses it too
    assert mapped_rows(points, slices) == brute_force(points, slices)


def test_group_numbering_is_contiguous_and_ordered() -> None:
    shape = (3, 5, 6)
    rng, ijk_to_lps, slices = oblique_stack(5, shape_kji=shape)
    mapping = map_slices_to_nodes(nodes_near_borders(rng, ijk_to_lps, shape), slices)
    assert mapping.group_ids[0] == 0
    assert np.all(np.diff(mapping.group_ids) >= 0)
    assert set(np.unique(mapping.group_ids)) == set(range(mapping.n_groups))
    keys = [(s, j, i) for s, (i, j) in zip(mapping.group_slice, mapping.group_pixel)]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert mapping.group_sizes.sum() == mapping.n_rows
    assert mapping.node_ids.dtype == np.int64 and mapping.group_ids.dtype == np.int64


def test_nan_pixels_make_no_group() -> None:
    rng, ijk_to_lps, slices = oblique_stack(3)
    holed = [SliceLayer(np.where(np.arange(layer.values.size).reshape(layer.values.shape) % 3 == 0, np.nan,
                                 layer.values), layer.origin, layer.axis_i, layer.axis_j, layer.spacing,
                        layer.half_thickness, layer.label) for layer in slices]
    points = nodes_near_borders(rng, ijk_to_lps, (3, 5, 6))
    got = mapped_rows(points, holed)
    assert got == brute_force(points, holed)
    assert all(np.isfinite(holed[s].values[j, i]) for _, s, i, j, _ in got)
    mapping = map_slices_to_nodes(points, holed)
    assert np.isfinite(mapping.group_values).all()


def test_empty_mapping_reports_both_bounding_boxes() -> None:
    _, _, slices = oblique_stack(0)
    far = np.random.default_rng(0).uniform(900, 1000, size=(50, 3))
    with pytest.raises(CardioScarError) as info:
        map_slices_to_nodes(far, slices)
    message = str(info.value)
    assert "mesh LPS bounds [" in message and "slices LPS bounds [" in message
    assert "SPACE marker" in message and "\n" not in message
    assert "times the size" not in message  # same scale: no unit hint


@pytest.mark.parametrize("scale, unit", [(1000.0, "micrometres"), (0.001, "metres")])
def test_empty_mapping_names_a_unit_mismatch(scale: float, unit: str) -> None:
    """A simulation mesh in micrometres (openCARP) or metres misses every slice; say why."""
    _, ijk_to_lps, slices = oblique_stack(0)
    inside = np.array([[2.0, 2.0, 1.0, 1.0], [3.0, 1.0, 0.0, 1.0]]) @ ijk_to_lps.T
    assert map_slices_to_nodes(inside[:, :3], slices).node_ids.size == 2
    with pytest.raises(CardioScarError, match=f"times the size of the slices: if its coordinates are in {unit}"):
        map_slices_to_nodes(inside[:, :3] * scale + np.array([0.0, 0.0, 5.0 * scale]), slices)


def test_invalid_points_are_rejected() -> None:
    _, _, slices = oblique_stack(0)
    with pytest.raises(CardioScarError, match=r"\(N, 3\)"):
        map_slices_to_nodes(np.zeros((4, 2)), slices)
    with pytest.raises(CardioScarError, match="NaN"):
        map_slices_to_nodes(np.full((4, 3), np.nan), slices)


def test_scaler_is_fitted_on_all_nodes_and_inverts() -> None:
    from cardioscar.fit.normalization import denormalize, fit_scaler, normalize

    points = np.random.default_rng(4).normal(size=(200, 3)) * [30.0, 10.0, 5.0]
    low, high = fit_scaler(points)
    scaled = normalize(points, low, high)
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    np.testing.assert_allclose(scaled.min(axis=0), 0.0)
    np.testing.assert_allclose(scaled.max(axis=0), 1.0)
    np.testing.assert_allclose(denormalize(scaled, low, high), points)
    flat = points.copy()
    flat[:, 2] = 7.0  # a planar mesh: no division by zero
    low, high = fit_scaler(flat)
    assert np.isfinite(normalize(flat, low, high)).all()
    np.testing.assert_allclose(denormalize(normalize(flat, low, high), low, high), flat)


def test_a_mesh_in_metres_that_lands_in_a_few_pixels_is_refused() -> None:
    """A heart mesh in metres (10 cm across = 0.1 units) placed where the image's millimetres put
    its origin maps into a pixel or two: rows, but nonsense. The sizes say why."""
    ijk_to_lps = np.diag([1.5, 1.5, 8.0, 1.0])
    volume = np.full((3, 200, 200), 0.5)
    slices = slices_from_array(volume, ijk_to_lps, "z", None, half_thickness=4.0)
    heart_in_metres = np.random.default_rng(0).uniform([0.1, 0.1, -0.05], [0.2, 0.2, 0.05], size=(500, 3))
    with pytest.raises(CardioScarError, match="differ in size by orders of magnitude .* in metres or centimetres"):
        map_slices_to_nodes(heart_in_metres, slices)
    heart_in_mm = heart_in_metres * 1000.0 - [0.0, 0.0, -4.0]
    assert map_slices_to_nodes(heart_in_mm, slices).n_groups > 100
