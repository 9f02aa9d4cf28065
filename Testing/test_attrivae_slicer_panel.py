"""The real Attri-VAE panel class (AttriVAE/AttriVAE.py) on a real MRML scene, with real worker
processes running the real ``cardioscar attrivae`` command line and a STAND-IN FOR QT/PYTHONQT
and the Slicer application (Testing/slicer_widget_harness.py, which says what it follows).

What these tests cannot prove: PythonQt's conversions, the real CTK/MRML widgets and their own
signal order, Slicer's module and layout managers, and how the slice views draw the overlay (the
composite nodes they read are checked, not pixels). The module's own self-test (Reload & Test
inside Slicer) covers the application side.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))
sys.path.insert(0, str(REPO / "AttriVAE"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import slicer  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
import slicer_widget_harness as harness  # noqa: E402
from AttriVAELogic import scene as results  # noqa: E402

CASE = "Case_P003"
BOTH_VERSIONS = pytest.mark.parametrize("panel", ("5.8", "5.10"), indirect=True)
LATEST = pytest.mark.parametrize("panel", ["5.10"], indirect=True)


@pytest.fixture()
def panel(request, shared_data):
    """The module's widget built as Slicer's module manager builds it, on a fresh scene with the
    application's layout node and slice views, an EMIDEC LGE and its label map."""
    folder = shared_data / "emidec" / CASE
    context = csl.create_scene()
    layout_logic = slicer.vtkMRMLLayoutLogic()
    layout_logic.SetMRMLScene(context.scene)
    slice_logics = []
    for name in ("Red", "Yellow", "Green"):
        slice_logics.append(slicer.vtkMRMLSliceLogic())
        slice_logics[-1].SetMRMLScene(context.scene)
        slice_logics[-1].AddSliceNode(name)
    labels = csl.load_volume(context.scene, folder / "Contours" / f"{CASE}.nii.gz", labelmap=True)
    lge = csl.load_volume(context.scene, folder / "Images" / f"{CASE}.nii.gz")
    saved = harness.install(context.application_logic, request.param)
    try:
        import AttriVAE

        widget = AttriVAE.AttriVAEWidget(harness.qMRMLWidget("modulePanel"))
        widget.setup()
        widget.enter()
        yield {"widget": widget, "ui": widget.ui, "scene": context.scene, "lge": lge, "labels": labels,
               "module": AttriVAE, "slice_logics": slice_logics, "layout_logic": layout_logic, "context": context}
        widget.cleanup()
    finally:
        harness.uninstall(saved)


@BOTH_VERSIONS
def test_defaults_choices_and_reentering_keep_every_option(panel, tmp_path):
    widget, ui = panel["widget"], panel["ui"]
    parameters = widget._parameterNode
    assert parameters.lgeVolume is panel["lge"] and parameters.labels is panel["labels"]  # not the label map as LGE
    assert not ui.predictButton.enabled and "model file" in ui.predictButton.toolTip
    ui.conventionComboBox.choose("ACDC")
    ui.stepsSpinBox.value = 5
    ui.attributesLineEdit.text = "age,sex"
    ui.opacitySpinBox.value = 0.3
    ui.forceCpuCheckBox.checked = True
    ui.modelPathLineEdit.currentPath = str(tmp_path / "model.pth")
    expected = {"labelConvention": "ACDC", "cavityLabels": "3", "myocardiumLabels": "2", "steps": 5,
                "attributes": "age,sex", "opacity": 0.3, "forceCpu": True, "modelPath": str(tmp_path / "model.pth")}
    assert ui.predictButton.enabled and ui.explainButton.enabled
    count = harness.observer_count(widget)
    for _ in range(3):
        widget.exit()
        widget.enter()
    assert {name: getattr(widget._parameterNode, name) for name in expected} == expected
    assert ui.cavityLabelsLineEdit.text == "3" and ui.modelPathLineEdit.currentPath == str(tmp_path / "model.pth")
    assert harness.observer_count(widget) == count
    assert widget.options().device == "cpu"
    # a segmentation as labels: the segment boxes are the ones that count
    segmentation = panel["scene"].AddNewNodeByClass("vtkMRMLSegmentationNode", "segments")
    widget._parameterNode.labels = segmentation
    assert ui.cavitySegmentsLineEdit.enabled and not ui.cavityLabelsLineEdit.enabled


@LATEST
def test_predict_then_explain_from_the_panel(panel, attrivae_model, monkeypatch):
    widget, ui, scene, lge = panel["widget"], panel["ui"], panel["scene"], panel["lge"]
    # loading the result: under the wait cursor, with Stop disabled (the cursor processes pending events)
    from AttriVAELogic.command import CommandRun

    finishing, real_finish = [], CommandRun.finish
    monkeypatch.setattr(CommandRun, "finish", lambda run: finishing.append(
        (list(harness.QApplication.cursors), widget._runButton.enabled)) or real_finish(run))
    ui.modelPathLineEdit.currentPath = str(attrivae_model)
    ui.predictButton.click()
    assert ui.predictButton.text == "Stop" and not ui.explainButton.enabled and ui.progressBar.visible
    harness.run_to_end(widget)
    assert ui.predictButton.text == "Predict" and ui.explainButton.enabled and not ui.progressBar.visible
    assert finishing == [([harness.Qt.WaitCursor], False)] and harness.QApplication.cursors == []
    table = lge.GetNodeReference(results.PREDICTION_REFERENCE)
    assert table is not None and table.GetCellText(0, 0) == "MI probability"
    assert f"<b>{table.GetCellText(0, 1)}</b>" in ui.resultsLabel.text and "Wall thickness" in ui.resultsLabel.text
    assert ui.statusLabel.text.startswith(f"MI probability {table.GetCellText(0, 1)} (not calibrated: the network's "
                                          "raw score")  # the session's model was trained with --folds 0
    # the slice views (where the maps will be drawn) and the table view
    layout = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    assert layout.GetViewArrangement() == slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView
    selection = panel["context"].application_logic.GetSelectionNode()
    assert selection.GetActiveTableID() == table.GetID()
    assert "MI probability" in ui.logTextEdit.toPlainText()  # the command's own log line

    ui.attributesLineEdit.text = "lv_volume_ml"
    ui.stepsSpinBox.value = 2
    ui.explainButton.click()
    harness.run_to_end(widget)
    attention = lge.GetNodeReference(results.ATTENTION_REFERENCE + "lv_volume_ml")
    assert attention is not None and lge.GetNodeReference(results.ATTENTION_REFERENCE + "age") is None
    assert attention.GetImageData().GetDimensions() == lge.GetImageData().GetDimensions()
    composite = scene.GetFirstNodeByClass("vtkMRMLSliceCompositeNode")
    assert composite.GetForegroundVolumeID() == attention.GetID()
    assert composite.GetForegroundOpacity() == pytest.approx(0.5)
    assert "lv_volume_ml" in ui.explanationLabel.text and "1 attention maps" in ui.statusLabel.text
    assert selection.GetActiveTableID() == lge.GetNodeReference(results.FILES_REFERENCE).GetID()
    # closing the scene removes the table and the maps: the labels that named them go back to empty
    scene.Clear(0)
    assert ui.resultsLabel.text == "(shown after Predict)" and ui.explanationLabel.text == ""
    assert ui.statusLabel.text == ""  # "1 attention maps ..." named the closed scene's maps (every panel's close)


@LATEST
def test_stop_and_errors_are_one_line_and_change_nothing(panel, attrivae_model, tmp_path):
    widget, ui, scene = panel["widget"], panel["ui"], panel["scene"]
    before = scene.GetNumberOfNodes()
    ui.modelPathLineEdit.currentPath = str(attrivae_model)
    ui.explainButton.click()
    run = widget._run
    assert ui.explainButton.text == "Stop"
    ui.explainButton.click()
    assert widget._run is None and run._process.poll() is not None and not run.folder.exists()
    assert ui.explainButton.text == "Explain" and ui.statusLabel.text == "Stopped: nothing was changed."
    # the command line refuses the model: its one line in the status
    broken = tmp_path / "broken.pth"
    broken.write_text("not a checkpoint")
    ui.modelPathLineEdit.currentPath = str(broken)
    ui.predictButton.click()
    harness.run_to_end(widget)
    assert "broken.pth" in ui.statusLabel.text and "\n" not in ui.statusLabel.text
    assert ui.logTextEdit.toPlainText().count("Error: ") == 1
    # a label the labels lack: refused before anything starts
    ui.modelPathLineEdit.currentPath = str(attrivae_model)
    ui.cavityLabelsLineEdit.text = "9"
    ui.predictButton.click()
    assert widget._run is None and ui.statusLabel.text.startswith("No voxel of the cavity (label(s) 9)")
    assert scene.GetNumberOfNodes() == before
    assert ui.resultsLabel.text == "(shown after Predict)"


@LATEST
def test_ctest_skips_the_self_test_without_torch(panel, monkeypatch):
    """As CardioScar's: ctest's slicer.testing.runUnitTest loads AttriVAE.py with unittest's loader
    (setUp and each test_* method, never runTest); without PyTorch (hidden here) the test skips
    instead of failing, and the scene is left alone."""
    import io
    import unittest

    monkeypatch.setitem(sys.modules, "torch", None)
    nodes = panel["scene"].GetNumberOfNodes()
    suite = unittest.TestLoader().loadTestsFromName("AttriVAE")
    result = unittest.TextTestRunner(stream=io.StringIO()).run(suite)
    assert result.testsRun == 1 and len(result.skipped) == 1 and result.wasSuccessful()
    assert "PyTorch is not installed" in result.skipped[0][1]
    assert panel["scene"].GetNumberOfNodes() == nodes



@LATEST
def test_writing_the_inputs_shows_the_wait_cursor_and_blocks_a_second_click(panel, tmp_path, monkeypatch):
    """Starting a command writes the LGE and its labels on the main thread: the application's wait
    cursor shows meanwhile (as in the CardioScar panel) and the button is disabled, since the wait
    cursor processes pending events; a refusal then gives the button back."""
    widget, ui = panel["widget"], panel["ui"]
    ui.modelPathLineEdit.currentPath = str(tmp_path / "missing.pth")
    seen, real_start = [], widget.logic.start_prediction
    monkeypatch.setattr(widget.logic, "start_prediction", lambda *args: seen.append(
        (list(harness.QApplication.cursors), ui.predictButton.enabled)) or real_start(*args))
    ui.predictButton.click()
    assert seen == [([harness.Qt.WaitCursor], False)]
    assert widget._run is None and "missing.pth" in ui.statusLabel.text and "\n" not in ui.statusLabel.text
    assert harness.QApplication.cursors == [] and ui.predictButton.enabled


@LATEST
def test_a_selector_with_no_node_says_none_as_cardioscars_do(panel):
    """Every node selector that may be left empty reads "none" (its ``noneDisplay``) in both panels:
    Attri-VAE's Labels selector showed qMRMLNodeComboBox's default "None" beside CardioScar's
    "none" (the last panel review)."""
    def empty_words(widgets) -> dict:
        return {w.name: w.noneDisplay for w in widgets if isinstance(w, harness.qMRMLNodeComboBox) and w.noneEnabled}

    attrivae = empty_words(panel["ui"].__dict__.values())
    cardioscar_ui = harness.QUiLoader().load(harness.QFile(REPO / "CardioScar" / "Resources" / "UI" / "CardioScar.ui"))
    cardioscar = empty_words(cardioscar_ui.findChildren())
    assert attrivae == {"labelsSelector": "none"}
    assert cardioscar and all(words.split(" (")[0] == "none" for words in cardioscar.values())  # one adds why

