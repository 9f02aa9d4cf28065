"""Issue 18's GPU bar, prepared so that a session lent a GPU runs it in one call.

The bar: the ~29k-node case trained to the fast preset's accuracy in under 10 s on an H100/H200
class GPU, the CPU path not depending on it. A session is lent such a machine only by chance, for
15 minutes in all, and the machine has PyTorch, NumPy, SciPy and scikit-learn but neither VTK nor
SimpleITK (their wheels are larger than what may travel with the working tree). So the work is
split where the data need no VTK any more:

1. **here** (any machine with the repository's ``.venv``): ``make-inputs`` builds the cases with
   the library (segmented-family phantoms at about 29k nodes, a fraction map and a label map, and
   the demo phantom as ``cardioscar demo`` makes it), prepares each exactly as ``bench_robust.py``
   does, and writes one ``<case>.npz``: the training rows (normalised coordinates, targets,
   groups), the scaler, the mesh nodes with their truth and volumes, the shape prior's log-odds
   at the rows and nodes where the fast preset's ``auto`` trains with it (the label map; the
   prior is built from VTK-read slices, so here), and, with
   ``--cpu-reference``, this machine's fast-preset fit of the same rows (seconds, Dice) to compare
   against;
2. **there**: ``run`` trains each case with ``TrainingConfig.fast()`` on the GPU (twice: the first
   run pays for CUDA's start, the second is the figure), predicts with 10 MC-dropout samples and
   prints one JSON line per run: seconds, epochs, Dice at 0.5, best Dice, AUC, volume error, and
   the CPU reference beside them. It imports only ``cardioscar.fit`` and ``cardioscar.predict``
   (the line's ``imported_vtk`` says so).

The call, from the repository root, with the inputs made here in an ignored folder that travels::

    # here
    PYTHONPATH=CardioScarLib OMP_NUM_THREADS=2 .venv/bin/python Testing/benchmarks/device_check.py \\
        make-inputs --output Testing/benchmarks/device_inputs --cpu-reference
    # device tool: run(command=..., carry=["Testing/benchmarks/device_inputs"], timeout_s=420)
    PYTHONPATH=CardioScarLib PYTHONUNBUFFERED=1 python3 Testing/benchmarks/device_check.py run \\
        --inputs Testing/benchmarks/device_inputs --output $OUT/device_check.jsonl

(``Testing/benchmarks/device_inputs/`` is in ``.gitignore``; the three cases take 3.6 MB.)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from cardioscar.fit.normalization import normalize
from cardioscar.fit.training import TrainingConfig, fit_scar_field
from cardioscar.predict.inference import mc_dropout_predict

logger = logging.getLogger("device_check")

#: The cases ``make-inputs`` writes: (name, family, seed, variant, mesh type, nodes).
CASES = (("segmented_s0_fraction_tet_29k", "segmented", 0, "fraction", "tet", 29000),
         ("segmented_s1_labels_tet_29k", "segmented", 1, "labels", "tet", 29000),
         ("demo_s0_40k", "demo", 0, None, None, 40000))


def scores(probability: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> dict:
    """Dice at 0.5, the best Dice over thresholds 0.01-0.99, AUC and the volume error at 0.5: the
    figures ``bench_robust.py`` prints, computed here without ``cardioscar.evaluate`` (it imports VTK)."""
    scar = truth >= 0.5

    def dice(threshold: float) -> float:
        called = probability >= threshold
        total = called.sum() + scar.sum()
        return float(2 * (called & scar).sum() / total) if total else 1.0

    thresholds = np.round(np.arange(0.01, 1.0, 0.01), 2)
    dices = [dice(t) for t in thresholds]
    best = int(np.argmax(dices))
    true_volume = float(weights[scar].sum())
    called_volume = float(weights[probability >= 0.5].sum())
    return {"dice": round(dice(0.5), 4), "best_dice": round(dices[best], 4), "best_threshold": float(thresholds[best]),
            "auc": round(float(roc_auc_score(scar, probability)), 4) if 0 < scar.sum() < len(scar) else None,
            "volume_error": round(called_volume / true_volume - 1.0, 4) if true_volume > 0 else None}


def fit_and_score(case: dict, device: torch.device, config: TrainingConfig, mc_samples: int = 10) -> dict:
    """Train the case's rows with ``config`` on ``device``, predict every node, score against the truth;
    with the shape prior's terms in ``case`` (:func:`prior_terms`), as ``cardioscar train``/``apply`` use them."""
    extent = case["scaler_max"] - case["scaler_min"]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    net, history = fit_scar_field(case["coordinates"], case["intensities"], case["group_ids"], config, device=device,
                                  extent_mm=extent, prior_logit=case.get("row_prior_logit"))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    trained = time.perf_counter()
    nodes = normalize(case["points"], case["scaler_min"], case["scaler_max"]).astype(np.float32)
    torch.manual_seed(config.seed)
    mean, _ = mc_dropout_predict(net, nodes, mc_samples=mc_samples, device=device,
                                 prior_logit=case.get("node_prior_logit"), residual_weight=case.get("node_residual_weight"))
    return {"train_s": round(trained - start, 2), "predict_s": round(time.perf_counter() - trained, 2),
            "epochs": int(history["epochs_run"]), "best_loss": round(float(history["best_loss"]), 6),
            **scores(mean, case["truth"], case["weights"])}


def make_inputs(output: Path, cpu_reference: bool, nodes: int | None = None, epochs: int | None = None) -> list[Path]:
    """Build, prepare and write every case of :data:`CASES` (``nodes``/``epochs``: smaller, for the test)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_robust as br          # VTK and SimpleITK: only on this side

    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, family, seed, variant, mesh_type, size in CASES:
        size = nodes or size
        case = (br.segmented_case(seed, variant=variant, mesh_type=mesh_type, nodes=size) if family == "segmented"
                else br.demo_case(seed, nodes=size))
        prepared = br.prepared_case(case, case.slices)
        arrays = {"coordinates": prepared.coordinates, "intensities": prepared.intensities,
                  "group_ids": prepared.group_ids, "scaler_min": prepared.scaler_min,
                  "scaler_max": prepared.scaler_max, "points": case.points, "truth": case.truth,
                  "weights": case.weights}
        terms = prior_terms(prepared, case.points)
        arrays.update(terms)
        meta = {"case": case.name, "nodes": len(case.points), "rows": len(prepared.coordinates),
                "groups": prepared.n_groups, "shape_prior_used": bool(terms)}
        if cpu_reference:
            meta["cpu_reference"] = fit_and_score(arrays, torch.device("cpu"), _config(epochs)) | {
                "threads": torch.get_num_threads()}
        path = output / f"{name}.npz"
        np.savez_compressed(path, meta=json.dumps(meta), **arrays)
        logger.info("%s: %d nodes, %d rows -> %s", name, meta["nodes"], meta["rows"], path)
        written.append(path)
    return written


def prior_terms(prepared, points: np.ndarray) -> dict[str, np.ndarray]:
    """The shape prior's arrays the fast preset's ``auto`` trains and predicts with (none when it
    chooses the network alone): the log-odds at the training rows and, at the nodes, the log-odds
    and the residual's weight, as ``cardioscar.logic`` computes them."""
    from cardioscar.shape_prior.use import fit_to_rows, node_prior, training_prior

    prior = training_prior(prepared.shape_prior, TrainingConfig.fast().shape_prior, prepared.intensities,
                           prepared.scar_rule)
    if prior is None:
        return {}
    prior, row_logit = fit_to_rows(prior, prepared.coordinates, prepared.scaler_min, prepared.scaler_max)
    at_nodes = node_prior(prior, points)
    terms = {"node_prior_logit": at_nodes["prior_logit"], "node_residual_weight": at_nodes["residual_weight"]}
    return terms if row_logit is None else {**terms, "row_prior_logit": row_logit}


def _config(epochs: int | None) -> TrainingConfig:
    config = TrainingConfig.fast(seed=0)
    return config if epochs is None else TrainingConfig.fast(seed=0, max_epochs=epochs, early_stopping_patience=epochs)


def run(inputs: Path, output: Path | None, device_name: str, repeats: int, epochs: int | None = None) -> list[dict]:
    """Train and score every ``*.npz`` in ``inputs`` ``repeats`` times on the device; one JSON line per run."""
    device = torch.device(device_name)
    paths = sorted(inputs.glob("*.npz"))
    if not paths:
        raise SystemExit(f"no *.npz in {inputs}: run `device_check.py make-inputs --output {inputs}` first")
    header = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "imported_vtk": "vtk" in sys.modules,
              "imported_simpleitk": "SimpleITK" in sys.modules}
    lines = []
    for path in paths:
        with np.load(path) as data:
            case = {k: data[k] for k in data.files if k != "meta"}
            meta = json.loads(str(data["meta"]))
        for attempt in range(repeats):
            line = {**header, **meta, "run": attempt + 1, **fit_and_score(case, device, _config(epochs))}
            print(json.dumps(line), flush=True)
            lines.append(line)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    make = verbs.add_parser("make-inputs", help="build and prepare the cases here (needs VTK and SimpleITK)")
    make.add_argument("--output", type=Path, required=True)
    make.add_argument("--cpu-reference", action="store_true", help="also fit each case here and record it")
    make.add_argument("--nodes", type=int, help="override every case's node count (tests)")
    make.add_argument("--epochs", type=int, help="override the fast preset's epochs (tests)")
    go = verbs.add_parser("run", help="fit and score the prepared cases on the device (torch only)")
    go.add_argument("--inputs", type=Path, required=True)
    go.add_argument("--output", type=Path)
    go.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    go.add_argument("--repeats", type=int, default=2, help="runs per case; the first pays CUDA's start (default 2)")
    go.add_argument("--epochs", type=int, help="override the fast preset's epochs (tests)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.verb == "make-inputs":
        make_inputs(args.output, args.cpu_reference, args.nodes, args.epochs)
    else:
        run(args.inputs, args.output, args.device, args.repeats, args.epochs)


if __name__ == "__main__":
    main()
