"""Saving and safely loading an Attri-VAE model with everything prediction needs.

The file is a plain dict of tensors, numbers, strings and lists, so it loads with
``torch.load(weights_only=True)`` (no code runs from the file). It records the architecture, the
attributes and the latent dimension each is tied to, those the clinical table lacked, the
training scaler and ranges, the read-back lines, the preprocessing and label conventions, the
training settings, the cross-validated figures and the Platt scaling of the MI probability
(``calibration``: two numbers fitted on the cross-validation's held-out scores; None without
cross-validation, and in models written before it existed).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from cardioscar.io.atomic import atomic_write
from cardioscar.io.checks import check_attrivae_model_file, check_format_version
from cardioscar.attrivae.attributes import ALL_ATTRIBUTES
from cardioscar.attrivae.calibration import PlattScaling
from cardioscar.attrivae.model import Architecture, AttriVAE
from cardioscar.attrivae.preprocess import LabelConvention, PreprocessConfig
from cardioscar.attrivae.train import AttributeScaler, FittedModel, TrainConfig
from cardioscar.errors import CardioScarError

logger = logging.getLogger(__name__)

FORMAT = "cardioscar-attrivae"
FORMAT_VERSION = 1


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64)]


def checkpoint_dict(fitted: FittedModel, preprocess: PreprocessConfig, convention: LabelConvention,
                    config: TrainConfig, n_cases: int, n_mi: int, folds: int, device: str,
                    cross_validation: Optional[dict]) -> dict:
    """The checkpoint of a trained final model (CPU tensors)."""
    names = fitted.attribute_names
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "architecture": fitted.model.architecture.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in fitted.model.state_dict().items()},
        "attributes": list(names),
        "latent_dims": {name: k for k, name in zip(fitted.latent_dims, names)},
        "omitted_attributes": [a for a in ALL_ATTRIBUTES if a not in names],
        "scaler": {"min": _floats(fitted.scaler.minimum), "max": _floats(fitted.scaler.maximum)},
        "training_ranges": {n: [float(lo), float(hi)] for n, lo, hi in
                            zip(names, fitted.scaler.minimum, fitted.scaler.maximum)},
        "read_back": {"slope": _floats(fitted.slope), "intercept": _floats(fitted.intercept)},
        "latent_range": {"min": _floats(fitted.z_min), "max": _floats(fitted.z_max)},
        "preprocess": asdict(preprocess),
        "labels": {"cavity": list(convention.cavity), "myocardium": list(convention.myocardium)},
        "training": {"epochs": config.epochs, "batch_size": config.batch_size,
                     "learning_rate": config.learning_rate, "weights": asdict(config.weights), "seed": config.seed,
                     "n_cases": n_cases, "n_mi": n_mi, "folds": folds, "device": device,
                     "seconds": float(fitted.seconds), "pos_weight": float(fitted.pos_weight)},
        "cross_validation": cross_validation,
        "calibration": cross_validation["calibration"] if cross_validation else None,
        "threshold": 0.5,
    }


def save_checkpoint(checkpoint: dict, path: str | Path) -> None:
    """Write atomically (a failed write leaves any previous file as it was)."""
    with atomic_write(path) as tmp:
        torch.save(checkpoint, tmp)
    logger.info("Attri-VAE model written to %s", path)


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict, loaded with ``weights_only=True``; a one-line error for anything else."""
    source = check_attrivae_model_file(path)
    try:
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds for a foreign or damaged file
        raise CardioScarError(f"--model {source} is not a readable Attri-VAE checkpoint "
                              f"({(str(error).splitlines() or [type(error).__name__])[0][:120]})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CardioScarError(f"--model {source} is not an Attri-VAE model (a scar-field model from "
                              "`cardioscar train`?); give one from `cardioscar attrivae train`")
    check_format_version(checkpoint.get("format_version", FORMAT_VERSION), f"--model {source}", FORMAT_VERSION,
                         "train the model again with `cardioscar attrivae train`", "upgrade cardioscar")
    cubes = ((checkpoint.get("architecture") or {}).get("cube"), (checkpoint.get("preprocess") or {}).get("cube"))
    if cubes[0] != cubes[1]:
        raise CardioScarError(f"--model {source} is inconsistent: its network takes {cubes[0]}^3 cubes but its "
                              f"preprocessing makes {cubes[1]}^3; train the model again with "
                              "`cardioscar attrivae train`")
    _check_calibration(checkpoint.get("calibration"), source)
    return checkpoint


def _check_calibration(calibration: Optional[dict], source: Path) -> None:
    """A recorded calibration must be a Platt scaling with finite numbers and a slope >= 0."""
    if calibration is None:
        return
    record = calibration if isinstance(calibration, dict) else {}
    slope, intercept = record.get("slope"), record.get("intercept")
    numbers_ok = all(isinstance(v, float) and np.isfinite(v) for v in (slope, intercept))
    if record.get("method") != "platt" or not numbers_ok or slope < 0 or not isinstance(record.get("n_cases"), int):
        raise CardioScarError(f"--model {source} records a calibration that is not a Platt scaling with a finite slope "
                              ">= 0 and intercept (a damaged or edited file); train the model again with "
                              "`cardioscar attrivae train`")


def calibration_of(checkpoint: dict) -> Optional[PlattScaling]:
    """The Platt scaling the model applies to its raw MI score, or None (trained without folds)."""
    recorded = checkpoint.get("calibration")
    return PlattScaling.from_dict(recorded) if recorded else None


def build_model(checkpoint: dict, device: torch.device) -> AttriVAE:
    """The network of a checkpoint, in evaluation mode on ``device``."""
    model = AttriVAE(Architecture.from_dict(checkpoint["architecture"]))
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError:  # weights of another cube size or network
        raise CardioScarError("The Attri-VAE model's weights do not fit its recorded architecture (another cube size "
                              "or network): train the model again with `cardioscar attrivae train`") from None
    return model.to(device).eval()


def scaler_of(checkpoint: dict) -> AttributeScaler:
    return AttributeScaler(np.array(checkpoint["scaler"]["min"]), np.array(checkpoint["scaler"]["max"]))


def preprocess_of(checkpoint: dict) -> PreprocessConfig:
    return PreprocessConfig(**checkpoint["preprocess"])


def model_summary(checkpoint: dict) -> dict:
    """The training summary printed with every prediction (JSON-ready)."""
    training = checkpoint["training"]
    cv = checkpoint.get("cross_validation") or {}
    return {"attributes": checkpoint["attributes"], "latent_dims": checkpoint["latent_dims"],
            "omitted_attributes": checkpoint["omitted_attributes"], "cube": checkpoint["architecture"]["cube"],
            "n_cases": training["n_cases"], "n_mi": training["n_mi"], "epochs": training["epochs"],
            "folds": training["folds"], "training_ranges": checkpoint["training_ranges"],
            "cross_validation": cv.get("figures")}
