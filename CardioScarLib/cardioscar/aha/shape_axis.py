"""The LV long axis from the myocardium's shape alone: the line its rings are centred on.

Why not the principal direction of largest spread: a left ventricle is only longer than wide
when the mesh holds all of it. Meshes made from a clinical short-axis stack are often cut short
at the base and the apex, and then the ventricle can be wider than long: on EMIDEC's 75 label
maps, meshed with ``mesh-from-labels``, the longest principal direction lay more than 60 degrees
from the short-axis stack's normal on 31 of them (`Testing/benchmarks/aha_shape_axis.py`).

What every LV mesh is, cut short or not, is a wall around one cavity: cut across its long axis,
each slab is a ring. So the axis is searched in two steps:

1. *Which way the rings lie*: for each of a few hundred directions, the myocardium is cut into
   slabs across that direction, a circle is fitted (least squares on x^2 + y^2, Kasa's fit) to
   each slab's points, and the direction whose slabs sit closest to their circles, relative to
   the circles' size, wins. The ratio of the median direction's misfit to the winner's
   (:attr:`ShapeAxis.contrast`) says how clearly the shape has one such direction: about 1.07
   for a ball shell, 1.8-4.7 on the EMIDEC meshes, ACDC, biv-me and the phantoms.
2. *Where the rings are centred*: the search's optimum is shallow (a ring tilted by ten degrees
   is still nearly round), so the direction is refined as the line through the centres of
   thinner slabs, cut across it, until it stops turning. On a tapering ventricle those centres
   lie on the axis whatever the taper and however much of the apex is there.

On the 75 EMIDEC meshes the result lies 0-14 degrees (mean 1.9) from the stack's normal, and
0-10 degrees (mean 1.6) from the known axis of 12 phantoms, ACDC patient 101 at end-diastole and
end-systole and the biv-me endocardium. Known limit: a washer (a ring thicker than its hole and
shorter than about 2 cm) can be read across; no ventricle we have is one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

#: Slab thickness (mm) of the direction search: thick enough that a slab of a tilted ring is
#: visibly not round, thin enough that a tapering ventricle's slab still is.
SEARCH_SLAB_MM = 16.0
#: Slab thickness (mm) of the centre-line refinement.
CENTRE_SLAB_MM = 8.0
#: Directions tried in the search (about 4.5 degrees apart over a hemisphere).
SEARCH_DIRECTIONS = 800
#: At most this many points take part (a fixed-seed sample of the mesh's nodes): the axis of a
#: 70,000-node mesh is found in about 0.3 s.
MAX_POINTS = 4000
#: A slab with fewer points has no circle.
MIN_SLAB_POINTS = 12
#: A slab whose in-plane covariance determinant / trace squared is below this lies along a line.
LINE_SHARE = 1e-6


@dataclass(frozen=True)
class ShapeAxis:
    """The axis direction (unit; its sign is arbitrary) and how clearly the shape gives it."""

    direction: np.ndarray
    contrast: float


def hemisphere(count: int) -> np.ndarray:
    """(count, 3) unit vectors spread evenly over the upper hemisphere (a Fibonacci lattice)."""
    index = np.arange(count) + 0.5
    z = index / count
    phi = np.pi * (1.0 + math.sqrt(5.0)) * index
    ring = np.sqrt(1.0 - z * z)
    return np.stack([ring * np.cos(phi), ring * np.sin(phi), z], axis=1)


def frames(directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors (each (D, 3)) completing each direction to an orthonormal frame."""
    helper = np.where(np.abs(directions[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    first = np.cross(directions, helper)
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    return first, np.cross(directions, first)


class _Slabs(NamedTuple):
    """Circles fitted to the slabs cut across each direction, per (direction, slab) pair flattened
    as ``d * n_slabs + s``."""

    centres: np.ndarray  # (P, 3) the circle's centre, at the slab's mean height along the direction
    spread: np.ndarray   # (P,) the slab's weighted in-plane variance about its centroid
    misfit: np.ndarray   # (P,) the weighted mean squared radial misfit of its points to the circle
    weight: np.ndarray   # (P,) the slab's weight; 0 where it has too few points for a circle


def _spread_in_two_directions(normal: np.ndarray) -> np.ndarray:
    """(S,) whether each slab's points spread across its plane rather than along one line.

    Why: a slab of voxel centres can hold one row of them only (EMIDEC N020's myocardium cut along
    its in-plane grid); no circle fits a line, and its normal equations are singular. The test is
    the in-plane covariance's determinant against its trace squared (0 for a line, 1 for a ring,
    about 0.01 for a strip cut lengthwise through a 10 mm wall), so it does not depend on the scale."""
    weight = np.maximum(normal[:, 2, 2], 1e-12)
    mx, my = normal[:, 0, 2] / weight, normal[:, 1, 2] / weight
    cxx = normal[:, 0, 0] / weight - mx * mx
    cyy = normal[:, 1, 1] / weight - my * my
    cxy = normal[:, 0, 1] / weight - mx * my
    trace = np.maximum(cxx + cyy, 1e-12)
    return (cxx * cyy - cxy * cxy) / (trace * trace) > LINE_SHARE


def _slab_circles(points: np.ndarray, weights: np.ndarray, directions: np.ndarray, slab_mm: float) -> _Slabs:
    """Circles fitted (Kasa's least squares on x^2 + y^2) to the slabs cut across each direction."""
    first, second = frames(directions)
    heights, x, y = points @ directions.T, points @ first.T, points @ second.T      # (N, D) each
    slabs = np.floor((heights - heights.min(axis=0)) / slab_mm).astype(np.int64)
    n_slabs = int(slabs.max()) + 1
    pair = (np.arange(len(directions))[None, :] * n_slabs + slabs).ravel()
    x, y = x.ravel(), y.ravel()
    w = np.broadcast_to(weights[:, None], heights.shape).ravel()
    size = len(directions) * n_slabs

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(pair, weights=w * values, minlength=size)

    r2 = x * x + y * y
    count = np.bincount(pair, minlength=size)
    sx, sy, s1 = total(x), total(y), total(np.ones_like(x))
    sxy = total(x * y)
    normal = np.stack([np.stack([total(x * x), sxy, sx], -1), np.stack([sxy, total(y * y), sy], -1),
                       np.stack([sx, sy, s1], -1)], -2)
    rhs = np.stack([total(x * r2), total(y * r2), total(r2)], -1)
    usable = (count >= MIN_SLAB_POINTS) & _spread_in_two_directions(normal)
    normal[~usable], rhs[~usable] = np.eye(3), 0.0
    solution = np.linalg.solve(normal, rhs[..., None])[..., 0]
    cx, cy = solution[:, 0] / 2.0, solution[:, 1] / 2.0
    radius = np.sqrt(np.maximum(solution[:, 2] + cx * cx + cy * cy, 1e-12))
    weight = np.maximum(s1, 1e-12)
    misfit = total((np.hypot(x - cx[pair], y - cy[pair]) - radius[pair]) ** 2) / weight
    spread = (normal[:, 0, 0] + normal[:, 1, 1]) / weight - (sx / weight) ** 2 - (sy / weight) ** 2
    owner = np.repeat(np.arange(len(directions)), n_slabs)
    level = total(heights.ravel()) / weight
    centres = level[:, None] * directions[owner] + cx[:, None] * first[owner] + cy[:, None] * second[owner]
    return _Slabs(centres, spread, misfit, np.where(usable, s1, 0.0))


def _ring_misfit(points: np.ndarray, weights: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(D,) how far the slabs across each direction are from round: the share of their in-plane
    spread that their circles leave (inf where no slab has a circle). Against the spread, not the
    radius: a slab cut lengthwise through a wall is a strip, which a huge circle fits closely
    relative to its own radius but not relative to the strip's length."""
    slabs = _slab_circles(points, weights, directions, SEARCH_SLAB_MM)
    per_direction = slabs.weight.reshape(len(directions), -1)
    total = per_direction.sum(axis=1)
    left = (slabs.misfit.reshape(per_direction.shape) * per_direction).sum(axis=1)
    spread = (slabs.spread.reshape(per_direction.shape) * per_direction).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, left / spread, np.inf)


def _centre_line(points: np.ndarray, weights: np.ndarray, direction: np.ndarray, turns: int = 10) -> np.ndarray:
    """``direction`` turned onto the line through the centres of the slabs cut across it, repeated
    until it turns less than 0.1 degree (or ``turns`` times); unchanged with fewer than 3 slabs."""
    for _ in range(turns):
        slabs = _slab_circles(points, weights, direction[None], CENTRE_SLAB_MM)
        used = slabs.weight > 0
        if used.sum() < 3:
            return direction
        centres = slabs.centres[used]
        share = slabs.weight[used] / slabs.weight[used].sum()
        offsets = centres - share @ centres
        turned = np.linalg.eigh((offsets * share[:, None]).T @ offsets)[1][:, 2]
        turned = turned if turned @ direction >= 0 else -turned
        moved = float(turned @ direction)
        direction = turned
        if moved > math.cos(math.radians(0.1)):
            break
    return direction


def shape_axis(points: np.ndarray, weights: np.ndarray) -> ShapeAxis:
    """The long axis of the LV myocardium ``points`` (N, 3; mm), nodes weighted by ``weights`` (N,)."""
    points = np.asarray(points, dtype=float)
    weights = np.asarray(weights, dtype=float)
    if len(points) > MAX_POINTS:
        keep = np.random.default_rng(0).choice(len(points), MAX_POINTS, replace=False)
        points, weights = points[keep], weights[keep]
    points = points - (points * weights[:, None]).sum(axis=0) / weights.sum()
    directions = hemisphere(SEARCH_DIRECTIONS)
    misfit = _ring_misfit(points, weights, directions)
    finite = misfit[np.isfinite(misfit)]
    if finite.size == 0:
        return ShapeAxis(direction=directions[-1], contrast=1.0)
    best = int(np.argmin(misfit))
    contrast = float(np.median(finite) / max(misfit[best], 1e-12))
    return ShapeAxis(direction=_centre_line(points, weights, directions[best]), contrast=contrast)
