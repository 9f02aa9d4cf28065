"""Is a scar-free map refused when its myocardium mask is larger than its wall? (review of round 10)

Round 10 refuses unmatched ``--scar-labels`` with a ``--myocardium-mask`` when the map's one label
in the mask fills under half of it (a 0/1 scar map: 1 scar, whose scar trained as healthy). A
scar-free expert map with a generous mask fills under half of it too, and the refusal's advice,
``--scar-labels`` of that label, trains the whole wall as scar. This runs the check as
``prepare`` runs it (``warn_scar_free``) on EMIDEC's 23 normal controls, their myocardium (label 2)
dilated in-plane by 0-6 pixels as the mask, ``--scar-labels 3``; and on the 52 infarct maps as 0/1
scar maps (3, 4 -> 1) with their myocardium as the mask and ``--scar-labels 2``, which the check is
for. It prints, per dilation, how many normal controls pass with the scar-free warning, how many the
round-10 rule refuses and how many round 9's two-label rule refuses (the cavity then lies mostly in
the mask); then how many of the 0/1 infarct maps are refused.

Usage: PYTHONPATH=CardioScarLib python Testing/benchmarks/scar_free_mask_size.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

import numpy as np
from scipy import ndimage

from cardioscar.errors import CardioScarError
from cardioscar.prepare.slices import SliceLayer
from cardioscar.prepare.targets import warn_scar_free


def _layers(volume: np.ndarray) -> list[SliceLayer]:
    """The slices of ``volume`` (k, j, i) as layers (only the values matter to this check)."""
    return [SliceLayer(values=v.astype(np.float64), origin=np.array([0.0, 0.0, 10.0 * k]), axis_i=np.array([1.0, 0, 0]),
                       axis_j=np.array([0, 1.0, 0]), spacing=(1.5, 1.5), half_thickness=5.0, label=f"k={k}")
            for k, v in enumerate(volume)]


def _outcome(layers: list[SliceLayer], scar: list[int], masks: list[np.ndarray]) -> str:
    try:
        warn_scar_free(layers, scar, None, masks)
    except CardioScarError as error:
        return "refused: part of the mask" if "of its pixels" in str(error) else "refused: two labels"
    return "scar-free warning"


def main() -> None:
    import SimpleITK as sitk

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    cases = sorted((args.data / "emidec").glob("Case_*"))
    maps = {case.name: sitk.GetArrayFromImage(sitk.ReadImage(str(case / "Contours" / f"{case.name}.nii.gz")))
            for case in cases}
    for pixels in range(7):
        counts = Counter()
        for name, volume in maps.items():
            if name.startswith("Case_N"):
                wall = [ndimage.binary_dilation(s, iterations=pixels) if pixels else s for s in volume == 2]
                counts[_outcome(_layers(volume), [3], wall)] += 1
        print(f"normal controls, myocardium dilated {pixels} px: {dict(sorted(counts.items()))}")
    counts = Counter()
    for name, volume in maps.items():
        if name.startswith("Case_P"):
            scar = np.isin(volume, [3, 4]).astype(np.uint8)
            counts[_outcome(_layers(scar), [2], list(np.isin(volume, [2, 3, 4])))] += 1
    print(f"infarct maps as 0/1 scar maps, --scar-labels 2, their myocardium as the mask: {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
