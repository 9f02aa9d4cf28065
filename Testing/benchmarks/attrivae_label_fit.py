"""How often does ``attrivae predict`` refuse another case's label map, and never its own?

Runs the library's check (``preprocess.check_labels_fit_image``, as ``predict_case`` runs it)
on every EMIDEC case's own map (75), ACDC's two frames (own, and each frame's map on the other
frame: the heart moved between diastole and systole), the one EMIDEC pair that shares a grid
(N083 and P062, both ways), and every fourth EMIDEC case's map pasted onto every other case's
image (corner at index 0, cut or padded to the image's size; pairs whose pasted map keeps under
50 voxels of cavity or of myocardium are left out). Prints one JSON line per group: the runs,
the refusals and which of the check's tests refused them (``by_check``: the cavity's contrast
with the wall, its spread, the shifted positions; tried in that order); for the pasted maps also
the median Dice of the LV (cavity + myocardium) of those that passed with the image's own map.

Usage:
    OMP_NUM_THREADS=1 PYTHONPATH=CardioScarLib python Testing/benchmarks/attrivae_label_fit.py [--data ../shared/data] \
        > Testing/benchmarks/results/attrivae_label_fit.jsonl
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


#: Which of the check's tests refused, by the words of its message.
REASONS = {"of the surrounding intensity range": "contrast", "intensities spread": "cavity_spread",
           "moved a few mm": "shifts"}


def _refusal(image: sitk.Image, labels: np.ndarray, convention: LabelConvention) -> str | None:
    """The test that refused the map (a key of ``by_check``), or None when it passed."""
    prepared = PreparedCase(np.zeros((1, 1, 1), np.float32), None, image, labels.astype(np.int32),  # type: ignore
                            lv_mask(labels, convention), tuple(image.GetSpacing()))
    try:
        check_labels_fit_image(prepared, convention, "labels")
    except CardioScarError as error:
        return next(reason for words, reason in REASONS.items() if words in str(error))
    return None


def _pasted(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    placed = np.zeros(shape, dtype=labels.dtype)
    common = tuple(slice(0, min(a, b)) for a, b in zip(shape, labels.shape))
    placed[common] = labels[common]
    return placed


def _report(group: str, refusals: list[str | None], **extra) -> None:
    refused = [r for r in refusals if r]
    print(json.dumps({"group": group, "runs": len(refusals), "refused": len(refused),
                      "by_check": {reason: refused.count(reason) for reason in REASONS.values()}, **extra}))


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
    _report("EMIDEC own maps", [_refusal(image, labels, emidec) for (image, _), labels in cases.values()],
            seconds_per_case=round((time.perf_counter() - started) / len(cases), 3))
    acdc = args.data / "acdc_patient101"
    frames = {f: (_read(acdc / f"patient101_frame{f}.nii.gz")[0], _read(acdc / f"patient101_frame{f}_gt.nii.gz")[1])
              for f in ("01", "14")}
    _report("ACDC own maps", [_refusal(image, labels, ACDC) for image, labels in frames.values()])
    _report("ACDC the other frame's map", [_refusal(frames["01"][0], frames["14"][1], ACDC),
                                           _refusal(frames["14"][0], frames["01"][1], ACDC)])
    pair = ("Case_N083", "Case_P062")
    _report("EMIDEC N083/P062 (one grid) swapped", [_refusal(cases[a][0][0], cases[b][1], emidec)
                                                      for a, b in (pair, pair[::-1])])
    refused, overlaps = [], []
    for name, ((image, _), own) in cases.items():
        for other in list(cases)[::4]:
            if other == name:
                continue
            labels = _pasted(cases[other][1], sitk.GetArrayViewFromImage(image).shape)
            if np.isin(labels, emidec.cavity).sum() < 50 or np.isin(labels, emidec.myocardium).sum() < 50:
                continue
            refused.append(_refusal(image, labels, emidec))
            mine, theirs = lv_mask(own, emidec), lv_mask(labels, emidec)
            overlaps.append(2 * float((mine & theirs).sum()) / float(mine.sum() + theirs.sum()))
    passed = [dice for dice, refusal in zip(overlaps, refused) if not refusal]
    _report("EMIDEC another case's map pasted", refused, share=round(float(np.mean([bool(r) for r in refused])), 3),
            passed_lv_dice_with_own_median=round(float(np.median(passed)), 3) if passed else None)


if __name__ == "__main__":
    main()
