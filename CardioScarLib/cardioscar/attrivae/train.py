"""Training with stratified k-fold cross-validation, then the final model on all cases.

Every fold fits its own attribute scaler on its training cases only, trains a fixed number of
epochs (no early stopping, no model selection: the held-out fold is only ever predicted), and
predicts its held-out cases. The cross-validated figures (AUC, balanced accuracy, Spearman of
each tied latent dimension with its attribute) therefore never saw the cases they score. The
final model is then trained the same way on every case.

Attribute ``k`` (in the order of ``attribute_names``) is tied to latent dimension ``k``; the
regulariser pushes ``z_k`` up with the attribute. Each attribute is read back from its dimension
through a straight line fitted on the training cases (scaled attribute against ``z_k``) and the
training scaler.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from cardioscar.attrivae.calibration import PlattScaling, calibration_figures, fold_calibrated
from cardioscar.attrivae.dataset import Case, attribute_matrix
from cardioscar.attrivae.losses import LossWeights, attrivae_loss
from cardioscar.attrivae.model import Architecture, AttriVAE
from cardioscar.errors import CardioScarError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 80
    batch_size: int = 16
    learning_rate: float = 1e-3  # paper 1e-4 over many GPU epochs; few CPU epochs need more
    weights: LossWeights = field(default_factory=LossWeights)
    seed: int = 42

    def __post_init__(self) -> None:
        if not 1 <= self.epochs <= 100000:
            raise CardioScarError(f"--epochs must be in 1..100000, got {self.epochs}")
        if not self.batch_size >= 2:
            raise CardioScarError(f"batch size must be >= 2 (the regulariser compares pairs), got {self.batch_size}")


class AttributeScaler:
    """Min-max scaling of each attribute to [0, 1], fitted on training cases only."""

    def __init__(self, minimum: np.ndarray, maximum: np.ndarray):
        self.minimum = np.asarray(minimum, dtype=np.float64)
        self.maximum = np.asarray(maximum, dtype=np.float64)

    @classmethod
    def fit(cls, values: np.ndarray) -> "AttributeScaler":
        with np.errstate(all="ignore"):
            low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        return cls(np.nan_to_num(low), np.nan_to_num(high))

    @property
    def span(self) -> np.ndarray:
        return np.where(self.maximum > self.minimum, self.maximum - self.minimum, 1.0)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.minimum) / self.span

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * self.span + self.minimum


@dataclass
class FittedModel:
    """A trained network with what reads attributes back from it."""

    model: AttriVAE
    attribute_names: list[str]
    scaler: AttributeScaler
    slope: np.ndarray           # scaled attribute = slope * z_k + intercept (training fit)
    intercept: np.ndarray
    z_min: np.ndarray           # range of z_k over the training cases
    z_max: np.ndarray
    pos_weight: float
    seconds: float

    @property
    def latent_dims(self) -> list[int]:
        return list(range(len(self.attribute_names)))


def _volumes(cases: list[Case], device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.stack([c.cube for c in cases])[:, None], device=device)


@torch.no_grad()
def encode_cases(model: AttriVAE, cases: list[Case], device: torch.device, batch: int = 16
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Latent means (n, latent) and MI probabilities (n,) in evaluation mode."""
    model.eval()
    mus, probs = [], []
    for start in range(0, len(cases), batch):
        mu, _ = model.encode(_volumes(cases[start:start + batch], device))
        mus.append(mu.cpu().numpy())
        probs.append(torch.sigmoid(model.classify(mu)).cpu().numpy())
    return np.concatenate(mus), np.concatenate(probs)


def fit_model(cases: list[Case], attribute_names: list[str], architecture: Architecture, config: TrainConfig,
              device: torch.device, progress: Optional[Callable[[int, float], None]] = None) -> FittedModel:
    """Train one model on ``cases`` (scaler fitted here, on these cases only)."""
    labels = np.array([c.mi for c in cases], dtype=np.float32)
    if len(set(labels)) < 2:
        raise CardioScarError("training needs both MI and normal cases; the data holds only one class")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    raw = attribute_matrix(cases, attribute_names)
    scaler = AttributeScaler.fit(raw)
    scaled = torch.as_tensor(scaler.transform(raw), dtype=torch.float32, device=device)
    volumes = _volumes(cases, device)
    targets = torch.as_tensor(labels, device=device)
    pos_weight = float((labels == 0).sum() / max((labels == 1).sum(), 1))
    model = AttriVAE(architecture).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    dims = list(range(len(attribute_names)))
    for epoch in range(config.epochs):
        model.train()
        order = rng.permutation(len(cases))
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            index = torch.as_tensor(order[start:start + config.batch_size], device=device)
            if len(index) < 2:  # BatchNorm and the pairwise term need two cases
                continue
            outputs = model(volumes[index])
            parts = attrivae_loss(outputs, volumes[index], targets[index], scaled[index], dims, config.weights,
                                  pos_weight)
            optimiser.zero_grad()
            parts["total"].backward()
            optimiser.step()
            total += float(parts["total"].detach()) * len(index)
        if progress is not None:
            progress(epoch + 1, total / len(cases))
        logger.debug("epoch %d loss %.3f", epoch + 1, total / len(cases))
    mu, _ = encode_cases(model, cases, device)
    slope, intercept = _read_back_lines(mu[:, dims], scaler.transform(raw))
    return FittedModel(model, list(attribute_names), scaler, slope, intercept, mu[:, dims].min(0),
                       mu[:, dims].max(0), pos_weight, time.perf_counter() - started)


def _read_back_lines(z: np.ndarray, scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line scaled_k = slope_k * z_k + intercept_k per attribute (known values only)."""
    slopes, intercepts = [], []
    for k in range(z.shape[1]):
        known = ~np.isnan(scaled[:, k])
        if known.sum() < 2 or np.ptp(z[known, k]) == 0:
            slopes.append(0.0)
            intercepts.append(float(np.nanmean(scaled[:, k])) if known.any() else 0.0)
            continue
        slope, intercept = np.polyfit(z[known, k], scaled[known, k], 1)
        slopes.append(float(slope))
        intercepts.append(float(intercept))
    return np.array(slopes), np.array(intercepts)


def read_attributes(fitted_slope: np.ndarray, fitted_intercept: np.ndarray, scaler: AttributeScaler,
                    z: np.ndarray) -> np.ndarray:
    """Attribute values in their own units from the tied latent coordinates ``z`` (n, K)."""
    return scaler.inverse(fitted_slope * z + fitted_intercept)


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs, each fold with the classes in the data's proportion."""
    counts = np.bincount(labels.astype(int), minlength=2)
    smallest = int(counts.min())
    if smallest < 2:
        kind = "MI" if counts[1] < counts[0] else "normal"
        raise CardioScarError(f"--folds {folds}: stratified cross-validation needs 2 cases of each class and the data "
                              f"has {smallest} {kind} case(s); add cases or give --folds 0 (no cross-validation)")
    if not 2 <= folds <= smallest:
        raise CardioScarError(f"--folds must be in 2..{smallest} (the smaller class has {smallest} cases), got {folds}")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


def cross_validate(cases: list[Case], attribute_names: list[str], architecture: Architecture, config: TrainConfig,
                   folds: int, device: torch.device,
                   after_fold: Optional[Callable[[FittedModel, np.ndarray], None]] = None) -> dict:
    """Held-out predictions of every case and the figures computed from them.

    ``probability`` is the network's raw (uncalibrated) score; ``calibrated_probability`` each
    fold's scores through a Platt scaling fitted on the other folds' held-out scores only; and
    ``calibration`` the Platt scaling of every held-out score, which the final model applies.

    ``after_fold(fitted, test_indices)`` runs after each fold (the benchmark's attention maps of
    held-out cases use it); it must not change the model.
    """
    labels = np.array([c.mi for c in cases])
    probability = np.full(len(cases), np.nan)
    tied = np.full((len(cases), len(attribute_names)), np.nan)
    fold_of = np.zeros(len(cases), dtype=int)
    fold_ranges = []
    for number, (train, test) in enumerate(stratified_folds(labels, folds, config.seed)):
        fitted = fit_model([cases[i] for i in train], attribute_names, architecture, config, device)
        mu, prob = encode_cases(fitted.model, [cases[i] for i in test], device)
        probability[test] = prob
        tied[test] = mu[:, fitted.latent_dims]
        fold_of[test] = number
        fold_ranges.append({"min": fitted.scaler.minimum.tolist(), "max": fitted.scaler.maximum.tolist()})
        if after_fold is not None:
            after_fold(fitted, test)
        logger.info("fold %d/%d: %d train, %d held out (%.0f s)", number + 1, folds, len(train), len(test),
                    fitted.seconds)
    raw = attribute_matrix(cases, attribute_names)
    calibrated, scalings = fold_calibrated(labels, probability, fold_of)
    figures = heldout_figures(labels, probability, tied, raw, attribute_names)
    figures["calibration"] = {"uncalibrated": calibration_figures(labels, probability),
                              "calibrated": calibration_figures(labels, calibrated),
                              "balanced_accuracy_calibrated": float(balanced_accuracy_score(labels, calibrated >= 0.5))}
    return {"case_ids": [c.case_id for c in cases], "labels": labels.tolist(), "probability": probability.tolist(),
            "calibrated_probability": calibrated.tolist(), "fold_calibration": [s.to_dict() for s in scalings],
            "calibration": PlattScaling.fit(labels, probability).to_dict(),
            "fold": fold_of.tolist(), "tied_latents": tied.tolist(), "fold_scaler_ranges": fold_ranges,
            "figures": figures}


def heldout_figures(labels: np.ndarray, probability: np.ndarray, tied: np.ndarray, raw: np.ndarray,
                    attribute_names: list[str]) -> dict:
    """AUC, balanced accuracy (at 0.5) and the Spearman of each tied dimension with its attribute."""
    spearman = {}
    for k, name in enumerate(attribute_names):
        known = ~np.isnan(raw[:, k])
        if known.sum() > 2 and np.ptp(raw[known, k]) > 0:
            rho = float(spearmanr(tied[known, k], raw[known, k]).statistic)
            spearman[name] = rho if np.isfinite(rho) else None  # None: a constant latent dimension
    return {"auc": float(roc_auc_score(labels, probability)),
            "balanced_accuracy": float(balanced_accuracy_score(labels, probability >= 0.5)),
            "spearman": spearman, "n_cases": int(len(labels)), "n_mi": int(labels.sum())}
