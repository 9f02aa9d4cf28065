"""Is a mesh given to ``apply`` in the units and at the size of the one the model was trained on?

Why: the network maps normalised coordinates to scar. A mesh in metres (a model trained in
millimetres) shrinks to a dot inside the training box, so every node gets the value of one point
and the result is garbage (Dice 0.005 in the issue-21 probe), while the "outside the trained
region" test passes. The coordinate scaler in every checkpoint records the training mesh's
extent; new checkpoints also record its node spacing (``dataset_info.node_spacing_mm``).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial import cKDTree

from ..errors import CardioScarError
from ..io.meshio import bounds_text

logger = logging.getLogger(__name__)

#: How much larger or smaller than the training mesh a mesh may be (bounding-box diagonal) before
#: it is refused: a sub-region or a neighbouring patient stays well inside, unit mix-ups (x10, x25.4,
#: x1000) do not.
MAX_EXTENT_RATIO = 5.0
#: The same for the median distance of a node to its nearest neighbour: a mesh refined or
#: coarsened for a simulation stays inside, a change of units does not.
MAX_SPACING_RATIO = 20.0
#: The share of a mesh's nodes that may lie outside the training mesh's box (5 % of its size
#: beyond each side, as ``predict_on_points`` warns): another mesh of the same heart lies inside;
#: a mesh read in the other frame (a RAS file without its SPACE marker) or another patient's
#: does not, and the network's values there are extrapolation.
MAX_OUTSIDE_SHARE = 0.5
_SPACING_SAMPLE = 20000


def node_spacing(points: np.ndarray) -> float:
    """Median distance (mm) from a node to its nearest other node (NaN for fewer than 2 distinct
    nodes); on a fixed sample of at most 20,000 nodes for large meshes."""
    unique = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(unique) < 2:
        return float("nan")
    sample = unique[np.random.default_rng(0).choice(len(unique), _SPACING_SAMPLE, replace=False)] \
        if len(unique) > _SPACING_SAMPLE else unique
    distances, _ = cKDTree(unique).query(sample, k=2)
    return float(np.median(distances[:, 1]))


def check_same_scale(dataset_info: dict, points_lps: np.ndarray, mesh_name: str) -> None:
    """Refuse a mesh whose extent or node spacing differs from the training mesh's by more than
    :data:`MAX_EXTENT_RATIO` / :data:`MAX_SPACING_RATIO`. A checkpoint without a recorded node
    spacing (older files, the reference tool's) is checked on its extent only, with a warning."""
    points = np.asarray(points_lps, dtype=np.float64)
    trained = np.asarray(dataset_info["scaler_max"], dtype=np.float64) - np.asarray(dataset_info["scaler_min"])
    trained_diagonal = float(np.linalg.norm(trained))
    diagonal = float(np.linalg.norm(np.ptp(points, axis=0))) if len(points) else 0.0
    if trained_diagonal > 0 and diagonal > 0:
        ratio = diagonal / trained_diagonal
        if not 1 / MAX_EXTENT_RATIO <= ratio <= MAX_EXTENT_RATIO:
            raise CardioScarError(
                f"{mesh_name} spans {diagonal:.4g} (bounding-box diagonal) but the model was trained on a mesh "
                f"spanning {trained_diagonal:.4g} mm ({ratio:.4g} times): {_units_hint(ratio)}")
    recorded = dataset_info.get("node_spacing_mm")
    if recorded is None:
        logger.warning("The checkpoint records no node spacing (an older file): %s is compared with the training "
                       "mesh on its extent only", mesh_name)
        return
    spacing = node_spacing(points)
    if np.isfinite(spacing) and spacing > 0 and float(recorded) > 0:
        ratio = spacing / float(recorded)
        if not 1 / MAX_SPACING_RATIO <= ratio <= MAX_SPACING_RATIO:
            raise CardioScarError(
                f"{mesh_name} has a median node spacing of {spacing:.4g} but the model was trained on a mesh with "
                f"{float(recorded):.4g} mm ({ratio:.4g} times): {_units_hint(ratio)}")
    _check_overlap(dataset_info, points, mesh_name)


def _check_overlap(dataset_info: dict, points: np.ndarray, mesh_name: str) -> None:
    """Refuse a mesh of the right size that lies mostly outside the region the model was trained on."""
    low = np.asarray(dataset_info["scaler_min"], dtype=np.float64)
    high = np.asarray(dataset_info["scaler_max"], dtype=np.float64)
    margin = 0.05 * np.maximum(high - low, 1e-9)
    outside = float(np.mean(np.any((points < low - margin) | (points > high + margin), axis=1))) if len(points) else 0.0
    if outside > MAX_OUTSIDE_SHARE:
        raise CardioScarError(
            f"{mesh_name}: {100 * outside:.0f}% of its nodes (LPS {bounds_text(points)}) lie outside the region the "
            f"model was trained on (LPS {bounds_text(np.array([low, high]))}): check the mesh's frame (its SPACE=LPS "
            "or SPACE=RAS marker; none = LPS) or apply the model trained on this heart")


def _units_hint(ratio: float) -> str:
    if ratio < 1:
        return "if the mesh is in metres or centimetres, scale it to millimetres; otherwise apply the model to the mesh it was trained for"
    return "if the mesh is in micrometres, scale it to millimetres; otherwise apply the model to the mesh it was trained for"
