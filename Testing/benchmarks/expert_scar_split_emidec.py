"""Border zone and core within the experts' scar, on real EMIDEC cases (README, *From LGE to an openCARP
model*: the experts' scar, split by intensity).

Per case, through the command line: ``mesh-from-labels``; ``prepare`` from the raw LGE with n-SD 2,3
and ``--expert-scar-labels 3,4 --expert-core-labels 4`` (scar and core targets); ``train --preset fast``
and ``apply`` for each; ``export --core-mesh``. A step whose output exists is skipped. Then, from the
files (the ``.elem`` tags, element centres from the ``.pts`` mapped to the label image): the tagged
volumes against the experts' slice summation, scar Dice on the elements within a quarter slice of a
slice, the no-reflow's tags, and the rule's own pixel counts on the slices (the n-SD route alone)
against the counts cut to the experts' scar. One JSON line per case.

    PYTHONPATH=CardioScarLib python Testing/benchmarks/expert_scar_split_emidec.py OUT_DIR [CASE ...]

(default cases P051 P022 P047; the n-SD route alone on the same meshes: ``modeller_path_emidec.py``.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from modeller_path_emidec import EMIDEC, cli, hexahedron_volumes, labels_at, read_counted, read_elem, HEX_TO_CARP  # noqa: E402

EXPERT = ["--expert-scar-labels", "3,4", "--expert-core-labels", "4"]


def run_route(case: str, folder: Path) -> None:
    lge = EMIDEC / f"Case_{case}" / "Images" / f"Case_{case}.nii.gz"
    labels = EMIDEC / f"Case_{case}" / "Contours" / f"Case_{case}.nii.gz"
    folder.mkdir(parents=True, exist_ok=True)
    cli(folder, "heart.vtk", "mesh-from-labels", "--labels", str(labels), "--output", "heart.vtk")
    rule = ["--scar-rule", "nsd", "--scar-thresholds", "2,3", "--myocardium-mask", str(labels), "--myocardium-labels",
            "2,3,4", "--blood-pool-labels", "1", *EXPERT, "--slice-thickness-padding", "5"]
    for target in ("scar", "core"):
        cli(folder, f"{target}.npz", "prepare", "--mesh", "heart.vtk", "--image", str(lge), *rule, "--scar-target",
            target, "--output", f"{target}.npz")
        cli(folder, f"{target}.pth", "train", "--training-data", f"{target}.npz", "--output", f"{target}.pth",
            "--preset", "fast", "--cpu")
        cli(folder, f"{target}_pred.vtk", "apply", "--model", f"{target}.pth", "--mesh", "heart.vtk", "--output",
            f"{target}_pred.vtk", "--cpu")
    cli(folder, "heart.elem", "export", "--mesh", "scar_pred.vtk", "--core-mesh", "core_pred.vtk", "--rule-from",
        "scar.npz", "--units", "mm", "--output", "heart")


def pixel_counts(folder: Path) -> dict:
    """The rule's own border-zone / core pixels on the slices and those cut to the experts' scar."""
    with np.load(folder / "scar.npz", allow_pickle=False) as data:
        record = json.loads(str(data["scar_rule"]))
    total = lambda key: int(sum(s.get(key, 0) for s in record["slices"]))  # noqa: E731
    return {"nsd_alone_border_core": [total("rule_border_pixels"), total("rule_core_pixels")],
            "within_expert_border_core": [total("border_pixels"), total("core_pixels")],
            "expert_scar": total("expert_scar_pixels"), "expert_labels": [record["expert_scar_labels"],
                                                                          record["expert_core_labels"]]}


def check_files(folder: Path, image: sitk.Image, labels: np.ndarray) -> dict:
    points = np.array([[float(v) for v in row] for row in read_counted(folder / "heart.pts")])  # mm
    _, elements, tags = read_elem(folder / "heart.elem")
    vtk_order = np.empty_like(elements)
    vtk_order[:, HEX_TO_CARP] = elements
    volumes = hexahedron_volumes(points[vtk_order])
    on_image, index = labels_at(image, labels, points[elements].mean(axis=1))
    near_slice = np.abs(index[:, 2] - np.rint(index[:, 2])) < 0.25
    on_myocardium = near_slice & np.isin(on_image, [2, 3, 4])
    truth = np.isin(on_image, [3, 4])
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    ml = lambda mask: round(float(volumes[mask].sum()) / 1000.0, 2)  # noqa: E731
    scar = tags >= 2
    a, b = scar[on_myocardium], truth[on_myocardium]
    no_reflow = on_myocardium & (on_image == 4)
    return {"expert_ml": {"myocardium": round(float(np.isin(labels, [2, 3, 4]).sum() * voxel_ml), 2),
                          "scar_3_4": round(float(np.isin(labels, [3, 4]).sum() * voxel_ml), 2),
                          "no_reflow_4": round(float((labels == 4).sum() * voxel_ml), 2)},
            "tagged_ml": {"border_zone": ml(tags == 2), "core": ml(tags == 3), "scar": ml(scar)},
            "near_slice_scar_dice": round(float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1)), 3),
            "tags_on_expert_scar": {int(t): round(float(truth[on_myocardium & (tags == t)].mean()), 3)
                                    for t in (1, 2, 3) if (on_myocardium & (tags == t)).any()},
            "tags_of_no_reflow": ({int(t): round(float((tags[no_reflow] == t).mean()), 3) for t in (1, 2, 3)}
                                  if no_reflow.any() else None)}


def main(out_dir: Path, cases: list[str]) -> None:
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    for case in cases:
        folder = out_dir / case
        run_route(case, folder)
        image = sitk.ReadImage(str(EMIDEC / f"Case_{case}" / "Contours" / f"Case_{case}.nii.gz"))
        record = {"case": case, **pixel_counts(folder), **check_files(folder, image, sitk.GetArrayFromImage(image))}
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:] or ["P051", "P022", "P047"])
