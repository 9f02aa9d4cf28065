"""The Slicer Logic's AHA analysis against the real MRML library (slicer-core), without Qt.

The model, markups and label map are real MRML nodes, loaded through Slicer's storage nodes
where files exist. What this cannot prove: how the panel (Qt) shows the table and the picture.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import slicer  # noqa: E402  (slicer-core)
import vtk  # noqa: E402
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.aha import AHA_TABLE_REFERENCE, apply_segments, read_aha_inputs  # noqa: E402
from CardioScarLogic.wording import library_warnings  # noqa: E402
from cardioscar.aha import AhaOptions, analyse_mesh  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.io.meshio import Mesh, write_mesh  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom  # noqa: E402

INSERTIONS_DEG = (30.0, 150.0)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    phantom = make_phantom(PhantomConfig(target_nodes=6000, seed=0, territories=("LAD",)))
    folder = tmp_path_factory.mktemp("aha")
    path = folder / "heart.vtk"
    write_mesh(Mesh(dataset=phantom.mesh, space="LPS"), path, {"scar_probability": phantom.truth})
    geometry = phantom.geometry
    insertions = [geometry.to_lps(geometry.wall_to_local(np.array([0.5]), np.array([1.2]),
                                                         np.array([math.radians(a)])))[0] for a in INSERTIONS_DEG]
    expected = analyse_mesh(Mesh(dataset=phantom.mesh, space="LPS"),
                            AhaOptions(field="scar_truth", rv_point=insertions[0], rv_inferior_point=insertions[1]))
    return {"path": path, "insertions": insertions, "expected": expected}


def _markups(scene, points_lps, name="RV insertion"):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    for point in points_lps:
        node.AddControlPointWorld(vtk.vtkVector3d(-point[0], -point[1], point[2]))
    return node


def _table(node) -> dict[str, list]:
    table = node.GetTable()
    return {table.GetColumnName(c): [table.GetValue(r, c).ToString() for r in range(table.GetNumberOfRows())]
            for c in range(table.GetNumberOfColumns())}


def test_markups_points_give_the_librarys_table_arrays_and_a_second_table(case, tmp_path):
    context = csl.create_scene()
    model = csl.load_model(context.scene, case["path"])
    # the model shown under a parent transform: the markups are placed on it as the user sees it
    transform = context.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 1, -1.0), matrix.SetElement(1, 0, 1.0), matrix.SetElement(0, 0, 0.0), matrix.SetElement(1, 1, 0.0)
    matrix.SetElement(2, 3, 25.0)
    transform.SetMatrixTransformToParent(matrix)
    model.SetAndObserveTransformNodeID(transform.GetID())
    to_world = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    world = [(flip @ to_world @ flip @ np.append(p, 1.0))[:3] for p in case["insertions"]]
    markups = _markups(context.scene, world)
    before_points = vtk_to_numpy(model.GetMesh().GetPoints().GetData()).copy()
    png = tmp_path / "bullseye.png"
    result = csl.CardioScarLogic.aha_segments(model, csl.AhaInputs(rv_markups=markups), bullseye_png=png)
    expected = case["expected"]
    np.testing.assert_array_equal(result.point_segments, expected.point_segments)
    written = vtk_to_numpy(model.GetMesh().GetPointData().GetArray("aha_segment"))
    np.testing.assert_array_equal(written, expected.point_segments)
    cells = vtk_to_numpy(model.GetMesh().GetCellData().GetArray("aha_segment"))
    assert len(cells) == model.GetMesh().GetNumberOfCells() and set(np.unique(cells)) == set(range(1, 18))
    np.testing.assert_array_equal(vtk_to_numpy(model.GetMesh().GetPoints().GetData()), before_points)
    table = model.GetNodeReference(AHA_TABLE_REFERENCE)
    assert table is result.table_node and table.GetNumberOfRows() == 17
    columns = _table(table)
    assert columns["segment"] == [str(s) for s in range(1, 18)]
    scar_column = list(columns).index("scar_pct")
    for index, row in enumerate(expected.rows):
        assert table.GetTable().GetValue(index, scar_column).ToDouble() == pytest.approx(row["scar_pct"], abs=1e-9)
    assert png.read_bytes()[:4] == b"\x89PNG"
    # a second run updates the same table node
    again = csl.CardioScarLogic.aha_segments(model, csl.AhaInputs(rv_markups=markups))
    assert again.table_node is table
    assert len([n for n in context.scene.GetNodesByClass("vtkMRMLTableNode")]) == 1


def test_a_models_error_risk_gives_the_tables_column_and_is_watched(case, tmp_path):
    """The Slicer table gets the library's ``error_risk_mean`` from the model's ``scar_error_risk``,
    and the analysis' inputs include that field, so a model whose risk is rewritten while the
    worker runs is refused (main watched only the probability, uncertainty, mask and tags)."""
    from cardioscar.io.meshio import read_mesh

    heart = read_mesh(case["path"])
    risk = np.linspace(0.0, 0.4, heart.n_points)
    path = tmp_path / "risky.vtk"
    write_mesh(heart, path, {"scar_probability": heart.point_array("scar_probability"), "scar_error_risk": risk})
    context = csl.create_scene()
    model = csl.load_model(context.scene, path)
    markups = _markups(context.scene, case["insertions"])
    result = csl.CardioScarLogic.aha_segments(model, csl.AhaInputs(rv_markups=markups))
    assert "error_risk_mean" in _table(result.table_node)
    job = read_aha_inputs(model, csl.AhaInputs(rv_markups=markups))
    model.GetMesh().GetPointData().GetArray("scar_error_risk").SetValue(0, 0.9)
    model.GetMesh().GetPointData().GetArray("scar_error_risk").Modified()
    with pytest.raises(CardioScarError, match="its field 'scar_error_risk' changed"):
        apply_segments(model, result.rows, result.summary, result.point_segments, result.cell_segments, job.state)


def test_the_tags_of_slicers_tag_on_one_field_give_band_columns(case, tmp_path):
    """*Tag* on one scar field notes its tags as probability bands beside ``tissue_tag``: the Logic's
    AHA with ``tags_field`` fills the table's ``band_pct``/``top_band_pct``, not the tissue
    classes' ``border_zone_pct``/``core_pct`` (one field cut at two probabilities is no tissue)."""
    from CardioScarLogic.tissue import tag_model_node
    from cardioscar.io.meshio import read_mesh

    heart = read_mesh(case["path"])
    path = tmp_path / "graded.vtk"  # a graded field: 0.5-0.8 and >= 0.8 both present
    write_mesh(heart, path, {"scar_probability": np.clip(heart.point_array("scar_probability") * 1.2, 0.0, 1.0)})
    context = csl.create_scene()
    model = csl.load_model(context.scene, path)
    tag_model_node(model, 0.5, 0.8)
    markups = _markups(context.scene, case["insertions"])
    result = csl.CardioScarLogic.aha_segments(model, csl.AhaInputs(
        rv_markups=markups, measure=AhaOptions(tags_field="tissue_tag", transmurality="off")))
    columns = _table(result.table_node)
    assert "band_pct" in columns and "top_band_pct" in columns and "core_pct" not in columns
    assert result.summary["classes"] == "bands" and result.summary["lv"]["top_band_pct"] > 0


def test_whole_number_floats_stay_double_columns_through_json_and_a_saved_scene(case, tmp_path):
    """The panel's table is made from the worker's aha.json (CardioScarLogic.background): a float
    column whose every value is a whole number (a scar-free model's scar_pct: all 0.0) must stay a
    double column there and in a table file Slicer saves and reads back (its .schema.tsv), and the
    library's int columns int ones. (Slicer's table view prints 12.0 as "12": its own vtkVariant
    text, qMRMLTableModel.cxx; the column stays double.)"""
    import json

    from CardioScarLogic.aha import update_aha_table

    rows = [{**row, "scar_volume_ml": 0.0, "scar_pct": 0.0, "myocardial_volume_ml": float(index)}
            for index, row in enumerate(case["expected"].rows, start=1)]
    kinds = {key: type(value) for key, value in rows[0].items()}
    rows = json.loads(json.dumps({"rows": rows}))["rows"]  # as the worker writes and the panel reads it
    context = csl.create_scene()
    model = csl.load_model(context.scene, case["path"])
    written = update_aha_table(model, rows)
    storage = context.scene.AddNewNodeByClass("vtkMRMLTableStorageNode")
    storage.SetFileName(str(tmp_path / "aha.tsv"))
    assert storage.WriteData(written)
    read = context.scene.AddNewNodeByClass("vtkMRMLTableNode")
    assert storage.ReadData(read)
    expected = {int: "vtkIntArray", bool: "vtkIntArray", float: "vtkDoubleArray", str: "vtkStringArray"}
    for node in (written, read):
        table = node.GetTable()
        got = {table.GetColumnName(c): table.GetColumn(c) for c in range(table.GetNumberOfColumns())}
        assert list(got) == list(kinds)
        for key, kind in kinds.items():
            assert got[key].IsA(expected[kind]), (key, got[key].GetClassName())
    assert read.GetTable().GetValue(2, list(kinds).index("myocardial_volume_ml")).ToDouble() == 3.0


def test_markups_in_the_wrong_order_are_warned_and_recorded(case, warnings_of_cardioscar):
    """The inferior insertion placed first: the library's warning (which the panel's log shows) and
    the result's ``rv_insertion.sense``; the right order (the case's expected table) is anatomical.
    The Logic's log and its result's summary name its markups' points (the summary said the command
    line's --rv-point to the console's user); ``library_summary`` keeps the library's words."""
    assert case["expected"].summary["rv_insertion"]["sense"] == "anatomical"
    context = csl.create_scene()
    model = csl.load_model(context.scene, case["path"])
    markups = _markups(context.scene, case["insertions"][::-1])
    with library_warnings() as heard:
        result = csl.CardioScarLogic.aha_segments(model, csl.AhaInputs(rv_markups=markups))
    warned = [message for message in heard if "mirror" in message]
    assert len(warned) == 1 and result.summary["rv_insertion"]["sense"] == "mirrored"
    assert result.library_summary["rv_insertion"]["warning"] == warned[0] and "--rv-point" in warned[0]
    [logged] = [message for message in warnings_of_cardioscar if "mirror" in message]
    assert "the anterior insertion first (point 1 of inputs.rv_markups, then its point 2)" in logged and "--" not in logged
    assert result.summary["rv_insertion"]["warning"] == logged


def test_one_markup_on_a_mirrored_heart_is_warned_and_recorded(tmp_path, warnings_of_cardioscar):
    """biv-me's real heart mirrored across x (a frame with one sign changed), one markup: the
    library's frame check warns (the panel's log) and the result's ``frame_handedness`` records it."""
    from conftest import bivme_lv_mesh

    path, anterior, _ = bivme_lv_mesh(tmp_path / "mirrored.vtk", (1.0, 0.0, 0.0))
    context = csl.create_scene()
    model = csl.load_model(context.scene, path)
    with library_warnings() as heard:
        result = csl.CardioScarLogic.aha_segments(model, csl.AhaInputs(
            rv_markups=_markups(context.scene, [anterior]), measure=AhaOptions(transmurality="off")))
    (warned,) = [message for message in heard if "mirror" in message]
    assert result.library_summary["rv_insertion"]["frame_handedness"]["warning"] == warned
    (logged,) = [message for message in warnings_of_cardioscar if "mirror" in message]
    assert "--" not in logged and "(point 1 of inputs.rv_markups, then its point 2)" in logged, logged
    assert result.summary["rv_insertion"]["frame_handedness"]["warning"] == logged


def test_bad_inputs_leave_the_model_as_it_was(case):
    context = csl.create_scene()
    model = csl.load_model(context.scene, case["path"])
    empty = context.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "nothing placed")
    with pytest.raises(CardioScarError, match="'nothing placed' has 0 point"):
        csl.CardioScarLogic.aha_segments(model, csl.AhaInputs(rv_markups=empty))
    far = _markups(context.scene, [np.array([500.0, 500.0, 500.0])])
    with pytest.raises(CardioScarError, match="^inputs.rv_markups is .* mm from the nearest LV node") as info:
        csl.CardioScarLogic.aha_segments(model, csl.AhaInputs(rv_markups=far))  # the Logic's name, not --rv-point
    assert info.value.library_message.startswith("--rv-point is ")  # what the batch script prints
    with pytest.raises(CardioScarError, match="no RV insertion: place a markups point"):
        csl.CardioScarLogic.aha_segments(model, csl.AhaInputs())
    assert model.GetMesh().GetPointData().GetArray("aha_segment") is None
    assert model.GetNodeReference(AHA_TABLE_REFERENCE) is None



def test_the_inputs_are_checked_on_a_model_before_it_has_a_result(case, tmp_path, warnings_of_cardioscar):
    """``check_aha_inputs`` on the heart mesh as loaded for a training (no scar_probability yet): a
    markup off the wall is refused with the error ``aha_segments`` gives on the model with its result
    (the batch script says it before its training, not after), the markups in the wrong order are
    warned of, and right inputs pass; the model is left as it was."""
    from cardioscar.io.meshio import read_mesh

    mesh = read_mesh(case["path"])
    mesh.dataset.GetPointData().RemoveArray("scar_probability")
    write_mesh(mesh, tmp_path / "heart.vtk")
    context = csl.create_scene()
    model, result_model = csl.load_model(context.scene, tmp_path / "heart.vtk"), csl.load_model(context.scene, case["path"])
    data = model.GetMesh().GetPointData()
    fields = [data.GetArrayName(i) for i in range(data.GetNumberOfArrays())]
    assert "scar_probability" not in fields
    far = _markups(context.scene, [np.array([500.0, 500.0, 500.0])])
    with pytest.raises(CardioScarError) as after:
        csl.CardioScarLogic.aha_segments(result_model, csl.AhaInputs(rv_markups=far))
    with pytest.raises(CardioScarError) as before:
        csl.CardioScarLogic.check_aha_inputs(model, csl.AhaInputs(rv_markups=far))
    assert str(before.value) == str(after.value) and str(before.value).startswith("inputs.rv_markups is ")
    assert before.value.library_message == after.value.library_message
    csl.CardioScarLogic.check_aha_inputs(model, csl.AhaInputs(rv_markups=_markups(context.scene, case["insertions"])))
    assert not [message for message in warnings_of_cardioscar if "mirror" in message]
    csl.CardioScarLogic.check_aha_inputs(model, csl.AhaInputs(rv_markups=_markups(context.scene, case["insertions"][::-1])))
    assert len([message for message in warnings_of_cardioscar if "mirror" in message]) == 1
    assert [data.GetArrayName(i) for i in range(data.GetNumberOfArrays())] == fields
    assert model.GetNodeReference(AHA_TABLE_REFERENCE) is None

def test_label_map_node_finds_the_insertions(tmp_path):
    """The real ACDC labels loaded by Slicer's label-map storage node give the same segments as
    the library given the same labels read by SimpleITK."""
    import SimpleITK as sitk

    from conftest import SHARED_DATA
    from cardioscar.aha import LabelMap
    from cardioscar.aha.insertion import ijk_to_lps_of
    from test_aha import voxel_mesh

    labels_path = SHARED_DATA / "acdc_patient101" / "patient101_frame01_gt.nii.gz"
    image = sitk.ReadImage(str(labels_path))
    labels = sitk.GetArrayFromImage(image)
    grid = voxel_mesh(labels, ijk_to_lps_of(image), 2)
    mesh_path = tmp_path / "acdc_myocardium.vtk"
    write_mesh(Mesh(dataset=grid, space="LPS"), mesh_path)
    expected = analyse_mesh(Mesh(dataset=grid, space="LPS"),
                            AhaOptions(labels=LabelMap(labels, ijk_to_lps_of(image), "acdc")))
    context = csl.create_scene()
    model = csl.load_model(context.scene, mesh_path)
    label_node = csl.load_volume(context.scene, labels_path, labelmap=True)
    result = csl.CardioScarLogic.aha_segments(model, csl.AhaInputs(labels_node=label_node))
    assert (result.point_segments == expected.point_segments).mean() > 0.999
    assert result.summary["rv_insertion"]["source"].startswith("RV label 1")
