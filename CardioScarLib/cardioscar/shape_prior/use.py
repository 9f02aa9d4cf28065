"""Where the shape prior meets the faces: the ``.npz`` entries, the choice to train with it, and
its log-odds on the training rows. Kept here so that ``logic.py`` gains only a few calls."""

from __future__ import annotations

import logging

import numpy as np

from cardioscar.fit.normalization import denormalize
from cardioscar.shape_prior.field import ShapePrior

logger = logging.getLogger(__name__)

#: Prefix of the prior's arrays in the training ``.npz``.
NPZ_PREFIX = "shape_prior_"


def npz_entries(prior: ShapePrior | None) -> dict[str, np.ndarray]:
    """The ``.npz`` keys holding ``prior`` (none without one)."""
    return {} if prior is None else {NPZ_PREFIX + key: value for key, value in prior.to_arrays().items()}


def prior_from_npz(arrays: dict, where: str) -> ShapePrior | None:
    """The prior stored by :func:`npz_entries`, or ``None`` (an older file, or no slice had a target)."""
    entries = {key[len(NPZ_PREFIX):]: value for key, value in arrays.items() if key.startswith(NPZ_PREFIX)}
    return ShapePrior.from_arrays(entries, where) if entries else None


def training_prior(prior: ShapePrior | None, wanted: bool) -> ShapePrior | None:
    """The prior to train with: ``prior`` when ``wanted``; a warning when it is wanted but the
    training data has none (a ``.npz`` written before the prior existed: re-run prepare)."""
    if not wanted:
        return None
    if prior is None:
        logger.warning("shape prior requested but the training data holds none (written by an older "
                       "CardioScar?): training without it; re-run `cardioscar prepare` to use it")
    return prior


def row_prior_logit(prior: ShapePrior, coordinates: np.ndarray, scaler_min, scaler_max) -> np.ndarray:
    """(K,) the prior's log-odds at the training rows (normalised coordinates, back in LPS mm)."""
    return prior.logit(denormalize(np.asarray(coordinates, dtype=np.float64), scaler_min, scaler_max))
