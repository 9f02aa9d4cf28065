"""Does a scar rule refuse an LGE paired with another patient's myocardium mask, and never its own?

Runs the library's check (``lge.mask_fit.check_mask_on_lge``, as ``graded_targets`` runs it on
every face) on EMIDEC's 75 LGE stacks with their own label map (myocardium 2,3,4) and with the
label maps of the next two cases in name order (150 wrong pairs), and with their own maps
moved 6 and 12 mm in-plane in four directions (300 each: the own mask of another breath-hold); the map sampled at each LGE
pixel centre by prepare's reader (``masks_from_image``). EMIDEC's images all have their origin at
0, so another heart lands in the field of view. Where the other map misses some of the LGE's
slices, prepare refuses it already (``misses_slices``); the check is then run on the slices it
covers, as a user choosing them with ``--slice-indices`` would. Prints one JSON line per pair
(the share of cavity-brighter pixel pairs, the slices read, the outcome) and a summary per kind.

``--mesh-pairs``: also the 156 pairs of ``other_patients_mesh.py`` (each of the 52 infarct cases'
LGE with the maps of the next three), with that benchmark's mesh check share (the other map's
``mesh-from-labels`` mesh on the LGE's own map, under 0.6 warned, under 0.3 refused): does this
check catch the pairs the mesh check passes?

Usage: OMP_NUM_THREADS=1 PYTHONPATH=CardioScarLib python Testing/benchmarks/lge_mask_fit_emidec.py
       [--data ../shared/data] [--mesh-pairs]
(3.9 min of CPU with --mesh-pairs, 5.4 min wall on the shared machine; its output: results/lge_mask_fit_emidec.txt)
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from cardioscar.errors import CardioScarError
from cardioscar.lge.mask_fit import check_mask_on_lge, mask_fit
from cardioscar.prepare.myocardium import masks_from_image
from cardioscar.prepare.slices import slices_from_image

MYOCARDIUM = [2, 3, 4]


class _Warned(logging.Handler):
    """Counts the check's warnings (the library logs them; nothing is printed)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def covered_slices(image: sitk.Image, labels: sitk.Image) -> list[int]:
    """The LGE's slice indices where the label map, resampled onto it, has myocardium."""
    placed = sitk.GetArrayFromImage(sitk.Resample(labels, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    return [int(k) for k in np.nonzero(np.isin(placed, MYOCARDIUM).any(axis=(1, 2)))[0]]


def run_pair(image: sitk.Image, labels: sitk.Image, warned: _Warned) -> dict:
    """The check's outcome for one LGE and one label map (prepare's slices and mask reader)."""
    covered = covered_slices(image, labels)
    misses = len(covered) < image.GetSize()[2]
    if not covered:
        return {"misses_slices": True, "slices_read": 0, "share": None, "outcome": "no slice covered"}
    layers = slices_from_image(image, slice_indices=covered, half_thickness=5.0, label="lge")
    masks = masks_from_image(labels, layers, MYOCARDIUM, source="labels")
    share, read = mask_fit([layer.values for layer in layers], masks)
    before = warned.count
    try:
        check_mask_on_lge(layers, masks, "labels")
        outcome = "warned" if warned.count > before else "passed"
    except CardioScarError:
        outcome = "refused"
    return {"misses_slices": misses, "slices_read": read, "share": None if share is None else round(share, 4),
            "outcome": outcome}


def moved(labels: sitk.Image, shift_mm: float, axis: int) -> sitk.Image:
    """The label map moved in-plane by ``shift_mm`` (rounded to whole pixels) along array ``axis``
    (2: i, 1: j), on its own grid: the own mask of another breath-hold."""
    spacing = labels.GetSpacing()[2 - axis]
    placed = sitk.GetImageFromArray(np.roll(sitk.GetArrayFromImage(labels), int(round(shift_mm / spacing)), axis=axis))
    placed.CopyInformation(labels)
    return placed


def summary(kind: str, rows: list[dict]) -> dict:
    """Outcome counts and the range of the shares of one kind of pair."""
    shares = np.array([row["share"] for row in rows if row["share"] is not None])
    spread = {} if shares.size == 0 else {"share_min": round(float(shares.min()), 3),
                                           "share_median": round(float(np.median(shares)), 3),
                                           "share_max": round(float(shares.max()), 3)}
    return {"summary": kind, "pairs": len(rows), **Counter(row["outcome"] for row in rows),
            "misses_slices": sum(row["misses_slices"] for row in rows), **spread}


def mesh_check_shares(maps: dict[str, sitk.Image], names: list[str]) -> dict[tuple[str, str], Optional[float]]:
    """other_patients_mesh.py's share per (LGE's case, other map's case), for the next three infarct cases."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from other_patients_mesh import shares
    from cardioscar.prepare.mesh_from_labels import myocardium_mesh_from_labels

    meshes = {name: myocardium_mesh_from_labels(maps[name]).points_lps() for name in names}
    found: dict[tuple[str, str], Optional[float]] = {}
    for index, name in enumerate(names):
        for step in (1, 2, 3):
            other = names[(index + step) % len(names)]
            try:
                found[name, other] = shares(meshes[other], maps[name])[2]
            except CardioScarError:  # no node in any slab: the mesh check refuses it
                found[name, other] = 0.0
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--mesh-pairs", action="store_true", help="also the 156 pairs of other_patients_mesh.py")
    args = parser.parse_args()
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    logging.disable(logging.INFO)
    warned = _Warned()
    logging.getLogger("cardioscar.lge.mask_fit").addHandler(warned)
    folders = sorted(p for p in (args.data / "emidec").iterdir() if p.is_dir() and p.name.startswith("Case_"))
    images = {f.name: sitk.ReadImage(str(f / "Images" / f"{f.name}.nii.gz"), sitk.sitkFloat64) for f in folders}
    maps = {f.name: sitk.ReadImage(str(f / "Contours" / f"{f.name}.nii.gz")) for f in folders}
    names = list(images)
    rows: dict[str, list[dict]] = {"own": [], "other": [], "own moved 6 mm": [], "own moved 12 mm": []}
    for index, name in enumerate(names):
        for kind, other in [("own", name)] + [("other", names[(index + s) % len(names)]) for s in (1, 2)]:
            row = {"kind": kind, "image": name, "mask": other, **run_pair(images[name], maps[other], warned)}
            rows[kind].append(row)
            print(json.dumps(row), flush=True)
        for shift in (6.0, 12.0):
            for axis, sign in ((2, 1), (2, -1), (1, 1), (1, -1)):
                row = {"kind": f"own moved {shift:g} mm", "image": name, "mask": name, "axis": "kji"[axis],
                       "sign": sign, **run_pair(images[name], moved(maps[name], sign * shift, axis), warned)}
                rows[row["kind"]].append(row)
                print(json.dumps(row), flush=True)
    for kind, found in rows.items():
        print(json.dumps(summary(kind, found)))
    if args.mesh_pairs:
        infarcts = [name for name in names if name.startswith("Case_P")]
        mesh = mesh_check_shares(maps, infarcts)
        paired = []
        for (name, other), near in mesh.items():
            row = {"kind": "mesh pair", "image": name, "mask": other, "mesh_share": round(near, 3),
                   **run_pair(images[name], maps[other], warned)}
            paired.append(row)
            print(json.dumps(row), flush=True)
        print(json.dumps(summary("mesh pairs (156)", paired)))
        print(json.dumps(summary("mesh pairs the mesh check passes (share >= 0.6)",
                                 [row for row in paired if row["mesh_share"] >= 0.6])))


if __name__ == "__main__":
    main()
