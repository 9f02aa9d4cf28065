"""The fibre rule's test for a biventricular mesh, on real and phantom meshes: how many of the
cross-sections across the long axis enclose two cavities (``cavity_counts``), against the share
above which ``export --fibres rule`` refuses the mesh (``MAX_TWO_CAVITY_SHARE``).

Meshes: a biventricular hexahedral mesh built from the biv-me patient's fitted surfaces (the
voxels inside the epicardium and outside both endocardia, at 1.0 and 1.5 mm, meshed as
``mesh-from-labels`` meshes a label map; the surfaces are open at the valves, so each is closed
with ``vtkFillHolesFilter`` first), the same mesh's LV part
(the voxels within 12 mm of the LV endocardium and outside the RV endocardium's fill; the septum
and the LV free wall), the demo phantom (seeds 0-3) and the segmented phantom (seeds 0-3, tet and
hex), and EMIDEC's label maps meshed with ``mesh-from-labels`` (every case, or the first N given).
Prints one JSON line per mesh (the counts per cross-section, the share with two or more, whether
the rule refuses it), then a summary.

    PYTHONPATH=CardioScarLib .venv/bin/python Testing/benchmarks/fibre_one_ventricle.py [N_EMIDEC]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk
import vtk

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_robust import DATA  # noqa: E402
from cardioscar.aha.shape_axis import shape_axis  # noqa: E402
from cardioscar.io.meshio import Mesh, read_mesh  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom  # noqa: E402
from cardioscar.phantoms.phantom_segmented import SegmentedConfig  # noqa: E402
from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, myocardium_mesh_from_labels  # noqa: E402
from cardioscar.aha.one_ventricle import MAX_TWO_CAVITY_SHARE, cavity_counts, enclosed_grid  # noqa: E402

FITTED = DATA / "bivme_patient1" / "fitted_model_frame000"


def _closed_surface(name: str) -> vtk.vtkPolyData:
    """The biv-me surface ``name`` with its openings (valves, base) filled."""
    fill = vtk.vtkFillHolesFilter()
    fill.SetInputData(read_mesh(FITTED / f"patient1_{name}_000.vtk").dataset)
    fill.SetHoleSize(1e6)
    fill.Update()
    return fill.GetOutput()


def _inside(surface: vtk.vtkPolyData, origin: np.ndarray, shape: tuple[int, int, int], pixel: float) -> np.ndarray:
    """(nz, ny, nx) voxels (centres) inside the closed ``surface`` (the library's stencil, whose grid is (nx, ny, nz))."""
    return enclosed_grid(surface, origin, pixel, list(shape[::-1])).transpose(2, 1, 0)


def _voxel_mesh(mask: np.ndarray, origin: np.ndarray, pixel: float) -> Mesh:
    """The voxels of ``mask`` (centres at ``origin`` + index * pixel) meshed as ``mesh-from-labels``
    meshes a label map (hexahedra of ``pixel`` mm, shared nodes)."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8) * 2)
    image.SetOrigin(tuple(float(v) for v in origin))
    image.SetSpacing((pixel, pixel, pixel))
    return myocardium_mesh_from_labels(image, (2,), spacing_mm=pixel)


def bivme_meshes(pixel: float) -> Iterator[tuple[str, Mesh]]:
    """The biv-me myocardium (both ventricles) at ``pixel`` mm, and its LV part."""
    surfaces = {name: _closed_surface(name) for name in ("EPICARDIAL", "LV_ENDOCARDIAL", "RV_ENDOCARDIAL")}
    low, high = np.array(surfaces["EPICARDIAL"].GetBounds()).reshape(3, 2).T
    origin = low - 2 * pixel
    shape = tuple(int(n) for n in np.ceil((high - low) / pixel + 5)[::-1])
    inside = {name: _inside(surface, origin, shape, pixel) for name, surface in surfaces.items()}
    myocardium = inside["EPICARDIAL"] & ~inside["LV_ENDOCARDIAL"] & ~inside["RV_ENDOCARDIAL"]
    yield f"bivme_biv_{pixel:g}mm", _voxel_mesh(myocardium, origin, pixel)
    endo = read_mesh(FITTED / "patient1_LV_ENDOCARDIAL_000.vtk").points_lps()
    zyx = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).reshape(-1, 3)
    from scipy.spatial import cKDTree
    near_lv = (cKDTree(endo).query(origin + zyx[:, ::-1] * pixel)[0] <= 12.0).reshape(shape)
    yield f"bivme_lv_part_{pixel:g}mm", _voxel_mesh(myocardium & near_lv, origin, pixel)


def meshes(n_emidec: int | None) -> Iterator[tuple[str, Mesh]]:
    """(name, mesh) of every mesh in the module docstring."""
    for pixel in (1.0, 1.5):
        yield from bivme_meshes(pixel)
    for seed in range(4):
        yield f"demo_s{seed}", Mesh(dataset=make_phantom(PhantomConfig(seed=seed, target_nodes=12000)).mesh, space="LPS")
    for seed in range(4):
        kind = "tet" if seed < 2 else "hex"
        phantom = make_phantom(SegmentedConfig(seed=seed, target_nodes=12000, mesh_type=kind))
        yield f"segmented_s{seed}_{kind}", Mesh(dataset=phantom.mesh, space="LPS")
    cases = sorted(p for p in (DATA / "emidec").glob("Case_*") if p.is_dir())
    for case in cases[:n_emidec]:
        image = sitk.ReadImage(str(case / "Contours" / f"{case.name}.nii.gz"))
        yield f"emidec_{case.name[5:]}", myocardium_mesh_from_labels(image, MYOCARDIUM_LABELS)


def main() -> None:
    n_emidec = int(sys.argv[1]) if len(sys.argv) > 1 else None
    rows = []
    for name, mesh in meshes(n_emidec):
        start = time.perf_counter()
        points = mesh.points_lps()
        counts, direction = cavity_counts(mesh.dataset_lps(points))
        share = float((counts >= 2).mean())
        axis = shape_axis(points, np.ones(len(points))).direction
        off_axis = np.degrees(np.arccos(min(1.0, abs(float(direction @ axis)))))
        row = {"mesh": name, "cells": mesh.dataset.GetNumberOfCells(), "cavities": counts.tolist(),
               "direction_from_shape_axis_deg": round(float(off_axis), 1),
               "two_cavity_share": round(share, 3), "refused": share > MAX_TWO_CAVITY_SHARE,
               "seconds_under_load": round(time.perf_counter() - start, 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    for family in ("bivme_biv", "bivme_lv", "demo", "segmented", "emidec"):
        chosen = [r for r in rows if r["mesh"].startswith(family)]
        if chosen:
            shares = [r["two_cavity_share"] for r in chosen]
            print(json.dumps({"summary": family, "meshes": len(chosen), "share_min": min(shares),
                              "share_max": max(shares), "refused": sum(r["refused"] for r in chosen),
                              "threshold": MAX_TWO_CAVITY_SHARE}))


if __name__ == "__main__":
    main()
