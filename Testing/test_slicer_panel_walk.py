"""The panel walked as a modeller walks it, on the hard paths (second panel review): the real panel
class (CardioScar.py) and its Logic on a real MRML scene, with the Qt stand-in of
Testing/slicer_widget_harness.py (see there what it cannot prove). Each test is one defect the walk
found, and fails without its fix:

- a mesh moved (a transform, or its points edited) while the worker trains got the field computed
  for where it was, with "Done";
- a new result on a model kept its earlier result's AHA and channel tables, and the panel kept that
  result's bull's-eye (*Save bull's-eye* saved the old scar) and score;
- a saved model path restored with a scene whose file is gone left *Apply a saved model* enabled;
- *Save model* still saved the network trained on a closed scene's patient;
- a saved model applied onto a trained result left that training's loss curve in the plot view.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import slicer
import vtk

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CardioScar"))

import slicer_widget_harness as harness  # noqa: E402
from CardioScarLogic.aha import AHA_TABLE_REFERENCE  # noqa: E402
from CardioScarLogic.channels import CHANNEL_TABLE_REFERENCE  # noqa: E402
from test_slicer_panel import LATEST, _arrays, _rv_insertions_ras, case, panel, phantom  # noqa: E402,F401


def _start_training(panel) -> None:
    ui = panel["ui"]
    ui.sliceIndicesLineEdit.text = "0,2,4"
    ui.applyButton.click()
    assert panel["widget"]._run is not None, ui.statusLabel.text


@LATEST
def test_a_mesh_moved_during_training_gets_no_result(panel):
    """The slices are mapped onto the mesh's nodes when Train is clicked; a mesh moved before the
    worker ends (the user corrects the registration with a transform, or edits the points) must get
    no field computed for the old placement. Before the fix both runs said "Done"."""
    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    before, nodes = _arrays(model), scene.GetNumberOfNodes()
    _start_training(panel)
    shift = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 12.0)
    shift.SetMatrixTransformToParent(matrix)
    model.SetAndObserveTransformNodeID(shift.GetID())
    harness.run_to_end(widget)
    assert "moved during the run" in ui.statusLabel.text and "nothing was written" in ui.statusLabel.text
    assert set(_arrays(model)) == set(before) and scene.GetNumberOfNodes() == nodes + 1  # the transform only
    assert ui.applyButton.text == "Train and apply" and not ui.progressBar.visible

    # into a new model node: its points edited meanwhile; the copy made for the result goes again
    model.SetAndObserveTransformNodeID(None)
    ui.outputNewModelCheckBox.checked = True
    models = scene.GetNumberOfNodesByClass("vtkMRMLModelNode")
    _start_training(panel)
    points = vtk.util.numpy_support.vtk_to_numpy(model.GetMesh().GetPoints().GetData())
    points[0] += 3.0
    model.GetMesh().GetPoints().Modified()
    harness.run_to_end(widget)
    assert "moved during the run" in ui.statusLabel.text
    assert scene.GetNumberOfNodesByClass("vtkMRMLModelNode") == models and set(_arrays(model)) == set(before)


def _label_map(panel, name: str, values: np.ndarray):
    """A label map node of ``values`` on the input volume's grid."""
    node = panel["scene"].AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, values.astype(np.uint8))
    matrix = vtk.vtkMatrix4x4()
    panel["volume"].GetIJKToRASMatrix(matrix)
    node.SetIJKToRASMatrix(matrix)
    return node


@LATEST
def test_a_new_result_on_the_model_drops_the_earlier_result_s_tables_bullseye_and_score(panel, phantom, tmp_path):
    """Train, then AHA segments, channels and a score of that result; train again onto the same model
    (*new model node* unticked). The AHA table (scar per segment) and the channel table of the first
    scar must not stay beside the second, nor the panel's bull's-eye (Save would save the first scar)
    and score; nor, once a saved model is applied onto it, the loss curve of the training before. Before
    the fix all five stayed, with nothing said. Then the scene closes (the next
    patient): *Save model* must not offer the closed patient's network (before the fix it did)."""
    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    _start_training(panel)
    harness.run_to_end(widget)
    assert widget._parameterNode.ahaModel is model, ui.statusLabel.text
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "RV insertions")
    for point in _rv_insertions_ras(phantom):
        markups.AddControlPointWorld(point)
    ui.ahaRvMarkupsSelector.setCurrentNode(markups)
    harness.click_to_end(widget, ui.computeAhaButton)
    harness.click_to_end(widget, ui.findChannelsButton)
    scar_map = slicer.util.arrayFromVolume(panel["volume"])  # the phantom's scar map: its truth, cut at 0.5
    ui.scoreTruthSelector.setCurrentNode(_label_map(panel, "truth", scar_map >= 0.5))
    ui.scoreMyocardiumMaskSelector.setCurrentNode(_label_map(panel, "whole slices", np.ones_like(scar_map)))
    ui.scoreScarLabelsLineEdit.text = "1"
    ui.scoreSliceIndicesLineEdit.text = "0,2,4"
    ui.scoreButton.click()
    assert ui.statusLabel.text.startswith("Scored 'phantom_mesh'"), ui.statusLabel.text
    tables = {role: model.GetNodeReference(role) for role in (AHA_TABLE_REFERENCE, CHANNEL_TABLE_REFERENCE)}
    assert all(tables.values()) and ui.saveBullseyeButton.enabled
    bullseye = Path(ui.ahaBullseyeLabel.text.split(": ", 1)[1])
    assert bullseye.is_file() and "Dice" in ui.scoreResultsLabel.text

    ui.outputNewModelCheckBox.checked = False
    widget._parameterNode.seed = 7
    _start_training(panel)
    harness.run_to_end(widget)
    assert ui.statusLabel.text.startswith("Done"), ui.statusLabel.text
    for role, table in tables.items():
        assert model.GetNodeReference(role) is None and table.GetScene() is None, role
    log = ui.logTextEdit.toPlainText()
    assert "had 'phantom_mesh AHA segments', 'phantom_mesh conducting channels' of an earlier result; removed" in log
    assert ui.ahaBullseyeLabel.text == "No bull's-eye yet." and not ui.saveBullseyeButton.enabled
    assert not bullseye.exists() and ui.scoreResultsLabel.text == "No score yet."
    assert "The bull's-eye of 'phantom_mesh' described its earlier result" in log

    # a saved model applied onto it: the loss curve of the training before is another network's
    harness.QFileDialog.answer = str(tmp_path / "scar.pth")
    ui.saveModelButton.click()
    chart = model.GetNodeReference("CardioScarLossChart")
    series = chart.GetPlotSeriesNode()
    ui.outputNewModelCheckBox.checked = False
    harness.click_to_end(widget, ui.applySavedButton)
    assert ui.statusLabel.text.startswith("Done"), ui.statusLabel.text
    assert model.GetNodeReference("CardioScarLossChart") is None and model.GetNodeReference("CardioScarLossTable") is None
    assert chart.GetScene() is None and series.GetScene() is None

    # a result on another node (new model node ticked) leaves this model's analyses alone
    harness.click_to_end(widget, ui.computeAhaButton)
    ui.outputNewModelCheckBox.checked = True
    _start_training(panel)
    harness.run_to_end(widget)
    assert model.GetNodeReference(AHA_TABLE_REFERENCE) is not None and ui.saveBullseyeButton.enabled

    # the next patient: the closed scene's network is not offered to Save model as if it were theirs
    assert ui.saveModelButton.enabled
    scene.Clear(0)
    assert not ui.saveModelButton.enabled and "Nothing trained in this scene yet" in ui.saveModelButton.toolTip


@LATEST
def test_a_saved_model_path_whose_file_is_gone_disables_apply_and_says_why(panel, tmp_path):
    """A scene saved with a model path restores the path; a file moved or deleted since (or a scene
    from another computer) must not leave *Apply a saved model* enabled to fail on click."""
    widget, ui, scene = panel["widget"], panel["ui"], panel["scene"]
    saved = tmp_path / "scar.pth"
    saved.write_bytes(b"not read here")
    ui.savedModelPathLineEdit.currentPath = str(saved)
    assert ui.applySavedButton.enabled
    scene.SetRootDirectory(str(tmp_path))
    scene.SetURL(str(tmp_path / "scene.mrml"))
    assert scene.Commit()
    scene.Clear(0)
    saved.unlink()
    scene.SetURL(str(tmp_path / "scene.mrml"))
    assert scene.Import()
    assert ui.savedModelPathLineEdit.currentPath == str(saved)
    assert not ui.applySavedButton.enabled
    assert ui.applySavedButton.toolTip.startswith(f"The saved model '{saved}' is not there")
