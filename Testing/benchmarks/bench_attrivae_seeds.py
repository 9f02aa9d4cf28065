"""Attri-VAE on EMIDEC over several seeds: AUC, and how calibrated the MI probability is.

Not part of the test suite. For each seed (which draws both the stratified folds and the
network's weights and batches) it runs the library's cross-validation (``cross_validate``: every
fold's scaler and model fitted on its training folds only, held-out predictions only) and scores
the held-out MI probability three ways:
  raw       the network's sigmoid (trained with the MI class re-weighted)
  platt     each fold through a Platt scaling fitted on the other folds' held-out scores (the
            library's ``fold_calibrated``, what ``train`` reports and the saved model applies)
  isotonic  the same, with isotonic regression in place of Platt's two numbers (the alternative)
with the AUC, Brier score and expected calibration error (5 equal-width bins). Beside it, the
label-free brightness rule of ``bench_attrivae.py`` (share of myocardial voxels brighter than the
cavity's median): its AUC (no seed involved), and its Brier and ECE once Platt-scaled on the same
folds (a share is not a probability). The results file is rewritten after every seed, so a run
cut short keeps the seeds it finished (``--resume`` then runs only the seeds it lacks).

Usage (from the repository root; one seed, five fits, took 2-6 min on one CPU thread of the shared
machine at 32^3 and 80 epochs, Testing/benchmarks/RESULTS.md has the figures):
  OMP_NUM_THREADS=1 PYTHONPATH=CardioScarLib python Testing/benchmarks/bench_attrivae_seeds.py \
      --seeds 42,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 --resume --output Testing/benchmarks/results/attrivae_emidec_seeds.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from bench_attrivae import enhancement_scores
from cardioscar.attrivae.calibration import brier_score, expected_calibration_error, fold_calibrated
from cardioscar.attrivae.dataset import load_cases
from cardioscar.attrivae.model import Architecture
from cardioscar.attrivae.preprocess import LabelConvention, PreprocessConfig
from cardioscar.attrivae.train import TrainConfig, cross_validate
from cardioscar.fit.devices import describe_device, resolve_device

REPO = Path(__file__).resolve().parents[2]


def isotonic_calibrated(labels: np.ndarray, raw: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """Each fold through an isotonic regression fitted on the other folds' held-out scores."""
    calibrated = np.full(len(raw), np.nan)
    for fold in np.unique(fold_of):
        training = fold_of != fold
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw[training], labels[training])
        calibrated[~training] = model.predict(raw[~training])
    return calibrated


def scores(labels: np.ndarray, probability: np.ndarray) -> dict:
    return {"auc": float(roc_auc_score(labels, probability)), "brier": brier_score(labels, probability),
            "ece": expected_calibration_error(labels, probability)}


def one_seed(cases: list, names: list[str], labels: np.ndarray, rule: np.ndarray, args, device) -> dict:
    """Cross-validate with one seed; the three readings of its held-out probability and the rule's."""
    tick = time.perf_counter()
    config = TrainConfig(epochs=args.epochs, seed=args.seed_now)
    cv = cross_validate(cases, names, Architecture.for_cube(args.cube), config, args.folds, device)
    raw, fold_of = np.array(cv["probability"]), np.array(cv["fold"])
    rule_platt, _ = fold_calibrated(labels, rule, fold_of)
    return {"seed": args.seed_now, "seconds": time.perf_counter() - tick,
            "raw": scores(labels, raw), "platt": scores(labels, np.array(cv["calibrated_probability"])),
            "isotonic": scores(labels, isotonic_calibrated(labels, raw, fold_of)),
            "rule_platt": scores(labels, rule_platt), "final_calibration": cv["calibration"],
            "fold_calibration": cv["fold_calibration"],
            "reliability": {k: cv["figures"]["calibration"][k]["reliability"] for k in ("uncalibrated", "calibrated")},
            "heldout": {"case": cv["case_ids"], "raw": cv["probability"],
                        "platt": cv["calibrated_probability"], "fold": cv["fold"]}}


def summary(runs: list[dict]) -> dict:
    """Mean, standard deviation, min and max over seeds of each figure."""
    out = {}
    for reading in ("raw", "platt", "isotonic", "rule_platt"):
        out[reading] = {}
        for figure in ("auc", "brier", "ece"):
            values = np.array([run[reading][figure] for run in runs])
            out[reading][figure] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1
                                    else None, "min": float(values.min()), "max": float(values.max())}
    out["seconds_per_seed"] = float(np.mean([run["seconds"] for run in runs]))
    out["n_seeds"] = len(runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "emidec")
    parser.add_argument("--cube", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",")], default=[42, 1, 2, 3, 4])
    parser.add_argument("--output", type=Path, required=True, help="results JSON (rewritten after each seed)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the seeds an earlier run with the same settings wrote to --output; run the rest")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("cardioscar.io.imageio").setLevel(logging.WARNING)
    device = resolve_device()
    cases, names = load_cases(args.data, args.data / "clinical.csv", LabelConvention(), PreprocessConfig(cube=args.cube))
    labels = np.array([c.mi for c in cases])
    rule = enhancement_scores(args.data, cases)
    results: dict = {"settings": {"cube": args.cube, "epochs": args.epochs, "folds": args.folds, "seeds": args.seeds,
                                  "device": describe_device(device), "torch_threads": torch.get_num_threads(),
                                  "n_cases": len(cases), "n_mi": int(labels.sum()),
                                  "brier_of_always_the_mi_frequency": float(labels.mean() * (1 - labels.mean()))},
                     "rule_auc": float(roc_auc_score(labels, rule)), "runs": []}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.resume and args.output.is_file():
        earlier = json.loads(args.output.read_text(encoding="utf-8"))
        same = {k: v for k, v in earlier["settings"].items() if k not in ("seeds", "device", "torch_threads")}
        if same != {k: v for k, v in results["settings"].items() if k in same}:
            raise SystemExit(f"--resume: {args.output} was written with other settings: {earlier['settings']}")
        results["runs"] = [run for run in earlier["runs"] if run["seed"] in args.seeds]
    for seed in [s for s in args.seeds if s not in {run["seed"] for run in results["runs"]}]:
        args.seed_now = seed
        results["runs"].append(one_seed(cases, names, labels, rule, args, device))
        results["summary"] = summary(results["runs"])
        args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        run = results["runs"][-1]
        logging.info("seed %d (%.0f s): %s", seed, run["seconds"],
                     json.dumps({k: run[k] for k in ("raw", "platt", "isotonic", "rule_platt")}))
    results["summary"] = summary(results["runs"])
    args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({"rule_auc": results["rule_auc"], **results["summary"]}, indent=1))


if __name__ == "__main__":
    main()
