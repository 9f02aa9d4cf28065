"""Calibration of the Attri-VAE MI probability: the measures (Brier, ECE, reliability curve), Platt
scaling fitted on training folds only, recorded in the checkpoint (weights-only) and applied by
``predict``. Real torch, real SimpleITK files of the synthetic set; a 16^3 cube, one epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardioscar.attrivae import checkpoint as ckpt
from cardioscar.attrivae.calibration import (PlattScaling, brier_score, calibration_figures,
                                             expected_calibration_error, fold_calibrated, reliability_curve)
from cardioscar.attrivae.dataset import case_files, load_cases
from cardioscar.attrivae.model import Architecture
from cardioscar.attrivae import predict as predict_module
from cardioscar.attrivae.predict import predict_case
from cardioscar.attrivae.preprocess import LabelConvention, PreprocessConfig
from cardioscar.attrivae.synthetic import write_synthetic_set
from cardioscar.attrivae.train import TrainConfig, fit_model
from cardioscar.errors import CardioScarError

CPU = torch.device("cpu")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_brier_ece_and_reliability_by_hand():
    labels = np.array([0, 0, 1, 1, 1])
    probability = np.array([0.1, 0.3, 0.9, 0.9, 0.5])
    assert brier_score(labels, probability) == pytest.approx((0.01 + 0.09 + 0.01 + 0.01 + 0.25) / 5)
    curve = reliability_curve(labels, probability, bins=5)  # bins [0,.2) [.2,.4) [.4,.6) [.8,1]
    assert [row["n"] for row in curve] == [1, 1, 1, 2]
    assert curve[3]["mean_probability"] == pytest.approx(0.9) and curve[3]["observed_frequency"] == 1.0
    # |0 - .1| + |0 - .3| + |1 - .5| + 2 |1 - .9|, over 5 cases
    assert expected_calibration_error(labels, probability, bins=5) == pytest.approx((0.1 + 0.3 + 0.5 + 0.2) / 5)
    assert calibration_figures(labels, probability)["bins"] == 5


def _mis_scaled(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcomes drawn from a true probability, and a score over-confident (logit x 3) and shifted
    towards MI (+1.5), as a re-weighted network's: labels, true probability, score."""
    rng = np.random.default_rng(seed)
    truth = _sigmoid(rng.normal(0.5, 1.2, n))
    labels = (rng.random(n) < truth).astype(int)
    logit = np.log(truth / (1 - truth))
    return labels, truth, _sigmoid(3 * logit + 1.5)


def test_platt_scaling_moves_a_mis_scaled_score_towards_the_observed_frequency():
    labels, truth, score = _mis_scaled(0)
    scaling = PlattScaling.fit(labels[:1000], score[:1000])  # fitted on one half, judged on the other
    calibrated, raw, held = scaling.apply(score[1000:]), score[1000:], labels[1000:]
    assert scaling.slope == pytest.approx(1 / 3, abs=0.05) and scaling.n_cases == 1000
    assert expected_calibration_error(held, calibrated) < 0.35 * expected_calibration_error(held, raw)
    assert brier_score(held, calibrated) < brier_score(held, raw) - 0.02
    # the ranking is kept (a monotone map), and the cases scored near 0.99 are no longer called near-certain
    assert np.all(np.diff(calibrated[np.argsort(raw)]) >= -1e-12)
    sure = raw > 0.99
    assert abs(calibrated[sure].mean() - held[sure].mean()) < 0.5 * abs(raw[sure].mean() - held[sure].mean())


def test_platt_scaling_never_reverses_the_ranking_and_stays_finite_on_separated_scores():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    backwards = PlattScaling.fit(labels, 1 - labels * 0.8 - 0.1)  # MI scored low: tells the opposite
    assert backwards.slope == 0.0
    assert backwards.apply(np.array([0.1, 0.9])) == pytest.approx([5 / 8, 5 / 8], abs=0.05)  # the frequency
    separated = PlattScaling.fit(labels, np.where(labels == 1, 0.9, 0.1))
    assert np.isfinite(separated.slope) and 0 < separated.apply(0.1) < 0.5 < separated.apply(0.9) < 1


def test_each_folds_calibration_is_fitted_on_the_other_folds_only():
    labels, _, score = _mis_scaled(1, n=60)
    fold_of = np.arange(60) % 3
    calibrated, scalings = fold_calibrated(labels, score, fold_of)
    for fold, scaling in enumerate(scalings):
        training = fold_of != fold
        assert scaling == PlattScaling.fit(labels[training], score[training])
        np.testing.assert_allclose(calibrated[~training], scaling.apply(score[~training]))
    # changing fold 0's own labels and scores leaves fold 0's calibrated values as they were
    labels2, score2 = labels.copy(), score.copy()
    labels2[fold_of == 0] = 1 - labels2[fold_of == 0]
    score2[fold_of == 0] = 0.5
    again, _ = fold_calibrated(labels2, score2, fold_of)
    np.testing.assert_allclose(again[fold_of == 0], scalings[0].apply(score2[fold_of == 0]))
    assert not np.allclose(again[fold_of == 1], calibrated[fold_of == 1])  # fold 1 trains on fold 0's cases


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """Two cases of each class (synthetic, written as files), a 16^3 network fitted one epoch."""
    folder = write_synthetic_set(tmp_path_factory.mktemp("calibration"), n_mi=2, n_normal=2, seed=3)
    cases, names = load_cases(folder, folder / "clinical.csv", LabelConvention(), PreprocessConfig(cube=16))
    fitted = fit_model(cases, names, Architecture.for_cube(16), TrainConfig(epochs=1, batch_size=4), CPU)
    return folder, fitted


def _checkpoint(fitted, tmp_path, calibration):
    cv = None if calibration is None else {"calibration": calibration, "figures": {}}
    data = ckpt.checkpoint_dict(fitted, PreprocessConfig(cube=16), LabelConvention(), TrainConfig(epochs=1), 4, 2,
                                0 if cv is None else 2, "cpu", cv)
    path = tmp_path / "model.pth"
    ckpt.save_checkpoint(data, path)
    return path


def test_predict_applies_the_recorded_calibration_and_keeps_the_raw_score(small_model, tmp_path, monkeypatch,
                                                                           warnings_of_cardioscar):
    folder, fitted = small_model
    image, labels = case_files(folder / "Case_P001")
    monkeypatch.setattr(predict_module, "_WARNED_UNCALIBRATED", set())  # none warned yet in this process
    uncalibrated = ckpt.load_checkpoint(_checkpoint(fitted, tmp_path, None))
    plain = predict_case(uncalibrated, image, labels, LabelConvention(), CPU).result
    assert plain["calibration"] is None and plain["mi_probability"] == plain["mi_probability_uncalibrated"]
    assert plain["mi_probability_calibrated"] is False
    # said once per model: a second case of the same model is not warned about again
    predict_case(uncalibrated, *case_files(folder / "Case_N003"), LabelConvention(), CPU)
    said = [message for message in warnings_of_cardioscar if "records no calibration" in message]
    assert len(said) == 1 and "mi_probability is the network's raw score" in said[0], warnings_of_cardioscar
    scaling = PlattScaling(slope=0.4, intercept=1.2, n_cases=30)
    path = _checkpoint(fitted, tmp_path, scaling.to_dict())
    assert torch.load(path, weights_only=True)["calibration"] == scaling.to_dict()
    result = predict_case(ckpt.load_checkpoint(path), image, labels, LabelConvention(), CPU).result
    raw = result["mi_probability_uncalibrated"]
    assert raw == pytest.approx(plain["mi_probability_uncalibrated"], abs=1e-6)
    assert result["mi_probability"] == pytest.approx(float(scaling.apply(raw)))
    assert abs(result["mi_probability"] - raw) > 1e-3  # the calibration moved it
    assert result["mi_predicted"] == (result["mi_probability"] >= 0.5) and result["calibration"]["method"] == "platt"
    assert result["mi_probability_calibrated"] is True
    assert len([message for message in warnings_of_cardioscar if "records no calibration" in message]) == 1


def test_a_damaged_calibration_record_is_refused_in_one_line(small_model, tmp_path):
    _, fitted = small_model
    path = _checkpoint(fitted, tmp_path, {"method": "platt", "slope": -1.0, "intercept": 0.0, "n_cases": 9})
    with pytest.raises(CardioScarError, match="records a calibration that is not a Platt scaling"):
        ckpt.load_checkpoint(path)


def test_each_predict_command_in_one_process_says_the_model_is_uncalibrated(small_model, tmp_path):
    """Said once per model and process, the warning reached only the first `cardioscar attrivae
    predict` run in a process (Slicer's console, a script calling `main` per case, the suite's
    in-process runs); each in a new shell said it. Now each command says it, once."""
    from conftest import run_cli_in_process

    folder, fitted = small_model
    path = _checkpoint(fitted, tmp_path, None)
    for case in ("Case_P001", "Case_N003"):
        image, labels = case_files(folder / case)
        done = run_cli_in_process("attrivae", "predict", "--model", path, "--image", image, "--labels", labels,
                                  "--device", "cpu")
        assert done.returncode == 0, done.stderr
        assert done.stderr.count("records no calibration") == 1, (case, done.stderr)
