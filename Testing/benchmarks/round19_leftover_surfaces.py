"""Round 19's leftovers: which surface meshes does `aha` now test for a second ventricle?

Round 19 tested a whole volumetric mesh whose shape gives its axis unclearly (ring contrast under
:data:`cardioscar.aha.analysis.ONE_VENTRICLE_CHECK_CONTRAST`); a surface mesh of both ventricles
ran, its RV wall counted as the LV's. The two-cavity test now also cuts a closed surface mesh (what
it encloses, by VTK's stencil; :func:`cardioscar.aha.one_ventricle.has_cross_sections`). Per surface
this prints whether it is closed, the ring contrast the analysis computes, the most sections with
two cavities along one direction (of 15; refused over 6), whether `aha` now refuses it and, with
the test off, the "LV" wall area it reports (what it reported before).
Surfaces: the boundary of round 19's volumetric meshes (biv-me patient 1's biventricular
myocardium and its LV part at 3 and 2 mm voxels, ``fibre_one_ventricle.bivme_meshes``; the
synthetic rings of ``Testing/test_simulation_fibres.py``), the phantoms' own surface files and
biv-me's LV endocardium (``conftest.bivme_lv_mesh``, open at its base).

Usage: PYTHONPATH=CardioScarLib:Testing:Testing/benchmarks OMP_NUM_THREADS=1 \\
    python Testing/benchmarks/round19_leftover_surfaces.py
(its output: results/round19_leftover_surfaces.txt)
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import vtk

from cardioscar.aha import analysis
from cardioscar.aha.one_ventricle import cavity_counts, closed_surface
from cardioscar.aha.shape_axis import shape_axis
from cardioscar.evaluate.metrics import node_volumes
from cardioscar.io.meshio import Mesh, read_mesh
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom
from cardioscar.phantoms.phantom_segmented import SegmentedConfig
from conftest import bivme_lv_mesh
from fibre_one_ventricle import bivme_meshes
from round19_biventricular_aha import lv_volume_without_the_test
from test_simulation_fibres import _ventricles_mesh


def boundary(mesh: Mesh) -> Mesh:
    """The boundary surface of a volumetric mesh, as a surface mesh file would hold it."""
    surface = vtk.vtkDataSetSurfaceFilter()
    surface.SetInputData(mesh.dataset_lps())
    surface.Update()
    return Mesh(dataset=surface.GetOutput(), space="LPS", path=None)


def main() -> None:
    logging.getLogger("cardioscar").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        endocardium, anterior, _ = bivme_lv_mesh(folder / "endocardium.vtk")  # its RV insertion, on its LV
        ring = np.array([48.0, 32.0, 24.0])  # on the synthetic LV ring's wall, beside the RV
        surfaces = [(f"{name} surface", boundary(mesh), anterior) for pixel in (3.0, 2.0)
                    for name, mesh in bivme_meshes(pixel)]
        surfaces += [(f"{name} surface", boundary(mesh), ring) for name, mesh in [
            ("synthetic LV ring", _ventricles_mesh(with_rv=False)),
            ("synthetic biventricular ring", _ventricles_mesh(with_rv=True)),
            ("synthetic ring, smaller RV (round 19's test's)",
             _ventricles_mesh(with_rv=True, rv_cavity_mm=8.0, rv_wall_mm=3.0, rv_centre_x=52.0, slices=24))]]
        for name, config in (("phantom", PhantomConfig(target_nodes=8000, seed=3)),
                             ("segmented phantom", SegmentedConfig(seed=2, target_nodes=4000))):
            paths = write_phantom(make_phantom(config), folder / name.replace(" ", "_"))
            surfaces.append((f"{name}'s surface file", read_mesh(paths["surface"]), None))
        surfaces.append(("biv-me LV endocardium", read_mesh(endocardium), None))
        for name, mesh, rv_point in surfaces:
            dataset = mesh.dataset_lps()
            closed = closed_surface(dataset) is not None
            contrast = shape_axis(mesh.points_lps(), node_volumes(dataset)).contrast
            line = f"{name} ({mesh.n_points} nodes): {'closed' if closed else 'open'}, ring contrast {contrast:.2f}"
            if closed:
                two = int((cavity_counts(dataset)[0] >= 2).sum())
                tested = contrast < analysis.ONE_VENTRICLE_CHECK_CONTRAST
                line += (f" ({'tested' if tested else 'not tested'}), sections with two cavities {two} of 15 "
                         f"({'refused' if tested and two > 6 else 'passes'})")
                if rv_point is not None:
                    line += f"; without the test: {lv_volume_without_the_test(mesh, rv_point, 'myocardial_area_cm2', 'cm^2')}"
            else:
                line += " (not tested: an open surface encloses no wall)"
            print(line, flush=True)


if __name__ == "__main__":
    main()
