"""Wall coordinates of a short-axis stack: where a point between two slices sits in each of them.

Why: between two short-axis slices ~20 mm apart the LV wall tapers and shifts, so a scar at a
given angle and depth of the wall lies at different in-plane (x, y) in the two slices, and
interpolating their maps at the same (x, y) blends two offset shapes. In the wall's own
coordinates the two slices agree: angle ``theta`` about the LV centre and normalised depth
``tau`` (0 at the endocardium, 1 at the epicardium).

Per slice (only from its myocardium pixels, i.e. where the targets are finite): the centre of
the myocardium with the cavity it encloses, and per angle bin the inner and outer radius of the
wall along a ray from that centre. A point between two planes of the stack gets the centre and
radii linearly interpolated at its height, hence its ``(theta, tau)``; in each of the two slices
that pair is a point of that slice's own wall (:meth:`WallFrame.warp`), where its maps are read.
On a plane the warp is the identity, so the slices' own constraints are read where they are.

A helper of ``emidec_wall_interpolation.py``, not part of the product: on EMIDEC's held-out slices
it did not beat the Cartesian shape prior (``ROBUSTNESS.md``, "Wall coordinates instead of Cartesian"), so the
shape prior does not use it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

logger = logging.getLogger(__name__)

#: Angle bins of the radii (5 degrees: about one pixel of arc at the mid-wall of a human LV).
ANGLE_BINS = 72
#: Ray step (mm) and reach (mm) when measuring the wall's radii.
RAY_STEP_MM = 0.25
RAY_REACH_MM = 90.0
#: A slice whose rays meet its myocardium in fewer than this share of the angle bins has no ring.
MIN_RING_SHARE = 0.5
#: Two slice normals closer than this (1 - |cos|) are parallel.
PARALLEL_TOLERANCE = 1e-3


@dataclass
class WallFrame:
    """Centre and wall radii of every slice of one parallel stack, in the stack's in-plane frame."""

    normal: np.ndarray      # (3,) unit stack normal
    axes: np.ndarray        # (2, 3) orthonormal in-plane axes
    heights: np.ndarray     # (S,) plane positions along ``normal`` (mm), one per slice as given
    centres: np.ndarray     # (S, 2) centre in the in-plane frame (mm)
    inner: np.ndarray       # (S, ANGLE_BINS) endocardial radius per angle bin (mm)
    outer: np.ndarray       # (S, ANGLE_BINS) epicardial radius per angle bin (mm)

    def _neighbours(self, height: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per point the slice below and above (indices into the slices) and the weight of the upper
        one; beyond the end planes both are the end slice."""
        order = np.argsort(self.heights, kind="stable")
        sorted_heights = self.heights[order]
        upper = np.clip(np.searchsorted(sorted_heights, height, side="right"), 1, max(len(order) - 1, 1))
        lower = upper - 1 if len(order) > 1 else np.zeros_like(upper)
        gap = sorted_heights[upper] - sorted_heights[lower]
        with np.errstate(invalid="ignore", divide="ignore"):
            weight = np.where(gap > 0, np.clip((height - sorted_heights[lower]) / gap, 0.0, 1.0), 0.0)
        return order[lower], order[upper], weight

    def coordinates(self, points_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Each point's two neighbouring slices and wall coordinates.

        Returns ``(lower, upper, weight, theta, tau)``: slice indices (N,), the upper slice's
        linear weight (N,), the angle (rad) about the interpolated centre and the depth in the
        interpolated wall (0 endocardium, 1 epicardium; outside [0, 1] off the wall).
        """
        points = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
        lower, upper, weight = self._neighbours(points @ self.normal)
        centre = (1 - weight)[:, None] * self.centres[lower] + weight[:, None] * self.centres[upper]
        offset = points @ self.axes.T - centre
        theta = np.arctan2(offset[:, 1], offset[:, 0])
        radius = np.hypot(offset[:, 0], offset[:, 1])
        inner = (1 - weight) * _at_angle(self.inner, lower, theta) + weight * _at_angle(self.inner, upper, theta)
        outer = (1 - weight) * _at_angle(self.outer, lower, theta) + weight * _at_angle(self.outer, upper, theta)
        return lower, upper, weight, theta, (radius - inner) / np.maximum(outer - inner, RAY_STEP_MM)

    def place(self, index: np.ndarray, theta: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """(N, 3) LPS points on the planes of slices ``index`` at wall coordinates ``(theta, tau)``
        of those slices' own walls."""
        inner = _at_angle(self.inner, index, theta)
        thickness = np.maximum(_at_angle(self.outer, index, theta) - inner, RAY_STEP_MM)
        radius = np.maximum(inner + tau * thickness, 0.0)
        in_plane = self.centres[index] + radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        return in_plane @ self.axes + self.heights[index][:, None] * self.normal

    def warp(self, points_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Each point's two neighbouring slices and where it lies in each of them.

        Returns ``(lower, upper, weight, in_lower, in_upper)``: as :meth:`coordinates`, then the
        LPS points (N, 3) on the two planes with the point's ``(theta, tau)`` in those slices' walls.
        """
        lower, upper, weight, theta, tau = self.coordinates(points_lps)
        return lower, upper, weight, self.place(lower, theta, tau), self.place(upper, theta, tau)


def _at_angle(radii: np.ndarray, index: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Radii of slices ``index`` at angles ``theta`` (linear between the bins, circular)."""
    position = (np.mod(theta, 2 * np.pi) / (2 * np.pi)) * ANGLE_BINS
    first = np.floor(position).astype(np.int64) % ANGLE_BINS
    share = position - np.floor(position)
    return (1 - share) * radii[index, first] + share * radii[index, (first + 1) % ANGLE_BINS]


def _circular_fill(values: np.ndarray) -> np.ndarray:
    """NaN bins filled by linear interpolation between the nearest valid bins (circularly)."""
    valid = np.flatnonzero(np.isfinite(values))
    bins = np.arange(len(values))
    return np.interp(bins, valid, values[valid], period=len(values))


def _ring(layer, axes: np.ndarray, normal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(centre (2,), inner radii, outer radii) of one slice's myocardium (finite values), or None
    when its rays meet the myocardium in too few angle bins to call it a ring."""
    myocardium = np.isfinite(np.asarray(layer.values, dtype=float))
    if not myocardium.any():
        return None
    region = ndimage.binary_fill_holes(myocardium)
    centres = layer.pixel_centres_lps()[region]
    centre = centres.mean(axis=0) @ axes.T
    height = float(centres.mean(axis=0) @ normal)
    angles = 2 * np.pi * np.arange(ANGLE_BINS) / ANGLE_BINS
    radii = np.arange(0.0, RAY_REACH_MM, RAY_STEP_MM)
    rays = centre + radii[None, :, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)[:, None, :]
    lps = rays.reshape(-1, 2) @ axes + height * normal
    index = np.floor(layer.lps_to_index(lps)[:, :2] + 0.5).astype(np.int64)
    rows, cols = myocardium.shape
    inside = (index[:, 0] >= 0) & (index[:, 0] < cols) & (index[:, 1] >= 0) & (index[:, 1] < rows)
    hit = np.zeros(len(lps), dtype=bool)
    hit[inside] = myocardium[index[inside, 1], index[inside, 0]]
    hit = hit.reshape(ANGLE_BINS, len(radii))
    met = hit.any(axis=1)
    if met.mean() < MIN_RING_SHARE:
        return None
    first = np.where(met, np.argmax(hit, axis=1) * RAY_STEP_MM, np.nan)
    last = np.where(met, (len(radii) - 1 - np.argmax(hit[:, ::-1], axis=1)) * RAY_STEP_MM, np.nan)
    half_pixel = 0.5 * min(layer.spacing)
    inner = np.maximum(_circular_fill(first) - half_pixel, 0.0)
    outer = _circular_fill(last) + half_pixel
    return centre, inner, outer


def wall_frame(slices: Sequence) -> WallFrame | None:
    """The wall frame of slices whose finite values mark the myocardium, or None when they are not
    one stack of parallel planes (at least two distinct planes) each with a myocardial ring."""
    if len(slices) < 2:
        return None
    normal = np.asarray(slices[0].normal, dtype=float)
    if any(abs(float(np.dot(layer.normal, normal))) < 1.0 - PARALLEL_TOLERANCE for layer in slices):
        return None
    first_axis = np.asarray(slices[0].axis_i, dtype=float)
    first_axis = first_axis - np.dot(first_axis, normal) * normal
    first_axis /= np.linalg.norm(first_axis)
    axes = np.stack([first_axis, np.cross(normal, first_axis)])
    rings = [_ring(layer, axes, normal) for layer in slices]
    if any(ring is None for ring in rings):
        logger.info("wall frame: %d of %d slices have no myocardial ring", sum(r is None for r in rings), len(rings))
        return None
    heights = np.array([float(np.dot(layer.origin, normal)) for layer in slices])
    if np.ptp(heights) <= 0:
        return None
    return WallFrame(normal, axes, heights, np.array([r[0] for r in rings]),
                     np.array([r[1] for r in rings]), np.array([r[2] for r in rings]))
