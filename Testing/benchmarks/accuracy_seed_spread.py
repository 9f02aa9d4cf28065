"""How far the segmented accuracy test's figures move with the training seed (and the CPU).

Why: ``Testing/test_accuracy_segmented.py`` holds bars on one fixed seed. The same seed gave Dice
0.914 on the Intel Xeon the bars were first measured on and 0.887 on an AMD EPYC (torch's kernels
round differently, and a training run amplifies it), so a bar is only safe with the spread over
training seeds in view. This runs the test's own reconstruction (phantom seed 0, 12k nodes, fast
preset, 10 MC samples) for each training seed, without and with ``--myocardium-margin 1``, and
prints one JSON line per run::

    PYTHONPATH=CardioScarLib:Testing OMP_NUM_THREADS=1 .venv/bin/python \\
        Testing/benchmarks/accuracy_seed_spread.py --train-seeds 0-4
"""

from __future__ import annotations

import argparse
import json
import time

from cardioscar.phantoms.phantom import make_phantom
from cardioscar.phantoms.phantom_segmented import SegmentedConfig
from test_accuracy_segmented import reconstruct


def _seeds(text: str) -> list[int]:
    if "-" in text:
        first, last = (int(v) for v in text.split("-"))
        return list(range(first, last + 1))
    return [int(v) for v in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-seeds", default="0-4", help="training seeds, e.g. 0-4 or 0,2")
    parser.add_argument("--margins", default="0,1", help="myocardium margins in pixels, e.g. 0,1")
    args = parser.parse_args()
    phantom = make_phantom(SegmentedConfig(seed=0, target_nodes=12000))
    for seed in _seeds(args.train_seeds):
        for margin in (int(v) for v in args.margins.split(",")):
            start = time.perf_counter()
            figures = reconstruct(phantom, margin, train_seed=seed)
            print(json.dumps({"train_seed": seed, "margin_px": margin,
                              **{name: round(float(value), 4) for name, value in figures.items()},
                              "calibration_gap": round(float(figures["best_dice"] - figures["dice"]), 4),
                              "seconds": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
