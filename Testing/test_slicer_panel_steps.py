"""The panel's longer steps and the state it shows, round 2, read against Slicer's own sources (the
real panel class on a real MRML scene, with the Qt stand-in of Testing/slicer_widget_harness.py;
see there for what that cannot prove).

- *Tag tissue*, *Export* and *AHA segments* run in a worker process as training does, with Stop; a
  stopped or failed run, or one whose model was edited meanwhile (same counts, moved points),
  leaves the model and the user's folder as they were; an export that fails on its second file
  leaves the user's previous files whole.
- The myocardium margin, *Scar labels* and *Normalise intensities* boxes are disabled under a scar
  rule, their tool tips say why; so are the boxes that set up a rule (thresholds, target, blood
  pool, remote mask, intensity offset) without one, and the expert label boxes without a rule or
  with a segmentation as the myocardium mask.
- The library's warnings reach the Log section in the panel's words: those raised while the panel
  reads its inputs on the main thread (they went only to the Python console) and the worker's; a
  mistyped rule label list names its box.
- ``scar_error_risk`` is drawn with its own sequential colour table.
- The Results section follows the result model when its arrays or summary change outside the
  panel (vtkMRMLModelNode sends MeshModifiedEvent when its mesh changes,
  Libs/MRML/Core/vtkMRMLModelNode.cxx).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import vtk

sys.path.insert(0, str(Path(__file__).resolve().parent))

import slicer_widget_harness as harness  # noqa: E402
from conftest import fail_renames_onto  # noqa: E402
from test_slicer_panel import (LATEST, _arrays, _rv_insertions_ras, _with_scar_probability, case,  # noqa: E402,F401
                               panel, phantom)


def _ready_to_export(panel, phantom, folder: Path) -> None:
    ui, model = panel["ui"], panel["model"]
    _with_scar_probability(model, phantom)
    ui.tagModelSelector.setCurrentNode(model)
    ui.exportPrefixLineEdit.currentPath = str(folder / "heart")


def _untouched(model, folder: Path) -> bool:
    """No tag on the model, no summary table made for it, and no file (whole or part) in ``folder``."""
    return ("tissue_tag" not in _arrays(model) and model.GetMesh().GetCellData().GetArray("tissue_tag") is None
            and model.GetNodeReference("CardioScarSummaryTable") is None and list(folder.iterdir()) == [])


@LATEST
def test_export_runs_in_a_worker_and_stop_leaves_model_and_folder_as_they_were(panel, phantom, tmp_path):
    widget, ui, model = panel["widget"], panel["ui"], panel["model"]
    _ready_to_export(panel, phantom, tmp_path)
    ui.exportButton.click()
    run = widget._run
    assert run is not None, "Export ran on the main thread: " + ui.statusLabel.text
    assert ui.exportButton.text == "Stop" and ui.exportButton.enabled and ui.statusLabel.text == "Exporting..."
    assert (ui.progressBar.visible, ui.progressBar.maximum) == (True, 0)  # busy: no fraction to show
    for other in (ui.tagButton, ui.tagModelSelector, ui.exportPrefixLineEdit, ui.applyButton,
                  ui.ahaCollapsibleButton, ui.inputsCollapsibleButton):
        assert not other.enabled, other.name
    assert ui.tissueCollapsibleButton.enabled  # it holds the Stop button
    ui.exportButton.click()  # Stop
    assert widget._run is None and not run.folder.exists() and "Stopped" in ui.statusLabel.text
    assert _untouched(model, tmp_path)
    assert ui.exportButton.text == "Export" and ui.exportButton.enabled and ui.tagButton.enabled
    assert ui.tagModelSelector.enabled and not ui.progressBar.visible
    harness.click_to_end(widget, ui.exportButton)  # the same export, to its end
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heart.elem", "heart.json", "heart.pts"], ui.statusLabel.text
    assert "tissue_tag" in _arrays(model) and ui.statusLabel.text.startswith("Exported 'phantom_mesh'")
    assert "Finished on" not in ui.logTextEdit.toPlainText()  # no network ran: no device to name
    # the worker's files are the console's, byte for byte (the Logic in this process, same inputs)
    from CardioScarLogic.tissue import export_model_node, read_tagging_inputs

    console = tmp_path / "console"
    console.mkdir()
    tags = read_tagging_inputs(model, **widget.tissueOptions()).tags()
    export_model_node(model, tags, console / "heart")
    for name in ("heart.pts", "heart.elem", "heart.json"):
        assert (tmp_path / name).read_bytes() == (console / name).read_bytes(), name


@LATEST
def test_a_model_removed_while_the_worker_tags_writes_no_file(panel, phantom, tmp_path):
    """The worker finished, but the model left the scene meanwhile: one line, and no file either."""
    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    _ready_to_export(panel, phantom, tmp_path)
    ui.exportButton.click()
    assert widget._run is not None, ui.statusLabel.text
    scene.RemoveNode(model)
    harness.run_to_end(widget)
    assert "was removed during the tagging: nothing was written" in ui.statusLabel.text
    assert "\n" not in ui.statusLabel.text and list(tmp_path.iterdir()) == []
    assert ui.exportButton.text == "Export" and not ui.progressBar.visible


@LATEST
def test_tag_runs_in_a_worker_with_stop(panel, phantom, tmp_path):
    widget, ui, model = panel["widget"], panel["ui"], panel["model"]
    _ready_to_export(panel, phantom, tmp_path)
    ui.tagButton.click()
    assert widget._run is not None and ui.tagButton.text == "Stop" and not ui.exportButton.enabled
    ui.tagButton.click()
    assert widget._run is None and _untouched(model, tmp_path) and ui.tagButton.text == "Tag tissue"


@LATEST
def test_a_model_whose_points_moved_while_the_worker_tags_gets_no_tag_and_no_file(panel, phantom, tmp_path):
    """The same node and cell counts, other points (edited while the worker ran): the counts alone
    let the old tags through onto the moved model; the points' checksum refuses them."""
    from vtk.util.numpy_support import vtk_to_numpy

    widget, ui, model = panel["widget"], panel["ui"], panel["model"]
    _ready_to_export(panel, phantom, tmp_path)
    ui.exportButton.click()
    assert widget._run is not None, ui.statusLabel.text
    points = model.GetMesh().GetPoints()
    vtk_to_numpy(points.GetData())[:10] += 2.0  # ten nodes moved by 2 mm, in place, as an edit does
    points.Modified()
    harness.run_to_end(widget)
    assert "changed during the tagging (its points moved): nothing was written" in ui.statusLabel.text
    assert "\n" not in ui.statusLabel.text and _untouched(model, tmp_path)


def _core_model_of(panel, phantom):
    """A core model's result on the model's mesh (its own copy), chosen as the tissue section's core model."""
    from CardioScarLogic.results import write_point_arrays

    mesh = panel["model"].GetMesh().NewInstance()
    mesh.DeepCopy(panel["model"].GetMesh())
    core_model = panel["scene"].AddNewNodeByClass("vtkMRMLModelNode", "core result")
    core_model.SetAndObserveMesh(mesh)
    write_point_arrays(core_model, {"scar_probability": np.clip(phantom.truth * 1.5 - 0.6, 0.0, 1.0).astype(np.float32)})
    panel["ui"].tagCoreModelSelector.setCurrentNode(core_model)
    return core_model


@LATEST
def test_a_core_model_rerun_while_the_worker_tags_gets_no_tag_and_no_file(panel, phantom, tmp_path):
    """The core model's field rewritten while the worker tags (a core run again, on the same mesh):
    the tags were computed from the old core field, so none is written and no file placed, as for
    the scar model itself (the core model went unchecked: its old tags were written)."""
    from CardioScarLogic.results import write_point_arrays

    widget, ui, model = panel["widget"], panel["ui"], panel["model"]
    _ready_to_export(panel, phantom, tmp_path)
    core_model = _core_model_of(panel, phantom)
    ui.exportButton.click()
    assert widget._run is not None, ui.statusLabel.text
    write_point_arrays(core_model, {"scar_probability": np.zeros(len(phantom.truth), np.float32)})
    harness.run_to_end(widget)
    assert ("The core model 'core result' changed during the tagging (its field 'scar_probability' changed): "
            "nothing was written") in ui.statusLabel.text, ui.statusLabel.text
    assert "\n" not in ui.statusLabel.text and _untouched(model, tmp_path)


@LATEST
def test_a_core_model_moved_or_removed_refuses_the_computed_tags(panel, phantom):
    """The Logic's check (no worker): tags computed with a core model are not written once a parent
    transform moved the core model, nor once it left the scene; the unchanged one fits."""
    from CardioScarLogic.tissue import check_tags_fit, read_tagging_inputs
    from cardioscar.errors import CardioScarError

    scene, model = panel["scene"], panel["model"]
    _with_scar_probability(model, phantom)
    core_model = _core_model_of(panel, phantom)
    inputs = read_tagging_inputs(model, core_model=core_model)
    tags = inputs.tags()
    check_tags_fit(model, tags, inputs.state, inputs.core_model, inputs.core_state)  # unchanged: fits
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 5.0)
    transform.SetMatrixTransformToParent(matrix)
    core_model.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(CardioScarError, match=r"core model 'core result' changed during the tagging \(its points moved\)"):
        check_tags_fit(model, tags, inputs.state, inputs.core_model, inputs.core_state)
    core_model.SetAndObserveTransformNodeID(None)
    scene.RemoveNode(core_model)
    with pytest.raises(CardioScarError, match="core model 'core result' was removed during the tagging"):
        check_tags_fit(model, tags, inputs.state, inputs.core_model, inputs.core_state)


@LATEST
def test_an_export_whose_second_file_cannot_be_placed_leaves_the_previous_files(panel, phantom, tmp_path,
                                                                                 monkeypatch):
    """The worker wrote all the files; placing them next to the prefix fails on the second (a rename
    refused: injected, as a real one fails only on a broken file system). The user's previous export
    (one with fibres, from the command line) stays whole, the model gets no tag, and the status is
    one line naming the file. The export that then succeeds (no fibres: the panel writes none)
    removes the previous export's .lon, which openCARP would read with the new mesh."""
    widget, ui, model = panel["widget"], panel["ui"], panel["model"]
    _ready_to_export(panel, phantom, tmp_path)
    previous = {name: f"previous {name}" for name in ("heart.pts", "heart.elem", "heart.lon", "heart.json")}
    for name, text in previous.items():
        (tmp_path / name).write_text(text)
    fail_renames_onto(monkeypatch, "heart.elem")
    harness.click_to_end(widget, ui.exportButton)
    assert "heart.elem" in ui.statusLabel.text and "Input/output error" in ui.statusLabel.text, ui.statusLabel.text
    assert {path.name: path.read_text() for path in tmp_path.iterdir()} == previous
    assert "tissue_tag" not in _arrays(model) and ui.exportButton.text == "Export"
    monkeypatch.undo()
    harness.click_to_end(widget, ui.exportButton)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["heart.elem", "heart.json", "heart.pts"]


@LATEST
def test_a_changed_scar_field_or_moved_points_refuse_the_computed_tags(panel, phantom):
    """The Logic's check (no worker): tags computed from one scar field are not written once the
    field was rewritten, nor once a parent transform moved the model, with the same counts."""
    from CardioScarLogic.results import write_point_arrays
    from CardioScarLogic.tissue import check_tags_fit, read_tagging_inputs
    from cardioscar.errors import CardioScarError

    scene, model = panel["scene"], panel["model"]
    _with_scar_probability(model, phantom)
    inputs = read_tagging_inputs(model)
    tags = inputs.tags()
    check_tags_fit(model, tags, inputs.state)  # unchanged: fits
    write_point_arrays(model, {"scar_probability": (1.0 - phantom.truth).astype(np.float32)})  # a rerun's result
    with pytest.raises(CardioScarError, match="its field 'scar_probability' changed"):
        check_tags_fit(model, tags, inputs.state)
    _with_scar_probability(model, phantom)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 5.0)
    transform.SetMatrixTransformToParent(matrix)
    model.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(CardioScarError, match=r"changed during the tagging \(its points moved\)"):
        check_tags_fit(model, tags, inputs.state)
    model.SetAndObserveTransformNodeID(None)
    check_tags_fit(model, tags, inputs.state)  # back as it was: fits
    _swap_first_two_cells(model)  # same points, same counts: the element tags are the other cells'
    with pytest.raises(CardioScarError, match=r"changed during the tagging \(its cells changed\)"):
        check_tags_fit(model, tags, inputs.state)


def _swap_first_two_cells(model) -> None:
    mesh, first, second = model.GetMesh(), vtk.vtkIdList(), vtk.vtkIdList()
    mesh.GetCellPoints(0, first)
    mesh.GetCellPoints(1, second)
    assert mesh.GetCellType(0) == mesh.GetCellType(1) and first.GetNumberOfIds() == second.GetNumberOfIds()
    mesh.ReplaceCell(0, second.GetNumberOfIds(), [second.GetId(i) for i in range(second.GetNumberOfIds())])
    mesh.ReplaceCell(1, first.GetNumberOfIds(), [first.GetId(i) for i in range(first.GetNumberOfIds())])
    mesh.Modified()


@LATEST
def test_aha_segments_are_refused_on_a_model_whose_cells_or_read_fields_changed(panel, phantom):
    """The AHA's check (no worker): segments per cell belong to the cells analysed, and the
    analysis reads the uncertainty and the tags too (a rerun or a retagging meanwhile)."""
    from CardioScarLogic.aha import AhaInputs, read_aha_inputs
    from CardioScarLogic.geometry import check_unchanged
    from CardioScarLogic.results import write_point_arrays
    from cardioscar.aha import AhaOptions
    from cardioscar.errors import CardioScarError

    scene, model = panel["scene"], panel["model"]
    _with_scar_probability(model, phantom)
    truth = phantom.truth.astype(np.float32)
    write_point_arrays(model, {"scar_uncertainty": 0.1 * truth, "tissue_tag": (1 + truth).astype(np.int32)})
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "RV insertions")
    for point in _rv_insertions_ras(phantom):
        markups.AddControlPointWorld(point)
    job = read_aha_inputs(model, AhaInputs(rv_markups=markups, measure=AhaOptions(tags_field="tissue_tag")))
    check_unchanged(model, job.state, "the AHA analysis")  # unchanged: fits
    for name, values in (("scar_uncertainty", 0.2 * truth), ("tissue_tag", (1 + 2 * truth).astype(np.int32))):
        write_point_arrays(model, {name: values})
        with pytest.raises(CardioScarError, match=f"its field '{name}' changed"):
            check_unchanged(model, job.state, "the AHA analysis")
    job = read_aha_inputs(model, AhaInputs(rv_markups=markups))
    _swap_first_two_cells(model)
    with pytest.raises(CardioScarError, match=r"changed during the AHA analysis \(its cells changed\)"):
        check_unchanged(model, job.state, "the AHA analysis")


def _aha_ready(panel, phantom, points: bool = True):
    ui, scene, model = panel["ui"], panel["scene"], panel["model"]
    _with_scar_probability(model, phantom)
    ui.ahaModelSelector.setCurrentNode(model)
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "RV insertions")
    for point in _rv_insertions_ras(phantom) if points else []:
        markups.AddControlPointWorld(point)
    ui.ahaRvMarkupsSelector.setCurrentNode(markups)


@LATEST
def test_aha_runs_in_a_worker_with_stop_and_refuses_a_model_edited_meanwhile(panel, phantom):
    """The click returns at once and the event loop goes on (the busy bar can move; no wait cursor
    while the worker works); Stop, and a model whose points moved meanwhile, change nothing."""
    from vtk.util.numpy_support import vtk_to_numpy

    widget, ui, model = panel["widget"], panel["ui"], panel["model"]
    _aha_ready(panel, phantom)
    ui.computeAhaButton.click()
    run = widget._run
    assert run is not None, "AHA ran on the main thread: " + ui.statusLabel.text
    assert ui.computeAhaButton.text == "Stop" and ui.computeAhaButton.enabled
    assert ui.statusLabel.text.startswith("Computing AHA segments of 'phantom_mesh'")
    assert (ui.progressBar.visible, ui.progressBar.maximum) == (True, 0) and harness.QApplication.cursors == []
    for other in (ui.ahaModelSelector, ui.ahaRvMarkupsSelector, ui.applyButton, ui.tissueCollapsibleButton,
                  ui.inputsCollapsibleButton):
        assert not other.enabled, other.name
    assert ui.ahaCollapsibleButton.enabled  # it holds the Stop button
    ui.computeAhaButton.click()  # Stop
    assert widget._run is None and not run.folder.exists() and "Stopped" in ui.statusLabel.text
    assert "aha_segment" not in _arrays(model) and model.GetNodeReference("CardioScarAhaTable") is None
    assert ui.computeAhaButton.text == "Compute AHA segments" and ui.ahaModelSelector.enabled
    assert not ui.progressBar.visible and not ui.saveBullseyeButton.enabled
    ui.computeAhaButton.click()  # again, and the mesh is edited while the worker segments it
    assert widget._run is not None, ui.statusLabel.text
    points = model.GetMesh().GetPoints()
    vtk_to_numpy(points.GetData())[:10] += 2.0
    points.Modified()
    harness.run_to_end(widget)
    assert "changed during the AHA analysis (its points moved): nothing was written" in ui.statusLabel.text
    assert "aha_segment" not in _arrays(model) and model.GetNodeReference("CardioScarAhaTable") is None
    assert not ui.saveBullseyeButton.enabled and ui.ahaBullseyeLabel.text == "No bull's-eye yet."
    assert ui.computeAhaButton.enabled and ui.applyButton.enabled and ui.tissueCollapsibleButton.enabled


@LATEST
def test_a_missing_aha_input_is_one_line_and_starts_nothing(panel, phantom):
    widget, ui, model = panel["widget"], panel["ui"], panel["model"]
    _aha_ready(panel, phantom, points=False)
    ui.computeAhaButton.click()
    assert widget._run is None
    assert "'RV insertions' has 0 point" in ui.statusLabel.text and "\n" not in ui.statusLabel.text
    assert "aha_segment" not in _arrays(model) and model.GetNodeReference("CardioScarAhaTable") is None
    assert harness.QApplication.cursors == [] and not ui.progressBar.visible
    assert ui.computeAhaButton.enabled and ui.ahaCollapsibleButton.enabled and ui.applyButton.enabled
    assert not ui.saveBullseyeButton.enabled  # no bull's-eye was made


@LATEST
def test_the_margin_box_is_disabled_under_a_scar_rule_and_not_used_there(panel):
    widget, ui = panel["widget"], panel["ui"]
    box, written = ui.myocardiumMarginSpinBox, ui.myocardiumMarginSpinBox.toolTip
    box.value = 2
    ui.scarRuleComboBox.choose("psi")
    assert not box.enabled and "Not used with a scar rule (psi)" in box.toolTip
    assert widget.options().myocardium_margin == 0  # the Logic refused 2 with a rule, and the box cannot change it
    ui.scarRuleComboBox.choose("none")
    assert box.enabled and box.toolTip == written and widget.options().myocardium_margin == 2


@LATEST
def test_scar_labels_and_normalise_are_disabled_under_a_scar_rule_and_not_used_there(panel):
    """A rule grades the raw LGE into the targets: *Scar labels* typed for an earlier labels run and
    *Normalise intensities* were handed to the Logic and silently unused (normalising even skipped the
    check that the mesh lies on the slices' scar), where the command line refuses them with a rule.
    Now they behave as the margin box: disabled, saying why, not used; the console's Logic refuses."""
    from CardioScarLogic.options import ReconstructionOptions
    from cardioscar.errors import CardioScarError

    widget, ui = panel["widget"], panel["ui"]
    labels, normalise = ui.scarLabelsLineEdit, ui.normalizeCheckBox
    written = (_ui_tool_tip("scarLabelsLineEdit"), _ui_tool_tip("normalizeCheckBox"))
    labels.text, normalise.checked = "3,4", True
    ui.scarRuleComboBox.choose("nsd")
    assert not labels.enabled and not normalise.enabled
    assert "Not used with a scar rule (nsd)" in labels.toolTip and "Expert scar labels" in labels.toolTip
    assert "Not used with a scar rule (nsd)" in normalise.toolTip
    options = widget.options()
    assert (options.scar_labels, options.normalize_intensities) == ("", False)
    ui.scarRuleComboBox.choose("none")
    assert labels.enabled and normalise.enabled and (labels.toolTip, normalise.toolTip) == written
    options = widget.options()
    assert (options.scar_labels, options.normalize_intensities) == ("3,4", True)
    with pytest.raises(CardioScarError, match=r"^scar_labels and normalize_intensities have no effect with "
                                              r"scar_rule nsd.*expert_scar_labels"):
        ReconstructionOptions(scar_rule="nsd", scar_labels="3,4", normalize_intensities=True)
    with pytest.raises(CardioScarError, match=r"^scar_labels has no effect"):
        ReconstructionOptions(scar_rule="psi", scar_labels=[3])


@LATEST
def test_the_expert_label_boxes_apply_under_a_scar_rule_only(panel):
    """Typed without a rule the experts' labels are kept but disabled and not handed over (the Logic
    refuses them without a rule); with one they reach the options as typed."""
    widget, ui = panel["widget"], panel["ui"]
    boxes = (ui.expertScarLabelsLineEdit, ui.expertCoreLabelsLineEdit)
    written = [_ui_tool_tip("expertScarLabelsLineEdit"), _ui_tool_tip("expertCoreLabelsLineEdit")]
    assert not any(box.enabled for box in boxes)
    # a disabled box says why, as the margin box does under a rule (it showed the .ui's "e.g. 3,4" hint)
    assert all("Not used without a scar rule" in box.toolTip and "Scar rule" in box.toolTip for box in boxes)
    ui.expertScarLabelsLineEdit.text, ui.expertCoreLabelsLineEdit.text = "3,4", "4"
    assert (widget._parameterNode.expertScarLabels, widget._parameterNode.expertCoreLabels) == ("3,4", "4")
    assert (widget.options().expert_scar_labels, widget.options().expert_core_labels) == ("", "")
    ui.scarRuleComboBox.choose("nsd")
    assert all(box.enabled for box in boxes)
    assert [box.toolTip for box in boxes] == written
    assert (widget.options().expert_scar_labels, widget.options().expert_core_labels) == ("3,4", "4")
    ui.scarRuleComboBox.choose("none")
    assert not any(box.enabled for box in boxes) and "Not used without a scar rule" in boxes[1].toolTip


@LATEST
def test_the_rule_only_boxes_apply_under_a_scar_rule_only(panel):
    """The rule's thresholds, target, blood pool, remote mask and intensity offset stayed enabled without
    a rule and were then unused (the command line refuses them): now they are disabled, say why, and
    what they hold is kept but not handed over (options, and the masks given to the run); so is the
    later dark-blood LGE box."""
    from test_slicer_panel_tissue import _labelmap_of_ones

    from CardioScar import RULE_ONLY_BOXES

    widget, ui = panel["widget"], panel["ui"]
    boxes = [getattr(ui, name) for name in RULE_ONLY_BOXES]
    assert not any(box.enabled for box in boxes)
    assert all("Not used without a scar rule" in box.toolTip for box in boxes)
    ui.scarThresholdsLineEdit.text, ui.bloodPoolLabelsLineEdit.text, ui.intensityOffsetSpinBox.value = "2,3", "1", 7.0
    ui.remoteSegmentLineEdit.text, ui.bloodPoolSegmentLineEdit.text = "Remote", "Blood"
    ui.darkBloodLgeCheckBox.checked = True
    ui.bloodPoolSelector.setCurrentNode(_labelmap_of_ones(panel, "blood"))
    widget._parameterNode.scarTarget = "core"
    unused = widget.options()
    assert (unused.scar_thresholds, unused.scar_target, unused.blood_pool_labels, unused.blood_pool_segment,
            unused.remote_segment, unused.intensity_offset, unused.dark_blood_lge) == ("", "scar", "", "", "", 0.0, False)
    ui.scarRuleComboBox.choose("nsd")
    assert all(box.enabled for box in boxes)
    assert [box.toolTip for box in boxes] == [_ui_tool_tip(name) for name in RULE_ONLY_BOXES]
    used = widget.options()
    assert (used.scar_thresholds, used.scar_target, used.blood_pool_labels, used.blood_pool_segment,
            used.remote_segment, used.intensity_offset, used.dark_blood_lge) == ("2,3", "core", "1", "Blood", "Remote",
                                                                                7.0, True)
    ui.scarRuleComboBox.choose("none")
    assert not any(box.enabled for box in boxes) and widget._parameterNode.intensityOffset == 7.0


@LATEST
def test_the_expert_label_boxes_are_disabled_with_a_segmentation_as_the_myocardium_mask(panel):
    """A segmentation has no labels: the Logic refused the experts' labels with one as the mask after the
    click; now the boxes say so beforehand and their values are not handed over."""
    widget, ui = panel["widget"], panel["ui"]
    boxes = (ui.expertScarLabelsLineEdit, ui.expertCoreLabelsLineEdit)
    ui.scarRuleComboBox.choose("nsd")
    ui.expertScarLabelsLineEdit.text, ui.expertCoreLabelsLineEdit.text = "3,4", "4"
    assert all(box.enabled for box in boxes)
    ui.myocardiumMaskSelector.setCurrentNode(panel["scene"].AddNewNodeByClass("vtkMRMLSegmentationNode", "wall"))
    assert widget._parameterNode.myocardiumMask.IsA("vtkMRMLSegmentationNode")
    assert not any(box.enabled for box in boxes)
    assert all("segmentation as the Myocardium mask" in box.toolTip for box in boxes)
    assert (widget.options().expert_scar_labels, widget.options().expert_core_labels) == ("", "")
    ui.myocardiumMaskSelector.setCurrentNode(None)
    assert all(box.enabled for box in boxes)
    assert (widget.options().expert_scar_labels, widget.options().expert_core_labels) == ("3,4", "4")


def _ui_tool_tip(name: str) -> str:
    """The tool tip CardioScar.ui gives the widget ``name``."""
    import xml.etree.ElementTree as ET

    tree = ET.parse(harness.MODULE_DIR / "Resources" / "UI" / "CardioScar.ui")
    widget = next(w for w in tree.iter("widget") if w.get("name") == name)
    return next(p.find("string").text for p in widget.findall("property") if p.get("name") == "toolTip")


@LATEST
def test_a_mistyped_rule_label_list_names_the_panels_box(panel):
    """The Logic parsed the rule's label boxes under names of its own ("expert scar labels must be
    ..."), neither the panel's box nor the console's field; now each face words them its way."""
    from test_slicer_panel_tissue import _labelmap_of_ones

    widget, ui = panel["widget"], panel["ui"]
    ui.scarRuleComboBox.choose("nsd")
    ui.myocardiumMaskSelector.setCurrentNode(_labelmap_of_ones(panel, "whole slice"))
    for box, label in ((ui.expertScarLabelsLineEdit, "Expert scar labels"), (ui.expertCoreLabelsLineEdit,
                                                                             "Expert core labels"),
                       (ui.bloodPoolLabelsLineEdit, "Blood-pool labels"), (ui.myocardiumLabelsLineEdit,
                                                                           "Myocardium labels")):
        box.text = "3;4"
        ui.applyButton.click()
        assert widget._run is None
        assert ui.statusLabel.text.startswith(f"'{label}' must be comma-separated integers"), ui.statusLabel.text
        box.text = ""
    from CardioScarLogic.options import ReconstructionOptions
    from cardioscar.errors import CardioScarError

    with pytest.raises(CardioScarError, match=r"^options\.expert_scar_labels must be comma-separated"):
        widget.logic.prepare_training(panel["volume"], panel["model"], ReconstructionOptions(
            scar_rule="nsd", expert_scar_labels="3;4"), _labelmap_of_ones(panel, "mask"))


@LATEST
def test_a_warning_while_the_panel_reads_its_inputs_is_in_its_log_in_its_words(panel):
    """The panel reads its inputs on the main thread, where the library's warnings went only to the
    Python console and the application log (Slicer's initLogging on the root logger,
    Base/Python/slicer/slicerqt.py): blood-pool labels given with n-SD, which does not read them, said
    nothing in the panel. Now the Log section has it,
    naming the panel's boxes, before the run starts."""
    from test_slicer_panel_tissue import _labelmap_of_ones

    widget, ui = panel["widget"], panel["ui"]
    ui.sliceIndicesLineEdit.text = "0,2,4"
    ui.scarRuleComboBox.choose("nsd")
    ui.myocardiumMaskSelector.setCurrentNode(_labelmap_of_ones(panel, "whole slice"))
    ui.bloodPoolLabelsLineEdit.text = "1"
    ui.applyButton.click()
    assert widget._run is not None, ui.statusLabel.text
    ui.applyButton.click()  # Stop: the warning came while the inputs were read
    log = ui.logTextEdit.toPlainText().splitlines()
    warned = [line for line in log if line.startswith("Warning: ")]
    blood = [line for line in warned if "'Blood-pool labels' are used by 'Scar rule (raw LGE)' iir only" in line]
    # the whole-slice stand-in mask encloses no cavity on its 3 slices: named too since round 13
    assert len(blood) == 1 and len(warned) == 2 and any("encloses no cavity" in line for line in warned), log
    assert all("--" not in line for line in warned) and log.index(blood[0]) < log.index("Training...")


@LATEST
def test_a_workers_warning_is_in_the_log_in_the_panels_words(panel, phantom):
    """Tagging a core model's result alone (a file cardioscar apply wrote) warns in the worker; the Log
    section showed the command line's options (--scar-target, --core-mesh) where the panel has boxes."""
    import json

    from cardioscar.io.meshio import SCAR_RULE_ARRAY, set_text_field

    widget, ui, model = panel["widget"], panel["ui"], panel["model"]
    _with_scar_probability(model, phantom)  # as a core model's result that cardioscar apply wrote
    set_text_field(model.GetMesh(), SCAR_RULE_ARRAY, json.dumps({"rule": "psi", "target": "core"}))
    ui.tagModelSelector.setCurrentNode(model)
    harness.click_to_end(widget, ui.tagButton)
    warned = [line for line in ui.logTextEdit.toPlainText().splitlines() if line.startswith("Warning: ")]
    assert any("core model's prediction" in line for line in warned), ui.logTextEdit.toPlainText()
    assert all("--" not in line for line in warned) and any("'Network learns' core" in line for line in warned)


@LATEST
def test_the_error_risk_and_the_uncertainty_have_their_own_sequential_colour_tables(panel, phantom):
    from CardioScarLogic import results
    from CardioScarLogic.results import write_point_arrays

    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    truth = phantom.truth.astype(np.float32)
    write_point_arrays(model, {"scar_probability": truth, "scar_uncertainty": 0.1 * truth,
                               "scar_error_risk": (0.5 * truth).astype(np.float64)})
    widget._parameterNode.resultModel = model
    display = model.GetDisplayNode()
    legend = widget.logic.color_logic.GetColorLegendDisplayNode
    tables = {"Error risk (relative)": ("scar_error_risk", results.RISK_COLOR_TABLE_ID, "CardioScar scar error risk"),
              "Scar uncertainty (MC-dropout std)": ("scar_uncertainty", results.UNCERTAINTY_COLOR_TABLE_ID,
                                                    "CardioScar scar uncertainty")}
    for shown, (field, table_id, name) in tables.items():
        ui.resultFieldComboBox.choose(shown)
        table = display.GetColorNode()
        assert display.GetActiveScalarName() == field and table.GetID() == table_id
        assert legend(model).GetTitleText() == shown and table.GetName() == name
        rgb = np.array([_rgba(table, i)[:3] for i in range(table.GetNumberOfColors())])
        luminance = rgb @ np.array([0.2126, 0.7152, 0.0722])
        # sequential: darker with the value (colours are stored as 8-bit, so neighbours may tie), from
        # near white to dark, where the probability's diverging table is lightest at its middle
        assert np.all(np.diff(luminance) <= 0) and luminance[0] - luminance[-1] > 0.75
    # two hues: a risk map is not mistaken for an uncertainty map
    risk, spread = (scene.GetNodeByID(table_id) for _, table_id, _ in tables.values())
    assert np.abs(np.array(_rgba(risk, 128)[:3]) - np.array(_rgba(spread, 128)[:3])).max() > 0.2
    ui.resultFieldComboBox.choose("Scar probability")  # the probability keeps its diverging palette
    assert display.GetColorNodeID() == results.COLOR_TABLE_ID


def _rgba(table, index: int) -> list:
    colour = [0.0] * 4
    table.GetColor(index, colour)
    return colour


@LATEST
def test_the_summary_follows_the_result_model_changed_from_the_console(panel, phantom):
    """The Logic's writers called from the Python console, in the order a rerun calls them (arrays,
    then the summary table), a tagging that adds rows, and a removed field: the summary and
    *Colour by* follow each without a click in the panel."""
    from CardioScarLogic.results import SUMMARY_REFERENCE, update_summary_table, write_point_arrays
    from CardioScarLogic.tissue import tag_model_node

    widget, ui, model = panel["widget"], panel["ui"], panel["model"]
    widget._parameterNode.resultModel = model
    assert ui.resultsLabel.text == "No result yet." and not ui.resultFieldComboBox.enabled
    _with_scar_probability(model, phantom)  # arrays first, as the Logic writes a result
    assert ui.resultFieldComboBox.enabled
    update_summary_table(model, [("Mean scar probability", "0.1234", "")])
    assert "0.1234" in ui.resultsLabel.text
    tag_model_node(model, border_zone=0.3, core=0.6, color_logic=widget.logic.color_logic)
    assert "Tissue probability >= 0.6" in ui.resultsLabel.text and model.GetNodeReference(SUMMARY_REFERENCE) is not None
    write_point_arrays(model, {"scar_probability": None})
    assert ui.resultsLabel.text == "No result yet." and not ui.resultFieldComboBox.enabled
