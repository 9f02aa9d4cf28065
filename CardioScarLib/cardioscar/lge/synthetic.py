"""Synthetic LGE intensities with a known scar grade, for tests, the demo and benchmarks.

An LGE magnitude image is |signal + complex Gaussian noise|, so the noise is Rician: nearly Gaussian
on bright tissue and Rayleigh (positive, biased) on the dark background. The tissue signals follow
LGE's contrast: nulled healthy myocardium dark, blood pool bright-ish, core brightest and the border
zone in between (a partial enhancement).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LGEContrast:
    """Noise-free signal of each tissue (arbitrary scanner units) and the noise SD per channel."""

    background: float = 0.0
    healthy: float = 100.0
    blood: float = 400.0
    border: float = 500.0
    core: float = 1000.0
    noise_sd: float = 20.0


def lge_signal(grade: np.ndarray, blood: np.ndarray, contrast: LGEContrast = LGEContrast()) -> np.ndarray:
    """Noise-free signal from a grade map (-1 not myocardium, 0 healthy, 1 border, 2 core) and a blood mask."""
    signal = np.full(grade.shape, contrast.background, np.float64)
    signal[blood] = contrast.blood
    signal[grade == 0] = contrast.healthy
    signal[grade == 1] = contrast.border
    signal[grade == 2] = contrast.core
    return signal


def signal_from_scar_fraction(fraction: np.ndarray, contrast: LGEContrast = LGEContrast()) -> np.ndarray:
    """Noise-free myocardial signal from a scar fraction in [0, 1] (the phantom's pixel values):
    healthy at 0, rising linearly to the core signal at 1 (a partly scarred pixel is partly enhanced)."""
    return contrast.healthy + np.clip(fraction, 0.0, 1.0) * (contrast.core - contrast.healthy)


def add_rician_noise(signal: np.ndarray, noise_sd: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise of SD ``noise_sd`` per channel."""
    real = signal + rng.normal(0.0, noise_sd, signal.shape)
    imaginary = rng.normal(0.0, noise_sd, signal.shape)
    return np.hypot(real, imaginary)


def sector_scar(myocardium: np.ndarray, centre_deg: float, core_half_width_deg: float = 35.0,
                border_width_deg: float = 20.0) -> np.ndarray:
    """A transmural enhanced sector on one slice: core within ``core_half_width_deg`` of
    ``centre_deg`` (angle around the myocardium's centroid), border zone for ``border_width_deg``
    beyond it on both sides; -1 outside the myocardium."""
    grade = np.full(myocardium.shape, -1, np.int8)
    rows, cols = np.nonzero(myocardium)
    if rows.size == 0:
        return grade
    angle = np.degrees(np.arctan2(rows - rows.mean(), cols - cols.mean()))
    offset = np.abs((angle - centre_deg + 180.0) % 360.0 - 180.0)
    grade[rows, cols] = np.where(offset <= core_half_width_deg, 2,
                                 np.where(offset <= core_half_width_deg + border_width_deg, 1, 0))
    return grade
