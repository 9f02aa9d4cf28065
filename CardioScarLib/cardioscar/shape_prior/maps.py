"""Per-slice signed distance maps of the scar outline, the ingredients of the shape prior.

Each slice's targets (NaN outside the myocardium) become an in-plane signed distance map in mm
(negative inside the scar, :func:`cardioscar.baselines.signed_distance_mm`) of the outline of
``target >= 0.5``. Pixels without a target first take the value of the nearest pixel that has
one: a mesh never follows the image's segmentation exactly, and a wall node that falls into a
blood-pool pixel next to scar should read that scar, not "no scar". Only the part of the map
around the myocardium is kept (the checkpoint stays small).
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np

from cardioscar.evaluate.baselines import signed_distance_mm
from cardioscar.prepare.myocardium import nearest_within
from cardioscar.shape_prior.field import GEOMETRY_COLUMNS, ShapePrior, group_stacks

logger = logging.getLogger(__name__)

#: Millimetres of map kept around the pixels that have a target (beyond it the edge is repeated).
CROP_MARGIN_MM = 20.0


def _crop(valid: np.ndarray, spacing: tuple[float, float]) -> tuple[slice, slice]:
    """Rows and columns of ``valid``'s bounding box grown by :data:`CROP_MARGIN_MM`."""
    rows, cols = np.nonzero(valid)
    margin_j = int(math.ceil(CROP_MARGIN_MM / spacing[1]))
    margin_i = int(math.ceil(CROP_MARGIN_MM / spacing[0]))
    return (slice(max(rows.min() - margin_j, 0), min(rows.max() + margin_j + 1, valid.shape[0])),
            slice(max(cols.min() - margin_i, 0), min(cols.max() + margin_i + 1, valid.shape[1])))


def _stack_gaps(layers: Sequence) -> list[float]:
    """Per slice, the median distance between the distinct planes of its stack (parallel slices);
    a lone plane gets twice its slab half-width. A slice without scar is that far from any scar."""
    inverse = np.array([np.linalg.inv(layer.index_to_lps())[:3, :] for layer in layers])
    gaps = [2.0 * float(layer.half_thickness) for layer in layers]
    for members, signs in group_stacks(inverse[:, 2, :3]):
        positions = np.unique(np.round([-signs[k] * inverse[m, 2, 3] for k, m in enumerate(members)], 3))
        if len(positions) > 1:
            for m in members:
                gaps[m] = float(np.median(np.diff(positions)))
    return gaps


def build_shape_prior(slices: Sequence) -> ShapePrior | None:
    """The shape prior of slices whose values are targets in [0, 1] (NaN: no target).

    Slices without any target are left out; ``None`` when none has one. A slice without scar
    gets ``+gap`` mm everywhere (the distance to the next plane of its stack), so a neighbour's
    scar fades over the gap between them instead of stopping at its own slice.
    """
    usable = [layer for layer in slices if np.isfinite(np.asarray(layer.values, dtype=float)).any()]
    if not usable:
        return None
    gaps = _stack_gaps(usable)
    maps, geometry = [], []
    for layer, gap in zip(usable, gaps):
        values = np.asarray(layer.values, dtype=float)
        valid = np.isfinite(values)
        distance = signed_distance_mm(nearest_within(np.where(valid, values, 0.0), valid), layer.spacing, gap)
        rows, cols = _crop(valid, layer.spacing)
        maps.append(distance[rows, cols].astype(np.float32))
        inverse = np.linalg.inv(layer.index_to_lps())[:3, :]
        row = np.concatenate([inverse.reshape(-1), [cols.start, rows.start], values.shape,
                              maps[-1].shape]).astype(np.float64)
        geometry.append(row)
    logger.info("shape prior from %d of %d slices (%d with scar)", len(usable), len(slices),
                sum(int((m < 0).any()) for m in maps))
    prior = ShapePrior(maps, np.array(geometry).reshape(-1, GEOMETRY_COLUMNS))
    return prior
