"""Tags and simulator export on a real VTK tetrahedral mesh written to disk, read back by our own
small openCARP reader (below), run through the ``cardioscar export`` command line."""

from __future__ import annotations

import errno
import json
import os
import re

import numpy as np
import pytest
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh
from cardioscar.simulation.export import export_model
from conftest import run_cli, run_cli_in_process


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
    """``cardioscar export ARGS`` through the command's entry function in this process (its run as
    ``python -m cardioscar``: test_opencarp_round_trip_geometry_tags_and_units)."""
    return run_cli_in_process("export", *args)


def test_opencarp_round_trip_geometry_tags_and_units(tmp_path):
    path, scar = _write_prediction(tmp_path, fibres=True)
    proc = run_cli("export", "--mesh", str(path), "--output", str(tmp_path / "model"), "--fibres", "fibres")
    assert proc.returncode == 0, proc.stderr
    assert ".lon was written" not in proc.stderr  # the fibres given: nothing to say
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


def test_fibres_of_other_lengths_are_written_as_unit_vectors(tmp_path, caplog):
    """A fibre field averaged from node directions onto cells is shorter than 1 (0.6 here); the .lon
    held it as given, and a simulator that builds its conductivity from the vectors as read
    (sigma_t I + (sigma_l - sigma_t) f f^T) conducts along it at sigma_t + 0.36 (sigma_l - sigma_t),
    without a word. Now the directions go in as unit vectors, with a warning."""
    mesh = _tet_mesh()
    n = mesh.dataset.GetNumberOfCells()
    fibre, sheet = np.array([0.0, 0.36, 0.48]), np.array([2.0, 0.0, 0.0])
    array = numpy_to_vtk(np.tile(np.concatenate([fibre, sheet]), (n, 1)), deep=1)
    array.SetName("fibres")
    mesh.dataset.GetCellData().AddArray(array)
    path = tmp_path / "pred.vtk"
    write_mesh(mesh, path, {"scar_probability": np.zeros(mesh.n_points)})
    with caplog.at_level("WARNING"):
        export_model(path, tmp_path / "model", fibres_field="fibres")
    lon = (tmp_path / "model.lon").read_text(encoding="utf-8").split("\n")
    rows = np.array([[float(v) for v in line.split()] for line in lon[1:] if line.strip()])
    assert lon[0] == "2" and rows.shape == (n, 6)
    np.testing.assert_allclose(rows[0], [0.0, 0.6, 0.8, 1.0, 0.0, 0.0], atol=1e-6)
    assert f"{n} element(s) whose fibre or sheet vector is not of unit length (0.6 to 2)" in caplog.text
    # the .vtu export wrote no fibres of its own; now it holds the same unit vectors as 'fibre' and 'sheet'
    _, files = export_model(path, tmp_path / "model.vtu", fmt="vtu", fibres_field="fibres")
    cells = read_mesh(files[".vtu"]).dataset.GetCellData()
    np.testing.assert_allclose(vtk_to_numpy(cells.GetArray("fibre")), np.tile([0.0, 0.6, 0.8], (n, 1)), atol=1e-12)
    np.testing.assert_allclose(vtk_to_numpy(cells.GetArray("sheet")), np.tile([1.0, 0.0, 0.0], (n, 1)), atol=1e-12)


def test_fibres_follow_the_points_into_the_other_frame(tmp_path):
    """An oblique fibre written with the points in RAS from an LPS file: x and y change sign with
    the points (the .lon kept the LPS components, a mirrored fibre: wrong conduction, exit 0)."""
    path, _ = _write_prediction(tmp_path)
    mesh = read_mesh(path)
    fibre = np.array([1.0, 2.0, 2.0]) / 3.0
    array = numpy_to_vtk(np.tile(fibre, (mesh.dataset.GetNumberOfCells(), 1)), deep=1)
    array.SetName("fibres")
    mesh.dataset.GetCellData().AddArray(array)
    write_mesh(mesh, path, {})
    for space, expected in (("LPS", fibre), ("RAS", fibre * [-1, -1, 1])):
        export_model(path, tmp_path / space, units="mm", space=space, fibres_field="fibres")
        lon = (tmp_path / f"{space}.lon").read_text(encoding="utf-8").split("\n")
        np.testing.assert_allclose([float(v) for v in lon[1].split()], expected, atol=1e-6)


def test_vtu_has_cell_and_point_tags(tmp_path, caplog):
    path, scar = _write_prediction(tmp_path)
    with caplog.at_level("INFO", logger="cardioscar"):
        tags, files = export_model(path, tmp_path / "tagged", fmt="vtu", border_zone=0.3, core=0.6,
                                   tag_values=(0, 5, 9))
    back = read_mesh(files[".vtu"])
    # the log names every point field the file holds (it named tissue_tag alone, beside the scar's)
    assert back.point_array("scar_probability") is not None
    assert "fields: scar_probability, tissue_tag)" in caplog.text
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
    ({"scar_field": "nope"}, "no point field 'nope'; point fields present: scar_probability; give the mesh written "
                             "by cardioscar apply, or name the scar field with --scar-field"),
    ({"fibres_field": "nope"}, "no cell field 'nope'"),
])
def test_bad_options_write_nothing(tmp_path, kwargs, fragment):
    path, _ = _write_prediction(tmp_path)
    with pytest.raises(CardioScarError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        export_model(path, tmp_path / "bad", **kwargs)
    assert not list(tmp_path.glob("bad*"))



def _export_set(prefix) -> dict:
    return {path.name: path.read_bytes() for path in prefix.parent.iterdir() if path.name.startswith(prefix.name + ".")}


def test_a_failure_on_the_second_file_leaves_the_previous_set_whole(tmp_path, monkeypatch):
    """The files of one export are one set: a second export (other units and thresholds: every file
    differs) that fails on its second file, while it is written (a full disk) or while it is renamed
    into place, leaves the first export's files byte for byte, and no temporary."""
    import errno
    import pathlib

    from cardioscar.io import atomic

    path, _ = _write_prediction(tmp_path)
    out = tmp_path / "out"
    export_model(path, out / "heart")
    before = _export_set(out / "heart")
    assert sorted(before) == ["heart.elem", "heart.json", "heart.pts"]
    real_write, real_replace = pathlib.Path.write_text, os.replace

    def full_disk(self, *args, **kwargs):
        if ".elem" in self.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write(self, *args, **kwargs)

    def broken_rename(source, target):
        if str(target).endswith(".elem"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_replace(source, target)

    for patch in ((pathlib.Path, "write_text", full_disk), (atomic.os, "replace", broken_rename)):
        with monkeypatch.context() as patched:
            patched.setattr(*patch)
            with pytest.raises(CardioScarError, match="heart.elem"):
                export_model(path, out / "heart", units="mm", border_zone=0.3, core=0.6)
        assert sorted(p.name for p in out.iterdir()) == sorted(before) and _export_set(out / "heart") == before
    export_model(path, out / "heart", units="mm", border_zone=0.3, core=0.6)  # unpatched: the new set, whole
    assert all(content != before[name] for name, content in _export_set(out / "heart").items())


def test_an_export_without_fibres_removes_an_earlier_exports_lon(tmp_path, monkeypatch):
    """openCARP reads PREFIX.lon with PREFIX.elem: an export with fibres, then one without to the same
    prefix, left the first one's .lon beside the new mesh (one line per element, so a simulator
    takes it when the counts agree). Now it goes with the new set; a failed export keeps it."""
    from cardioscar.io import atomic

    path, _ = _write_prediction(tmp_path, fibres=True)
    out = tmp_path / "out"
    export_model(path, out / "heart", fibres_field="fibres")
    before = _export_set(out / "heart")
    assert "heart.lon" in before
    real_replace = os.replace

    def broken_rename(source, target):
        if str(target).endswith(".json"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_replace(source, target)

    with monkeypatch.context() as patched:
        patched.setattr(atomic.os, "replace", broken_rename)
        with pytest.raises(CardioScarError, match="heart.json"):
            export_model(path, out / "heart", units="mm")
    assert _export_set(out / "heart") == before and sorted(p.name for p in out.iterdir()) == sorted(before)
    export_model(path, out / "heart", units="mm")
    assert sorted(p.name for p in out.iterdir()) == ["heart.elem", "heart.json", "heart.pts"]


@pytest.mark.parametrize("output, hint", [("heart.pts", ""), ("heart.elem", ""),
                                          ("heart.vtu", "; for one tagged .vtu, the vtu format (--format vtu)")])
def test_a_file_name_for_the_prefix_is_refused(tmp_path, output, hint):
    """`--output heart.pts` wrote heart.pts.pts, heart.pts.elem and heart.pts.json (EMIDEC walk):
    refused before any work, with the prefix to give; --format vtu keeps its .vtu."""
    path, _ = _write_prediction(tmp_path)
    with pytest.raises(CardioScarError, match=re.escape(
            f"--output {tmp_path / output} names a file, but the openCARP files take a prefix: give "
            f"{tmp_path / 'heart'} (it writes heart.pts, heart.elem and heart.json){hint}")):
        export_model(path, tmp_path / output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.vtk"]
    _, files = export_model(path, tmp_path / "heart.vtu", fmt="vtu")
    assert files[".vtu"] == tmp_path / "heart.vtu"


def test_rule_from_takes_the_training_data_only(tmp_path):
    """A model or mesh given to --rule-from said "prepared without --scar-rule" (np.load reads a
    .pth zip as an empty archive): it now says which file to give."""
    from cardioscar.simulation.export import scar_rule_of

    (tmp_path / "scar.pth").write_bytes(b"PK")
    with pytest.raises(CardioScarError, match=r"--rule-from scar\.pth: give the training data \.npz"):
        scar_rule_of(tmp_path / "scar.pth")

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


def test_an_opencarp_export_without_fibres_says_openCARP_needs_them(tmp_path):
    """openCARP reads ``PREFIX.lon`` with ``PREFIX.pts``/``.elem``; an export without ``--fibres``
    wrote none and said nothing, so the modeller found out in the simulator."""
    path, _ = _write_prediction(tmp_path)
    proc = _run_cli("--mesh", str(path), "--output", str(tmp_path / "heart"))
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if ".lon was written" in line]
    assert "no heart.lon was written (no --fibres)" in line and "--fibres CELLFIELD" in line
    assert not (tmp_path / "heart.lon").exists()
    vtu = _run_cli("--mesh", str(path), "--output", str(tmp_path / "heart.vtu"), "--format", "vtu")
    assert vtu.returncode == 0 and ".lon" not in vtu.stderr  # a .vtu has no fibre file to miss


def test_helix_angles_without_the_fibre_rule_are_refused(tmp_path):
    """``--helix-angles`` only shapes ``--fibres rule``; given alone it was parsed and unused."""
    path, _ = _write_prediction(tmp_path)
    proc = _run_cli("--mesh", str(path), "--output", str(tmp_path / "heart"), "--helix-angles", "70,-50")
    assert proc.returncode == 2 and "--helix-angles is for --fibres rule" in proc.stderr
    assert not list(tmp_path.glob("heart*"))


def test_a_two_field_vtu_carries_the_core_models_fields_under_their_own_names(tmp_path):
    """The tagged ``.vtu`` of a scar and a core model held only the scar model's probability and
    uncertainty, so how unsure the core's boundary is (a border-zone channel through the core) could
    not be seen; it now carries the core model's fields as ``core_*``, the scar's unchanged."""
    path, scar = _write_prediction(tmp_path)
    mesh = read_mesh(path)
    core = (scar > 0.9).astype(float)
    spread, risk = np.linspace(0.0, 0.2, mesh.n_points), np.linspace(0.5, 0.0, mesh.n_points)
    write_mesh(mesh, tmp_path / "core_pred.vtk", {"scar_probability": core, "scar_uncertainty": spread,
                                                  "scar_error_risk": risk})
    export_model(path, tmp_path / "two.vtu", fmt="vtu", core_mesh=tmp_path / "core_pred.vtk")
    written = read_mesh(tmp_path / "two.vtu")
    np.testing.assert_allclose(written.point_array("core_probability"), core)
    np.testing.assert_allclose(written.point_array("core_uncertainty"), spread)
    np.testing.assert_allclose(written.point_array("core_error_risk"), risk)
    np.testing.assert_allclose(written.point_array("scar_probability"), scar)
    assert "core_probability" not in read_mesh(path).point_field_names()  # the user's prediction file as it was


def test_a_vtu_with_another_core_field_carries_that_field_as_core_probability(tmp_path):
    """With ``--core-field`` naming another field of the core model's mesh, ``core_probability``
    was its ``scar_probability`` (not the field the core tags came from) beside a spread and risk of
    that other field; now it is the field the tags used, without the spread and risk."""
    path, scar = _write_prediction(tmp_path)
    mesh = read_mesh(path)
    core = (scar > 0.9).astype(float)
    write_mesh(mesh, tmp_path / "core_pred.vtk", {"scar_probability": scar, "dense": core,
                                                  "scar_uncertainty": np.full(mesh.n_points, 0.1)})
    export_model(path, tmp_path / "two.vtu", fmt="vtu", core_mesh=tmp_path / "core_pred.vtk", core_field="dense")
    written = read_mesh(tmp_path / "two.vtu")
    np.testing.assert_allclose(written.point_array("core_probability"), core)
    assert "core_uncertainty" not in written.point_field_names()


# --- hexahedra and wedges: openCARP's node order -------------------------------------------------
# Our own reading of meshtool's convention (openCARP's mesh converter, vtk_utils.cpp,
# perm_con_carp_to_vtk): VTK node i of a hexahedron is openCARP node CARP_TO_VTK_HEX[i], of a wedge
# CARP_TO_VTK_WEDGE[i]. Written here independently of the library's VTK->openCARP table, so the test
# fails if the library's table is not the inverse of meshtool's.
CARP_TO_VTK_HEX = [5, 6, 7, 4, 3, 2, 1, 0]
CARP_TO_VTK_WEDGE = [0, 1, 2, 3, 5, 4]
# outward faces of VTK's hexahedron and wedge (VTK's documented node order)
HEX_FACES = [[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]]
WEDGE_FACES = [[0, 1, 2], [3, 5, 4], [0, 3, 4, 1], [1, 4, 5, 2], [2, 5, 3, 0]]


def _signed_volume(points: np.ndarray, faces) -> float:
    """Volume enclosed by the faces (fan-triangulated), positive when they face outwards."""
    total = 0.0
    for face in faces:
        for k in range(1, len(face) - 1):
            a, b, c = points[face[0]], points[face[k]], points[face[k + 1]]
            total += float(np.dot(a, np.cross(b, c))) / 6.0
    return total


def _mixed_mesh(space: str = "LPS") -> Mesh:
    """Along x: one hexahedron [0,1] mm, one cube [1,2] split into five tetrahedra, one wedge (half of [2,3])."""
    grid = vtk.vtkUnstructuredGrid()
    points = vtk.vtkPoints()
    ids = {}
    for x in range(4):
        for y in range(2):
            for z in range(2):
                ids[(x, y, z)] = points.InsertNextPoint(x + 5.0, y - 3.0, z + 2.0)
    grid.SetPoints(points)

    def corner(x, y, z):
        return ids[(x, y, z)]
    hexa = [corner(0, 0, 0), corner(1, 0, 0), corner(1, 1, 0), corner(0, 1, 0),
            corner(0, 0, 1), corner(1, 0, 1), corner(1, 1, 1), corner(0, 1, 1)]
    grid.InsertNextCell(vtk.VTK_HEXAHEDRON, 8, hexa)
    cube = [corner(1, 0, 0), corner(2, 0, 0), corner(2, 1, 0), corner(1, 1, 0),
            corner(1, 0, 1), corner(2, 0, 1), corner(2, 1, 1), corner(1, 1, 1)]
    for tet in ([0, 1, 3, 4], [1, 2, 3, 6], [1, 3, 4, 6], [1, 4, 5, 6], [3, 4, 6, 7]):
        grid.InsertNextCell(vtk.VTK_TETRA, 4, [cube[i] for i in tet])
    # the wedge's triangles lie at y=0 and y=1; VTK: (0,1,2)'s right-hand normal points away from (3,4,5)
    wedge = [corner(2, 0, 0), corner(3, 0, 0), corner(2, 0, 1), corner(2, 1, 0), corner(3, 1, 0), corner(2, 1, 1)]
    grid.InsertNextCell(vtk.VTK_WEDGE, 6, wedge)
    return Mesh(dataset=grid, space=space)


def test_hexahedra_and_wedges_are_written_in_opencarps_node_order(tmp_path):
    mesh = _mixed_mesh()
    grid = mesh.dataset
    raw = vtk_to_numpy(grid.GetPoints().GetData()).astype(np.float64)
    x = raw[:, 0]
    scar = (x - x.min()) / (x.max() - x.min())
    write_mesh(mesh, tmp_path / "mixed.vtk", {"scar_probability": scar})
    proc = _run_cli("--mesh", str(tmp_path / "mixed.vtk"), "--output", str(tmp_path / "mixed"), "--units", "mm")
    assert proc.returncode == 0, proc.stderr
    points, elements = read_opencarp(tmp_path / "mixed")
    np.testing.assert_allclose(points, raw, atol=1e-5)
    assert [e[0] for e in elements] == ["Hx"] + ["Tt"] * 5 + ["Pr"]
    # the unit hexahedron, literally, in the order meshtool expects (from its permutation by hand)
    hexa = points[[int(v) for v in elements[0][1:9]]] - points.min(axis=0)
    np.testing.assert_allclose(hexa, [[0, 1, 1], [1, 1, 1], [1, 0, 1], [0, 0, 1],
                                      [0, 1, 0], [0, 0, 0], [1, 0, 0], [1, 1, 0]], atol=1e-6)
    total = 0.0
    for c, element in enumerate(elements):
        carp = np.array([int(v) for v in element[1:-1]])
        vtk_order = carp[{"Hx": CARP_TO_VTK_HEX, "Pr": CARP_TO_VTK_WEDGE, "Tt": slice(None)}[element[0]]]
        original = cell_node_lists_of(grid, c)
        np.testing.assert_array_equal(vtk_order, original)  # meshtool's conversion gives back our VTK cell
        if element[0] == "Tt":
            a, b, cc, d = points[vtk_order]
            volume = float(np.dot(b - a, np.cross(cc - a, d - a))) / 6.0
        else:
            volume = _signed_volume(points[vtk_order], HEX_FACES if element[0] == "Hx" else WEDGE_FACES)
        assert volume > 0, f"element {c} ({element[0]}) is inverted after the round trip"
        total += abs(volume)
        mean = scar[vtk_order].mean()
        assert int(element[-1]) == (3 if mean >= 0.8 else 2 if mean >= 0.5 else 1)
    assert total == pytest.approx(1.0 + 1.0 + 0.5)  # hexahedron + cube of tetrahedra + half cube
    sidecar = json.loads((tmp_path / "mixed.json").read_text(encoding="utf-8"))
    assert sum(row["volume_ml"] for row in sidecar["classes"].values()) == pytest.approx(2.5 / 1000.0)


def cell_node_lists_of(grid, c: int) -> np.ndarray:
    ids = vtk.vtkIdList()
    grid.GetCellPoints(c, ids)
    return np.array([ids.GetId(i) for i in range(ids.GetNumberOfIds())])


def test_quadratic_cells_are_refused_with_the_cell_named(tmp_path):
    mesh = _mixed_mesh()
    grid = mesh.dataset
    grid.InsertNextCell(vtk.VTK_QUADRATIC_TETRA, 10, list(range(10)))
    write_mesh(mesh, tmp_path / "quadratic.vtk", {"scar_probability": np.zeros(grid.GetNumberOfPoints())})
    with pytest.raises(CardioScarError, match="cell 7 is a vtkQuadraticTetra"):
        export_model(tmp_path / "quadratic.vtk", tmp_path / "q")
    assert not list(tmp_path.glob("q.*"))


def test_voxel_meshes_as_mesh_from_labels_writes_them_export_as_hexahedra(tmp_path):
    """VTK voxels (x-fastest node order) become Hx elements in openCARP's order: meshtool's
    inverse gives a hexahedron of positive volume on the voxel's own corners."""
    image = vtk.vtkImageData()
    image.SetDimensions(3, 2, 2)
    image.SetSpacing(1.5, 1.5, 1.5)
    image.SetOrigin(-4.0, 2.0, 7.0)
    grid = vtk.vtkAppendFilter()
    grid.AddInputData(image)
    grid.Update()
    mesh = Mesh(dataset=grid.GetOutput(), space="LPS")
    assert {mesh.dataset.GetCellType(c) for c in range(mesh.dataset.GetNumberOfCells())} == {vtk.VTK_VOXEL}
    write_mesh(mesh, tmp_path / "voxels.vtk", {"scar_probability": np.linspace(0, 1, mesh.n_points)})
    export_model(tmp_path / "voxels.vtk", tmp_path / "voxels", units="mm")
    points, elements = read_opencarp(tmp_path / "voxels")
    assert [e[0] for e in elements] == ["Hx", "Hx"]
    for c, element in enumerate(elements):
        hexa = np.array([int(v) for v in element[1:9]])[CARP_TO_VTK_HEX]
        assert set(hexa) == set(cell_node_lists_of(mesh.dataset, c))
        assert _signed_volume(points[hexa], HEX_FACES) == pytest.approx(1.5 ** 3)


def test_pixel_meshes_export_as_quads_going_round(tmp_path):
    """VTK pixels (x-fastest) become Qd elements whose nodes go round the square (openCARP keeps a
    quad's VTK order, meshtool's default): each step is an edge, never the diagonal."""
    image = vtk.vtkImageData()
    image.SetDimensions(3, 2, 1)
    grid = vtk.vtkAppendFilter()
    grid.AddInputData(image)
    grid.Update()
    mesh = Mesh(dataset=grid.GetOutput(), space="LPS")
    write_mesh(mesh, tmp_path / "pixels.vtk", {"scar_probability": np.zeros(mesh.n_points)})
    export_model(tmp_path / "pixels.vtk", tmp_path / "pixels", units="mm")
    points, elements = read_opencarp(tmp_path / "pixels")
    assert [e[0] for e in elements] == ["Qd", "Qd"]
    for element in elements:
        corners = points[[int(v) for v in element[1:5]]]
        steps = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)
        np.testing.assert_allclose(steps, 1.0)


def test_a_vtu_export_leaves_out_earlier_fibres_and_channels_it_does_not_write(tmp_path, caplog):
    """A ``.vtu`` re-exported without ``--fibres`` from an earlier fibre export kept its ``fibre``,
    ``sheet`` and rule note (zstalefibre), and one exported with fibres only kept the earlier sheet
    beside the new fibre: a simulator read fibres that were not this export's. ``bz_channel`` (the
    channels of the earlier tags) went along too. Each is left out now, with a warning naming it;
    and ``--fibres CELLFIELD``'s own array is not copied beside the unit ``fibre`` / ``sheet``."""
    from cardioscar.io.meshio import set_text_field, text_field
    from cardioscar.simulation.opencarp import FIBRE_RULE_ARRAY

    path, _ = _write_prediction(tmp_path, fibres=True)
    _, files = export_model(path, tmp_path / "first.vtu", fmt="vtu", fibres_field="fibres")
    first = read_mesh(files[".vtu"])
    cells = first.dataset.GetCellData()
    assert cells.HasArray("fibre") and cells.HasArray("sheet") and not cells.HasArray("fibres")
    set_text_field(first.dataset, FIBRE_RULE_ARRAY, '{"rule": "an earlier rule"}')
    write_mesh(first, path, {"bz_channel": np.ones(first.n_points, np.int32)})  # an earlier channel search
    with caplog.at_level("WARNING"):
        _, files = export_model(path, tmp_path / "again.vtu", fmt="vtu")
    again = read_mesh(files[".vtu"]).dataset
    assert not any(data.HasArray(name) for data in (again.GetCellData(), again.GetPointData())
                   for name in ("fibre", "sheet", "bz_channel"))
    assert text_field(again, FIBRE_RULE_ARRAY) is None and again.GetCellData().HasArray("tissue_tag")
    assert "carries bz_channel, fibre, sheet from an earlier export or run" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):  # fibres of 3 components: the earlier sheet is no sheet of them
        _, files = export_model(path, tmp_path / "fibre_only.vtu", fmt="vtu", fibres_field="fibre")
    cells = read_mesh(files[".vtu"]).dataset.GetCellData()
    assert cells.HasArray("fibre") and not cells.HasArray("sheet")
    assert "carries bz_channel, sheet from an earlier" in caplog.text


def test_a_new_result_leaves_out_an_earlier_results_channels_and_core_copies(tmp_path, caplog):
    """``apply`` onto an earlier run's channels mesh or two-field ``.vtu`` kept its ``bz_channel``
    and ``core_probability`` / ``core_uncertainty`` beside the new scar (zstalefibre): ``export
    --core-field core_probability`` tagged the new scar with the old core. They are dropped with a
    warning; a truth the mesh carries (``scar_truth``) is no result and stays."""
    from cardioscar.logic import InferenceResult, save_inference_result

    path, scar = _write_prediction(tmp_path)
    mesh = read_mesh(path)
    n = mesh.n_points
    write_mesh(mesh, path, {"bz_channel": np.ones(n, np.int32), "core_probability": scar, "core_uncertainty": scar,
                            "scar_truth": scar, "core_marginal": np.ones(n, np.uint8)})
    result = InferenceResult(scar, np.zeros(n), None, n, float(scar.mean()), 0.0, error_risk=np.zeros(n))
    with caplog.at_level("WARNING"):
        save_inference_result(result, path, tmp_path / "again.vtk")
    again = read_mesh(tmp_path / "again.vtk")
    assert {"bz_channel", "core_marginal", "core_probability", "core_uncertainty"}.isdisjoint(again.point_field_names())
    assert {"scar_truth", "scar_probability", "scar_error_risk"} <= set(again.point_field_names())
    assert ("had bz_channel, core_marginal, core_probability, core_uncertainty from an earlier run's channels"
            in caplog.text)
