"""The real panel class (CardioScar.py) on a real MRML scene, with a stand-in for Qt/PythonQt.

See Testing/slicer_widget_harness.py for what is real, what is a stand-in and what these tests
cannot prove. Each flow runs under Slicer 5.8's and 5.10's parameter-node binding rules.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import slicer  # noqa: E402
import vtk  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic import background as csl_background, worker as csl_worker  # noqa: E402
import slicer_widget_harness as harness  # noqa: E402
from CardioScarLogic.layout import RESULTS_LAYOUT_ID  # noqa: E402
from cardioscar.aha import AhaOptions  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom  # noqa: E402

VERSIONS = ("5.8", "5.10")
BOTH_VERSIONS = pytest.mark.parametrize("panel", VERSIONS, indirect=True)
LATEST = pytest.mark.parametrize("panel", ["5.10"], indirect=True)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(PhantomConfig(target_nodes=2000, seed=3))


@pytest.fixture(scope="module")
def case(tmp_path_factory, phantom):
    return write_phantom(phantom, tmp_path_factory.mktemp("phantom")), phantom.slice_half_thickness_mm


@pytest.fixture()
def panel(request, case):
    """The module's widget built by Slicer's rules on a fresh scene with a volume and a mesh."""
    paths, half = case
    context = csl.create_scene()
    layout_logic = slicer.vtkMRMLLayoutLogic()  # the application's: a layout node, views made for a layout
    layout_logic.SetMRMLScene(context.scene)
    volume = csl.load_volume(context.scene, paths["image"])
    model = csl.load_model(context.scene, paths["mesh"])
    saved = harness.install(context.application_logic, request.param)  # the Slicer version's rules
    try:
        import CardioScar

        widget = CardioScar.CardioScarWidget(harness.qMRMLWidget("modulePanel"))  # as Slicer's module manager:
        widget.setup()  # construct with the panel as parent, then setup(), then enter() when shown
        widget.enter()
        widget._parameterNode.halfThickness = half
        widget._parameterNode.maxEpochs = 15
        yield {"widget": widget, "ui": widget.ui, "scene": context.scene, "volume": volume, "model": model,
               "module": CardioScar, "context": context, "layout_logic": layout_logic, "version": request.param}
        widget.cleanup()
    finally:
        harness.uninstall(saved)


def _arrays(model) -> dict:
    data = model.GetMesh().GetPointData()
    return {data.GetArrayName(i): vtk.util.numpy_support.vtk_to_numpy(data.GetArray(i)).copy()
            for i in range(data.GetNumberOfArrays())}


def _choose_options(ui) -> dict:
    ui.sliceAxisComboBox.choose("y")
    ui.presetComboBox.choose("documented")
    ui.sliceIndicesLineEdit.text = "2,5"
    ui.scarLabelsLineEdit.text = "3"
    ui.seedSpinBox.value = 9
    ui.thresholdCheckBox.checked = False
    ui.myocardiumLabelsLineEdit.text = "2,3"
    ui.myocardiumSegmentLineEdit.text = "Myocardium"
    ui.ahaRvLabelSpinBox.value = 3
    ui.ahaMyocardiumLabelSpinBox.value = 4
    ui.myocardiumMarginSpinBox.value = 2
    ui.shapePriorComboBox.choose("on")
    ui.sliceProfileComboBox.choose("gaussian")
    return {"shapePrior": "on", "sliceProfile": "gaussian", "myocardiumMargin": 2, "ahaRvLabel": 3, "ahaMyocardiumLabel": 4, "sliceAxis": "y", "preset": "documented", "sliceIndices": "2,5", "scarLabels": "3", "seed": 9,
            "useThreshold": False, "maxEpochs": 10000, "myocardiumLabels": "2,3", "myocardiumSegment": "Myocardium"}


@BOTH_VERSIONS
def test_enter_exit_and_reenter_keep_every_option_and_add_no_observers(panel):
    widget, ui = panel["widget"], panel["ui"]
    expected = _choose_options(ui)
    assert harness.observer_count(widget) == 2
    for _ in range(3):
        widget.exit()
        widget.enter()
    parameters = widget._parameterNode
    assert {name: getattr(parameters, name) for name in expected} == expected
    assert (ui.sliceAxisComboBox.currentText, ui.presetComboBox.currentText) == ("y", "documented")
    assert harness.observer_count(widget) == 2
    for _ in range(2):
        panel["scene"].Clear(0)
    assert harness.observer_count(widget) == 2


@pytest.mark.parametrize("panel", ["5.8"], indirect=True)
def test_the_harness_reproduces_the_5_8_reconnection_defect(panel):
    """The stand-in follows 5.8's rules closely enough to show the defect the panel avoids:
    connectGui returns no tag there, so the old connectors stay and write stale choices back."""
    widget, ui = panel["widget"], panel["ui"]
    wrapper = widget._parameterNode
    wrapper.disconnectGui(widget._parameterNodeGuiTag)
    ui.sliceAxisComboBox.choose("y")
    for _ in range(2):
        tag = wrapper.connectGui(ui)
        wrapper.disconnectGui(tag)
        wrapper = panel["module"].CardioScarParameterNode(wrapper.parameterNode)
    wrapper.connectGui(ui)
    assert tag is None and wrapper.sliceAxis != "y"


@BOTH_VERSIONS
def test_typing_in_the_middle_of_the_slice_indices_keeps_the_cursor(panel):
    edit = panel["ui"].sliceIndicesLineEdit
    edit.text = "8"
    edit.cursorPosition = 0
    edit.type("2,")
    assert edit.text == "2,8" and panel["widget"]._parameterNode.sliceIndices == "2,8"


@BOTH_VERSIONS
def test_a_fresh_scene_shows_an_empty_saved_model_path(panel):
    assert panel["ui"].savedModelPathLineEdit.currentPath == ""
    assert not panel["ui"].applySavedButton.enabled


@LATEST
def test_the_save_and_saved_model_buttons_say_why_they_are_disabled(panel, tmp_path):
    """As every other action button of the panel (and Slicer's module template's Apply button), a
    disabled *Apply a saved model*, *Save model* or *Save bull's-eye* says in its tool tip what it
    waits for, and shows the .ui's tool tip once it can run. Before the fix they kept the .ui's tool
    tip while disabled, so nothing said why."""
    ui, parameters = panel["ui"], panel["widget"]._parameterNode
    assert not ui.applySavedButton.enabled and ui.applySavedButton.toolTip == (
        "Choose a saved CardioScar model (.pth) in the box above.")
    assert not ui.saveModelButton.enabled and "run Train and apply first" in ui.saveModelButton.toolTip
    assert not ui.saveBullseyeButton.enabled and "run Compute AHA segments first" in ui.saveBullseyeButton.toolTip
    ui.savedModelPathLineEdit.currentPath = str(tmp_path / "earlier.pth")
    assert not ui.applySavedButton.enabled and "is not there" in ui.applySavedButton.toolTip  # no such file
    (tmp_path / "earlier.pth").write_bytes(b"")
    ui.savedModelPathLineEdit.currentPath = ""
    ui.savedModelPathLineEdit.currentPath = str(tmp_path / "earlier.pth")
    assert ui.applySavedButton.enabled
    assert ui.applySavedButton.toolTip == "Predict with the saved model on the mesh (no training)"  # the .ui's
    parameters.heartModel = None
    assert not ui.applySavedButton.enabled and ui.applySavedButton.toolTip == "Select the heart mesh to predict on."


@BOTH_VERSIONS
def test_scene_close_and_import_restore_the_saved_panel(panel, tmp_path):
    widget, ui, scene = panel["widget"], panel["ui"], panel["scene"]
    second = csl.load_volume(scene, _second_volume(panel, tmp_path))
    expected = _choose_options(ui)
    (tmp_path / "earlier.pth").write_bytes(b"")  # Apply a saved model is enabled for a file that is there
    ui.savedModelPathLineEdit.currentPath = expected["savedModelPath"] = str(tmp_path / "earlier.pth")
    # the export prefix and the channel folder are path boxes (browse buttons) the panel keeps itself too
    ui.exportPrefixLineEdit.currentPath = expected["exportPrefix"] = str(tmp_path / "out" / "heart")
    ui.channelOutputDirLineEdit.currentPath = expected["channelOutputDir"] = str(tmp_path / "channels")
    ui.extraInputsSelector.setCheckState(second, harness.Qt.Checked)
    scene_file = tmp_path / "scene.mrml"
    scene.SetRootDirectory(str(tmp_path))
    scene.SetURL(str(scene_file))
    assert scene.Commit()
    scene.Clear(0)
    assert widget._parameterNode.sliceAxis == "z" and ui.sliceAxisComboBox.currentText == "z"
    assert ui.savedModelPathLineEdit.currentPath == ui.exportPrefixLineEdit.currentPath == \
        ui.channelOutputDirLineEdit.currentPath == ""
    scene.SetURL(str(scene_file))
    assert scene.Import()
    parameters = widget._parameterNode
    assert {name: getattr(parameters, name) for name in expected} == expected
    assert [node.GetName() for node in ui.extraInputsSelector.checkedNodes()] == [second.GetName()]
    assert ui.savedModelPathLineEdit.currentPath == expected["savedModelPath"] and ui.applySavedButton.enabled
    assert (ui.exportPrefixLineEdit.currentPath, ui.channelOutputDirLineEdit.currentPath) == \
        (expected["exportPrefix"], expected["channelOutputDir"])


def _second_volume(panel, tmp_path):
    volume = panel["volume"]
    path = tmp_path / "second.nrrd"
    storage = panel["scene"].AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    assert storage.WriteData(volume)
    panel["scene"].RemoveNode(storage)
    return path


@BOTH_VERSIONS
def test_a_bad_slice_index_shows_one_line_and_starts_nothing(panel):
    widget, ui = panel["widget"], panel["ui"]
    ui.sliceIndicesLineEdit.text = "0,999"
    ui.applyButton.click()
    assert widget._run is None
    assert "\n" not in ui.statusLabel.text and "999" in ui.statusLabel.text
    assert ui.applyButton.text == "Train and apply"


@BOTH_VERSIONS
def test_the_myocardium_fields_and_mask_reach_the_logic(panel, tmp_path):
    """Each myocardium field of the panel is read by the run: a mistake in it comes back from the
    Logic as the one status line, and no run starts. The mask is a real volume node moved by a
    real transform away from the slices, so only a panel that hands that node over can fail so."""
    widget, ui, scene = panel["widget"], panel["ui"], panel["scene"]
    assert ui.myocardiumMaskSelector.currentNode() is None  # optional: none until chosen
    ui.myocardiumLabelsLineEdit.text = "2,3"
    ui.applyButton.click()
    assert widget._run is None and "name labels of a label-map input" in ui.statusLabel.text
    ui.myocardiumLabelsLineEdit.text = ""
    ui.myocardiumSegmentLineEdit.text = "Myocardium"
    ui.applyButton.click()
    assert widget._run is None and "names a segment of a segmentation input" in ui.statusLabel.text
    ui.myocardiumSegmentLineEdit.text = ""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(_second_volume(panel, tmp_path)))  # a 0/1 mask (a mask holds whole numbers)
    sitk.WriteImage(sitk.Cast(image > 0, sitk.sitkUInt8), str(tmp_path / "mask.nrrd"))
    mask = csl.load_volume(scene, tmp_path / "mask.nrrd", labelmap=True, name="far mask")
    away = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[2, 3] = 1000.0
    away.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
    mask.SetAndObserveTransformNodeID(away.GetID())
    ui.myocardiumMaskSelector.setCurrentNode(mask)
    assert widget._parameterNode.myocardiumMask is mask
    ui.applyButton.click()
    assert widget._run is None and "myocardium mask 'far mask' does not overlap slice" in ui.statusLabel.text
    assert "\n" not in ui.statusLabel.text


@BOTH_VERSIONS
def test_the_myocardium_margin_reaches_the_rows_the_worker_trains_on(panel, tmp_path):
    """The margin spin box is bound to its parameter and handed to the Logic: alone (no myocardium)
    the Logic refuses it in one line; with a real mask node the training rows the panel writes for
    its worker record the margin and hold more groups than without it (pixels next to the mask)."""
    from cardioscar.logic import load_preprocessing_result

    widget, ui, scene = panel["widget"], panel["ui"], panel["scene"]
    assert ui.myocardiumMarginSpinBox.value == 0 and (ui.myocardiumMarginSpinBox.minimum,
                                                      ui.myocardiumMarginSpinBox.maximum) == (0, 10)
    ui.myocardiumMarginSpinBox.value = 1
    assert widget._parameterNode.myocardiumMargin == 1 and widget.options().myocardium_margin == 1
    ui.applyButton.click()
    assert widget._run is None and ui.statusLabel.text.startswith("Myocardium margin 1 px widens a myocardium")
    import SimpleITK as sitk

    image = sitk.ReadImage(str(_second_volume(panel, tmp_path)))
    # the scar and a band of healthy wall around it: the scar alone as the mask is refused (no healthy example)
    scar = sitk.Cast(image > 0.5, sitk.sitkUInt8)
    sitk.WriteImage(sitk.BinaryDilate(scar, [3, 3, 0]), str(tmp_path / "mask.nrrd"))
    ui.myocardiumMaskSelector.setCurrentNode(csl.load_volume(scene, tmp_path / "mask.nrrd", labelmap=True))
    rows = {}
    for margin in (1, 0):
        ui.myocardiumMarginSpinBox.value = margin
        ui.applyButton.click()
        assert widget._run is not None, ui.statusLabel.text
        rows[margin] = load_preprocessing_result(widget._run.folder / csl_worker.TRAINING_DATA_FILE)
        ui.applyButton.click()  # Stop: the rows are what the worker was given
        assert widget._run is None
    assert rows[1].myocardium_source.endswith("margin 1 px") and "margin" not in rows[0].myocardium_source
    assert rows[1].n_groups > rows[0].n_groups


@BOTH_VERSIONS
def test_the_shape_prior_box_reaches_the_worker_s_training_configuration(panel):
    """The job the panel writes for its worker trains as the box says (as ``cardioscar train
    --shape-prior on|off|auto``); a preset sets the box to its own choice (fast auto, documented off)."""
    widget, ui = panel["widget"], panel["ui"]
    assert widget._parameterNode.shapePrior == "auto" and ui.shapePriorComboBox.currentText == "auto"
    trained = {}
    for choice in ("on", "off", "auto"):
        ui.shapePriorComboBox.choose(choice)
        assert widget._parameterNode.shapePrior == choice
        ui.applyButton.click()
        assert widget._run is not None, ui.statusLabel.text
        job = json.loads((widget._run.folder / csl_worker.JOB_FILE).read_text(encoding="utf-8"))
        trained[choice] = job["training"]["shape_prior"]
        ui.applyButton.click()  # Stop
        assert widget._run is None
    assert trained == {"on": True, "off": False, "auto": "auto"}
    for preset, choice in (("documented", "off"), ("fast", "auto")):
        ui.presetComboBox.choose(preset)
        assert widget._parameterNode.shapePrior == choice and ui.shapePriorComboBox.currentText == choice


@LATEST
def test_the_slice_profile_box_reaches_the_rows_the_worker_trains_on(panel):
    """The profile box is bound to its parameter and handed to the Logic: with gaussian the rows
    the panel writes for its worker record the profile and one weight per row, and hold more rows
    in the same groups than with the box (the profile's tails)."""
    from cardioscar.logic import load_preprocessing_result

    widget, ui = panel["widget"], panel["ui"]
    assert widget._parameterNode.sliceProfile == "box" and ui.sliceProfileComboBox.currentText == "box"
    rows = {}
    for choice in ("gaussian", "box"):
        ui.sliceProfileComboBox.choose(choice)
        assert widget._parameterNode.sliceProfile == choice and widget.options().slice_profile == choice
        ui.applyButton.click()
        assert widget._run is not None, ui.statusLabel.text
        rows[choice] = load_preprocessing_result(widget._run.folder / csl_worker.TRAINING_DATA_FILE)
        ui.applyButton.click()  # Stop: the rows are what the worker was given
        assert widget._run is None
    gaussian, box = rows["gaussian"], rows["box"]
    assert (gaussian.slice_profile, box.slice_profile, box.row_weights) == ("gaussian", "box", None)
    assert gaussian.n_groups == box.n_groups and gaussian.n_nodes > box.n_nodes == len(box.group_ids)
    assert gaussian.row_weights.shape == (gaussian.n_nodes,) and gaussian.row_weights.min() < 0.5


@LATEST  # the run itself does not depend on the binding rules
def test_train_then_stop_changes_nothing(panel):
    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    widget._parameterNode.maxEpochs = 100000
    widget._parameterNode.earlyStoppingPatience = 100000
    before, nodes = _arrays(model), scene.GetNumberOfNodes()
    ui.applyButton.click()
    assert widget._run is not None, ui.statusLabel.text + ui.logTextEdit.toPlainText()
    assert ui.applyButton.text == "Stop" and not ui.optionsCollapsibleButton.enabled
    process = widget._run._process
    deadline = time.monotonic() + 120
    while ui.progressBar.value == 0:
        assert widget._run is not None and time.monotonic() < deadline, ui.logTextEdit.toPlainText()
        slicer.app.processEvents()
        time.sleep(0.05)
    ui.applyButton.click()
    assert widget._run is None and process.poll() is not None
    assert ui.applyButton.text == "Train and apply" and ui.optionsCollapsibleButton.enabled
    assert set(_arrays(model)) == set(before) and scene.GetNumberOfNodes() == nodes
    assert "Stopped" in ui.statusLabel.text


@LATEST  # the run itself does not depend on the binding rules
def test_train_writes_the_chosen_node_and_a_saved_model_applies(panel, tmp_path):
    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    ui.sliceIndicesLineEdit.text = "0,2,4"
    assert not ui.outputNewModelCheckBox.checked
    assert not ui.resultFieldComboBox.enabled  # nothing to colour yet
    ui.applyButton.click()
    harness.run_to_end(widget)
    first = _arrays(model)["scar_probability"]
    assert "scar_error_risk" in _arrays(model)  # the worker hands every array of the prediction over
    # Colour by: the risk and the MC spread on the newest result, then back to the probability
    display = model.GetDisplayNode()
    assert ui.resultFieldComboBox.enabled and display.GetActiveScalarName() == "scar_probability"
    ui.resultFieldComboBox.choose("Error risk (relative)")
    assert display.GetActiveScalarName() == "scar_error_risk" and display.GetScalarRange() == (0.0, 1.0)
    ui.resultFieldComboBox.choose("Scar uncertainty (MC-dropout std)")
    assert display.GetActiveScalarName() == "scar_uncertainty"
    assert display.GetScalarRange()[1] == pytest.approx(float(_arrays(model)["scar_uncertainty"].max()))
    ui.resultFieldComboBox.choose("Scar probability")
    assert display.GetActiveScalarName() == "scar_probability" and display.GetScalarRange() == (0.0, 1.0)
    ui.resultFieldComboBox.choose("Error risk (relative)")  # a new result starts on the probability again
    log = ui.logTextEdit.toPlainText()
    assert "epoch 15/15" in log and "Finished on cpu" in log
    assert ui.outputNewModelCheckBox.checked, "the next run goes into a new node by default"
    assert scene.GetFirstNodeByClass("vtkMRMLLayoutNode").GetViewArrangement() == RESULTS_LAYOUT_ID
    table_view = scene.GetFirstNodeByClass("vtkMRMLTableViewNode")
    assert table_view.GetTableNodeID() == model.GetNodeReferenceID("CardioScarSummaryTable")
    assert widget._parameterNode.ahaModel is model and ui.ahaModelSelector.currentNode() is model  # AHA: the result

    models = scene.GetNumberOfNodesByClass("vtkMRMLModelNode")
    widget._parameterNode.seed = 5
    ui.applyButton.click()
    harness.run_to_end(widget)
    assert scene.GetNumberOfNodesByClass("vtkMRMLModelNode") == models + 1
    new = [scene.GetNthNodeByClass(i, "vtkMRMLModelNode") for i in range(models + 1)][-1]
    assert "scar_probability" in _arrays(new) and new is not model
    assert ui.resultFieldComboBox.currentText == "Scar probability"
    assert new.GetDisplayNode().GetActiveScalarName() == "scar_probability"
    ui.resultFieldComboBox.choose("Error risk (relative)")  # recolours the newest result, not the first
    assert new.GetDisplayNode().GetActiveScalarName() == "scar_error_risk"
    assert model.GetDisplayNode().GetActiveScalarName() == "scar_error_risk"  # as the user left it
    np.testing.assert_array_equal(_arrays(model)["scar_probability"], first)  # the first result is kept
    assert new.GetName() in ui.statusLabel.text

    # save the second model, then apply it onto the input mesh: the same field (same seed)
    harness.QFileDialog.answer = str(tmp_path / "saved.pth")
    ui.saveModelButton.click()
    assert (tmp_path / "saved.pth").is_file() and ui.savedModelPathLineEdit.currentPath == str(tmp_path / "saved.pth")
    ui.outputNewModelCheckBox.checked = False
    ui.applySavedButton.click()
    assert ui.applySavedButton.text == "Stop"
    harness.run_to_end(widget)
    assert ui.applySavedButton.text == "Apply a saved model"
    np.testing.assert_array_equal(_arrays(model)["scar_probability"], _arrays(new)["scar_probability"])


@BOTH_VERSIONS
def test_closing_the_scene_or_quitting_during_training_ends_the_worker(panel):
    widget, ui = panel["widget"], panel["ui"]
    widget._parameterNode.maxEpochs = 100000
    for end_it in (lambda: slicer.app.aboutToQuit.emit(), lambda: panel["scene"].Clear(0)):
        ui.applyButton.click()
        process = widget._run._process
        end_it()
        assert widget._run is None and process.wait(timeout=10) is not None


@BOTH_VERSIONS
def test_the_logic_is_initialised_once(panel, monkeypatch):
    calls = []
    original = csl.CardioScarLogic.__init__
    monkeypatch.setattr(csl.CardioScarLogic, "__init__", lambda self, *a, **k: (calls.append(1), original(self, *a, **k)))
    logic = panel["module"].CardioScarLogic()
    assert calls == [1] and logic.scene is slicer.mrmlScene


@LATEST
def test_a_panel_built_without_a_parent_sets_itself_up(panel):
    """The module's self-test builds the panel this way: Slicer's base class then calls setup()
    inside __init__, before the subclass's own __init__ code would run."""
    widget = panel["module"].CardioScarWidget()
    try:
        assert widget.ui.applyButton.enabled and widget._parameterNode.heartModel is panel["model"]
    finally:
        widget.cleanup()


@LATEST
def test_the_dependencies_section_installs_through_the_pytorch_extension(panel, monkeypatch):
    """PyTorchUtils (the PyTorch extension) is a STAND-IN here that records the call: what it
    installs cannot be tested without Slicer. torch is already imported in this process, so an
    update asks for a restart."""
    import importlib.metadata
    import types

    import torch  # noqa: F401  (this session has used torch: an update needs a restart)

    ui = panel["ui"]
    assert ui.torchVersionLabel.text == importlib.metadata.version("torch") and ui.installTorchButton.text == "Update PyTorch"
    ui.installTorchButton.click()  # no PyTorch extension installed
    assert "PyTorch" in ui.statusLabel.text and "\n" not in ui.statusLabel.text

    calls, restarts = [], []
    stand_in = types.SimpleNamespace(PyTorchUtilsLogic=lambda: types.SimpleNamespace(
        installTorch=lambda **kwargs: calls.append(kwargs) or sys.modules["torch"]))
    monkeypatch.setitem(sys.modules, "PyTorchUtils", stand_in)
    monkeypatch.setattr(slicer.util, "confirmYesNoDisplay", lambda text, **kwargs: True)
    monkeypatch.setattr(slicer.app, "restart", lambda: restarts.append(1), raising=False)
    ui.installTorchButton.click()
    assert calls == [{"askConfirmation": True, "torchVersionRequirement": ">=2.4"}]
    # the extension's pip keeps a torch that meets the requirement: nothing changed, so no restart is asked
    # for (before the fix: "PyTorch was updated. Restart Slicer now?" after every click)
    installed = importlib.metadata.version("torch")
    assert restarts == [] and ui.statusLabel.text == f"PyTorch {installed} meets >=2.4: nothing was changed."
    assert "is kept" in ui.installTorchButton.toolTip
    # an update that changed the installed version (read from the package metadata on disk) asks for one
    real_version = importlib.metadata.version
    updated = []
    stand_in.PyTorchUtilsLogic = lambda: types.SimpleNamespace(
        installTorch=lambda **kwargs: updated.append(1) or sys.modules["torch"])
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "99.0" if name == "torch" and updated else real_version(name))
    ui.installTorchButton.click()
    assert restarts == [1] and ui.torchVersionLabel.text == "99.0"
    assert ui.statusLabel.text == "PyTorch 99.0 installed."


@LATEST
def test_a_failed_pytorch_install_is_one_line_in_the_panel(panel, monkeypatch):
    """The PyTorch extension raises when its install fails (slicer.util._executePythonModule raises
    CalledProcessError; its own panel wraps the call in tryWithErrorDisplay). PyTorchUtils is a
    STAND-IN here that raises as it does. Before the fix the exception left the Qt slot, reaching only
    the Python console: the status said nothing and the button seemed dead."""
    import subprocess
    import types

    ui = panel["ui"]

    def failing(**kwargs):
        raise subprocess.CalledProcessError(1, ["PythonSlicer", "-m", "light_the_torch", "install", "torch>=2.4"])

    monkeypatch.setitem(sys.modules, "PyTorchUtils",
                        types.SimpleNamespace(PyTorchUtilsLogic=lambda: types.SimpleNamespace(installTorch=failing)))
    ui.installTorchButton.click()  # raised out of the click before the fix
    assert ui.statusLabel.text.startswith("Installing PyTorch failed (CalledProcessError: Command ")
    assert "restart Slicer and try again" in ui.statusLabel.text and "\n" not in ui.statusLabel.text
    assert "Traceback" in ui.logTextEdit.toPlainText()
    assert harness.QApplication.cursors == []  # the wait cursor went back


@LATEST
def test_a_torch_older_than_the_library_supports_is_refused_with_what_to_do(panel, monkeypatch):
    """Another extension may have installed an older torch; the panel read only whether torch was
    there and started the worker with it. Now Train and apply refuses it in one line, naming the
    version, the requirement and the button that updates it (the installed version is read from
    the package metadata, here made to say 2.1.2), and starts nothing."""
    import importlib.metadata

    import tomllib

    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.1.2+cu118" if name == "torch" else real_version(name))
    ui, module = panel["ui"], panel["module"]
    ui.applyButton.click()
    assert panel["widget"]._run is None and ui.applyButton.text == "Train and apply"
    assert ui.statusLabel.text == ("PyTorch 2.1.2+cu118 is older than the >=2.4 CardioScar needs: click Update PyTorch "
                                   "in the Dependencies section, then restart Slicer.")
    from CardioScarLogic.logic import torch_release  # the panel's test is the Logic's (older_torch)

    assert [torch_release(text) for text in ("2.4.0a0", "2.10.1+cpu", "2.3.1")] == [(2, 4), (2, 10), (2, 3)]
    # the panel's minimum is the library's own requirement
    project = tomllib.loads((REPO / "CardioScarLib" / "pyproject.toml").read_text())
    assert f"torch{module.TORCH_REQUIREMENT}" in project["project"]["dependencies"]


@LATEST
def test_the_self_test_says_so_and_skips_without_torch(panel, monkeypatch):
    """Reload & Test where PyTorch is not installed (hidden from the import system here)."""
    monkeypatch.setitem(sys.modules, "torch", None)
    shown = []
    test = panel["module"].CardioScarTest()
    monkeypatch.setattr(test, "delayDisplay", lambda message, *args: shown.append(message))
    monkeypatch.setattr(test, "setUp", lambda: pytest.fail("the scene must not be touched"))
    test.runTest()
    assert len(shown) == 1 and "PyTorch is not installed" in shown[0] and "skipped" in shown[0]


@LATEST
def test_a_mesh_removed_during_the_run_gets_no_result_and_no_new_node(panel):
    widget, ui, scene = panel["widget"], panel["ui"], panel["scene"]
    ui.sliceIndicesLineEdit.text = "0,2,4"
    ui.outputNewModelCheckBox.checked = True
    ui.applyButton.click()
    assert widget._run is not None
    scene.RemoveNode(panel["model"])
    models = scene.GetNumberOfNodesByClass("vtkMRMLModelNode")
    harness.run_to_end(widget)
    assert scene.GetNumberOfNodesByClass("vtkMRMLModelNode") == models
    assert "removed" in ui.statusLabel.text and "\n" not in ui.statusLabel.text


def _rv_insertions_ras(phantom) -> list:
    """The phantom's anterior and inferior RV insertions (on the epicardium, 30 and 150 degrees
    around the LV as Testing/test_slicer_aha.py places them), in RAS as a user clicks them."""
    geometry = phantom.geometry
    points = [geometry.to_lps(geometry.wall_to_local(np.array([0.5]), np.array([1.2]), np.array([np.radians(a)])))[0]
              for a in (30.0, 150.0)]
    return [vtk.vtkVector3d(-p[0], -p[1], p[2]) for p in points]


def _with_scar_probability(model, phantom) -> None:
    """A result on the model, as a run leaves it: the phantom's true scar as scar_probability."""
    from CardioScarLogic.results import write_point_arrays

    write_point_arrays(model, {"scar_probability": phantom.truth.astype(np.float32)})


@BOTH_VERSIONS
def test_aha_section_writes_segments_fills_the_table_and_saves_the_bullseye(panel, phantom, tmp_path):
    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    ui.ahaModelSelector.setCurrentNode(model)
    assert not ui.computeAhaButton.enabled and "scar_probability" in ui.computeAhaButton.toolTip
    _with_scar_probability(model, phantom)
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "RV insertions")
    for point in _rv_insertions_ras(phantom):
        markups.AddControlPointWorld(point)
    ui.ahaRvMarkupsSelector.setCurrentNode(markups)
    assert widget._parameterNode.ahaRvMarkups is markups and ui.computeAhaButton.enabled
    harness.click_to_end(widget, ui.computeAhaButton)  # in a worker, as Tag tissue
    assert "AHA segments on" in ui.statusLabel.text, ui.statusLabel.text
    segments = _arrays(model)["aha_segment"]
    assert len(segments) == model.GetMesh().GetNumberOfPoints() and set(np.unique(segments)) == set(range(1, 18))
    table = model.GetNodeReference("CardioScarAhaTable")
    assert table.GetNumberOfRows() == 17
    assert scene.GetFirstNodeByClass("vtkMRMLTableViewNode").GetTableNodeID() == table.GetID()  # shown
    # the segment column of the table names the 17 segments, and the scarred ones carry scar
    columns = [table.GetTable().GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    scar = [table.GetTable().GetValue(r, columns.index("scar_pct")).ToDouble() for r in range(17)]
    assert max(scar) > 0 and min(scar) == 0
    if panel["version"] == VERSIONS[-1]:  # once: the worker's segments and table are the console's (same inputs)
        cells = vtk.util.numpy_support.vtk_to_numpy(model.GetMesh().GetCellData().GetArray("aha_segment")).copy()
        console = widget.logic.aha_segments(model, widget.ahaInputs())
        np.testing.assert_array_equal(console.point_segments, segments)
        np.testing.assert_array_equal(console.cell_segments, cells)
        assert [row["scar_pct"] for row in console.rows] == pytest.approx(scar)
    # the bull's-eye: its path in the panel, and a copy where the user saves it
    shown = Path(ui.ahaBullseyeLabel.text.split(": ", 1)[1])
    assert shown.read_bytes()[:4] == b"\x89PNG" and ui.saveBullseyeButton.enabled
    harness.QFileDialog.answer = str(tmp_path / "copy.png")
    ui.saveBullseyeButton.click()
    assert (tmp_path / "copy.png").read_bytes() == shown.read_bytes() and "copy.png" in ui.statusLabel.text
    # a closed scene takes its bull's-eye along: the label and Save no longer point at it
    scene.Clear(0)
    assert ui.ahaBullseyeLabel.text == "No bull's-eye yet." and not ui.saveBullseyeButton.enabled
    assert not shown.exists()


@BOTH_VERSIONS
def test_aha_section_says_what_is_missing_in_one_line(panel, phantom):
    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    _with_scar_probability(model, phantom)
    ui.ahaModelSelector.setCurrentNode(model)
    assert not ui.computeAhaButton.enabled
    assert "RV insertion" in ui.computeAhaButton.toolTip and "\n" not in ui.computeAhaButton.toolTip
    widget.onComputeAhaButton()  # as a click would (the disabled button ignores one)
    assert ui.statusLabel.text == ui.computeAhaButton.toolTip
    # a point list with no point: the Logic's one line, and the model stays as it was
    empty = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "nothing placed")
    ui.ahaRvMarkupsSelector.setCurrentNode(empty)
    ui.computeAhaButton.click()
    assert "'nothing placed' has 0 point" in ui.statusLabel.text and "\n" not in ui.statusLabel.text
    assert "aha_segment" not in _arrays(model) and model.GetNodeReference("CardioScarAhaTable") is None
    assert not ui.saveBullseyeButton.enabled


@LATEST
def test_aha_section_hands_the_label_map_and_its_labels_to_the_logic(panel, phantom, tmp_path):
    """The LGE phantom loaded as a label map has no RV blood pool: the Logic's refusal of it comes
    back as the one status line, so the panel handed over that node and the label typed."""
    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    _with_scar_probability(model, phantom)
    ui.ahaModelSelector.setCurrentNode(model)
    labels = csl.load_volume(scene, _second_volume(panel, tmp_path), labelmap=True, name="no RV here")
    ui.ahaLabelsSelector.setCurrentNode(labels)
    ui.ahaRvLabelSpinBox.value = 77
    ui.ahaMyocardiumLabelSpinBox.value = 5
    inputs = widget.ahaInputs()
    assert (inputs.labels_node, inputs.rv_label, inputs.myocardium_label, inputs.rv_markups) == (labels, 77, 5, None)
    assert ui.computeAhaButton.enabled
    harness.click_to_end(widget, ui.computeAhaButton)  # the worker's refusal
    assert "no RV here" in ui.statusLabel.text and "77" in ui.statusLabel.text and "\n" not in ui.statusLabel.text, ui.statusLabel.text
    assert "aha_segment" not in _arrays(model)


@LATEST  # the failure path does not depend on the binding rules
def test_a_failure_inside_the_worker_is_shown_once_and_changes_nothing(panel, monkeypatch):
    """The worker process really fails: its job says max_epochs=0, which the worker's own check
    refuses (a stand-in for any failure that only the worker can meet, e.g. out of memory). The
    error must reach the status line and the log exactly once, and the mesh and scene stay as they were."""
    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    real_write = csl_background.write_training_job

    def write_broken_job(folder, run):
        real_write(folder, run)
        job_file = folder / csl_worker.JOB_FILE
        job = json.loads(job_file.read_text(encoding="utf-8"))
        job["training"]["max_epochs"] = 0
        job_file.write_text(json.dumps(job), encoding="utf-8")

    monkeypatch.setattr(csl_background, "write_training_job", write_broken_job)
    before, nodes = _arrays(model), scene.GetNumberOfNodes()
    ui.applyButton.click()
    assert widget._run is not None, ui.statusLabel.text + ui.logTextEdit.toPlainText()
    harness.run_to_end(widget)
    log = ui.logTextEdit.toPlainText()
    assert "max_epochs" in ui.statusLabel.text, ui.statusLabel.text
    assert log.count("max_epochs") == 1, log
    assert set(_arrays(model)) == set(before) and scene.GetNumberOfNodes() == nodes


@BOTH_VERSIONS
def test_a_library_error_names_the_panel_s_boxes_not_command_line_options(panel):
    """The library names what to fix by its command-line option; the panel shows the same line
    with the box's label, since a user who clicks has no ``--scar-labels`` to look for."""
    widget, ui = panel["widget"], panel["ui"]
    ui.scarLabelsLineEdit.text = "3"  # an LGE volume given scar labels: refused by the library
    ui.applyButton.click()
    assert widget._run is None and "\n" not in ui.statusLabel.text
    assert "'Scar labels'" in ui.statusLabel.text and "--scar-labels" not in ui.statusLabel.text, ui.statusLabel.text


@LATEST
def test_the_logic_from_the_console_names_its_own_parameters(panel, phantom):
    """The same library error as above, raised by the Logic for a console user, names the Logic's
    parameters (``options.scar_labels``), never an option of a command line the user is not using;
    the panel keeps its box labels (above), from the library's words the error keeps."""
    from CardioScarLogic.tissue import tag_model_node

    from cardioscar.errors import CardioScarError

    logic, volume, model = panel["widget"].logic, panel["volume"], panel["model"]
    with pytest.raises(CardioScarError) as info:
        logic.train_and_apply(volume, model, csl.ReconstructionOptions(scar_labels="3", half_thickness=2.0))
    message = str(info.value)
    assert "options.scar_labels" in message and "--" not in message, message
    assert "--scar-labels" in info.value.library_message
    with pytest.raises(CardioScarError, match=r"^myocardium_margin .*whole number of pixels") as info:
        csl.ReconstructionOptions(myocardium_margin=-1)  # the field itself, as typed
    assert "--" not in str(info.value)
    _with_scar_probability(model, phantom)
    with pytest.raises(CardioScarError, match="^border_zone 0.6 must be below core 0.4"):
        tag_model_node(model, border_zone=0.6, core=0.4)
    markups = panel["scene"].AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "RV insertions")
    markups.AddControlPointWorld(_rv_insertions_ras(phantom)[0])
    with pytest.raises(CardioScarError, match=r"^inputs.measure.threshold 1.5: use a value between 0 and 1"):
        logic.aha_segments(model, csl.AhaInputs(rv_markups=markups, measure=AhaOptions(threshold=1.5)))
    assert "aha_segment" not in _arrays(model) and "tissue_tag" not in _arrays(model)


def test_every_logic_name_is_a_parameter_of_the_logic():
    """The Logic's names in its errors are its real parameters: a renamed field fails here."""
    import dataclasses
    import inspect

    from CardioScarLogic import logic, tissue
    from CardioScarLogic.wording import AHA_NAMES, OPTION_FIELDS, RECONSTRUCTION_NAMES, TISSUE_NAMES

    fields = {each.name for each in dataclasses.fields(csl.ReconstructionOptions)}
    assert set(OPTION_FIELDS.values()) <= fields
    arguments = {name for method in (logic.CardioScarLogic.train_and_apply, logic.CardioScarLogic.apply_model)
                 for name in inspect.signature(method).parameters}
    assert {name.split(".")[0] for name in RECONSTRUCTION_NAMES.values()} <= arguments
    assert {name for name in TISSUE_NAMES.values()} <= {
        name for function in (tissue.tag_model_node, tissue.export_model_node)
        for name in inspect.signature(function).parameters}
    inputs = {each.name for each in dataclasses.fields(csl.AhaInputs)}
    measure = {each.name for each in dataclasses.fields(AhaOptions)}
    for name in AHA_NAMES.values():
        parts = name.split(".")
        assert parts[0] == "model_node" or (parts[1] in inputs and (len(parts) == 2 or parts[2] in measure)), name


def test_a_reworded_error_keeps_its_cause_and_a_subclass_s_own_arguments():
    """The Logic rewords the error it was given: its cause (the operating system's error behind it)
    stays for the traceback, a subclass whose __init__ takes other arguments than the message is
    reworded as well (a copy of it raised a TypeError instead), and it pickles with both wordings."""
    import pickle

    from CardioScarLogic.wording import TISSUE_NAMES, speaks_logic_words

    from cardioscar.errors import CardioScarError

    class PrefixError(CardioScarError):  # a subclass with its own arguments
        def __init__(self, prefix: str, reason: str) -> None:
            super().__init__(f"--output {prefix}: {reason}")
            self.prefix = prefix

    @speaks_logic_words(TISSUE_NAMES)
    def export(prefix: str, error_class=PrefixError) -> None:
        try:
            raise OSError(28, "No space left on device")
        except OSError as error:
            raise (error_class(prefix, "full") if error_class is PrefixError
                   else CardioScarError(f"--output {prefix}: full")) from error

    with pytest.raises(PrefixError) as info:
        export("/data/heart")
    assert str(info.value) == "prefix /data/heart: full" and info.value.prefix == "/data/heart"
    assert info.value.library_message == "--output /data/heart: full"
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(CardioScarError) as info:
        export("/data/heart", CardioScarError)
    copied = pickle.loads(pickle.dumps(info.value))
    assert (str(copied), copied.library_message) == ("prefix /data/heart: full", "--output /data/heart: full")


def test_panel_words_leave_quoted_commands_and_options_without_a_box():
    from CardioScarLogic.wording import PANEL_NAMES, in_panel_words

    assert in_panel_words("give --myocardium-labels 2,3,4 or --myocardium-label 2") == \
        "give 'Myocardium labels' 2,3,4 or 'Myocardium label' 2"  # the longer name is not cut short
    kept = "see cardioscar export --border-zone; --slurm and --exclude-slices have no box"
    assert in_panel_words(kept) == kept
    # every option of a quoted command stays (the second was renamed), up to the command's end
    assert in_panel_words("run `cardioscar export --border-zone 0.3 --core 0.8`; else set --core") == \
        "run `cardioscar export --border-zone 0.3 --core 0.8`; else set 'Core from'"
    # every label named is a label of the panel's .ui
    ui = (REPO / "CardioScar" / "Resources" / "UI" / "CardioScar.ui").read_text(encoding="utf-8")
    assert all(f"<string>{label}:</string>" in ui for label in PANEL_NAMES.values())


@LATEST
def test_ctest_skips_the_self_test_without_torch(panel, monkeypatch):
    """ctest runs CardioScar.py through slicer_add_python_unittest: slicer.testing.runUnitTest loads
    the file with unittest's loader, which runs setUp and each test_* method and never runTest (so
    runTest's own check, above, is not reached there). Without PyTorch (hidden from the import system
    here) every test must skip, not fail; before the fix each one ran and failed."""
    import io
    import unittest

    monkeypatch.setitem(sys.modules, "torch", None)
    nodes = panel["scene"].GetNumberOfNodes()
    suite = unittest.TestLoader().loadTestsFromName("CardioScar")  # as slicer.testing.runUnitTest does
    result = unittest.TextTestRunner(stream=io.StringIO()).run(suite)
    assert result.testsRun == 3 and len(result.skipped) == 3 and result.wasSuccessful()
    assert all("PyTorch is not installed" in reason for _, reason in result.skipped)
    assert panel["scene"].GetNumberOfNodes() == nodes  # skipped before the scene is cleared


@LATEST
@pytest.mark.parametrize("module_name, anchor", [
    ("CardioScar", "3d-slicer-module"),
    ("AttriVAE", "second-module-attri-vae-mi-classification-with-attribute-explanations")])
def test_the_help_links_to_the_module_page_of_the_user_guide(panel, module_name, anchor):
    """As Slicer's module template, each module's help ends with a link to its documentation: its
    section of the user guide's Slicer page (Documentation/slicer-module.md) on the extension's
    homepage (EXTENSION_HOMEPAGE); the page and the anchor must exist."""
    import importlib
    import re
    import types

    from test_markdown_docs import anchors

    parent = types.SimpleNamespace()
    getattr(importlib.import_module(module_name), module_name)(parent)
    url = re.search(r'<a href="([^"]+)">', parent.helpText).group(1)
    homepage = re.search(r'EXTENSION_HOMEPAGE "([^"]+)"', (REPO / "CMakeLists.txt").read_text()).group(1)
    page = REPO / "Documentation" / "slicer-module.md"
    assert url == f"{homepage}/blob/main/Documentation/slicer-module.md#{anchor}" and anchor in anchors(page)
