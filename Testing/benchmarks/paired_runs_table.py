"""Two benchmark result files of the same cases, side by side: a change against the run it is weighed on.

Why: a change to training is adopted on the same cases, seed and machine as the run before it, case by
case (a mean can hide the case that fell). Reads JSON lines of ``bench_robust.py``,
``bench_emidec_loso.py`` or ``outside_review.py`` (its ``fast`` figures; a case's ``+FIELD=VALUE``
suffix from ``--set`` is dropped so it pairs with the plain case), keeps the cases present in both
(EMIDEC: with ``--only-scar``, those with scar on the held-out slice) and prints per case Dice at 0.5,
AUC and volume error of each run and the change in Dice and AUC, then the means and how many cases
rose or fell by more than ``--tie`` in Dice. No training: it only reads the files.

Usage: python Testing/benchmarks/paired_runs_table.py BEFORE.jsonl AFTER.jsonl [--only-scar] [--tie 0.005]
       [--cases a,b]   (only these cases, by name as printed)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def figures(row: dict) -> dict:
    """Dice at 0.5, AUC and volume error (a fraction) of one record, whichever benchmark wrote it."""
    if isinstance(row.get("fast"), dict):  # outside_review.py: the reconstruction's figures, volume in %
        fast = row["fast"]
        return {"dice": fast["dice"], "auc": fast["auc"], "volume": fast["volume_error_pct"] / 100.0}
    return {"dice": row["dice"], "auc": row["auc"], "volume": row.get("volume_error")}


def read(path: Path, only_scar: bool) -> dict[str, dict]:
    """The file's case records by case name (summary lines, and without held-out scar if asked, left out)."""
    rows = {}
    for line in path.read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if "case" not in row or (only_scar and row.get("held_out_has_scar") is False) \
                or (row.get("dice") is None and not isinstance(row.get("fast"), dict)):
            continue
        name = row["case"].split("+")[0]
        if row.get("loso"):  # bench_robust.py --loso: one case per spacing
            name = f"{name} {row['gap_mm']:g} mm"
        rows[name] = figures(row)
    return rows


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(before: dict[str, dict], after: dict[str, dict], tie: float) -> list[str]:
    """Markdown lines: per case, then the means and the count of cases up and down."""
    cases = [case for case in before if case in after]
    lines = ["| case | Dice@0.5 before / after | AUC before / after | volume error before / after | Dice change | AUC change |",
             "| --- | --- | --- | --- | ---: | ---: |"]
    for case in cases:
        b, a = before[case], after[case]
        volume = " / ".join("-" if v is None else f"{100 * v:+.1f} %" for v in (b["volume"], a["volume"]))
        lines.append(f"| {case} | {_f(b['dice'])} / {_f(a['dice'])} | {_f(b['auc'])} / {_f(a['auc'])} | {volume} "
                     f"| {a['dice'] - b['dice']:+.3f} | {a['auc'] - b['auc']:+.3f} |")
    change = np.array([after[c]["dice"] - before[c]["dice"] for c in cases])
    mean = {key: (np.mean([before[c][key] for c in cases]), np.mean([after[c][key] for c in cases]))
            for key in ("dice", "auc")}
    lines.append(f"\n{len(cases)} cases: mean Dice@0.5 {_f(mean['dice'][0])} -> {_f(mean['dice'][1])}, "
                 f"mean AUC {_f(mean['auc'][0])} -> {_f(mean['auc'][1])}; Dice up on {int((change > tie).sum())}, "
                 f"down on {int((change < -tie).sum())}, within {tie} on {int((np.abs(change) <= tie).sum())}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--only-scar", action="store_true", help="EMIDEC: only cases with scar on the held-out slice")
    parser.add_argument("--tie", type=float, default=0.005, help="a Dice change within this counts as even")
    parser.add_argument("--cases", default="", help="comma-separated case names to keep (as printed)")
    args = parser.parse_args()
    before, after = read(args.before, args.only_scar), read(args.after, args.only_scar)
    if args.cases:
        wanted = set(args.cases.split(","))
        before = {case: row for case, row in before.items() if case in wanted}
    print("\n".join(table(before, after, args.tie)))


if __name__ == "__main__":
    main()
