"""The weighted group mean, ``sum(w v) / sum(w)`` over each group's rows, in numpy and in torch.

Every place training forms a group's mean (its target, the network's mean prediction, the loss)
goes through these two functions, so the box (``weights`` ``None``, every row 1) and the gaussian
slice profile (:mod:`cardioscar.prepare.mapping`) are the same formula everywhere. ``None`` takes
the unweighted path (no multiplication by ones), which keeps the box's numbers exactly as they were.
"""

from __future__ import annotations

import numpy as np
import torch


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
