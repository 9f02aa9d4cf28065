"""Training speed and quality: the documented loop vs ``fit_scar_field`` on a synthetic shell.

Prints one JSON object per line:
* ``matmul``: the fp32 matmul rate this machine reaches (large square and network-shaped).
* ``identical``: the reference loop and ``fit_scar_field`` at the documented settings for the same
  number of epochs, from a fresh network and from a trained one (where subnormal floats appear);
  rows/s, speed ratio, achieved GFLOP/s in the documented accounting (6 x parameters x
  mc_samples per row) and as computed (our step runs the layers before the first dropout once
  per row), and the computed rate as a fraction of the measured matmul rate at the same threads.
* ``loss_curve``: both at the documented settings from the same fresh network: epoch losses, the
  wall time and rows/s of the whole run (ours runs before and after the documented loop; the
  documented loop slows down once subnormal floats appear, its epoch time at the start and at
  the end of the run is printed).
* ``inference``: ``mc_dropout_predict`` vs the documented loop of full passes (100k nodes, T=10).
* ``fast``: the reference loop run for a time cap (Dice of its weights tracked as it trains)
  vs ``TrainingConfig.fast()``: wall time, Dice at 0.5 on all nodes, time ratio.

On a 2-core CPU the identical part takes ~8 minutes (3 interleaved rounds per state, then the
documented loop's 100-epoch run), the others under ~4; ``--part all`` runs them one after another.

Usage: PYTHONPATH=CardioScarLib:Testing/benchmarks python Testing/benchmarks/bench_training.py
       [--part identical|inference|fast|all] [--epochs 4] [--curve-epochs 100] [--reference-seconds 150]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from cardioscar.fit.engines import BayesianNN
from cardioscar.predict.inference import mc_dropout_predict, split_network
from cardioscar.fit.training import TrainingConfig, fit_scar_field
from reference_loop import reference_network, reference_train
from synthetic_case import dice, make_synthetic_case


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


def matmul_rate(threads: int) -> dict:
    torch.set_num_threads(threads)
    rates = {}
    for name, (m, k, n) in {"square_2048": (2048, 2048, 2048), "net_30000x128x128": (30000, 128, 128)}.items():
        a, b = torch.rand(m, k), torch.rand(k, n)
        a @ b
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(5):
                a @ b
            best = min(best, (time.perf_counter() - start) / 5)
        rates[name] = 2 * m * k * n / best / 1e9
    return rates


def model_dice(model: BayesianNN, case) -> float:
    mean, _ = mc_dropout_predict(model, case.coordinates, mc_samples=10, device="cpu")
    return dice(mean >= 0.5, case.truth)


def flops_per_row(model: BayesianNN, mc_samples: int) -> tuple[float, float]:
    """Training FLOPs per row: (documented accounting 6 x parameters x mc_samples, what our step
    computes: the layers before the first dropout once, the rest mc_samples times)."""
    prefix, _, rest = split_network(model)
    before = sum(p.numel() for p in prefix.parameters())
    after = sum(p.numel() for module in rest for p in module.parameters())
    return 6.0 * (before + after) * mc_samples, 6.0 * (before + mc_samples * after)


def loss_curves(case, epochs: int) -> None:
    """The documented loop and fit_scar_field from the same fresh network, documented settings:
    epoch losses, and the throughput over the whole run. fit_scar_field runs before and after the
    documented loop and its mean time is used, so that a drift of the shared machine's speed
    during the long documented run cancels to first order. The documented loop slows down as its
    weights produce subnormal floats (after a few dozen epochs here); its epoch time is printed
    for the first and the last ten epochs."""
    x, y, g = case.training_coordinates, case.intensities, case.group_ids
    torch.manual_seed(42)
    start = BayesianNN()
    config = TrainingConfig(max_epochs=epochs, early_stopping_patience=10 ** 6)
    _, ours = fit_scar_field(x, y, g, config, device="cpu", model=start)
    elapsed: list[float] = []
    _, ref = reference_train(x, y, g, max_epochs=epochs, patience=10 ** 6, model=start,
                             on_epoch=lambda epoch, loss, model, seconds: elapsed.append(seconds))
    _, ours_after = fit_scar_field(x, y, g, config, device="cpu", model=start)
    ours_s = (ours["seconds"] + ours_after["seconds"]) / 2
    marks = sorted({1, 2, 5} | set(range(10, epochs + 1, max(10, epochs // 10))) | {epochs})
    window = min(10, epochs // 2)
    rows = len(case.node_ids)
    emit(part="loss_curve", epochs=epochs, epoch=marks,
         reference=[round(ref["train_loss"][e - 1], 5) for e in marks],
         ours=[round(ours["train_loss"][e - 1], 5) for e in marks],
         reference_s=round(ref["seconds"], 1), ours_s_before_after=[round(ours["seconds"], 1),
                                                                    round(ours_after["seconds"], 1)],
         reference_epoch_s_first=round(elapsed[window - 1] / window, 3),
         reference_epoch_s_last=round((elapsed[-1] - elapsed[-window - 1]) / window, 3),
         ours_epoch_s_mean=round(ours_s / epochs, 3),
         reference_rows_per_s_run=round(rows * epochs / ref["seconds"]),
         ours_rows_per_s_run=round(rows * epochs / ours_s),
         speedup_run=round(ref["seconds"] / ours_s, 2))


def identical(case, epochs: int, threads: int, peak: float, warm_epochs: int = 100) -> None:
    default_threads = torch.get_num_threads()
    documented_flops, our_flops = flops_per_row(BayesianNN(), 3)
    rows = len(case.node_ids)
    x, y, g = case.training_coordinates, case.intensities, case.group_ids
    # a documented-size (4 x 128) network, trained a little: where subnormal floats appear
    warm, _ = fit_scar_field(x, y, g, TrainingConfig.fast(max_epochs=warm_epochs, hidden_dim=128, n_layers=4),
                             device="cpu")
    for state, start_model in (("fresh", None), ("trained", warm)):
        ref_times, ref1_times, our_times = [], [], []
        for _ in range(3):  # interleaved, best of 3 each: the machine's speed drifts
            _, ref = reference_train(x, y, g, max_epochs=epochs, patience=10 ** 6, model=start_model)
            ref_times.append(ref["seconds"] / ref["epochs_run"])
            torch.set_num_threads(1)
            _, ref1 = reference_train(x, y, g, max_epochs=epochs, patience=10 ** 6, model=start_model)
            torch.set_num_threads(default_threads)
            ref1_times.append(ref1["seconds"] / ref1["epochs_run"])
            config = TrainingConfig(max_epochs=epochs, early_stopping_patience=10 ** 6, num_threads=threads)
            _, ours = fit_scar_field(x, y, g, config, device="cpu", model=start_model)
            our_times.append(ours["seconds"] / ours["epochs_run"])
        ref_rate, ref1_rate, our_rate = rows / min(ref_times), rows / min(ref1_times), rows / min(our_times)
        emit(part="identical", start=state, rows=rows, epochs=epochs, threads_ours=threads,
             threads_reference=default_threads, reference_rows_per_s=round(ref_rate),
             reference_1thread_rows_per_s=round(ref1_rate), ours_rows_per_s=round(our_rate),
             speedup=round(our_rate / ref_rate, 2), speedup_vs_1thread_reference=round(our_rate / ref1_rate, 2),
             reference_gflops=round(documented_flops * ref_rate / 1e9, 1),
             ours_gflops_documented_accounting=round(documented_flops * our_rate / 1e9, 1),
             ours_gflops_computed=round(our_flops * our_rate / 1e9, 1),
             ours_computed_fraction_of_matmul_rate=round(our_flops * our_rate / 1e9 / peak, 3))


def fast(case, reference_seconds: float, threads: int) -> None:
    x, y, g = case.training_coordinates, case.intensities, case.group_ids
    trace = []

    def track(epoch, loss, model, elapsed):
        if epoch % 10 == 0:
            was = model.training
            trace.append((round(elapsed, 1), epoch, round(model_dice(model, case), 4)))
            model.train(was)

    ref_model, ref = reference_train(x, y, g, time_limit_s=reference_seconds, on_epoch=track)
    ref_dice = model_dice(ref_model, case)
    emit(part="fast", mode="reference", seconds=round(ref["seconds"], 1), epochs=ref["epochs_run"],
         dice=round(ref_dice, 4), dice_trace=trace[-12:])
    config = TrainingConfig.fast(num_threads=threads)
    started = time.perf_counter()
    model, history = fit_scar_field(x, y, g, config, device="cpu")
    seconds = time.perf_counter() - started
    our_dice = model_dice(model, case)
    emit(part="fast", mode="fast_preset", seconds=round(seconds, 1), epochs=history["epochs_run"],
         best_epoch=history["best_epoch"], dice=round(our_dice, 4), reference_dice=round(ref_dice, 4),
         time_ratio=round(ref["seconds"] / seconds, 1),
         # the documented run needs at least patience + 1 = 501 epochs before it can stop
         reference_full_run_at_least_s=round(501 * ref["seconds"] / ref["epochs_run"]),
         time_ratio_vs_full_run_at_least=round(501 * ref["seconds"] / ref["epochs_run"] / seconds, 1),
         config=config.to_dict())


def inference(threads: int, n_nodes: int = 100_000, mc_samples: int = 10) -> None:
    """One forward per node batch on the repeated input vs the documented loop of full passes."""
    torch.manual_seed(0)
    coords = np.random.default_rng(0).random((n_nodes, 3)).astype(np.float32)
    model = BayesianNN()
    loop_model = reference_network(model)
    torch.set_num_threads(threads)
    start = time.perf_counter()
    with torch.no_grad():
        loop_model.eval()
        loop_model.enable_dropout()
        x = torch.from_numpy(coords)
        samples = torch.stack([loop_model(x) for _ in range(mc_samples)])
        loop_mean, loop_std = samples.mean(0), samples.std(0, correction=0)
    loop_seconds = time.perf_counter() - start
    start = time.perf_counter()
    mean, std = mc_dropout_predict(model, coords, mc_samples=mc_samples, batch_size=50000, device="cpu")
    ours_seconds = time.perf_counter() - start
    emit(part="inference", nodes=n_nodes, mc_samples=mc_samples, threads=threads,
         documented_loop_s=round(loop_seconds, 2), ours_s=round(ours_seconds, 2),
         speedup=round(loop_seconds / ours_seconds, 1),
         mean_abs_diff_of_means=float(np.abs(mean - loop_mean.numpy()[:, 0]).mean()),
         std_means=[float(std.mean()), float(loop_std.mean())])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("identical", "fast", "inference", "all"), default="all")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--reference-seconds", type=float, default=150.0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads for CardioScar (default: torch's default, as the reference uses)")
    parser.add_argument("--curve-epochs", type=int, default=100)
    args = parser.parse_args()
    case = make_synthetic_case()
    emit(part="case", nodes=len(case.points), rows=len(case.node_ids), groups=int(case.group_ids.max() + 1),
         scar_fraction=round(float(case.truth.mean()), 4))
    default_threads = torch.get_num_threads()
    rates = matmul_rate(args.threads)
    emit(part="matmul", threads=args.threads, gflops={k: round(v, 1) for k, v in rates.items()})
    torch.set_num_threads(default_threads)
    if args.part in ("identical", "all"):
        identical(case, args.epochs, args.threads, max(rates.values()))
        loss_curves(case, args.curve_epochs)
    if args.part in ("inference", "all"):
        inference(args.threads)
        torch.set_num_threads(default_threads)
    if args.part in ("fast", "all"):
        fast(case, args.reference_seconds, args.threads)


if __name__ == "__main__":
    main()
