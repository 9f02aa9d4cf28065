"""Do the label-map checks refuse or warn on a real expert map? (bad inputs, round 9)

Runs the library's checks of a label map, as ``cardioscar prepare`` runs them, over every EMIDEC
map (75) and ACDC's two frames, with the options users give (EMIDEC ``--scar-labels 3,4
--myocardium-labels 2,3,4``, ACDC ``--myocardium-labels 2``), at their own size, at half and at
0.35 of their pixel spacing (a child's heart scanned finer), shrunk 0.6x with nearest neighbour
(a small heart at the same pixels), and, for EMIDEC, without the cavity label. It prints the runs,
the refusals and the warnings (both should be 0; a normal control's map, checked also as given
with its myocardium as the mask, warns that it is scar-free), then how often the wrong inputs the
checks are for are caught on the same maps: the cavity as scar (EMIDEC 1, ACDC 3), EMIDEC
renumbered one below without a cavity label given 2,3,4, ``--scar-labels 5`` with the map's
myocardium as the mask, and (at their own size) LGE in 4 bits and in 8 bits smoothed as the map.

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
from cardioscar.prepare.targets import MANY_VALUES, check_scar_labels, refuse_scattered, warn_scar_free


class _Count(logging.Handler):
    """Counts the warnings, less the scar-free one (expected on a normal control's map)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = self.scar_free = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "a scar-free heart" in record.getMessage():
            self.scar_free += 1
        else:
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
    """``prepare``'s checks of a label map with these scar and myocardium labels; a map without
    scar (a normal control) also as given with its myocardium as ``--myocardium-mask``."""
    if scar is not None and np.isin(np.concatenate([l.values.ravel() for l in layers]), scar).any():
        check_scar_labels(layers, scar)
    elif scar is not None:
        warn_scar_free(layers, scar, myocardium)
        warn_scar_free(layers, scar, None, [np.isin(l.values, myocardium) for l in layers])
    check_myocardium_labels([l.values for l in layers], myocardium, [l.spacing for l in layers], "--myocardium-labels")


def _mistyped_with_mask(layers) -> None:
    """``--scar-labels 5 --myocardium-mask`` (the map's own myocardium 2,3,4)."""
    warn_scar_free(layers, [5], None, [np.isin(l.values, [2, 3, 4]) for l in layers])


def _lge_variants(path: Path):
    """The stack's LGE in 4 bits (scaled over its range) and in 8 bits as round 8 made it (the 2048
    offset taken off where the stack reaches above it, divided by 8), smoothed by 2 pixels."""
    import SimpleITK as sitk
    from scipy import ndimage

    values = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(float)
    yield "LGE 4 bits", np.round((values - values.min()) / (values.max() - values.min()) * 15)
    eight = np.minimum(np.clip(values - (2048 if values.max() > 2048 else 0), 0, None) / 8, 255)
    yield "LGE 8 bits smoothed 2 px", np.round(ndimage.gaussian_filter(eight, (0, 2.0, 2.0)))


def _round_8_refuses(layers) -> bool:
    """Whether round 8's rule alone (many values, scattered scar pixels) refuses ``layers``."""
    most = max(np.unique(layer.values).size for layer in layers)
    return most > MANY_VALUES and _refused(lambda: refuse_scattered(layers, [3, 4], most))


def main() -> None:
    import SimpleITK as sitk

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    args = parser.parse_args()
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    warnings = _Count()
    logging.getLogger("cardioscar").addHandler(warnings)
    logging.getLogger("cardioscar").propagate = False
    runs = refusals = right_warnings = scar_free = 0
    caught: Counter = Counter()
    tried: Counter = Counter()
    round_8: Counter = Counter()  # the LGE stacks round 8's rule refused
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
                before, free = warnings.count, warnings.scar_free
                refusals += _refused(lambda: _right(_layers(form, spacing), scar, myocardium))
                right_warnings += warnings.count - before
                scar_free += warnings.scar_free - free
            if kind == "emidec" and (values >= 3).any():
                tried["scar 5 with a mask", name] += 1
                caught["scar 5 with a mask", name] += _refused(lambda: _mistyped_with_mask(_layers(values, spacing)))
            for what, form, scar, myocardium in wrong:
                tried[what, name] += 1
                layers = _layers(form, spacing)
                caught[what, name] += _refused(lambda: (check_scar_labels(layers, scar), myocardium and
                                                        _right(layers, scar, myocardium)))
    for path in sorted((args.data / "emidec").glob("Case_*/Images/*.nii.gz")):
        image = sitk.ReadImage(str(path))
        for what, values in _lge_variants(path):
            layers = _layers(values, image.GetSpacing()[:2])
            tried[what, "1x"] += 1
            caught[what, "1x"] += _refused(lambda: check_scar_labels(layers, [3, 4]))
            round_8[what] += _round_8_refuses(layers)
    print(f"real maps: {runs} runs, {refusals} refused, {right_warnings} warnings (and {scar_free} "
          "scar-free warnings: a normal control's map, as given with labels and with a mask)")
    for key in sorted(tried):
        was = f" (round 8's rule alone: {round_8[key[0]]})" if key[0] in round_8 else ""
        print(f"{key[0]:<28} {key[1]:<14} caught {caught[key]} of {tried[key]}{was}")


if __name__ == "__main__":
    main()
