"""Files in, files out: the training step the command line and the demo run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import torch

from cardioscar.attrivae.checkpoint import checkpoint_dict, save_checkpoint
from cardioscar.attrivae.dataset import load_cases
from cardioscar.attrivae.model import Architecture
from cardioscar.attrivae.preprocess import LabelConvention, PreprocessConfig
from cardioscar.attrivae.train import TrainConfig, cross_validate, fit_model

logger = logging.getLogger(__name__)


def train_from_folder(data_dir: str | Path, clinical_csv: str | Path, output: str | Path, *, cube: int = 32,
                      config: TrainConfig = TrainConfig(), folds: int = 5, device: torch.device,
                      cases: Optional[Sequence[str]] = None) -> dict:
    """Cross-validate (``folds`` >= 2; 0 skips it), train the final model on every case, save it.

    Returns the checkpoint dict. Nothing is written unless training finishes.
    """
    convention = LabelConvention()
    preprocess = PreprocessConfig(cube=cube)
    architecture = Architecture.for_cube(cube)
    loaded, names = load_cases(data_dir, clinical_csv, convention, preprocess, list(cases) if cases else None)
    cv = cross_validate(loaded, names, architecture, config, folds, device) if folds else None
    if cv is not None:
        figures = cv["figures"]
        logger.info("Cross-validated (%d folds): AUC %.3f, balanced accuracy %.3f", folds, figures["auc"],
                    figures["balanced_accuracy"])
        before, after = figures["calibration"]["uncalibrated"], figures["calibration"]["calibrated"]
        logger.info("MI probability on held-out cases: Brier %.3f -> %.3f, ECE %.3f -> %.3f with Platt scaling "
                    "fitted on the other folds", before["brier"], after["brier"], before["ece"], after["ece"])
    fitted = fit_model(loaded, names, architecture, config, device)
    checkpoint = checkpoint_dict(fitted, preprocess, convention, config, len(loaded), sum(c.mi for c in loaded),
                                 folds, device.type, cv)
    save_checkpoint(checkpoint, output)
    return checkpoint
