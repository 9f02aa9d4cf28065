"""Can n-SD's gross under-calls be told from the image alone, before the experts' labels are read?

On EMIDEC P001 n-SD (2,3) called 31.5 ml of scar on the mesh (32.6 ml of pixels here) where the
experts label 103.5 ml: its slices are scarred nearly all round, so the darkest sector, n-SD's
remote (healthy reference), is itself scar, and little stands 2 SD above it. This study runs n-SD
with its defaults on every EMIDEC case (52 infarct, 23 normal), myocardium = labels 2-4, blood pool
= label 1, and computes per case signals that read only the LGE, the myocardium and the blood pool
(never the expert scar), per slice (the blood-pool ones on slices with at least 5 blood-pool pixels
outside the myocardium), then over the stack:

* ``blood_gap_sd``: (blood-pool mean - remote mean) / blood-pool SD, median over slices (an enhanced
  remote approaches the bright blood: small);
* ``blood_gap_min``: the same, its smallest slice;
* ``remote_over_low``: (remote mean - the myocardium's 10th percentile) / remote SD, median over the
  slices (a remote of scar sits above the myocardium's dark tail: large);
* ``remote_spread``: (largest - smallest slice's remote mean) / median remote SD (large);
* ``bimodality``: Sarle's bimodality coefficient of the stack's myocardial intensities, each slice
  centred and scaled by its own median and IQR (over 0.555: bimodal; small: one tissue);
* ``remote_above_median``: the share of slices whose remote mean lies above the stack's median
  myocardial intensity (large);
* ``remote_of_blood``: (remote mean - air) / (blood-pool mean - air), median over slices, where air is
  the stack's commonest value (:func:`cardioscar.lge.rules.background_level`: zero signal, 2048 on
  EMIDEC's PSIR): the remote's signal as a share of the blood's (nulled healthy myocardium: near 0;
  a remote of scar: near 1);
* ``remote_of_blood_max``: the same, its largest slice.

An under-call is an infarct case where n-SD's scar (border zone + core) is under half the experts'
(labels 3-4); the others are the well-called infarcts and the normal cases (false alarms there).
The summary is printed twice: for those, and for the wider set that also counts an infarct case
with a Dice under 0.3 (on EMIDEC those are small infarcts that n-SD over-calls, another failure).
Per signal: the area under the ROC curve (under-calls against the rest, flagged on the side named);
the cut (flag at or beyond it) maximising hits minus false alarms; the cut that catches every
under-call, with its false alarms (k of K, named); and, since that cut is fitted on the under-calls
themselves, how many of them a cut fitted on the others alone would catch (leave one out).

Each row also gives the burden with the darkest sector sought outside the experts' scar
(``rule_ml_healthy_remote``, ``--expert-scar-labels``' search): what a remote drawn on healthy
myocardium gives; the signals never read it.

    PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/nsd_remote_check.py \\
        [../shared/data/emidec] [Testing/benchmarks/results/nsd_remote_check.jsonl]
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lge_rules_emidec import emidec_cases, read_case  # noqa: E402

from cardioscar.lge import apply_rule  # noqa: E402
from cardioscar.lge.rules import BORDER, MIN_REFERENCE_PIXELS, background_level  # noqa: E402

#: signal -> the side that flags an under-call ("low": at or below the cut, "high": at or above it)
SIGNALS = {"blood_gap_sd": "low", "blood_gap_min": "low", "remote_over_low": "high", "remote_spread": "high",
           "bimodality": "low", "remote_above_median": "high", "remote_of_blood": "high",
           "remote_of_blood_max": "high"}


def sarle(values: np.ndarray) -> float:
    """Sarle's bimodality coefficient (skewness^2 + 1) / (excess kurtosis + 3 (n-1)^2 / ((n-2)(n-3)))."""
    n = values.size
    z = (values - values.mean()) / values.std()
    skew, kurt = float((z ** 3).mean()), float((z ** 4).mean()) - 3.0
    return (skew ** 2 + 1) / (kurt + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def case_signals(image: np.ndarray, myocardium: np.ndarray, blood: np.ndarray, statistics: list[dict]) -> dict:
    """The signals of one stack from n-SD's per-slice remote statistics, the image and the two masks."""
    gaps, over_low, remote_means, remote_sds, scaled, of_blood = [], [], [], [], [], []
    air = background_level(list(image))
    stack_median = float(np.median(image[myocardium]))
    for k, record in enumerate(statistics):
        if "remote_mean" not in record:
            continue
        inside = image[k][myocardium[k]].astype(np.float64)
        remote_means.append(record["remote_mean"])
        remote_sds.append(record["remote_sd"])
        over_low.append((record["remote_mean"] - np.percentile(inside, 10)) / record["remote_sd"])
        low, mid, high = np.percentile(inside, [25, 50, 75])
        scaled.append((inside - mid) / max(high - low, 1e-9))
        pool = image[k][blood[k] & ~myocardium[k]].astype(np.float64)
        if pool.size >= MIN_REFERENCE_PIXELS and pool.std() > 0:
            gaps.append((pool.mean() - record["remote_mean"]) / pool.std())
            of_blood.append((record["remote_mean"] - air) / (pool.mean() - air))
    return {"blood_gap_sd": float(np.median(gaps)) if gaps else None,
            "blood_gap_min": float(np.min(gaps)) if gaps else None,
            "remote_over_low": float(np.median(over_low)),
            "remote_spread": float((max(remote_means) - min(remote_means)) / np.median(remote_sds)),
            "bimodality": sarle(np.concatenate(scaled)),
            "remote_above_median": float(np.mean([m > stack_median for m in remote_means])),
            "remote_of_blood": float(np.median(of_blood)) if of_blood else None,
            "remote_of_blood_max": float(np.max(of_blood)) if of_blood else None}


def flagged(value: float, cut: float, side: str) -> bool:
    """Whether ``value`` is at or beyond ``cut`` on the flagging ``side``."""
    return value <= cut if side == "low" else value >= cut


def catch_all(values: list[float], side: str) -> float:
    """The loosest cut that flags every one of ``values``."""
    return max(values) if side == "low" else min(values)


def summarise(rows: list[dict], key: str, what: str) -> None:
    """Per signal: AUC, the best cut (hits - false alarms), the cut catching every case with ``key`` and
    its leave-one-out hits."""
    under = [r for r in rows if r[key]]
    rest = [r for r in rows if not r[key]]
    print(f"n-SD 2,3 {what}: {len(under)} of {sum(r['infarct'] for r in rows)} infarct cases: "
          f"{', '.join(r['case'] for r in under)}; false alarms counted on the other {len(rest)} "
          f"({sum(r['infarct'] for r in rest)} well-called infarct, {sum(not r['infarct'] for r in rest)} normal)")
    print("signal | AUC | best cut: hits, false alarms | cut catching all: false alarms (named) | leave-one-out hits "
          "| under-calls' values | rest median [range]")
    for name, side in SIGNALS.items():
        hit = [r[name] for r in under if r[name] is not None]
        other = [r[name] for r in rest if r[name] is not None]
        sign, beyond = (-1.0, "<=") if side == "low" else (1.0, ">=")
        h, o = np.asarray(hit)[:, None] * sign, np.asarray(other)[None, :] * sign
        auc = float(((h > o) + 0.5 * (h == o)).mean())
        best = "none flags more under-calls than others"
        margin = 0
        for cut in sorted(set(hit) | set(other)):
            hits, alarms = sum(flagged(v, cut, side) for v in hit), sum(flagged(v, cut, side) for v in other)
            if hits - alarms > margin:
                margin, best = hits - alarms, f"{beyond} {cut:.3g}: {hits}/{len(hit)}, {alarms}/{len(other)}"
        cut = catch_all(hit, side)
        alarms = [r["case"][5:] for r in rest if r[name] is not None and flagged(r[name], cut, side)]
        held_out = sum(flagged(v, catch_all(hit[:i] + hit[i + 1:], side), side) for i, v in enumerate(hit)) \
            if len(hit) > 1 else 0
        print(f"{name} ({side}) | {auc:.3f} | {best} | {beyond} {cut:.3g}: "
              f"{len(alarms)}/{len(other)} ({', '.join(alarms) if len(alarms) <= 8 else f'{len(alarms)} cases'}) | "
              f"{held_out}/{len(hit)} | {', '.join(f'{v:.3g}' for v in hit)} | "
              f"{np.median(other):.3g} [{min(other):.3g}, {max(other):.3g}]")


def main(root: Path, out: Path | None) -> None:
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    logging.disable(logging.WARNING)  # the rule's own warnings are not what is measured here
    rows = []
    for case in emidec_cases(root):
        image, labels, voxel_ml = read_case(case)
        myocardium, blood, truth = np.isin(labels, [2, 3, 4]), labels == 1, np.isin(labels, [3, 4])
        result = apply_rule("nsd", list(image), list(myocardium), list(blood))
        called = np.stack(result.grades) >= BORDER
        rule_ml, expert_ml = float(called.sum() * voxel_ml), float(truth.sum() * voxel_ml)
        dice = float(2 * (called & truth).sum() / max(called.sum() + truth.sum(), 1))
        infarct = case.name.startswith("Case_P")
        # the remote sought outside the experts' scar (``--expert-scar-labels``' search, as an observer would
        # draw it): what the burden becomes once the remote is healthy; the signals never read it
        healthy = apply_rule("nsd", list(image), list(myocardium), list(blood), healthy=list(labels == 2))
        healthy_ml = float((np.stack(healthy.grades) >= BORDER).sum() * voxel_ml)
        row = {"case": case.name, "infarct": infarct, "myocardium_ml": round(float(myocardium.sum() * voxel_ml), 2),
               "rule_ml": round(rule_ml, 2), "expert_ml": round(expert_ml, 2), "dice": round(dice, 3),
               "rule_ml_healthy_remote": round(healthy_ml, 2),
               "under_call": bool(infarct and rule_ml < 0.5 * expert_ml),
               "under_call_or_low_dice": bool(infarct and (rule_ml < 0.5 * expert_ml or dice < 0.3)),
               **case_signals(image, myocardium, blood, result.statistics)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if out is not None:
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summarise(rows, "under_call", "under-calls (burden < half the experts')")
    summarise(rows, "under_call_or_low_dice", "under-calls or Dice < 0.3")


if __name__ == "__main__":
    default_root = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "emidec"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default_root, Path(sys.argv[2]) if len(sys.argv) > 2 else None)
