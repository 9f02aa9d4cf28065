"""Complete-group batching, and the group mean itself.

The loss compares a group's *mean* prediction with its pixel value, so a batch must hold every
node of each group it touches: a split group would be fitted on a partial mean. Rows are sorted
by group once, after which each batch is a contiguous slice ``[start, end)``.

The weighted group mean ``sum(w v) / sum(w)`` is written once in numpy (:func:`group_means`) and
once in torch (:func:`group_sums`): every place training forms a group's mean (its target, the
network's mean prediction, the loss) calls them, so the box (``weights`` ``None``, every row 1) and
the gaussian slice profile (:mod:`cardioscar.prepare.mapping`) are the same formula everywhere.
``None`` takes the unweighted path (no multiplication by ones), which keeps the box's numbers
exactly as they were.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch.utils.data import Dataset

from cardioscar.errors import CardioScarError

logger = logging.getLogger(__name__)


class ScarReconstructionDataset(Dataset):
    """Training rows sorted (stably) by group id.

    Attributes are numpy arrays: ``coordinates`` (N, 3) float32, ``intensities`` (N, 1) float32,
    ``group_ids`` (N,) int64 non-decreasing, ``group_sizes`` (M,) int64 as given, ``prior_logit``
    (N,) float32 or ``None``: a fixed log-odds added to the network's output before the sigmoid
    (the shape prior, :mod:`cardioscar.shape_prior`), ``residual_bound`` the logits the network's
    output may move that log-odds by (:func:`cardioscar.fit.engines.bounded_residual`; inf: unbounded),
    ``row_weights`` (N,) float64 or ``None``:
    each row's weight in its group's mean (the gaussian slice profile,
    :mod:`cardioscar.prepare.mapping`; ``None`` is the box, every row 1, on the unweighted paths).
    """

    def __init__(self, coordinates, intensities, group_ids, group_sizes=None, prior_logit=None,
                 row_weights=None, residual_bound: float = math.inf) -> None:
        coords = np.asarray(coordinates, dtype=np.float32)
        values = np.asarray(intensities, dtype=np.float32).reshape(-1, 1)
        groups = np.asarray(group_ids).reshape(-1).astype(np.int64)
        if coords.ndim != 2 or coords.shape[1] != 3:
            raise CardioScarError(f"coordinates must have shape (N, 3), got {coords.shape}")
        if not (coords.shape[0] == values.shape[0] == groups.shape[0]):
            raise CardioScarError(
                f"coordinates ({coords.shape[0]}), intensities ({values.shape[0]}) and group_ids "
                f"({groups.shape[0]}) must have the same number of rows")
        if coords.shape[0] == 0:
            raise CardioScarError("the training data has no rows: no mesh node lies inside any slice")
        order = np.argsort(groups, kind="stable")
        self.coordinates = np.ascontiguousarray(coords[order])
        self.intensities = np.ascontiguousarray(values[order])
        self.group_ids = np.ascontiguousarray(groups[order])
        self.prior_logit = None
        if prior_logit is not None:
            prior = np.asarray(prior_logit, dtype=np.float32).reshape(-1)
            if prior.shape[0] != coords.shape[0] or not np.isfinite(prior).all():
                raise CardioScarError(f"the prior log-odds must be {coords.shape[0]} finite values, one per row, "
                                      f"got {prior.shape[0]}")
            self.prior_logit = np.ascontiguousarray(prior[order])
        if not float(residual_bound) > 0:
            raise CardioScarError(f"the residual bound must be > 0 logits (inf: unbounded), got {residual_bound!r}")
        self.residual_bound = float(residual_bound)
        self.row_weights = None
        if row_weights is not None:
            weights = np.asarray(row_weights, dtype=np.float64).reshape(-1)
            if weights.shape[0] != coords.shape[0] or not np.isfinite(weights).all() or weights.min() <= 0:
                raise CardioScarError(f"the row weights must be {coords.shape[0]} finite values > 0, one per row, "
                                      f"got {weights.shape[0]}")
            self.row_weights = np.ascontiguousarray(weights[order])
        self.group_sizes = (np.asarray(group_sizes, dtype=np.int64) if group_sizes is not None
                            else np.unique(self.group_ids, return_counts=True)[1])

    def __len__(self) -> int:
        return self.coordinates.shape[0]

    def __getitem__(self, index):
        return (torch.from_numpy(self.coordinates[index]), torch.from_numpy(self.intensities[index]),
                torch.as_tensor(self.group_ids[index]))


def group_boundaries(sorted_group_ids: np.ndarray) -> np.ndarray:
    """Row offsets where each group starts, plus the total row count at the end."""
    ids = np.asarray(sorted_group_ids).reshape(-1)
    starts = np.flatnonzero(np.diff(ids)) + 1
    return np.concatenate(([0], starts, [ids.shape[0]])).astype(np.int64)


def pack_groups(bounds: np.ndarray, target_rows: int) -> list[tuple[int, int]]:
    """Pack consecutive whole groups (``bounds`` from :func:`group_boundaries`) into ranges of
    about ``target_rows`` rows.

    A range is closed before the group that would push it past the target; a group larger than
    the target becomes a range of its own. Every row is in exactly one range.
    """
    ranges: list[tuple[int, int]] = []
    start = int(bounds[0])
    for group_start, group_end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        if group_end - start > target_rows and group_start > start:
            ranges.append((start, group_start))
            start = group_start
    ranges.append((start, int(bounds[-1])))
    return ranges


def create_complete_group_batches(dataset: ScarReconstructionDataset,
                                  target_batch_size: int) -> list[tuple[int, int]]:
    """Pack consecutive whole groups into batches of about ``target_batch_size`` rows
    (see :func:`pack_groups`)."""
    if int(target_batch_size) < 1:
        raise CardioScarError(f"batch_size must be a positive integer, got {target_batch_size}")
    return pack_groups(group_boundaries(dataset.group_ids), int(target_batch_size))


def group_means(values: np.ndarray, inverse: np.ndarray,
                weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(means, totals)`` float64 per group: ``inverse`` (n,) holds each row's group 0..G-1 (every
    group with a row), ``values`` (n,) the rows' values, ``weights`` (n,) their weights or ``None``
    (all 1). ``totals`` is each group's weight sum (its size for the box), which the CPU step keeps
    as ``1 / totals``."""
    inverse = np.asarray(inverse).reshape(-1)
    values = np.asarray(values).reshape(-1).astype(np.float64)
    if weights is None:
        totals = np.bincount(inverse).astype(np.float64)
        return np.bincount(inverse, weights=values) / totals, totals
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    totals = np.bincount(inverse, weights=weights)
    return np.bincount(inverse, weights=values * weights) / totals, totals


def group_sums(values: torch.Tensor, inverse: torch.Tensor, n_groups: int,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """``sum(w v)`` per group (``n_groups``,), in ``values``' dtype and device; ``inverse`` (n,) the
    rows' groups 0..n_groups-1, ``weights`` (n,) or ``None`` (all 1). A group's weight total is
    ``group_sums(torch.ones_like(values), ...)``; the callers divide (or keep ``1 / total`` for a
    loss evaluated every step)."""
    return torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(
        0, inverse, values if weights is None else values * weights)
