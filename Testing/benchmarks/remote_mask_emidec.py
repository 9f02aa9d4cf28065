"""Can n-SD tell a remote mask that holds the scar from one drawn on healthy myocardium?

Round 15 of the bad-input review gave ``prepare --scar-rule nsd --remote-mask`` the whole myocardium
(the scar inside it): the remote's mean and SD then come from the enhancement itself and the scar
shrinks, with only the scar-free warning (whose advice now names the remote mask). Before refusing
such a mask this measures, on EMIDEC's 52 infarct (P) cases, per slice holding myocardium, the
user's remote against the darkest of the rule's sectors of the same slice (what n-SD uses without a
mask), for two remotes:

* ``healthy``: the experts' healthy myocardium (label 2), the most generous right remote;
* ``with_scar``: the whole myocardium (2, 3, 4), the remote mask over the scar.

Statistics per case (median over its slices, and pooled): ``sd_ratio`` the remote's SD over the
darkest sector's; ``mean_shift`` the remote's mean above the darkest sector's, in the sector's SDs;
``over_5sd`` the share (%) of the remote's pixels above the sector's mean + 5 SD. A refusal needs a
cut that passes every ``healthy`` case and stops most ``with_scar`` ones; the ranges printed show
whether one exists.

    PYTHONPATH=CardioScarLib python Testing/benchmarks/remote_mask_emidec.py [EMIDEC_ROOT] [OUT.jsonl]
"""

import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.lge.rules import darkest_sector

REMOTES = {"healthy": (2,), "with_scar": (2, 3, 4)}
MIN_MYOCARDIUM = 50  # pixels of a slice's myocardium to read it


def case_statistics(image: np.ndarray, labels: np.ndarray, remote_labels: tuple[int, ...]) -> dict:
    ratios, shifts, over, pixels = [], [], 0, 0
    for values, labelled in zip(image, labels):
        myocardium = np.isin(labelled, (2, 3, 4))
        remote = np.isin(labelled, remote_labels) & myocardium
        if myocardium.sum() < MIN_MYOCARDIUM or remote.sum() < 5:
            continue
        sector, _ = darkest_sector(values, myocardium)
        reference, own = values[sector], values[remote]
        ratios.append(own.std() / reference.std())
        shifts.append((own.mean() - reference.mean()) / reference.std())
        over += int((own > reference.mean() + 5 * reference.std()).sum())
        pixels += int(remote.sum())
    return {"sd_ratio": float(np.median(ratios)), "mean_shift": float(np.median(shifts)),
            "over_5sd": 100.0 * over / max(pixels, 1)}


def main(root: Path, out: Path | None) -> None:
    rows = []
    for labels_path in sorted(root.glob("Case_P*/Contours/*.nii.gz")):
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(labels_path)))
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(labels_path).replace("Contours", "Images"))).astype(float)
        for name, remote_labels in REMOTES.items():
            rows.append({"case": labels_path.parent.parent.name, "remote": name,
                         **case_statistics(image, labels, remote_labels)})
    for statistic in ("sd_ratio", "mean_shift", "over_5sd"):
        for name in REMOTES:
            values = np.array([r[statistic] for r in rows if r["remote"] == name])
            print(f"{statistic:10s} {name:9s} n={len(values)}  min {values.min():.2f}  median "
                  f"{np.median(values):.2f}  max {values.max():.2f}")
        healthy_max = max(r[statistic] for r in rows if r["remote"] == "healthy")
        stopped = sum(r[statistic] > healthy_max for r in rows if r["remote"] == "with_scar")
        print(f"{statistic:10s} above every healthy remote's value ({healthy_max:.2f}): {stopped} of "
              f"{sum(r['remote'] == 'with_scar' for r in rows)} remotes with the scar")
    write_rows(rows, out)


def write_rows(rows: list[dict], out: Path | None) -> None:
    """The per-case rows as JSON lines (``results/``), when an output file was given."""
    if out is not None:
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))


def emidec_arguments() -> tuple[Path, Path | None]:
    """EMIDEC's folder (default: the shared data beside the checkout) and the optional output file."""
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "shared" / "data" / "emidec"
    return root, Path(sys.argv[2]) if len(sys.argv) > 2 else None


if __name__ == "__main__":
    main(*emidec_arguments())
