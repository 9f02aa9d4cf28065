"""What the panel shows must be what the run will use and what the 3D view shows, read against
Slicer's own sources (the real panel class on a real MRML scene, with the Qt stand-in of
Testing/slicer_widget_harness.py; see there for what that cannot prove).

- The threshold box: Slicer's spin-box connector gives the box the parameter's ``WithinRange``
  (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py), not the .ui's range.
- The progress bar: busy (Qt's indeterminate mode, as Slicer's pip dialog in
  Base/Python/slicer/packaging.py) until the worker reports an epoch.
- *Colour by*: follows the newest result's display node, also after the scene is saved and
  loaded again (the result is a node reference on the parameter node, as Slicer keeps state).
- A saved core model applied lands on a new core node, as a core training run does.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import slicer_widget_harness as harness  # noqa: E402
from test_slicer_panel import LATEST, case, panel, phantom  # noqa: E402,F401 - the panel fixtures

from cardioscar.io.checks import check_threshold  # noqa: E402


@LATEST
def test_the_threshold_box_stops_inside_the_range_the_logic_accepts(panel):
    """0 and 1 are refused by every face (check_threshold); the box must not offer them."""
    ui, parameters = panel["ui"], panel["widget"]._parameterNode
    for typed in (0.0, 1.0):
        ui.thresholdSpinBox.value = typed
        assert check_threshold(parameters.threshold) == parameters.threshold == ui.thresholdSpinBox.value
    assert (ui.thresholdSpinBox.minimum, ui.thresholdSpinBox.maximum) == (0.01, 0.99)


@LATEST
def test_the_progress_bar_is_busy_until_the_worker_reports_an_epoch(panel):
    """A second run must not start on the first run's full bar and its "epoch 15/15" text: until
    the first epoch there is no fraction done to show (Qt hides the text of a busy bar)."""
    widget, ui = panel["widget"], panel["ui"]
    widget._onProgress({"epoch": 15, "max_epochs": 15, "loss": 0.01, "eta_s": 0.0})  # the last run's last report
    widget._parameterNode.maxEpochs = widget._parameterNode.earlyStoppingPatience = 100000
    ui.applyButton.click()
    try:
        assert widget._run is not None, ui.statusLabel.text
        assert (ui.progressBar.maximum, ui.progressBar.value, ui.progressBar.visible) == (0, 0, True)
        widget._onProgress({"epoch": 1, "max_epochs": 100000, "loss": 0.2, "eta_s": None})
        assert (ui.progressBar.maximum, ui.progressBar.value) == (100000, 1)
        assert ui.progressBar.format.startswith("epoch 1/100000")
    finally:
        ui.applyButton.click()  # Stop
    assert widget._run is None and not ui.progressBar.visible


@LATEST
def test_colour_by_names_what_the_view_shows_and_survives_a_scene_reload(panel, tmp_path):
    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    combo = ui.resultFieldComboBox
    ui.sliceIndicesLineEdit.text = "0,2,4"
    ui.applyButton.click()
    harness.run_to_end(widget)
    display = model.GetDisplayNode()
    assert combo.enabled and combo.currentText == "Scar probability"
    assert "Mean scar probability" in ui.resultsLabel.text
    combo.choose("Error risk (relative)")
    assert display.GetActiveScalarName() == "scar_error_risk" and combo.currentText == "Error risk (relative)"

    # Tag tissue recolours the same model by tissue_tag: the box must stop naming the risk
    assert widget._parameterNode.tagModel is model
    harness.click_to_end(panel["widget"], ui.tagButton)
    assert display.GetActiveScalarName() == "tissue_tag", ui.statusLabel.text
    assert combo.enabled and combo.currentIndex == -1 and combo.currentText == ""
    assert "Tissue probability >=" in ui.resultsLabel.text  # the summary is the result's table, tag rows included
    widget.logic.show_field(model, "scar_error_risk")  # from the Python console (or the Models module)
    assert combo.currentText == "Error risk (relative)"
    display.SetScalarVisibility(False)  # the Models module's "Scalars: visible" unticked
    assert combo.currentIndex == -1
    display.SetScalarVisibility(True)
    combo.choose("Scar uncertainty (MC-dropout std)")
    assert display.GetActiveScalarName() == "scar_uncertainty" and combo.currentText.startswith("Scar uncertainty")

    # save the scene with the result's file, close it, load it again: Colour by works on the loaded result
    storage = model.GetStorageNode()
    storage.SetFileName(str(tmp_path / "result.vtk"))
    assert storage.WriteData(model)
    summary = model.GetNodeReference("CardioScarSummaryTable")
    summary.AddDefaultStorageNode()
    summary.GetStorageNode().SetFileName(str(tmp_path / "summary.tsv"))
    assert summary.GetStorageNode().WriteData(summary)
    scene.SetRootDirectory(str(tmp_path))
    scene.SetURL(str(tmp_path / "scene.mrml"))
    assert scene.Commit()
    scene.Clear(0)
    assert widget._parameterNode.resultModel is None and not combo.enabled
    assert ui.resultsLabel.text == "No result yet."  # not the closed scene's result
    scene.SetURL(str(tmp_path / "scene.mrml"))
    assert scene.Import()
    loaded = widget._parameterNode.resultModel
    assert loaded is not None and loaded.GetName() == model.GetName()
    # the sections that need a result see the loaded one (the scene reads the files after setting references)
    assert widget._parameterNode.tagModel is loaded and ui.tagButton.enabled, ui.tagButton.toolTip
    assert widget._parameterNode.ahaModel is loaded
    assert combo.enabled and combo.currentText.startswith("Scar uncertainty")  # as the scene shows it
    assert "Mean scar probability" in ui.resultsLabel.text and "Tissue probability >=" in ui.resultsLabel.text
    combo.choose("Scar probability")
    assert loaded.GetDisplayNode().GetActiveScalarName() == "scar_probability"
    assert loaded.GetDisplayNode().GetScalarRange() == (0.0, 1.0)


@LATEST
def test_a_saved_core_model_applied_never_replaces_the_scar_result(panel, tmp_path):
    """A core run always lands on a new "<mesh> CardioScar core" node, so that it never overwrites
    the scar result it is tagged with; *Apply a saved model* with a saved core model did not, and
    with *new model node* unticked wrote the core over the scar result on the mesh."""
    import json

    import numpy as np
    from test_slicer_panel import _arrays
    from test_slicer_panel_tissue import _labelmap_of_ones

    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    parameters = widget._parameterNode
    ui.sliceIndicesLineEdit.text = "0,2,4"
    ui.scarRuleComboBox.choose("psi")
    ui.myocardiumMaskSelector.setCurrentNode(_labelmap_of_ones(panel, "whole slice"))
    ui.applyButton.click()
    harness.run_to_end(widget)
    scar = _arrays(model)["scar_probability"]
    ui.scarTargetComboBox.choose("core")
    ui.applyButton.click()
    harness.run_to_end(widget)
    harness.QFileDialog.answer = str(tmp_path / "core.pth")
    ui.saveModelButton.click()  # the model trained last: the core
    assert (tmp_path / "core.pth").is_file(), ui.statusLabel.text
    models = scene.GetNumberOfNodesByClass("vtkMRMLModelNode")

    ui.outputNewModelCheckBox.checked = False
    ui.applySavedButton.click()
    assert widget._run is not None, ui.statusLabel.text
    harness.run_to_end(widget)
    np.testing.assert_array_equal(_arrays(model)["scar_probability"], scar)  # the scar result is kept
    assert json.loads(model.GetAttribute("CardioScar.ScarRule"))["target"] == "scar"
    assert scene.GetNumberOfNodesByClass("vtkMRMLModelNode") == models + 1, ui.statusLabel.text
    applied = parameters.tagCoreModel
    assert applied.GetName() == "phantom_mesh CardioScar core_1" and parameters.tagModel is model
    assert json.loads(applied.GetAttribute("CardioScar.ScarRule"))["target"] == "core"
