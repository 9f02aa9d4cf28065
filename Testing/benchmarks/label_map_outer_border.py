"""Does ``--scar-labels`` warn that the scar labels are the myocardium, on real expert maps?

``prepare``/``evaluate`` warn (round 7) when the scar labels cover over half of the heart's outer
border (:func:`cardioscar.prepare.targets.warn_myocardium_as_scar`). This reads every EMIDEC map
(labels 1 cavity, 2 myocardium, 3 scar, 4 no-reflow) with the right scar labels 3,4 (must not warn)
and the wrong 2 and 2,3,4 (must warn), and ACDC's two frames (1 right ventricle, 2 myocardium,
3 LV cavity) with 2 (must warn); each map as given and with its cavity label set to 0 (a map
without a cavity label, whose myocardium then encloses background); and the label maps of the
segmented phantom family, seeds 0-7 (1 blood pool, 2 myocardium, 3 scar; the demo phantom writes
no label map), with the right 3 and the wrong 2 and 2,3. One JSON line per map, form and
scar labels: ``share`` (the share of the outer border, read by calling the check with its cut set
to 0), ``myocardium_warning`` (the check itself) and ``warnings`` (every warning or refusal of
prepare's whole label check, :func:`~cardioscar.prepare.targets.check_scar_labels`).

    PYTHONPATH=CardioScarLib python Testing/benchmarks/label_map_outer_border.py [DATA] [OUT.jsonl]
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.errors import CardioScarError
from cardioscar.phantoms.phantom import make_phantom
from cardioscar.phantoms.phantom_segmented import SegmentedConfig
from cardioscar.prepare import targets
from cardioscar.prepare.slices import SliceLayer

CASES = {"emidec": {"cavity": 1, "scar": {"right 3,4": [3, 4], "wrong 2": [2], "wrong 2,3,4": [2, 3, 4]}},
         "acdc": {"cavity": 3, "scar": {"wrong 2": [2]}},
         "phantom": {"cavity": 1, "scar": {"right 3": [3], "wrong 2": [2], "wrong 2,3": [2, 3]}}}
#: The segmented phantom family's seeds read (a small mesh: only the label map is used).
PHANTOM_SEEDS, PHANTOM_NODES = range(8), 2000


class _Records(logging.Handler):
    """Keeps the library's warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _layers(volume: np.ndarray, spacing: tuple[float, float]) -> list[SliceLayer]:
    """The slices of ``volume`` (k, j, i) as layers (only the values and spacing matter here)."""
    return [SliceLayer(values=v.astype(np.float64), origin=np.array([0.0, 0.0, 10.0 * k]), axis_i=np.array([1.0, 0, 0]),
                       axis_j=np.array([0, 1.0, 0]), spacing=spacing, half_thickness=5.0, label=f"k={k}")
            for k, v in enumerate(volume)]


def _share(layers: list[SliceLayer], scar: list[int], records: _Records) -> float | None:
    """The outer-border share the check computes, read from its warning with the cut at 0 (None
    when it does not measure: no other label, or no border)."""
    cut, targets.EPICARDIAL_SCAR_SHARE = targets.EPICARDIAL_SCAR_SHARE, 0.0
    try:
        records.records.clear()
        return round(records.records[-1].args[1] / 100.0, 4) if targets.warn_myocardium_as_scar(layers, scar) else None
    finally:
        targets.EPICARDIAL_SCAR_SHARE = cut


def _check_warnings(layers: list[SliceLayer], scar: list[int], records: _Records) -> int:
    """How many warnings (a refusal counts as one) prepare's label check gives."""
    records.records.clear()
    try:
        targets.check_scar_labels(layers, scar)
    except CardioScarError:
        return len(records.records) + 1
    return len(records.records)


def main(data: Path, out: Path | None) -> None:
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    records = _Records()
    logging.getLogger("cardioscar").addHandler(records)
    logging.getLogger("cardioscar").propagate = False
    maps = [(p.name.split(".")[0], "emidec", lambda p=p: sitk.ReadImage(str(p)))
            for p in sorted((data / "emidec").glob("Case_*/Contours/*.nii.gz"))]
    maps += [(p.name.split(".")[0], "acdc", lambda p=p: sitk.ReadImage(str(p)))
             for p in sorted((data / "acdc_patient101").glob("*_gt.nii.gz"))]
    maps += [(f"segmented seed {seed}", "phantom",
              lambda seed=seed: make_phantom(SegmentedConfig(seed=seed, target_nodes=PHANTOM_NODES)).label_image)
             for seed in PHANTOM_SEEDS]
    rows = []
    for case, kind, read in maps:
        image = read()
        volume = np.rint(sitk.GetArrayFromImage(image)).astype(np.int64)
        spacing = tuple(image.GetSpacing()[:2])
        for form, values in (("as given", volume), ("no cavity label", np.where(volume == CASES[kind]["cavity"], 0, volume))):
            layers = _layers(values, spacing)
            for name, scar in CASES[kind]["scar"].items():
                if not np.isin(values, scar).any():
                    continue  # a scar-free control has no label 3 or 4
                records.records.clear()
                warned = targets.warn_myocardium_as_scar(layers, scar)
                rows.append({"case": case, "dataset": kind, "form": form, "scar_labels": name,
                             "share": _share(layers, scar, records), "myocardium_warning": warned,
                             "warnings": _check_warnings(layers, scar, records)})
    counts: Counter = Counter()
    for row in rows:
        key = (row["dataset"], row["form"], row["scar_labels"])
        counts[key + ("maps",)] += 1
        counts[key + ("myocardium warning",)] += row["myocardium_warning"]
        counts[key + ("any warning",)] += row["warnings"] > 0
    for key in sorted({k[:3] for k in counts}):
        shares = [r["share"] for r in rows if (r["dataset"], r["form"], r["scar_labels"]) == key and r["share"] is not None]
        span = f"share {min(shares):.2f}-{max(shares):.2f}" if shares else "share not measured"
        print(f"{key[0]:<7} {key[1]:<16} {key[2]:<12} maps {counts[key + ('maps',)]:3d}  myocardium warning "
              f"{counts[key + ('myocardium warning',)]:3d}  any label warning {counts[key + ('any warning',)]:3d}  {span}")
    if out is not None:
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "shared" / "data",
         Path(sys.argv[2]) if len(sys.argv) > 2 else None)
