"""How ``scar_error_risk``'s border term was chosen (issue 18, item 5), from per-node dumps.

Reads the ``.npz`` files that ``bench_robust.py --dump-dir`` (every node scored: truth on every
node, "between" = outside every slab) and ``bench_emidec_loso.py --dump-dir`` (the held-out slice's
nodes scored against the experts' labels, "between" = those nodes, "on" = the constrained ones)
write, and scores, per case, the ROC AUC for the nodes wrong at 0.5 and whether the mean risk is
higher between the slices than on them: for the margin -|p - 0.5|, the value term alone (the risk
before the border term) and the risk with each (BORDER_SPREAD_MM, BORDER_SPREAD_PER_MM) of a grid.
No training: it re-scores what the benchmarks predicted.

Usage (the dumps of the 8 segmented seeds at 12k nodes, the demo, ACDC and biv-me cases, and 12
EMIDEC cases)::

    PYTHONPATH=CardioScarLib python Testing/benchmarks/bench_robust.py --families segmented,demo,acdc,bivme \\
        --seeds 0-7 --nodes 12000 --dump-dir /tmp/dumps/phantoms
    PYTHONPATH=CardioScarLib python Testing/benchmarks/bench_emidec_loso.py --jobs 2 --dump-dir /tmp/dumps/emidec \\
        --cases P001,P003,P011,P015,P019,P026,P031,P051,P063,P067,P087,P091
    PYTHONPATH=CardioScarLib python Testing/benchmarks/error_risk_study.py /tmp/dumps/phantoms /tmp/dumps/emidec
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

import cardioscar.predict.error_risk as risk_module

SPREADS_MM = (0.5, 1.0, 1.5, 2.0)
GROWTHS = (0.0, 0.1, 0.2, 0.3)


def load(path: Path) -> dict:
    """One dumped case: probability, std, points, constrained points, scored nodes, wrong, on/between."""
    z = dict(np.load(path))
    p = z["p"].astype(np.float64)
    if "held_out" in z:
        scored, truth = z["held_out"], z["held_out_truth"] >= 0.5
        on, between = z["constrained"], np.zeros(len(p), bool)
        between[scored] = True
    else:
        scored, truth = np.arange(len(p)), z["truth"] >= 0.5
        on, between = z["on_slices"], ~z["on_slices"]
    return {"name": path.stem, "p": p, "std": z["std"].astype(np.float64), "points": z["points"],
            "constraints": z["points"][z["constrained"]], "scored": scored,
            "wrong": (p[scored] >= 0.5) != truth, "on": on, "between": between}


def score(case: dict, values: np.ndarray) -> tuple[float, bool]:
    """AUC for the wrong nodes among the scored ones; mean between > mean on."""
    wrong = case["wrong"]
    area = roc_auc_score(wrong, values[case["scored"]]) if 0 < wrong.sum() < len(wrong) else np.nan
    return area, bool(values[case["between"]].mean() > values[case["on"]].mean())


def risk_with(case: dict, spread_mm: float | None, growth: float) -> np.ndarray:
    """The library's risk with the border constants set to these (None: the value term alone)."""
    if spread_mm is None:
        return risk_module.error_risk(case["p"], case["std"])
    saved = risk_module.BORDER_SPREAD_MM, risk_module.BORDER_SPREAD_PER_MM
    risk_module.BORDER_SPREAD_MM, risk_module.BORDER_SPREAD_PER_MM = spread_mm, growth
    try:
        return risk_module.error_risk(case["p"], case["std"], 0.5, case["points"], case["constraints"])
    finally:
        risk_module.BORDER_SPREAD_MM, risk_module.BORDER_SPREAD_PER_MM = saved


def report(title: str, cases: list[dict]) -> None:
    """One line per field: per-case AUCs, their mean, cases at or above the margin, cases higher between."""
    print(f"== {title}: " + " ".join(case["name"] for case in cases))
    margin = [score(case, -np.abs(case["p"] - 0.5)) for case in cases]
    fields = [("margin", None, 0.0), ("value term", None, 0.0)] + [
        (f"border {spread} mm + {growth}/mm", spread, growth) for spread, growth in itertools.product(SPREADS_MM, GROWTHS)]
    for label, spread, growth in fields:
        scored = margin if label == "margin" else [score(case, risk_with(case, spread, growth)) for case in cases]
        areas = np.array([area for area, _ in scored])
        at_least = sum(a >= m - 1e-9 for a, (m, _) in zip(areas, margin) if not np.isnan(a))
        higher = sum(h for _, h in scored)
        print(f"{label:24s} mean {np.nanmean(areas):.4f}  >= margin {at_least}/{len(cases)}  between > on "
              f"{higher}/{len(cases)}  " + " ".join(f"{a:.3f}" for a in areas), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders of dumped .npz cases, one set each")
    for folder in parser.parse_args().folders:
        report(str(folder), [load(path) for path in sorted(folder.glob("*.npz"))])


if __name__ == "__main__":
    main()
