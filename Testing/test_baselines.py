"""Nearest-slice and LogOdds baselines: exact on the slices, sensible between them, decent on the phantom."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cardioscar.evaluate.baselines import logodds_baseline, nearest_slice_baseline
from cardioscar.errors import CardioScarError
from cardioscar.evaluate.metrics import dice
from cardioscar.prepare.slices import SliceLayer, slices_from_image


def _disk_slice(radius_mm: float, z_mm: float, pixel: float = 0.5, half_width: float = 20.0) -> SliceLayer:
    """Axis-aligned slice at height z with a centred disk of scar of the given radius."""
    n = int(2 * half_width / pixel) + 1
    coords = -half_width + pixel * np.arange(n)
    xx, yy = np.meshgrid(coords, coords, indexing="xy")  # values[j, i] with i along x
    values = (np.hypot(xx, yy) <= radius_mm).astype(float)
    return SliceLayer(values=values, origin=np.array([-half_width, -half_width, z_mm]),
                      axis_i=np.array([1.0, 0.0, 0.0]), axis_j=np.array([0.0, 1.0, 0.0]),
                      spacing=(pixel, pixel), half_thickness=2.0, label=f"disk z={z_mm}")


def test_nearest_slice_reproduces_pixels_on_planes(small_phantom) -> None:
    phantom, _ = small_phantom
    slices = slices_from_image(phantom.image, half_thickness=phantom.slice_half_thickness_mm)
    rng = np.random.default_rng(1)
    for layer in (slices[2], slices[5]):
        centres = layer.pixel_centres_lps().reshape(-1, 3)
        jitter = rng.uniform(-0.45, 0.45, size=(len(centres), 2))
        points = centres + jitter[:, :1] * layer.spacing[0] * layer.axis_i + jitter[:, 1:] * layer.spacing[1] * layer.axis_j
        np.testing.assert_array_equal(nearest_slice_baseline(points, slices), layer.values.ravel())


def test_nearest_slice_picks_closest_plane_and_clamps() -> None:
    slices = [_disk_slice(10.0, 0.0), _disk_slice(3.0, 10.0)]
    points = np.array([[6.0, 0.0, 4.0],     # closer to z=0 (inside its 10 mm disk)
                       [6.0, 0.0, 6.0],     # closer to z=10 (outside its 3 mm disk)
                       [500.0, 0.0, 1.0]])  # outside every grid: nearest edge pixel of z=0 (no scar)
    np.testing.assert_array_equal(nearest_slice_baseline(points, slices), [1.0, 0.0, 0.0])


def test_logodds_inside_spanning_scar_and_interpolation() -> None:
    slices = [_disk_slice(12.0, 0.0), _disk_slice(4.0, 10.0)]
    # a scar present on both slices: ~1 at the centre everywhere between them, ~0 far outside
    centre = logodds_baseline(np.array([[0.0, 0.0, z] for z in (0.0, 3.0, 5.0, 10.0)]), slices)
    assert np.all(centre > 0.9)
    assert logodds_baseline(np.array([[18.0, 0.0, 5.0]]), slices)[0] < 0.01
    # radius 8 mm: 4 mm inside the first outline, 4 mm outside the second -> 0.5 half-way, monotone
    along = logodds_baseline(np.array([[8.0, 0.0, z] for z in np.linspace(0.0, 10.0, 11)]), slices)
    assert along[0] > 0.9 and along[-1] < 0.1
    assert along[5] == pytest.approx(0.5, abs=0.1)
    assert np.all(np.diff(along) < 0)
    # beyond the stack the end slice is used
    np.testing.assert_allclose(logodds_baseline(np.array([[8.0, 0.0, -7.0]]), slices), along[:1])


def test_logodds_scar_fades_over_the_gap_to_a_slice_without_scar() -> None:
    """A slice without scar has no outline; taken as infinitely far from one, it made the scar of
    its neighbour vanish within a fraction of a millimetre. It now counts as one gap away."""
    scarred = _disk_slice(10.0, 0.0)
    empty = dataclasses.replace(_disk_slice(10.0, 10.0), values=np.zeros_like(scarred.values))
    slices = [scarred, empty]
    centre = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 2.5], [0.0, 0.0, 7.5]])
    probability = logodds_baseline(centre, slices)
    assert probability[0] > 0.9 and probability[1] > 0.5 and probability[2] < 0.5


def test_logodds_rejects_non_parallel_slices() -> None:
    tilted = SliceLayer(values=np.zeros((4, 4)), origin=np.zeros(3), axis_i=np.array([1.0, 0.0, 0.0]),
                        axis_j=np.array([0.0, 0.0, 1.0]), spacing=(1.0, 1.0), half_thickness=2.0, label="tilted")
    with pytest.raises(CardioScarError, match="parallel"):
        logodds_baseline(np.zeros((1, 3)), [_disk_slice(5.0, 0.0), tilted])


def test_baselines_on_phantom(small_phantom) -> None:
    phantom, _ = small_phantom
    slices = slices_from_image(phantom.image, half_thickness=phantom.slice_half_thickness_mm)
    nearest = nearest_slice_baseline(phantom.points_lps, slices)
    logodds = logodds_baseline(phantom.points_lps, slices)
    assert logodds.min() >= 0.0 and logodds.max() <= 1.0
    assert dice(nearest, phantom.truth) > 0.5
    assert dice(logodds, phantom.truth) > 0.5
