"""Does a label map's scar reach the mesh of its own patient, and another patient's? (round 11)

``prepare --scar-labels`` on a label map trains every pixel, so round 6's "few in-slab nodes on the
myocardium" warning (which needs the myocardium given, NaN outside it) never runs, and another
patient's mesh (EMIDEC's maps all have their origin at 0) meets part of the scar and trains, exit 0.
This measures, for EMIDEC's 52 infarct maps (``--scar-labels 3,4``), two shares of pixels whose
footprint (pixel x slab, the default 5 mm half-width) catches at least one mesh node:
the scar pixels (label 3 or 4) and the myocardium pixels (2, 3, 4); for the map's own
``mesh-from-labels`` mesh at 1.5 mm and at 3 mm (a coarse mesh catches fewer pixels), and for the
meshes of the next three infarct cases (another patient's, 1.5 mm); and the third share the check
uses: scar pixels within a node spacing (in-plane) of a pixel that catches a node, for those and for
the own mesh at 4.5 mm and shifted 3 and 6 mm in-plane (another breath-hold). It prints the range of each
share per kind of mesh and how many pairs fall under the thresholds it is given.

Usage: PYTHONPATH=CardioScarLib python Testing/benchmarks/other_patients_mesh.py [--data ../shared/data] [--cases 52]
(80 s on one core; its output: results/other_patients_mesh.txt)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.errors import CardioScarError
from cardioscar.predict.meshscale import node_spacing
from cardioscar.prepare.mapping import map_slices_to_nodes, scar_near_the_mesh
from cardioscar.prepare.mesh_from_labels import myocardium_mesh_from_labels
from cardioscar.prepare.slices import slices_from_image
from cardioscar.prepare.targets import slice_targets


def shares(points: np.ndarray, labels: sitk.Image) -> tuple[float, float, float]:
    """(scar pixels reached, myocardium pixels reached, scar pixels within a node spacing of a pixel
    reached) of ``labels`` by the nodes ``points``."""
    raw = slices_from_image(labels, half_thickness=5.0)
    targets = slice_targets(raw, [3, 4])
    mapping = map_slices_to_nodes(points, targets, scar_targets=False)  # the shares, not prepare's refusals
    reached = np.zeros(sum(layer.values.size for layer in raw), bool)
    starts = np.cumsum([0] + [layer.values.size for layer in raw])
    cols = np.array([layer.shape[1] for layer in raw])[mapping.group_slice]
    keys = mapping.group_pixel[:, 1] * cols + mapping.group_pixel[:, 0]
    reached[starts[mapping.group_slice] + keys] = True
    cuts = [keys[mapping.group_slice == index] for index in range(len(raw))]  # every pixel has a target: the cut
    near, total = scar_near_the_mesh(targets, cuts, node_spacing(points))
    values = np.concatenate([layer.values.ravel() for layer in raw])
    scar, wall = np.isin(values, [3, 4]), np.isin(values, [2, 3, 4])
    return float(reached[scar].mean()), float(reached[wall].mean()), near / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--cases", type=int, default=52)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    cases = sorted((args.data / "emidec").glob("Case_P*"))[:args.cases]
    maps = {case.name: sitk.ReadImage(str(case / "Contours" / f"{case.name}.nii.gz")) for case in cases}
    meshes = {name: myocardium_mesh_from_labels(image).points_lps() for name, image in maps.items()}
    results: dict[str, list[tuple[float, float, float, str]]] = {"own 1.5 mm": [], "own 3 mm": [], "own 4.5 mm": [],
                                                                 "own shifted 3 mm": [], "own shifted 6 mm": [],
                                                                 "other patient": []}
    names = list(maps)
    for index, name in enumerate(names):
        results["own 1.5 mm"].append((*shares(meshes[name], maps[name]), name))
        for spacing in (3.0, 4.5):
            coarse = myocardium_mesh_from_labels(maps[name], spacing_mm=spacing).points_lps()
            results[f"own {spacing:g} mm"].append((*shares(coarse, maps[name]), name))
        for shift in (3.0, 6.0):  # in-plane, along the image's rows: a breath-hold apart
            moved = meshes[name] + shift * np.asarray(maps[name].GetDirection()).reshape(3, 3)[:, 0]
            results[f"own shifted {shift:g} mm"].append((*shares(moved, maps[name]), name))
        for step in (1, 2, 3):
            other = names[(index + step) % len(names)]
            try:
                results["other patient"].append((*shares(meshes[other], maps[name]), f"{other} on {name}"))
            except CardioScarError:  # no node in any slab: refused before any share (counted as 0)
                results["other patient"].append((0.0, 0.0, 0.0, f"{other} on {name}: no node in the slices"))
    for kind, rows in results.items():
        scar, wall, near = (np.array([row[column] for row in rows]) for column in range(3))
        low = min(rows, key=lambda row: row[2])
        high = max(rows, key=lambda row: row[2])
        print(f"{kind}: {len(rows)} pairs; scar pixels reached {scar.min():.2f}-{scar.max():.2f} (median "
              f"{np.median(scar):.2f}), myocardium pixels reached {wall.min():.2f}-{wall.max():.2f} (median "
              f"{np.median(wall):.2f}); scar pixels within a node spacing of a reached pixel {near.min():.2f}-"
              f"{near.max():.2f} (median {np.median(near):.2f}; lowest {low[3]}, highest {high[3][:60]})")
        for limit in (0.3, 0.4, 0.5, 0.6):
            print(f"  scar near under {limit}: {int((near < limit).sum())} of {len(rows)}")


if __name__ == "__main__":
    main()
