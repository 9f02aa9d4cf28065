"""Scoring a reconstruction on a slice it was not given (leave-one-slice-out).

Why: on real data the 3D scar is unknown; only the acquired slices carry expert labels. Holding
one slice out of the reconstruction and comparing the field on that slice's nodes with its labels
is the one honest accuracy figure available there, and the figure users care about (how well the
scar between the slices is rebuilt).

A node is scored when it lies within ``half_width_mm`` of the held-out plane (half-open, like a
slab) and inside that slice's pixel grid; its truth is the scar label of the pixel it falls in.
Nodes in pixels that are not myocardium are not scored: the label says nothing about scar there.

The same scoring on any chosen slices (``cardioscar evaluate --truth-image``, the user's own
leave-one-slice-out: prepare without slice k, evaluate on slice k): the slices are targets in
[0, 1] as ``prepare`` makes them (a label map's scar labels -> 1, its other myocardium -> 0, NaN
outside the myocardium); a node is scored on a slice when it lies in that slice's slab
(``half_thickness``) inside its grid on a pixel with a target (:func:`sample_slice_truth`); a node
in the slabs of several slices is scored once, on the nearest plane.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import numpy as np

from . import metrics
from .metrics import wrong_node_auc
from ..errors import CardioScarError
from ..io.meshio import bounds_text
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
    slice, ``evaluate --truth-image``: :func:`sample_slice_truth`)."""
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
    next to the same AUC for ``-|p - 0.5|``. Undefined values are None: on a scar-free held-out truth
    Dice, best Dice and its threshold (as ``evaluate`` reports them, :func:`metrics.evaluate_fields`)."""
    probability = np.asarray(probability, dtype=float)
    truth = np.asarray(truth, dtype=float)
    best_threshold = best_dice = score = None
    if (truth >= 0.5).any():
        best_threshold, best_dice = metrics.best_threshold(probability, truth, near=0.0, grid=THRESHOLDS)  # lowest wins ties
        score = metrics.dice(probability, truth, 0.5)
    area = metrics.auc(probability, truth)
    scores = {
        "dice": score,
        "best_dice": best_dice,
        "best_threshold": best_threshold,
        "auc": None if math.isnan(area) else area,
        "volume_error": metrics.volume_error(probability, truth),
    }
    if uncertainty is not None:
        scores["uncertainty_wrong_auc"] = wrong_node_auc(uncertainty, probability, truth)
        scores["margin_wrong_auc"] = wrong_node_auc(-np.abs(probability - 0.5), probability, truth)
    return scores


#: Point fields ``evaluate --write-truth`` puts on the mesh.
TRUTH_FIELD, SCORED_FIELD, SLICE_FIELD = "scar_truth", "scar_truth_scored", "scar_truth_slice"


@dataclasses.dataclass
class SliceTruth:
    """The slices' truth at every node of a mesh, and why nodes were not scored."""

    truth: np.ndarray          # (N,) the pixel's target in [0, 1] where scored, NaN elsewhere
    slice_index: np.ndarray    # (N,) index of the slice that scored the node, -1 where none did
    per_slice: list[dict]      # per chosen slice: its nodes in the slab, scored, and why not
    not_scored: dict           # nodes scored on no slice, by reason

    @property
    def scored(self) -> np.ndarray:
        """(N,) bool: the nodes with a truth."""
        return self.slice_index >= 0

    def point_arrays(self) -> dict[str, np.ndarray]:
        """The fields that show on the mesh where the slices' truth falls (NaN: not scored, so a
        later ``evaluate --truth`` on this file refuses it instead of counting those nodes healthy)."""
        return {TRUTH_FIELD: self.truth.astype(np.float32), SCORED_FIELD: self.scored.astype(np.uint8),
                SLICE_FIELD: self.slice_index.astype(np.int32)}


#: What writing the slices' truth would replace on a mesh (:func:`truth_on_the_mesh`).
EARLIER_SCORING = f"an earlier scoring's {TRUTH_FIELD}"
GROUND_TRUTH = f"a {TRUTH_FIELD} that no scoring wrote (a ground truth, as a phantom's)"


def truth_on_the_mesh(point_fields: Iterable[str]) -> str:
    """What writing the slices' truth would replace on a mesh with these point fields, for the
    message of every face that writes it: :data:`EARLIER_SCORING` (a ``scar_truth`` beside its
    ``scar_truth_scored``), :data:`GROUND_TRUTH` (a ``scar_truth`` no scoring wrote: a truth
    mesh's, as every phantom's, the whole ground truth that the slices' truth, NaN off their nodes,
    must not silently replace), or "" when there is none."""
    names = set(point_fields)
    if TRUTH_FIELD not in names:
        return ""
    return EARLIER_SCORING if SCORED_FIELD in names else GROUND_TRUTH


def sample_slice_truth(points_lps: np.ndarray, targets: Sequence[SliceLayer]) -> SliceTruth:
    """The targets of ``targets`` (slices of values in [0, 1], NaN: no truth) at the nodes
    ``points_lps`` (LPS mm); see the module doc for which nodes are scored."""
    points = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
    n = len(points)
    truth = np.full(n, np.nan)
    slice_index = np.full(n, -1, dtype=np.int64)
    nearest = np.full(n, np.inf)
    in_a_slab = np.zeros(n, dtype=bool)
    in_a_grid = np.zeros(n, dtype=bool)
    candidates = []
    for k, layer in enumerate(targets):
        distance, pixel, inside = nodes_in_pixels(points, layer, layer.half_thickness)
        value = np.full(n, np.nan)
        value[inside] = layer.values[pixel[inside, 1], pixel[inside, 0]]
        has_truth = np.isfinite(value)
        nearer = has_truth & (np.abs(distance) < nearest)
        truth[nearer], slice_index[nearer], nearest[nearer] = value[nearer], k, np.abs(distance[nearer])
        slab = layer.in_slab(distance)
        in_a_slab |= slab
        in_a_grid |= inside
        candidates.append((slab, inside, has_truth))
    per_slice = [_slice_counts(layer, k, slab, inside, has_truth, slice_index, truth)
                 for k, (layer, (slab, inside, has_truth)) in enumerate(zip(targets, candidates))]
    unscored = slice_index < 0
    not_scored = {"off_the_slices": int(np.sum(unscored & ~in_a_slab)),
                  "outside_the_image": int(np.sum(unscored & in_a_slab & ~in_a_grid)),
                  "outside_the_myocardium": int(np.sum(unscored & in_a_grid))}
    return SliceTruth(truth=truth, slice_index=slice_index, per_slice=per_slice, not_scored=not_scored)


def _slice_counts(layer: SliceLayer, k: int, slab: np.ndarray, inside: np.ndarray, has_truth: np.ndarray,
                  slice_index: np.ndarray, truth: np.ndarray) -> dict:
    """One slice's line of the report: its nodes in the slab, how many it scored (and of them scar),
    and why the others were not: outside its pixel grid, on a pixel without truth (outside the
    myocardium), or scored on a nearer slice's plane."""
    mine = slice_index == k
    return {"slice": layer.label, "nodes_in_slab": int(slab.sum()), "scored_nodes": int(mine.sum()),
            "scar_nodes": int(np.sum(truth[mine] >= 0.5)), "outside_the_image": int(np.sum(slab & ~inside)),
            "outside_the_myocardium": int(np.sum(inside & ~has_truth)),
            "on_a_nearer_slice": int(np.sum(has_truth & ~mine))}


def check_something_scored(sampled: SliceTruth, points_lps: np.ndarray, targets: Sequence[SliceLayer],
                           mesh_name: str, image_name: str) -> None:
    """Refuse a sampling that scored no node: the image's chosen slices do not overlap the mesh
    (another patient's or frame's image, a mesh in other units), or every node on them lies in
    pixels without truth (the myocardium labels of another map, a mesh off this heart)."""
    if sampled.scored.any():
        return
    if sampled.not_scored["outside_the_myocardium"]:
        raise CardioScarError(f"no node of {mesh_name} scored: its {sampled.not_scored['outside_the_myocardium']} "
                              f"nodes on the chosen slices of {image_name} all lie in pixels outside the myocardium; "
                              "check --myocardium-labels (EMIDEC 2,3,4; ACDC 2) and that the mesh is this image's heart")
    box = np.vstack([layer.footprint_corners_lps() for layer in targets])
    raise CardioScarError(f"{image_name} does not overlap {mesh_name}: no node lies on its chosen slices (within their "
                          f"slabs and pixel grids); slices span LPS {bounds_text(box)} mm, the mesh "
                          f"{bounds_text(points_lps)} mm (another patient's or frame's image, or a mesh in other units?)")

