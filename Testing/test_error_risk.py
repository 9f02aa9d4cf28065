"""scar_error_risk (issue 18, item 5): the risk that the call at 0.5 is wrong, from the margin
and the MC-dropout spread, and from how far the scar's border may lie from where the field puts
it, more so the farther the node is from what the model was trained on; written beside
scar_uncertainty, which stays the MC-dropout std."""

import math

import numpy as np
import pytest

from cardioscar.fit.checkpoint import build_checkpoint
from cardioscar.fit.engines import BayesianNN
from cardioscar.predict.error_risk import BORDER_SPREAD_MM, RISK_SPREAD_FLOOR, distance_to_border, error_risk
from cardioscar.logic import (CONSTRAINT_POINTS_KEY, ERROR_RISK_FIELD, checkpoint_constraint_points, load_trained_model,
                              predict_on_points)
from cardioscar.fit.checkpoint import save_checkpoint

from conftest import trained_small_phantom


def test_risk_is_one_at_half_and_falls_with_the_margin_more_slowly_where_dropout_spreads():
    p = np.array([0.5, 0.6, 0.9, 0.6, 0.0, 1.0])
    std = np.array([0.0, 0.05, 0.05, 0.3, 0.0, 0.0])
    risk = error_risk(p, std)
    assert risk[0] == pytest.approx(1.0)
    assert risk[2] < risk[1] < risk[3]
    assert risk[1] == pytest.approx(math.erfc(0.1 / math.hypot(0.05, RISK_SPREAD_FLOOR) / math.sqrt(2)), rel=1e-5)
    assert 0 < risk[4] == risk[5] < 1e-6  # saturated nodes: small, and never an exact 0 that ties all


def test_prediction_writes_the_field_beside_the_documented_ones():
    model = BayesianNN(3, 8, 2, 0.1)
    # a file without constraint points (older, or the reference tool's): the value term alone
    checkpoint = build_checkpoint(model, {}, {}, {"scaler_min": [0.0] * 3, "scaler_max": [100.0] * 3})
    result = predict_on_points(checkpoint, np.random.default_rng(0).random((50, 3)) * 100, mc_samples=5, seed=0)
    arrays = result.point_arrays()
    assert set(arrays) == {"scar_probability", "scar_uncertainty", ERROR_RISK_FIELD}
    assert arrays[ERROR_RISK_FIELD].dtype == np.float64  # float32 would tie the confident nodes' risks
    assert np.array_equal(arrays[ERROR_RISK_FIELD], error_risk(result.mean_predictions, result.std_predictions))
    assert result.std_predictions.max() > 0  # scar_uncertainty is still the MC spread


LINE = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]])


def test_the_border_lies_where_the_probability_crosses_the_cut_between_the_two_calls():
    d = distance_to_border(LINE, np.array([0.1, 0.3, 0.8, 0.9]))
    # nodes 1 and 2 lie 1 mm apart with margins 0.2 and 0.3: p crosses 0.5 at 0.4 mm from node 1
    np.testing.assert_allclose(d, [2 * 0.4 / 0.7, 0.4, 0.6, 2 * 0.4 / 0.6])
    finer = np.array([[x, 0.0, 0.0] for x in np.arange(0.0, 3.01, 0.25)])  # the same field, 4 times the nodes
    np.testing.assert_allclose(distance_to_border(finer, np.interp(finer[:, 0], LINE[:, 0], [0.1, 0.3, 0.8, 0.9]))[4],
                               0.4)  # node 1 again: the same distance on a finer mesh
    assert np.isinf(distance_to_border(LINE, np.full(4, 0.2))).all()  # one call everywhere: no border


def test_the_border_term_adds_near_the_cut_and_grows_away_from_the_constraints():
    p, std = np.array([0.02, 0.02, 0.98, 0.98]), np.zeros(4)
    value = error_risk(p, std)
    near = error_risk(p, std, 0.5, LINE, LINE)  # every node constrained: the border placed to a pixel
    far = error_risk(p, std, 0.5, LINE, LINE + [0, 10, 0])  # 10 mm from every constraint (between slices)
    assert value.max() < 1e-5  # the margin alone calls these confident nodes safe
    # 0.5 mm from the border (equal margins, 1 mm apart): the border term alone, erfc(0.5 / (1.5 * sqrt 2))
    assert near[1] == pytest.approx(math.erfc(0.5 / (BORDER_SPREAD_MM * math.sqrt(2))), rel=1e-4)
    assert near[0] < near[1] and far[0] < far[1]  # falls away from the cut
    assert np.all(far > near)  # and grows with the distance from the data
    assert error_risk(p, std, 0.5, LINE, None).tolist() == value.tolist()


def test_a_trained_model_records_its_constrained_nodes_and_the_risk_uses_them(tmp_path):
    phantom, paths = trained_small_phantom(tmp_path, max_epochs=3)
    checkpoint = load_trained_model(tmp_path / "model.pth")  # loaded with weights_only=True
    covered = checkpoint_constraint_points(checkpoint)
    data = np.load(tmp_path / "data.npz")
    rows = np.unique(data["coordinates"], axis=0) * (data["scaler_max"] - data["scaler_min"]) + data["scaler_min"]
    assert covered.shape == rows.shape and 0 < len(covered) < len(phantom.points_lps)
    np.testing.assert_allclose(covered, rows, atol=1e-3)

    points = phantom.points_lps
    result = predict_on_points(checkpoint, points, mc_samples=5, seed=0)
    p, std = result.mean_predictions, result.std_predictions
    np.testing.assert_allclose(result.error_risk, error_risk(p, std, 0.5, points, covered), rtol=1e-6)
    older = {key: value for key, value in checkpoint.items() if key != CONSTRAINT_POINTS_KEY}
    save_checkpoint(older, tmp_path / "older.pth")
    again = predict_on_points(load_trained_model(tmp_path / "older.pth"), points, mc_samples=5, seed=0)
    np.testing.assert_array_equal(again.mean_predictions, p)
    np.testing.assert_allclose(again.error_risk, error_risk(p, std), rtol=1e-6)  # as before this field


def test_evaluate_scores_how_well_each_spread_finds_the_wrong_nodes():
    from cardioscar.evaluate.metrics import evaluate_fields

    p = np.array([0.9, 0.8, 0.6, 0.4, 0.2, 0.1])
    truth = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])  # wrong at 0.5: nodes 2 and 3
    risk = np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.0])
    on_slices = np.array([True, True, False, False, True, True])
    scores = evaluate_fields(p, truth, uncertainty=np.full(6, 0.1), on_slice_mask=on_slices, error_risk=risk)
    assert scores["error_risk_wrong_auc"] == 1.0 and scores["margin_wrong_auc"] == 1.0
    assert scores["uncertainty_wrong_auc"] == 0.5  # a constant spread ranks nothing
    assert (scores["error_risk_on_slices"], scores["error_risk_between_slices"]) == pytest.approx((0.15, 0.85))
    assert "error_risk_wrong_auc" not in evaluate_fields(p, truth)  # without the field, no figure for it
    assert evaluate_fields(p, (p >= 0.5).astype(float), error_risk=risk)["error_risk_wrong_auc"] is None  # none wrong
