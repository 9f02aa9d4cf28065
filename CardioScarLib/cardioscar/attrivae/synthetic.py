"""A small synthetic EMIDEC-like set, for the demo when the real folder is absent and for tests.

Each case is a short-axis stack of rings: a cavity disc (label 1) inside a myocardial ring
(label 2) whose radii and thickness vary from case to case; an MI case has a bright sector of
the ring labelled 3. Intensities: bright blood, dark myocardium, bright infarct, a background from
bright chest wall to dark lung, with noise. The folder layout and ``clinical.csv`` columns are EMIDEC's, so the same loader reads it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.io.atomic import atomic_write

SIZE = (48, 48, 6)          # i, j, k
SPACING = (1.6, 1.6, 10.0)  # mm


def ring_labels(cavity_mm: float, wall_mm: float, infarct_sector: float | None,
                size: tuple[int, int, int] = SIZE, spacing: tuple[float, float, float] = SPACING) -> np.ndarray:
    """Label array (k, j, i): a cavity disc of radius ``cavity_mm`` and a ring ``wall_mm`` thick, on
    every slice but the first and last; an infarct (label 3) over the angles from ``infarct_sector``
    to ``infarct_sector + 1.5`` rad on the middle slices."""
    nk, nj, ni = size[2], size[1], size[0]
    j, i = np.mgrid[0:nj, 0:ni]
    x = (i - (ni - 1) / 2) * spacing[0]
    y = (j - (nj - 1) / 2) * spacing[1]
    radius = np.hypot(x, y)
    angle = np.mod(np.arctan2(y, x), 2 * np.pi)
    labels = np.zeros((nk, nj, ni), dtype=np.int32)
    for k in range(1, nk - 1):
        labels[k][radius < cavity_mm + wall_mm] = 2
        labels[k][radius < cavity_mm] = 1
        if infarct_sector is not None and 1 < k < nk - 2:
            sector = np.mod(angle - infarct_sector, 2 * np.pi) < 1.5
            labels[k][(labels[k] == 2) & sector] = 3
    return labels


#: The background's values from the first image row to the last: bright chest wall to dark lung.
BACKGROUND_RAMP = (1200.0, 0.0)


def lge_intensities(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scanner-like values: blood 600, myocardium 150, infarct 750, noise sd 40, and a background
    that runs from 1200 (chest wall) to 0 (lung) across the rows.

    Why the ramp: the cine check (:func:`cardioscar.attrivae.preprocess.blood_wall_contrast`) reads
    the blood-to-wall difference against the intensity range of the tissue around the LV, as an
    LGE's holds fat, chest wall and lung. A uniform grey background (300) left that range at the
    noise's, so the demo warned that its own held-out case "looks like a cine" and its MI
    probability meant nothing. The network never sees the background (voxels outside the LV's
    labels are 0 in its cube)."""
    base = np.choose(np.clip(labels, 0, 3), [0.0, 600.0, 150.0, 750.0])
    ramp = np.linspace(*BACKGROUND_RAMP, labels.shape[1])[None, :, None]
    base = np.where(labels == 0, ramp, base)
    return np.abs(base + rng.normal(0.0, 40.0, labels.shape))


def write_synthetic_set(folder: str | Path, n_mi: int = 6, n_normal: int = 6, seed: int = 0) -> Path:
    """Write ``Case_Pxxx`` / ``Case_Nxxx`` folders and ``clinical.csv`` under ``folder``; returns it."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(1, n_mi + n_normal + 1):
        mi = number <= n_mi
        name = f"Case_{'P' if mi else 'N'}{number:03d}"
        cavity, wall = rng.uniform(14.0, 24.0), rng.uniform(5.0, 11.0)
        labels = ring_labels(cavity, wall, rng.uniform(0, 2 * np.pi) if mi else None)
        for sub, array in (("Images", lge_intensities(labels, rng)), ("Contours", labels.astype(np.float64))):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(SPACING)
            target = folder / name / sub / f"{name}.nii.gz"
            with atomic_write(target) as tmp:
                sitk.WriteImage(image, str(tmp), True)
        rows.append({"case": number, "sex": int(rng.integers(0, 2)), "age": int(rng.integers(35, 85)),
                     "tobacco": int(rng.integers(0, 3)), "FEVG": int(rng.uniform(25, 50) if mi else rng.uniform(50, 70))})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(folder / "clinical.csv") as tmp:
        tmp.write_text(text.getvalue(), encoding="utf-8")
    return folder
