"""Does ``apply``'s other-heart check tell another mesh of the same heart from another heart?

A checkpoint keeps a sample of its training mesh's nodes (``meshscale.mesh_sample``); ``apply``
takes the median distance from the applied mesh's nodes to that sample and warns above
``allowed_distance`` (max(3 mm, 1.5 x the sample's node spacing)). One JSON line per (training mesh,
applied mesh) pair, with the kind of pair: (a) the same mesh, (b) a finer or coarser remesh of the
same phantom, (c) the surface of the same heart, (d) EMIDEC ``mesh-from-labels`` meshes of the same
case at 1.5 mm and 1.0 mm (and that mesh's surface), all to pass; (e) other phantom seeds (4, 5, 7
against 3, as round 16) and other EMIDEC patients' meshes as they lie in their files, to warn.
The last line sums up, per kind, the range of the median distance over the allowance.

Usage: OMP_NUM_THREADS=1 PYTHONPATH=CardioScarLib python Testing/benchmarks/other_mesh_check.py
[--data ../shared/data] [--cases 20]  (2.4 min; output: results/other_mesh_check.txt)
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from cardioscar.phantoms.phantom import PhantomConfig, make_phantom
from cardioscar.predict.meshscale import allowed_distance, median_distance_to_sample, mesh_sample, node_spacing
from cardioscar.prepare.mesh_from_labels import myocardium_mesh_from_labels


def surface_of(dataset: vtk.vtkDataSet) -> np.ndarray:
    """The nodes of a volumetric mesh's outer surface (LPS mm)."""
    surface = vtk.vtkDataSetSurfaceFilter()
    surface.SetInputData(dataset)
    surface.Update()
    return vtk_to_numpy(surface.GetOutput().GetPoints().GetData()).astype(np.float64)


def pair(kind: str, trained: str, trained_points: np.ndarray, applied: str, applied_points: np.ndarray) -> dict:
    """The check's figures for one pair, printed as a JSON line."""
    sample = mesh_sample(trained_points)
    row = {"kind": kind, "trained": trained, "applied": applied,
           "median_mm": round(median_distance_to_sample(sample, applied_points), 2),
           "sample_spacing_mm": round(node_spacing(sample), 2),
           "allowed_mm": round(allowed_distance(node_spacing(sample)), 2),
           "trained_nodes": len(trained_points), "trained_spacing_mm": round(node_spacing(trained_points), 2),
           "applied_nodes": len(applied_points)}
    row["ratio"] = round(row["median_mm"] / row["allowed_mm"], 2)
    row["warns"] = row["median_mm"] > row["allowed_mm"]
    print(json.dumps(row), flush=True)
    return row


def phantom_pairs() -> list[dict]:
    """The phantom's seed 3 at 1,500 (the tests' size), 12,000 and 40,000 nodes against its remeshes,
    its surface and seeds 4, 5, 7 at the same size."""
    meshes = {(seed, n): make_phantom(PhantomConfig(target_nodes=n, seed=seed))
              for seed in (3, 4, 5, 7) for n in (1500, 4000, 12000, 40000) if seed == 3 or n != 4000}
    rows = []
    for n in (1500, 12000, 40000):
        own = meshes[(3, n)]
        name = f"phantom seed 3 {n}"
        rows.append(pair("a same mesh", name, own.points_lps, name, own.points_lps))
        for other in (1500, 4000, 12000, 40000):
            if other != n:
                rows.append(pair("b remesh", name, own.points_lps, f"phantom seed 3 {other}",
                                 meshes[(3, other)].points_lps))
        rows.append(pair("c surface", name, own.points_lps, "its surface", surface_of(own.mesh)))
        for seed in (4, 5, 7):
            rows.append(pair("e other heart", name, own.points_lps, f"phantom seed {seed} {n}",
                             meshes[(seed, n)].points_lps))
    return rows


def emidec_pairs(data: Path, cases: int) -> list[dict]:
    """EMIDEC's first ``cases`` infarct cases: each case's 1.5 mm mesh against its 1.0 mm mesh (both
    ways), its surface, and the next case's 1.5 mm mesh (both ways)."""
    folders = sorted((data / "emidec").glob("Case_P*"))[:cases]
    coarse, fine, surfaces = {}, {}, {}
    for folder in folders:
        labels = sitk.ReadImage(str(folder / "Contours" / f"{folder.name}.nii.gz"))
        mesh = myocardium_mesh_from_labels(labels, spacing_mm=1.5)
        coarse[folder.name] = mesh.points_lps()
        surfaces[folder.name] = surface_of(mesh.dataset)
        fine[folder.name] = myocardium_mesh_from_labels(labels, spacing_mm=1.0).points_lps()
    rows = []
    names = list(coarse)
    for index, case in enumerate(names):
        rows.append(pair("a same mesh", f"{case} 1.5 mm", coarse[case], f"{case} 1.5 mm", coarse[case]))
        rows.append(pair("d same case 1.0/1.5 mm", f"{case} 1.5 mm", coarse[case], f"{case} 1.0 mm", fine[case]))
        rows.append(pair("d same case 1.0/1.5 mm", f"{case} 1.0 mm", fine[case], f"{case} 1.5 mm", coarse[case]))
        rows.append(pair("c surface", f"{case} 1.5 mm", coarse[case], f"{case} 1.5 mm surface", surfaces[case]))
        other = names[(index + 1) % len(names)]
        rows.append(pair("e other heart", f"{case} 1.5 mm", coarse[case], f"{other} 1.5 mm", coarse[other]))
        rows.append(pair("e other heart", f"{case} 1.0 mm", fine[case], f"{other} 1.5 mm", coarse[other]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--cases", type=int, default=20)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows = phantom_pairs() + emidec_pairs(args.data, args.cases)
    ratios = defaultdict(list)
    for row in rows:
        ratios[row["kind"]].append(row["ratio"])
    print(json.dumps({kind: {"pairs": len(values), "median_over_allowed": [min(values), max(values)]}
                      for kind, values in sorted(ratios.items())}))


if __name__ == "__main__":
    main()
