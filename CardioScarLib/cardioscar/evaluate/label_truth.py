"""The truth of the acquired slices, sampled at the mesh's nodes (``cardioscar evaluate --truth-image``).

Why: on real data the 3D scar is unknown; only the acquired slices carry the experts' labels. A
reconstruction can be scored there, and honestly so on a slice it was not trained on (prepare
without slice k, evaluate on slice k: leave-one-slice-out on the user's own case).

The slices are targets in [0, 1] as ``prepare`` makes them (a label map's scar labels -> 1, its
other myocardium -> 0, NaN outside the myocardium). A node is scored on a slice when it lies in
that slice's slab (``half_thickness``, half-open, as prepare's groups) and inside its pixel grid,
on a pixel with a target (:func:`cardioscar.evaluate.heldout.nodes_in_pixels`); a node in the
slabs of several slices is scored once, on the nearest plane. Its truth is that pixel's target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import CardioScarError
from ..prepare.slices import SliceLayer
from .heldout import nodes_in_pixels

#: Point fields ``evaluate --write-truth`` puts on the mesh.
TRUTH_FIELD, SCORED_FIELD, SLICE_FIELD = "scar_truth", "scar_truth_scored", "scar_truth_slice"


@dataclass
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
    points = np.asarray(points_lps, dtype=np.float64)
    raise CardioScarError(f"{image_name} does not overlap {mesh_name}: no node lies on its chosen slices (within their "
                          f"slabs and pixel grids); slices span LPS {_span(box)} mm, the mesh {_span(points)} mm "
                          "(another patient's or frame's image, or a mesh in other units?)")


def _span(points: np.ndarray) -> str:
    """``[x0..x1, y0..y1, z0..z1]`` of points, rounded to the millimetre."""
    low, high = points.min(axis=0), points.max(axis=0)
    return "[" + ", ".join(f"{a:.0f}..{b:.0f}" for a, b in zip(low, high)) + "]"
