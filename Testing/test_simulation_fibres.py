"""The LV fibre rule of ``export --fibres rule`` (cardioscar.simulation.fibres) on the session's
segmented phantom: helix angles against the local circumferential direction, unit fibres,
perpendicular sheets, the .lon and the .json record, the refusal of a surface mesh."""

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import read_mesh
from cardioscar.simulation.export import export_model
from cardioscar.simulation.fibres import rule_fibres
from cardioscar.aha.segments import axis_from_shape
from cardioscar.aha.wall import cell_centres, wall_faces


def _helix_and_depth(mesh, field):
    """Each element's helix angle measured independently of the rule's frame: against the
    circumferential direction about the shape's axis (base x radial), in the plane of it and the axis."""
    points = mesh.points_lps()
    axis = axis_from_shape(points, np.ones(len(points)))
    lps = mesh.dataset_lps()
    centres = cell_centres(lps)
    radial = axis.radial(centres)
    circ = np.cross(axis.base_direction, radial)
    circ /= np.linalg.norm(circ, axis=1, keepdims=True)
    fibres = field[:, :3] * (1.0 if mesh.space == "LPS" else np.array([-1.0, -1.0, 1.0]))
    helix = np.degrees(np.arctan2(fibres @ axis.base_direction, np.einsum("ij,ij->i", fibres, circ)))
    faces = wall_faces(lps, np.ones(len(points), dtype=bool), axis)
    d_endo = cKDTree(points[faces.endo_ids]).query(centres)[0]
    d_epi = cKDTree(points[faces.epi_ids]).query(centres)[0]
    heights = axis.heights(centres)
    mid = (heights > np.quantile(heights, 0.3)) & (heights < np.quantile(heights, 0.8))  # away from apex and base
    return helix, d_endo / (d_endo + d_epi), mid


@pytest.mark.parametrize("transmural", ["laplace", "nearest"])
def test_rule_fibres_turn_from_plus_60_at_the_endocardium_to_minus_60_at_the_epicardium(segmented, transmural):
    """Against the depth each transmural direction stands on: the nearest faces' distances, or the
    Laplace coordinate phi (``Testing/test_simulation_transmural.py`` checks it against ln r on a
    ring), which lies within 0.15 of the distances' depth here."""
    from cardioscar.simulation.fibres import rule_wall
    from cardioscar.simulation.transmural import laplace_transmural

    mesh = read_mesh(segmented["mesh"])
    field, _ = rule_fibres(mesh, transmural=transmural)
    assert field.shape == (mesh.dataset.GetNumberOfCells(), 6)
    assert np.allclose(np.linalg.norm(field[:, :3], axis=1), 1.0)
    assert np.allclose(np.linalg.norm(field[:, 3:], axis=1), 1.0)
    assert np.abs(np.einsum("ij,ij->i", field[:, :3], field[:, 3:])).max() < 1e-9
    helix, depth, mid = _helix_and_depth(mesh, field)
    if transmural == "laplace":
        _, (points, lps, axis, faces) = rule_wall(mesh)
        phi_depth = laplace_transmural(points, lps, faces, axis).depth
        assert np.percentile(np.abs(phi_depth - depth)[mid], 95) < 0.15
        depth = phi_depth
    assert (mid & (depth < 0.25)).sum() > 20 and (mid & (depth > 0.75)).sum() > 20
    slope, at_endo = np.polyfit(depth[mid], helix[mid], 1)  # the line through the wall, read at depth 0 and 1
    assert abs(at_endo - 60.0) < 8.0 and abs(at_endo + slope + 60.0) < 8.0, (at_endo, at_endo + slope)
    assert np.median(np.abs(helix[mid] - (60.0 - 120.0 * depth[mid]))) < 8.0  # element by element, not on average


def test_export_fibres_rule_writes_a_header_2_lon_and_records_the_rule(segmented, tmp_path):
    prefix = tmp_path / "heart"
    mesh = read_mesh(segmented["mesh"])
    scar = tmp_path / "pred.vtk"
    from cardioscar.io.meshio import write_mesh
    write_mesh(mesh, scar, {"scar_probability": np.zeros(mesh.n_points)})
    export_model(scar, prefix, fibres_field="rule", helix_deg=(50.0, -40.0))
    lines = (tmp_path / "heart.lon").read_text(encoding="utf-8").split("\n")
    assert lines[0] == "2" and len([line for line in lines[1:] if line]) == mesh.dataset.GetNumberOfCells()
    record = json.loads((tmp_path / "heart.json").read_text(encoding="utf-8"))
    assert record["fibres"] == "fibre+sheet"
    assert record["fibre_rule"]["measured"] is False
    assert (record["fibre_rule"]["helix_endo_deg"], record["fibre_rule"]["helix_epi_deg"]) == (50.0, -40.0)


def test_the_rule_refuses_a_surface_mesh_and_bad_angles(segmented):
    with pytest.raises(CardioScarError, match="no volume cells.*volumetric"):
        rule_fibres(read_mesh(segmented["surface"]))
    with pytest.raises(CardioScarError, match="within \\[-90, 90\\]"):
        rule_fibres(read_mesh(segmented["mesh"]), (120.0, -60.0))


def test_an_api_export_without_fibres_warns_that_openCARP_needs_a_lon(segmented, tmp_path, caplog):
    """Every face writes through write_simulator_files, so the API's export says it too."""
    from cardioscar.io.meshio import write_mesh

    mesh = read_mesh(segmented["mesh"])
    scar = tmp_path / "pred.vtk"
    write_mesh(mesh, scar, {"scar_probability": np.zeros(mesh.n_points)})
    with caplog.at_level("WARNING", logger="cardioscar"):
        export_model(scar, tmp_path / "heart")
    lines = [r.getMessage() for r in caplog.records if "heart.lon was written" in r.getMessage()]
    assert len(lines) == 1 and "--fibres rule" in lines[0] and not (tmp_path / "heart.lon").exists()


def test_a_mesh_file_in_RAS_gets_the_same_helix_in_its_own_frame(segmented):
    """The helix's sense is the heart's (LPS, right-handed); an RAS file's fibres are the LPS ones
    with x and y negated, not a mirrored (left-handed where it should be right) field."""
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk

    from cardioscar.io.meshio import Mesh

    lps = read_mesh(segmented["mesh"])
    copy = lps.dataset.NewInstance()
    copy.DeepCopy(lps.dataset)
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(lps.points_lps() * [-1.0, -1.0, 1.0], deep=True))
    copy.SetPoints(points)
    ras = Mesh(dataset=copy, space="RAS")
    np.testing.assert_allclose(rule_fibres(ras)[0], rule_fibres(lps)[0] * np.tile([-1.0, -1.0, 1.0], 2), atol=1e-9)


def test_a_vtu_export_carries_the_rule_s_fibre_and_sheet_as_unit_cell_vectors(segmented, tmp_path):
    """``--format vtu --fibres rule`` wrote no fibres at all; now the .vtu holds them as the cell
    vectors ``fibre`` and ``sheet`` (the .lon's numbers, in the points' frame) and notes the rule."""
    from vtk.util.numpy_support import vtk_to_numpy

    from cardioscar.io.meshio import text_field, write_mesh
    from cardioscar.simulation.opencarp import FIBRE_RULE_ARRAY

    mesh = read_mesh(segmented["mesh"])
    scar = tmp_path / "pred.vtk"
    write_mesh(mesh, scar, {"scar_probability": np.zeros(mesh.n_points)})
    _, files = export_model(scar, tmp_path / "heart", fmt="vtu", fibres_field="rule", helix_deg=(50.0, -40.0))
    written = read_mesh(files[".vtu"])
    cells = written.dataset.GetCellData()
    expected, _ = rule_fibres(mesh, (50.0, -40.0))
    assert written.space == mesh.space
    np.testing.assert_allclose(vtk_to_numpy(cells.GetArray("fibre")), expected[:, :3], atol=1e-9)
    np.testing.assert_allclose(vtk_to_numpy(cells.GetArray("sheet")), expected[:, 3:], atol=1e-9)
    record = json.loads(text_field(written.dataset, FIBRE_RULE_ARRAY))
    assert record["measured"] is False and (record["helix_endo_deg"], record["helix_epi_deg"]) == (50.0, -40.0)
    _, plain = export_model(scar, tmp_path / "plain.vtu", fmt="vtu")  # without --fibres: neither the vectors nor the note
    plain_mesh = read_mesh(plain[".vtu"])
    assert plain_mesh.dataset.GetCellData().GetArray("fibre") is None
    assert text_field(plain_mesh.dataset, FIBRE_RULE_ARRAY) is None


def _ventricles_mesh(with_rv: bool, rv_cavity_mm: float = 10.0, rv_wall_mm: float = 4.0, rv_centre_x: float = 56.0,
                     slices: int = 30):
    """A 48 mm tall wall (2 mm hexahedra of mesh-from-labels): an LV ring (cavity radius 12 mm,
    wall 8 mm, centred on x, y = 30, 40) and, ``with_rv``, an RV crescent on its side (cavity radius
    10 mm, free wall 4 mm, centred on x = 56) sharing the LV's wall as its septum: the cross-sections
    of a biventricular mesh. ``slices`` of 2 mm: 30 makes it 48 mm tall, 24 36 mm."""
    import SimpleITK as sitk

    from cardioscar.prepare.mesh_from_labels import myocardium_mesh_from_labels

    z, y, x = np.mgrid[0:slices, 0:40, 0:45] * 2.0 + 1.0
    r_lv, r_rv = np.hypot(x - 30.0, y - 40.0), np.hypot(x - rv_centre_x, y - 40.0)
    wall = (r_lv >= 12.0) & (r_lv <= 20.0)
    if with_rv:
        wall |= (r_rv >= rv_cavity_mm) & (r_rv <= rv_cavity_mm + rv_wall_mm) & (r_lv > 20.0)
    image = sitk.GetImageFromArray((wall & (z > 6.0) & (z < 2.0 * slices - 6.0)).astype(np.uint8) * 2)
    image.SetSpacing((2.0, 2.0, 2.0))
    return myocardium_mesh_from_labels(image, (2,), spacing_mm=2.0)


def test_the_rule_refuses_a_biventricular_mesh_in_one_line(tmp_path):
    """The LV rule gave a mesh of both ventricles LV fibres about whatever axis its shape gave;
    cross-sections that enclose two cavities (the RV's beside the LV's) now refuse it, on every
    face (the API's export here), while the LV ring alone encloses one."""
    from cardioscar.io.meshio import write_mesh
    from cardioscar.aha.one_ventricle import cavity_counts

    lv_counts, _ = cavity_counts(_ventricles_mesh(with_rv=False).dataset_lps())
    assert lv_counts.max() == 1
    biv = _ventricles_mesh(with_rv=True)
    counts, _ = cavity_counts(biv.dataset_lps())
    assert (counts == 2).all(), counts
    write_mesh(biv, tmp_path / "biv.vtk", {"scar_probability": np.zeros(biv.n_points)})
    with pytest.raises(CardioScarError) as error:
        export_model(tmp_path / "biv.vtk", tmp_path / "heart", fmt="vtu", fibres_field="rule")
    message = str(error.value)
    assert message.startswith("biv.vtk looks biventricular: 15 of 15 cross-sections") and "\n" not in message
    assert "give an LV-only mesh, or export without --fibres rule" in message
    assert not (tmp_path / "heart.vtu").exists()


def test_the_channel_search_refuses_the_same_biventricular_mesh():
    """The channel search takes the whole mesh as the LV wall too (``aha.wall.lv_wall``), so the
    same test refuses it there: an RV's nodes would get depths between whichever faces lie nearest."""
    from cardioscar.simulation.channels import channels_of_mesh

    from vtk.util.numpy_support import numpy_to_vtk

    biv = _ventricles_mesh(with_rv=True)
    probability = numpy_to_vtk(np.resize([0.1, 0.6, 0.9], biv.n_points), deep=True)  # healthy, border zone, core
    probability.SetName("scar_probability")
    biv.dataset.GetPointData().AddArray(probability)
    with pytest.raises(CardioScarError) as error:
        channels_of_mesh(biv, scar_field="scar_probability", border_zone=0.5, core=0.8)
    assert "looks biventricular" in str(error.value) and "the channel search is the LV's" in str(error.value)


def test_the_open_lv_ring_exports_with_unit_fibres_its_rim_elements_named(tmp_path, caplog):
    """The ring is open at both ends: at the apical end a node lies on both the endocardium and the
    epicardium, and the elements that found it as their nearest of both had no transmural direction:
    zero fibres that every export refused (11 of 5,568). The export's Laplace transmural direction
    (the default) is defined there: no fallback, recorded as ``transmural``. By nearest nodes
    (``transmural="nearest"``) they take the outward direction from the long axis, are counted and
    named in the log and the record, and every fibre has unit length."""
    from vtk.util.numpy_support import vtk_to_numpy

    from cardioscar.io.meshio import text_field, write_mesh
    from cardioscar.simulation.fibres import NAMED_FALLBACKS
    from cardioscar.simulation.opencarp import FIBRE_RULE_ARRAY

    ring = _ventricles_mesh(with_rv=False)
    write_mesh(ring, tmp_path / "ring.vtk", {"scar_probability": np.zeros(ring.n_points)})
    with caplog.at_level("INFO", logger="cardioscar"):
        _, files = export_model(tmp_path / "ring.vtk", tmp_path / "heart", fmt="vtu", fibres_field="rule")
    written = read_mesh(files[".vtu"]).dataset
    fibres, sheets = (vtk_to_numpy(written.GetCellData().GetArray(name)) for name in ("fibre", "sheet"))
    assert np.allclose(np.linalg.norm(fibres, axis=1), 1.0) and np.allclose(np.linalg.norm(sheets, axis=1), 1.0)
    record = json.loads(text_field(written, FIBRE_RULE_ARRAY))
    assert record["transmural"].startswith("laplace: ")
    assert all(record["frame_fallback"][kind]["elements"] == 0 for kind in ("no_transmural", "along_axis"))
    assert not [r for r in caplog.records if "frame is undefined" in r.getMessage()]
    caplog.clear()
    with caplog.at_level("INFO", logger="cardioscar"):
        field, record = rule_fibres(ring, transmural="nearest")
    assert np.allclose(np.linalg.norm(field.reshape(-1, 3), axis=1), 1.0)
    fallback = record["frame_fallback"]
    count, named = fallback["no_transmural"]["elements"], fallback["no_transmural"]["first_ids"]
    assert NAMED_FALLBACKS < count < 0.02 * len(field) and len(named) == NAMED_FALLBACKS
    assert fallback["along_axis"]["elements"] == 0
    lines = [r.getMessage() for r in caplog.records if "frame is undefined" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"the fibre rule's frame is undefined at {count} of 5568 elements")
    assert ", ".join(str(i) for i in named) + ", ...)" in lines[0]
    centres = cell_centres(ring.dataset_lps())[named]
    assert (centres[:, 2] < 12.0).all()  # at the open apical end (the wall runs from z = 5 to 53 mm)
    # the fallback's transmural direction is the outward one from the ring's axis: x = 30, y = 40 mm
    # where the mask's voxel centres are 2i + 1, so at x = 29, y = 39 mm in the image's frame (2i)
    outward = centres[:, :2] - [29.0, 39.0]
    outward /= np.linalg.norm(outward, axis=1, keepdims=True)
    sheets = field[named, 3:] * (1.0 if ring.space == "LPS" else np.array([-1.0, -1.0, 1.0]))
    assert np.allclose(np.einsum("ij,ij->i", sheets[:, :2], outward), 1.0, atol=0.01)


def test_the_steps_between_slices_rings_keep_their_side_of_the_wall():
    """A ring that widens by 2 mm at z = 38 mm, above its middle (a stack of short-axis slices'
    step): its epicardium's step faces down and its endocardium's up. "Towards the middle of the
    axis" took the first for endocardium and the second for epicardium (144 endocardial nodes on the
    outer half of the wall, 72 epicardial on the inner half, 252 nodes on both faces); read over the
    surface from the faces across the axis, only the open apical end's rim (z = 5) is on both."""
    import SimpleITK as sitk

    from cardioscar.prepare.mesh_from_labels import myocardium_mesh_from_labels

    z, y, x = np.mgrid[0:30, 0:40, 0:45] * 2.0 + 1.0
    r = np.hypot(x - 30.0, y - 40.0)
    wall = np.where(z > 38.0, (r >= 12.0) & (r <= 20.0), (r >= 10.0) & (r <= 18.0)) & (z > 6.0) & (z < 54.0)
    image = sitk.GetImageFromArray(wall.astype(np.uint8) * 2)
    image.SetSpacing((2.0, 2.0, 2.0))
    mesh = myocardium_mesh_from_labels(image, (2,), spacing_mm=2.0)
    points = mesh.points_lps()
    faces = wall_faces(mesh.dataset_lps(points), np.ones(len(points), dtype=bool),
                       axis_from_shape(points, np.ones(len(points))))
    radius = np.hypot(points[:, 0] - 29.0, points[:, 1] - 39.0)  # the mask's (30, 40) at voxel centres 2i + 1
    assert set(points[np.intersect1d(faces.endo_ids, faces.epi_ids), 2]) == {5.0}
    above_the_end = points[:, 2] > 8.0
    endo, epi = (np.intersect1d(ids, np.flatnonzero(above_the_end)) for ids in (faces.endo_ids, faces.epi_ids))
    assert radius[endo].max() < 13.0 and radius[epi].min() > 16.5  # the inner radii 10 and 12, the outer 18 and 20


def test_a_transmural_direction_along_the_axis_turns_its_helix_from_the_circumferential_direction():
    """At an apical cap the transmural direction can run along the long axis, where "the axis made
    perpendicular to it" is no direction: the helix then turns from the circumferential direction
    about the axis (at (0, 10, z) about the z axis: x), where it turned from one fixed direction (y
    at every such element, circumferential only on the y = 0 plane)."""
    from cardioscar.aha.segments import LongAxis
    from cardioscar.simulation.fibres import _frame

    axis = LongAxis(origin=np.zeros(3), base_direction=np.array([0.0, 0.0, 1.0]), source="test")
    centres = np.array([[0.0, 10.0, -0.5], [10.0, 0.0, -0.5], [0.0, 14.0, 20.0]])
    endo = np.array([[0.0, 10.0, 0.0], [10.0, 0.0, 0.0], [0.0, 12.0, 20.0]])
    epi = np.array([[0.0, 10.0, -1.0], [10.0, 0.0, -1.0], [0.0, 16.0, 20.0]])
    frame = _frame(centres, np.full(3, 0.5), epi - endo, axis)
    assert frame.along_axis.tolist() == [True, True, False] and not frame.no_transmural.any()
    np.testing.assert_allclose(np.abs(frame.e_c), [[1, 0, 0], [0, 1, 0], [1, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(frame.e_t, [[0, 0, -1], [0, 0, -1], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(np.cross(frame.e_c, frame.e_l), frame.e_t, atol=1e-12)  # right-handed


def test_an_uncertain_shape_axis_is_warned_in_the_rule_s_own_words(segmented, tmp_path, caplog, monkeypatch):
    """Where the shape's axis is uncertain, aha's warning advised --slice-normal-from or --apex/--base,
    options export does not have; the rule's warning says it takes the shape's axis and what to do.
    (The clear-contrast line raised above every mesh's, so that the segmented phantom is warned.)"""
    from cardioscar.aha import segments

    monkeypatch.setattr(segments, "CLEAR_RING_CONTRAST", 100.0)
    with caplog.at_level("WARNING", logger="cardioscar"):
        rule_fibres(read_mesh(segmented["mesh"]))
    lines = [r.getMessage() for r in caplog.records if "axis from the mesh's shape is uncertain" in r.getMessage()]
    assert len(lines) == 1 and "--apex" not in lines[0] and "--slice-normal-from" not in lines[0]
    assert lines[0].endswith("the fibre rule has no axis option (it takes the shape's): check its output, or export "
                             "without --fibres rule (or with --fibres CELLFIELD)")
