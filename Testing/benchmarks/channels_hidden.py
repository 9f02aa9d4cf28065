"""Which per-node signal says where the reconstruction may have filled a corridor with core?

The corridor phantoms of ``channels_phantom.py`` (same path: segmented family with a border-zone
corridor of ``--widths`` mm through a transmural core, 8-13 mm slice gaps, fast preset, 10 MC
samples, tags by the one-field defaults border zone >= 0.5, core >= 0.8, every channel kept). Per
case two groups of nodes, both tagged core by the reconstruction:

* **lost**: nodes of the true corridor's strip (truth 0.65, border zone) that no channel found
  holds: the corridor the reconstruction filled with core;
* **true core**: nodes whose true scar fraction is >= 0.8, outside the strip.

and per signal, the ROC AUC of lost against true core (higher value = more suspect) and the share
of the lost nodes flagged when the signal's cut flags 10 %, 25 % or 50 % of the true core. Signals:

* ``margin``: ``-(p - 0.8)``, how little the probability clears the core threshold;
* ``scar_uncertainty``: the MC-dropout std;
* ``risk_core``: ``scar_error_risk`` for the call at the core threshold 0.8
  (:func:`cardioscar.predict.error_risk.error_risk`, with the checkpoint's constraint points);
* ``constraint_mm``: distance to the nearest constrained node (``constraint_points_lps``);
* ``plane_mm``: distance to the nearest slice plane (along the slice normal);
* ``plane_over_gap``: ``plane_mm`` over half the slice gap (0 on a plane, 1 mid-gap);
* ``valley``: the mean probability of every node within 8 mm minus the node's own: a corridor
  filled with core is a trough in the core's plateau, the core's rim a slope (about 0).

and the flag the channel search writes, ``core_marginal`` (core whose probability lies within
``CORE_MARGIN`` = 0.1 of the core threshold): the share of lost nodes and of the true core it flags.

``core_uncertainty`` (the two-field core model's spread) is not measured: this path fits one field.

    PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 nice -n 10 python Testing/benchmarks/channels_hidden.py
        [--seeds 0,1,2,3] [--widths 4,6,8] [--orientations across,along] [--nodes 12000] [--save DIR]

One JSON line per case, then (with ``--save`` or ``--pooled-from``) a short line per saved case and
one ``"pooled"`` line per signal (every case's nodes together).
``--save DIR``: each case's per-node signals and groups as ``DIR/<case>.npz`` (read back by
``--pooled-from DIR``, which prints the pooled lines without refitting).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import rankdata

from channels_phantom import OPTIONS, mesh_with, training_slices
from cardioscar.fit.training import TrainingConfig
from cardioscar.logic import CONSTRAINT_POINTS_KEY, predict_on_points, prepare_from_slices, train_scar_model
from cardioscar.phantoms.phantom import make_phantom
from cardioscar.phantoms.phantom_segmented import CorridorSpec, SegmentedConfig
from cardioscar.predict.error_risk import error_risk
from cardioscar.simulation.channels import channels_of_mesh
from cardioscar.simulation.hidden_channels import CORE_MARGIN, MARGINAL_CORE_FIELD
from cardioscar.simulation.tags import DEFAULT_CORE_ONE_FIELD

#: The shares of the true core a flag may take, at which each signal's recall of lost nodes is read.
SHARES = (0.10, 0.25, 0.50)
SIGNALS = ("margin", "scar_uncertainty", "risk_core", "constraint_mm", "plane_mm", "plane_over_gap", "valley")
#: The radius (mm) of ``valley``'s neighbourhood (3 and 5 mm ranked three cases' lost nodes lower).
VALLEY_MM = 8.0


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann-Whitney ROC AUC of ``positive`` above ``negative`` (ties half); nan without both."""
    if not len(positive) or not len(negative):
        return float("nan")
    ranks = rankdata(np.concatenate([positive, negative]))
    return float((ranks[:len(positive)].sum() - len(positive) * (len(positive) + 1) / 2)
                 / (len(positive) * len(negative)))


def recall_at(positive: np.ndarray, negative: np.ndarray, share: float) -> float:
    """Share of ``positive`` at or above the cut that flags ``share`` of ``negative``."""
    if not len(positive) or not len(negative):
        return float("nan")
    return float((positive >= np.quantile(negative, 1.0 - share)).mean())


def valley(points: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Mean probability within ``VALLEY_MM`` of each node minus the node's own (positive: a trough)."""
    near = cKDTree(points).query_ball_point(points, VALLEY_MM)
    return np.array([probability[ids].mean() for ids in near]) - probability


def phantom_of(seed: int, width: float, orientation: str, nodes: int):
    """The case's phantom (deterministic from its seed and corridor)."""
    return make_phantom(SegmentedConfig(seed=seed, target_nodes=nodes,
                                        corridor=CorridorSpec(width_mm=width, orientation=orientation)))


def figures(signals: dict[str, np.ndarray], lost: np.ndarray, core: np.ndarray) -> dict:
    """Per signal: AUC and recall at each share of the true core flagged; and the library's flag
    (``core_marginal``: margin above the core threshold below ``CORE_MARGIN``): the share of the lost
    nodes and of the true core it flags."""
    rows = {name: {"auc": round(auc(v[lost], v[core]), 3),
                   **{f"recall@{int(100 * s)}%": round(recall_at(v[lost], v[core], s), 3) for s in SHARES}}
            for name, v in signals.items()}
    flag = signals["margin"] > -CORE_MARGIN
    rows[MARGINAL_CORE_FIELD] = {"lost_flagged": round(float(flag[lost].mean()), 3) if lost.any() else None,
                                 "core_flagged": round(float(flag[core].mean()), 3) if core.any() else None}
    return rows


def run(seed: int, width: float, orientation: str, nodes: int, save: Path | None) -> dict:
    start = time.perf_counter()
    phantom = phantom_of(seed, width, orientation, nodes)
    points = phantom.points_lps
    scar = phantom.scar_field.__self__
    local = phantom.geometry.to_local(points)
    corridor = scar.in_corridor(local)
    planes = np.asarray(phantom.metadata["slice_positions_local_z_mm"])
    gap = float(phantom.config.slice_gap_mm)
    checkpoint = train_scar_model(prepare_from_slices(points, training_slices(phantom)), TrainingConfig.fast(seed=seed))
    predicted = predict_on_points(checkpoint, points, mc_samples=10, seed=seed)
    p, std = predicted.mean_predictions, predicted.std_predictions
    constrained = checkpoint[CONSTRAINT_POINTS_KEY].numpy().astype(np.float64)
    found, _ = channels_of_mesh(mesh_with(phantom, {"scar_probability": p, "scar_uncertainty": std}), OPTIONS)
    in_channel = np.zeros(len(points), bool)
    for channel in found.channels:
        in_channel[channel.nodes] = True
    tagged_core = p >= DEFAULT_CORE_ONE_FIELD
    lost = corridor & tagged_core & ~in_channel
    core = ~corridor & (phantom.truth_fraction >= DEFAULT_CORE_ONE_FIELD) & tagged_core
    plane = np.abs(local[:, 2][:, None] - planes[None, :]).min(axis=1)
    signals = {"margin": -(p - DEFAULT_CORE_ONE_FIELD), "scar_uncertainty": std,
               "risk_core": error_risk(p, std, DEFAULT_CORE_ONE_FIELD, points, constrained),
               "constraint_mm": cKDTree(constrained).query(points)[0], "plane_mm": plane,
               "plane_over_gap": plane / (0.5 * gap), "valley": valley(points, p)}
    name = f"s{seed}_{orientation}_{width:g}"
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(save / f"{name}.npz", lost=lost, core=core, gap=gap, **signals)
    return {"case": name, "gap_mm": round(gap, 2), "slab_half_mm": round(phantom.slice_half_thickness_mm, 2),
            "corridor_nodes": int(corridor.sum()), "lost_nodes": int(lost.sum()), "core_nodes": int(core.sum()),
            "corridor_found_nodes": int((corridor & in_channel).sum()),
            "lost_plane_mm_median": round(float(np.median(plane[lost])), 2) if lost.any() else None,
            "core_plane_mm_median": round(float(np.median(plane[core])), 2),
            "signals": figures(signals, lost, core), "seconds": round(time.perf_counter() - start, 1)}


def pooled(folder: Path, nodes: int) -> list[dict]:
    """Every saved case's nodes together: one line per signal (and the cases' count). A case saved
    before ``valley`` was measured gets it from its phantom's mesh, rebuilt from the case's name."""
    cases = []
    for path in sorted(folder.glob("*.npz")):
        case = dict(np.load(path))
        if "valley" not in case:
            seed, orientation, width = path.stem.split("_")
            points = phantom_of(int(seed[1:]), float(width), orientation, nodes).points_lps
            case["valley"] = valley(points, DEFAULT_CORE_ONE_FIELD - case["margin"])
        cases.append(case)
        rows = figures({name: case[name] for name in SIGNALS}, case["lost"], case["core"])
        print(json.dumps({"case": path.stem, "lost_nodes": int(case["lost"].sum()),
                          **{f"{name}_{key}": rows[name][key] for name in ("margin", "valley")
                             for key in ("auc", "recall@25%")},
                          **rows[MARGINAL_CORE_FIELD]}), flush=True)
    lost = np.concatenate([c["lost"] for c in cases])
    core = np.concatenate([c["core"] for c in cases])
    signals = {name: np.concatenate([c[name] for c in cases]) for name in SIGNALS}
    return [{"pooled": name, "cases": len(cases), "lost_nodes": int(lost.sum()), "core_nodes": int(core.sum()), **row}
            for name, row in figures(signals, lost, core).items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--widths", default="4,6,8")
    parser.add_argument("--orientations", default="across,along")
    parser.add_argument("--nodes", type=int, default=12000)
    parser.add_argument("--save", type=Path, default=None, help="folder for each case's per-node signals (.npz)")
    parser.add_argument("--pooled-from", type=Path, default=None, help="print the pooled lines of saved cases only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.pooled_from is None:
        for seed in (int(v) for v in args.seeds.split(",")):
            for orientation in args.orientations.split(","):
                for width in (float(v) for v in args.widths.split(",")):
                    print(json.dumps(run(seed, width, orientation, args.nodes, args.save)), flush=True)
    folder = args.pooled_from or args.save
    if folder is not None:
        for line in pooled(folder, args.nodes):
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
