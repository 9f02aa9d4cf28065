"""Trace the shape prior on bench_robust's biv-me leave-one-slice-out case (issue 19).

For each training seed and each prior setting (off; version 2 = ``slab_scale`` 1 without the end
rule, version 3 = ``slab_scale`` 0.5 with the end rule, both measuring the residual weight against
every plane; version 4 = the defaults: measured against stacks of two or more planes only), train
once on the biv-me planes without the held-out short-axis slice and print one JSON line: the
held-out Dice at 0.5 and AUC, the mean probability on scar and non-scar nodes, and the same split
by where the held-out nodes lie: where the residual weight w >= 0.99 (the network's residual
counts fully) or w < 0.99 (the prior rules), with the AUC within each part (a ranking that comes
only from which part a node lies in shows as a high AUC overall and about 0.5 within the parts).
``--demo-long-axis 10,13`` runs the same on the demo phantom (a volumetric mesh) with its
long-axis slice pooled, at those short-axis gaps.

    OMP_NUM_THREADS=1 PYTHONPATH=CardioScarLib:Testing/benchmarks \\
      python Testing/benchmarks/bivme_prior_trace.py --seeds 0-4 --settings off,v2,v3,v4 \\
      > Testing/benchmarks/results/bivme_prior_trace_v4.jsonl

``--scars 0-4`` draws other synthetic scars on the same planes (each holds out its own middle
short-axis slice with scar; a first line per scar gives nearest slice's and LogOdds' held-out
Dice and AUC, ``--seeds ''`` only those); ``--full`` trains on every plane and scores all nodes
(Dice at 0.5, AUC).
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

import bench_robust as br
from cardioscar.evaluate import metrics
from cardioscar.fit.training import TrainingConfig
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom
from cardioscar.prepare.slices import slices_from_image
from cardioscar.shape_prior.field import ShapePrior

#: name -> ShapePrior overrides (None: prior off); "v2" and "v3" reproduce those versions' weights.
SETTINGS = {"off": None, "v2": {"slab_scale": 1.0, "network_beyond_ends": False, "weigh_lone_planes": True},
            "v3": {"weigh_lone_planes": True}, "v4": {}}


def _mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 4) if values.size else None


def _part(where: np.ndarray, truth: np.ndarray, p: np.ndarray) -> dict:
    """Nodes, scar nodes, mean probability on scar and non-scar, and the AUC within ``where``."""
    return {"nodes": int(where.sum()), "scar": int(truth[where].sum()), "p_scar": _mean(p[where & truth]),
            "p_non_scar": _mean(p[where & ~truth]), "auc": br._auc(truth[where], p[where])}


def trace(case: br.Case, setting: str, seed: int, mc_samples: int) -> dict:
    """One training of ``case`` without its held-out slice under ``setting``; the held-out split."""
    held = br.held_out_index(case)
    keep = [case.slices[k] for k in range(len(case.slices)) if k != held]
    nodes = np.flatnonzero(br.in_footprint(case.points, case.slices[held]))
    points, truth = case.points[nodes], case.truth[nodes] >= 0.5
    overrides = SETTINGS[setting]
    br.PRIOR_OVERRIDES.clear()
    br.PRIOR_OVERRIDES.update(overrides or {})
    _, checkpoint, result, _, _ = br._reconstruct(case, keep, TrainingConfig.fast(shape_prior=overrides is not None),
                                                  mc_samples, seed)
    p = result.mean_predictions[nodes]
    line = {"case": case.name, "held_out": case.slices[held].label, "setting": setting, "seed": seed,
            "held_out_nodes": int(len(nodes)), "scar_nodes": int(truth.sum()),
            "dice": round(metrics.dice(p, truth, 0.5), 4), "auc": br._auc(truth, p),
            "p_scar": _mean(p[truth]), "p_non_scar": _mean(p[~truth])}
    prior = ShapePrior.from_checkpoint(checkpoint)
    if prior is not None:
        logit, weight = prior.node_terms(points)
        on_slab = weight >= 0.99
        line |= {"prior_term_auc": br._auc(truth, 1.0 / (1.0 + np.exp(-logit))),
                 "on_slab": _part(on_slab, truth, p), "between_slabs": _part(~on_slab, truth, p)}
    return line


def demo_long_axis_case(seed: int, nodes: int, gap_mm: float) -> br.Case:
    """The demo phantom (a volumetric tet mesh) with its short-axis stack ``gap_mm`` apart and its
    long-axis slice pooled (``PhantomConfig.long_axis``): a lone plane across the stack's gaps."""
    phantom = make_phantom(PhantomConfig(seed=seed, target_nodes=nodes, slice_gap_mm=gap_mm, long_axis=True))
    half = phantom.slice_half_thickness_mm
    short_axis = slices_from_image(phantom.image, half_thickness=half, label="demo")
    slices = short_axis + slices_from_image(phantom.long_axis_image, half_thickness=half, label="long axis")
    return br.Case(name=f"demo_long_axis_s{seed}_{gap_mm:g}mm", points=phantom.points_lps,
                   truth=(phantom.truth >= 0.5).astype(float), truth_fraction=phantom.truth,
                   weights=metrics.node_volumes(phantom.mesh), slices=slices, acquired=slices,
                   parallel=list(range(len(short_axis))), coverage_mesh=phantom.mesh)


def yardsticks(case: br.Case) -> dict:
    """Nearest slice and LogOdds from the remaining slices on the held-out nodes: whether the
    neighbours carry the held-out scar at all."""
    held = br.held_out_index(case)
    keep = [case.acquired[k] for k in range(len(case.slices)) if k != held]
    nodes = np.flatnonzero(br.in_footprint(case.points, case.slices[held]))
    return {"case": case.name, "held_out": case.slices[held].label, "setting": "yardsticks",
            **{name: {"dice": v["dice"], "auc": v["auc"]} for name, v in br.yardsticks(case, keep, nodes).items()}}


def full(case: br.Case, setting: str, seed: int, mc_samples: int) -> dict:
    """One training of ``case`` on every plane under ``setting``, scored on all nodes."""
    overrides = SETTINGS[setting]
    br.PRIOR_OVERRIDES.clear()
    br.PRIOR_OVERRIDES.update(overrides or {})
    _, _, result, _, _ = br._reconstruct(case, case.slices, TrainingConfig.fast(shape_prior=overrides is not None),
                                         mc_samples, seed)
    return {"case": case.name, "full": True, "setting": setting, "seed": seed, "scar_nodes": int(case.truth.sum()),
            **br.scores(result.mean_predictions, case.truth, case.weights)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-4", help="training seeds, e.g. 0-4 or 0,2")
    parser.add_argument("--settings", default="off,v2,v3,v4", help=f"comma-separated of {', '.join(SETTINGS)}")
    parser.add_argument("--scars", default="0", help="biv-me scar draws (bench_robust.bivme_case's seed), e.g. 0-4")
    parser.add_argument("--full", action="store_true", help="train on every plane and score all nodes instead")
    parser.add_argument("--demo-long-axis", metavar="GAPS_MM", default="",
                        help="instead of biv-me: the demo phantom with its long-axis slice, at these short-axis "
                             "gaps (comma-separated mm), 12k nodes, --scars as phantom seeds")
    parser.add_argument("--mc-samples", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    run = full if args.full else trace
    gaps = [float(g) for g in args.demo_long_axis.split(",") if g]
    builds = ([lambda s=scar, g=gap: demo_long_axis_case(s, 12000, g) for gap in gaps for scar in br._parse_seeds(args.scars)]
              if gaps else [lambda s=scar: br.bivme_case(s) for scar in br._parse_seeds(args.scars)])
    for build in builds:
        case = build()
        if not args.full:
            print(json.dumps(yardsticks(case)), flush=True)
        for setting in args.settings.split(","):
            for seed in br._parse_seeds(args.seeds):
                print(json.dumps(run(case, setting, seed, args.mc_samples)), flush=True)


if __name__ == "__main__":
    main()
