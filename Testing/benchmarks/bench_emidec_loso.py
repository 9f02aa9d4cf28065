"""EMIDEC leave-one-slice-out: the real-data yardstick of the reconstruction.

For every infarct case (``Case_P*``) of the EMIDEC set (real LGE short-axis stacks with expert
labels: 0 background, 1 LV cavity, 2 normal myocardium, 3 infarct, 4 no-reflow):

1. hold out the middle myocardial slice (:func:`cardioscar.evaluate.heldout.middle_slice`: the middle of
   the slices that hold myocardium, the lower middle for an even count; chosen without looking
   at the scar, so some held-out slices have none);
2. build a hexahedral myocardium mesh (1.5 mm voxels) from the labels 2, 3, 4 of the other
   slices, shape-interpolated between them (:mod:`cardioscar.prepare.mesh_from_labels`), in the image's
   LPS frame;
3. reconstruct from the other myocardial slices: targets 1 for labels 3, 4, 0 for label 2, NaN
   (no constraint) elsewhere; slabs of half the slice spacing (touching); the library's
   ``prepare_from_slices`` / ``train_scar_model`` / ``predict_on_points`` (10 MC samples);
4. score the nodes within a quarter of the slice spacing of the held-out plane that lie in its
   myocardium pixels against its labels (scar = 3, 4), beside two yardsticks from the same slices:
   nearest slice and LogOdds shape interpolation (:mod:`cardioscar.evaluate.baselines`), given each slice's
   scar map with every non-myocardium pixel set to its nearest myocardium pixel's value.

One JSON line per case, then a summary line (means over the cases whose held-out slice has scar;
AUC over those with both classes; how many cases each method wins in Dice at 0.5). Each case also
scores how well ``scar_uncertainty``, the margin -|p - 0.5| and ``scar_error_risk`` find the
held-out nodes wrong at 0.5, and the mean uncertainty and risk on the training slices' nodes vs
the held-out slice's.

Hook for training-method work: ``prepare_case`` once, then ``reconstruct`` / ``score_case`` with
any ``TrainingConfig`` or any ``train(training: PreprocessingResult, config) -> checkpoint``
callable; ``run_cases`` does all of it for a list of cases (optionally in parallel, resumable).

Usage: PYTHONPATH=CardioScarLib python Testing/benchmarks/bench_emidec_loso.py
       [--data ../shared/data/emidec] [--cases P001,P003] [--limit N] [--preset fast|documented]
       [--config-json FILE_OR_JSON] [--seed 0] [--jobs 1|2] [--output FILE.jsonl]
       [--mesh-spacing 1.5] [--mc-samples 10] [--residual-decays 1,2,4,inf]
       [--dump-dir DIR]   (per-node arrays of each case, read by error_risk_study.py)
       [--prior-json '{"residual_bound": 3}']   (ShapePrior fields set before training: an experiment)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import SimpleITK as sitk

from cardioscar.evaluate import heldout, metrics
from cardioscar.io.atomic import atomic_write
from cardioscar.evaluate.baselines import logodds_baseline, nearest_slice_baseline
from cardioscar.errors import CardioScarError
from cardioscar.logic import PreprocessingResult, predict_on_points, prepare_from_slices, train_scar_model
from cardioscar.shape_prior.use import with_residual_decay
from cardioscar.prepare.mapping import SLICE_PROFILES
from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, labelled_slices, myocardium_mesh_from_labels
from cardioscar.prepare.slices import SliceLayer, slices_from_image
from cardioscar.fit.batching import group_means
from cardioscar.fit.training import TrainingConfig

SCAR_LABELS = (3, 4)
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "emidec"
YARDSTICKS = ("nearest_slice", "logodds")
Trainer = Callable[[PreprocessingResult, TrainingConfig], dict]

logger = logging.getLogger("bench_emidec_loso")


@dataclasses.dataclass
class PreparedCase:
    """Everything about one case that does not depend on the training method."""

    case: str
    held_out_k: int
    slice_spacing_mm: float
    score_half_width_mm: float
    points: np.ndarray              # (N, 3) LPS mesh nodes
    training: PreprocessingResult   # rows of the remaining slices
    nodes: np.ndarray               # scored node indices (held-out slice, its myocardium pixels)
    truth: np.ndarray               # 0/1 expert scar of each scored node
    yardsticks: dict                # name -> probability on the scored nodes
    yardstick_fit_loss: float       # group loss of the LogOdds field on the training rows
    seconds: float


def case_dirs(data: Path, names: Iterable[str] | None = None, limit: int | None = None) -> list[Path]:
    """The infarct cases (``Case_P*``) under ``data``, or the ones named (``P001`` or ``Case_P001``)."""
    if names:
        found = [data / (n if n.startswith("Case_") else f"Case_{n}") for n in names]
        missing = [p.name for p in found if not p.is_dir()]
        if missing:
            raise CardioScarError(f"--cases: no such case folder under {data}: {', '.join(missing)}")
    else:
        found = sorted(p for p in data.glob("Case_P*") if p.is_dir())
        if not found:
            raise CardioScarError(f"--data {data}: no Case_P* folders (the EMIDEC set); check the path")
    return found[:limit] if limit else found


def read_labels(case_dir: Path) -> sitk.Image:
    """The case's expert label map (LPS geometry from the file's qform, see the data README)."""
    path = case_dir / "Contours" / f"{case_dir.name}.nii.gz"
    if not path.is_file():
        raise CardioScarError(f"{case_dir}: no label map {path.name} under Contours/")
    return sitk.ReadImage(str(path))


def myocardium_targets(layer: SliceLayer) -> SliceLayer:
    """Label slice -> 1 scar (3, 4), 0 other myocardium (2), NaN (no constraint) elsewhere."""
    values = np.where(np.isin(layer.values, SCAR_LABELS), 1.0, 0.0)
    values[~np.isin(layer.values, MYOCARDIUM_LABELS)] = np.nan
    return dataclasses.replace(layer, values=values)


def yardstick_slices(layers: list[SliceLayer]) -> list[SliceLayer]:
    """Scar maps (0/1) whose non-myocardium pixels copy the nearest myocardium pixel."""
    return [heldout.filled_outside(dataclasses.replace(layer, values=np.isin(layer.values, SCAR_LABELS).astype(float)),
                                   np.isin(layer.values, MYOCARDIUM_LABELS)) for layer in layers]


def group_loss(node_values: np.ndarray, training: PreprocessingResult) -> float:
    """The documented group loss of a deterministic field: mean over groups of (group mean - target)^2
    (means weighted by the rows' slice-profile weights, as training forms them)."""
    means = group_means(node_values[training.node_ids], training.group_ids, training.row_weights)[0]
    return float(np.mean((means - training.group_targets) ** 2))


def prepare_case(case_dir: Path, mesh_spacing_mm: float = 1.5, slice_profile: str = "box") -> PreparedCase:
    """Hold out the middle myocardial slice, mesh the others, map them (with the pixel model
    ``slice_profile``, ``prepare --slice-profile``), score the yardsticks."""
    start = time.perf_counter()
    image = read_labels(case_dir)
    labelled = labelled_slices(sitk.GetArrayViewFromImage(image), MYOCARDIUM_LABELS)
    k = heldout.middle_slice(labelled)
    used = [s for s in labelled if s != k]
    spacing = float(image.GetSpacing()[2])
    mesh = myocardium_mesh_from_labels(image, MYOCARDIUM_LABELS, held_out_k=k, spacing_mm=mesh_spacing_mm)
    points = mesh.points_lps()
    half = 0.5 * spacing
    label_slices = slices_from_image(image, "z", used, half, label=case_dir.name)
    training = prepare_from_slices(points, [myocardium_targets(layer) for layer in label_slices],
                                   slice_profile=slice_profile)
    held = slices_from_image(image, "z", [k], half, label=f"{case_dir.name} k={k}")[0]
    score_half = 0.25 * spacing
    nodes, truth = heldout.scored_nodes(points, held, score_half, MYOCARDIUM_LABELS, SCAR_LABELS)
    if nodes.size == 0:
        raise CardioScarError(f"{case_dir.name}: no mesh node lies in the held-out slice's myocardium")
    filled = yardstick_slices(label_slices)
    logodds_all = logodds_baseline(points, filled)
    return PreparedCase(
        case=case_dir.name, held_out_k=k, slice_spacing_mm=spacing, score_half_width_mm=score_half,
        points=points, training=training, nodes=nodes, truth=truth,
        yardsticks={"nearest_slice": nearest_slice_baseline(points[nodes], filled), "logodds": logodds_all[nodes]},
        yardstick_fit_loss=group_loss(logodds_all, training), seconds=time.perf_counter() - start)


def reconstruct(prepared: PreparedCase, config: TrainingConfig, train: Trainer | None = None,
                mc_samples: int = 10, seed: int = 0) -> dict:
    """Train on the prepared rows and predict every node: probability, uncertainty, checkpoint, seconds."""
    start = time.perf_counter()
    checkpoint = (train or train_scar_model)(prepared.training, config)
    trained = time.perf_counter()
    result = predict_on_points(checkpoint, prepared.points, mc_samples=mc_samples, seed=seed)
    return {"probability": result.mean_predictions, "uncertainty": result.std_predictions,
            "error_risk": result.error_risk, "checkpoint": checkpoint, "train_seconds": trained - start,
            "predict_seconds": time.perf_counter() - trained}


def score_case(prepared: PreparedCase, probability: np.ndarray, uncertainty: np.ndarray,
               error_risk: np.ndarray | None = None) -> dict:
    """The JSON record of one case (see the module docstring); probability/uncertainty (and
    ``scar_error_risk``) on every node."""
    truth = prepared.truth
    scores = heldout.held_out_scores(probability[prepared.nodes], truth, uncertainty[prepared.nodes])
    on_slices = metrics.on_slice_mask(prepared.training.node_ids, len(prepared.points))
    targets_variance = float(np.var(prepared.training.group_targets))
    fit_loss = group_loss(probability, prepared.training)
    record = {
        "case": prepared.case, "held_out_k": prepared.held_out_k,
        "slice_spacing_mm": prepared.slice_spacing_mm, "score_half_width_mm": prepared.score_half_width_mm,
        "nodes": int(len(prepared.points)), "training_rows": int(prepared.training.n_nodes),
        "training_groups": int(prepared.training.n_groups), "held_out_nodes": int(truth.size),
        "slice_profile": prepared.training.slice_profile,
        "held_out_scar_nodes": int(truth.sum()), "held_out_has_scar": bool(truth.any()),
        "scar_share": float(truth.mean()), **scores,
        "uncertainty_on_slices": float(uncertainty[on_slices].mean()),
        "uncertainty_held_out": float(uncertainty[prepared.nodes].mean()),
        **({} if error_risk is None else {
            "risk_wrong_auc": heldout.wrong_node_auc(error_risk[prepared.nodes], probability[prepared.nodes],
                                                     truth),
            "risk_on_slices": float(error_risk[on_slices].mean()),
            "risk_held_out": float(error_risk[prepared.nodes].mean())}),
        "fit_loss": fit_loss, "targets_variance": targets_variance,
        "explained": None if targets_variance == 0 else 1.0 - fit_loss / targets_variance,
        "truth_loss": None, "logodds_fit_loss": prepared.yardstick_fit_loss,
    }
    for name in YARDSTICKS:
        values = prepared.yardsticks[name]
        area = metrics.auc(values, truth)
        record[name] = {"dice": metrics.dice(values, truth, 0.5), "auc": None if math.isnan(area) else area}
    prior = prepared.training.shape_prior  # the network's shape prior alone (cardioscar.shape_prior)
    if prior is not None:
        alone = 1.0 / (1.0 + np.exp(-prior.logit(prepared.points[prepared.nodes])))
        area = metrics.auc(alone, truth)
        record["shape_prior_alone"] = {"dice": metrics.dice(alone, truth, 0.5), "auc": None if math.isnan(area) else area}
    return record


def decay_sweep(prepared: PreparedCase, checkpoint: dict, decays: Sequence[float], mc_samples: int,
                seed: int) -> dict:
    """The held-out scores of one trained model applied with each residual decay (mm) of its shape
    prior (:meth:`cardioscar.shape_prior.ShapePrior.residual_weight`; inf: the residual counts
    everywhere, as before version 2): the weight only acts at apply time, so one training serves all."""
    sweep = {}
    for decay in decays:
        result = predict_on_points(with_residual_decay(checkpoint, decay), prepared.points, mc_samples=mc_samples,
                                   seed=seed)
        scores = heldout.held_out_scores(result.mean_predictions[prepared.nodes], prepared.truth,
                                         result.std_predictions[prepared.nodes])
        sweep[str(decay)] = {key: scores[key] for key in ("dice", "best_dice", "best_threshold", "auc", "volume_error")}
    return sweep


#: ``--dump-dir`` travels to the worker processes in this environment variable.
DUMP_DIR_VARIABLE = "CARDIOSCAR_BENCH_DUMP_DIR"


def dump_nodes(prepared: PreparedCase, outcome: dict, folder: Path) -> None:
    """Write ``<case>_loso.npz`` in ``folder``: every node's position, probability and MC-dropout std,
    whether a group constrains it, and the held-out nodes with their expert truth, to study risk
    fields offline."""
    constrained = np.zeros(len(prepared.points), bool)
    constrained[np.unique(prepared.training.node_ids)] = True
    np.savez_compressed(folder / f"{prepared.case}_loso.npz", points=prepared.points, p=outcome["probability"],
                        std=outcome["uncertainty"], constrained=constrained, held_out=prepared.nodes,
                        held_out_truth=prepared.truth)


def run_case(case_dir: Path, config: TrainingConfig, train: Trainer | None = None, mc_samples: int = 10,
             seed: int = 0, mesh_spacing_mm: float = 1.5, residual_decays: Sequence[float] = (),
             slice_profile: str = "box") -> dict:
    """Prepare, reconstruct and score one case; the record adds the seconds of each step."""
    prepared = prepare_case(Path(case_dir), mesh_spacing_mm, slice_profile)
    outcome = reconstruct(prepared, config, train, mc_samples, seed)
    record = score_case(prepared, outcome["probability"], outcome["uncertainty"], outcome["error_risk"])
    if os.environ.get(DUMP_DIR_VARIABLE):
        dump_nodes(prepared, outcome, Path(os.environ[DUMP_DIR_VARIABLE]))
    if residual_decays and outcome["checkpoint"].get("shape_prior"):
        record["residual_decay_sweep"] = decay_sweep(prepared, outcome["checkpoint"], residual_decays, mc_samples, seed)
    history = outcome["checkpoint"].get("history", {})
    record.update(best_training_loss=history.get("best_loss"), epochs=history.get("epochs_run"),
                  retried_max_lr=history.get("retried_max_lr"), stop_reason=history.get("stop_reason"),
                  extensions=history.get("extensions"), convergence_fall=history.get("convergence_fall"),
                  # every training run (peak rate, epochs, final group loss, seed; more than one when a run
                  # was retried) and the kept run's late rise, as bench_robust.py records them
                  attempts=[[a["max_lr"], a["epochs_run"], round(a["final_loss"], 5), a.get("seed")]
                            for a in history.get("attempts", [])],
                  late_rise=None if history.get("late_rise") is None else round(float(history["late_rise"]), 5),
                  seconds={"prepare": round(prepared.seconds, 2), "train": round(outcome["train_seconds"], 2),
                           "predict": round(outcome["predict_seconds"], 2)})
    return record


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _method_means(scored: list[dict]) -> tuple[dict, dict, dict]:
    """Per method: Dice at 0.5 of each case, mean Dice, mean AUC (over cases with both classes)."""
    methods = ("network",) + YARDSTICKS
    dice = {m: [r["dice"] if m == "network" else r[m]["dice"] for r in scored] for m in methods}
    auc = {m: _mean([r["auc"] if m == "network" else r[m]["auc"] for r in scored]) for m in methods}
    return dice, {m: _mean(dice[m]) for m in methods}, auc


def summarize(records: list[dict]) -> dict:
    """Means over the cases whose held-out slice has scar, and wins in Dice at 0.5 per method
    (a tie counts for each method in it); the same means per slice spacing (whole mm)."""
    scored = [r for r in records if r["held_out_has_scar"]]
    dice, mean_dice, mean_auc = _method_means(scored)
    wins = {m: int(sum(dice[m][c] >= max(dice[o][c] for o in dice) for c in range(len(scored)))) for m in dice}
    by_spacing = {}
    for spacing in sorted({round(r["slice_spacing_mm"]) for r in scored}):  # whole mm (one file says 13.04)
        group = [r for r in scored if round(r["slice_spacing_mm"]) == spacing]
        _, group_dice, group_auc = _method_means(group)
        by_spacing[str(spacing)] = {"cases": len(group), "mean_dice": group_dice, "mean_auc": group_auc}
    return {
        "summary": True, "cases": len(records), "cases_with_scar": len(scored),
        "mean_dice": mean_dice, "mean_auc": mean_auc, "wins_dice": wins,
        "network_beats": {y: int(sum(a > b for a, b in zip(dice["network"], dice[y]))) for y in YARDSTICKS},
        "by_slice_spacing_mm": by_spacing,
        "mean_best_dice": _mean([r["best_dice"] for r in scored]),
        "mean_best_threshold": _mean([r["best_threshold"] for r in scored]),
        "mean_volume_error": _mean([r["volume_error"] for r in scored]),
        "mean_abs_volume_error": _mean([abs(r["volume_error"]) for r in scored]),
        "mean_uncertainty_wrong_auc": _mean([r["uncertainty_wrong_auc"] for r in scored]),
        "mean_margin_wrong_auc": _mean([r["margin_wrong_auc"] for r in scored]),
        "uncertainty_higher_held_out": int(sum(r["uncertainty_held_out"] > r["uncertainty_on_slices"] for r in records)),
        "mean_risk_wrong_auc": _mean([r.get("risk_wrong_auc") for r in scored]),
        "risk_above_margin": int(sum(r.get("risk_wrong_auc") is not None and r["margin_wrong_auc"] is not None
                                     and r["risk_wrong_auc"] > r["margin_wrong_auc"] for r in scored)),
        "risk_higher_held_out": int(sum("risk_held_out" in r and r["risk_held_out"] > r["risk_on_slices"]
                                        for r in records)),
        "mean_explained": _mean([r["explained"] for r in records]),
        "mean_train_seconds": _mean([r["seconds"]["train"] for r in records]),
        "mean_shape_prior_alone": {key: _mean([r.get("shape_prior_alone", {}).get(key) for r in scored])
                                   for key in ("dice", "auc")},
    }


def _read_records(output: Path | None) -> list[dict]:
    """Case records already in a previous run's output (its summary line is dropped)."""
    if output is None or not output.is_file():
        return []
    records = []
    for line in output.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "case" in record:
            records.append(record)
    return records


def _write_records(output: Path, lines: list[dict]) -> None:
    with atomic_write(output) as tmp:
        Path(tmp).write_text("".join(json.dumps(line) + "\n" for line in lines))


def train_with_prior(training: PreprocessingResult, config: TrainingConfig, overrides: dict) -> dict:
    """An experiment's trainer (``--prior-json``): the library's ``train_scar_model`` on the prepared
    rows with ``overrides`` (ShapePrior fields, e.g. ``{"residual_bound": 3}``) set on their prior.
    Module level, so ``functools.partial`` of it pickles for ``--jobs 2``."""
    if training.shape_prior is not None:
        training = dataclasses.replace(training, shape_prior=dataclasses.replace(training.shape_prior, **overrides))
    return train_scar_model(training, config)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    sitk.ProcessObject_SetGlobalWarningDisplay(False)


def run_cases(cases: list[Path], config: TrainingConfig, train: Trainer | None = None, jobs: int = 1,
              output: Path | None = None, mc_samples: int = 10, seed: int = 0,
              mesh_spacing_mm: float = 1.5, echo: Callable[[dict], None] | None = None,
              residual_decays: Sequence[float] = (), slice_profile: str = "box") -> list[dict]:
    """Run every case not already in ``output`` (JSON lines, rewritten atomically after each case).

    ``jobs`` > 1 runs cases in that many processes (one torch thread each); a custom ``train``
    callable must then be picklable (a module-level function). Returns all case records.
    """
    records = _read_records(output)
    done = {r["case"] for r in records}
    todo = [c for c in cases if c.name not in done]
    if done:
        logger.info("resuming: %d case(s) already in %s, %d to run", len(done & {c.name for c in cases}), output, len(todo))

    def keep(record: dict) -> None:
        records.append(record)
        if echo:
            echo(record)
        if output is not None:
            _write_records(output, records)

    args = (config, train, mc_samples, seed, mesh_spacing_mm, tuple(residual_decays), slice_profile)
    if jobs <= 1:
        for case in todo:
            keep(run_case(case, *args))
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_init) as pool:
            futures = [pool.submit(run_case, case, *args) for case in todo]
            for future in futures:
                keep(future.result())
    wanted = {c.name for c in cases}
    return [r for r in records if r["case"] in wanted]


def config_from_options(preset: str, config_json: str | None, seed: int) -> TrainingConfig:
    """The preset's TrainingConfig with the seed and any fields from ``config_json`` (a file or inline JSON)."""
    overrides = {}
    if config_json:
        text = Path(config_json).read_text() if Path(config_json).is_file() else config_json
        try:
            overrides = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CardioScarError(f"--config-json: neither a JSON file nor valid JSON ({exc.msg})") from None
        if not isinstance(overrides, dict):
            raise CardioScarError("--config-json must hold an object of TrainingConfig fields, e.g. {\"max_epochs\": 900}")
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainingConfig)})
        if unknown:
            raise CardioScarError(f"--config-json: unknown TrainingConfig field(s) {', '.join(unknown)}")
    values = {"seed": seed, **overrides}
    return TrainingConfig.fast(**values) if preset == "fast" else TrainingConfig(**values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cases", help="comma-separated case names, e.g. P001,P003 (default: every Case_P*)")
    parser.add_argument("--limit", type=int, help="only the first N cases")
    parser.add_argument("--preset", choices=("fast", "documented"), default="fast")
    parser.add_argument("--config-json", help="TrainingConfig fields overriding the preset: a JSON file or inline JSON")
    parser.add_argument("--seed", type=int, default=0, help="training and MC-dropout seed")
    parser.add_argument("--jobs", type=int, choices=(1, 2), default=1, help="cases run in parallel (one thread each)")
    parser.add_argument("--output", type=Path, help="JSON lines file; cases already in it are skipped")
    parser.add_argument("--mesh-spacing", type=float, default=1.5, help="voxel edge of the myocardium mesh, mm")
    parser.add_argument("--mc-samples", type=int, default=10)
    parser.add_argument("--residual-decays", default="",
                        help="with the shape prior: also score the trained model applied with each of these "
                             "residual decays in mm (comma-separated, inf = residual everywhere)")
    parser.add_argument("--dump-dir", type=Path, help="write each case's per-node arrays there (dump_nodes)")
    parser.add_argument("--prior-json", help='experiment: ShapePrior fields overriding the prepared prior, inline JSON, '
                                             'e.g. \'{"residual_bound": 3}\' (train_with_prior)')
    parser.add_argument("--slice-profile", choices=SLICE_PROFILES, default="box",
                        help="the mapping's through-plane pixel model (prepare --slice-profile)")
    args = parser.parse_args()
    if args.dump_dir is not None:
        os.environ[DUMP_DIR_VARIABLE] = str(args.dump_dir)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    sitk.ProcessObject_SetGlobalWarningDisplay(False)  # the EMIDEC files' sform warning (the qform is right)
    if args.jobs > 1:
        os.environ["OMP_NUM_THREADS"] = "1"
    try:
        config = config_from_options(args.preset, args.config_json, args.seed)
        cases = case_dirs(args.data, args.cases.split(",") if args.cases else None, args.limit)
        overrides = json.loads(args.prior_json) if args.prior_json else {}
        train = functools.partial(train_with_prior, overrides=overrides) if overrides else None
        records = run_cases(cases, config, train=train, jobs=args.jobs, output=args.output, mc_samples=args.mc_samples,
                            seed=args.seed, mesh_spacing_mm=args.mesh_spacing,
                            echo=lambda r: print(json.dumps(r), flush=True),
                            residual_decays=[float(v) for v in args.residual_decays.split(",") if v],
                            slice_profile=args.slice_profile)
    except CardioScarError as exc:
        raise SystemExit(f"error: {exc}") from None
    summary = {**summarize(records), "preset": args.preset, "config": config.to_dict(), "prior_overrides": overrides,
               "slice_profile": args.slice_profile}
    print(json.dumps(summary), flush=True)
    if args.output is not None:
        _write_records(args.output, records + [summary])


if __name__ == "__main__":
    main()
