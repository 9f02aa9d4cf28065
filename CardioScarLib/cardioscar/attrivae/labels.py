"""Label-map checks that need no torch: the Slicer module runs them on its main thread, before
any process starts, and words their errors for its panel (the command line words its own)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

#: Least share of the cavity's voxels inside the myocardium's ring (EMIDEC: 0.84 or more, 1.0 in the
#: median; an ACDC map read with EMIDEC's labels: 0, its "cavity" the right ventricle).
MIN_CAVITY_INSIDE = 0.5


def cavity_share_inside(labels: np.ndarray, cavity: Sequence[int], myocardium: Sequence[int]) -> float:
    """The share of the cavity's voxels (labels k, j, i) inside the myocardium's ring on their
    slices; 1.0 without a cavity voxel."""
    inside = total = 0
    for labels_k in labels:
        in_cavity = np.isin(labels_k, cavity)
        if in_cavity.any():
            in_myocardium = np.isin(labels_k, myocardium)
            inside += int((in_cavity & ndimage.binary_fill_holes(in_myocardium) & ~in_myocardium).sum())
            total += int(in_cavity.sum())
    return inside / total if total else 1.0
