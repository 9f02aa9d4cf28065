"""Round 19: which meshes does `aha` test for a second ventricle, and what did it report without the test?

``aha`` without ``--lv-mask`` segments the whole mesh as the LV. Round 19 runs the fibre rule's
test for a biventricular mesh (:func:`cardioscar.aha.one_ventricle.check_one_ventricle`, a few
seconds) when the mesh's shape gives its axis with a ring contrast under
:data:`cardioscar.aha.analysis.ONE_VENTRICLE_CHECK_CONTRAST`. Per mesh this prints the ring contrast
the analysis computes (node-volume weights), the most sections with two cavities along one
direction (of 15; refused over 6) and, where the analysis runs with the test off, the "LV"
myocardium it reports. Meshes: biv-me patient 1's biventricular myocardium and its LV part
(``fibre_one_ventricle.bivme_meshes``) at 1.5, 2 and 3 mm voxels, the synthetic LV ring and
biventricular rings of ``Testing/test_simulation_fibres.py``. EMIDEC's 75 LV meshes measure 1.80
and more (`aha_shape_axis.py`, ROBUSTNESS.md); they are not rerun here.

Usage: PYTHONPATH=CardioScarLib:Testing:Testing/benchmarks OMP_NUM_THREADS=1 \
    python Testing/benchmarks/round19_biventricular_aha.py
(its output: results/round19_biventricular_aha.txt)
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
from vtk.util.numpy_support import numpy_to_vtk

from cardioscar.aha import AhaOptions, analyse_mesh
from cardioscar.aha import analysis
from cardioscar.aha.one_ventricle import cavity_counts
from cardioscar.aha.shape_axis import shape_axis
from cardioscar.errors import CardioScarError
from cardioscar.evaluate.metrics import node_volumes
from conftest import bivme_lv_mesh
from fibre_one_ventricle import bivme_meshes
from test_simulation_fibres import _ventricles_mesh


def lv_volume_without_the_test(mesh, rv_point: np.ndarray, figure: str = "myocardial_volume_ml",
                               unit: str = "ml") -> str:
    """The "LV" myocardium (``figure`` of the summary's ``lv``, in ``unit``: its volume, or a surface
    mesh's ``myocardial_area_cm2``) the analysis reports with the test off, or why it stops."""
    saved = analysis.ONE_VENTRICLE_CHECK_CONTRAST
    analysis.ONE_VENTRICLE_CHECK_CONTRAST = 0.0
    try:
        array = numpy_to_vtk(np.zeros(mesh.n_points), deep=True)
        array.SetName("scar_probability")
        mesh.dataset.GetPointData().AddArray(array)
        result = analyse_mesh(mesh, AhaOptions(rv_point=rv_point))
        return f"{result.summary['lv'][figure]:.1f} {unit}"
    except CardioScarError as error:
        return f"stops: {str(error)[:90]}"
    finally:
        analysis.ONE_VENTRICLE_CHECK_CONTRAST = saved


def main() -> None:
    logging.getLogger("cardioscar").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as scratch:  # biv-me's anterior RV insertion, on its LV
        _, anterior, _ = bivme_lv_mesh(Path(scratch) / "endocardium.vtk")
    meshes = []
    for pixel in (3.0, 2.0, 1.5):
        meshes += [(name, mesh, anterior) for name, mesh in bivme_meshes(pixel)]
    ring = np.array([48.0, 32.0, 24.0])  # on the synthetic LV ring's wall, beside the RV
    meshes += [(name, mesh, ring) for name, mesh in [("synthetic LV ring", _ventricles_mesh(with_rv=False)),
               ("synthetic biventricular ring", _ventricles_mesh(with_rv=True)),
               ("synthetic ring, smaller RV (the test's)",
                _ventricles_mesh(with_rv=True, rv_cavity_mm=8.0, rv_wall_mm=3.0, rv_centre_x=52.0, slices=24)),
               ("synthetic ring, 6 mm RV cavity",
                _ventricles_mesh(with_rv=True, rv_cavity_mm=6.0, rv_wall_mm=3.0, rv_centre_x=50.0))]]
    for name, mesh, rv_point in meshes:
        dataset = mesh.dataset_lps()
        contrast = shape_axis(mesh.points_lps(), node_volumes(dataset)).contrast
        two = int((cavity_counts(dataset)[0] >= 2).sum())
        tested = contrast < analysis.ONE_VENTRICLE_CHECK_CONTRAST
        print(f"{name} ({mesh.n_points} nodes): ring contrast {contrast:.2f} ({'tested' if tested else 'not tested'}), "
              f"sections with two cavities {two} of 15 ({'refused' if tested and two > 6 else 'passes'}); "
              f"without the test: {lv_volume_without_the_test(mesh, rv_point)}", flush=True)


if __name__ == "__main__":
    main()
