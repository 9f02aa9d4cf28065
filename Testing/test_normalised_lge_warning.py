"""``--normalize-intensities`` with a myocardium: a warning when the min-max scaled map says most of
the myocardium is scar.

Why: min-max over the stack is no scar scale. On a stack where nothing is much brighter than
healthy myocardium (a scar-free or dark-blood LGE) or where zero signal sits at an offset (PSIR:
EMIDEC at 2048) healthy myocardium lands near 0.5, and the reconstruction is then trained to call
most of the LV scar (the unseen phantom family's scar-free dark-blood case: 88 % of the volume, with
the in-plane PSF and slice profile taken away).
Real NIfTI files, a mesh made by ``cardioscar mesh-from-labels``, the real ``cardioscar prepare``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import run_cli_in_process

from cardioscar.lge.synthetic import LGEContrast, add_rician_noise, lge_signal, sector_scar

WARNING = "of the myocardium's pixels"


def _write_stack(folder: Path, blood_signal: float, scar: bool) -> tuple[Path, Path]:
    """A 6-slice short-axis LGE stack (1.5 mm pixels, 8 mm apart) of a ring of myocardium around a
    blood pool, its label map (1 blood, 2 myocardium), and the files' paths."""
    n, pixel = 48, 1.5
    yy, xx = (np.mgrid[:n, :n] - (n - 1) / 2) * pixel
    radius = np.hypot(xx, yy)
    myocardium = (radius >= 12.0) & (radius <= 21.0)
    blood = radius < 12.0
    rng = np.random.default_rng(0)
    contrast = LGEContrast(blood=blood_signal)
    grade = sector_scar(myocardium, 40.0) if scar else np.where(myocardium, 0, -1)
    slices = [add_rician_noise(lge_signal(grade, blood, contrast), contrast.noise_sd, rng) for _ in range(6)]
    labels = np.where(myocardium, 2, np.where(blood, 1, 0)).astype(np.uint8)
    paths = []
    for name, volume in (("lge.nii.gz", np.stack(slices).astype(np.float32)),
                         ("labels.nii.gz", np.stack([labels] * 6))):
        image = sitk.GetImageFromArray(volume)
        image.SetSpacing((pixel, pixel, 8.0))
        sitk.WriteImage(image, str(folder / name))
        paths.append(folder / name)
    return paths[0], paths[1]


@pytest.mark.parametrize("blood_signal, scar, warned", [(100.0, False, True), (400.0, True, False)])
def test_prepare_warns_when_normalised_lge_calls_most_of_the_myocardium_scar(tmp_path, blood_signal, scar, warned):
    image, labels = _write_stack(tmp_path, blood_signal, scar)
    mesh = tmp_path / "mesh.vtk"
    made = run_cli_in_process("mesh-from-labels", "--labels", labels, "--myocardium-labels", "2", "--output", mesh)
    assert made.returncode == 0, made.stderr[-2000:]
    done = run_cli_in_process("prepare", "--mesh", mesh, "--image", image, "--normalize-intensities",
                              "--myocardium-mask", labels, "--myocardium-labels", "2", "--output", tmp_path / "out.npz")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (WARNING in done.stderr) == warned, done.stderr[-3000:]
    if warned:  # dark blood, no scar: healthy myocardium is what min-max puts near 0.5
        line = next(text for text in done.stderr.splitlines() if WARNING in text)
        assert "--normalize-intensities" in line and "--scar-rule" in line
        share = float(line.split("--normalize-intensities: ")[1].split("%")[0])
        assert share > 60
