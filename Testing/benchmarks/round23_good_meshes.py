"""Do round 19's mesh checks leave good meshes alone? ``aha`` (no ``--lv-mask``) on EMIDEC's 75.

Round 19 checks a volume mesh whose shape gives its LV axis with a ring contrast under
:data:`cardioscar.aha.analysis.ONE_VENTRICLE_CHECK_CONTRAST` for a second ventricle (refused if
biventricular), warns of a mesh under 30 mm across (centimetres?) and, on export, of a volume mesh
in pieces no element joins. Per EMIDEC case this meshes the experts' myocardium (labels 2, 3, 4)
with ``mesh-from-labels`` at 3 mm (``--spacing``), as hexahedra and cut into tetrahedra, and runs the AHA analysis
of the whole mesh (a probability field of 0.1, the anterior RV insertion at a mesh node), with the
ring contrast the analysis computes, whether the one-ventricle check ran, its time, the most
cross-sections with two cavities along one direction (of 15; refused over 6), the outcome, and
whether the export's piece warning (:func:`cardioscar.simulation.opencarp.warn_about_pieces`) or
the centimetre warning speaks. One line per mesh and a summary.

Usage: PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/round23_good_meshes.py \
    [--data ../shared/data] [--cases N] [--spacing MM] [--only Case_N020,...]
(its output: results/round23_good_meshes.txt; the lowest-contrast cases at 1.5 mm:
``--spacing 1.5 --only ...``, results/round23_good_meshes_1.5mm.txt; all of them at 1.5 mm: ``--spacing 1.5``,
results/round23_good_meshes_1.5mm_all.txt; truncated LVs of the lowest:
``--truncated --only Case_N034,Case_P087,Case_N020``, results/round23_truncated_lvs.txt; the piece
closed surfaces: ``--surface``, results/round23_good_surfaces.txt; the piece warning's cost on a million nodes: ``--pieces-cost``, with Testing on the path, results/round23_pieces_cost.txt)
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import numpy_to_vtk

from cardioscar.aha import AhaOptions, analyse_mesh
from cardioscar.aha import analysis
from cardioscar.aha.one_ventricle import cavity_counts
from cardioscar.aha.shape_axis import shape_axis
from cardioscar.errors import CardioScarError
from cardioscar.evaluate.metrics import node_volumes
from cardioscar.io.meshio import Mesh
from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, myocardium_mesh_from_labels
from cardioscar.simulation.opencarp import warn_about_pieces
from mesh_pair_check import _Warnings


def tetrahedra(mesh: Mesh) -> Mesh:
    """The hexahedral mesh cut into tetrahedra (its nodes kept)."""
    cut = vtk.vtkDataSetTriangleFilter()
    cut.SetInputData(mesh.dataset)
    cut.Update()
    return Mesh(dataset=cut.GetOutput(), space=mesh.space)


def closed_surface_of(mesh: Mesh) -> Mesh:
    """The mesh's closed outer surface (epicardium and endocardium joined at the cut ends) in triangles:
    a surface mesh that round 19's leftovers (zleft25) check for a second ventricle too."""
    surface = vtk.vtkDataSetSurfaceFilter()
    surface.SetInputData(mesh.dataset)
    triangles = vtk.vtkTriangleFilter()
    triangles.SetInputConnection(surface.GetOutputPort())
    triangles.Update()
    return Mesh(dataset=triangles.GetOutput(), space=mesh.space)


def check_mesh(name: str, mesh: Mesh, warnings: _Warnings) -> str:
    """One line: contrast, the one-ventricle check (ran, time, sections), the outcome, the warnings."""
    field = numpy_to_vtk(np.full(mesh.n_points, 0.1), deep=True)
    field.SetName("scar_probability")
    mesh.dataset.GetPointData().AddArray(field)
    points = mesh.points_lps()
    dataset = mesh.dataset_lps(points)
    contrast = shape_axis(points, node_volumes(dataset)).contrast
    tested = contrast < analysis.ONE_VENTRICLE_CHECK_CONTRAST
    start = time.perf_counter()
    two = int((cavity_counts(dataset)[0] >= 2).sum())
    check_s = time.perf_counter() - start
    warnings.messages.clear()
    anterior = points[int(np.argmax(points[:, 0] + points[:, 1]))]  # a node on the wall
    start = time.perf_counter()
    try:
        analyse_mesh(mesh, AhaOptions(rv_point=tuple(anterior)))
        outcome = "runs"
    except CardioScarError as error:
        outcome = f"REFUSED: {str(error)[:120]}"
    aha_s = time.perf_counter() - start
    warn_about_pieces(mesh)
    said = [w for w in warnings.messages if "centimetres" in w or "looks biventricular" in w or "falls apart" in w]
    return (f"{name} ({mesh.n_points} nodes): ring contrast {contrast:.2f} "
            f"({'checked' if tested else 'not checked'}), two-cavity sections {two}/15 in {check_s:.1f} s, "
            f"aha {outcome} in {aha_s:.1f} s; round-19 warnings: {len(said)}"
            + (f" ({'; '.join(s[:100] for s in said)})" if said else ""))


def truncated(image: sitk.Image) -> list[tuple[str, sitk.Image]]:
    """The label map with only some of its myocardium slices kept: a truncated apex (the basal half),
    a truncated base (the apical half), the apical third and the two most basal slices."""
    array = sitk.GetArrayFromImage(image)
    slices = [k for k in range(array.shape[0]) if np.isin(array[k], MYOCARDIUM_LABELS).any()]
    cuts = []
    for label, keep in (("basal_half", slices[:len(slices) // 2]), ("apical_half", slices[len(slices) // 2:]),
                        ("apical_third", slices[-max(2, len(slices) // 3):]), ("basal_two_slices", slices[:2])):
        part = array.copy()
        part[[k for k in slices if k not in keep]] = 0
        cut = sitk.GetImageFromArray(part)
        cut.CopyInformation(image)
        cuts.append((f"_{label}", cut))
    return cuts


def pieces_cost() -> None:
    """The export's piece warning on a million-node voxel LV (0.5 mm hexahedra): in one piece, and
    with its halves a voxel apart (half its nodes loose, each looked up for its gap)."""
    from test_good_meshes_round23 import lv_mask, voxel_mesh

    whole = lv_mask(0.5, 20.0, 30.0, 70.0, 8.0)
    halves = whole.copy()
    halves[whole.shape[0] // 2] = False
    for name, mask in (("one piece", whole), ("halves apart", halves)):
        mesh = voxel_mesh(mask, 0.5)
        start = time.perf_counter()
        warn_about_pieces(mesh)
        print(f"voxel LV, {name} ({mesh.n_points} nodes): the piece warning's check in "
              f"{time.perf_counter() - start:.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--spacing", type=float, default=3.0, help="mesh-from-labels voxel edge (mm)")
    parser.add_argument("--pieces-cost", action="store_true", help="time the export's piece check on 1M nodes, only")
    parser.add_argument("--surface", action="store_true", help="each mesh's closed surface, not its hex and tet")
    parser.add_argument("--truncated", action="store_true", help="each case's truncated LVs (see truncated())")
    parser.add_argument("--only", default="", help="comma-separated case names (e.g. Case_N020), else all")
    args = parser.parse_args()
    warnings = _Warnings()
    logging.getLogger("cardioscar").addHandler(warnings)
    logging.getLogger("cardioscar").setLevel(logging.WARNING)
    logging.getLogger("cardioscar").propagate = False
    if args.pieces_cost:
        pieces_cost()
        return
    cases = sorted(p for p in (Path(args.data) / "emidec").glob("Case_*") if p.is_dir())[:args.cases]
    if args.only:
        cases = [case for case in cases if case.name in args.only.split(",")]
    lines = []
    for case in cases:
        image = sitk.ReadImage(str(case / "Contours" / f"{case.name}.nii.gz"))
        for cut, labels in truncated(image) if args.truncated else [("", image)]:
            hexes = myocardium_mesh_from_labels(labels, MYOCARDIUM_LABELS, spacing_mm=args.spacing)
            kinds = [("surface", closed_surface_of(hexes))] if args.surface else [("hex", hexes), ("tet", tetrahedra(hexes))]
            for kind, mesh in kinds:
                line = check_mesh(f"{case.name}{cut}_{kind}", mesh, warnings)
                lines.append(line)
                print(line, flush=True)
    refused = sum("REFUSED" in line for line in lines)
    checked = sum("(checked)" in line for line in lines)
    print(f"summary: {len(lines)} meshes, {checked} checked for a second ventricle, {refused} refused", flush=True)


if __name__ == "__main__":
    main()
