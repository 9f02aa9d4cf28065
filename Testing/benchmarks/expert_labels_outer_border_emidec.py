"""How much of the myocardium's outer border do EMIDEC's expert scar labels cover, right and swapped?

``prepare --scar-rule ... --expert-scar-labels`` warns (round 15 of the bad-input review) when the
labels cover over half of the myocardium's outer border (its pixels next to the outside, not the
cavity: :func:`cardioscar.prepare.targets.outer_border_share`), as ``--scar-labels`` has since round 7 on
the label map. This prints, on EMIDEC's 52 infarct maps (myocardium 2,3,4 on every slice), the share
for the right scar labels 3,4 and for the healthy myocardium 2 given as the scar.

    PYTHONPATH=CardioScarLib python Testing/benchmarks/expert_labels_outer_border_emidec.py [EMIDEC_ROOT] [OUT.jsonl]
"""

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.prepare.targets import EPICARDIAL_SCAR_SHARE, outer_border_share
from remote_mask_emidec import emidec_arguments, write_rows


def main(root: Path, out: Path | None) -> None:
    rows = []
    for path in sorted(root.glob("Case_P*/Contours/*.nii.gz")):
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        myocardium = list(np.isin(labels, (2, 3, 4)))
        rows.append({"case": path.parent.parent.name,
                     **{name: round(outer_border_share(myocardium, list(np.isin(labels, scar))), 4)
                        for name, scar in (("scar_3_4", (3, 4)), ("swapped_2", (2,)))}})
    for name in ("scar_3_4", "swapped_2"):
        values = np.array([r[name] for r in rows])
        print(f"{name:10s} n={len(values)}  min {values.min():.2f}  median {np.median(values):.2f}  max "
              f"{values.max():.2f}  warned (> {EPICARDIAL_SCAR_SHARE}): {int((values > EPICARDIAL_SCAR_SHARE).sum())}")
    write_rows(rows, out)


if __name__ == "__main__":
    main(*emidec_arguments())
