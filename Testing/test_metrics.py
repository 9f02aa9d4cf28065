"""Metrics against hand computations, and mesh evaluation on real files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import vtk

from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import Mesh, write_mesh
from cardioscar.evaluate.metrics import (auc, best_threshold, dice, evaluate_fields, evaluate_meshes,
                                         false_positive_share, node_volumes, on_slice_mask, uncertainty_on_off_slices,
                                         volume_error)


def test_dice_by_hand() -> None:
    pred = np.array([0.9, 0.6, 0.2, 0.7, 0.1])
    truth = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    # pred >= 0.5 -> {0, 1, 3}; truth -> {0, 3, 4}; overlap {0, 3}: 2*2 / (3+3)
    assert dice(pred, truth) == pytest.approx(4 / 6)
    # threshold 0.65 -> {0, 3}: 2*2 / (2+3); truth still binarised at 0.5
    assert dice(pred, truth, threshold=0.65) == pytest.approx(4 / 5)
    assert dice(np.zeros(4), np.zeros(4)) == 1.0
    assert dice(np.ones(4), np.zeros(4)) == 0.0
    with pytest.raises(CardioScarError, match="same mesh nodes"):
        dice(np.zeros(3), np.zeros(4))


def test_auc_perfect_inverted_single_class() -> None:
    truth = np.array([0, 0, 1, 1, 0.8, 0.2])
    score = np.array([0.1, 0.2, 0.9, 0.7, 0.8, 0.3])
    assert auc(score, truth) == 1.0
    assert auc(1.0 - score, truth) == 0.0
    # one swapped pair among 3x3 pairs -> 8/9
    assert auc(np.array([0.1, 0.2, 0.9, 0.7, 0.25, 0.3]), truth) == pytest.approx(8 / 9)
    assert math.isnan(auc(score, np.zeros(6)))


def test_volume_error_weighted() -> None:
    truth = np.array([1.0, 1.0, 0.0, 0.0])
    weights = np.array([2.0, 1.0, 3.0, 4.0])
    assert volume_error(np.array([1.0, 0.0, 1.0, 0.0]), truth, weights) == pytest.approx((5 - 3) / 3)
    assert volume_error(np.array([1.0, 0.0, 0.0, 0.0]), truth) == pytest.approx(-0.5)
    assert volume_error(np.ones(4), np.zeros(4)) is None


def test_node_volumes_tetra_and_surface() -> None:
    points = vtk.vtkPoints()
    for p in [(0, 0, 0), (2, 0, 0), (0, 3, 0), (0, 0, 4)]:
        points.InsertNextPoint(p)
    grid = vtk.vtkUnstructuredGrid()
    grid.SetPoints(points)
    grid.InsertNextCell(vtk.VTK_TETRA, 4, [0, 1, 2, 3])
    np.testing.assert_allclose(node_volumes(grid), np.full(4, 4.0 / 4))  # volume 2*3*4/6 = 4

    square = vtk.vtkPolyData()
    sq_points = vtk.vtkPoints()
    for p in [(0, 0, 0), (2, 0, 0), (2, 2, 0), (0, 2, 0)]:
        sq_points.InsertNextPoint(p)
    polys = vtk.vtkCellArray()
    polys.InsertNextCell(3, [0, 1, 2])
    polys.InsertNextCell(3, [0, 2, 3])
    square.SetPoints(sq_points)
    square.SetPolys(polys)
    # each triangle has area 2: nodes 0 and 2 get 2/3 + 2/3, nodes 1 and 3 get 2/3
    np.testing.assert_allclose(node_volumes(square), [4 / 3, 2 / 3, 4 / 3, 2 / 3])


def test_uncertainty_split_and_evaluate_fields() -> None:
    mask = on_slice_mask(np.array([0, 2, 2]), 4)
    np.testing.assert_array_equal(mask, [True, False, True, False])
    on, off = uncertainty_on_off_slices(np.array([0.1, 0.5, 0.3, 0.7]), mask)
    assert on == pytest.approx(0.2) and off == pytest.approx(0.6)
    result = evaluate_fields(np.array([0.9, 0.1, 0.8, 0.2]), np.array([1, 0, 0, 0]),
                             np.array([0.1, 0.5, 0.3, 0.7]), mask)
    assert result["dice"] == pytest.approx(2 / 3)
    assert result["volume_error"] == pytest.approx(1.0)
    assert result["auc"] == 1.0
    assert result["uncertainty_between_slices"] == pytest.approx(0.6)
    # only thresholds in (0.8, 0.9] keep node 0 alone: Dice 1; the grid value nearest 0.5 is 0.81
    assert (result["best_threshold"], result["best_dice"]) == (pytest.approx(0.81), 1.0)
    bare = evaluate_fields(np.zeros(4), np.zeros(4))
    assert bare["auc"] is None and bare["volume_error"] is None and bare["uncertainty_on_slices"] is None


def test_evaluate_meshes_on_files(tmp_path, small_phantom) -> None:
    phantom, paths = small_phantom
    rng = np.random.default_rng(0)
    probability = np.clip(phantom.truth + rng.normal(0, 0.05, phantom.truth.shape), 0, 1)
    uncertainty = rng.uniform(0, 0.1, phantom.truth.shape)
    prediction_path = tmp_path / "pred.vtu"
    write_mesh(Mesh(dataset=phantom.mesh, space="LPS"), prediction_path,
               {"scar_probability": probability, "scar_uncertainty": uncertainty})
    mask = np.zeros(len(probability), dtype=bool)
    mask[::3] = True
    result = evaluate_meshes(prediction_path, paths["mesh"], on_slice_mask=mask)
    weights = node_volumes(phantom.mesh)
    assert result == pytest.approx(evaluate_fields(probability, phantom.truth, uncertainty, mask, weights))
    assert 0.8 < result["dice"] < 1.0

    other = tmp_path / "other.vtk"
    write_mesh(Mesh(dataset=phantom.surface, space="LPS"), other, {})
    with pytest.raises(CardioScarError, match="nodes"):
        evaluate_meshes(prediction_path, other)
    with pytest.raises(CardioScarError, match="no point field 'missing'"):
        evaluate_meshes(prediction_path, paths["mesh"], probability_field="missing")


def test_best_threshold_by_hand_and_through_the_command_line(tmp_path, small_phantom) -> None:
    """A field that ranks the nodes perfectly but is scaled down: Dice 0 at 0.5, 1 at its best
    threshold, which `cardioscar evaluate` reports beside the requested one (before: no such keys)."""
    import json

    from conftest import run_cli_in_process

    pred, truth = np.array([0.05, 0.3, 0.35, 0.1]), np.array([0, 1, 1, 0])
    assert best_threshold(pred, truth) == (pytest.approx(0.3), 1.0)  # (0.1, 0.3] all score 1; 0.3 is nearest 0.5
    assert best_threshold(pred, truth, near=0.0) == (pytest.approx(0.11), 1.0)
    assert best_threshold(np.array([0.2, 0.2]), np.array([1, 0])) == (pytest.approx(0.2), pytest.approx(2 / 3))
    with pytest.raises(CardioScarError, match="same mesh nodes"):
        best_threshold(np.zeros(3), np.zeros(4))

    phantom, paths = small_phantom
    scaled = 0.4 * phantom.truth + 0.05
    prediction_path = tmp_path / "scaled.vtk"
    write_mesh(Mesh(dataset=phantom.mesh, space="LPS"), prediction_path, {"scar_probability": scaled})
    done = run_cli_in_process("evaluate", "--prediction", prediction_path, "--truth", paths["mesh"],
                              "--json", tmp_path / "m.json")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert metrics["dice"] == 0.0 and metrics["threshold"] == 0.5
    # the truth is binarised at 0.5, which the scaled field moves to 0.4 * 0.5 + 0.05
    assert metrics["best_dice"] == 1.0 and metrics["best_threshold"] == pytest.approx(0.25)


def test_a_scar_free_truth_has_no_dice_and_reports_its_false_positives(tmp_path, small_phantom, caplog) -> None:
    """On a truth with no scar ``dice`` was 0.0 beside ``best_dice`` 1.0 (an empty call at a
    threshold above every probability matched the empty truth): now both are null, with
    ``best_threshold``, and ``false_positive_share`` says how much was called scar; a scarred truth
    keeps its figures. Through the Python API and the command line's JSON."""
    import json

    from conftest import run_cli_in_process
    from cardioscar.evaluate import heldout

    pred, healthy, weights = np.array([0.6, 0.2, 0.1, 0.7]), np.zeros(4), np.array([1.0, 1.0, 1.0, 2.0])
    assert false_positive_share(pred, healthy, weights) == pytest.approx(3 / 5)
    scores = evaluate_fields(pred, healthy, weights=weights)
    assert (scores["dice"], scores["best_dice"], scores["best_threshold"]) == (None, None, None)
    assert scores["scar_free_truth"] and scores["false_positive_share"] == pytest.approx(3 / 5)
    assert "The truth has no scar (no node >= 0.5): Dice is undefined" in caplog.text
    assert "calls 60.00 % of the scored volume scar at 0.5" in caplog.text
    empty = evaluate_fields(np.zeros(4), healthy)  # an empty call on an empty truth: undefined too, nothing wrong
    assert (empty["dice"], empty["best_dice"], empty["false_positive_share"]) == (None, None, 0.0)
    assert heldout.held_out_scores(pred, healthy)["best_dice"] is None  # the benchmarks' scores say the same
    scarred = evaluate_fields(pred, np.array([0.0, 0.0, 0.0, 1.0]), weights=weights)
    assert not scarred["scar_free_truth"] and scarred["dice"] == pytest.approx(2 / 3)
    assert scarred["false_positive_share"] == pytest.approx(1 / 5) and scarred["best_dice"] == 1.0

    phantom, paths = small_phantom
    prediction_path, truth_path = tmp_path / "called.vtk", tmp_path / "healthy.vtk"
    write_mesh(Mesh(dataset=phantom.mesh, space="LPS"), prediction_path, {"scar_probability": 0.9 * phantom.truth})
    write_mesh(Mesh(dataset=phantom.mesh, space="LPS"), truth_path, {"scar_truth": np.zeros_like(phantom.truth)})
    done = run_cli_in_process("evaluate", "--prediction", prediction_path, "--truth", truth_path,
                              "--json", tmp_path / "m.json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed == json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert (printed["dice"], printed["best_dice"], printed["best_threshold"]) == (None, None, None)
    volumes = node_volumes(phantom.mesh)
    expected = float(volumes[phantom.truth >= 0.5 / 0.9].sum() / volumes.sum())
    assert printed["scar_free_truth"] and printed["false_positive_share"] == pytest.approx(expected) and expected > 0.01
    assert "Dice is undefined" in done.stderr
