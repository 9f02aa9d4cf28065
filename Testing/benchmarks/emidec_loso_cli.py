"""The README's leave-one-slice-out recipe, run by the command line on real EMIDEC cases.

For each case: hold out the middle myocardial slice k (as ``bench_emidec_loso.py``), then
``mesh-from-labels --exclude-slices k``, ``prepare --slice-indices`` (the other labelled slices,
slabs of half the spacing), ``train --preset fast``, ``apply``, and ``evaluate --truth-image
--slice-indices k`` at a quarter of the spacing, as the README writes them. The same prediction is
scored by the benchmark's own scoring (:func:`cardioscar.evaluate.heldout.scored_nodes` and
``held_out_scores``): one JSON line per case with both, which must agree (the user's figure is the
benchmark's).

Usage: PYTHONPATH=CardioScarLib python Testing/benchmarks/emidec_loso_cli.py [--cases P085,P001]
       [--data ../shared/data/emidec] [--work DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.cli import main
from cardioscar.evaluate import heldout
from cardioscar.io.meshio import read_mesh
from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, labelled_slices
from cardioscar.prepare.slices import slices_from_image

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "emidec"
LABELS = ["--scar-labels", "3,4", "--myocardium-labels", "2,3,4"]


def run(*args: object) -> str:
    """``cardioscar ARGS`` in this process; its standard output (an error ends the run)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    if code != 0:
        raise SystemExit(f"cardioscar {args[0]} failed ({code})")
    return out.getvalue()


def case_record(labels: Path, work: Path) -> dict:
    """The recipe on one case's label map, and the benchmark's scoring of its prediction."""
    image = sitk.ReadImage(str(labels))
    labelled = labelled_slices(sitk.GetArrayViewFromImage(image), MYOCARDIUM_LABELS)
    k = heldout.middle_slice(labelled)
    spacing = image.GetSpacing()[2]
    start = time.perf_counter()
    run("mesh-from-labels", "--labels", labels, "--myocardium-labels", "2,3,4", "--exclude-slices", k,
        "--output", work / "heart.vtu")
    run("prepare", "--mesh", work / "heart.vtu", "--image", labels, *LABELS, "--slice-indices",
        ",".join(str(s) for s in labelled if s != k), "--slice-thickness-padding", 0.5 * spacing,
        "--output", work / "data.npz")
    run("train", "--training-data", work / "data.npz", "--output", work / "model.pth", "--preset", "fast",
        "--no-progress", "--cpu")
    run("apply", "--model", work / "model.pth", "--mesh", work / "heart.vtu", "--output", work / "scar.vtu", "--cpu")
    scores = json.loads(run("evaluate", "--prediction", work / "scar.vtu", "--truth-image", labels, *LABELS,
                            "--slice-indices", k, "--slice-thickness-padding", 0.25 * spacing))
    seconds = time.perf_counter() - start
    prediction = read_mesh(work / "scar.vtu")
    half = 0.25 * spacing
    nodes, truth = heldout.scored_nodes(prediction.points_lps(), slices_from_image(image, "z", [k], half)[0], half,
                                        MYOCARDIUM_LABELS, (3, 4))
    probability = prediction.point_array("scar_probability")
    bench = heldout.held_out_scores(probability[nodes], truth, prediction.point_array("scar_uncertainty")[nodes])
    return {"case": labels.parent.parent.name, "held_out_k": k, "seconds_recipe": round(seconds, 1),
            "cli": {key: scores[key] for key in ("n_nodes", "dice", "best_dice", "auc", "uncertainty_wrong_auc")},
            "cli_scar_nodes": scores["slices"][0]["scar_nodes"],
            "bench": {"n_nodes": int(nodes.size), **{key: bench[key] for key in ("dice", "best_dice", "auc",
                                                                                 "uncertainty_wrong_auc")}},
            "bench_scar_nodes": int(truth.sum()),
            "agree": bool(nodes.size == scores["n_nodes"] and np.isclose(bench["dice"], scores["dice"])
                          and (bench["auc"] is None or np.isclose(bench["auc"], scores["auc"])))}


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="P085", help="comma-separated EMIDEC cases (default P085)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=None, help="keep the files here (default a temporary folder)")
    args = parser.parse_args()
    for name in args.cases.split(","):
        folder = args.data / (name if name.startswith("Case_") else f"Case_{name}")
        with tempfile.TemporaryDirectory() as scratch:
            work = (args.work or Path(scratch)) / folder.name
            work.mkdir(parents=True, exist_ok=True)
            print(json.dumps(case_record(folder / "Contours" / f"{folder.name}.nii.gz", work)), flush=True)


if __name__ == "__main__":
    main_cli()
