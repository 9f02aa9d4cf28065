"""AHA 17-segment analysis (cardioscar.aha) on the phantom, the real ACDC labels and bad input.

The phantom's analytic wall coordinates (t, u, theta) give every node's segment independently
of the mesh-based method (long axis from the mesh's shape, cavity tip from the classified
endocardium); its infarct's territory gives the segments the scar must land in.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy

from conftest import SHARED_DATA
from cardioscar.aha import AhaOptions, LabelMap, TERRITORY_SEGMENTS, analyse_mesh
from cardioscar.aha.bullseye import segment_at, segment_span, write_bullseye
from cardioscar.aha.insertion import ijk_to_lps_of
from cardioscar.aha.wall import column_transmurality, wall_faces
from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import Mesh
from cardioscar.evaluate.metrics import node_volumes
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom

INSERTION_DEG = (30.0, 150.0)  # the phantom's septum is centred at theta = 90 degrees


def _wall_point(phantom, theta_deg: float, u: float = 1.2) -> np.ndarray:
    geometry = phantom.geometry
    local = geometry.wall_to_local(np.array([0.5]), np.array([u]), np.array([math.radians(theta_deg)]))
    return geometry.to_lps(local)[0]


def _options(phantom, **extra) -> AhaOptions:
    anterior, inferior = (_wall_point(phantom, angle) for angle in INSERTION_DEG)
    return AhaOptions(field="scar_truth", rv_point=anterior, rv_inferior_point=inferior, **extra)


def analytic_segments(phantom, points_lps: np.ndarray) -> np.ndarray:
    """Segments from the phantom's own coordinates: base plane z = 0, cavity tip z = -c_endo,
    the anterior insertion at theta = 30 degrees, the septum up to 150 degrees."""
    geometry = phantom.geometry
    local = geometry.to_local(points_lps)
    _, _, theta = geometry.local_to_wall(local)
    z = local[:, 2]
    third = geometry.c_endo / 3.0
    psi = np.mod(np.degrees(theta) - INSERTION_DEG[0], 360.0)
    ring = np.where(psi < 120.0, np.where(psi < 60.0, 2, 3), np.array([4, 5, 6, 1])[np.minimum((psi - 120) // 60, 3).astype(int)])
    apical = np.array([14, 15, 16, 13])[(np.mod(psi - 60.0 + 45.0, 360.0) // 90).astype(int)]
    return np.select([z >= -third, z >= -2 * third, z >= -geometry.c_endo], [ring, ring + 6, apical], 17)


@pytest.fixture(scope="module")
def lad_phantom():
    return make_phantom(PhantomConfig(target_nodes=12000, seed=0, territories=("LAD",)))


def _mesh(phantom) -> Mesh:
    return Mesh(dataset=phantom.mesh, space="LPS")


def test_segments_agree_with_the_analytic_coordinates(lad_phantom):
    result = analyse_mesh(_mesh(lad_phantom), _options(lad_phantom))
    expected = analytic_segments(lad_phantom, lad_phantom.points_lps)
    agree = (result.point_segments == expected).mean()
    assert agree > 0.95, agree
    assert set(np.unique(result.point_segments)) == set(range(1, 18))
    # the cell array follows the same frame
    assert set(np.unique(result.cell_segments)) == set(range(1, 18))


@pytest.mark.parametrize("territory, seed", [("LAD", 0), ("RCA", 1), ("LCx", 2)])
def test_scar_lands_in_its_territory(territory, seed):
    phantom = make_phantom(PhantomConfig(target_nodes=8000, seed=seed, territories=(territory,)))
    result = analyse_mesh(_mesh(phantom), _options(phantom))
    scar = {row["segment"]: row["scar_volume_ml"] for row in result.rows}
    total = sum(scar.values())
    inside = sum(scar[s] for s in TERRITORY_SEGMENTS[territory])
    assert total > 0 and inside / total > 0.75, (territory, scar)
    # the table equals the one built on the analytic segments, segment by segment, within 3 points
    expected = analytic_segments(phantom, phantom.points_lps)
    weights = node_volumes(phantom.mesh)
    scarred = phantom.truth >= 0.5
    for row in result.rows:
        mine = expected == row["segment"]
        analytic_pct = 100 * weights[mine & scarred].sum() / weights[mine].sum()
        assert row["scar_pct"] == pytest.approx(analytic_pct, abs=3.0), row["segment"]


def test_transmurality_of_the_infarct_centre(lad_phantom):
    """The phantom's infarct grows from the endocardium to a known depth: the column under its
    centre is scar over that share of the wall."""
    mesh = _mesh(lad_phantom)
    result = analyse_mesh(mesh, _options(lad_phantom))
    points = lad_phantom.points_lps
    faces = wall_faces(lad_phantom.mesh, np.ones(len(points), bool), result.frame.axis)
    values, _ = column_transmurality(points, np.arange(len(points)), (lad_phantom.truth >= 0.5).astype(float),
                                     node_volumes(lad_phantom.mesh), faces)
    infarct = lad_phantom.infarcts[0]
    centre = lad_phantom.geometry.to_lps(lad_phantom.geometry.wall_to_local(
        np.array([0.0]), np.array([infarct.u]), np.array([infarct.theta])))[0]
    nearest = np.argsort(np.linalg.norm(points[faces.endo_ids] - centre, axis=1))[:5]
    assert values[nearest].mean() == pytest.approx(min(infarct.transmurality, 1.0), abs=0.15)
    # endocardial nodes really are on the endocardium (phantom depth t = 0), epicardial on t = 1
    depth = lad_phantom.mesh.GetPointData().GetArray("transmural_depth")
    depth = vtk_to_numpy(depth)
    assert np.mean(depth[faces.endo_ids] == 0.0) > 0.9 and np.mean(depth[faces.epi_ids] == 1.0) > 0.9


def _rotated(phantom, rotation: np.ndarray) -> vtk.vtkUnstructuredGrid:
    grid = vtk.vtkUnstructuredGrid()
    grid.DeepCopy(phantom.mesh)
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(phantom.points_lps @ rotation.T), deep=True))
    grid.SetPoints(points)
    return grid


def test_rotating_the_scene_leaves_the_table_unchanged(lad_phantom):
    angle = 1.1
    axis = np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)
    before = analyse_mesh(_mesh(lad_phantom), _options(lad_phantom))
    options = _options(lad_phantom)
    options.rv_point = rotation @ options.rv_point
    options.rv_inferior_point = rotation @ options.rv_inferior_point
    after = analyse_mesh(Mesh(dataset=_rotated(lad_phantom, rotation), space="LPS"), options)
    # only nodes on the axis itself (the apex line, whose angle is round-off) may change segment
    changed = np.flatnonzero(before.point_segments != after.point_segments)
    radial = np.linalg.norm(before.frame.axis.radial(lad_phantom.points_lps[changed]), axis=1)
    assert len(changed) <= 3 and np.all(radial < 1e-6), radial
    for a, b in zip(before.rows, after.rows):
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, rel=1e-3, abs=0.05), key
            elif key == "nodes":
                assert abs(b[key] - value) <= len(changed), key
            else:
                assert b[key] == value, key


def test_one_insertion_point_numbers_in_the_anatomical_direction(lad_phantom):
    """With only the anterior insertion the septum is assumed 120 degrees wide, clockwise seen
    from the base; the phantom's septum (theta 30-150) runs that way, so one point gives the
    two-point frame's segments, and aha.json says the direction was assumed."""
    options = _options(lad_phantom)
    options.rv_inferior_point = None
    result = analyse_mesh(_mesh(lad_phantom), options)
    assert result.frame.sense == -1 and result.frame.septum_deg == 120.0
    assert result.summary["rv_insertion"]["sense"] == "assumed"
    at = {deg: result.frame.segments(_wall_point(lad_phantom, deg, u=1.5)[None])[0] for deg in (0.0, 60.0, 180.0)}
    assert at == {0.0: 1, 60.0: 2, 180.0: 4}


def test_swapped_insertion_points_warn_and_are_recorded(lad_phantom, warnings_of_cardioscar):
    """Points given inferior first number the table mirrored (the LAD scar of 7, 8 and 13 read in the
    RCA's 10, 9 and 15; 74 % of the nodes in another segment): one warning, and aha.json's ``sense`` says
    ``mirrored`` with the warning's words; the right order gives ``anatomical`` and no warning."""
    right = analyse_mesh(_mesh(lad_phantom), _options(lad_phantom))
    assert right.summary["rv_insertion"]["sense"] == "anatomical" and right.summary["rv_insertion"]["warning"] is None
    assert not warnings_of_cardioscar
    swapped = _options(lad_phantom)
    swapped.rv_point, swapped.rv_inferior_point = swapped.rv_inferior_point, swapped.rv_point
    result = analyse_mesh(_mesh(lad_phantom), swapped)
    mirrored = [m for m in warnings_of_cardioscar if "mirror" in m]
    assert len(mirrored) == 1 and "give the anterior insertion first" in mirrored[0] and "mirrored frame" in mirrored[0]
    assert result.summary["rv_insertion"] == {**result.summary["rv_insertion"], "sense": "mirrored",
                                              "warning": mirrored[0]}
    assert (result.point_segments != right.point_segments).mean() > 0.5


def test_the_demos_aha_path_is_anatomical(lad_phantom, warnings_of_cardioscar):
    """The demo's own insertions and axis (``phantom_options``) number the phantom anatomically."""
    from cardioscar.aha.demo_report import phantom_options

    result = analyse_mesh(_mesh(lad_phantom), phantom_options(lad_phantom, "scar_truth"))
    assert result.summary["rv_insertion"]["sense"] == "anatomical"
    assert not [m for m in warnings_of_cardioscar if "mirror" in m]


def test_an_apex_the_slices_did_not_reach_is_not_covered(lad_phantom, warnings_of_cardioscar, tmp_path):
    """A mesh cut 10 mm above the cavity's tip (a stack whose most apical slice still holds cavity):
    there is no apical cap, so segment 17 is not covered, with no figures (not 0 ml, not 0 %) in
    aha.json and aha.csv, one warning, and "not covered" in the log's line (the bull's-eye's mark:
    test_aha_bullseye_picture.py); 1-16 are all covered."""
    import csv
    import json

    from cardioscar.aha import write_outputs
    from cardioscar.aha.table import scar_per_segment

    geometry = lad_phantom.geometry
    kept = geometry.to_local(lad_phantom.points_lps)[:, 2] > -geometry.c_endo + 10.0
    cells = vtk.vtkIdList()
    for cell in range(lad_phantom.mesh.GetNumberOfCells()):
        ids = lad_phantom.mesh.GetCell(cell).GetPointIds()
        if all(kept[ids.GetId(k)] for k in range(ids.GetNumberOfIds())):
            cells.InsertNextId(cell)
    extract = vtk.vtkExtractCells()
    extract.SetInputData(lad_phantom.mesh)
    extract.SetCellList(cells)
    extract.Update()
    cut = Mesh(dataset=extract.GetOutput(), space="LPS")
    result = analyse_mesh(cut, _options(lad_phantom))
    apex = result.rows[16]
    assert (apex["segment"], apex["covered"], apex["nodes"]) == (17, False, 0)
    assert apex["myocardial_volume_ml"] is None and apex["scar_volume_ml"] is None and apex["scar_pct"] is None
    assert all(row["covered"] and row["nodes"] > 0 for row in result.rows[:16])
    assert result.summary["levels"]["apical_cap"].startswith("not covered by the slices")
    assert scar_per_segment(result.rows).endswith(", 16:0%, 17:not covered")  # the log's line, not left out
    assert len([m for m in warnings_of_cardioscar if "segment 17 (apex) is not covered" in m]) == 1
    write_outputs(cut, result, tmp_path)
    with open(tmp_path / "aha.csv") as handle:
        row = list(csv.DictReader(handle))[16]
    assert (row["covered"], row["myocardial_volume_ml"], row["scar_pct"]) == ("no", "", "")
    assert json.loads((tmp_path / "aha.json").read_text())["segments"][16]["myocardial_volume_ml"] is None
    # the whole LV's burden is over the covered segments
    assert result.summary["lv"]["myocardial_volume_ml"] == pytest.approx(
        sum(r["myocardial_volume_ml"] for r in result.rows[:16]))


def test_the_logs_line_tells_a_trace_of_scar_from_none():
    """A segment at 0.3 % read "0%" in the log's line while a scar-free one was left out of it; one
    at 99.6 % read "100%", as if scarred whole."""
    from cardioscar.aha.table import scar_per_segment

    rows = [{"segment": 1, "covered": True, "scar_pct": 0.0}, {"segment": 2, "covered": True, "scar_pct": 0.3},
            {"segment": 3, "covered": True, "scar_pct": 55.7}, {"segment": 4, "covered": True, "scar_pct": 99.6},
            {"segment": 5, "covered": True, "scar_pct": 100.0}, {"segment": 17, "covered": False, "scar_pct": None}]
    assert scar_per_segment(rows) == "1:0%, 2:<1%, 3:56%, 4:>99%, 5:100%, 17:not covered"


def test_surface_mesh_transmurality_is_estimated_or_refused(lad_phantom):
    surface = Mesh(dataset=lad_phantom.surface, space="LPS")
    result = analyse_mesh(surface, _options(lad_phantom))
    assert result.summary["transmurality_method"].startswith("ESTIMATED")
    assert "myocardial_area_cm2" in result.rows[0]
    volumetric = analyse_mesh(_mesh(lad_phantom), _options(lad_phantom))
    # the same LAD segments carry scar on the surface as in the volume
    scarred = {row["segment"] for row in volumetric.rows if row["scar_pct"] > 10}
    assert scarred and all(next(r for r in result.rows if r["segment"] == s)["scar_pct"] > 0 for s in scarred)
    with pytest.raises(CardioScarError, match="surface mesh: transmurality needs .*volumetric"):
        analyse_mesh(surface, _options(lad_phantom, transmurality="required"))


def test_errors_say_what_to_give(lad_phantom):
    mesh = _mesh(lad_phantom)
    off = _options(lad_phantom)
    geometry = lad_phantom.geometry  # t = 2.5: 15 mm outside the epicardium
    off.rv_point = geometry.to_lps(geometry.wall_to_local(np.array([2.5]), np.array([1.2]), np.array([0.5])))[0]
    with pytest.raises(CardioScarError, match=r"--rv-point .* mm from the nearest LV node \(at most 5 mm\)"):
        analyse_mesh(mesh, off)
    with pytest.raises(CardioScarError, match="no RV insertion: give --rv-point"):
        analyse_mesh(mesh, AhaOptions(field="scar_truth"))
    with pytest.raises(CardioScarError, match="give both --apex and --base"):
        analyse_mesh(mesh, _options(lad_phantom, apex=(0, 0, 0)))
    with pytest.raises(CardioScarError, match="no LV axis derivable"):
        analyse_mesh(mesh, _options(lad_phantom, apex=(0, 0, 0), base=(1, 1, 1)))
    with pytest.raises(CardioScarError, match="no point field 'scar_probability'"):
        analyse_mesh(mesh, AhaOptions(rv_point=off.rv_point))
    # a ball shell is as wide as it is long: no axis from its shape
    ball = vtk.vtkSphereSource()
    ball.SetRadius(30.0)
    ball.SetThetaResolution(40)
    ball.SetPhiResolution(40)
    ball.Update()
    poly = ball.GetOutput()
    field = numpy_to_vtk(np.zeros(poly.GetNumberOfPoints()), deep=True)
    field.SetName("scar_probability")
    poly.GetPointData().AddArray(field)
    with pytest.raises(CardioScarError, match="no LV axis derivable from the mesh's shape.*--apex"):
        analyse_mesh(Mesh(dataset=poly, space="LPS"), AhaOptions(rv_point=(30.0, 0.0, 0.0)))


def test_a_point_read_in_the_other_frame_is_named(lad_phantom):
    """A modeller reads the insertion off 3D Slicer, which shows RAS, for an LPS mesh: X and Y
    have the wrong signs. The refusal says so, instead of only that the point is far off."""
    mesh = _mesh(lad_phantom)
    anterior = _options(lad_phantom).rv_point
    read_in_ras = anterior * np.array([-1.0, -1.0, 1.0])
    assert np.linalg.norm(lad_phantom.points_lps - read_in_ras, axis=1).min() > 5.0  # far off, as the user's was
    with pytest.raises(CardioScarError, match=r"--rv-point .* from the nearest LV node .*with its X and Y negated it "
                                              r"lies on the wall.*3D Slicer shows RAS"):
        analyse_mesh(mesh, AhaOptions(field="scar_truth", rv_point=read_in_ras))
    far = np.array([anterior[0], anterior[1], anterior[2] + 500.0])  # off along z: no frame slip
    with pytest.raises(CardioScarError, match=r"in the mesh file's own coordinates$"):
        analyse_mesh(mesh, AhaOptions(field="scar_truth", rv_point=far))


def test_apex_and_base_points_and_border_zone_tags(lad_phantom):
    geometry = lad_phantom.geometry
    apex, base = geometry.to_lps(np.array([[0.0, 0.0, -geometry.c_epi], [0.0, 0.0, 0.0]]))
    grid = vtk.vtkUnstructuredGrid()
    grid.DeepCopy(lad_phantom.mesh)
    tags = np.where(lad_phantom.truth >= 0.5, 2, np.where(lad_phantom.truth >= 0.1, 1, 0)).astype(float)
    array = numpy_to_vtk(tags, deep=True)
    array.SetName("tags")
    grid.GetPointData().AddArray(array)
    result = analyse_mesh(Mesh(dataset=grid, space="LPS"), _options(lad_phantom, apex=apex, base=base,
                                                                      tags_field="tags", core_tag=2))
    assert result.summary["long_axis"]["source"] == "apex and base points"
    expected = analytic_segments(lad_phantom, lad_phantom.points_lps)
    assert (result.point_segments == expected).mean() > 0.95
    weights = node_volumes(lad_phantom.mesh)
    for row in result.rows:
        inside = expected == row["segment"]
        share = 100 * weights[inside & (tags == 1)].sum() / weights[inside].sum()
        assert row["border_zone_pct"] == pytest.approx(share, abs=3.0)
        # the dense core per segment (an ablation plan's figure; the table had the border zone only)
        core_share = 100 * weights[inside & (tags == 2)].sum() / weights[inside].sum()
        assert row["core_pct"] == pytest.approx(core_share, abs=3.0)
    assert max(row["core_pct"] for row in result.rows) > 20.0
    lv = result.summary["lv"]
    assert lv["border_zone_pct"] == pytest.approx(100 * weights[tags == 1].sum() / weights.sum(), rel=1e-6)
    assert lv["core_pct"] == pytest.approx(100 * weights[tags == 2].sum() / weights.sum(), rel=1e-6)
    assert result.summary["core_tag"] == 2
    with pytest.raises(CardioScarError, match=r"--core-tag 1 is the border-zone tag \(--border-zone-tag\)"):
        analyse_mesh(Mesh(dataset=grid, space="LPS"), _options(lad_phantom, tags_field="tags", core_tag=1))


# --------------------------------------------------------------------------- the real ACDC labels

ACDC_LABELS = SHARED_DATA / "acdc_patient101" / "patient101_frame01_gt.nii.gz"


def voxel_mesh(labels: np.ndarray, ijk_to_lps: np.ndarray, label: int) -> vtk.vtkUnstructuredGrid:
    """Hexahedra of the voxels carrying ``label`` (a volumetric mesh of the real myocardium)."""
    voxels = np.argwhere(labels == label)[:, ::-1]  # (i, j, k)
    offsets = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]])
    corners = (voxels[:, None, :] + offsets[None]).reshape(-1, 3)
    unique, inverse = np.unique(corners, axis=0, return_inverse=True)
    points_lps = (unique - 0.5) @ ijk_to_lps[:3, :3].T + ijk_to_lps[:3, 3]
    grid = vtk.vtkUnstructuredGrid()
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(points_lps), deep=True))
    grid.SetPoints(points)
    conn = np.hstack([np.full((len(voxels), 1), 8), inverse.reshape(-1, 8)]).astype(np.int64).ravel()
    cells = vtk.vtkCellArray()
    cells.ImportLegacyFormat(numpy_to_vtkIdTypeArray(conn, deep=True))
    grid.SetCells(vtk.VTK_HEXAHEDRON, cells)
    field = numpy_to_vtk(np.zeros(len(points_lps)), deep=True)
    field.SetName("scar_probability")
    grid.GetPointData().AddArray(field)
    return grid


@pytest.fixture(scope="module")
def acdc():
    image = sitk.ReadImage(str(ACDC_LABELS))
    labels = sitk.GetArrayFromImage(image)
    matrix = ijk_to_lps_of(image)
    return image, labels, matrix, voxel_mesh(labels, matrix, 2)


def test_acdc_rv_insertion_found_and_segment_1_borders_the_anterior_junction(acdc):
    image, labels, matrix, grid = acdc
    normal = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    options = AhaOptions(labels=LabelMap(labels, matrix, ACDC_LABELS.name), slice_normal=normal)
    result = analyse_mesh(Mesh(dataset=grid, space="LPS"), options)
    frame = result.frame
    assert result.summary["rv_insertion"]["source"].startswith("RV label 1")
    # ACDC's placeholder direction (identity): its frame is not the patient's, so the arc's ends,
    # named in the anatomical direction, are not judged by it (aha_mirror_check.py)
    assert result.summary["rv_insertion"]["frame_handedness"]["verdict"].startswith("not checked: the long axis lies")
    assert 60.0 < frame.septum_deg < 200.0
    points = vtk_to_numpy(grid.GetPoints().GetData())
    anterior = np.asarray(result.summary["rv_insertion"]["anterior_lps"])
    # the nodes around the anterior junction, in the basal and mid rings: segments 1|2 and 7|8 meet there
    levels = frame.levels(points)
    near = (np.linalg.norm(points - anterior, axis=1) < 12.0) & (levels < 2)
    found = set(result.point_segments[near].tolist())
    assert found & {1, 7} and found & {2, 8} and found <= {1, 2, 7, 8, 6, 12, 3, 9}, found
    # the septum (myocardium touching the RV) lies in the septal segments
    touching = np.argwhere(_touching_rv(labels))[:, ::-1]
    contact = touching @ matrix[:3, :3].T + matrix[:3, 3]
    segments = frame.segments(contact)
    septal = np.isin(segments, (2, 3, 8, 9, 14))
    assert septal.mean() > 0.8, np.bincount(segments)


def _touching_rv(labels: np.ndarray) -> np.ndarray:
    rv = labels == 1
    grown = rv.copy()
    grown[:, 1:, :] |= rv[:, :-1, :]
    grown[:, :-1, :] |= rv[:, 1:, :]
    grown[:, :, 1:] |= rv[:, :, :-1]
    grown[:, :, :-1] |= rv[:, :, 1:]
    return grown & (labels == 2)


def test_acdc_rotated_scene_gives_the_same_table(acdc):
    image, labels, matrix, grid = acdc
    rotation = np.array([[0.0, -1.0, 0.0], [0.6, 0.0, -0.8], [0.8, 0.0, 0.6]])
    normal = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    first = analyse_mesh(Mesh(dataset=grid, space="LPS"),
                         AhaOptions(labels=LabelMap(labels, matrix, "acdc"), slice_normal=normal))
    moved = vtk.vtkUnstructuredGrid()
    moved.DeepCopy(grid)
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(vtk_to_numpy(grid.GetPoints().GetData()) @ rotation.T), deep=True))
    moved.SetPoints(points)
    turned = np.eye(4)
    turned[:3, :3] = rotation
    second = analyse_mesh(Mesh(dataset=moved, space="LPS"),
                          AhaOptions(labels=LabelMap(labels, turned @ matrix, "acdc"), slice_normal=rotation @ normal))
    np.testing.assert_array_equal(first.point_segments, second.point_segments)


def test_label_map_without_rv_label_is_refused(acdc):
    image, labels, matrix, grid = acdc
    with pytest.raises(CardioScarError, match=r"no voxel labelled 7 \(--rv-label\); its labels are \[0, 1, 2, 3\]"):
        analyse_mesh(Mesh(dataset=grid, space="LPS"),
                     AhaOptions(labels=LabelMap(labels, matrix, "acdc", rv_label=7)))


# --------------------------------------------------------------------------- the bull's-eye


def test_bullseye_draws_the_border_zone_and_the_dense_core_when_the_table_has_them():
    """With tags (``--tags-field`` and ``--core-tag``) the picture an ablation plan is read from shows
    the border zone and the dense core per segment beside the scar; it drew the scar only."""
    from cardioscar.aha.bullseye import bullseye_figure

    rows = [{"segment": s, "scar_pct": 50.0, "border_zone_pct": 20.0, "core_pct": 30.0} for s in range(1, 18)]
    titles = [axis.get_title() for axis in bullseye_figure(rows).axes if axis.get_title()]
    assert titles == ["scar (% of segment)", "border zone (% of segment)", "dense core (% of segment)"]


def test_the_error_risk_is_averaged_per_segment_and_drawn(lad_phantom, tmp_path):
    """The MC-dropout spread says little between the slices (about 0 there with the shape prior);
    ``scar_error_risk``, which ``apply`` writes beside it, says where the call is unsure. With the
    field on the mesh each segment gets its volume-weighted mean, ``aha.csv`` at 0.001 and a disc;
    without it, no column."""
    import csv

    from cardioscar.aha.analysis import write_outputs
    from cardioscar.aha.bullseye import bullseye_figure
    from cardioscar.io.meshio import read_mesh, write_mesh

    mesh = _mesh(lad_phantom)
    without_risk = analyse_mesh(mesh, _options(lad_phantom))
    segments = without_risk.point_segments
    assert all("error_risk_mean" not in row for row in without_risk.rows)
    risk = np.where(segments == 4, 0.8, 0.1)  # unsure in the basal inferior segment only
    path = tmp_path / "with_risk.vtk"
    write_mesh(mesh, path, {"scar_truth": mesh.point_array("scar_truth"), "scar_error_risk": risk,
                            "scar_uncertainty": np.full(len(risk), 0.01)})
    result = analyse_mesh(read_mesh(path), _options(lad_phantom))
    assert all(row["uncertainty_mean"] == pytest.approx(0.01) for row in result.rows if row["covered"])
    means = {row["segment"]: row["error_risk_mean"] for row in result.rows}
    assert means[4] == pytest.approx(0.8) and all(means[s] == pytest.approx(0.1) for s in means if s != 4)
    assert result.summary["error_risk_field"] == "scar_error_risk"
    write_outputs(read_mesh(path), result, tmp_path / "aha")
    with open(tmp_path / "aha" / "aha.csv", encoding="utf-8") as handle:
        assert next(row for row in csv.DictReader(handle) if row["segment"] == "4")["error_risk_mean"] == "0.800"
    titles = [axis.get_title() for axis in bullseye_figure(result.rows).axes]
    # the risk's disc in place of the MC spread's (the table keeps the spread)
    assert "mean error risk (call at 0.5 wrong)" in titles and "mean uncertainty (MC std)" not in titles


def test_bullseye_layout_and_picture(tmp_path):
    """Segment 1 at the top, 2 upper left (septum on the left), 4 at the bottom, 17 in the centre;
    the PNG shows a value where its segment is drawn."""
    assert segment_at(3.5, 90.0) == 1 and segment_at(3.5, 150.0) == 2 and segment_at(3.5, 270.0) == 4
    assert segment_at(2.5, 90.0) == 7 and segment_at(1.5, 180.0) == 14 and segment_at(0.5, 10.0) == 17
    assert segment_at(1.5, 0.0) == 16 and segment_at(4.5, 0.0) is None
    for segment in range(1, 18):
        inner, outer, start, end = segment_span(segment)
        assert segment_at(0.5 * (inner + outer), 0.5 * (start + end)) == segment
    rows = [{"segment": s, "scar_pct": 100.0 if s == 1 else 0.0} for s in range(1, 18)]
    path = tmp_path / "bullseye.png"
    write_bullseye(rows, path)
    import matplotlib.image

    picture = matplotlib.image.imread(str(path))
    height, width = picture.shape[:2]
    red = (picture[..., 0] > 0.35) & (picture[..., 1] < 0.1) & (picture[..., 2] < 0.1)
    rows_red, cols_red = np.nonzero(red)
    assert len(rows_red) > 100
    # the saturated segment lies in the upper half, centred left-right
    assert rows_red.mean() < 0.45 * height and abs(cols_red.mean() / width - 0.5) < 0.1


def test_anatomical_numbering_direction_on_the_real_bivme_heart():
    """One insertion point: the numbers must run from it over the septum. On the real biv-me
    patient (LV and RV surfaces in the scanner's LPS frame) the septum faces the RV's centre; the
    anterior insertion is the end of a 120-degree septum that faces the front (-y in LPS)."""
    from cardioscar.aha.segments import axis_from_shape, insertion_frame
    from cardioscar.io.meshio import read_mesh

    folder = SHARED_DATA / "bivme_patient1" / "fitted_model_frame000"
    lv = read_mesh(folder / "patient1_LV_ENDOCARDIAL_000.vtk").points_lps()
    rv = read_mesh(folder / "patient1_RV_ENDOCARDIAL_000.vtk").points_lps()
    axis = axis_from_shape(lv, np.ones(len(lv)))
    assert axis.base_direction[2] > 0.5  # the base lies above the apex (superior, +z in LPS)
    septum = axis.radial(rv.mean(axis=0)[None])[0]
    septum /= np.linalg.norm(septum)
    second = np.cross(axis.base_direction, septum)
    ends = [axis.origin + 30.0 * (math.cos(a) * septum + math.sin(a) * second) for a in (math.radians(60), -math.radians(60))]
    anterior = min(ends, key=lambda p: (p - axis.origin)[1])  # LPS: anterior is -y
    frame = insertion_frame(axis, anterior, None, cavity_tip=-1e3, base_height=1e3, source="test")
    around = [axis.origin + 30.0 * (math.cos(a) * septum + math.sin(a) * second) for a in np.radians([-10, 10])]
    assert set(frame.segments(np.array(around)).tolist()) == {8, 9}
    assert frame.segments((axis.origin - 30.0 * septum)[None])[0] in (11, 12)


# --------------------------------------------------------------------------- the command line


def test_cli_writes_table_plot_and_segmented_mesh(lad_phantom, tmp_path):
    """``cardioscar aha`` on a mesh file in RAS (Slicer's marker): the points are given in the
    file's own frame and the table equals the one computed in LPS."""
    import csv
    import json

    from conftest import run_cli, run_cli_in_process
    from cardioscar.io.meshio import read_mesh, write_mesh

    grid = vtk.vtkUnstructuredGrid()
    grid.DeepCopy(lad_phantom.mesh)
    ras = lad_phantom.points_lps * np.array([-1.0, -1.0, 1.0])
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(ras), deep=True))
    grid.SetPoints(points)
    mesh_path = tmp_path / "heart_ras.vtk"
    write_mesh(Mesh(dataset=grid, space="RAS"), mesh_path, {"scar_truth": lad_phantom.truth})
    options = _options(lad_phantom)
    to_ras = np.array([-1.0, -1.0, 1.0])
    point_text = [",".join(f"{v:.4f}" for v in p * to_ras) for p in (options.rv_point, options.rv_inferior_point)]
    out = tmp_path / "aha"
    done = run_cli("aha", "--mesh", mesh_path, "--field", "scar_truth", f"--rv-point={point_text[0]}",
                   f"--rv-inferior-point={point_text[1]}", "--output-dir", out)
    assert done.returncode == 0, done.stderr
    with open(out / "aha.csv") as handle:
        table = list(csv.DictReader(handle))
    expected = analyse_mesh(_mesh(lad_phantom), options).rows
    assert [int(r["segment"]) for r in table] == list(range(1, 18))
    for row, reference in zip(table, expected):
        assert float(row["scar_pct"]) == pytest.approx(reference["scar_pct"], abs=0.005)
        assert row["territory"] == reference["territory"]
        # fixed decimals per column (12.0 was written "12"): % to 0.01, ml to 0.001, the MC spread to 0.0001
        assert re.fullmatch(r"\d+\.\d{2}", row["scar_pct"]) and re.fullmatch(r"\d+\.\d{3}", row["scar_volume_ml"])
        assert re.fullmatch(r"\d+\.\d{3}", row["myocardial_volume_ml"]) and row["covered"] == "yes"
    summary = json.loads((out / "aha.json").read_text(encoding="utf-8"))
    assert len(summary["segments"]) == 17 and summary["transmurality_method"].startswith("nearest-endocardium")
    assert summary["rv_insertion"]["sense"] == "anatomical" and "mirror" not in done.stderr
    # the whole LV's burden beside the segments (aha.json and the log), as a cohort's summary gives it
    myocardium = sum(r["myocardial_volume_ml"] for r in expected)
    scar = sum(r["scar_volume_ml"] for r in expected)
    assert summary["lv"] == pytest.approx({"myocardial_volume_ml": myocardium, "scar_volume_ml": scar,
                                           "scar_pct": 100 * scar / myocardium}, rel=1e-6)
    assert f"LV scar: {scar:.2f} ml of {myocardium:.2f} ml of myocardium ({100 * scar / myocardium:.1f} %)" in done.stderr
    # the log's line names every segment, the scar-free ones as 0% (they were left out, as if not measured)
    logged = re.search(r"AHA scar per segment: (.*)", done.stderr).group(1).split(", ")
    assert [cell.split(":")[0] for cell in logged] == [str(n) for n in range(1, 18)]
    assert any(r["scar_pct"] == 0 for r in expected) and all(
        cell.endswith(f":{reference['scar_pct']:.0f}%") or (cell.endswith(":<1%") and 0 < reference["scar_pct"] < 1)
        for cell, reference in zip(logged, expected))
    assert (out / "bullseye.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = read_mesh(out / "aha_mesh.vtk")
    assert written.space == "RAS"
    segments = written.point_array("aha_segment")
    assert set(np.unique(segments)) == set(range(1, 18))
    # the points the other way round: the command warns in one line and aha.json records it
    swapped = run_cli_in_process("aha", "--mesh", mesh_path, "--field", "scar_truth",
                                 f"--rv-point={point_text[1]}", f"--rv-inferior-point={point_text[0]}",
                                 "--output-dir", tmp_path / "swapped")
    assert swapped.returncode == 0, swapped.stderr
    warned = [line for line in swapped.stderr.splitlines() if "mirror" in line]
    assert len(warned) == 1 and "give the anterior insertion first (--rv-point" in warned[0]
    record = json.loads((tmp_path / "swapped" / "aha.json").read_text(encoding="utf-8"))["rv_insertion"]
    assert record["sense"] == "mirrored" and record["warning"] in warned[0]
    cells = vtk_to_numpy(written.dataset.GetCellData().GetArray("aha_segment"))
    assert len(cells) == written.dataset.GetNumberOfCells() and set(np.unique(cells)) == set(range(1, 18))


def test_cli_errors_are_one_line(lad_phantom, tmp_path, capsys):
    from conftest import run_cli_in_process
    from cardioscar.io.meshio import write_mesh

    mesh_path = tmp_path / "heart.vtk"
    write_mesh(_mesh(lad_phantom), mesh_path, {"scar_truth": lad_phantom.truth})
    out = tmp_path / "aha"
    far = ",".join(f"{v:.3f}" for v in lad_phantom.points_lps.max(axis=0) + 40.0)
    done = run_cli_in_process("aha", "--mesh", mesh_path, "--field", "scar_truth", f"--rv-point={far}",
                              "--output-dir", out)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert errors[0].startswith("cardioscar aha: error: --rv-point is") and "at most 5 mm" in errors[0]
    assert not out.exists() or not any(out.iterdir())

    from cardioscar.cli import main  # the rest in process

    assert main(["aha", "--mesh", str(mesh_path), "--field", "scar_truth", "--rv-inferior-point", "1,2,3",
                 "--output-dir", str(out)]) == 2
    assert "--rv-inferior-point needs --rv-point" in capsys.readouterr().err
    # a point starting with a negative number is a value (argparse alone took it for an option)
    assert main(["aha", "--mesh", str(mesh_path), "--field", "scar_truth", "--rv-point", "-500.5,1e3,-2",
                 "--output-dir", str(out)]) == 2
    assert "cardioscar aha: error: --rv-point is" in capsys.readouterr().err


def test_lv_mask_segments_only_the_lv_of_a_two_chamber_mesh(lad_phantom):
    """A mesh holding more than the LV (here the LV plus a shifted copy standing in for the RV):
    with --lv-mask only LV nodes and cells get segments, and the table is the LV-only one."""
    shifted = vtk.vtkUnstructuredGrid()
    shifted.DeepCopy(lad_phantom.mesh)
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(lad_phantom.points_lps + np.array([90.0, 0.0, 0.0])), deep=True))
    shifted.SetPoints(points)
    append = vtk.vtkAppendFilter()
    append.AddInputData(lad_phantom.mesh)
    append.AddInputData(shifted)
    append.Update()
    both = append.GetOutput()
    n = lad_phantom.mesh.GetNumberOfPoints()
    mask = numpy_to_vtk(np.r_[np.full(n, 2.0), np.full(n, 5.0)], deep=True)  # region labels: LV 2, "RV" 5
    mask.SetName("lv")
    both.GetPointData().AddArray(mask)
    result = analyse_mesh(Mesh(dataset=both, space="LPS"), _options(lad_phantom, lv_mask_field="lv", lv_mask_value=2))
    alone = analyse_mesh(_mesh(lad_phantom), _options(lad_phantom))
    np.testing.assert_array_equal(result.point_segments[:n], alone.point_segments)
    assert not result.point_segments[n:].any() and not result.cell_segments[len(alone.cell_segments):].any()
    for a, b in zip(alone.rows, result.rows):
        assert b["scar_pct"] == pytest.approx(a["scar_pct"], abs=1e-9)
        assert b["transmurality_mean_pct"] == pytest.approx(a["transmurality_mean_pct"], abs=1e-9)
    nothing = numpy_to_vtk(np.zeros(2 * n), deep=True)
    nothing.SetName("nothing")
    both.GetPointData().AddArray(nothing)
    with pytest.raises(CardioScarError, match="--lv-mask 'nothing' marks 0 nodes as LV"):
        analyse_mesh(Mesh(dataset=both, space="LPS"), _options(lad_phantom, lv_mask_field="nothing"))


def test_the_tags_noted_by_export_are_read_and_a_contradicting_tag_refused(lad_phantom, tmp_path, capsys):
    """``export --format vtu --tags 0,1,2`` notes its tag values beside ``tissue_tag``: ``aha
    --tags-field tissue_tag`` then counts border zone 1 and core 2 without being told, and refuses
    ``--border-zone-tag 2`` (the README's advice for the default tags), which counted this export's
    core as border zone and no core, exit 0. A tags field without the note is refused as before."""
    from cardioscar.cli import main
    from cardioscar.io.meshio import read_mesh, set_text_field, write_mesh
    from cardioscar.simulation.opencarp import TAG_VALUES_ARRAY

    scar = np.clip(lad_phantom.truth * 1.2, 0.0, 1.0)  # a border zone (0.5-0.8) and a core (>= 0.8)
    mesh_path, tagged = tmp_path / "heart.vtk", tmp_path / "tagged.vtu"
    write_mesh(_mesh(lad_phantom), mesh_path, {"scar_probability": scar})
    assert main(["export", "--mesh", str(mesh_path), "--format", "vtu", "--tags", "0,1,2", "--output",
                 str(tagged)]) == 0
    mesh = read_mesh(tagged)
    tags = mesh.point_array("tissue_tag")
    assert set(np.unique(tags)) == {0, 1, 2}
    noted = analyse_mesh(mesh, dataclasses.replace(_options(lad_phantom), field="scar_probability", tags_field="tissue_tag"))
    weights = node_volumes(mesh.dataset)
    for row in noted.rows:
        inside = noted.point_segments == row["segment"]
        if weights[inside].sum() == 0:
            continue
        # one field's export: its tags are probability bands, counted in the band columns (test_one_field_aha_channels)
        assert row["band_pct"] == pytest.approx(100 * weights[inside & (tags == 1)].sum()
                                                / weights[inside].sum(), abs=1e-6)
        assert row["top_band_pct"] == pytest.approx(100 * weights[inside & (tags == 2)].sum() / weights[inside].sum(),
                                                    abs=1e-6)
    assert noted.summary["border_zone_tag"] == 1 and noted.summary["core_tag"] == 2
    point = ",".join(f"{v:.4f}" for v in _options(lad_phantom).rv_point)
    status = main(["aha", "--mesh", str(tagged), "--rv-point", point, "--tags-field", "tissue_tag",
                   "--border-zone-tag", "2", "--output-dir", str(tmp_path / "aha")])
    err = capsys.readouterr().err
    assert status == 2 and "--border-zone-tag 2 is not its border zone" in err and "give --border-zone-tag 1" in err
    set_text_field(mesh.dataset, TAG_VALUES_ARRAY, None)  # tags without the note (an older export, a cohort's)
    with pytest.raises(CardioScarError, match="give --border-zone-tag"):
        analyse_mesh(mesh, dataclasses.replace(_options(lad_phantom), field="scar_probability", tags_field="tissue_tag"))


def test_cli_refuses_options_that_would_be_ignored(lad_phantom, tmp_path, capsys):
    """In process through cardioscar.cli.main (the subprocess tests above cover the entry point)."""
    from cardioscar.cli import main
    from cardioscar.io.meshio import write_mesh

    mesh_path = tmp_path / "heart.vtk"
    write_mesh(_mesh(lad_phantom), mesh_path, {"scar_truth": lad_phantom.truth})
    point = ",".join(f"{v:.4f}" for v in _options(lad_phantom).rv_point)
    for extra, message in ((["--rv-label", "3"], "--rv-label needs --labels"),
                           (["--border-zone-tag", "2"], "--border-zone-tag needs --tags-field"),
                           (["--core-tag", "3"], "--core-tag needs --tags-field"),
                           (["--apex", "0,0,0", "--base", "0,0,50", "--slice-normal-from", "x.nii.gz"],
                            "give the long axis once"),
                           (["--uncertainty-field", "spread"], "no point field 'spread'")):
        status = main(["aha", "--mesh", str(mesh_path), "--field", "scar_truth", "--rv-point", point,
                       "--output-dir", str(tmp_path / "out"), *extra])
        err = capsys.readouterr().err
        assert status == 2 and message in err, (extra, err)
    assert not (tmp_path / "out").exists()


def test_insertions_from_a_contact_arc_are_named_right_on_the_real_bivme_heart():
    """The arc where the real RV lies against the LV (RV endocardium within 12 mm of the LV
    endocardium, the septum's thickness): its anterior end lies in front of (LPS -y) and above
    (+z) its inferior end, as in the patient."""
    from scipy.spatial import cKDTree

    from cardioscar.aha.insertion import insertions_from_contacts
    from cardioscar.aha.segments import axis_from_shape
    from cardioscar.io.meshio import read_mesh

    folder = SHARED_DATA / "bivme_patient1" / "fitted_model_frame000"
    lv = read_mesh(folder / "patient1_LV_ENDOCARDIAL_000.vtk").points_lps()
    rv = read_mesh(folder / "patient1_RV_ENDOCARDIAL_000.vtk").points_lps()
    distance, _ = cKDTree(lv).query(rv)
    found = insertions_from_contacts(rv[distance < 12.0], axis_from_shape(lv, np.ones(len(lv))))
    assert found.anterior[1] < found.inferior[1] - 10.0 and found.anterior[2] > found.inferior[2] + 10.0
