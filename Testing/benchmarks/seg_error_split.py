"""Where the segmented family's full reconstruction goes wrong, and what perfect data would reach.

Issue 18's first bar (mean Dice at 0.5 >= 0.93 over 8 seeds of ``cardioscar.phantom_segmented``)
is missed while the trained field fits the groups *below* the true field's group loss, so the
error is in how the scar is spread where the groups do not pin it. This script says where, per
seed (12k nodes, fast preset, 10 MC samples, seeded like ``bench_robust.run_case``):

* **split of the wrong nodes at 0.5**: false positive / false negative, by where the node lies:
  in a group (a myocardium pixel's footprint), in a slab but in a NaN pixel (outside the image's
  myocardium), or between the slabs; by wall position in the *image's* geometry (outside the
  image's wall, or the endo / mid / epi third of it); by infarct (the patchy one, the faint one,
  none: the infarct whose peak x envelope is largest at the node, none below 0.05);
* **ceilings**: the same preset trained on *consistent* targets (each group's target = the mean
  of the true scar fraction over that group's own nodes, same groups: what the method reaches
  when the data are perfect), and the truth smeared as the data smear it (each node in a group
  given its group's true mean; nodes outside every group keep the truth): the Dice no field
  that only matches the group means can be sure to beat.

    PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/seg_error_split.py --seeds 0,3,5
        [--nodes 12000] [--config-json '{...}'] [--no-ceiling]

One JSON line per seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging

import numpy as np

import bench_robust as br
from cardioscar import metrics
from cardioscar.logic import predict_on_points, prepare_from_slices, train_scar_model
from cardioscar.phantoms.phantom import make_phantom
from cardioscar.phantoms.phantom_segmented import SegmentedConfig
from cardioscar.fit.training import TrainingConfig


def _group_means(values: np.ndarray, prepared) -> np.ndarray:
    """(rows,) each row's group mean of ``values`` (a per-node field) over the group's rows."""
    _, inverse, counts = np.unique(prepared.group_ids, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=values[prepared.node_ids]) / counts
    return means[inverse]


def _node_categories(case: br.Case, phantom, prepared) -> dict[str, np.ndarray]:
    """Boolean masks over the nodes: where each lies (groups, NaN pixels, gaps; image wall
    position) and which infarct dominates it."""
    n = len(case.points)
    in_slab = np.zeros(n, bool)
    for layer in case.slices:
        in_slab |= br.in_footprint(case.points, layer)
    in_group = np.zeros(n, bool)
    in_group[prepared.node_ids] = True
    local = phantom.geometry.to_local(case.points)
    inside_wall = phantom.geometry.myocardium_local(local)
    depth, _, _ = phantom.geometry.local_to_wall(local)
    scar_model = phantom.scar_field.__self__
    strength = scar_model.envelopes(local) * np.asarray(scar_model.peaks)[:, None]
    dominant = np.argmax(strength, axis=0)
    scarred = strength.max(axis=0) >= 0.05
    categories = {
        "in_group": in_group, "nan_pixel": in_slab & ~in_group, "between_slabs": ~in_slab,
        "outside_image_wall": ~inside_wall, "endo_third": inside_wall & (depth < 1 / 3),
        "mid_third": inside_wall & (depth >= 1 / 3) & (depth < 2 / 3), "epi_third": inside_wall & (depth >= 2 / 3),
        "patchy_infarct": scarred & (dominant == 0), "faint_infarct": scarred & (dominant == 1),
        "no_infarct": ~scarred,
    }
    return categories


def _split(p: np.ndarray, truth: np.ndarray, categories: dict[str, np.ndarray]) -> dict:
    """Per category: nodes, scar nodes, false positives, false negatives at 0.5."""
    fp = (p >= 0.5) & (truth < 0.5)
    fn = (p < 0.5) & (truth >= 0.5)
    out = {"all": [int(len(p)), int((truth >= 0.5).sum()), int(fp.sum()), int(fn.sum())]}
    for name, mask in categories.items():
        out[name] = [int(mask.sum()), int((truth[mask] >= 0.5).sum()), int(fp[mask].sum()), int(fn[mask].sum())]
    return out


def _train_predict(prepared, config: TrainingConfig, points: np.ndarray, seed: int = 0) -> np.ndarray:
    checkpoint = train_scar_model(prepared, dataclasses.replace(config, seed=seed))
    return predict_on_points(checkpoint, points, mc_samples=10, seed=seed).mean_predictions


def run(seed: int, nodes: int, config: TrainingConfig, ceiling: bool) -> dict:
    variant, mesh_type = br.VARIANT_CYCLE[seed % len(br.VARIANT_CYCLE)]
    case = br.segmented_case(seed, variant, mesh_type, nodes)
    phantom = make_phantom(SegmentedConfig(seed=seed, target_nodes=nodes, mesh_type=mesh_type))
    prepared = prepare_from_slices(case.points, case.slices)
    categories = _node_categories(case, phantom, prepared)
    truth = case.truth
    p = _train_predict(prepared, config, case.points)
    in_group = categories["in_group"]
    line = {"case": case.name, "dice": round(metrics.dice(p, truth), 4),
            "dice_in_groups": round(metrics.dice(p[in_group], truth[in_group]), 4),
            "dice_outside_groups": round(metrics.dice(p[~in_group], truth[~in_group]), 4),
            "split_nodes_scar_fp_fn": _split(p, truth, categories)}
    # the truth smeared as the groups smear it: in-group nodes take their group's true mean
    smeared = case.truth_fraction.copy()
    smeared[prepared.node_ids] = _group_means(case.truth_fraction, prepared)
    line["smeared_truth_dice"] = round(metrics.dice(smeared, truth), 4)
    line["smeared_truth_dice_in_groups"] = round(metrics.dice(smeared[in_group], truth[in_group]), 4)
    # how far the data's targets are from the consistent ones
    consistent = _group_means(case.truth_fraction, prepared)
    line["target_minus_consistent_mean"] = round(float(np.mean(prepared.intensities[:, 0] - consistent)), 4)
    line["target_consistent_rmse"] = round(float(np.sqrt(np.mean((prepared.intensities[:, 0] - consistent) ** 2))), 4)
    if ceiling:
        perfect = dataclasses.replace(prepared, intensities=consistent.astype(prepared.intensities.dtype)[:, None])
        q = _train_predict(perfect, config, case.points)
        line.update(ceiling_dice=round(metrics.dice(q, truth), 4),
                    ceiling_best_dice=br.scores(q, truth)["best_dice"],
                    ceiling_dice_in_groups=round(metrics.dice(q[in_group], truth[in_group]), 4),
                    ceiling_dice_outside_groups=round(metrics.dice(q[~in_group], truth[~in_group]), 4),
                    ceiling_split=_split(q, truth, categories))
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,3,5")
    parser.add_argument("--nodes", type=int, default=12000)
    parser.add_argument("--config-json", help="TrainingConfig.fast overrides, inline JSON")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the consistent-target training")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = TrainingConfig.fast(**(json.loads(args.config_json) if args.config_json else {}))
    for seed in br._parse_seeds(args.seeds):
        print(json.dumps(run(seed, args.nodes, config, not args.no_ceiling)), flush=True)


if __name__ == "__main__":
    main()
