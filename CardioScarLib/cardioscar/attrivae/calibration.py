"""How far the MI probability means what it says, and Platt scaling to make it mean it.

The network is trained with the positive class re-weighted (``pos_weight`` = normals / MI cases),
so its raw sigmoid score is shifted away from the cohort's MI frequency, and a few hundred steps
of training leave it over-confident; its ranking (AUC) can be good while "0.9" is not right nine
times in ten. Three measures of that, on held-out predictions:

- the **reliability curve**: in equal-width probability bins, the mean predicted probability
  against the observed MI frequency (a calibrated score lies on the diagonal);
- the **Brier score**: the mean squared difference between probability and outcome (0 is perfect;
  always saying the cohort's MI frequency ``f`` scores ``f (1 - f)``);
- the **expected calibration error** (ECE): the case-weighted mean of |frequency - mean
  probability| over the bins.

Platt scaling maps the raw score's logit ``s`` to ``sigmoid(slope * s + intercept)``: two numbers,
fitted by maximum likelihood on held-out scores with Platt's smoothed targets (so a perfectly
separated set gives a finite slope), slope held at 0 or above (a calibration never reverses the
ranking; a score that tells nothing gives the cohort's frequency). Two parameters rather than
isotonic regression's step function because a cohort of some hundred cases is too few for a step
function to generalise (``Testing/benchmarks/bench_attrivae_seeds.py`` compares both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

#: Equal-width bins of the reliability curve and the ECE (about 15 cases a bin on EMIDEC's 75).
BINS = 5
#: Raw probabilities are clipped this far from 0 and 1 before taking their logit.
CLIP = 1e-6


def brier_score(labels: np.ndarray, probability: np.ndarray) -> float:
    """Mean squared difference between the probability and the 0/1 outcome."""
    return float(np.mean((np.asarray(probability, float) - np.asarray(labels, float)) ** 2))


def _bin_of(probability: np.ndarray, bins: int) -> np.ndarray:
    return np.minimum((np.asarray(probability, float) * bins).astype(int), bins - 1)


def reliability_curve(labels: np.ndarray, probability: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per non-empty bin: its range, case count, mean predicted probability and observed MI frequency."""
    labels, probability = np.asarray(labels, float), np.asarray(probability, float)
    which = _bin_of(probability, bins)
    curve = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            curve.append({"range": [b / bins, (b + 1) / bins], "n": int(inside.sum()),
                          "mean_probability": float(probability[inside].mean()),
                          "observed_frequency": float(labels[inside].mean())})
    return curve


def expected_calibration_error(labels: np.ndarray, probability: np.ndarray, bins: int = BINS) -> float:
    """Case-weighted mean over the bins of |observed frequency - mean probability|."""
    curve = reliability_curve(labels, probability, bins)
    total = sum(row["n"] for row in curve)
    return float(sum(row["n"] * abs(row["observed_frequency"] - row["mean_probability"]) for row in curve) / total)


def calibration_figures(labels: np.ndarray, probability: np.ndarray) -> dict:
    """Brier score, ECE and the reliability curve of held-out probabilities (JSON-ready)."""
    return {"brier": brier_score(labels, probability), "ece": expected_calibration_error(labels, probability),
            "reliability": reliability_curve(labels, probability), "bins": BINS}


def _logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(probability, float), CLIP, 1 - CLIP)
    return np.log(clipped / (1 - clipped))


@dataclass(frozen=True)
class PlattScaling:
    """``calibrated = sigmoid(slope * logit(raw) + intercept)``; ``n_cases`` it was fitted on."""

    slope: float
    intercept: float
    n_cases: int

    @classmethod
    def fit(cls, labels: np.ndarray, raw: np.ndarray) -> "PlattScaling":
        """Maximum likelihood on held-out raw scores, Platt's smoothed targets, slope >= 0."""
        labels = np.asarray(labels, float)
        positives, negatives = labels.sum(), len(labels) - labels.sum()
        target = np.where(labels == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
        s = _logit(raw)

        def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
            z = params[0] * s + params[1]
            p = 1 / (1 + np.exp(-z))
            value = np.sum(np.logaddexp(0, z) - target * z)  # cross-entropy with soft targets
            residual = p - target
            return float(value), np.array([np.sum(residual * s), np.sum(residual)])

        prior = math.log((positives + 1) / (negatives + 1))
        fitted = minimize(loss, np.array([1.0, prior]), jac=True, method="L-BFGS-B",
                          bounds=[(0.0, None), (None, None)])
        return cls(float(fitted.x[0]), float(fitted.x[1]), int(len(labels)))

    def apply(self, raw: np.ndarray | float) -> np.ndarray:
        """Calibrated probabilities of raw network scores."""
        return 1 / (1 + np.exp(-(self.slope * _logit(np.asarray(raw, float)) + self.intercept)))

    def to_dict(self) -> dict:
        return {"method": "platt", "slope": self.slope, "intercept": self.intercept, "n_cases": self.n_cases}

    @classmethod
    def from_dict(cls, data: dict) -> "PlattScaling":
        return cls(float(data["slope"]), float(data["intercept"]), int(data["n_cases"]))


def fold_calibrated(labels: np.ndarray, raw: np.ndarray, fold_of: np.ndarray) -> tuple[np.ndarray, list[PlattScaling]]:
    """Held-out calibrated probabilities: each fold's cases through a Platt scaling fitted on the
    held-out scores of the *other* folds' cases only (its training folds), never its own."""
    calibrated = np.full(len(raw), np.nan)
    scalings = []
    for fold in np.unique(fold_of):
        training = fold_of != fold
        scaling = PlattScaling.fit(labels[training], raw[training])
        calibrated[~training] = scaling.apply(raw[~training])
        scalings.append(scaling)
    return calibrated, scalings
