"""How often does ``attrivae predict`` refuse another case's label map, and never its own?

Runs the library's check (``preprocess.check_labels_fit_image``, as ``predict_case`` runs it)
on every EMIDEC case's own map (75), ACDC's two frames (own, and each frame's map on the other
frame: the heart moved between diastole and systole), the one EMIDEC pair that shares a grid
(N083 and P062, both ways), and every fourth EMIDEC case's map pasted onto every other case's
image (corner at index 0, cut or padded to the image's size; pairs whose pasted map keeps under
50 voxels of cavity or of myocardium are left out). Prints one JSON line per group: the runs
and the refusals.

Usage:
    OMP_NUM_THREADS=1 PYTHONPATH=CardioScarLib python Testing/benchmarks/attrivae_label_fit.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.attrivae.preprocess import (EMIDEC_CAVITY, EMIDEC_MYOCARDIUM, LabelConvention, PreparedCase,
                                            check_labels_fit_image, lv_mask)
from cardioscar.errors import CardioScarError

ACDC = LabelConvention((3,), (2,))


def _read(path: Path) -> tuple[sitk.Image, np.ndarray]:
    image = sitk.ReadImage(str(path))
    return image, sitk.GetArrayFromImage(image)


def _refused(image: sitk.Image, labels: np.ndarray, convention: LabelConvention) -> bool:
    prepared = PreparedCase(np.zeros((1, 1, 1), np.float32), None, image, labels.astype(np.int32),  # type: ignore
                            lv_mask(labels, convention), tuple(image.GetSpacing()))
    try:
        check_labels_fit_image(prepared, convention, "labels")
    except CardioScarError:
        return True
    return False


def _pasted(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    placed = np.zeros(shape, dtype=labels.dtype)
    common = tuple(slice(0, min(a, b)) for a, b in zip(shape, labels.shape))
    placed[common] = labels[common]
    return placed


def _report(group: str, refused: list[bool], **extra) -> None:
    print(json.dumps({"group": group, "runs": len(refused), "refused": int(sum(refused)), **extra}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    logging.basicConfig(level=logging.WARNING)
    emidec = LabelConvention(EMIDEC_CAVITY, EMIDEC_MYOCARDIUM)
    folders = sorted(p for p in (args.data / "emidec").iterdir() if p.is_dir() and p.name.startswith("Case_"))
    cases = {f.name: (_read(f / "Images" / f"{f.name}.nii.gz"), _read(f / "Contours" / f"{f.name}.nii.gz")[1])
             for f in folders}
    started = time.perf_counter()
    _report("EMIDEC own maps", [_refused(image, labels, emidec) for (image, _), labels in cases.values()],
            seconds_per_case=round((time.perf_counter() - started) / len(cases), 3))
    acdc = args.data / "acdc_patient101"
    frames = {f: (_read(acdc / f"patient101_frame{f}.nii.gz")[0], _read(acdc / f"patient101_frame{f}_gt.nii.gz")[1])
              for f in ("01", "14")}
    _report("ACDC own maps", [_refused(image, labels, ACDC) for image, labels in frames.values()])
    _report("ACDC the other frame's map", [_refused(frames["01"][0], frames["14"][1], ACDC),
                                           _refused(frames["14"][0], frames["01"][1], ACDC)])
    pair = ("Case_N083", "Case_P062")
    _report("EMIDEC N083/P062 (one grid) swapped", [_refused(cases[a][0][0], cases[b][1], emidec)
                                                      for a, b in (pair, pair[::-1])])
    refused = []
    for name, ((image, _), _) in cases.items():
        for other in list(cases)[::4]:
            if other == name:
                continue
            labels = _pasted(cases[other][1], sitk.GetArrayViewFromImage(image).shape)
            if np.isin(labels, emidec.cavity).sum() < 50 or np.isin(labels, emidec.myocardium).sum() < 50:
                continue
            refused.append(_refused(image, labels, emidec))
    _report("EMIDEC another case's map pasted", refused, share=round(float(np.mean(refused)), 3))


if __name__ == "__main__":
    main()
