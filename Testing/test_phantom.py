"""The LV phantom: realistic size, seeded scar, and an acquisition that is the true partial-volume mean."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import read_mesh
from cardioscar.evaluate.metrics import node_volumes
from cardioscar.phantoms.phantom import Phantom, PhantomConfig, make_phantom, write_phantom


@pytest.fixture(scope="module")
def default_phantom() -> Phantom:
    return make_phantom(PhantomConfig())


def _local(phantom: Phantom, points: np.ndarray) -> np.ndarray:
    """LPS -> LV frame using the rotation and offset recorded in the metadata (not the geometry object)."""
    rotation = np.asarray(phantom.metadata["lv"]["rotation"])
    offset = np.asarray(phantom.metadata["lv"]["offset_lps"])
    return (points - offset) @ rotation


@pytest.mark.parametrize("target", [8000, 40000])
def test_node_count_near_target_and_realistic_size(target: int) -> None:
    phantom = make_phantom(PhantomConfig(target_nodes=target, seed=1))
    n = phantom.mesh.GetNumberOfPoints()
    assert abs(n - target) / target < 0.03
    assert phantom.truth.shape == (n,)
    local = _local(phantom, phantom.points_lps)
    assert local[:, 2].max() == pytest.approx(0.0, abs=1e-6)          # base plane
    assert -local[:, 2].min() == pytest.approx(90.0, abs=1.0)          # apex to base
    radius = np.hypot(local[:, 0], local[:, 1])
    base = np.abs(local[:, 2]) < 1e-6
    assert 8.0 <= radius[base].max() - radius[base].min() <= 12.0      # wall thickness at the base
    assert 2 * radius[base].min() == pytest.approx(50.0, abs=1.0)      # cavity diameter at the base
    # Every tet has positive volume and the tets fill the analytic shell volume.
    volumes = node_volumes(phantom.mesh)
    shell = 2.0 / 3.0 * np.pi * (35.0**2 * 90.0 - 25.0**2 * 80.0)
    assert volumes.sum() == pytest.approx(shell, rel=0.02)
    assert phantom.surface.GetNumberOfPoints() > 0 and phantom.surface.GetNumberOfCells() > 0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_scar_fraction_in_range(seed: int) -> None:
    phantom = make_phantom(PhantomConfig(target_nodes=6000, seed=seed))
    assert 0.05 <= phantom.metadata["scar_fraction"] <= 0.30
    assert phantom.truth.min() >= 0.0 and phantom.truth.max() <= 1.0
    weighted = float(np.sum(phantom.truth * node_volumes(phantom.mesh)) / np.sum(node_volumes(phantom.mesh)))
    assert weighted == pytest.approx(phantom.metadata["scar_fraction"], abs=0.02)


def test_scar_grows_from_endocardium(default_phantom: Phantom) -> None:
    depth = numpy_support.vtk_to_numpy(default_phantom.mesh.GetPointData().GetArray("transmural_depth"))
    endo = default_phantom.truth[depth == 0.0]
    epi = default_phantom.truth[depth == 1.0]
    assert endo.max() > 0.9
    assert endo.sum() > epi.sum()


def test_seed_reproducible_and_different() -> None:
    a = make_phantom(PhantomConfig(target_nodes=6000, seed=5))
    b = make_phantom(PhantomConfig(target_nodes=6000, seed=5))
    c = make_phantom(PhantomConfig(target_nodes=6000, seed=6))
    np.testing.assert_array_equal(a.truth, b.truth)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a.image), sitk.GetArrayFromImage(b.image))
    assert a.image.GetDirection() == b.image.GetDirection()
    assert not np.array_equal(a.truth, c.truth)


def test_oblique_direction(default_phantom: Phantom) -> None:
    direction = np.asarray(default_phantom.image.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(direction @ direction.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(direction) == pytest.approx(1.0)
    angle = np.degrees(np.arccos((np.trace(direction) - 1) / 2))
    assert 15.0 - 1e-6 <= angle <= 30.0 + 1e-6
    straight = make_phantom(PhantomConfig(target_nodes=6000, oblique=False))
    np.testing.assert_allclose(np.asarray(straight.image.GetDirection()), np.eye(3).ravel())


def test_stack_geometry_covers_lv(default_phantom: Phantom) -> None:
    image = default_phantom.image
    assert image.GetSpacing() == pytest.approx((1.5, 1.5, 10.0))
    assert default_phantom.slice_half_thickness_mm == 4.0
    normal = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    along = default_phantom.points_lps @ normal
    centres = np.array([image.TransformIndexToPhysicalPoint((0, 0, k)) for k in range(image.GetSize()[2])]) @ normal
    np.testing.assert_allclose(np.diff(centres), 10.0)
    assert centres.min() - 4.0 <= along.min() + 5.0 and centres.max() + 4.0 >= along.max() - 1.0
    values = sitk.GetArrayFromImage(image)
    assert values.min() >= 0.0 and values.max() <= 1.0 and values.max() > 0.9


def _brute_force_samples(phantom: Phantom, index: tuple[int, int, int], n_xy: int, n_z: int) -> np.ndarray:
    """Midpoint-rule sample points of pixel ``index`` (square x slab), built from the image geometry."""
    image = phantom.image
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    normal = direction[:, 2]
    half = phantom.config.slab_mm / 2.0
    samples = []
    for a in range(n_xy):
        for b in range(n_xy):
            ci = index[0] - 0.5 + (a + 0.5) / n_xy
            cj = index[1] - 0.5 + (b + 0.5) / n_xy
            centre = np.asarray(image.TransformContinuousIndexToPhysicalPoint((ci, cj, float(index[2]))))
            for c in range(n_z):
                samples.append(centre + normal * (-half + (c + 0.5) * 2 * half / n_z))
    return np.asarray(samples)


def _brute_force_pixel(phantom: Phantom, index: tuple[int, int, int], n_xy: int, n_z: int) -> float:
    return float(phantom.myocardial_scar_at(_brute_force_samples(phantom, index, n_xy, n_z)).mean())


def test_pixels_are_partial_volume_means(default_phantom: Phantom) -> None:
    values = sitk.GetArrayFromImage(default_phantom.image)
    k, j, i = np.argwhere((values > 0.3) & (values < 0.7))[0]
    exact_rule = _brute_force_pixel(default_phantom, (int(i), int(j), int(k)), n_xy=2, n_z=8)
    assert values[k, j, i] == pytest.approx(exact_rule, abs=1e-5)
    finer = _brute_force_pixel(default_phantom, (int(i), int(j), int(k)), n_xy=8, n_z=40)
    assert values[k, j, i] == pytest.approx(finer, abs=0.08)
    k0, j0, i0 = np.argwhere(values == 0)[0]
    assert _brute_force_pixel(default_phantom, (int(i0), int(j0), int(k0)), 8, 40) == 0.0


def test_myocardium_partial_volume_mode() -> None:
    phantom = make_phantom(PhantomConfig(target_nodes=6000, seed=4, partial_volume="myocardium"))
    volume_mode = make_phantom(PhantomConfig(target_nodes=6000, seed=4))
    values = sitk.GetArrayFromImage(phantom.image)
    diluted = sitk.GetArrayFromImage(volume_mode.image)
    assert np.all(values >= diluted - 1e-6) and np.any(values > diluted + 0.1)
    k, j, i = np.argwhere((diluted > 0.05) & (diluted < 0.5) & (values > 0.5))[0]
    samples = _brute_force_samples(phantom, (int(i), int(j), int(k)), n_xy=2, n_z=8)
    local = _local(phantom, samples)
    r2, z = local[:, 0] ** 2 + local[:, 1] ** 2, local[:, 2]
    myocardium = (r2 / 25.0**2 + z**2 / 80.0**2 >= 1) & (r2 / 35.0**2 + z**2 / 90.0**2 <= 1) & (z <= 0)
    scar = phantom.myocardial_scar_at(samples)
    assert values[k, j, i] == pytest.approx(scar[myocardium].mean(), abs=1e-5)


def test_truth_matches_field_sampled_by_scanner(default_phantom: Phantom) -> None:
    depth = numpy_support.vtk_to_numpy(default_phantom.mesh.GetPointData().GetArray("transmural_depth"))
    local = _local(default_phantom, default_phantom.points_lps)
    interior = (depth > 0.0) & (depth < 1.0) & (local[:, 2] < -0.5)
    sampled = default_phantom.myocardial_scar_at(default_phantom.points_lps[interior])
    np.testing.assert_allclose(sampled, default_phantom.truth[interior], atol=1e-6)


def test_noise_and_long_axis() -> None:
    clean = make_phantom(PhantomConfig(target_nodes=6000, seed=2))
    noisy = make_phantom(PhantomConfig(target_nodes=6000, seed=2, noise_std=0.1, long_axis=True))
    a, b = sitk.GetArrayFromImage(clean.image), sitk.GetArrayFromImage(noisy.image)
    assert b.min() >= 0.0 and b.max() <= 1.0
    assert 0.03 < np.std(b - a) < 0.1
    la = noisy.long_axis_image
    assert la is not None and la.GetSize()[2] == 1
    la_normal = np.asarray(la.GetDirection()).reshape(3, 3)[:, 2]
    lv_axis = np.asarray(noisy.image.GetDirection()).reshape(3, 3)[:, 2]
    assert abs(float(la_normal @ lv_axis)) < 1e-9
    assert sitk.GetArrayFromImage(la).max() > 0.2
    assert clean.long_axis_image is None


def test_write_phantom_files_readable(tmp_path, default_phantom: Phantom) -> None:
    paths = write_phantom(default_phantom, tmp_path / "ph")
    assert {"mesh", "surface", "image", "metadata"} <= set(paths)
    image = sitk.ReadImage(str(paths["image"]))
    assert image.GetSize() == default_phantom.image.GetSize()
    np.testing.assert_allclose(image.GetDirection(), default_phantom.image.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(default_phantom.image))

    reader = vtk.vtkUnstructuredGridReader()
    reader.SetFileName(str(paths["mesh"]))
    reader.Update()
    assert "SPACE=LPS" in reader.GetHeader()
    grid = reader.GetOutput()
    assert grid.GetNumberOfPoints() == default_phantom.mesh.GetNumberOfPoints()
    truth = numpy_support.vtk_to_numpy(grid.GetPointData().GetArray("scar_truth"))
    np.testing.assert_allclose(truth, default_phantom.truth)
    assert read_mesh(paths["surface"]).space == "LPS"

    meta = json.loads(paths["metadata"].read_text(encoding="utf-8"))
    assert meta["n_slices"] == image.GetSize()[2]
    assert 0.05 <= meta["scar_fraction"] <= 0.30
    assert meta["slice_half_thickness_mm"] == 4.0


def test_bad_config_is_a_user_error() -> None:
    with pytest.raises(CardioScarError, match="target_nodes"):
        make_phantom(PhantomConfig(target_nodes=10))
    with pytest.raises(CardioScarError, match="territories"):
        make_phantom(PhantomConfig(territories=("XYZ",)))
