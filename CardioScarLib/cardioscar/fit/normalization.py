"""Min-max coordinate scaler.

The network sees coordinates in [0, 1]. The scaler is fitted on *all* mesh nodes (not only the
nodes inside slices, a defect of the reference tool), so that inference on the whole mesh stays
inside the range the network was trained on.
"""

from __future__ import annotations

import numpy as np

from ..errors import CardioScarError

_MIN_RANGE = 1e-12


def _checked_points(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise CardioScarError(f"Expected an (N, 3) array of coordinates, got shape {pts.shape}")
    return pts


def _safe_range(scaler_min: np.ndarray, scaler_max: np.ndarray) -> np.ndarray:
    """Axis ranges with degenerate (flat) axes replaced by 1 so that nothing divides by zero.

    A flat axis (for example a planar mesh) maps to 0 instead of producing NaN/inf.
    """
    rng = np.asarray(scaler_max, dtype=np.float64) - np.asarray(scaler_min, dtype=np.float64)
    return np.where(rng > _MIN_RANGE, rng, 1.0)


def fit_scaler(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(scaler_min, scaler_max)``, each (3,) float64, over all given points."""
    pts = _checked_points(points)
    if pts.shape[0] == 0:
        raise CardioScarError("Cannot fit the coordinate scaler on an empty point set")
    if not np.all(np.isfinite(pts)):
        raise CardioScarError("Mesh coordinates contain NaN or infinite values")
    return pts.min(axis=0), pts.max(axis=0)


def normalize(points: np.ndarray, scaler_min: np.ndarray, scaler_max: np.ndarray) -> np.ndarray:
    """Map coordinates to ``(points - min) / (max - min)``; the fitted nodes land in [0, 1]."""
    pts = _checked_points(points)
    mn = np.asarray(scaler_min, dtype=np.float64)
    return (pts - mn) / _safe_range(mn, scaler_max)


def denormalize(normalized: np.ndarray, scaler_min: np.ndarray, scaler_max: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalize`."""
    pts = _checked_points(normalized)
    mn = np.asarray(scaler_min, dtype=np.float64)
    return pts * _safe_range(mn, scaler_max) + mn
