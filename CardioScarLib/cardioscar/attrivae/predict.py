"""MI probability and attribute values of one case from a trained Attri-VAE.

Each attribute is read from its own latent dimension (the line fitted on the training cases,
then the training scaler back to the attribute's units). ``out_of_range`` flags a latent
coordinate outside those of the training cases: the value is then an extrapolation.

``mi_probability`` is the network's score through the model's Platt scaling (fitted on the
cross-validation's held-out scores), so that of the cases given 0.8 about eight in ten are MI on
a cohort like the training one; ``mi_probability_uncalibrated`` keeps the network's own sigmoid.
A model trained without cross-validation (``--folds 0``, the demo) has no calibration: both are
then the raw score and ``calibration`` is null. ``mi_probability_calibrated`` says which it is, on
every face (the command's JSON, this result, the Slicer module's status line), and a model without
calibration is warned about once per Python process (a loop over a cohort's cases, once).
``mi_predicted`` is ``mi_probability`` >= 0.5.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cardioscar.attrivae.checkpoint import build_model, calibration_of, model_summary, preprocess_of, scaler_of
from cardioscar.attrivae.model import AttriVAE
from cardioscar.attrivae.preprocess import (LabelConvention, PreparedCase, check_labels_fit_image, prepare_case,
                                            warn_if_cine_like)
from cardioscar.attrivae.train import read_attributes
from cardioscar.errors import CardioScarError
from cardioscar.said_once import said_once_memory

logger = logging.getLogger(__name__)

#: The models (by their training summary) already warned about for having no calibration (a new
#: command forgets them, :mod:`cardioscar.said_once`).
_WARNED_UNCALIBRATED = said_once_memory()


@dataclass
class Prediction:
    """The JSON-ready result and what explanation needs to go on from it."""

    result: dict
    prepared: PreparedCase
    model: AttriVAE
    volume: torch.Tensor      # (1, 1, n, n, n) network input on the model's device
    mu: np.ndarray            # (latent,)


def attribute_readout(checkpoint: dict, mu: np.ndarray) -> tuple[dict[str, float], dict[str, bool]]:
    """Attribute values (own units) and out-of-range flags from a latent mean."""
    names = checkpoint["attributes"]
    dims = [checkpoint["latent_dims"][n] for n in names]
    z = mu[dims]
    values = read_attributes(np.array(checkpoint["read_back"]["slope"]), np.array(checkpoint["read_back"]["intercept"]),
                             scaler_of(checkpoint), z)
    low, high = np.array(checkpoint["latent_range"]["min"]), np.array(checkpoint["latent_range"]["max"])
    outside = (z < low) | (z > high)
    return ({n: float(v) for n, v in zip(names, values)}, {n: bool(o) for n, o in zip(names, outside)})


def _check_no_myocardium_left_out(checkpoint: dict, labels: np.ndarray, convention: LabelConvention,
                                  labels_path: str | Path) -> None:
    """Refuse a map whose labels that were myocardium in training are now neither cavity nor
    myocardium: ``--myocardium-labels 2`` on an EMIDEC map masks its infarct (3) and no-reflow (4)
    out of the network's input as background, and an infarct reads as a normal heart."""
    trained = set(checkpoint.get("labels", {}).get("myocardium", []))
    given = set(convention.cavity) | set(convention.myocardium)
    left_out = sorted((trained - given) & {int(v) for v in np.unique(labels)})
    if left_out:
        given_text = ",".join(map(str, convention.myocardium))
        raise CardioScarError(f"--labels {labels_path} holds labels {left_out}, myocardium when the model was trained "
                              f"(labels {sorted(trained)}), but --myocardium-labels {given_text} leaves them out: the "
                              "scar would be masked as background; add them to --myocardium-labels")


def _warn_uncalibrated(summary: dict) -> None:
    """Warn, once per model, that its MI probability is the network's raw score: a score of 0.8
    is then no promise that about eight in ten such cases are MI."""
    key = json.dumps(summary, sort_keys=True, default=str)
    if key in _WARNED_UNCALIBRATED:
        return
    _WARNED_UNCALIBRATED.add(key)
    logger.warning("This Attri-VAE model was trained without cross-validation (--folds 0, as the demo's) and records "
                   "no calibration: its mi_probability is the network's raw score, not a calibrated probability "
                   "(train with --folds 2 or more to have it calibrated)")


def predict_case(checkpoint: dict, image_path: str | Path, labels_path: str | Path,
                 convention: LabelConvention, device: torch.device) -> Prediction:
    """Preprocess the case as in training, encode it, classify it and read its attributes."""
    prepared = prepare_case(image_path, labels_path, convention, preprocess_of(checkpoint))
    _check_no_myocardium_left_out(checkpoint, prepared.labels, convention, labels_path)
    contrast = check_labels_fit_image(prepared, convention, f"--labels {labels_path}")
    warn_if_cine_like(contrast, f"--image {image_path}")
    model = build_model(checkpoint, device)
    volume = torch.as_tensor(prepared.cube[None, None], device=device)
    with torch.no_grad():
        mu, _ = model.encode(volume)
        raw = float(torch.sigmoid(model.classify(mu))[0])
    calibration = calibration_of(checkpoint)
    probability = float(calibration.apply(raw)) if calibration else raw
    mu_np = mu[0].cpu().numpy().astype(np.float64)
    attributes, out_of_range = attribute_readout(checkpoint, mu_np)
    summary = model_summary(checkpoint)
    if calibration is None:
        _warn_uncalibrated(summary)
    result = {"mi_probability": probability, "mi_probability_calibrated": calibration is not None,
              "mi_probability_uncalibrated": raw, "calibration": calibration.to_dict() if calibration else None,
              "mi_predicted": probability >= checkpoint["threshold"], "attributes": attributes,
              "out_of_range": out_of_range, "model": summary}
    logger.info("MI probability %.3f (uncalibrated %.3f) for %s", probability, raw, image_path)
    return Prediction(result, prepared, model, volume, mu_np)
