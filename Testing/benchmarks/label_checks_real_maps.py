"""Do the label-map checks refuse or warn on a real expert map? (bad inputs, round 9)

Runs the library's checks of a label map, as ``cardioscar prepare`` runs them, over every EMIDEC
map (75) and ACDC's two frames, with the options users give (EMIDEC ``--scar-labels 3,4
--myocardium-labels 2,3,4``, ACDC ``--myocardium-labels 2``), at their own size, at half and at
0.35 of their pixel spacing (a child's heart scanned finer), shrunk 0.6x with nearest neighbour
(a small heart at the same pixels), and, for EMIDEC, without the cavity label. It prints the runs,
the refusals and the warnings (both should be 0), then how often the wrong inputs the checks are
for are caught on the same maps: the cavity as scar (EMIDEC 1, ACDC 3), EMIDEC renumbered one
below without a cavity label given 2,3,4, LGE in 4 bits and in 8 bits smoothed as the label map.

Usage: PYTHONPATH=CardioScarLib python Testing/benchmarks/label_checks_real_maps.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

import numpy as np

from cardioscar.errors import CardioScarError
from cardioscar.prepare.myocardium import check_myocardium_labels
from cardioscar.prepare.slices import SliceLayer
from cardioscar.prepare.targets import check_scar_labels, warn_scar_free


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def _layers(volume: np.ndarray, spacing: tuple[float, float]) -> list[SliceLayer]:
    """The slices of ``volume`` (k, j, i) as layers with in-plane ``spacing`` (only the values and
    the spacing matter to the label checks)."""
    return [SliceLayer(values=v.astype(np.float64), origin=np.array([0.0, 0.0, 10.0 * k]), axis_i=np.array([1.0, 0, 0]),
                       axis_j=np.array([0, 1.0, 0]), spacing=spacing, half_thickness=5.0, label=f"k={k}")
            for k, v in enumerate(volume)]


def _shrink(volume: np.ndarray, factor: float) -> np.ndarray:
    """``volume`` shrunk in-plane by ``factor`` about its centre, nearest neighbour."""
    _, rows, cols = volume.shape
    j, i = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    sj = np.rint((rows - 1) / 2 + (j - (rows - 1) / 2) / factor).astype(int)
    si = np.rint((cols - 1) / 2 + (i - (cols - 1) / 2) / factor).astype(int)
    inside = (sj >= 0) & (sj < rows) & (si >= 0) & (si < cols)
    out = np.zeros_like(volume)
    out[:, inside] = volume[:, sj[inside], si[inside]]
    return out


def _variants(volume: np.ndarray, spacing: tuple[float, float]):
    yield "1x", volume, spacing
    yield "spacing 0.5", volume, (spacing[0] * 0.5, spacing[1] * 0.5)
    yield "spacing 0.35", volume, (spacing[0] * 0.35, spacing[1] * 0.35)
    yield "shrunk 0.6", _shrink(volume, 0.6), spacing


def _refused(check) -> bool:
    try:
        check()
    except CardioScarError:
        return True
    return False


def _right(layers, scar, myocardium) -> None:
    if scar is not None and np.isin(np.concatenate([l.values.ravel() for l in layers]), scar).any():
        check_scar_labels(layers, scar)
    elif scar is not None:
        warn_scar_free(layers, scar, myocardium)
    check_myocardium_labels([l.values for l in layers], myocardium, [l.spacing for l in layers], "--myocardium-labels")


def _lge_variants(path: Path):
    import SimpleITK as sitk
    from scipy import ndimage

    values = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(float)
    for name, smooth, levels in (("LGE 4 bits", 0.0, 16), ("LGE 8 bits smoothed 1.5 px", 1.5, 256)):
        v = ndimage.gaussian_filter(values, (0, smooth, smooth)) if smooth else values
        yield name, np.round((v - v.min()) / (v.max() - v.min()) * (levels - 1))


def main() -> None:
    import SimpleITK as sitk

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    args = parser.parse_args()
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    warnings = _Count()
    logging.getLogger("cardioscar").addHandler(warnings)
    logging.getLogger("cardioscar").propagate = False
    runs = refusals = 0
    caught: Counter = Counter()
    tried: Counter = Counter()
    maps = [(p, "emidec") for p in sorted((args.data / "emidec").glob("Case_*/Contours/*.nii.gz"))]
    maps += [(p, "acdc") for p in sorted((args.data / "acdc_patient101").glob("*_gt.nii.gz"))]
    for path, kind in maps:
        image = sitk.ReadImage(str(path))
        volume = np.rint(sitk.GetArrayFromImage(image)).astype(np.int64)
        for name, values, spacing in _variants(volume, tuple(image.GetSpacing()[:2])):
            if kind == "acdc":
                forms = [(values, None, [2])]
                wrong = [("cavity 3 as scar", values, [3], None)]
            else:
                forms = [(values, [3, 4], [2, 3, 4]), (np.where(values == 1, 0, values), [3, 4], [2, 3, 4])]
                wrong = [("cavity 1 as scar", values, [1], None)]
                if (values >= 3).any():
                    wrong.append(("one below given 2,3,4", np.where(values >= 2, values - 1, 0), [3, 4], [2, 3, 4]))
            for form, scar, myocardium in forms:
                runs += 1
                refusals += _refused(lambda: _right(_layers(form, spacing), scar, myocardium))
            for what, form, scar, myocardium in wrong:
                tried[what, name] += 1
                layers = _layers(form, spacing)
                caught[what, name] += _refused(lambda: (check_scar_labels(layers, scar), myocardium and
                                                        _right(layers, scar, myocardium)))
    right_warnings = warnings.count
    for path in sorted((args.data / "emidec").glob("Case_*/Images/*.nii.gz")):
        image = sitk.ReadImage(str(path))
        for what, values in _lge_variants(path):
            tried[what, "1x"] += 1
            caught[what, "1x"] += _refused(lambda: check_scar_labels(_layers(values, image.GetSpacing()[:2]), [3, 4]))
    print(f"real maps: {runs} runs, {refusals} refused, {right_warnings} warnings")
    for key in sorted(tried):
        print(f"{key[0]:<28} {key[1]:<14} caught {caught[key]} of {tried[key]}")


if __name__ == "__main__":
    main()
