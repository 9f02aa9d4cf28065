"""Why the segmented family's label-map seeds under-call the scar (issue 18, item 3).

For each seed, the same phantom is prepared twice, from its label map (scar = pixel fraction
>= 0.5, targets 0/1) and from its scar-fraction map (targets = the fraction), on the same groups.
On the training rows (one per node and group) it prints the scar share each input implies next
to the binary truth's share on the same rows, how many truth-scar rows lie in pixels the label
map calls healthy, those pixels' scar fractions and the nodes' own true fractions. No training:
this is about the inputs, not the network.

Usage: PYTHONPATH=CardioScarLib python Testing/benchmarks/label_undercall.py [--seeds 1,3,5,7] [--nodes 12000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_robust as br  # noqa: E402
from cardioscar.logic import PreprocessingResult, prepare_from_slices  # noqa: E402

FRACTION_BINS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 1.0]
TRUTH_BINS = [0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 1.01]


def _pixel_key(prepared: PreprocessingResult, group: int) -> tuple[int, int, int]:
    return int(prepared.group_slice[group]), int(prepared.group_pixel[group][0]), int(prepared.group_pixel[group][1])


def diagnose(seed: int, nodes: int) -> dict:
    """The figures of one seed (see the module docstring)."""
    mesh = br.VARIANT_CYCLE[seed % len(br.VARIANT_CYCLE)][1]
    labels = br.segmented_case(seed, "labels", mesh, nodes)
    fraction = br.segmented_case(seed, "fraction", mesh, nodes)
    by_labels = prepare_from_slices(labels.points, labels.slices)
    by_fraction = prepare_from_slices(fraction.points, fraction.slices)
    fraction_of = {_pixel_key(by_fraction, g): t for g, t in enumerate(by_fraction.group_targets)}
    pixel_fraction = np.array([fraction_of.get(_pixel_key(by_labels, g), np.nan)
                               for g in range(by_labels.n_groups)])[by_labels.group_ids]
    label = by_labels.intensities[:, 0]
    true_fraction = labels.truth_fraction[by_labels.node_ids]
    scar = labels.truth[by_labels.node_ids] >= 0.5
    missed = scar & (label < 0.5)
    return {
        "case": labels.name, **labels.info, "rows": int(len(label)),
        "share_labels": round(float(label.mean()), 4), "share_fraction_map": round(float(np.nanmean(pixel_fraction)), 4),
        "share_truth_binary": round(float(scar.mean()), 4), "share_truth_fraction": round(float(true_fraction.mean()), 4),
        "truth_scar_rows": int(scar.sum()), "truth_scar_rows_labelled_healthy": int(missed.sum()),
        "labelled_scar_rows_without_truth_scar": int((~scar & (label >= 0.5)).sum()),
        "missed_pixel_fraction_hist": dict(zip(map(str, FRACTION_BINS[1:]),
                                               np.histogram(pixel_fraction[missed], FRACTION_BINS)[0].tolist())),
        "missed_true_fraction_hist": dict(zip(map(str, TRUTH_BINS[1:]),
                                              np.histogram(true_fraction[missed], TRUTH_BINS)[0].tolist())),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1,3,5,7", help="segmented-family seeds (the label-map ones: 1,3,5,7)")
    parser.add_argument("--nodes", type=int, default=12000)
    args = parser.parse_args(argv)
    for seed in br._parse_seeds(args.seeds):
        print(json.dumps(diagnose(seed, args.nodes)), flush=True)


if __name__ == "__main__":
    main()
