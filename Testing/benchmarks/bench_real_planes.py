"""What the long-axis views add: Dice on the real biv-me geometry, short-axis planes alone vs
short- and long-axis planes together.

The case is real scanner geometry with a painted truth: the biv-me patient's fitted LV
endocardial and epicardial surfaces (4k nodes, LPS mm) and its real DICOM planes (six oblique
short-axis planes 17.7 mm apart; 4-chamber, 2-chamber and RV outflow views), each read where
its file says it was acquired. A ball of scar is centred on an endocardial node halfway between
two short-axis planes (where the stack sees least of it), at four positions around the
ventricle; each plane's pixels get the ball's indicator at their centres. For each scar and
seed the fast preset is trained on the short-axis planes alone and on all planes, predicted on
every node (10 MC samples) and scored against the ball. The nearest-slice baseline (short-axis
planes) is printed for scale; ``--documented`` also trains the documented defaults
(``TrainingConfig()``) once per scar and plane set, with the first seed.

Prints one JSON line per (scar, planes, seed) and a summary line per plane set.

Usage: PYTHONPATH=CardioScarLib python Testing/benchmarks/bench_real_planes.py
       [--data ../shared/data/bivme_patient1] [--seeds 0,1,2] [--radius-mm 12] [--padding-mm 3] [--documented]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import vtk

from cardioscar.evaluate import metrics
from cardioscar.evaluate.baselines import nearest_slice_baseline
from cardioscar.logic import predict_on_points, prepare_from_slices, train_scar_model
from cardioscar.io.meshio import Mesh, read_mesh
from cardioscar.prepare.slices import SliceLayer, slices_from_path
from cardioscar.fit.training import TrainingConfig

SHORT_AXIS = ("Se11", "Se1", "Se2", "Se3", "Se4", "Se5")
LONG_AXIS = ("Se6", "Se7", "Se8", "Se9", "Se10")
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "bivme_patient1"


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


def load_case(data: Path, padding_mm: float) -> tuple[np.ndarray, np.ndarray, dict[str, SliceLayer]]:
    """(mesh nodes, endocardial nodes, the real planes by series name), all in LPS mm."""
    surfaces = vtk.vtkAppendPolyData()
    for name in ("LV_ENDOCARDIAL", "EPICARDIAL"):
        surfaces.AddInputData(read_mesh(data / "fitted_model_frame000" / f"patient1_{name}_000.vtk").dataset)
    surfaces.Update()
    points = Mesh(surfaces.GetOutput(), "LPS").points_lps()
    endocardium = read_mesh(data / "fitted_model_frame000" / "patient1_LV_ENDOCARDIAL_000.vtk").points_lps()
    planes = {name: slices_from_path(data / "dicom_ED" / name, half_thickness=padding_mm)[0]
              for name in SHORT_AXIS + LONG_AXIS}
    return points, endocardium, planes


def scar_centres(endocardium: np.ndarray, planes: dict[str, SliceLayer]) -> dict[str, np.ndarray]:
    """Endocardial nodes halfway between two short-axis planes, at the extremes of the stack's
    two in-plane axes (four positions around the ventricle)."""
    normal = planes["Se3"].normal
    heights = sorted(float(np.dot(planes[name].origin, normal)) for name in SHORT_AXIS)
    middle = 0.5 * (heights[2] + heights[3])
    band = endocardium[np.abs(endocardium @ normal - middle) < 2.0]
    axis_i, axis_j = planes["Se3"].axis_i, planes["Se3"].axis_j
    return {"+i": band[np.argmax(band @ axis_i)], "-i": band[np.argmin(band @ axis_i)],
            "+j": band[np.argmax(band @ axis_j)], "-j": band[np.argmin(band @ axis_j)]}


def painted(plane: SliceLayer, centre: np.ndarray, radius_mm: float) -> SliceLayer:
    inside = np.linalg.norm(plane.pixel_centres_lps() - centre, axis=-1) <= radius_mm
    return dataclasses.replace(plane, values=inside.reshape(plane.values.shape).astype(np.float64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--radius-mm", type=float, default=12.0)
    parser.add_argument("--padding-mm", type=float, default=3.0)
    parser.add_argument("--documented", action="store_true", help="also train the documented defaults once per case")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]

    points, endocardium, planes = load_case(args.data, args.padding_mm)
    plane_sets = {"short_axis": SHORT_AXIS, "short_and_long_axis": SHORT_AXIS + LONG_AXIS}
    presets = {"fast": TrainingConfig.fast()} | ({"documented": TrainingConfig()} if args.documented else {})
    dices: dict[tuple[str, str], list[float]] = {(name, preset): [] for name in plane_sets for preset in presets}
    baseline_dices = []
    for where, centre in scar_centres(endocardium, planes).items():
        truth = (np.linalg.norm(points - centre, axis=1) <= args.radius_mm).astype(np.float64)
        layers = {name: painted(plane, centre, args.radius_mm) for name, plane in planes.items()}
        baseline = nearest_slice_baseline(points, [layers[name] for name in SHORT_AXIS])
        baseline_dices.append(metrics.dice(baseline, truth))
        for set_name, names in plane_sets.items():
            rows = prepare_from_slices(points, [layers[name] for name in names])
            runs = [(name, seed) for name in presets for seed in (seeds if name == "fast" else seeds[:1])]
            for preset, seed in runs:
                start = time.perf_counter()
                checkpoint = train_scar_model(rows, dataclasses.replace(presets[preset], seed=seed))
                seconds = time.perf_counter() - start
                prediction = predict_on_points(checkpoint, points, seed=seed).mean_predictions
                scores = metrics.evaluate_fields(prediction, truth)
                dices[(set_name, preset)].append(scores["dice"])
                emit(scar=where, planes=set_name, preset=preset, seed=seed, nodes=len(points), scar_nodes=int(truth.sum()),
                     groups=rows.n_groups, covered_nodes=rows.n_covered_nodes, dice=round(scores["dice"], 3),
                     auc=None if scores["auc"] is None else round(scores["auc"], 3), train_s=round(seconds, 1),
                     epochs=checkpoint["history"]["epochs_run"],
                     retried=checkpoint["history"].get("retried_max_lr") is not None,
                     nearest_slice_dice=round(baseline_dices[-1], 3))
    for (set_name, preset), values in dices.items():
        emit(summary=set_name, preset=preset, runs=len(values), dice_mean=round(float(np.mean(values)), 3),
             dice_min=round(float(np.min(values)), 3), dice_max=round(float(np.max(values)), 3),
             nearest_slice_short_axis_dice_mean=round(float(np.mean(baseline_dices)), 3))


if __name__ == "__main__":
    main()
