"""EMIDEC leave-one-slice-out without training: is the held-out slice's scar interpolated better in
the wall's own coordinates (angle about the LV axis, normalised depth) than in Cartesian space?

Per infarct case, the case preparation of ``bench_emidec_loso.py`` (mesh from the labels of the
other slices, middle myocardial slice held out, its myocardium nodes scored against its labels),
then on the scored nodes:

* ``nearest_slice``, ``logodds``: the yardsticks, as ``bench_emidec_loso`` computes them;
* ``shape_prior_alone``: today's Cartesian shape prior (``ShapePrior`` log-odds -> sigmoid);
* ``wall_linear``: each neighbour slice's scar map (0/1, non-myocardium pixels filled with the
  nearest myocardium pixel's value) read at the node's (theta, tau) in that slice's own wall
  (``wall_coordinates.py`` beside this script), linearly interpolated between the two slices;
* ``wall_sdf``: the same for the prior's signed distance maps (with the prior's bulge and log-odds
  transform), i.e. today's prior with the slices read in wall coordinates;
* ``wall_sdf+prior``: the mean of the logits of ``wall_sdf`` and ``shape_prior_alone``;
* ``diagnostic_held_out_wall`` (not a method: it looks at the held-out slice's myocardium): ``wall_sdf``
  with each node's (theta, tau) measured in the held-out slice's own wall, i.e. with the wall
  geometry between the slices known exactly; how much better wall coordinates could get;
* ``diagnostic_lower_only`` / ``diagnostic_upper_only``: ``wall_sdf`` read from one neighbour only;
  the summary's ``mean_auc_better_neighbour`` takes, per case, the one that ranks the held-out scar
  better (chosen with the held-out labels): a bound on what reweighting the two neighbours can do;
  ``diagnostic_scar_in_neither``: the share of the held-out scar nodes that neither neighbour calls
  scar at the node's wall position (``diagnostic_healthy_scar_in_both``: healthy nodes both call scar).

The wall frame of the methods comes only from the training slices' targets (finite = myocardium);
the held-out labels serve only to score (and the diagnostics). One JSON line per case, then a
summary line (means over the cases whose held-out slice has scar; AUC over those with both classes).

Usage: OMP_NUM_THREADS=1 PYTHONPATH=CardioScarLib python Testing/benchmarks/emidec_wall_interpolation.py
       [--data ../shared/data/emidec] [--cases P001,P003] [--limit N] [--output FILE.jsonl]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_emidec_loso import (DEFAULT_DATA, _mean, _read_records, _write_records, case_dirs,  # noqa: E402
                               myocardium_targets, prepare_case, read_labels, yardstick_slices)
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.evaluate import heldout  # noqa: E402
from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, labelled_slices  # noqa: E402
from cardioscar.prepare.slices import slices_from_image  # noqa: E402
from wall_coordinates import wall_frame  # noqa: E402

METHODS = ("nearest_slice", "logodds", "shape_prior_alone", "wall_linear", "wall_sdf", "wall_sdf+prior",
           "diagnostic_held_out_wall", "diagnostic_lower_only", "diagnostic_upper_only")


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -50.0, 50.0)))


def _logit(probability: np.ndarray) -> np.ndarray:
    p = np.clip(probability, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _share(flag: np.ndarray, among: np.ndarray) -> float | None:
    """The share of ``among`` nodes with ``flag`` set; None when there are none."""
    return float(np.mean(flag[among])) if among.any() else None


def _read_map(layer, values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear reading of a full-slice array at LPS points lying on the slice's plane."""
    index = layer.lps_to_index(points)
    return ndimage.map_coordinates(values, [index[:, 1], index[:, 0]], order=1, mode="nearest")


def _read_prior_map(prior, k: int, points: np.ndarray) -> np.ndarray:
    """The shape prior's stored (cropped) signed distance map of slice ``k`` read at LPS points."""
    row = prior.geometry[k]
    to_index = row[:12].reshape(3, 4)
    index = points @ to_index[:, :3].T + to_index[:, 3]
    i0, j0 = row[12:14]
    return ndimage.map_coordinates(prior.maps[k].astype(np.float64), [index[:, 1] - j0, index[:, 0] - i0],
                                   order=1, mode="nearest")


def wall_fields(targets: list, filled: list, prior, points: np.ndarray, held=None) -> dict[str, np.ndarray]:
    """``wall_linear``, ``wall_sdf`` and the one-neighbour diagnostics at ``points`` (module docstring); with
    ``held`` (the held-out slice's targets) also ``diagnostic_held_out_wall``: ``wall_sdf`` with each
    node's (theta, tau) taken from the held-out slice's own wall instead of the interpolated one."""
    frame = wall_frame(targets)
    if frame is None:
        raise CardioScarError("no wall frame: the training slices are not one stack with myocardial rings")
    lower, upper, weight, theta, tau = frame.coordinates(points)
    fields = _read_wall(frame, (lower, upper, weight, theta, tau), targets, filled, prior)
    for name, only in (("diagnostic_lower_only", 0.0), ("diagnostic_upper_only", 1.0)):
        fields[name] = _read_wall(frame, (lower, upper, np.full_like(weight, only), theta, tau),
                                  targets, filled, prior)["wall_sdf"]
    if held is not None:
        full = wall_frame(list(targets) + [held])
        if full is not None:
            on_plane = points - np.outer(points @ full.normal - full.heights[-1], full.normal)
            _, _, _, held_theta, held_tau = full.coordinates(on_plane)
            fields["diagnostic_held_out_wall"] = _read_wall(frame, (lower, upper, weight, held_theta, held_tau),
                                                            targets, filled, prior)["wall_sdf"]
    return fields


def _read_wall(frame, coordinates: tuple, targets: list, filled: list, prior) -> dict[str, np.ndarray]:
    """The two neighbours' maps read at the nodes' wall coordinates and interpolated linearly."""
    lower, upper, weight, theta, tau = coordinates
    linear = np.zeros(len(theta))
    distance = np.zeros(len(theta))
    gaps = np.abs(frame.heights[upper] - frame.heights[lower])
    for k in range(len(targets)):
        for chosen, index, share in ((lower == k, lower, 1 - weight), (upper == k, upper, weight)):
            if chosen.any():
                placed = frame.place(index[chosen], theta[chosen], tau[chosen])
                linear[chosen] += share[chosen] * _read_map(filled[k], np.asarray(filled[k].values, float), placed)
                distance[chosen] += share[chosen] * _read_prior_map(prior, k, placed)
    if math.isfinite(prior.bulge_radius_mm):  # a b / (2 R) with a = w gap, b = (1 - w) gap
        distance -= weight * (1 - weight) * gaps ** 2 / (2.0 * prior.bulge_radius_mm)
    sdf_logit = prior.clip_logit * np.tanh(-distance / (prior.alpha_mm * prior.clip_logit))
    return {"wall_linear": linear, "wall_sdf": _sigmoid(sdf_logit)}


def run_case(case_dir: Path) -> dict:
    """Prepare one case as ``bench_emidec_loso`` does and score every interpolation on it."""
    start = time.perf_counter()
    prepared = prepare_case(case_dir)
    image = read_labels(case_dir)
    used = [s for s in labelled_slices(sitk.GetArrayViewFromImage(image), MYOCARDIUM_LABELS) if s != prepared.held_out_k]
    label_slices = slices_from_image(image, "z", used, 0.5 * prepared.slice_spacing_mm, label=case_dir.name)
    targets = [myocardium_targets(layer) for layer in label_slices]
    prior = prepared.training.shape_prior
    if prior is None or len(prior.maps) != len(targets):
        raise CardioScarError(f"{case_dir.name}: the shape prior does not hold one map per training slice")
    points = prepared.points[prepared.nodes]
    fields = {name: prepared.yardsticks[name] for name in ("nearest_slice", "logodds")}
    prior_logit = prior.logit(points).astype(np.float64)
    fields["shape_prior_alone"] = _sigmoid(prior_logit)
    held_labels = slices_from_image(image, "z", [prepared.held_out_k], 0.5 * prepared.slice_spacing_mm)[0]
    held = myocardium_targets(held_labels)
    fields.update(wall_fields(targets, yardstick_slices(label_slices), prior, points, held))
    fields["wall_sdf+prior"] = _sigmoid(0.5 * (_logit(fields["wall_sdf"]) + prior_logit))
    truth = prepared.truth
    record = {"case": prepared.case, "held_out_k": prepared.held_out_k, "slice_spacing_mm": prepared.slice_spacing_mm,
              "held_out_nodes": int(truth.size), "held_out_scar_nodes": int(truth.sum()),
              "held_out_has_scar": bool(truth.any())}
    for name in METHODS:
        scores = heldout.held_out_scores(fields[name], truth)
        record[name] = {key: scores[key] for key in ("dice", "best_dice", "best_threshold", "auc", "volume_error")}
    lower_says, upper_says = fields["diagnostic_lower_only"] >= 0.5, fields["diagnostic_upper_only"] >= 0.5
    scar = truth >= 0.5
    record["diagnostic_scar_in_neither"] = _share(~lower_says & ~upper_says, scar)
    record["diagnostic_healthy_scar_in_both"] = _share(lower_says & upper_says, ~scar)
    record["seconds"] = round(time.perf_counter() - start, 2)
    return record


def summarize(records: list[dict]) -> dict:
    """Means per method over the cases with scar on the held-out slice; Dice wins against the prior alone."""
    scored = [r for r in records if r["held_out_has_scar"]]
    means = {m: {key: _mean([r[m][key] for r in scored]) for key in ("dice", "best_dice", "auc")} for m in METHODS}
    return {"summary": True, "cases": len(records), "cases_with_scar": len(scored), "means": means,
            "auc_above_prior_alone": {m: int(sum((r[m]["auc"] or 0) > (r["shape_prior_alone"]["auc"] or 0) for r in scored))
                                      for m in METHODS},
            "mean_auc_better_neighbour": _mean([max(r["diagnostic_lower_only"]["auc"], r["diagnostic_upper_only"]["auc"])
                                                for r in scored if r["diagnostic_lower_only"]["auc"] is not None]),
            "mean_scar_in_neither": _mean([r["diagnostic_scar_in_neither"] for r in scored]),
            "mean_healthy_scar_in_both": _mean([r["diagnostic_healthy_scar_in_both"] for r in scored]),
            "dice_above_prior_alone": {m: int(sum(r[m]["dice"] > r["shape_prior_alone"]["dice"] for r in scored))
                                       for m in METHODS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cases", help="comma-separated case names, e.g. P001,P003 (default: every Case_P*)")
    parser.add_argument("--limit", type=int, help="only the first N cases")
    parser.add_argument("--output", type=Path, help="JSON lines file; cases already in it are skipped")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sitk.ProcessObject_SetGlobalWarningDisplay(False)  # the EMIDEC files' sform warning (the qform is right)
    try:
        cases = case_dirs(args.data, args.cases.split(",") if args.cases else None, args.limit)
        records = _read_records(args.output)
        done = {r["case"] for r in records}
        for case in cases:
            if case.name in done:
                continue
            records.append(run_case(case))
            print(json.dumps(records[-1]), flush=True)
            if args.output is not None:
                _write_records(args.output, records)
    except CardioScarError as exc:
        raise SystemExit(f"error: {exc}") from None
    wanted = {c.name for c in cases}
    summary = summarize([r for r in records if r["case"] in wanted])
    print(json.dumps(summary), flush=True)
    if args.output is not None:
        _write_records(args.output, [r for r in records if r["case"] in wanted] + [summary])


if __name__ == "__main__":
    main()
