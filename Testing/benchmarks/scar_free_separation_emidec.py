"""Can a scar rule's own output tell a scar-free heart from an infarct, without the experts' scar?

On EMIDEC's 23 scar-free (N) cases n-SD calls the bright tail of healthy myocardium scar; this
measures, per rule and per case, statistics of the rule's scar (border zone + core) that use only the
LGE and the myocardium mask, and their ROC AUC for N (positive: flag) against the 52 infarcts (P):

* ``share``: the share of the myocardium called scar;
* ``largest_ml``: the largest connected region of called scar over the stack (8-connected in a
  slice, joined across adjacent slices where pixels overlap), in ml;
* ``largest_of_scar``: that region's share of all called scar (noise is scattered: small);
* ``largest_of_myo``: that region's share of the myocardium.

The warning (:func:`cardioscar.lge.scar_spread.check_scar_spread`) reads one statistic whatever the
rule: the largest region above the remote (darkest sector) + 3 SD, as a share of the myocardium;
its AUC and counts at the library's cut are printed last.

A flag is "statistic below its cut"; the cut printed is the one maximising Youden's J (flagged N
minus flagged P), with the false alarms (P flagged) and misses (N not flagged) at it.

    PYTHONPATH=CardioScarLib python Testing/benchmarks/scar_free_separation_emidec.py [EMIDEC_ROOT] [OUT.jsonl]
"""

import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.lge import apply_rule
from cardioscar.lge.scar_spread import SCATTERED_BELOW, enhanced_pixels, largest_region_pixels, scar_spread

# rule, thresholds (None: the defaults), intensity offset (EMIDEC stores zero signal at 2048; FWHM needs it removed)
RULE_RUNS = [("nsd", (2.0, 3.0), 0.0), ("nsd", (3.0, 4.0), 0.0), ("nsd", (5.0, 6.0), 0.0), ("fwhm", None, 2048.0),
             ("psi", None, 0.0)]
STATISTICS = ["share", "largest_ml", "largest_of_scar", "largest_of_myo"]


def auc(flagged_scores: list[float], other_scores: list[float]) -> float:
    """Probability that an N case's statistic is below a P case's (ties count half)."""
    n, p = np.asarray(flagged_scores)[:, None], np.asarray(other_scores)[None, :]
    return float(((n < p) + 0.5 * (n == p)).mean())


def best_cut(n_scores: list[float], p_scores: list[float]) -> tuple[float, int, int]:
    """The cut (flag: below it) maximising flagged N minus flagged P; its false alarms and misses."""
    best = (-1, 0.0, 0, 0)
    for cut in sorted(set(n_scores) | set(p_scores)):
        cut = float(np.nextafter(cut, np.inf))
        hits, alarms = sum(s < cut for s in n_scores), sum(s < cut for s in p_scores)
        if hits - alarms > best[0]:
            best = (hits - alarms, cut, alarms, len(n_scores) - hits)
    return best[1], best[2], best[3]


def main(root: Path, out: Path | None) -> None:
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    cases = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("Case_"))
    rows = []
    for case in cases:
        lge = sitk.ReadImage(str(case / "Images" / f"{case.name}.nii.gz"))
        image = sitk.GetArrayFromImage(lge)
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "Contours" / f"{case.name}.nii.gz")))
        myocardium = list(np.isin(labels, [2, 3, 4]))
        pixel_ml = float(np.prod(lge.GetSpacing())) / 1000.0
        myocardial = int(np.isin(labels, [2, 3, 4]).sum())
        largest, _ = largest_region_pixels(enhanced_pixels(list(image), myocardium))
        rows.append({"case": case.name, "scar_free": case.name.startswith("Case_N"), "rule": "warning",
                     "thresholds": [], "largest_of_myo": largest / myocardial, "largest_ml": largest * pixel_ml})
        for rule, thresholds, offset in RULE_RUNS:
            result = apply_rule(rule, list(image), myocardium, thresholds=thresholds, intensity_offset=offset)
            spread = scar_spread(result.grades, pixel_ml)
            rows.append({"case": case.name, "scar_free": case.name.startswith("Case_N"), "rule": rule,
                         "thresholds": [result.border, result.core], **spread})
    if out is not None:
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    n_cases = sum(1 for c in cases if c.name.startswith("Case_N"))
    print(f"EMIDEC: {n_cases} scar-free (N), {len(cases) - n_cases} infarct (P) cases; flag = statistic below the cut")
    print("rule thresholds | statistic | AUC (N below P) | cut | false alarms (P flagged) | misses (N not flagged) "
          "| N median [range] | P median [range]")
    for rule, thresholds, _offset in RULE_RUNS:
        runs = [r for r in rows if r["rule"] == rule and (thresholds is None or tuple(r["thresholds"]) == thresholds)]
        for statistic in STATISTICS:
            n_scores = [r[statistic] for r in runs if r["scar_free"]]
            p_scores = [r[statistic] for r in runs if not r["scar_free"]]
            cut, alarms, misses = best_cut(n_scores, p_scores)
            print(f"{rule} {runs[0]['thresholds'][0]:g},{runs[0]['thresholds'][1]:g} | {statistic} | "
                  f"{auc(n_scores, p_scores):.3f} | {cut:.4g} | {alarms}/{len(p_scores)} | {misses}/{len(n_scores)} | "
                  f"{np.median(n_scores):.3g} [{min(n_scores):.3g}-{max(n_scores):.3g}] | "
                  f"{np.median(p_scores):.3g} [{min(p_scores):.3g}-{max(p_scores):.3g}]")
    warned = [r for r in rows if r["rule"] == "warning"]
    n_scores = [r["largest_of_myo"] for r in warned if r["scar_free"]]
    p_scores = [r["largest_of_myo"] for r in warned if not r["scar_free"]]
    print(f"The warning (largest region above remote + 3 SD, share of the myocardium, any rule): AUC "
          f"{auc(n_scores, p_scores):.3f}; at its cut {SCATTERED_BELOW:g}: {sum(s < SCATTERED_BELOW for s in n_scores)}"
          f"/{len(n_scores)} scar-free warned, {sum(s < SCATTERED_BELOW for s in p_scores)}/{len(p_scores)} infarcts "
          f"warned ({', '.join(r['case'] for r in warned if not r['scar_free'] and r['largest_of_myo'] < SCATTERED_BELOW)});"
          f" scar-free not warned: {', '.join(r['case'] for r in warned if r['scar_free'] and r['largest_of_myo'] >= SCATTERED_BELOW)}")


if __name__ == "__main__":
    here = Path(__file__).resolve()
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else here.parents[2] / ".." / "shared" / "data" / "emidec",
         Path(sys.argv[2]) if len(sys.argv) > 2 else None)
