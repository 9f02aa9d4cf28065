"""Simple reconstructions to compare the network against, scored with the same metrics.

Why: a learned field is only worth its training time if it beats what a few lines of geometry
give. Two classic references:

* nearest slice: every node copies the pixel it falls on in the closest slice plane, i.e. the
  slab is stretched until it meets the next one (what a reader does by eye);
* LogOdds shape interpolation: the scar outline of each slice becomes an in-plane signed
  distance map, turned into log-odds, linearly interpolated between neighbouring slices along
  the stack normal and mapped back to a probability (the baseline the method's paper reports).

Slices are :class:`cardioscar.prepare.slices.SliceLayer` objects (``values[j, i]``, ``origin`` = centre of
pixel (0, 0), unit ``axis_i`` / ``axis_j``, ``spacing`` = (di, dj) mm, ``normal``).
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
from scipy import ndimage

from ..errors import CardioScarError

logger = logging.getLogger(__name__)


def _in_plane(points: np.ndarray, layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Continuous pixel indices (ci, cj) of each point's projection and its distance along the normal.

    Goes through :meth:`SliceLayer.lps_to_index`, which is exact for non-orthogonal pixel axes too.
    """
    index = layer.lps_to_index(points)
    return index[:, 0], index[:, 1], index[:, 2]


def _check_inputs(points_lps: np.ndarray, slices: Sequence) -> np.ndarray:
    points = np.asarray(points_lps, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3:
        raise CardioScarError(f"baseline points must be an (N, 3) array, got shape {points.shape}")
    if len(slices) == 0:
        raise CardioScarError("baseline needs at least one slice")
    return points


def nearest_slice_baseline(points_lps: np.ndarray, slices: Sequence) -> np.ndarray:
    """Each node takes the value of the pixel it projects to in the nearest slice plane.

    "Nearest" is the distance along each slice's own normal, among the slices whose pixel grid
    contains the node's in-plane projection (pixel footprints ``[i-0.5, i+0.5)`` as in the
    mapping). A node that projects outside every slice's grid takes the nearest slice anyway,
    with its projection clamped to the closest in-grid pixel.
    """
    points = _check_inputs(points_lps, slices)
    n = len(points)
    best_dist = np.full(n, np.inf)
    best_value = np.zeros(n)
    fallback_dist = np.full(n, np.inf)
    fallback_value = np.zeros(n)
    for layer in slices:
        values = np.asarray(layer.values, dtype=float)
        n_rows, n_cols = values.shape
        ci, cj, d = _in_plane(points, layer)
        i = np.floor(ci + 0.5).astype(np.int64)
        j = np.floor(cj + 0.5).astype(np.int64)
        covered = (i >= 0) & (i < n_cols) & (j >= 0) & (j < n_rows)
        value = values[np.clip(j, 0, n_rows - 1), np.clip(i, 0, n_cols - 1)]
        dist = np.abs(d)
        better = covered & (dist < best_dist)
        best_dist[better] = dist[better]
        best_value[better] = value[better]
        closer = dist < fallback_dist
        fallback_dist[closer] = dist[closer]
        fallback_value[closer] = value[closer]
    uncovered = ~np.isfinite(best_dist)
    if uncovered.any():
        logger.info("nearest-slice baseline: %d of %d nodes project outside every slice grid", uncovered.sum(), n)
    return np.where(uncovered, fallback_value, best_value)


def signed_distance_mm(values: np.ndarray, spacing: tuple[float, float], empty_mm: float) -> np.ndarray:
    """In-plane signed distance (mm) to the scar outline of ``values >= 0.5``; negative inside.

    Distances between pixel centres are shifted by half a pixel so that the zero level lies on
    the border between a scar pixel and its non-scar neighbour. A slice without scar (or all
    scar) has no outline: it gets ``+empty_mm`` (``-empty_mm``) everywhere, one slice gap, so
    that a scar on the neighbouring slice fades over the gap between them instead of vanishing
    right next to its own slice (an infinite distance would say the scar ends there).
    """
    scar = values >= 0.5
    sampling = (spacing[1], spacing[0])  # array axes are (j, i)
    if not scar.any():
        return np.full(values.shape, empty_mm)
    if scar.all():
        return np.full(values.shape, -empty_mm)
    half = 0.5 * min(spacing)
    outside = ndimage.distance_transform_edt(~scar, sampling=sampling)
    inside = ndimage.distance_transform_edt(scar, sampling=sampling)
    return np.where(scar, -(inside - half), outside - half)


def logodds_baseline(points_lps: np.ndarray, slices: Sequence, alpha_mm: float = 1.5) -> np.ndarray:
    """LogOdds shape interpolation between parallel slices; probability in [0, 1] per node.

    Per slice: binarise at 0.5, signed distance map in mm (negative inside), log-odds
    ``L = -d / alpha_mm`` (a slice without scar: ``d`` = one slice gap). Per node: sample the two slices adjacent along the stack normal at the
    node's in-plane projection (bilinear; outside a grid the edge value is repeated), interpolate
    ``L`` linearly in the node's position between the two planes (beyond the first / last slice
    the end slice is used), and return ``1 / (1 + exp(-L))``. Slices must be parallel.
    """
    points = _check_inputs(points_lps, slices)
    if alpha_mm <= 0:
        raise CardioScarError(f"logodds baseline alpha_mm={alpha_mm}: must be positive")
    stack_normal = np.asarray(slices[0].normal, dtype=float)
    for layer in slices[1:]:
        if abs(float(np.dot(layer.normal, stack_normal))) < 1.0 - 1e-6:
            raise CardioScarError(f"logodds baseline needs parallel slices; {layer.label} is not parallel to "
                                  f"{slices[0].label}; use one stack")
    positions = np.array([float(np.dot(layer.origin, stack_normal)) for layer in slices])
    order = np.argsort(positions)
    positions = positions[order]
    if len(positions) > 1 and np.min(np.diff(positions)) < 1e-6:
        raise CardioScarError("logodds baseline: two slices lie in the same plane; give each plane once")

    # Log-odds of every slice sampled at every node's projection: (n_slices, N).
    log_odds = np.empty((len(order), len(points)))
    empty_mm = float(np.median(np.diff(positions))) if len(positions) > 1 else 2.0 * float(slices[0].half_thickness)
    for row, index in enumerate(order):
        layer = slices[index]
        sdf = signed_distance_mm(np.asarray(layer.values, dtype=float), layer.spacing, empty_mm)
        ci, cj, _ = _in_plane(points, layer)
        sampled = ndimage.map_coordinates(sdf, [cj, ci], order=1, mode="nearest")
        log_odds[row] = -sampled / alpha_mm

    s = points @ stack_normal
    upper = np.clip(np.searchsorted(positions, s, side="right"), 1, max(len(positions) - 1, 1))
    lower = upper - 1
    if len(positions) == 1:
        combined = log_odds[0]
    else:
        gap = positions[upper] - positions[lower]
        w = np.clip((s - positions[lower]) / gap, 0.0, 1.0)
        cols = np.arange(len(points))
        combined = (1.0 - w) * log_odds[lower, cols] + w * log_odds[upper, cols]
    return 1.0 / (1.0 + np.exp(-np.clip(combined, -500.0, 500.0)))
