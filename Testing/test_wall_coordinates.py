"""The wall coordinates of ``Testing/benchmarks/emidec_wall_interpolation.py`` (issue 18's test of
shape interpolation in the wall's own coordinates; the helper is ``Testing/benchmarks/wall_coordinates.py``).

Real parts: ``SliceLayer`` stacks with hand-made myocardial rings of known centres and radii (a
tapered, shifted LV wall), and the real EMIDEC case Case_P085 through the benchmark's own case
preparation. The 52-case figures are the script's, not this test's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.evaluate import metrics
from cardioscar.prepare.slices import SliceLayer
from conftest import SHARED_DATA

sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
import emidec_wall_interpolation as bench  # noqa: E402
from wall_coordinates import wall_frame  # noqa: E402

PIXEL_MM = 0.5
#: (height mm, centre (x, y) mm, endocardial radius, epicardial radius) of the two rings.
RINGS = ((0.0, (0.0, 0.0), 20.0, 30.0), (20.0, (3.0, -2.0), 15.0, 22.0))


def ring_slice(height: float, centre: tuple[float, float], inner: float, outer: float,
               normal_axis: np.ndarray = np.array([0.0, 0.0, 1.0])) -> SliceLayer:
    """A 100 x 100 mm slice whose values are 0 in the ring (myocardium) and NaN elsewhere."""
    n = int(100 / PIXEL_MM)
    coords = (np.arange(n) - n / 2) * PIXEL_MM
    x, y = np.meshgrid(coords, coords)  # values[j, i]: x along i, y along j
    radius = np.hypot(x - centre[0], y - centre[1])
    values = np.where((radius >= inner) & (radius <= outer), 0.0, np.nan)
    axis_j = np.cross(normal_axis, [1.0, 0.0, 0.0]) if abs(normal_axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    axis_i = np.cross(axis_j, normal_axis)
    origin = coords[0] * (axis_i + axis_j) + height * normal_axis
    return SliceLayer(values, origin, axis_i, axis_j, (PIXEL_MM, PIXEL_MM), 5.0, label=f"z={height}")


@pytest.fixture(scope="module")
def frame():
    return wall_frame([ring_slice(*ring) for ring in RINGS])


def test_rings_are_measured(frame):
    assert np.allclose(frame.centres, [ring[1] for ring in RINGS], atol=0.1)
    for k, (_, _, inner, outer) in enumerate(RINGS):
        assert np.allclose(frame.inner[k], inner, atol=0.5)
        assert np.allclose(frame.outer[k], outer, atol=0.5)


def test_on_a_plane_the_warp_is_the_identity(frame):
    angles = np.linspace(0, 2 * np.pi, 13)[:-1]
    points = np.stack([25.0 * np.cos(angles), 25.0 * np.sin(angles), np.zeros_like(angles)], axis=1)
    lower, upper, weight, in_lower, _ = frame.warp(points)
    assert (lower == 0).all() and (upper == 1).all() and np.allclose(weight, 0.0)
    assert np.allclose(in_lower, points, atol=1e-9)


def test_between_the_planes_a_point_keeps_its_angle_and_depth(frame):
    """Half-way up, the wall is centred at (1.5, -1) with radii 17.5 and 26: its mid-wall point at
    angle 0 sits at mid-wall of each ring (radius 25 about (0, 0), 18.5 about (3, -2)), where
    reading the same (x, y) would land in ring 2's epicardium and ring 1's endocardium."""
    point = np.array([[1.5 + 0.5 * (17.5 + 26.0), -1.0, 10.0]])
    lower, upper, weight, theta, tau = frame.coordinates(point)
    assert weight[0] == pytest.approx(0.5) and theta[0] == pytest.approx(0.0, abs=1e-9)
    assert tau[0] == pytest.approx(0.5, abs=0.05)
    _, _, _, in_lower, in_upper = frame.warp(point)
    assert np.allclose(in_lower[0], [25.0, 0.0, 0.0], atol=0.5)
    assert np.allclose(in_upper[0], [3.0 + 18.5, -2.0, 20.0], atol=0.5)


def test_no_frame_without_one_stack_of_rings():
    slices = [ring_slice(*ring) for ring in RINGS]
    oblique = ring_slice(0.0, (0.0, 0.0), 20.0, 30.0, normal_axis=np.array([1.0, 0.0, 0.0]))
    assert wall_frame(slices[:1] + [oblique]) is None
    empty = SliceLayer(np.full((20, 20), np.nan), np.array([0.0, 0.0, 30.0]), np.array([1.0, 0.0, 0.0]),
                       np.array([0.0, 1.0, 0.0]), (1.0, 1.0), 5.0)
    assert wall_frame(slices + [empty]) is None


def test_benchmark_scores_a_real_case():
    """Case_P085 through the benchmark: the yardsticks are bench_emidec_loso's, every method is scored."""
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    record = bench.run_case(SHARED_DATA / "emidec" / "Case_P085")
    prepared = bench.prepare_case(SHARED_DATA / "emidec" / "Case_P085")
    assert record["held_out_nodes"] == prepared.truth.size
    for name in ("nearest_slice", "logodds"):
        assert record[name]["dice"] == pytest.approx(metrics.dice(prepared.yardsticks[name], prepared.truth, 0.5))
    for method in bench.METHODS:
        assert 0.0 <= record[method]["dice"] <= record[method]["best_dice"] + 1e-12 <= 1.0 + 1e-12
    if record["held_out_has_scar"]:
        # the wall-coordinate prior reads the same maps as the Cartesian one: it ranks the scar alike
        assert abs(record["wall_sdf"]["auc"] - record["shape_prior_alone"]["auc"]) < 0.05
