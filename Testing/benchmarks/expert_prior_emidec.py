"""The shape prior on the experts'-scar route (``prepare --scar-rule nsd --expert-scar-labels 3,4
--expert-core-labels 4``), on real EMIDEC cases: ``--shape-prior on`` against ``off`` for the scar
and the core target, and what the fast preset's ``auto`` chooses for each.

Per case, through the command line (``expert_scar_split_emidec.py``'s rule options; fast preset,
``--cpu``, seed 42), two runs; a step whose output exists is skipped:

* ``whole``: the mesh of every slice (``mesh-from-labels``), the targets of every slice. Scored:
  the fit on the slices (the groups' mean at 0.5 against their targets: Dice, called share against
  the targets' share, i.e. slice summation); for the scar field also the nodes within a quarter slice
  of a slice plane, in its myocardium, against the experts' labels 3, 4 (Dice), and the mesh's node
  share at 0.5 (the burden; nodes of the 1.5 mm voxel mesh are evenly spaced).
* ``loso``: the middle myocardial slice held out (:func:`cardioscar.evaluate.heldout.middle_slice`), the
  mesh built without it (as ``bench_emidec_loso.py``), the targets of the other slices. Scored on the
  held-out slice's own groups (its targets prepared alone on the same mesh: the experts' scar for the
  scar target, the rule's core within it for the core target): Dice at 0.5 of the groups' means, the
  best-threshold Dice, ROC AUC, and the called share against the targets' share. A case whose held-out
  slice has no expert scar is not scored (``prepare`` refuses expert labels that mark no pixel).

One JSON line per case and run.

    PYTHONPATH=CardioScarLib python Testing/benchmarks/expert_prior_emidec.py whole|loso OUT_DIR [CASE ...]
    PYTHONPATH=CardioScarLib python Testing/benchmarks/expert_prior_emidec.py summary FILE.jsonl [FILE.jsonl ...]

(``EXPERT_PRIOR_TARGETS=core``: the core target alone. The scar target's rows are the labels route's,
``prepare --scar-labels 3,4 --myocardium-labels 2,3,4`` on the same mesh, array for array: only the
``scar_rule`` record differs.)

(default cases: every 6th infarct case in name order, P001 P011 P029 P044 P055 P064 P073 P085 P094.)
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from expert_scar_split_emidec import EXPERT  # noqa: E402
from modeller_path_emidec import EMIDEC, cli, labels_at, point_field, read_grid  # noqa: E402

from cardioscar.evaluate import heldout, metrics  # noqa: E402
from cardioscar.io.meshio import write_mesh  # noqa: E402
from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, labelled_slices, myocardium_mesh_from_labels  # noqa: E402
from cardioscar.shape_prior.use import prior_from_npz, training_prior  # noqa: E402

TARGETS = ("scar", "core")
PRIORS = ("on", "off")
MODELS = {f"{target}_{prior}" for target in TARGETS for prior in PRIORS}


def case_files(case: str) -> tuple[Path, Path]:
    """The case's raw LGE and expert label map."""
    return (EMIDEC / f"Case_{case}" / "Images" / f"Case_{case}.nii.gz",
            EMIDEC / f"Case_{case}" / "Contours" / f"Case_{case}.nii.gz")


def prepare(folder: Path, case: str, target: str, output: str, indices: list[int] | None) -> None:
    """``prepare`` the experts'-scar route for ``target`` on ``folder``'s ``heart.vtk``."""
    lge, labels = case_files(case)
    chosen = ["--slice-indices", ",".join(map(str, indices))] if indices else []
    cli(folder, output, "prepare", "--mesh", "heart.vtk", "--image", str(lge), "--scar-rule", "nsd",
        "--scar-thresholds", "2,3", "--myocardium-mask", str(labels), "--myocardium-labels", "2,3,4",
        "--blood-pool-labels", "1", *EXPERT, "--slice-thickness-padding", "5", "--scar-target", target,
        *chosen, "--output", output)


def train_and_apply(folder: Path, target: str) -> None:
    """Both priors' models of ``target.npz``, applied to ``heart.vtk``."""
    for prior in PRIORS:
        model = f"{target}_{prior}"
        cli(folder, f"{model}.pth", "train", "--training-data", f"{target}.npz", "--output", f"{model}.pth",
            "--preset", "fast", "--cpu", "--no-progress", "--shape-prior", prior)
        cli(folder, f"{model}.vtk", "apply", "--model", f"{model}.pth", "--mesh", "heart.vtk", "--output",
            f"{model}.vtk", "--cpu")


def groups(npz: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows' mesh nodes, rows' group index 0..G-1, each group's target) of a training ``.npz``."""
    with np.load(npz, allow_pickle=False) as data:
        nodes, group_ids, values = data["node_ids"].ravel(), data["group_ids"].ravel(), data["intensities"].ravel()
    unique, index = np.unique(group_ids, return_inverse=True)
    target = np.zeros(len(unique))
    target[index] = values
    return nodes, index, target


def group_means(probability: np.ndarray, nodes: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Each group's mean probability (the box profile: every row weighted 1)."""
    return np.bincount(index, probability[nodes]) / np.bincount(index)


def auto_choice(npz: Path) -> bool:
    """Whether the fast preset's ``auto`` trains ``npz`` with its prior."""
    with np.load(npz, allow_pickle=False) as data:
        arrays = dict(data)
    prior = prior_from_npz(arrays, str(npz))
    return training_prior(prior, "auto", arrays["intensities"], str(arrays.get("scar_rule", ""))) is not None


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(2 * (a & b).sum() / max(int(a.sum() + b.sum()), 1)), 3)


def group_scores(means: np.ndarray, target: np.ndarray) -> dict:
    truth = target >= 0.5
    scores = {"dice": dice(means >= 0.5, truth), "share": round(float((means >= 0.5).mean()), 4),
              "target_share": round(float(truth.mean()), 4)}
    if truth.any() and not truth.all():
        scores["auc"] = round(float(metrics.auc(means, truth)), 3)
        scores["best_dice"] = round(max(dice(means >= t, truth) for t in np.linspace(0.05, 0.95, 19)), 3)
    return scores


def same_rows_as_labels_route(folder: Path, case: str) -> bool:
    """Whether the scar target's ``.npz`` holds the labels route's arrays (``prepare --scar-labels 3,4``
    on the same mesh and slab), the rule's record and the myocardium's source aside."""
    _, labels = case_files(case)
    prepare(folder, case, "scar", "scar.npz", None)
    cli(folder, "labels.npz", "prepare", "--mesh", "heart.vtk", "--image", str(labels), "--scar-labels", "3,4",
        "--myocardium-labels", "2,3,4", "--slice-thickness-padding", "5", "--output", "labels.npz")
    with np.load(folder / "scar.npz", allow_pickle=False) as rule, np.load(folder / "labels.npz") as drawn:
        keys = set(drawn.files) - {"myocardium_source"}
        return set(rule.files) - keys == {"scar_rule", "myocardium_source"} and all(
            np.array_equal(rule[key], drawn[key]) for key in keys)


def whole_run(case: str, folder: Path, targets: tuple[str, ...] = TARGETS) -> dict:
    _, labels_path = case_files(case)
    folder.mkdir(parents=True, exist_ok=True)
    cli(folder, "heart.vtk", "mesh-from-labels", "--labels", str(labels_path), "--output", "heart.vtk")
    image = sitk.ReadImage(str(labels_path))
    out = {"scar_rows_are_the_labels_routes": same_rows_as_labels_route(folder, case)}
    for target in targets:
        prepare(folder, case, target, f"{target}.npz", None)
        train_and_apply(folder, target)
        nodes, index, values = groups(folder / f"{target}.npz")
        out[f"{target}_auto_prior"] = auto_choice(folder / f"{target}.npz")
        for prior in PRIORS:
            grid, points = read_grid(folder / f"{target}_{prior}.vtk")
            probability = point_field(grid, "scar_probability")
            scores = group_scores(group_means(probability, nodes, index), values)
            scores["node_share"] = round(float((probability >= 0.5).mean()), 4)
            if target == "scar":
                on_image, ijk = labels_at(image, sitk.GetArrayFromImage(image), points)
                near = (np.abs(ijk[:, 2] - np.rint(ijk[:, 2])) < 0.25) & np.isin(on_image, MYOCARDIUM_LABELS)
                scores["near_slice_expert_dice"] = dice(probability[near] >= 0.5, np.isin(on_image[near], (3, 4)))
            out[f"{target}_{prior}"] = scores
    return out


def loso_run(case: str, folder: Path, targets: tuple[str, ...] = TARGETS) -> dict:
    _, labels_path = case_files(case)
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.ReadImage(str(labels_path))
    labelled = labelled_slices(sitk.GetArrayViewFromImage(image), MYOCARDIUM_LABELS)
    held = heldout.middle_slice(labelled)
    if not (folder / "heart.vtk").exists():
        write_mesh(myocardium_mesh_from_labels(image, MYOCARDIUM_LABELS, held_out_k=held), folder / "heart.vtk")
    kept = [k for k in range(image.GetSize()[2]) if k != held]
    scarred = bool(np.isin(sitk.GetArrayViewFromImage(image)[held], (3, 4)).any())
    out = {"held_out_k": held, "held_out_slice_has_expert_scar": scarred}
    if not scarred:  # prepare refuses expert labels that mark no pixel: nothing to score on that slice
        return out
    for target in targets:
        prepare(folder, case, target, f"{target}.npz", kept)
        prepare(folder, case, target, f"{target}_held.npz", [held])
        train_and_apply(folder, target)
        nodes, index, values = groups(folder / f"{target}_held.npz")
        for prior in PRIORS:
            grid, _ = read_grid(folder / f"{target}_{prior}.vtk")
            out[f"{target}_{prior}"] = group_scores(group_means(point_field(grid, "scar_probability"), nodes, index),
                                                    values)
    return out


RUNS = {"whole": whole_run, "loso": loso_run}


def with_errors(scores: dict) -> dict:
    """``scores`` plus the called share's distance from the targets' (on the groups; the mesh's
    node share from the slices' for a whole run: the burden against slice summation)."""
    errors = {"abs_share_error": abs(scores["share"] - scores["target_share"])}
    if "node_share" in scores:
        errors["abs_burden_error"] = abs(scores["node_share"] - scores["target_share"])
    return {**scores, **errors}


def summary(lines: list[dict]) -> dict:
    """Per run, target and score: the mean over the cases of on and off, and on's wins / losses."""
    lines = [{key: with_errors(value) if key in MODELS else value for key, value in line.items()}
             for line in lines]
    out = {}
    for run in RUNS:
        rows = [line for line in lines if line["run"] == run]
        for target in TARGETS:
            for score in sorted({key for row in rows for key in row.get(f"{target}_on", {})}):
                pairs = [(row[f"{target}_on"][score], row[f"{target}_off"][score]) for row in rows
                         if score in row.get(f"{target}_on", {}) and score in row.get(f"{target}_off", {})]
                on, off = np.array(pairs).T
                out[f"{run} {target} {score}"] = {"cases": len(pairs), "on": round(float(on.mean()), 3),
                                                  "off": round(float(off.mean()), 3),
                                                  "on_higher": int((on > off).sum()), "on_lower": int((on < off).sum())}
    return out


def main(run: str, out_dir: Path, cases: list[str], targets: tuple[str, ...]) -> None:
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    logging.basicConfig(level=logging.WARNING)
    for case in cases:
        print(json.dumps({"case": case, "run": run, **RUNS[run](case, out_dir / case / run, targets)}), flush=True)


if __name__ == "__main__" and sys.argv[1] == "summary":
    for key, value in summary([json.loads(text) for path in sys.argv[2:]
                               for text in Path(path).read_text().splitlines()]).items():
        print(key, json.dumps(value))
elif __name__ == "__main__":
    chosen = tuple(os.environ.get("EXPERT_PRIOR_TARGETS", ",".join(TARGETS)).split(","))
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3:] or ["P001", "P011", "P029", "P044", "P055", "P064", "P073", "P085", "P094"], chosen)
