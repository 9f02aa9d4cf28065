"""The default reconstruction beside the no-learning yardsticks on the unseen phantom family.

The family (``unseen_family.py``): Gaussian slice profile and in-plane PSF instead of a box
footprint, LGE-like intensities with Rician noise turned into the user's scar input by the
library's own paths (``--normalize-intensities`` inside the myocardium mask, or ``--scar-rule
nsd``), a tetrahedral, surface-only or label-built mesh, 8-16 mm gaps, faint/small scars and a
scar-free heart. Cases follow :data:`SCHEDULE` (seed -> mesh, input, scar, forced gap); everything
else is drawn from the seed. ``--input`` gives every chosen seed another input kind, e.g. ``labels``
(a drawn scar label map, ``--scar-labels 3 --myocardium-labels 2,3``) on the same meshes and
acquisitions; a case whose input ``prepare`` refuses (a label map without scar) gets a line with
``refused`` (the error) and no scores.

Each case is scored by ``bench_robust.run_case`` with the fast preset: Dice at 0.5, best Dice
and its threshold, AUC, volume error, copy-voxel, nearest slice, LogOdds, seconds; one JSON line
per case on stdout, with the volume shares each method calls scar (the scar-free case's score).

Usage:
  PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/bench_unseen.py [--seeds 0-11]
      [--nodes 12000] [--mc-samples 10] [--margin PIXELS] [--rule fwhm --rule-target core]
      [--ablate box,nopsf,darkblood] [--shape-prior auto|on|off] [--input labels]
      [--slice-profile box|gaussian]
      > Testing/benchmarks/results/unseen_family_fast.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_robust as br  # noqa: E402
from unseen_family import INPUT_KINDS, UnseenConfig, make_unseen_phantom  # noqa: E402

from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.evaluate import metrics  # noqa: E402
from cardioscar.evaluate.baselines import nearest_slice_baseline  # noqa: E402
from cardioscar.fit.training import TrainingConfig  # noqa: E402

#: seed -> (mesh, input, scar, slice gap in mm or None = drawn in 8-16)
SCHEDULE = {
    0: ("tet", "probability", "usual", None),
    1: ("surface", "probability", "usual", None),
    2: ("labels", "probability", "usual", 15.5),
    3: ("tet", "nsd", "usual", None),
    4: ("surface", "nsd", "faint", None),
    5: ("labels", "nsd", "usual", None),
    6: ("tet", "probability", "faint", 16.0),
    7: ("surface", "probability", "usual", 15.0),
    8: ("labels", "probability", "none", None),
    9: ("tet", "nsd", "usual", 15.5),
    10: ("surface", "nsd", "usual", None),
    11: ("labels", "nsd", "faint", None),
}


def unseen_case(seed: int, nodes: int = 12000, rule: str | None = None, rule_target: str = "scar",
                ablations: tuple[str, ...] = (), input_kind: str | None = None) -> br.Case:
    """The scheduled case of ``seed`` as a ``bench_robust.Case``; ``input_kind`` replaces the
    scheduled input (same mesh, acquisition and scar), ``rule`` then a ``nsd`` input by another
    scar rule (a control), ``rule_target`` picks the rule's target.
    ``ablations`` take one difference from the real-data model away: ``box`` (the slab profile the
    library assumes), ``nopsf`` (no in-plane blur), ``darkblood`` (blood pool signal 0: no blood
    partial volume in the myocardium's border pixels)."""
    mesh_kind, scheduled, scar_kind, gap = SCHEDULE[seed]
    input_kind = input_kind or scheduled
    if rule is not None and input_kind == "nsd":
        input_kind = rule
    unknown = set(ablations) - set(ABLATIONS)
    if unknown:
        raise ValueError(f"unknown ablations {sorted(unknown)}: use {', '.join(ABLATIONS)}")
    overrides = {key: value for name in ablations for key, value in ABLATIONS[name].items()}
    phantom = make_unseen_phantom(UnseenConfig(seed=seed, mesh_kind=mesh_kind, input_kind=input_kind,
                                               scar_kind=scar_kind, slice_gap_mm=gap, target_nodes=nodes,
                                               rule_target=rule_target, **overrides))
    suffix = "".join(f"_{name}" for name in ablations)
    return br.Case(name=f"unseen_s{seed}_{mesh_kind}_{phantom.info['input']}_{scar_kind}{suffix}", points=phantom.points_lps,
                   truth=phantom.truth, truth_fraction=phantom.truth_fraction,
                   weights=metrics.node_volumes(phantom.mesh), slices=phantom.slices, acquired=phantom.acquired,
                   stack=br._stack_image(phantom.acquired, phantom.signal),
                   parallel=list(range(len(phantom.slices))), info=phantom.info,
                   scar_rule=phantom.scar_rule)

#: ``--ablate`` choices: UnseenConfig overrides that remove one way the family differs from the library's model.
ABLATIONS = {"box": {"profile": "box"}, "nopsf": {"psf_fwhm_px": 0.0}, "darkblood": {"blood": 0.0}}


def called_volumes(case: br.Case, probability: np.ndarray) -> dict:
    """Share of the mesh's volume (area on a surface) called scar at 0.5 by the reconstruction, copy-voxel
    and nearest slice, beside the truth's: the one score of a scar-free case (its Dice is 0 or 1)."""
    share = lambda values: round(float(case.weights[values >= 0.5].sum() / case.weights.sum()), 4)  # noqa: E731
    return {"truth_volume_share": share(case.truth), "called_volume_share": share(probability),
            "copy_voxel_called_volume_share": share(br.copy_voxel(case.points, case.stack)),
            "nearest_slice_called_volume_share": share(nearest_slice_baseline(case.points, case.acquired))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-11")
    parser.add_argument("--nodes", type=int, default=12000, help="tet lattice size (surface keeps its wall layers)")
    parser.add_argument("--mc-samples", type=int, default=10)
    parser.add_argument("--margin", type=int, default=0,
                        help="myocardium margin in pixels for the probability-map cases (restrict_to_myocardium)")
    parser.add_argument("--rule", choices=("nsd", "fwhm"), help="scar rule for the scheduled nsd cases (a control)")
    parser.add_argument("--rule-target", choices=("scar", "core"), default="scar",
                        help="the rule's training target: border zone + core (default) or core only")
    parser.add_argument("--ablate", default="", help="comma-separated: box, nopsf, darkblood (see unseen_case)")
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--input", choices=INPUT_KINDS, help="this input kind for every chosen seed instead of the "
                        "schedule's (labels: a drawn scar label map, --scar-labels 3 --myocardium-labels 2,3)")
    parser.add_argument("--shape-prior", choices=("auto", "on", "off"), default="auto",
                        help="the fast preset's auto (default: off on these cases, the probability maps' fractions and "
                             "the rules' grades), or on/off")
    br.add_slice_profile_argument(parser)
    args = parser.parse_args(argv)
    br.MAPPING["slice_profile"] = args.slice_profile
    logging.basicConfig(level=logging.WARNING)
    config = TrainingConfig.fast(shape_prior={"on": True, "off": False, "auto": "auto"}[args.shape_prior])
    for seed in br._parse_seeds(args.seeds):
        start = time.perf_counter()
        try:
            case = unseen_case(seed, args.nodes, args.rule, args.rule_target,
                               tuple(name for name in args.ablate.split(",") if name), args.input)
        except CardioScarError as error:   # what `cardioscar prepare` would refuse for this input
            mesh_kind, scheduled, scar_kind, _ = SCHEDULE[seed]
            print(json.dumps({"case": f"unseen_s{seed}_{mesh_kind}_{args.input or scheduled}_{scar_kind}",
                              "seed": seed, "refused": str(error)}), flush=True)
            continue
        if args.margin and case.info["input"] == "probability":
            case = br.with_margin(case, args.margin)
        built = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as folder:
            line = br.run_case(case, config, mc_samples=args.mc_samples, seed=args.train_seed, dump_dir=Path(folder))
            probability = np.load(Path(folder) / f"{case.name}.npz")["p"]
        line.update(called_volumes(case, probability))
        line.update(preset="fast", build_s=round(built, 1), total_s=round(time.perf_counter() - start, 1))
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
