"""Quality and training time of ``TrainingConfig.fast()`` on a phantom, against the documented mode.

Builds the phantom (``--case demo``: the default ``PhantomConfig()``, every slice; ``--case
headline``: the existing tool's headline size, ~29k training rows from the middle short-axis
slice of a ~330k-node mesh, as in ``bench_cases.py``), acquired in ``--partial-volume`` mode, prepares
the rows as the demo does ("volume" pixels with the partial-volume correction), trains the fast preset through ``train_scar_model``, predicts on
every mesh node with ``predict_on_points`` (10 MC samples, seeded) and scores it with
``cardioscar.evaluate.metrics`` against the phantom's truth, next to the LogOdds and nearest-slice
baselines. With ``--reference-seconds S`` it also trains the documented algorithm
(``reference_loop.py``, documented defaults: it stops after 500 epochs without a better epoch
loss) on the same rows for at most S seconds, tracing its Dice every 10 epochs. With one slice
most of the heart is far from any data, so Dice is also given over the nodes the slice covers
(``dice_covered``), and the comparison with the reference uses that one.
Prints one JSON object per line (``fast``, ``baselines``, ``reference``); the load average and
the training's CPU seconds are printed so that timings from a shared machine can be judged.

Usage: PYTHONPATH=CardioScarLib python Testing/benchmarks/bench_fast_preset.py
       [--case demo|headline] [--partial-volume myocardium|volume] [--threads 2] [--override '{"max_epochs": 200}']
       [--reference-seconds 300]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cardioscar.evaluate import metrics
from cardioscar.evaluate.baselines import logodds_baseline, nearest_slice_baseline
from cardioscar.logic import predict_on_points, prepare_from_slices, train_scar_model
from cardioscar.prepare.partial_volume import corrected_slices
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom
from cardioscar.prepare.slices import slices_from_image
from cardioscar.fit.training import TrainingConfig


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


CASES = {"demo": ({}, None), "headline": ({"target_nodes": 330000, "pixel_mm": 0.9, "seed": 0}, "middle")}


def scores(probability: np.ndarray, truth: np.ndarray, weights: np.ndarray, covered: np.ndarray) -> dict:
    return {"dice": round(metrics.dice(probability, truth), 4),
            "dice_covered": round(metrics.dice(probability[covered], truth[covered]), 4),
            "volume_error": round(metrics.volume_error(probability, truth, weights=weights), 4)}


def reference_comparison(prepared, phantom, covered: np.ndarray, seconds: float, fast_seconds: float,
                         fast_dice: float) -> None:
    """Run the documented algorithm (reference_loop.py) on the same rows for at most ``seconds``
    and compare: Dice (over ``covered`` nodes) of its weights every 10 epochs and at its end, and
    the fast preset's time ratios."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from reference_loop import reference_train

    from cardioscar.predict.inference import mc_dropout_predict
    from cardioscar.fit.normalization import normalize

    all_nodes = normalize(phantom.points_lps, prepared.scaler_min, prepared.scaler_max).astype(np.float32)
    trace = []

    def on_epoch(epoch: int, loss: float, model, elapsed: float) -> None:
        if epoch % 10 == 0:
            mean, _ = mc_dropout_predict(model, all_nodes[covered], mc_samples=10, device="cpu")
            trace.append([round(elapsed, 1), epoch, round(metrics.dice(mean, phantom.truth[covered]), 4)])

    model, history = reference_train(prepared.coordinates, prepared.intensities, prepared.group_ids,
                                     time_limit_s=seconds, on_epoch=on_epoch)
    torch.manual_seed(0)
    final, _ = mc_dropout_predict(model, all_nodes[covered], mc_samples=10, device="cpu")
    final_dice = round(metrics.dice(final, phantom.truth[covered]), 4)
    best_dice = max([d for _, _, d in trace] + [final_dice])
    first_match = next((t for t, _, d in trace if d >= fast_dice), None)
    finished = history["epochs_run"] < 10000 and history["seconds"] < seconds
    emit(part="reference", seconds=round(history["seconds"], 1), epochs=history["epochs_run"],
         finished_by_early_stopping=finished, final_dice=final_dice, best_traced_dice=best_dice,
         dice_trace=trace[-15:], fast_dice=round(fast_dice, 4), fast_seconds=round(fast_seconds, 1),
         reference_seconds_to_reach_fast_dice=first_match,
         time_ratio_run_vs_fast=round(history["seconds"] / fast_seconds, 1),
         time_ratio_first_reach_vs_fast=None if first_match is None else round(first_match / fast_seconds, 1),
         load_avg_1min=round(os.getloadavg()[0], 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="demo", choices=tuple(CASES))
    parser.add_argument("--partial-volume", default="myocardium", choices=("myocardium", "volume"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--override", default="{}", help="JSON dict of TrainingConfig.fast() overrides")
    parser.add_argument("--reference-seconds", type=float, default=0.0,
                        help="also run the documented algorithm on the same rows for this long and compare")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    phantom_settings, which_slices = CASES[args.case]
    phantom = make_phantom(PhantomConfig(partial_volume=args.partial_volume, **phantom_settings))
    indices = [phantom.image.GetSize()[2] // 2] if which_slices == "middle" else None
    slices = slices_from_image(phantom.image, slice_indices=indices, half_thickness=phantom.slice_half_thickness_mm)
    # "volume" pixels are whole-box means: prepare them as the demo does, with the correction
    coverage_mesh = phantom.mesh if args.partial_volume == "volume" else None
    prepared = prepare_from_slices(phantom.points_lps, slices, coverage_mesh=coverage_mesh)
    if coverage_mesh is not None:  # the baselines get the same corrected pixels, as in the demo
        slices = corrected_slices(slices, prepared.group_slice, prepared.group_pixel, prepared.group_targets)
    weights = metrics.node_volumes(phantom.mesh)
    on_slice = metrics.on_slice_mask(prepared.node_ids, len(phantom.truth))
    covered = np.unique(prepared.node_ids)

    config = TrainingConfig.fast(**json.loads(args.override))
    cpu_started = time.process_time()
    checkpoint = train_scar_model(prepared, config, torch.device("cpu"))
    train_cpu_seconds = time.process_time() - cpu_started  # all threads; less inflated by other load
    history = checkpoint["history"]
    result = predict_on_points(checkpoint, phantom.points_lps, mc_samples=10, seed=0, device=torch.device("cpu"))
    on, between = metrics.uncertainty_on_off_slices(result.std_predictions, on_slice)
    emit(part="fast", case=args.case, partial_volume=args.partial_volume, rows=int(prepared.n_nodes), groups=int(prepared.n_groups),
         config=config.to_dict(), threads=torch.get_num_threads(),
         **scores(result.mean_predictions, phantom.truth, weights, covered),
         uncertainty_on_slices=round(on, 5), uncertainty_between_slices=round(between, 5),
         train_seconds=round(history["seconds"], 1),
         train_cpu_seconds=round(train_cpu_seconds, 1), epochs_run=history["epochs_run"],
         best_epoch=history["best_epoch"], load_avg_1min=round(os.getloadavg()[0], 2))
    emit(part="baselines", partial_volume=args.partial_volume,
         logodds=scores(logodds_baseline(phantom.points_lps, slices), phantom.truth, weights, covered),
         nearest_slice=scores(nearest_slice_baseline(phantom.points_lps, slices), phantom.truth, weights, covered),
         load_avg_1min=round(os.getloadavg()[0], 2))
    if args.reference_seconds > 0:
        reference_comparison(prepared, phantom, covered, args.reference_seconds, history["seconds"],
                             metrics.dice(result.mean_predictions[covered], phantom.truth[covered]))


if __name__ == "__main__":
    main()
