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

* **with the shape prior** (``--shape-prior``): the same split, the prior alone's (sigmoid of its
  log-odds) beside it, and the nodes where the prior's vote is wrong or near its outline; with
  ``--against-off`` the same case also trained without the prior (same seed), and the nodes wrong
  only with the prior / only without it split by the same categories (where the prior costs).
  ``--demo`` adds the demo family (seed 0; no infarct categories there).

    PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/seg_error_split.py --seeds 0,3,5
        [--nodes 12000] [--config-json '{...}'] [--no-ceiling] [--shape-prior [--against-off]] [--demo]
        [--prior-json '{"slab_scale": 1}']

One JSON line per case.
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
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom
from cardioscar.shape_prior import ShapePrior
from cardioscar.phantoms.phantom_segmented import SegmentedConfig
from cardioscar.fit.training import TrainingConfig


def _group_means(values: np.ndarray, prepared) -> np.ndarray:
    """(rows,) each row's group mean of ``values`` (a per-node field) over the group's rows."""
    _, inverse, counts = np.unique(prepared.group_ids, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=values[prepared.node_ids]) / counts
    return means[inverse]


#: Millimetres from the prior's interpolated outline within which a node counts as "near" it.
NEAR_OUTLINE_MM = 2.0


def _node_categories(case: br.Case, phantom, prepared) -> dict[str, np.ndarray]:
    """Boolean masks over the nodes: where each lies (groups, NaN pixels, gaps; image wall
    position) and which infarct dominates it (segmented family only)."""
    n = len(case.points)
    in_slab = np.zeros(n, bool)
    for layer in case.slices:
        in_slab |= br.in_footprint(case.points, layer)
    in_group = np.zeros(n, bool)
    in_group[prepared.node_ids] = True
    local = phantom.geometry.to_local(case.points)
    inside_wall = phantom.geometry.myocardium_local(local)
    depth, _, _ = phantom.geometry.local_to_wall(local)
    categories = {
        "in_group": in_group, "nan_pixel": in_slab & ~in_group, "between_slabs": ~in_slab,
        "outside_image_wall": ~inside_wall, "endo_third": inside_wall & (depth < 1 / 3),
        "mid_third": inside_wall & (depth >= 1 / 3) & (depth < 2 / 3), "epi_third": inside_wall & (depth >= 2 / 3),
    }
    scar_model = getattr(phantom.scar_field, "__self__", None)
    if hasattr(scar_model, "envelopes"):
        strength = scar_model.envelopes(local) * np.asarray(scar_model.peaks)[:, None]
        dominant = np.argmax(strength, axis=0)
        scarred = strength.max(axis=0) >= 0.05
        categories.update(patchy_infarct=scarred & (dominant == 0), faint_infarct=scarred & (dominant == 1),
                          no_infarct=~scarred)
    return categories


def _prior_categories(prior: ShapePrior, points: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Where the prior stands at each node: near its interpolated outline, whether its vote
    (log-odds sign) agrees with the truth, and beyond the training slabs (residual weight < 1)."""
    distance = prior.signed_distance(points)
    votes_scar = np.nan_to_num(distance, nan=np.inf) < 0
    return {"near_prior_outline": np.abs(np.nan_to_num(distance, nan=np.inf)) < NEAR_OUTLINE_MM,
            "prior_vote_wrong": votes_scar != (truth >= 0.5), "residual_weight_below_1": prior.residual_weight(points) < 1}


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


def _case(family: str, seed: int, nodes: int):
    """The benchmark case and its phantom (the same one ``bench_robust`` builds)."""
    if family == "demo":
        case = br.demo_case(seed, nodes)
        return case, make_phantom(PhantomConfig(seed=seed, target_nodes=nodes))
    variant, mesh_type = br.VARIANT_CYCLE[seed % len(br.VARIANT_CYCLE)]
    case = br.segmented_case(seed, variant, mesh_type, nodes)
    return case, make_phantom(SegmentedConfig(seed=seed, target_nodes=nodes, mesh_type=mesh_type))


def _prior_lines(checkpoint: dict, p: np.ndarray, case: br.Case, categories: dict, off: np.ndarray | None) -> dict:
    """The prior alone scored and split like the network, and (with ``off``, the prior-off
    prediction) the nodes wrong only with the prior and only without it, per category."""
    prior = ShapePrior.from_checkpoint(checkpoint)
    truth = case.truth
    alone = 1.0 / (1.0 + np.exp(-prior.logit(case.points)))
    categories = categories | _prior_categories(prior, case.points, truth)
    line = {"prior_alone_dice": round(metrics.dice(alone, truth), 4),
            "prior_alone_split": _split(alone, truth, categories),
            "split_nodes_scar_fp_fn": _split(p, truth, categories),
            "residual_full_mm": round(prior.residual_full_mm, 2)}
    if off is not None:
        wrong_on, wrong_off = (p >= 0.5) != (truth >= 0.5), (off >= 0.5) != (truth >= 0.5)
        line["off_dice"] = round(metrics.dice(off, truth), 4)
        line["off_split"] = _split(off, truth, categories)
        everywhere = {"all": np.ones(len(p), bool), **categories}
        for label, only in (("on", wrong_on & ~wrong_off), ("off", wrong_off & ~wrong_on)):
            line[f"wrong_only_{label}_fp_fn"] = {name: [int((only & mask & (truth < 0.5)).sum()),
                                                        int((only & mask & (truth >= 0.5)).sum())]
                                                 for name, mask in everywhere.items()}
    return line


def run(family: str, seed: int, nodes: int, config: TrainingConfig, ceiling: bool, against_off: bool = False) -> dict:
    case, phantom = _case(family, seed, nodes)
    prepared = br.with_prior_overrides(prepare_from_slices(case.points, case.slices, coverage_mesh=case.coverage_mesh))
    categories = _node_categories(case, phantom, prepared)
    truth = case.truth
    checkpoint = train_scar_model(prepared, dataclasses.replace(config, seed=0))
    p = predict_on_points(checkpoint, case.points, mc_samples=10, seed=0).mean_predictions
    in_group = categories["in_group"]
    line = {"case": case.name, "shape_prior": config.shape_prior, "dice": round(metrics.dice(p, truth), 4),
            "dice_in_groups": round(metrics.dice(p[in_group], truth[in_group]), 4),
            "dice_outside_groups": round(metrics.dice(p[~in_group], truth[~in_group]), 4),
            "split_nodes_scar_fp_fn": _split(p, truth, categories)}
    if checkpoint.get("shape_prior"):
        off = (_train_predict(prepared, dataclasses.replace(config, shape_prior=False), case.points)
               if against_off else None)
        line.update(_prior_lines(checkpoint, p, case, categories, off))
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
    parser.add_argument("--shape-prior", action="store_true", help="train with the shape prior (TrainingConfig.shape_prior)")
    parser.add_argument("--against-off", action="store_true",
                        help="with --shape-prior: also train without it and split the nodes wrong only with / only without")
    parser.add_argument("--demo", action="store_true", help="also the demo family (seed 0)")
    parser.add_argument("--prior-json", help="ShapePrior fields overriding the defaults (as bench_robust's)")
    args = parser.parse_args()
    br.PRIOR_OVERRIDES.update(json.loads(args.prior_json) if args.prior_json else {})
    logging.basicConfig(level=logging.WARNING)
    overrides = json.loads(args.config_json) if args.config_json else {}
    if args.shape_prior:
        overrides["shape_prior"] = True
    config = TrainingConfig.fast(**overrides)
    runs = [("segmented", seed) for seed in br._parse_seeds(args.seeds)] + ([("demo", 0)] if args.demo else [])
    for family, seed in runs:
        print(json.dumps(run(family, seed, args.nodes, config, not args.no_ceiling, args.against_off)), flush=True)


if __name__ == "__main__":
    main()
