"""scar_error_risk (issue 18, item 5): the risk that the call at 0.5 is wrong, from the margin
and the MC-dropout spread; written beside scar_uncertainty, which stays the MC-dropout std."""

import math

import numpy as np
import pytest

from cardioscar.fit.checkpoint import build_checkpoint
from cardioscar.fit.engines import BayesianNN
from cardioscar.predict.error_risk import RISK_SPREAD_FLOOR, error_risk
from cardioscar.logic import ERROR_RISK_FIELD, predict_on_points


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
    checkpoint = build_checkpoint(model, {}, {}, {"scaler_min": [0.0] * 3, "scaler_max": [100.0] * 3})
    result = predict_on_points(checkpoint, np.random.default_rng(0).random((50, 3)) * 100, mc_samples=5, seed=0)
    arrays = result.point_arrays()
    assert set(arrays) == {"scar_probability", "scar_uncertainty", ERROR_RISK_FIELD}
    assert arrays[ERROR_RISK_FIELD].dtype == np.float32
    assert np.array_equal(arrays[ERROR_RISK_FIELD], error_risk(result.mean_predictions, result.std_predictions))
    assert result.std_predictions.max() > 0  # scar_uncertainty is still the MC spread
