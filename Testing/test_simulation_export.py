"""Tags and simulator export on a real VTK tetrahedral mesh written to disk, read back by our own
small openCARP reader (below), run through the ``cardioscar export`` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from cardioscar.errors import CardioScarError
from cardioscar.meshio import Mesh, read_mesh, write_mesh
from cardioscar.simulation.export import export_model


def _tet_mesh(space: str = "LPS") -> Mesh:
    """A 3x3x3 mm block of 6*27 tetrahedra (each voxel cube split into six), 64 nodes."""
    image = vtk.vtkImageData()
    image.SetDimensions(4, 4, 4)
    image.SetOrigin(10.0, -20.0, 30.0)
    tets = vtk.vtkDataSetTriangleFilter()
    tets.SetInputData(image)
    tets.Update()
    return Mesh(dataset=tets.GetOutput(), space=space)


def _write_prediction(tmp_path, space="LPS", fibres=False):
    mesh = _tet_mesh(space)
    x = vtk_to_numpy(mesh.dataset.GetPoints().GetData())[:, 0]
    scar = (x - x.min()) / (x.max() - x.min())  # 0 at x=10, 1 at x=13
    if fibres:
        f = np.tile([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], (mesh.dataset.GetNumberOfCells(), 1))
        array = numpy_to_vtk(f, deep=1)
        array.SetName("fibres")
        mesh.dataset.GetCellData().AddArray(array)
    path = tmp_path / "pred.vtk"
    write_mesh(mesh, path, {"scar_probability": scar})
    return path, scar


def read_opencarp(prefix):
    """Our own reader of .pts/.elem/.lon: header counts are checked against the lines that follow."""
    pts_lines = (prefix.parent / f"{prefix.name}.pts").read_text(encoding="utf-8").split("\n")
    n = int(pts_lines[0])
    points = np.array([[float(v) for v in line.split()] for line in pts_lines[1:] if line.strip()])
    assert len(points) == n, f".pts header says {n} points, file holds {len(points)}"
    elem_lines = (prefix.parent / f"{prefix.name}.elem").read_text(encoding="utf-8").split("\n")
    m = int(elem_lines[0])
    elements = [line.split() for line in elem_lines[1:] if line.strip()]
    assert len(elements) == m
    return points, elements


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cardioscar", "export", *args], capture_output=True, text=True,
                          env=dict(os.environ))


def test_opencarp_round_trip_geometry_tags_and_units(tmp_path):
    path, scar = _write_prediction(tmp_path, fibres=True)
    proc = _run_cli("--mesh", str(path), "--output", str(tmp_path / "model"), "--fibres", "fibres")
    assert proc.returncode == 0, proc.stderr
    points, elements = read_opencarp(tmp_path / "model")
    mesh = read_mesh(path)
    np.testing.assert_allclose(points, mesh.points_lps() * 1000.0, atol=1e-3)  # um, LPS as in the file
    assert all(e[0] == "Tt" and len(e) == 6 for e in elements)
    nodes = np.array([[int(v) for v in e[1:5]] for e in elements])
    tags = np.array([int(e[5]) for e in elements])
    mean = scar[nodes].mean(axis=1)
    expected = np.where(mean >= 0.8, 3, np.where(mean >= 0.5, 2, 1))
    np.testing.assert_array_equal(tags, expected)
    assert set(tags) == {1, 2, 3}
    lon = (tmp_path / "model.lon").read_text(encoding="utf-8").split("\n")
    assert lon[0] == "2" and len([line for line in lon[1:] if line.strip()]) == len(elements)
    sidecar = json.loads((tmp_path / "model.json").read_text(encoding="utf-8"))
    assert sidecar["units"] == "um" and sidecar["coordinate_frame"] == "LPS"
    assert sidecar["tags"] == {"healthy": 1, "border_zone": 2, "core": 3}
    total = sum(row["volume_ml"] for row in sidecar["classes"].values())
    assert total == pytest.approx(27.0 / 1000.0)  # 3x3x3 mm block
    assert sum(row["percent"] for row in sidecar["classes"].values()) == pytest.approx(100.0)


def test_ras_frame_and_mm_units_are_honoured(tmp_path):
    path, _ = _write_prediction(tmp_path, space="RAS")
    export_model(path, tmp_path / "mm", units="mm")
    points, _ = read_opencarp(tmp_path / "mm")
    raw = vtk_to_numpy(read_mesh(path).dataset.GetPoints().GetData())
    np.testing.assert_allclose(points, raw, atol=1e-5)  # the file's own RAS frame, mm
    export_model(path, tmp_path / "lps", units="mm", space="LPS")
    points_lps, _ = read_opencarp(tmp_path / "lps")
    np.testing.assert_allclose(points_lps, raw * [-1, -1, 1], atol=1e-5)
    assert json.loads((tmp_path / "lps.json").read_text(encoding="utf-8"))["coordinate_frame"] == "LPS"


def test_vtu_has_cell_and_point_tags(tmp_path):
    path, scar = _write_prediction(tmp_path)
    tags, files = export_model(path, tmp_path / "tagged", fmt="vtu", border_zone=0.3, core=0.6, tag_values=(0, 5, 9))
    back = read_mesh(files[".vtu"])
    cell = vtk_to_numpy(back.dataset.GetCellData().GetArray("tissue_tag"))
    np.testing.assert_array_equal(cell, tags.element_tags)
    np.testing.assert_array_equal(back.point_array("tissue_tag"), np.where(scar >= 0.6, 9, np.where(scar >= 0.3, 5, 0)))


def test_two_fields_core_from_core_field(tmp_path):
    path, scar = _write_prediction(tmp_path)
    mesh = read_mesh(path)
    core = np.where(scar > 0.9, 1.0, 0.0)
    write_mesh(mesh, tmp_path / "two.vtk", {"core_probability": core})
    tags, _ = export_model(tmp_path / "two.vtk", tmp_path / "two", core_field="core_probability")
    np.testing.assert_array_equal(tags.node_tags, np.where(core >= 0.5, 3, np.where(scar >= 0.5, 2, 1)))


@pytest.mark.parametrize("kwargs, fragment", [
    ({"border_zone": 0.9, "core": 0.6}, "--border-zone 0.9 must be below --core 0.6"),
    ({"core": 1.5}, "--core 1.5 is outside the valid range 0 < P < 1"),
    ({"scar_field": "nope"}, "no point field 'nope'"),
    ({"fibres_field": "nope"}, "no cell field 'nope'"),
])
def test_bad_options_write_nothing(tmp_path, kwargs, fragment):
    path, _ = _write_prediction(tmp_path)
    with pytest.raises(CardioScarError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        export_model(path, tmp_path / "bad", **kwargs)
    assert not list(tmp_path.glob("bad*"))


def test_mesh_without_cells_is_refused_by_the_cli(tmp_path):
    points = vtk.vtkPoints()
    for p in ([0, 0, 0], [1, 0, 0], [0, 1, 0]):
        points.InsertNextPoint(p)
    cloud = vtk.vtkPolyData()
    cloud.SetPoints(points)
    write_mesh(Mesh(dataset=cloud, space="LPS"), tmp_path / "cloud.vtk", {"scar_probability": np.array([0.1, 0.9, 0.5])})
    proc = _run_cli("--mesh", str(tmp_path / "cloud.vtk"), "--output", str(tmp_path / "out"))
    assert proc.returncode != 0
    assert "has no cells" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("out*"))


def test_core_from_a_second_prediction_mesh(tmp_path):
    path, scar = _write_prediction(tmp_path)
    mesh = read_mesh(path)
    core = (scar > 0.9).astype(float)
    write_mesh(mesh, tmp_path / "core_pred.vtk", {"scar_probability": core})
    tags, _ = export_model(path, tmp_path / "two", core_mesh=tmp_path / "core_pred.vtk")
    np.testing.assert_array_equal(tags.node_tags, np.where(core >= 0.5, 3, np.where(scar >= 0.5, 2, 1)))
