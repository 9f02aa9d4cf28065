"""Does the blood-to-wall contrast tell a cine from an LGE, given each image's own labels?

Prints one JSON line per case with ``preprocess.blood_wall_contrast`` (the statistic
``attrivae predict`` warns on): every EMIDEC LGE case (75, EMIDEC labels) and every ACDC cine
frame there is (patient 101, frames 01 and 14, ACDC labels: 3 cavity, 2 myocardium), then one
line per group with its range and the library's cut. Also printed for comparison, per case: the
ratio of the medians (myocardium / cavity) that moves with a stored offset; and the cavity's
spread (its SD over the cavity-wall contrast) that the label-fit check bounds
(``preprocess.MAX_CAVITY_SPREAD``).

Usage:
    OMP_NUM_THREADS=1 PYTHONPATH=CardioScarLib python Testing/benchmarks/attrivae_cine_contrast.py \
        [--data ../shared/data] > Testing/benchmarks/results/attrivae_cine_contrast.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.attrivae.preprocess import MAX_LGE_BLOOD_WALL_CONTRAST, LabelConvention, blood_wall_contrast

EMIDEC = LabelConvention()
ACDC = LabelConvention((3,), (2,))


def _case(kind: str, name: str, image_path: Path, labels_path: Path, convention: LabelConvention) -> dict:
    image = sitk.ReadImage(str(image_path))
    array = sitk.GetArrayFromImage(image).astype(np.float64)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(labels_path))).astype(np.int32)
    cavity, wall = array[np.isin(labels, convention.cavity)], array[np.isin(labels, convention.myocardium)]
    return {"kind": kind, "case": name,
            "blood_wall_contrast": round(blood_wall_contrast(array, labels, convention, image.GetSpacing()), 3),
            "median_ratio_wall_to_blood": round(float(np.median(wall) / np.median(cavity)), 3),
            "cavity_spread": round(float(np.std(cavity) / (np.median(cavity) - np.median(wall))), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    sitk.ProcessObject_SetGlobalWarningDisplay(False)  # EMIDEC's and ACDC's sform notes, known
    rows = [_case("LGE", f.name, f / "Images" / f"{f.name}.nii.gz", f / "Contours" / f"{f.name}.nii.gz", EMIDEC)
            for f in sorted((args.data / "emidec").glob("Case_*")) if f.is_dir()]
    for patient in sorted(args.data.glob("acdc*")):
        for frame in sorted(patient.glob("*_frame[0-9][0-9].nii.gz")):
            labels = frame.with_name(frame.name.replace(".nii.gz", "_gt.nii.gz"))
            rows.append(_case("cine", frame.name.replace(".nii.gz", ""), frame, labels, ACDC))
    for row in rows:
        print(json.dumps(row))
    for kind in ("LGE", "cine"):
        values = [r["blood_wall_contrast"] for r in rows if r["kind"] == kind]
        ratios = [r["median_ratio_wall_to_blood"] for r in rows if r["kind"] == kind]
        spreads = [r["cavity_spread"] for r in rows if r["kind"] == kind]
        print(json.dumps({"group": kind, "cases": len(values), "contrast_min": min(values),
                          "contrast_max": max(values), "ratio_min": min(ratios), "ratio_max": max(ratios),
                          "cavity_spread_min": min(spreads), "cavity_spread_max": max(spreads),
                          "cut": MAX_LGE_BLOOD_WALL_CONTRAST,
                          "above_cut": sum(v > MAX_LGE_BLOOD_WALL_CONTRAST for v in values)}))


if __name__ == "__main__":
    main()
