"""Attri-VAE on EMIDEC: cross-validated MI classification, interpretability and attention (issue 20).

Not part of the test suite. On the same stratified folds (scalers and models fitted on the
training folds only, a fixed number of epochs, no model selection) it scores
  attrivae       the VAE + MLP with each attribute tied to its latent dimension (gamma 200)
  vae_mlp        the same network and schedule without the attribute term (gamma 0)
  logistic       a logistic regression on the same attributes (median imputation, standardised)
  enhancement    no learning: the share of myocardial voxels (labels 2-4) brighter than the cavity's
                 median, a one-number stand-in for "is there visible enhancement" (AUC only)
with the held-out AUC and its bootstrap 95 % interval (cases resampled, 2000 times), the balanced
accuracy at 0.5, the Spearman of each tied latent dimension with its attribute over held-out
cases, and, for the held-out MI cases of the Attri-VAE folds, how the Grad-CAM energy of each
attribute's map (on the image grid) splits between infarct (labels 3, 4) and the rest of the
myocardium: enrichment = (energy in infarct / energy in myocardium) / (infarct voxels /
myocardial voxels), 1 meaning no preference for the infarct.

The clinical table's infarct and no-reflow volumes are never used: they are read off the scar labels.

Usage (from the repository root; about 15-30 min on one CPU thread at 32^3 and 60 epochs):
  OMP_NUM_THREADS=1 PYTHONPATH=CardioScarLib python Testing/benchmarks/bench_attrivae.py \
      --cube 32 --epochs 60 --output Testing/benchmarks/results/attrivae_emidec_cube32.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cardioscar.attrivae.dataset import attribute_matrix, case_files, load_cases
from cardioscar.attrivae.gradcam import latent_gradcam
from cardioscar.attrivae.model import Architecture
from cardioscar.attrivae.preprocess import LabelConvention, PreprocessConfig, cube_to_image, prepare_case
from cardioscar.attrivae.train import TrainConfig, cross_validate, heldout_figures, stratified_folds
from cardioscar.fit.devices import describe_device, resolve_device

REPO = Path(__file__).resolve().parents[2]
INFARCT = (3, 4)
MYOCARDIUM = (2, 3, 4)


def bootstrap_auc(labels: np.ndarray, scores: np.ndarray, rounds: int = 2000, seed: int = 0) -> list[float]:
    """Percentile 95 % interval of the AUC over case resamples (resamples with one class skipped)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        pick = rng.integers(0, len(labels), len(labels))
        if labels[pick].min() != labels[pick].max():
            values.append(roc_auc_score(labels[pick], scores[pick]))
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def logistic_cv(raw: np.ndarray, labels: np.ndarray, folds: list) -> np.ndarray:
    probability = np.zeros(len(labels))
    for train, test in folds:
        model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                              LogisticRegression(class_weight="balanced", max_iter=2000))
        model.fit(raw[train], labels[train])
        probability[test] = model.predict_proba(raw[test])[:, 1]
    return probability


def enhancement_scores(data: Path, cases: list) -> np.ndarray:
    """Per case, the share of myocardial voxels brighter than the median of the LV cavity."""
    import SimpleITK as sitk

    from cardioscar.attrivae.preprocess import read_case

    scores = []
    for case in cases:
        image, labels = read_case(*case_files(data / case.case_id))
        values = sitk.GetArrayFromImage(image)
        cavity = np.median(values[labels == 1])
        scores.append(float((values[np.isin(labels, MYOCARDIUM)] > cavity).mean()))
    return np.array(scores)


class AttentionRecorder:
    """Grad-CAM energy split (infarct vs myocardium) of each attribute on held-out MI cases."""

    def __init__(self, data: Path, cases: list, names: list[str], preprocess: PreprocessConfig, device):
        self.data, self.cases, self.names, self.preprocess, self.device = data, cases, names, preprocess, device
        self.rows: list[dict] = []

    def __call__(self, fitted, test: np.ndarray) -> None:
        for index in test:
            case = self.cases[index]
            if not case.mi:
                continue
            prepared = prepare_case(*case_files(self.data / case.case_id), LabelConvention(), self.preprocess)
            infarct = np.isin(prepared.labels, INFARCT)
            myocardium = np.isin(prepared.labels, MYOCARDIUM)
            volume = torch.as_tensor(prepared.cube[None, None], device=self.device)
            row = {"case": case.case_id, "infarct_fraction_of_myocardium": float(infarct.sum() / myocardium.sum())}
            for dim, name in enumerate(self.names):
                attention = cube_to_image(latent_gradcam(fitted.model, volume, dim), prepared.box)
                total = float(attention.sum())
                in_myocardium = float(attention[myocardium].sum())
                row[name] = {"share_infarct": float(attention[infarct].sum()) / total if total else None,
                             "share_myocardium": in_myocardium / total if total else None,
                             "enrichment": (float(attention[infarct].sum()) / in_myocardium)
                             / row["infarct_fraction_of_myocardium"] if in_myocardium else None}
            self.rows.append(row)

    def summary(self) -> dict:
        out = {}
        for name in self.names:
            values = {key: [r[name][key] for r in self.rows if r[name][key] is not None]
                      for key in ("share_infarct", "share_myocardium", "enrichment")}
            out[name] = {key: float(np.median(v)) if v else None for key, v in values.items()}
        out["infarct_fraction_of_myocardium_median"] = float(np.median(
            [r["infarct_fraction_of_myocardium"] for r in self.rows]))
        out["n_cases"] = len(self.rows)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "emidec")
    parser.add_argument("--cube", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--attributes", type=lambda text: text.split(","), default=None,
                        help="tie only these attributes (comma-separated; e.g. the shape ones, for an ablation)")
    parser.add_argument("--per-class", type=int, default=None, help="smoke run: only the first N cases of each class")
    parser.add_argument("--output", type=Path, required=True, help="results JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("cardioscar.io.imageio").setLevel(logging.WARNING)
    device = resolve_device()
    started = time.perf_counter()
    limit = None
    if args.per_class:
        names_on_disk = sorted(p.name for p in args.data.iterdir() if p.name.startswith("Case_"))
        limit = ([n for n in names_on_disk if "_P" in n][:args.per_class]
                 + [n for n in names_on_disk if "_N" in n][:args.per_class])
    preprocess = PreprocessConfig(cube=args.cube)
    cases, names = load_cases(args.data, args.data / "clinical.csv", LabelConvention(), preprocess, limit)
    if args.attributes:
        names = [name for name in names if name in args.attributes]
    labels = np.array([c.mi for c in cases])
    raw = attribute_matrix(cases, names)
    folds = stratified_folds(labels, args.folds, args.seed)
    architecture = Architecture.for_cube(args.cube)
    config = TrainConfig(epochs=args.epochs, seed=args.seed)
    results: dict = {"settings": {"cube": args.cube, "epochs": args.epochs, "folds": args.folds, "seed": args.seed,
                                  "architecture": architecture.to_dict(), "train": {
                                      "batch_size": config.batch_size, "learning_rate": config.learning_rate,
                                      "weights": vars(config.weights)},
                                  "device": describe_device(device), "torch_threads": torch.get_num_threads(),
                                  "attributes": names, "n_cases": len(cases), "n_mi": int(labels.sum())},
                     "methods": {}}
    recorder = AttentionRecorder(args.data, cases, names, preprocess, device)
    for method, weights in (("attrivae", config.weights), ("vae_mlp", replace(config.weights, gamma=0.0))):
        tick = time.perf_counter()
        cv = cross_validate(cases, names, architecture, replace(config, weights=weights), args.folds, device,
                            after_fold=recorder if method == "attrivae" else None)
        probability = np.array(cv["probability"])
        results["methods"][method] = {**cv["figures"], "auc_95ci": bootstrap_auc(labels, probability),
                                      "seconds": time.perf_counter() - tick, "heldout": {
                                          "case": cv["case_ids"], "probability": cv["probability"],
                                          "fold": cv["fold"]}}
        logging.info("%s: %s", method, json.dumps({k: results["methods"][method][k] for k in
                                                   ("auc", "auc_95ci", "balanced_accuracy", "spearman")}))
    probability = logistic_cv(raw, labels, folds)
    logistic = heldout_figures(labels, probability, np.full_like(raw, np.nan), raw, [])
    results["methods"]["logistic"] = {**logistic, "auc_95ci": bootstrap_auc(labels, probability),
                                      "heldout": {"probability": probability.tolist()}}
    scores = enhancement_scores(args.data, cases)
    results["methods"]["enhancement"] = {"auc": float(roc_auc_score(labels, scores)),
                                         "auc_95ci": bootstrap_auc(labels, scores), "heldout": {"score": scores.tolist()}}
    results["attention"] = {"summary": recorder.summary(), "cases": recorder.rows}
    results["seconds"] = time.perf_counter() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({m: {k: v for k, v in r.items() if k != "heldout"} for m, r in results["methods"].items()},
                     indent=1))
    print(json.dumps(results["attention"]["summary"], indent=1))


if __name__ == "__main__":
    main()
