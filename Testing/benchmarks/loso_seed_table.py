"""Issue 18's leave-one-slice-out bar over several training seeds: one ``bench_robust.py --loso``
result file per training seed, one table.

Why: the bar (a held-out slice reconstructed at least as well as by the nearest-slice copy and the
LogOdds baseline, in Dice at 0.5 and AUC, on the mean over cases, at 10 and 13 mm) is judged on a
handful of cases per spacing, and one case's training run can swing the mean (a fit that diverged
and was kept, say). This script reads the same cases run with different training seeds
(``bench_robust.py --loso --train-seed T``, one file each) and prints, per spacing and per run, the
mean Dice at 0.5 and AUC of the reconstruction beside the two baselines' (which need no training,
so they are the same in every run) and whether the bar holds; spacings outside the bar's (biv-me's
17.7 mm planes) are printed and marked so. No training: it only reads the files.

Usage: python Testing/benchmarks/loso_seed_table.py RUN0.jsonl RUN1.jsonl [...]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

BAR_GAPS_MM = (10.0, 13.0)
BASELINES = ("nearest_slice", "logodds")


def read_run(path: Path) -> dict[float, list[dict]]:
    """A run's leave-one-slice-out rows grouped by slice spacing (mm)."""
    by_gap: dict[float, list[dict]] = defaultdict(list)
    for line in path.read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("loso"):
            by_gap[float(row["gap_mm"])].append(row)
    return by_gap


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([row[key] for row in rows]))


def summary(gap: float, run: int, rows: list[dict]) -> tuple[str, bool]:
    """One Markdown row for a spacing in a run, and whether the bar holds there."""
    dice, auc = _mean(rows, "dice"), _mean(rows, "auc")
    baselines = {name: (_mean(rows, f"{name}_dice"), _mean(rows, f"{name}_auc")) for name in BASELINES}
    held = all(dice >= b_dice and auc >= b_auc for b_dice, b_auc in baselines.values())
    in_bar = gap in BAR_GAPS_MM
    verdict = ("met" if held else "**not met**") if in_bar else "outside the bar's spacings"
    cells = [f"{gap:g}", str(run), str(len(rows)), f"{dice:.3f} / {auc:.3f}"]
    cells += [f"{b_dice:.3f} / {b_auc:.3f}" for b_dice, b_auc in baselines.values()]
    worst = min(rows, key=lambda row: row["auc"])
    cells += [f"{worst['case']} {worst['auc']:.3f}", verdict]
    return "| " + " | ".join(cells) + " |", held or not in_bar


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="bench_robust.py --loso output, one per training seed")
    args = parser.parse_args(argv)
    runs = [read_run(path) for path in args.runs]
    gaps = sorted({gap for run in runs for gap in run})
    print("| gap mm | run | cases | reconstruction Dice@0.5 / AUC | nearest slice | LogOdds | lowest AUC | bar |")
    print("| ---: | ---: | ---: | --- | --- | --- | --- | --- |")
    held_everywhere = True
    for gap in gaps:
        for k, run in enumerate(runs):
            if gap in run:
                line, held = summary(gap, k, run[gap])
                held_everywhere &= held
                print(line)
    print(f"\nbar held on every run at {', '.join(f'{g:g}' for g in BAR_GAPS_MM)} mm: {held_everywhere}")


if __name__ == "__main__":
    main()
