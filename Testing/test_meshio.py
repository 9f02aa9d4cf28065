"""Mesh reading/writing with 3D Slicer's SPACE marker, checked against slicer-core's own storage node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def sphere(center=(10.0, -20.0, 30.0)) -> vtk.vtkPolyData:
    source = vtk.vtkSphereSource()
    source.SetCenter(*center)
    source.SetRadius(5.0)
    source.Update()
    return source.GetOutput()


def as_unstructured(poly: vtk.vtkPolyData) -> vtk.vtkUnstructuredGrid:
    append = vtk.vtkAppendFilter()
    append.SetInputData(poly)
    append.Update()
    return append.GetOutput()


def raw_points(path: Path) -> np.ndarray:
    """Coordinates exactly as stored in the file (no frame handling)."""
    reader = {".vtk": vtk.vtkDataSetReader, ".vtp": vtk.vtkXMLPolyDataReader,
              ".vtu": vtk.vtkXMLUnstructuredGridReader}[path.suffix]()
    reader.SetFileName(str(path))
    reader.Update()
    return vtk_to_numpy(reader.GetOutput().GetPoints().GetData()).astype(np.float64)


@pytest.mark.parametrize("suffix", [".vtk", ".vtp", ".vtu"])
@pytest.mark.parametrize("space", ["LPS", "RAS"])
def test_round_trip_keeps_coordinates_and_marker(tmp_path: Path, suffix: str, space: str) -> None:
    poly = sphere()
    dataset = as_unstructured(poly) if suffix == ".vtu" else poly
    stored = vtk_to_numpy(poly.GetPoints().GetData()).astype(np.float64)
    first = tmp_path / f"in{suffix}"
    write_mesh(Mesh(dataset, space, None), first, {})
    mesh = read_mesh(first)
    assert mesh.space == space
    expected_lps = stored * [-1, -1, 1] if space == "RAS" else stored
    np.testing.assert_allclose(mesh.points_lps(), expected_lps, atol=1e-5)

    probability = np.linspace(0, 1, mesh.n_points)
    out = tmp_path / f"out{suffix}"
    write_mesh(mesh, out, {"scar_probability": probability, "scar_binary": probability >= 0.5})
    assert f"SPACE={space}".encode() in out.read_bytes() or (b'Name="SPACE"' in out.read_bytes())
    np.testing.assert_allclose(raw_points(out), stored, atol=1e-5)  # coordinates untouched
    again = read_mesh(out)
    assert again.space == space
    np.testing.assert_allclose(again.point_array("scar_probability"), probability)
    np.testing.assert_array_equal(again.point_array("scar_binary"), (probability >= 0.5).astype(np.uint8))


def slicer_read_ras(path: Path) -> np.ndarray:
    import slicer

    scene = slicer.vtkMRMLScene()
    model = slicer.vtkMRMLModelNode()
    scene.AddNode(model)
    storage = slicer.vtkMRMLModelStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(model) == 1
    return vtk_to_numpy(model.GetMesh().GetPoints().GetData()).astype(np.float64)


@pytest.mark.parametrize("suffix", [".vtk", ".vtp", ".vtu"])
@pytest.mark.parametrize("space", ["LPS", "RAS"])
def test_slicer_places_our_output_where_we_think(tmp_path: Path, suffix: str, space: str) -> None:
    poly = sphere()
    path = tmp_path / f"m{suffix}"
    dataset = as_unstructured(poly) if suffix == ".vtu" else poly
    write_mesh(Mesh(dataset, space, None), path, {"x": np.zeros(poly.GetNumberOfPoints())})
    ras_in_slicer = slicer_read_ras(path)
    np.testing.assert_allclose(ras_in_slicer * [-1, -1, 1], read_mesh(path).points_lps(), atol=1e-4)


def test_we_read_slicer_written_files(tmp_path: Path) -> None:
    import slicer

    scene = slicer.vtkMRMLScene()
    model = slicer.vtkMRMLModelNode()
    scene.AddNode(model)
    model.SetAndObservePolyData(sphere())
    ras = vtk_to_numpy(sphere().GetPoints().GetData()).astype(np.float64)
    for suffix in (".vtk", ".vtp"):
        for system in (slicer.vtkMRMLStorageNode.CoordinateSystemRAS, slicer.vtkMRMLStorageNode.CoordinateSystemLPS):
            storage = slicer.vtkMRMLModelStorageNode()
            scene.AddNode(storage)
            storage.SetCoordinateSystem(system)
            path = tmp_path / f"slicer_{system}{suffix}"
            storage.SetFileName(str(path))
            assert storage.WriteData(model) == 1
            np.testing.assert_allclose(read_mesh(path).points_lps(), ras * [-1, -1, 1], atol=1e-4)


def test_no_marker_means_lps(tmp_path: Path) -> None:
    writer = vtk.vtkPolyDataWriter()
    writer.SetInputData(sphere())
    writer.SetFileName(str(tmp_path / "plain.vtk"))
    writer.Write()
    mesh = read_mesh(tmp_path / "plain.vtk")
    assert mesh.space == "LPS"
    np.testing.assert_allclose(mesh.points_lps(), vtk_to_numpy(sphere().GetPoints().GetData()), atol=1e-4)


def test_real_bivme_mesh_reads_as_lps() -> None:
    mesh = read_mesh(DATA / "bivme_patient1" / "fitted_model_frame000" / "patient1_LV_ENDOCARDIAL_000.vtk")
    assert mesh.space == "LPS" and mesh.n_points > 100
    assert np.isfinite(mesh.points_lps()).all()


def test_wrong_length_array_and_atomic_failure(tmp_path: Path) -> None:
    mesh = Mesh(sphere(), "LPS", None)
    out = tmp_path / "out.vtp"
    with pytest.raises(CardioScarError, match="has shape \\(3,\\) but the mesh has"):
        write_mesh(mesh, out, {"scar_probability": np.zeros(3)})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CardioScarError, match="as out.vtp"):
        write_mesh(Mesh(as_unstructured(sphere()), "LPS", None), out, {})
    assert list(tmp_path.iterdir()) == []


def test_previous_output_survives_a_failed_write(tmp_path: Path) -> None:
    out = tmp_path / "out.vtk"
    mesh = Mesh(sphere(), "RAS", None)
    write_mesh(mesh, out, {"a": np.ones(mesh.n_points)})
    before = out.read_bytes()
    with pytest.raises(CardioScarError):
        write_mesh(mesh, out, {"a": np.ones(2)})
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.vtk"]


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(CardioScarError, match="File not found"):
        read_mesh(tmp_path / "missing.vtk")
    (tmp_path / "mesh.stl").write_text("solid x\nendsolid x\n")
    with pytest.raises(CardioScarError, match="Unsupported file type '.stl'"):
        read_mesh(tmp_path / "mesh.stl")
    good = tmp_path / "good.vtp"
    write_mesh(Mesh(sphere(), "LPS", None), good, {})
    (tmp_path / "cut.vtp").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(CardioScarError, match="cut.vtp: the file is corrupted or truncated"):
        read_mesh(tmp_path / "cut.vtp")
    legacy = tmp_path / "good.vtk"
    write_mesh(Mesh(sphere(), "LPS", None), legacy, {})
    (tmp_path / "cut.vtk").write_bytes(legacy.read_bytes()[: len(legacy.read_bytes()) // 2])
    with pytest.raises(CardioScarError, match="cut.vtk: the file is corrupted or truncated"):
        read_mesh(tmp_path / "cut.vtk")
    # appended (binary) data cut short: VTK's message under its 'ERROR: In' header says no 'error';
    # it read as a mesh without points (EMIDEC P088's heart.vtu cut to 20 kB in a cohort)
    grid = vtk.vtkAppendFilter()
    grid.AddInputData(sphere())
    grid.Update()
    write_mesh(Mesh(grid.GetOutput(), "LPS", None), tmp_path / "good.vtu", {})
    whole = (tmp_path / "good.vtu").read_bytes()
    (tmp_path / "cut.vtu").write_bytes(whole[: int(len(whole) * 0.6)])
    with pytest.raises(CardioScarError, match=r"cut.vtu: the file is corrupted or truncated \(Cannot read .* may be too short"):
        read_mesh(tmp_path / "cut.vtu")
    (tmp_path / "junk.vtk").write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(CardioScarError, match="junk.vtk"):
        read_mesh(tmp_path / "junk.vtk")
    empty = vtk.vtkPolyDataWriter()
    empty.SetInputData(vtk.vtkPolyData())
    empty.SetFileName(str(tmp_path / "empty.vtk"))
    empty.Write()
    with pytest.raises(CardioScarError, match="has no points"):
        read_mesh(tmp_path / "empty.vtk")


def test_missing_field_lists_fields_present(tmp_path: Path) -> None:
    path = tmp_path / "m.vtp"
    mesh = Mesh(sphere(), "LPS", None)
    write_mesh(mesh, path, {"scar_probability": np.zeros(mesh.n_points)})
    with pytest.raises(CardioScarError, match="no point field 'scar'; point fields present: Normals, scar_probability"):
        read_mesh(path).point_array("scar")


def test_a_text_point_field_is_named_as_text_not_as_missing(tmp_path: Path) -> None:
    """A text point field given where numbers are read (``aha --lv-mask region`` on a field of
    names) was refused as "has no point field 'region'; point fields present: region": the field
    listed as present in the same line that says it is missing. Now the line says it holds text."""
    points = vtk.vtkPoints()
    for xyz in ((0, 0, 0), (1, 0, 0), (0, 1, 0)):
        points.InsertNextPoint(xyz)
    dataset = vtk.vtkPolyData()
    dataset.SetPoints(points)
    names = vtk.vtkStringArray()
    names.SetName("region")
    for name in ("lv", "lv", "rv"):
        names.InsertNextValue(name)
    dataset.GetPointData().AddArray(names)
    write_mesh(Mesh(dataset=dataset, space="LPS"), tmp_path / "named.vtk")
    mesh = read_mesh(tmp_path / "named.vtk")
    assert "region" in mesh.point_field_names()
    with pytest.raises(CardioScarError, match=r"^named\.vtk's point field 'region' holds text, not numbers"):
        mesh.point_array("region")
    with pytest.raises(CardioScarError, match=r"^named\.vtk has no point field 'other'; point fields present: region"):
        mesh.point_array("other")
