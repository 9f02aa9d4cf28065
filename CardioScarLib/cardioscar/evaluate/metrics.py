"""Scores of a reconstructed scar field against a known truth (phantom) on the same mesh nodes.

Why these: Dice and the scar volume error are what the method's paper reports, so numbers are
comparable; the ROC AUC scores the probability itself, independent of a threshold; the mean
uncertainty on versus between slices checks that MC dropout is less sure where no pixel
constrained the field.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import vtk
from vtk.util import numpy_support

from ..errors import CardioScarError, in_log_format
from ..io.checks import SAME_NODE_TOLERANCE_MM, check_threshold
from ..io.meshio import node_offset_mm, read_mesh
from ..predict.error_risk import ERROR_RISK_FIELD
from ..io.checks import check_scar_field_name

logger = logging.getLogger(__name__)


def _binary(values: np.ndarray, threshold: float) -> np.ndarray:
    return np.asarray(values, dtype=float).ravel() >= threshold


def check_unit_range(values: np.ndarray, what: str) -> None:
    """Refuse scores of values outside [0, 1].

    Why: a truth of 0/100 (percent) or 0/255 (a mask) binarised at 0.5 counts every partly
    scarred node as scar: a different truth, scored without a word (percent truth on the demo
    phantom: Dice 0.09 instead of 0.18).
    """
    values = np.asarray(values, dtype=float)
    if values.size and (np.nanmin(values) < 0.0 or np.nanmax(values) > 1.0):
        raise CardioScarError(f"{what} ranges {np.nanmin(values):g}..{np.nanmax(values):g}; evaluate needs scar "
                              "fractions or probabilities in [0, 1] (scale a percent or 0/255 field to 0-1 first)")


def _check_same_length(pred: np.ndarray, truth: np.ndarray) -> None:
    if np.size(pred) != np.size(truth):
        raise CardioScarError(f"prediction has {np.size(pred)} values but truth has {np.size(truth)}; "
                              "they must be on the same mesh nodes")


def dice(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> float:
    """Dice overlap of ``pred >= threshold`` and ``truth >= 0.5``; 1.0 when both are empty."""
    _check_same_length(pred, truth)
    p = _binary(pred, threshold)
    t = _binary(truth, 0.5)
    denominator = int(p.sum() + t.sum())
    if denominator == 0:
        return 1.0
    return float(2.0 * np.logical_and(p, t).sum() / denominator)


#: Thresholds :func:`best_threshold` searches by default: 0, 0.01, ..., 1.
THRESHOLD_GRID = np.round(np.arange(101) * 0.01, 2)


def best_threshold(pred: np.ndarray, truth: np.ndarray, near: float = 0.5,
                   grid: np.ndarray = THRESHOLD_GRID) -> tuple[float, float]:
    """The threshold of ``grid`` with the highest Dice, and that Dice.

    Why: Dice at one fixed threshold mixes two things, how well the field ranks nodes and how
    well it is calibrated; the best threshold separates them (a field whose best threshold is far
    from 0.5 ranks well but is biased). Among equal Dice the threshold nearest ``near`` wins (the
    requested threshold, so a field already optimal there reports it; 0: the lowest).
    """
    _check_same_length(pred, truth)
    grid = np.asarray(grid, dtype=float)
    scores = np.array([dice(pred, truth, t) for t in grid])
    best = np.flatnonzero(scores == scores.max())
    index = best[np.argmin(np.abs(grid[best] - near))]
    return float(grid[index]), float(scores[index])


def false_positive_share(pred: np.ndarray, truth: np.ndarray, weights: np.ndarray | None = None,
                         threshold: float = 0.5) -> float:
    """Share of the scored volume called scar at ``threshold`` where the truth is healthy (0-1).

    Why: on a scar-free truth Dice is undefined (no overlap to measure), yet the prediction can be
    wrong; this is what it got wrong, in the same node volumes as :func:`volume_error` (every node
    the same without ``weights``). Defined for every truth, so a report's keys do not depend on it."""
    _check_same_length(pred, truth)
    w = np.ones(np.size(truth)) if weights is None else np.asarray(weights, dtype=float).ravel()
    total = float(w.sum())
    if total <= 0.0:
        return 0.0
    return float(w[_binary(pred, threshold) & ~_binary(truth, 0.5)].sum() / total)


def volume_error(pred: np.ndarray, truth: np.ndarray, weights: np.ndarray | None = None,
                 threshold: float = 0.5) -> float | None:
    """Relative error ``(V_pred - V_truth) / V_truth`` of the thresholded scar volume (signed).

    ``weights`` are per-node volumes (see :func:`node_volumes`); without them every node counts
    the same. ``None`` when the truth has no scar (the relative error is undefined).
    """
    _check_same_length(pred, truth)
    w = np.ones(np.size(truth)) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.size != np.size(truth):
        raise CardioScarError(f"weights have {w.size} values but truth has {np.size(truth)}")
    v_truth = float(w[_binary(truth, 0.5)].sum())
    if v_truth == 0.0:
        return None
    v_pred = float(w[_binary(pred, threshold)].sum())
    return (v_pred - v_truth) / v_truth


def auc(pred: np.ndarray, truth: np.ndarray) -> float:
    """ROC AUC of the probability against the truth binarised at 0.5; NaN if one class only."""
    from sklearn.metrics import roc_auc_score  # here: 1-2 s to import, and the AHA analysis needs only node_volumes

    _check_same_length(pred, truth)
    labels = _binary(truth, 0.5)
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, np.asarray(pred, dtype=float).ravel()))


def node_volumes(dataset: vtk.vtkDataSet) -> np.ndarray:
    """Lumped measure per node: each cell's volume (or area, for a surface) shared equally by its points.

    Uses ``vtkCellSizeFilter``, so any cell type works; a volumetric mesh is weighted by volume,
    a surface mesh (no 3D cells) by area.
    """
    sizes = vtk.vtkCellSizeFilter()
    sizes.SetInputData(dataset)
    sizes.Update()
    cell_data = sizes.GetOutput().GetCellData()
    volume = np.abs(numpy_support.vtk_to_numpy(cell_data.GetArray("Volume")))
    size = volume if volume.sum() > 0 else np.abs(numpy_support.vtk_to_numpy(cell_data.GetArray("Area")))
    weights = np.zeros(dataset.GetNumberOfPoints())
    offsets, connectivity = _cell_arrays(dataset)
    counts = np.diff(offsets)
    share = np.repeat(np.divide(size, counts, out=np.zeros_like(size), where=counts > 0), counts)
    np.add.at(weights, connectivity, share)
    return weights


def _cell_arrays(dataset: vtk.vtkDataSet) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, connectivity) of all cells in cell-id order, read in bulk when VTK allows it."""
    cell_array = None
    if isinstance(dataset, vtk.vtkUnstructuredGrid):
        cell_array = dataset.GetCells()
    elif isinstance(dataset, vtk.vtkPolyData) and dataset.GetNumberOfCells() == dataset.GetNumberOfPolys():
        cell_array = dataset.GetPolys()
    if cell_array is not None:
        return (numpy_support.vtk_to_numpy(cell_array.GetOffsetsArray()).astype(np.int64),
                numpy_support.vtk_to_numpy(cell_array.GetConnectivityArray()).astype(np.int64))
    ids = vtk.vtkIdList()
    offsets = [0]
    connectivity: list[int] = []
    for cell in range(dataset.GetNumberOfCells()):
        dataset.GetCellPoints(cell, ids)
        connectivity.extend(ids.GetId(k) for k in range(ids.GetNumberOfIds()))
        offsets.append(len(connectivity))
    return np.asarray(offsets, dtype=np.int64), np.asarray(connectivity, dtype=np.int64)


def on_slice_mask(node_ids: np.ndarray, n_nodes: int) -> np.ndarray:
    """Boolean mask of the nodes inside any slice footprint (``GroupMapping.node_ids``)."""
    mask = np.zeros(n_nodes, dtype=bool)
    mask[np.asarray(node_ids, dtype=np.int64)] = True
    return mask


def uncertainty_on_off_slices(uncertainty: np.ndarray, on_slice_mask: np.ndarray) -> tuple[float | None, float | None]:
    """Mean uncertainty of the nodes on the slices and of those between them (None if no such nodes)."""
    u = np.asarray(uncertainty, dtype=float).ravel()
    mask = np.asarray(on_slice_mask, dtype=bool).ravel()
    if u.size != mask.size:
        raise CardioScarError(f"uncertainty has {u.size} values but the on-slice mask has {mask.size}")
    on = float(u[mask].mean()) if mask.any() else None
    off = float(u[~mask].mean()) if (~mask).any() else None
    return on, off


def wrong_node_auc(score: np.ndarray, probability: np.ndarray, truth: np.ndarray,
                   threshold: float = 0.5) -> float | None:
    """ROC AUC of ``score`` for finding the nodes wrong at ``threshold``; None if none or all are wrong."""
    from sklearn.metrics import roc_auc_score

    wrong = (np.asarray(probability) >= threshold) != (np.asarray(truth) >= 0.5)
    if wrong.all() or not wrong.any():
        return None
    return float(roc_auc_score(wrong, np.asarray(score, dtype=float)))


def _wrong_node_scores(probability: np.ndarray, truth: np.ndarray, uncertainty: np.ndarray | None,
                       error_risk: np.ndarray | None, on_slice_mask: np.ndarray | None, threshold: float) -> dict:
    """How well each spread finds the nodes wrong at ``threshold`` (issue 18, item 5): the MC
    spread, the plain margin ``-|p - threshold|`` (the yardstick) and ``scar_error_risk``, with the
    risk's mean on and between the slices when the mask is known."""
    scores = {"uncertainty_wrong_auc": None if uncertainty is None else wrong_node_auc(uncertainty, probability,
                                                                                          truth, threshold),
              "margin_wrong_auc": wrong_node_auc(-np.abs(np.asarray(probability, dtype=float) - threshold),
                                                 probability, truth, threshold)}
    if error_risk is not None:
        on, off = uncertainty_on_off_slices(error_risk, on_slice_mask) if on_slice_mask is not None else (None, None)
        scores.update(error_risk_wrong_auc=wrong_node_auc(error_risk, probability, truth, threshold),
                      error_risk_on_slices=on, error_risk_between_slices=off)
    return scores


def evaluate_fields(probability: np.ndarray, truth: np.ndarray, uncertainty: np.ndarray | None = None,
                    on_slice_mask: np.ndarray | None = None, weights: np.ndarray | None = None,
                    threshold: float = 0.5, error_risk: np.ndarray | None = None) -> dict:
    """All scores in one dict: dice, scar_free_truth, false_positive_share (:func:`false_positive_share`),
    volume_error, auc, mean_uncertainty, uncertainty_on_slices,
    uncertainty_between_slices, best_threshold / best_dice (:func:`best_threshold`), and how well
    the uncertainty, the margin and (given) ``scar_error_risk`` find the nodes wrong at the
    threshold (``*_wrong_auc``; the risk's ``error_risk_on_slices`` / ``_between_slices``).

    Values that cannot be computed (no scar in the truth, one class only, no uncertainty or mask,
    no wrong node) are ``None`` so the dict stays valid JSON. On a scar-free truth
    (``scar_free_truth``) ``dice``, ``best_dice`` and ``best_threshold`` are all None: :func:`dice`
    counts an empty call on an empty truth as 1.0, so the best threshold found one (above the highest
    probability) and reported 1.0 beside a Dice of 0 at the threshold asked; ``false_positive_share``
    then says how much the prediction called scar.
    """
    threshold = check_threshold(threshold, "threshold (--threshold)")
    check_unit_range(probability, "the probability")
    check_unit_range(truth, "the truth")
    area_under = auc(probability, truth)
    on = off = None
    scar_free = not _binary(truth, 0.5).any()
    false_positives = false_positive_share(probability, truth, weights, threshold)
    if scar_free:
        score = threshold_best = dice_best = None
        logger.warning("The truth has no scar (no node >= 0.5): Dice is undefined (dice, best_dice and best_threshold "
                       "are null); the prediction calls %.2f %% of the scored volume scar at %g (false_positive_share)",
                       100.0 * false_positives, threshold)
    else:
        score = dice(probability, truth, threshold)
        threshold_best, dice_best = best_threshold(probability, truth, near=threshold)
    if uncertainty is not None and on_slice_mask is not None:
        on, off = uncertainty_on_off_slices(uncertainty, on_slice_mask)
    if error_risk is not None:
        _check_same_length(error_risk, probability)
    return {
        "dice": score,
        "scar_free_truth": scar_free,
        "false_positive_share": false_positives,
        "volume_error": volume_error(probability, truth, weights, threshold),
        "auc": None if math.isnan(area_under) else area_under,
        "mean_uncertainty": None if uncertainty is None else float(np.mean(uncertainty)),
        "uncertainty_on_slices": on,
        "uncertainty_between_slices": off,
        "threshold": threshold,
        "best_threshold": threshold_best,
        "best_dice": dice_best,
        "n_nodes": int(np.size(truth)),
        **_wrong_node_scores(probability, truth, uncertainty, error_risk, on_slice_mask, threshold),
    }


#: The uncertainty field ``apply`` writes; ``evaluate`` scores it when present.
DEFAULT_UNCERTAINTY_FIELD = "scar_uncertainty"


#: Fields ``apply`` derives from the probability it predicts: none of them is a truth.
DERIVED_FIELDS = {"scar_binary": "the prediction's own threshold (apply --threshold)",
                  DEFAULT_UNCERTAINTY_FIELD: "the MC-dropout spread of the prediction",
                  ERROR_RISK_FIELD: "the prediction's own error estimate"}


def _refuse_truth_made_from_the_prediction(truth_mesh, truth_field: str, probability_field: str,
                                           probability: np.ndarray, truth_name: str) -> None:
    """Refuse as the truth a field ``apply`` derived from this very probability: the truth file
    holds the same probability field, node for node (the prediction, or a copy of it), and the
    truth field is one of :data:`DERIVED_FIELDS`. Scored against its own threshold
    (``scar_binary``), any model got Dice 1 and AUC 1 (the same file and field was refused
    already). A truth equal to the prediction under another name is not refused: a test's perfect
    prediction is one."""
    if truth_field in DERIVED_FIELDS and probability_field in truth_mesh.point_field_names() \
            and np.array_equal(truth_mesh.point_array(probability_field), probability):
        raise CardioScarError(f"--truth-field '{truth_field}' of {truth_name} is {DERIVED_FIELDS[truth_field]}: the "
                              "prediction would be scored against itself; give the true scar (e.g. scar_truth of the "
                              "phantom or label-map mesh)")


def _risk_is_of_this_call(prediction, probability_field: str, probability: np.ndarray, threshold: float,
                          name: str) -> bool:
    """Whether the file's ``scar_error_risk`` is the risk of the call being scored: that of
    ``scar_probability`` at ``threshold``. ``apply`` computes it for the call at its own
    ``--threshold`` (the one ``scar_binary`` holds; 0.5 without one). Scored against the nodes
    wrong at another threshold, or against another field, its AUC measured a call it was never
    made for (a risk at 0.5 scored at 0.3 on the phantom: 0.87 against the margin's 0.98; at its
    own 0.5, 0.96 against 0.97). If not, a warning says what to give and the risk's
    scores are left out; the other scores stand."""
    if probability_field != "scar_probability":
        logger.warning("%s: %s is the risk of scar_probability's call, not of '%s': its scores are left out",
                       name, ERROR_RISK_FIELD, probability_field)
        return False
    binary = prediction.point_array("scar_binary") if prediction.dataset.GetPointData().HasArray("scar_binary") \
        else None
    made_for = probability >= 0.5 if binary is None else np.asarray(binary).ravel() > 0.5
    if np.array_equal(probability >= threshold, made_for):
        return True  # the same call, node for node: the same wrong nodes
    if binary is None:
        what = "the call at 0.5 (apply without --threshold)"
    else:
        low, high = probability[~made_for], probability[made_for]
        what = (f"the call in its scar_binary (apply --threshold between {low.max() if low.size else 0.0:.3g} and "
                f"{high.min() if high.size else 1.0:.3g})")
    logger.warning("%s: %s is the risk of " + in_log_format(what) + ", not of the call at --threshold %g: its scores "
                   "are left out; evaluate at that threshold for them (or apply with --threshold %g)", name,
                   ERROR_RISK_FIELD, threshold, threshold)
    return False


def evaluate_meshes(prediction_path: str | Path, truth_path: str | Path,
                    probability_field: str = "scar_probability", truth_field: str = "scar_truth",
                    uncertainty_field: str = DEFAULT_UNCERTAINTY_FIELD, threshold: float = 0.5,
                    on_slice_mask: np.ndarray | None = None) -> dict:
    """Score the probability field of one mesh against the truth field of another (same nodes).

    Node volumes of the truth mesh weight the volume error. The uncertainty field is optional;
    the on/between-slice split needs ``on_slice_mask``. Both fields must lie in [0, 1] and the
    nodes of the same index at the same place.
    """
    threshold = check_threshold(threshold, "threshold (--threshold)")
    check_prediction_field_names(probability_field, uncertainty_field)
    if probability_field == truth_field and Path(prediction_path).resolve() == Path(truth_path).resolve():
        # the prediction scored against itself: Dice 1, AUC 1, whatever the model did
        raise CardioScarError(f"--prediction and --truth are the same file and field ('{truth_field}'): the score "
                              "would be perfect by construction; give the truth's own field (--truth-field) or file")
    prediction = read_mesh(prediction_path)
    truth_mesh = read_mesh(truth_path)
    if prediction.n_points != truth_mesh.n_points:
        raise CardioScarError(f"{Path(prediction_path).name} has {prediction.n_points} nodes but "
                              f"{Path(truth_path).name} has {truth_mesh.n_points}; evaluate meshes of the same nodes")
    offset = node_offset_mm(prediction, truth_mesh)
    if offset > SAME_NODE_TOLERANCE_MM:
        # the fields are paired by node number: another mesh of as many nodes (or this one renumbered
        # by another tool) scored every node against some other node's truth
        raise CardioScarError(f"{Path(prediction_path).name} and {Path(truth_path).name} have as many nodes but not "
                              f"at the same places (up to {offset:.3g} mm apart); evaluate the prediction on the "
                              "truth's own mesh (apply the model to that file)")
    probability, uncertainty, error_risk = prediction_fields(prediction, probability_field, uncertainty_field)
    truth = truth_mesh.point_array(truth_field)
    check_complete_unit_field(truth, f"{Path(truth_path).name}: field '{truth_field}'")
    _refuse_truth_made_from_the_prediction(truth_mesh, truth_field, probability_field, probability, Path(truth_path).name)
    error_risk = risk_of_this_call(prediction, probability_field, probability, threshold, error_risk)
    return evaluate_fields(probability, truth, uncertainty, on_slice_mask,
                           node_volumes(truth_mesh.dataset), threshold, error_risk)


def check_prediction_field_names(probability_field: str, uncertainty_field: str) -> None:
    """Refuse, before any file is read, a probability field that is a spread, and an uncertainty
    field that is the probability itself (every scoring of a prediction, any truth)."""
    check_scar_field_name(probability_field, "--probability-field")
    if uncertainty_field == probability_field:
        raise CardioScarError(f"--uncertainty-field '{uncertainty_field}' is the probability field itself: give the "
                              "MC-dropout spread (scar_uncertainty from cardioscar apply)")


def check_complete_unit_field(values: np.ndarray, what: str) -> None:
    """Refuse a field with NaN or infinite values, or outside [0, 1] (:func:`check_unit_range`)."""
    if not np.all(np.isfinite(values)):
        raise CardioScarError(f"{what} holds NaN or infinite values at {int(np.sum(~np.isfinite(values)))} nodes; "
                              "give a complete field")
    check_unit_range(values, what)


def prediction_fields(prediction, probability_field: str,
                      uncertainty_field: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The prediction mesh's probability (checked complete and in [0, 1]), its uncertainty and its
    ``scar_error_risk`` (None where absent: the default uncertainty field may be missing, a field
    named on purpose must exist, or a typo would print ``"mean_uncertainty": null`` as if the
    prediction had none)."""
    probability = prediction.point_array(probability_field)
    check_complete_unit_field(probability, f"{_name(prediction)}: field '{probability_field}'")
    point_data = prediction.dataset.GetPointData()
    named = uncertainty_field != DEFAULT_UNCERTAINTY_FIELD
    has_uncertainty = point_data.GetArray(uncertainty_field) is not None
    uncertainty = prediction.point_array(uncertainty_field) if has_uncertainty or named else None
    # scored beside the uncertainty when apply wrote it (cardioscar.predict.error_risk)
    error_risk = prediction.point_array(ERROR_RISK_FIELD) if point_data.GetArray(ERROR_RISK_FIELD) is not None else None
    return probability, uncertainty, error_risk


def risk_of_this_call(prediction, probability_field: str, probability: np.ndarray, threshold: float,
                      error_risk: np.ndarray | None) -> np.ndarray | None:
    """``error_risk`` when it is the risk of the call being scored, else None (with the warning of
    :func:`_risk_is_of_this_call`)."""
    if error_risk is None or not _risk_is_of_this_call(prediction, probability_field, probability, threshold,
                                                       _name(prediction)):
        return None
    return error_risk


def _name(mesh) -> str:
    """The mesh's file name for messages ("the prediction" when it was not read from a file)."""
    return "the prediction" if mesh.path is None else Path(mesh.path).name
