"""Scoring a reconstruction on a slice it was not given (leave-one-slice-out).

Why: on real data the 3D scar is unknown; only the acquired slices carry expert labels. Holding
one slice out of the reconstruction and comparing the field on that slice's nodes with its labels
is the one honest accuracy figure available there, and the figure users care about (how well the
scar between the slices is rebuilt).

A node is scored when it lies within ``half_width_mm`` of the held-out plane (half-open, like a
slab) and inside that slice's pixel grid; its truth is the scar label of the pixel it falls in.
Nodes in pixels that are not myocardium are not scored: the label says nothing about scar there.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import numpy as np

from . import metrics
from .metrics import wrong_node_auc
from ..errors import CardioScarError
from ..prepare.myocardium import nearest_within
from ..prepare.slices import SliceLayer

#: Thresholds searched for the best Dice.
THRESHOLDS = np.round(np.arange(0.01, 1.0, 0.01), 2)


def middle_slice(labelled: Sequence[int]) -> int:
    """The slice to hold out: the middle of the labelled slices (the lower middle for an even count).

    It never is the first or last labelled slice when there are three or more, so it always has
    a neighbour on each side to be interpolated from.
    """
    if len(labelled) < 3:
        raise CardioScarError(f"Leave-one-slice-out needs at least 3 labelled slices, got {len(labelled)}")
    return int(sorted(labelled)[(len(labelled) - 1) // 2])


def scored_nodes(points_lps: np.ndarray, labels: SliceLayer, half_width_mm: float,
                 myocardium_labels: Iterable[int], scar_labels: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """(node indices, truth 0/1) of the nodes scored on a held-out slice of labels (see module doc)."""
    _, pixel, inside = nodes_in_pixels(points_lps, labels, half_width_mm)
    nodes = np.flatnonzero(inside)
    value = labels.values[pixel[nodes, 1], pixel[nodes, 0]]
    myocardium = np.isin(value, list(myocardium_labels))
    return nodes[myocardium], np.isin(value[myocardium], list(scar_labels)).astype(np.float64)


def nodes_in_pixels(points_lps: np.ndarray, layer: SliceLayer,
                    half_width_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per node: its signed distance (mm) from the slice's plane, the (i, j) of the pixel square it
    falls in, and whether it lies within ``half_width_mm`` of the plane (half-open, like a slab)
    and inside the pixel grid.

    The one reading of "which pixel is this node on" for every scoring of slices (the held-out
    slice here, ``evaluate --truth-image`` in :mod:`cardioscar.evaluate.label_truth`)."""
    if not half_width_mm > 0:
        raise CardioScarError(f"the scoring half-width must be > 0 mm, got {half_width_mm}")
    index = layer.lps_to_index(points_lps)
    near = (index[:, 2] >= -half_width_mm) & (index[:, 2] < half_width_mm)
    pixel = np.floor(index[:, :2] + 0.5).astype(np.int64)
    rows, cols = layer.shape
    inside = near & (pixel[:, 0] >= 0) & (pixel[:, 0] < cols) & (pixel[:, 1] >= 0) & (pixel[:, 1] < rows)
    return index[:, 2], pixel, inside


def filled_outside(layer: SliceLayer, inside: np.ndarray) -> SliceLayer:
    """A copy of ``layer`` whose pixels outside ``inside`` take the value of the nearest inside pixel.

    For the yardsticks: a node that an interpolated wall puts into a neighbour's blood pool then
    copies the nearest wall pixel of that slice instead of reading "no scar" there.
    """
    inside = np.asarray(inside, dtype=bool)
    if not inside.any():
        return layer
    return dataclasses.replace(layer, values=nearest_within(layer.values, inside,
                                                            sampling=(layer.spacing[1], layer.spacing[0])))


def held_out_scores(probability: np.ndarray, truth: np.ndarray,
                    uncertainty: np.ndarray | None = None) -> dict:
    """Dice at 0.5, best Dice and threshold, AUC, volume error (node counts; the nodes of a voxel
    mesh have equal shares) and, with ``uncertainty``, how well it finds the nodes wrong at 0.5
    next to the same AUC for ``-|p - 0.5|``. Undefined values are None."""
    probability = np.asarray(probability, dtype=float)
    truth = np.asarray(truth, dtype=float)
    best_threshold, best_dice = metrics.best_threshold(probability, truth, near=0.0, grid=THRESHOLDS)  # lowest wins ties
    area = metrics.auc(probability, truth)
    scores = {
        "dice": metrics.dice(probability, truth, 0.5),
        "best_dice": best_dice,
        "best_threshold": best_threshold,
        "auc": None if math.isnan(area) else area,
        "volume_error": metrics.volume_error(probability, truth),
    }
    if uncertainty is not None:
        scores["uncertainty_wrong_auc"] = wrong_node_auc(uncertainty, probability, truth)
        scores["margin_wrong_auc"] = wrong_node_auc(-np.abs(probability - 0.5), probability, truth)
    return scores
