"""MC-dropout inference: ``mc_dropout_predict`` vs the documented loop of separate full passes.

The documented way: ``for t in range(T): model(x)`` with ``nn.Dropout`` on, then stack, mean and
std. Both run on the same network (default 3 -> 4 x 128 -> 1, made spatially varied) and the same
random nodes, ``--repeats`` times each, interleaved (the machine is shared and noisy). Prints one
JSON line: timings, their ratios, the peak resident memory after our first call (before the loop's
first, so the loop's full-size activations are not in it), and how the two output distributions
compare:

* ``max_abs_mean_diff``: largest per-node difference of the means (MC noise, ~4 std / sqrt(T));
* ``z_mean`` / ``z_std``: per-node (mean difference) / its standard error; ~0 and ~1 when both
  sample the same distribution;
* ``ks_mean`` / ``ks_std``: two-sample Kolmogorov-Smirnov statistics of the per-node means and
  stds across nodes (0 = identical distributions).

Run: ``PYTHONPATH=CardioScarLib .venv/bin/python Testing/benchmarks/bench_inference.py``
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_loop import reference_network  # noqa: E402

from cardioscar.fit.engines import BayesianNN  # noqa: E402
from cardioscar.predict.inference import mc_dropout_predict  # noqa: E402


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Largest gap between the empirical CDFs of ``a`` and ``b``."""
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def varied_network(seed: int = 0) -> BayesianNN:
    """A default-size network whose output varies over the unit cube (like a trained one)."""
    torch.manual_seed(seed)
    net = BayesianNN()
    with torch.no_grad():
        net.linear_layers()[0].weight.mul_(8.0)
        net.linear_layers()[-1].weight.mul_(4.0)
    return net


def documented_loop(model: BayesianNN, coords: np.ndarray, mc_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Separate stochastic full passes with ``nn.Dropout``, stacked."""
    loop_model = reference_network(model)
    with torch.no_grad():
        loop_model.eval()
        loop_model.enable_dropout()
        x = torch.from_numpy(coords)
        samples = torch.stack([loop_model(x) for _ in range(mc_samples)])[..., 0]
        return samples.mean(0).numpy(), samples.std(0, correction=0).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--mc-samples", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    coords = np.random.default_rng(0).random((args.nodes, 3)).astype(np.float32)
    model = varied_network()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ours_s, loop_s = [], []
    for repeat in range(args.repeats):  # interleaved, best of each: the machine is shared and noisy
        torch.manual_seed(1 + repeat)
        start = time.perf_counter()
        mean, std = mc_dropout_predict(model, coords, mc_samples=args.mc_samples, batch_size=50000, device="cpu")
        ours_s.append(time.perf_counter() - start)
        if repeat == 0:
            rss_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        torch.manual_seed(100 + repeat)
        start = time.perf_counter()
        loop_mean, loop_std = documented_loop(model, coords, args.mc_samples)
        loop_s.append(time.perf_counter() - start)
    # sample variances (ddof = 1) of each side; z then follows a t law (std ~1.06 for T = 10)
    standard_error = np.sqrt((std.astype(np.float64) ** 2 + loop_std ** 2) / max(args.mc_samples - 1, 1))
    valid = standard_error > 0
    z = (mean - loop_mean)[valid] / standard_error[valid]
    print(json.dumps({
        "nodes": args.nodes, "T": args.mc_samples, "threads": torch.get_num_threads(),
        "loop_s": [round(v, 2) for v in loop_s], "ours_s": [round(v, 2) for v in ours_s],
        "ratio_of_best": round(min(loop_s) / min(ours_s), 2),
        "ratio_per_repeat": [round(a / b, 2) for a, b in zip(loop_s, ours_s)],
        "peak_rss_mb_before": round(rss_before, 1), "peak_rss_mb_after_ours": round(rss_ours, 1),
        "max_abs_mean_diff": round(float(np.abs(mean - loop_mean).max()), 4),
        "mean_abs_mean_diff": round(float(np.abs(mean - loop_mean).mean()), 5),
        "z_mean": round(float(z.mean()), 3), "z_std": round(float(z.std()), 3),
        "ks_mean": round(ks_statistic(mean, loop_mean), 4), "ks_std": round(ks_statistic(std, loop_std), 4),
        "std_means": [round(float(std.mean()), 5), round(float(loop_std.mean()), 5)],
    }), flush=True)


if __name__ == "__main__":
    main()
