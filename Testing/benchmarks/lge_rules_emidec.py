"""Scar rules on real LGE (EMIDEC) against the expert scar, per rule, with default thresholds.

Each case: the LGE stack, the myocardium (labels 2-4) and the blood pool (label 1, the LV cavity)
from the expert contours; the rule's scar (border zone + core) is scored against labels 3-4 (Dice
over the whole stack), and its core against the same labels. Infarct cases only (P); on normal (N)
cases the fraction of myocardium called scar is printed (it should be small). On the cases with
no-reflow (label 4, dark on LGE), the share of its pixels graded scar and core, beside the share of
the enhanced infarct (label 3) graded scar.

    PYTHONPATH=CardioScarLib python Testing/benchmarks/lge_rules_emidec.py [../shared/data/emidec] [OFFSET]

OFFSET (default 0) is the rules' ``intensity_offset``: EMIDEC stores its PSIR images with zero
signal near 2048 (the air peak of each stack's histogram), which the ratio rules (FWHM, IIR) need
removed; n-SD and PSI do not change with it (and refuse it), so they are run without it.
"""

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.lge import RULES, apply_rule
from cardioscar.lge.rules import OFFSET_RULES


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def emidec_cases(root: Path) -> list[Path]:
    """EMIDEC's case folders (``Case_N*`` normal, ``Case_P*`` infarct), sorted by name."""
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("Case_"))


def read_case(case: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """One EMIDEC case: the LGE stack and the expert label map (slices first), and a voxel's volume in ml."""
    lge = sitk.ReadImage(str(case / "Images" / f"{case.name}.nii.gz"))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "Contours" / f"{case.name}.nii.gz")))
    return sitk.GetArrayFromImage(lge), labels, float(np.prod(lge.GetSpacing())) / 1000.0


def main(root: Path, offset: float = 0.0) -> None:
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    cases = emidec_cases(root)
    scores = {rule: {"scar": [], "core": [], "normal_fraction": [], "no_reflow": []} for rule in RULES}
    for case in cases:
        image, labels, _ = read_case(case)
        myocardium = list(np.isin(labels, [2, 3, 4]))
        blood = list(labels == 1)
        truth = np.isin(labels, [3, 4])
        for rule in RULES:
            grades = np.stack(apply_rule(rule, list(image), myocardium, blood,
                                         intensity_offset=offset if rule in OFFSET_RULES else 0.0).grades)
            if case.name.startswith("Case_P"):
                scores[rule]["scar"].append(dice(grades >= 1, truth))
                scores[rule]["core"].append(dice(grades == 2, truth))
                if (labels == 4).any():
                    scores[rule]["no_reflow"].append(((grades[labels == 4] >= 1).mean(), (grades[labels == 4] == 2).mean(),
                                                      (grades[labels == 3] >= 1).mean()))
            else:
                scores[rule]["normal_fraction"].append(float((grades >= 1).sum() / (grades >= 0).sum()))
    n_p = len(scores["nsd"]["scar"])
    n_n = len(scores["nsd"]["normal_fraction"])
    print(f"EMIDEC: {n_p} infarct cases, {n_n} normal cases; default thresholds; intensity offset {offset:g}")
    print("rule  thresholds  Dice scar(border+core) mean [median]  Dice core-only  scar fraction on normals")
    for rule, (border, core, *_rest) in RULES.items():
        s = scores[rule]
        print(f"{rule:5s} {border:g},{core:g}  {np.mean(s['scar']):.3f} [{np.median(s['scar']):.3f}]"
              f"  {np.mean(s['core']):.3f} [{np.median(s['core']):.3f}]  {np.mean(s['normal_fraction']):.3f}")
    print(f"no-reflow (label 4) on the {len(scores['nsd']['no_reflow'])} cases that have it: share graded scar, core; "
          "share of the infarct (label 3) graded scar")
    for rule, s in scores.items():
        scar, core, infarct = np.mean(s["no_reflow"], axis=0)
        print(f"{rule:5s} {scar:.3f} {core:.3f}  infarct {infarct:.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "emidec"),
         float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
