"""EMIDEC whole-heart scar burden: the full reconstruction against the experts' slice summation.

Why: leave-one-slice-out (``bench_emidec_loso.py``) scores one held-out slice with twice the
real gap on either side. A clinician-researcher reads something else from the result: the scar
burden, the share of the myocardium that is scar, over the whole heart and at the scan's own
gaps. Its clinical yardstick needs no learning: slice summation, the experts' scar pixels over
their myocardium pixels on every slice (each slice standing for its own slab, as infarct size is
read from short-axis stacks). A reconstruction that keeps its scar's shape between the slices
should land near it; one that shrinks or swells the scar between them shows a bias that no
on-slice figure reveals.

Per infarct case (``Case_P*``): a hexahedral myocardium mesh (1.5 mm) from every slice's labels
2, 3, 4; targets 1 for labels 3, 4, 0 for 2, NaN elsewhere, slabs of half the spacing (as
``bench_emidec_loso.py`` prepares, with no slice held out); the fast preset with the shape prior
``auto`` and ``off`` (or one of them, ``--shape-prior``); 10 MC samples. Burdens, each the
node-volume-weighted share of the mesh called scar at 0.5 (:func:`cardioscar.evaluate.metrics.node_volumes`):

* ``expert``: slice summation on the label map (no mesh);
* ``nearest_slice`` and ``logodds``: the no-learning yardsticks on the same mesh (each slice's
  scar map with non-myocardium pixels given their nearest myocardium pixel's value);
* ``recon_<setting>``: the reconstruction; ``on_slice_dice_<setting>``: its Dice at 0.5 on the nodes
  within a quarter spacing of a slice plane that lie in that slice's myocardium (the fit);
  ``ignored_groups_<setting>``, ``ignored_scar_groups_<setting>``, ``ignored_share_<setting>``,
  ``attempt_ignored_<setting>``: the groups the kept fit ignores (``bench_robust.ignored_record``).

One JSON line per case, then a summary: mean bias against the expert (points of burden), the SD
of the differences, Pearson r, per method.

Usage: PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/bench_emidec_burden.py
       [--data ../shared/data/emidec] [--cases P001,P003] [--every 4] [--shape-prior auto,off]
       [--output results/emidec_burden_fast.jsonl]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_emidec_loso as loso  # noqa: E402
from bench_robust import ignored_record  # noqa: E402

from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.evaluate import heldout, metrics  # noqa: E402
from cardioscar.evaluate.baselines import logodds_baseline, nearest_slice_baseline  # noqa: E402
from cardioscar.fit.training import TrainingConfig  # noqa: E402
from cardioscar.logic import predict_on_points, prepare_from_slices, train_scar_model  # noqa: E402
from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, labelled_slices, myocardium_mesh_from_labels  # noqa: E402
from cardioscar.prepare.slices import slices_from_image  # noqa: E402

logger = logging.getLogger("bench_emidec_burden")


def slice_summation(labels: np.ndarray) -> float:
    """Scar pixels (3, 4) over myocardium pixels (2, 3, 4), all slices: the experts' burden."""
    myocardium = np.isin(labels, MYOCARDIUM_LABELS).sum()
    return float(np.isin(labels, loso.SCAR_LABELS).sum() / myocardium) if myocardium else float("nan")


def burden(probability: np.ndarray, volumes: np.ndarray) -> float:
    """Share of the mesh's volume whose value is >= 0.5."""
    return float(volumes[probability >= 0.5].sum() / volumes.sum())


def on_slice_nodes(points: np.ndarray, layers: list, half_width_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes within ``half_width_mm`` of a slice plane in that slice's myocardium, and their expert truth."""
    found = [heldout.scored_nodes(points, layer, half_width_mm, MYOCARDIUM_LABELS, loso.SCAR_LABELS) for layer in layers]
    return np.concatenate([n for n, _ in found]), np.concatenate([t for _, t in found])


def run_case(case_dir: Path, settings: list[str], mc_samples: int = 10, seed: int = 0,
             config: TrainingConfig | None = None, mesh_spacing_mm: float = 1.5) -> dict:
    """Mesh, prepare, reconstruct under each shape-prior setting (``config``'s other fields: the
    fast preset's by default) and score the burdens of one case."""
    config = config or TrainingConfig.fast(seed=seed)
    start = time.perf_counter()
    image = loso.read_labels(case_dir)
    array = sitk.GetArrayViewFromImage(image)
    used = labelled_slices(array, MYOCARDIUM_LABELS)
    mesh = myocardium_mesh_from_labels(image, MYOCARDIUM_LABELS, spacing_mm=mesh_spacing_mm)
    points, volumes = mesh.points_lps(), metrics.node_volumes(mesh.dataset)
    spacing = float(image.GetSpacing()[2])
    layers = slices_from_image(image, "z", used, 0.5 * spacing, label=case_dir.name)
    training = prepare_from_slices(points, [loso.myocardium_targets(layer) for layer in layers])
    filled = loso.yardstick_slices(layers)
    nodes, truth = on_slice_nodes(points, layers, 0.25 * spacing)
    record = {"case": case_dir.name, "slices": len(used), "slice_spacing_mm": spacing, "nodes": int(len(points)),
              "expert": slice_summation(np.asarray(array)[used]),
              "nearest_slice": burden(nearest_slice_baseline(points, filled), volumes),
              "logodds": burden(logodds_baseline(points, filled), volumes),
              "prepare_s": round(time.perf_counter() - start, 1)}
    for setting in settings:
        begun = time.perf_counter()
        checkpoint = train_scar_model(training, dataclasses.replace(
            config, shape_prior=setting if setting == "auto" else setting == "on"))
        result = predict_on_points(checkpoint, points, mc_samples=mc_samples, seed=seed)
        record[f"recon_{setting}"] = burden(result.mean_predictions, volumes)
        record[f"on_slice_dice_{setting}"] = metrics.dice(result.mean_predictions[nodes], truth, 0.5)
        record[f"prior_used_{setting}"] = bool(checkpoint.get("hyperparameters", {}).get("shape_prior"))
        record.update({f"{key}_{setting}": value for key, value in ignored_record(checkpoint["history"]).items()})
        record[f"seconds_{setting}"] = round(time.perf_counter() - begun, 1)
    return record


def summarize(records: list[dict], settings: list[str]) -> dict:
    """Bias (mean of method - expert, points of burden), SD of the differences and Pearson r, per method."""
    expert = np.array([r["expert"] for r in records])
    summary = {"summary": True, "cases": len(records), "expert_mean": float(expert.mean())}
    for name in ["nearest_slice", "logodds"] + [f"recon_{s}" for s in settings]:
        values = np.array([r[name] for r in records])
        difference = 100.0 * (values - expert)
        summary[name] = {"mean": float(values.mean()), "bias_points": float(difference.mean()),
                         "sd_points": float(difference.std(ddof=1)) if len(records) > 1 else None,
                         "r": float(np.corrcoef(values, expert)[0, 1]) if len(records) > 2 else None}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=loso.DEFAULT_DATA)
    parser.add_argument("--cases", help="comma-separated case names (default: every Case_P*)")
    parser.add_argument("--every", type=int, default=1, help="only every N-th infarct case (a spread subset)")
    parser.add_argument("--shape-prior", default="auto,off", help="settings to compare: auto, on, off (comma-separated)")
    parser.add_argument("--mc-samples", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="JSON lines file, rewritten after each case")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    sitk.ProcessObject_SetGlobalWarningDisplay(False)  # the EMIDEC files' sform warning (the qform is right)
    settings = [s.strip() for s in args.shape_prior.split(",") if s.strip()]
    if not settings or any(s not in ("auto", "on", "off") for s in settings):
        raise SystemExit("error: --shape-prior takes auto, on and/or off, comma-separated")
    try:
        cases = loso.case_dirs(args.data, args.cases.split(",") if args.cases else None)[::max(1, args.every)]
        records = []
        for case in cases:
            records.append(run_case(case, settings, args.mc_samples, args.seed))
            print(json.dumps(records[-1]), flush=True)
            if args.output is not None:
                loso._write_records(args.output, records)
    except CardioScarError as exc:
        raise SystemExit(f"error: {exc}") from None
    summary = summarize(records, settings)
    print(json.dumps(summary), flush=True)
    if args.output is not None:
        loso._write_records(args.output, records + [summary])


if __name__ == "__main__":
    main()
