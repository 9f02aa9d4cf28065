"""Issue 18's bars over several training seeds: one benchmark result file per training seed, one table.

Why: every per-case figure in the robustness record is one training run, and the training seed
alone moves a case's Dice at 0.5 by about 0.03 (``accuracy_seed_spread.py``). A bar met or missed
by less than that on one run says little; this script reads the same cases run with different
training seeds (``bench_robust.py --train-seed T`` or ``bench_emidec_loso.py --seed T``, one file
each) and prints, per case, the Dice at 0.5 of each run, its mean and range, the largest gap to the
best-threshold Dice and the range of the volume error; then, per run and over all runs, the mean
Dice and how many cases meet the calibration (gap <= 0.02) and volume (within 3 %) bars.
No training: it only reads the files.

Usage: python Testing/benchmarks/train_seed_table.py RUN0.jsonl RUN1.jsonl [...] [--copy-voxel]
       [--only-scar]   (EMIDEC: only the cases whose held-out slice has scar, as its summary)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

CALIBRATION_GAP = 0.02
VOLUME_ERROR = 0.03


def read_runs(paths: list[Path], only_scar: bool) -> tuple[list[str], list[dict[str, dict]]]:
    """The cases present in every file (in the first file's order) and each file's rows by case;
    summary lines and, with ``only_scar``, cases without scar on the held-out slice are left out."""
    runs = []
    for path in paths:
        rows = {}
        for line in path.read_text().splitlines():
            row = json.loads(line) if line.strip() else {}
            if "case" not in row or (only_scar and row.get("held_out_has_scar") is False):
                continue
            rows[row["case"]] = row
        runs.append(rows)
    cases = [case for case in runs[0] if all(case in rows for rows in runs[1:])]
    return cases, runs


def _f(value: float | None, digits: int = 3) -> str:
    return "--" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def table(cases: list[str], runs: list[dict[str, dict]], copy_voxel: bool) -> list[str]:
    """Markdown lines: one row per case, then the per-run and overall summaries."""
    head = ["case"] + [f"Dice@0.5 run {k}" for k in range(len(runs))] + ["mean", "range", "largest gap", "volume error range"]
    if copy_voxel:
        head.append("copy-voxel")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for case in cases:
        rows = [run[case] for run in runs]
        dice = np.array([row["dice"] for row in rows], dtype=float)
        gaps = np.array([row["best_dice"] - row["dice"] for row in rows], dtype=float)
        volume = np.array([row["volume_error"] for row in rows], dtype=float) * 100.0
        cells = [case] + [_f(d) for d in dice] + [_f(dice.mean()), _f(np.ptp(dice)), _f(gaps.max()),
                                                  f"{volume.min():+.1f} to {volume.max():+.1f} %"]
        if copy_voxel:
            cells.append(_f(rows[0].get("copy_voxel_dice")))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for k, run in enumerate(runs + [None]):
        chosen = [run[case] for case in cases] if run is not None else [r[case] for r in runs for case in cases]
        dice = np.mean([row["dice"] for row in chosen])
        calibrated = sum(row["best_dice"] - row["dice"] <= CALIBRATION_GAP for row in chosen)
        volume = sum(abs(row["volume_error"]) <= VOLUME_ERROR for row in chosen)
        auc = [row["auc"] for row in chosen if row.get("auc") is not None]
        name = f"run {k}" if run is not None else "all runs"
        lines.append(f"- {name}: mean Dice@0.5 {dice:.3f}, mean AUC {_f(np.mean(auc) if auc else None)}, "
                     f"gap <= {CALIBRATION_GAP} on {calibrated} of {len(chosen)}, "
                     f"|volume error| <= {VOLUME_ERROR:.0%} on {volume} of {len(chosen)}{_risk(chosen)}")
    return lines


def _field(row: dict, *names: str) -> float | None:
    """The first of ``names`` the row holds (the phantom and EMIDEC benchmarks name some alike
    figures differently)."""
    return next((row[name] for name in names if row.get(name) is not None), None)


def _risk(rows: list[dict]) -> str:
    """``scar_error_risk``'s ROC AUC for the nodes wrong at 0.5 beside the margin |p-0.5|'s, and how
    often the risk is higher between the slices (held out, on EMIDEC) than on them."""
    pairs = [(_field(r, "risk_auc_wrong", "risk_wrong_auc"), _field(r, "margin_auc_wrong", "margin_wrong_auc")) for r in rows]
    pairs = [(risk, margin) for risk, margin in pairs if risk is not None and margin is not None]
    between = [(_field(r, "risk_between", "risk_held_out"), r.get("risk_on_slices")) for r in rows]
    between = [(b, on) for b, on in between if b is not None and on is not None]
    if not pairs:
        return ""
    risk, margin = np.mean(pairs, axis=0)
    return (f"; risk AUC for wrong nodes {risk:.3f} against the margin's {margin:.3f}, above it on "
            f"{sum(r > m for r, m in pairs)} of {len(pairs)}, higher between the slices on "
            f"{sum(b > on for b, on in between)} of {len(between)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="one JSON-lines result file per training seed")
    parser.add_argument("--copy-voxel", action="store_true", help="add the copy-voxel yardstick's Dice (phantoms)")
    parser.add_argument("--only-scar", action="store_true", help="only cases whose held-out slice has scar (EMIDEC)")
    args = parser.parse_args()
    cases, runs = read_runs(args.runs, args.only_scar)
    if not cases:
        parser.error("no case is present in every file")
    print("\n".join(table(cases, runs, args.copy_voxel)))


if __name__ == "__main__":
    main()
