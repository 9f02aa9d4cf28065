"""The panel's scar-rule, tissue-tag and export section (CardioScar.py) on a real MRML scene, with
the Qt stand-in of Testing/slicer_widget_harness.py (see there what it cannot prove). Clicks and
typed values drive the real Logic; the files written are read back by our own openCARP reader."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import slicer  # noqa: E402
import vtk  # noqa: E402
import vtk.util.numpy_support  # noqa: E402

import slicer_widget_harness as harness  # noqa: E402
from cardioscar.io.meshio import read_mesh, text_field  # noqa: E402
from cardioscar.simulation.opencarp import FIBRE_RULE_ARRAY  # noqa: E402
from test_simulation_export import read_opencarp  # noqa: E402
from test_slicer_panel import (BOTH_VERSIONS, LATEST, _arrays, _with_scar_probability,  # noqa: E402,F401
                               case, panel, phantom)


def _labelmap_of_ones(panel, name: str):
    """A label map on the input volume's grid, 1 everywhere (the whole slice as the region)."""
    volume = panel["volume"]
    node = panel["scene"].AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, np.ones(slicer.util.arrayFromVolume(volume).shape, np.uint8))
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    node.SetIJKToRASMatrix(matrix)
    return node


@BOTH_VERSIONS
def test_tag_and_export_write_the_tagged_model_and_the_files(panel, phantom, tmp_path):
    widget, ui, model = panel["widget"], panel["ui"], panel["model"]
    assert not ui.tagButton.enabled and not ui.exportButton.enabled
    _with_scar_probability(model, phantom)
    ui.tagModelSelector.setCurrentNode(model)
    ui.tagBorderZoneSpinBox.value = 0.3
    ui.tagCoreSpinBox.value = 0.6
    ui.tagNumbersLineEdit.text = "4,5,6"
    ui.exportUnitsComboBox.choose("mm")
    assert ui.tagButton.enabled and not ui.exportButton.enabled and "prefix" in ui.exportButton.toolTip
    ui.exportPrefixLineEdit.currentPath = str(tmp_path / "heart")
    assert ui.exportButton.enabled
    harness.click_to_end(panel["widget"], ui.exportButton)
    assert "Exported 'phantom_mesh'" in ui.statusLabel.text, ui.statusLabel.text
    scar = phantom.truth
    expected_nodes = np.where(scar >= 0.6, 6, np.where(scar >= 0.3, 5, 4))
    np.testing.assert_array_equal(_arrays(model)["tissue_tag"], expected_nodes)  # the model is tagged
    points, elements = read_opencarp(tmp_path / "heart")
    assert len(points) == model.GetMesh().GetNumberOfPoints()
    nodes = np.array([[int(v) for v in e[1:5]] for e in elements])
    mean = scar[nodes].mean(axis=1)
    np.testing.assert_array_equal([int(e[5]) for e in elements], np.where(mean >= 0.6, 6, np.where(mean >= 0.3, 5, 4)))
    sidecar = json.loads((tmp_path / "heart.json").read_text(encoding="utf-8"))
    assert sidecar["units"] == "mm" and sidecar["tags"] == {"healthy": 4, "border_zone": 5, "core": 6}
    assert not (tmp_path / "heart.lon").exists() and not ui.exportHelixAnglesLineEdit.enabled
    # the same section, format vtu, with the LV fibre rule at the angles typed (the panel had no control for it)
    ui.exportFibreRuleCheckBox.click()
    assert ui.exportHelixAnglesLineEdit.enabled and ui.exportHelixAnglesLineEdit.text == "60,-60"
    ui.exportHelixAnglesLineEdit.text = "50,-40"
    assert ui.exportUnitsComboBox.enabled
    ui.exportFormatComboBox.choose("vtu")
    # the units set the .pts alone: off beside a .vtu, which keeps the mesh's millimetres (it showed um)
    assert not ui.exportUnitsComboBox.enabled and "millimetres" in ui.exportUnitsComboBox.toolTip
    harness.click_to_end(panel["widget"], ui.exportButton)
    assert (tmp_path / "heart.vtu").is_file() and "heart.vtu" in ui.statusLabel.text
    written = read_mesh(tmp_path / "heart.vtu")
    fibre = vtk.util.numpy_support.vtk_to_numpy(written.dataset.GetCellData().GetArray("fibre"))
    assert fibre.shape == (written.dataset.GetNumberOfCells(), 3) and np.allclose(np.linalg.norm(fibre, axis=1), 1.0)
    assert written.dataset.GetCellData().GetArray("sheet") is not None
    record = json.loads(text_field(written.dataset, FIBRE_RULE_ARRAY))
    assert (record["helix_endo_deg"], record["helix_epi_deg"]) == (50.0, -40.0) and record["measured"] is False
    parameters = widget._parameterNode  # every choice is kept on the parameter node (saved with the scene)
    assert (parameters.tagBorderZone, parameters.tagCore, parameters.tagNumbers, parameters.exportFormat,
            parameters.exportUnits, parameters.exportFibreRule, parameters.exportHelixAngles) == (
                0.3, 0.6, "4,5,6", "vtu", "mm", True, "50,-40")
    ui.exportHelixAnglesLineEdit.text = "95,-60"  # refused before a worker starts, in one line
    harness.click_to_end(panel["widget"], ui.exportButton)
    assert "within [-90, 90]" in ui.statusLabel.text and "\n" not in ui.statusLabel.text


@LATEST
def test_tagging_a_surface_model_reports_areas_not_zero_volumes(panel, phantom):
    """A surface has no volume: the status line said "border zone 0.00 ml, core 0.00 ml" for any
    field (round 5 noticed it); it now gives the classes' areas, as the export's sidecar does."""
    ui, scene = panel["ui"], panel["scene"]
    surface = vtk.vtkPolyData()
    surface.DeepCopy(phantom.surface)
    points = vtk.util.numpy_support.vtk_to_numpy(surface.GetPoints().GetData())
    height = points[:, 2]
    probability = ((height - height.min()) / np.ptp(height)).astype(np.float32)  # healthy, border zone and core
    array = vtk.util.numpy_support.numpy_to_vtk(probability, deep=True)
    array.SetName("scar_probability")
    surface.GetPointData().AddArray(array)
    model = scene.AddNewNodeByClass("vtkMRMLModelNode", "surface")
    model.SetAndObserveMesh(surface)
    model.CreateDefaultDisplayNodes()
    ui.tagModelSelector.setCurrentNode(model)
    ui.tagBorderZoneSpinBox.value = 0.3
    ui.tagCoreSpinBox.value = 0.6
    harness.click_to_end(panel["widget"], ui.tagButton)
    text = ui.statusLabel.text
    assert text.startswith("Tagged 'surface'") and "cm² (a surface: areas)" in text and " ml" not in text, text
    border, core = (float(text.split(name)[1].split()[0]) for name in ("probability band 0.3-0.6 ", "probability >= 0.6 "))
    assert border > 0 and core > 0  # not the zero volumes of a model without any
    # one field: its bands, not the border zone and core of two fields (a Core model)
    assert "(bands of one field, not border-zone and core tissue: choose a Core model for those)" in text, text


@BOTH_VERSIONS
def test_a_bad_threshold_order_or_prefix_is_one_line_and_writes_nothing(panel, phantom, tmp_path):
    ui, model = panel["ui"], panel["model"]
    _with_scar_probability(model, phantom)
    ui.tagModelSelector.setCurrentNode(model)
    ui.tagBorderZoneSpinBox.value = 0.9
    ui.tagCoreSpinBox.value = 0.5
    ui.exportPrefixLineEdit.currentPath = str(tmp_path / "heart")
    for button in (ui.tagButton, ui.exportButton):
        harness.click_to_end(panel["widget"], button)
        assert "'Border zone from' 0.9 must be below 'Core from' 0.5" in ui.statusLabel.text  # the panel's box names
        assert "\n" not in ui.statusLabel.text
    ui.tagBorderZoneSpinBox.value = 0.3
    ui.exportPrefixLineEdit.currentPath = str(tmp_path / "no such folder" / "heart")
    harness.click_to_end(panel["widget"], ui.exportButton)
    assert "does not exist" in ui.statusLabel.text and "\n" not in ui.statusLabel.text
    ui.exportPrefixLineEdit.currentPath = str(tmp_path / "heart.pts")  # a file name for the prefix: heart.pts.pts, ...
    harness.click_to_end(panel["widget"], ui.exportButton)
    assert f"Output prefix {tmp_path / 'heart.pts'} names a file" in ui.statusLabel.text
    assert f"give {tmp_path / 'heart'} (it writes heart.pts, heart.elem and heart.json)" in ui.statusLabel.text
    ui.tagNumbersLineEdit.text = "1,1,2"
    harness.click_to_end(panel["widget"], ui.tagButton)
    assert "three different numbers" in ui.statusLabel.text
    assert "tissue_tag" not in _arrays(model) and model.GetMesh().GetCellData().GetArray("tissue_tag") is None
    assert model.GetNodeReference("CardioScarSummaryTable") is None
    assert list(tmp_path.iterdir()) == []


@BOTH_VERSIONS
def test_the_scar_rule_controls_reach_the_logic(panel):
    """Rule, thresholds and masks chosen in the panel: their mistakes come back from the Logic as
    the one status line and no run starts."""
    from CardioScarLogic.options import ReconstructionOptions
    from cardioscar.errors import CardioScarError

    widget, ui = panel["widget"], panel["ui"]
    # the core is graded from raw LGE: no rule, no core; the box is disabled without one, the Logic refuses it
    assert not ui.scarTargetComboBox.enabled
    with pytest.raises(CardioScarError, match="scar target 'core' needs a scar rule"):
        ReconstructionOptions(scar_target="core")
    ui.scarRuleComboBox.choose("iir")
    ui.scarTargetComboBox.choose("core")
    ui.applyButton.click()
    assert widget._run is None and "needs the myocardium" in ui.statusLabel.text
    ui.myocardiumMaskSelector.setCurrentNode(_labelmap_of_ones(panel, "whole slice"))
    ui.applyButton.click()
    assert widget._run is None and "needs the blood pool" in ui.statusLabel.text
    ui.bloodPoolSelector.setCurrentNode(_labelmap_of_ones(panel, "blood"))
    ui.scarThresholdsLineEdit.text = "1.3,1.2"
    ui.applyButton.click()
    assert widget._run is None and "must satisfy 0.5 <= BORDER < CORE <= 5" in ui.statusLabel.text
    ui.scarRuleComboBox.choose("nsd")
    ui.scarThresholdsLineEdit.text = "2,4"
    ui.remoteSegmentLineEdit.text = "Remote"
    ui.remoteSelector.setCurrentNode(_labelmap_of_ones(panel, "remote"))
    ui.applyButton.click()
    assert widget._run is None and "names a segment of a segmentation" in ui.statusLabel.text
    assert "\n" not in ui.statusLabel.text


@LATEST
def test_a_run_on_a_scar_rule_records_the_panels_rule(panel, tmp_path):
    """n-SD with the panel's thresholds and remote region, trained in the worker: the checkpoint
    records what the panel chose. An intensity offset left in its box is refused first (n-SD is
    offset-free: it was ignored without a word), in the box's name, before any run starts."""
    widget, ui = panel["widget"], panel["ui"]
    ui.sliceIndicesLineEdit.text = "0,2,4"
    ui.scarRuleComboBox.choose("nsd")
    ui.scarThresholdsLineEdit.text = "2,4"
    ui.intensityOffsetSpinBox.value = 5.0
    ui.myocardiumMaskSelector.setCurrentNode(_labelmap_of_ones(panel, "whole slice"))
    ui.remoteSelector.setCurrentNode(_labelmap_of_ones(panel, "remote"))
    ui.applyButton.click()
    assert widget._run is None and "'Intensity offset' 5 applies to the ratio rules (fwhm, iir); 'Scar rule (raw " \
        "LGE)' nsd is offset-free" in ui.statusLabel.text, ui.statusLabel.text
    ui.intensityOffsetSpinBox.value = 0.0
    ui.applyButton.click()
    assert widget._run is not None, ui.statusLabel.text
    harness.run_to_end(widget)
    record = json.loads(widget.logic.last_checkpoint["provenance"]["scar_rule"])
    assert (record["rule"], record["border"], record["core"], record["intensity_offset"]) == ("nsd", 2.0, 4.0, 0.0)
    assert {s["remote"] for s in record["slices"] if "remote" in s} == {"user mask"}
    assert widget._parameterNode.tagModel is panel["model"] and ui.tagButton.enabled  # the result, ready to tag
    # its export says how the scar was defined: the rule travels with the model into the sidecar
    ui.exportPrefixLineEdit.currentPath = str(tmp_path / "heart")
    harness.click_to_end(panel["widget"], ui.exportButton)
    sidecar = json.loads((tmp_path / "heart.json").read_text(encoding="utf-8"))
    assert sidecar["scar_rule"]["rule"] == "nsd" and sidecar["scar_rule"]["core"] == 4.0, ui.statusLabel.text


@LATEST
def test_a_segmentation_as_myocardium_mask_serves_the_rules_only(panel):
    """The Inputs' myocardium mask may be a segmentation for a scar rule (its segment named in
    Myocardium segment); without a rule the Logic refuses it in one line."""
    widget, ui, scene = panel["widget"], panel["ui"], panel["scene"]
    labels = _labelmap_of_ones(panel, "ones")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "wall")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(labels)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labels, segmentation)
    ui.myocardiumMaskSelector.setCurrentNode(segmentation)
    assert widget._parameterNode.myocardiumMask is segmentation
    ui.applyButton.click()
    assert widget._run is None and "is a segmentation: choose a label map" in ui.statusLabel.text
    ui.scarRuleComboBox.choose("psi")
    ui.applyButton.click()
    assert widget._run is None and "type the name of its myocardium segment" in ui.statusLabel.text
    ui.myocardiumSegmentLineEdit.text = "Nope"
    ui.applyButton.click()
    assert widget._run is None and "has no segment named 'Nope'" in ui.statusLabel.text
    name = segmentation.GetSegmentation().GetNthSegment(0).GetName()
    ui.myocardiumSegmentLineEdit.text = name
    ui.sliceIndicesLineEdit.text = "0,2,4"
    ui.applyButton.click()
    assert widget._run is not None, ui.statusLabel.text
    harness.run_to_end(widget)
    record = json.loads(widget.logic.last_checkpoint["provenance"]["scar_rule"])
    assert record["rule"] == "psi" and "scar_probability" in _arrays(panel["model"])


def _library_tags(model, scar, core, border_zone, core_threshold):
    """The library's two-field rule (cardioscar.simulation.tags) on the model's own mesh."""
    from cardioscar.simulation.tags import tag_mesh

    return tag_mesh(model.GetMesh(), scar, core, border_zone, core_threshold)


@LATEST
def test_a_scar_run_and_a_core_run_tag_by_the_two_field_rule(panel):
    """PSI from the panel twice, Network learns scar then core (in the worker): the core run lands on a
    new model node "... CardioScar core" that becomes the core model, the scar result stays as it
    was, and Tag gives on every node and cell the library's two-field rule of the two fields."""
    widget, ui, model = panel["widget"], panel["ui"], panel["model"]
    parameters = widget._parameterNode
    ui.sliceIndicesLineEdit.text = "0,2,4"
    ui.scarRuleComboBox.choose("psi")
    ui.myocardiumMaskSelector.setCurrentNode(_labelmap_of_ones(panel, "whole slice"))
    ui.applyButton.click()
    assert widget._run is not None, ui.statusLabel.text
    harness.run_to_end(widget)
    assert parameters.tagModel is model and parameters.tagCoreModel is None
    scar = _arrays(model)["scar_probability"]
    ui.scarTargetComboBox.choose("core")
    ui.outputNewModelCheckBox.checked = False  # even so, the core never replaces the scar result
    ui.applyButton.click()
    assert widget._run is not None, ui.statusLabel.text
    harness.run_to_end(widget)
    core_model = parameters.tagCoreModel
    assert core_model is not None and core_model.GetName() == "phantom_mesh CardioScar core", ui.statusLabel.text
    assert json.loads(core_model.GetAttribute("CardioScar.ScarRule"))["target"] == "core"
    assert parameters.tagModel is model and parameters.tagCore == 0.5  # the two-field default, as export --core-mesh
    np.testing.assert_array_equal(_arrays(model)["scar_probability"], scar)
    core = _arrays(core_model)["scar_probability"]
    # persisted like the rest: the parameter node itself holds the choices (saved with the scene)
    node = parameters.parameterNode
    assert node.GetParameter("scarTarget") == "core" and node.GetNodeReference("tagCoreModel") is core_model
    # thresholds inside the ranges of these short fits, so that all three classes occur
    border_zone, core_threshold = (max(0.01, round(float(np.quantile(v, q)), 2)) for v, q in ((scar, 0.6), (core, 0.85)))
    ui.tagBorderZoneSpinBox.value, ui.tagCoreSpinBox.value = border_zone, core_threshold
    harness.click_to_end(panel["widget"], ui.tagButton)
    assert "core from 'phantom_mesh CardioScar core'" in ui.statusLabel.text, ui.statusLabel.text
    expected = _library_tags(model, scar, core, border_zone, core_threshold)
    np.testing.assert_array_equal(_arrays(model)["tissue_tag"], expected.node_tags)
    cells = vtk.util.numpy_support.vtk_to_numpy(model.GetMesh().GetCellData().GetArray("tissue_tag"))
    np.testing.assert_array_equal(cells, expected.element_tags)
    assert set(np.unique(expected.node_tags)) == {1, 2, 3}
    scar_as_core = _library_tags(model, scar, scar, border_zone, core_threshold)  # the core field was read
    assert (scar_as_core.node_tags != expected.node_tags).any()
    assert "tissue_tag" not in _arrays(core_model)


@BOTH_VERSIONS
def test_a_core_model_that_does_not_fit_is_one_line_and_changes_nothing(panel, phantom, tmp_path):
    """A core model on another mesh (other node count), the scar model chosen as its own core, or a
    scar result chosen as the core: one status line, no tags, no rows, no file. Then a core field
    typed in the panel (on the model itself) tags by the two-field rule."""
    ui, scene, model = panel["ui"], panel["scene"], panel["model"]
    _with_scar_probability(model, phantom)
    ui.tagModelSelector.setCurrentNode(model)
    ui.exportPrefixLineEdit.currentPath = str(tmp_path / "heart")
    sphere = vtk.vtkSphereSource()
    sphere.Update()
    other = scene.AddNewNodeByClass("vtkMRMLModelNode", "other mesh")
    other.SetAndObservePolyData(sphere.GetOutput())
    ui.tagCoreModelSelector.setCurrentNode(other)
    n_other, n_model = other.GetMesh().GetNumberOfPoints(), model.GetMesh().GetNumberOfPoints()
    for button in (ui.tagButton, ui.exportButton):
        harness.click_to_end(panel["widget"], button)
        assert (f"The core model 'other mesh' has {n_other} nodes but 'phantom_mesh' has {n_model}: apply the core "
                "model to the same mesh") in ui.statusLabel.text
        assert "\n" not in ui.statusLabel.text
    ui.tagCoreModelSelector.setCurrentNode(model)
    harness.click_to_end(panel["widget"], ui.tagButton)
    assert "is the model to tag itself" in ui.statusLabel.text
    scar_result = scene.AddNewNodeByClass("vtkMRMLModelNode", "scar result")
    scar_result.SetAndObserveMesh(model.GetMesh())
    scar_result.SetAttribute("CardioScar.ScarRule", json.dumps({"rule": "psi", "target": "scar"}))
    ui.tagCoreModelSelector.setCurrentNode(scar_result)
    harness.click_to_end(panel["widget"], ui.exportButton)
    assert "learned the scar (border zone + core), not the core" in ui.statusLabel.text
    assert "tissue_tag" not in _arrays(model) and model.GetMesh().GetCellData().GetArray("tissue_tag") is None
    assert model.GetNodeReference("CardioScarSummaryTable") is None and list(tmp_path.iterdir()) == []
    # a core field of the model itself, typed in the panel
    from CardioScarLogic.results import write_point_arrays

    core = np.clip(phantom.truth * 1.5 - 0.6, 0.0, 1.0).astype(np.float32)
    write_point_arrays(model, {"core_probability": core})
    ui.tagCoreModelSelector.setCurrentNode(None)
    ui.tagCoreFieldLineEdit.text = "core_probability"
    ui.tagBorderZoneSpinBox.value = 0.3
    ui.tagCoreSpinBox.value = 0.5
    harness.click_to_end(panel["widget"], ui.tagButton)
    assert "core from core_probability" in ui.statusLabel.text, ui.statusLabel.text
    expected = _library_tags(model, phantom.truth, core, 0.3, 0.5)
    np.testing.assert_array_equal(_arrays(model)["tissue_tag"], expected.node_tags)
    assert panel["widget"]._parameterNode.tagCoreField == "core_probability"
