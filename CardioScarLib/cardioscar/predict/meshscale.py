"""Is a mesh given to ``apply`` in the units and at the size of the one the model was trained on?

Why: the network maps normalised coordinates to scar. A mesh in metres (a model trained in
millimetres) shrinks to a dot inside the training box, so every node gets the value of one point
and the result is garbage (Dice 0.005 in the issue-21 probe), while the "outside the trained
region" test passes. The coordinate scaler in every checkpoint records the training mesh's
extent; new checkpoints also record its node spacing (``dataset_info.node_spacing_mm``).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy.spatial import cKDTree

from ..errors import CardioScarError

logger = logging.getLogger(__name__)

#: How much larger or smaller than the training mesh a mesh may be (bounding-box diagonal) before
#: it is refused: a sub-region or a neighbouring patient stays well inside, unit mix-ups (x10, x25.4,
#: x1000) do not.
MAX_EXTENT_RATIO = 5.0
#: The same for the median distance of a node to its nearest neighbour: a mesh refined or
#: coarsened for a simulation stays inside, a change of units does not.
MAX_SPACING_RATIO = 20.0
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
    try:
        # NaN: a model trained on one node, 0: on a mesh whose nodes are each written twice (node_spacing's
        # answers, checked on extent). Text ended in a ValueError traceback (round 18); True was read as
        # 1 mm, a negative spacing skipped the check without a word and inf blamed the mesh's units (round 21)
        spacing_mm = float("-inf") if isinstance(recorded, bool) else float(recorded)
    except (TypeError, ValueError):
        spacing_mm = float("-inf")
    if spacing_mm < 0 or math.isinf(spacing_mm):
        raise CardioScarError(f"The checkpoint's dataset_info.node_spacing_mm is {recorded!r}, not a number of mm (0 or "
                              "more; a damaged or hand-edited file): retrain the model or restore a backup")
    recorded = spacing_mm
    spacing = node_spacing(points)
    if np.isfinite(spacing) and spacing > 0 and recorded > 0:
        ratio = spacing / recorded
        if not 1 / MAX_SPACING_RATIO <= ratio <= MAX_SPACING_RATIO:
            raise CardioScarError(
                f"{mesh_name} has a median node spacing of {spacing:.4g} but the model was trained on a mesh with "
                f"{recorded:.4g} mm ({ratio:.4g} times): {_units_hint(ratio)}")


#: The largest share of a mesh's nodes that may lie outside the training mesh's box (widened by
#: 5 % of its size per axis) before ``apply`` refuses it; between 5 % and this, a warning.
MAX_OUTSIDE_FRACTION = 0.5


def check_inside_training_box(scaler_min: np.ndarray, scaler_max: np.ndarray, points_lps: np.ndarray,
                              mesh_name: str) -> None:
    """Refuse a mesh most of whose nodes lie outside the box of the mesh the model was trained on.

    Why: the network has seen no coordinate there and answers anyway. The training box holds
    every training-mesh node, so the patient's own meshes (refined, a surface, a sub-region) lie
    inside; a mesh of the same size elsewhere does not: a RAS mesh without its ``SPACE`` marker
    (x and y mirrored; 74 % of the phantom's nodes outside), another patient, another scan position.
    """
    low = np.asarray(scaler_min, dtype=np.float64)
    size = np.asarray(scaler_max, dtype=np.float64) - low
    relative = (np.asarray(points_lps, dtype=np.float64) - low) / np.where(size > 0, size, 1.0)
    outside = float(np.mean(np.any((relative < -0.05) | (relative > 1.05), axis=1))) if len(relative) else 0.0
    if outside > MAX_OUTSIDE_FRACTION:
        raise CardioScarError(
            f"{mesh_name}: {100 * outside:.0f}% of its nodes lie outside the box of the mesh the model was trained on "
            f"(LPS {np.round(low, 1).tolist()} to {np.round(low + size, 1).tolist()} mm); apply the model to that "
            "patient's mesh, in its frame (a RAS mesh needs its SPACE=RAS marker)")


def _units_hint(ratio: float) -> str:
    if ratio < 1:
        return "if the mesh is in metres or centimetres, scale it to millimetres; otherwise apply the model to the mesh it was trained for"
    return "if the mesh is in micrometres, scale it to millimetres; otherwise apply the model to the mesh it was trained for"


#: Nodes of the training mesh a checkpoint keeps (float32, 48 kB): enough for the median distance
#: below to tell the same heart from another one (``Testing/benchmarks/other_mesh_check.py``).
MESH_SAMPLE_SIZE = 4000
#: The least median distance (mm) at which a mesh is named as lying away from the training mesh;
#: above it, the allowance grows with the kept sample's own node spacing (a sparse sample of a
#: coarse mesh lies farther from a finer mesh of the same heart).
MIN_ALLOWED_DISTANCE_MM = 3.0
#: The allowance in node spacings of the kept sample: the same heart's meshes lay up to 1.18 of them
#: away, EMIDEC's other patients from 1.43 (``Testing/benchmarks/ROBUSTNESS.md``).
ALLOWED_SAMPLE_SPACINGS = 1.5


def mesh_sample(points: np.ndarray) -> np.ndarray:
    """Up to :data:`MESH_SAMPLE_SIZE` distinct nodes of a mesh (float32 LPS mm), drawn uniformly
    with a fixed seed, so that a checkpoint can say later where its training mesh lay without
    keeping the whole mesh (a simulation mesh may hold millions of nodes)."""
    unique = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(unique) > MESH_SAMPLE_SIZE:
        unique = unique[np.sort(np.random.default_rng(0).choice(len(unique), MESH_SAMPLE_SIZE, replace=False))]
    return unique.astype(np.float32)


def median_distance_to_sample(sample: np.ndarray, points: np.ndarray) -> float:
    """Median distance (mm) from the nodes ``points`` (a fixed sample of at most 20,000 of them) to
    their nearest node of ``sample``."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) > _SPACING_SAMPLE:
        points = points[np.random.default_rng(0).choice(len(points), _SPACING_SAMPLE, replace=False)]
    distances, _ = cKDTree(np.asarray(sample, dtype=np.float64)).query(points)
    return float(np.median(distances))


def allowed_distance(sample_spacing_mm: float) -> float:
    """The median distance (mm) up to which a mesh passes as the training mesh's heart."""
    return max(MIN_ALLOWED_DISTANCE_MM, ALLOWED_SAMPLE_SPACINGS * float(sample_spacing_mm))


def warn_if_another_heart(sample: np.ndarray, points_lps: np.ndarray, mesh_name: str) -> None:
    """Warn in one line when the nodes ``points_lps`` lie, in the median, farther from the training
    mesh's kept ``sample`` than :func:`allowed_distance` of the sample's node spacing.

    Why: another patient's heart of the same size and place passes the box and scale checks and the
    network paints a scar learnt elsewhere onto it. Another mesh of the same heart (finer, coarser,
    its surface, a sub-region) lies on the training mesh and passes. A warning, not a refusal: a
    registered follow-up or a deliberately displaced mesh is the user's call.
    """
    distance = median_distance_to_sample(sample, points_lps)
    allowed = allowed_distance(node_spacing(sample))
    if distance > allowed:
        logger.warning("%s lies a median %.1f mm from the mesh the model was trained on (%.1f mm allowed): is it the "
                       "same heart, in the same frame?", mesh_name, distance, allowed)
