"""`aha` on a whole mesh of both ventricles whose long axis is known: given (`--apex`/`--base`,
`--slice-normal-from`) or clear from its shape (ring contrast 1.8 or more).

The test for a second ventricle ran only where the shape gave the axis unclearly, so these meshes
were segmented whole, the RV free wall and septum counted as LV myocardium, exit 0. Their
short-axis sections now are cut (`cardioscar.aha.one_ventricle.check_one_ventricle` with the axis),
and every direction where one of them encloses two cavities; an LV-only mesh with its axis given
still runs. `Documentation/bad-input.md` has the row. Real parts: the synthetic rings of
`Testing/test_simulation_fibres.py` meshed by `mesh-from-labels`, real VTK files, the real command
line in process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vtk

from cardioscar.aha import AhaOptions, analyse_mesh
from cardioscar.aha.shape_axis import shape_axis
from cardioscar.cli import main
from cardioscar.errors import CardioScarError
from cardioscar.evaluate.metrics import node_volumes
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh
from test_simulation_fibres import _ventricles_mesh

#: On the rings' LV wall beside the RV (centred on x, y = 30, 40; 36-48 mm tall from z = 7).
RV_POINTS = ["--rv-point", "48,32,24", "--rv-inferior-point", "48,48,24"]
#: The rings' LV axis, from the apex end to the base end.
APEX_BASE = ["--apex", "30,40,8", "--base", "30,40,40"]
#: The line of the mesh's refusal after its name (the command line's advice).
BIVENTRICULAR = ("cross-sections across one direction enclose two cavities (an LV's enclose one); the AHA "
                 "segmentation is the LV's: give an LV-only mesh, or mark its LV nodes with --lv-mask FIELD (and "
                 "--lv-value for a region label)")


def _written(mesh: Mesh, path: Path) -> Path:
    write_mesh(mesh, path, {"scar_probability": np.zeros(mesh.n_points)})
    return path


def _refused_by_aha(path: Path, out: Path, capsys, *axis: str) -> str:
    """The one error line of `cardioscar aha` on ``path`` (exit 2, no output folder written)."""
    capsys.readouterr()
    code = main(["aha", "--mesh", str(path), "--output-dir", str(out), *RV_POINTS, *axis])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1, (code, errors)
    assert not out.exists()
    return errors[0]


def test_a_biventricular_mesh_with_apex_and_base_given_is_refused(tmp_path, capsys):
    """The ring with an RV crescent (15 of 15 short-axis sections enclose two cavities) was segmented
    whole about the given points, exit 0: now refused in the one line a shape-axis mesh gets; so is
    its closed surface, and the same mesh with a slice normal (the API's ``slice_normal``)."""
    biv = _ventricles_mesh(with_rv=True, rv_cavity_mm=8.0, rv_wall_mm=3.0, rv_centre_x=52.0, slices=24)
    path = _written(biv, tmp_path / "biv.vtk")
    error = _refused_by_aha(path, tmp_path / "out", capsys, *APEX_BASE)
    assert error.endswith(f"biv.vtk looks biventricular: 15 of 15 {BIVENTRICULAR}"), error
    surface = vtk.vtkDataSetSurfaceFilter()
    surface.SetInputData(biv.dataset)
    surface.Update()
    surface_path = _written(Mesh(dataset=surface.GetOutput(), space="LPS"), tmp_path / "biv_surface.vtp")
    for options in (AhaOptions(apex=[30.0, 40.0, 8.0], base=[30.0, 40.0, 40.0], rv_point=[48.0, 32.0, 24.0]),
                    AhaOptions(slice_normal=[0.0, 0.0, 1.0], rv_point=[48.0, 32.0, 24.0])):
        for mesh_path in (path, surface_path):
            with pytest.raises(CardioScarError, match="looks biventricular: 15 of 15 cross-sections"):
                analyse_mesh(read_mesh(mesh_path), options)


def test_a_biventricular_mesh_whose_shape_gives_a_clear_axis_is_refused(tmp_path, capsys):
    """A smaller RV crescent (6 mm cavity) leaves the rings clear (contrast 2.36, over 1.8), so the
    mesh went untested and its 49 ml were reported as the LV's, exit 0. Its sections across the
    shape's axis enclose both cavities: refused."""
    biv = _ventricles_mesh(with_rv=True, rv_cavity_mm=6.0, rv_wall_mm=3.0, rv_centre_x=50.0)
    assert shape_axis(biv.points_lps(), node_volumes(biv.dataset_lps())).contrast >= 1.8
    error = _refused_by_aha(_written(biv, tmp_path / "clear.vtk"), tmp_path / "out", capsys)
    assert error.endswith(f"clear.vtk looks biventricular: 15 of 15 {BIVENTRICULAR}"), error


def test_an_axis_given_askew_still_finds_the_second_ventricle(tmp_path, capsys):
    """Points 30 degrees off the rings' axis cut only 5 of 15 sections through both cavities (6 or
    fewer pass); a section with two cavities has every direction cut, whose best encloses both in
    all 15: refused."""
    biv = _ventricles_mesh(with_rv=True, rv_cavity_mm=8.0, rv_wall_mm=3.0, rv_centre_x=52.0, slices=24)
    askew = ["--apex", "20.8,40,8", "--base", "39.2,40,40"]
    error = _refused_by_aha(_written(biv, tmp_path / "askew.vtk"), tmp_path / "out", capsys, *askew)
    assert error.endswith(f"askew.vtk looks biventricular: 15 of 15 {BIVENTRICULAR}"), error


def test_an_lv_only_mesh_with_its_axis_given_still_runs(tmp_path, capsys):
    """The LV ring alone, with `--apex`/`--base` and with a slice normal: one cavity in each
    section, segmented as before."""
    path = _written(_ventricles_mesh(with_rv=False, slices=24), tmp_path / "lv.vtk")
    capsys.readouterr()
    assert main(["aha", "--mesh", str(path), "--output-dir", str(tmp_path / "out"), *RV_POINTS, *APEX_BASE]) == 0
    assert (tmp_path / "out" / "aha.csv").is_file()
    result = analyse_mesh(read_mesh(path), AhaOptions(slice_normal=[0.0, 0.0, 1.0], rv_point=[48.0, 32.0, 24.0]))
    assert len(result.rows) == 17
