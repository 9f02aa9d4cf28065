"""The panel walked on the paths a modeller hits besides the straight route, on EMIDEC P022 (second panel
review; the straight route against the command line is ``panel_walk_emidec.py``).

The real panel class (``CardioScar/CardioScar.py``) and its Logic on a real MRML scene, with the Qt stand-in
of ``Testing/slicer_widget_harness.py`` (see there what it cannot prove). The mesh is ``mesh-from-labels``
of the case's labels (``--spacing`` SPACING mm); the route: *Scar rule* nsd 2,3 inside the experts' scar
(labels 3,4), slices 1,3,5, ``fast`` preset cut to EPOCHS epochs (a walk, not an accuracy figure). Steps:
train, colour by each field, score on the held-out slices 2 and 4, tag, export openCARP, channels, AHA
(EMIDEC's label 1 is the LV cavity: refused), then Stop mid-training, a second click while a run goes,
a new result on the same model, the mesh moved by a transform while it trains, actions on a model
without a result, the scene saved and loaded with the saved model's file gone, the status and progress
after an error, and the scene closed mid-run. One JSON line per step: what the panel showed and what
the scene and the files held; ``"ok"`` says whether that is what the step should give.

    PYTHONPATH=CardioScarLib python Testing/benchmarks/panel_hard_paths_emidec.py OUT_DIR [CASE] [SPACING] [EPOCHS]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "CardioScar"))
sys.path.insert(0, str(REPO / "Testing"))

import slicer  # noqa: E402
import vtk  # noqa: E402
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
import slicer_widget_harness as harness  # noqa: E402
from CardioScarLogic.aha import AHA_TABLE_REFERENCE  # noqa: E402
from CardioScarLogic.channels import CHANNEL_TABLE_REFERENCE  # noqa: E402

EMIDEC = Path("/work/shared/data/emidec")


def _reachable(widget) -> bool:
    """Enabled with every parent, as Qt's isEnabled(): a widget in a disabled section is disabled."""
    while widget is not None:
        if not widget.enabled:
            return False
        widget = widget._parent
    return True


def _arrays(model) -> list[str]:
    data = model.GetMesh().GetPointData()
    return sorted(data.GetArrayName(i) for i in range(data.GetNumberOfArrays()))


class Walk:
    """The panel and the steps' record."""

    def __init__(self, widget, scene, model) -> None:
        self.widget, self.ui, self.scene, self.model = widget, widget.ui, scene, model

    def report(self, step: str, ok: bool, **shown) -> None:
        print(json.dumps({"step": step, "ok": bool(ok), "status": self.ui.statusLabel.text,
                          "progress_visible": self.ui.progressBar.visible, **shown}), flush=True)

    def run(self, button, timeout: float = 1800.0) -> float:
        started = time.perf_counter()
        harness.click_to_end(self.widget, button, timeout)
        return round(time.perf_counter() - started, 1)

    def start(self) -> None:
        self.ui.applyButton.click()
        assert self.widget._run is not None, self.ui.statusLabel.text


def _route(walk: Walk, lge, labels, epochs: int) -> None:
    ui, p = walk.ui, walk.widget._parameterNode
    ui.inputSelector.setCurrentNode(lge)
    ui.modelSelector.setCurrentNode(walk.model)
    ui.myocardiumMaskSelector.setCurrentNode(labels)
    ui.presetComboBox.choose("fast")
    p.maxEpochs = p.earlyStoppingPatience = epochs
    ui.scarRuleComboBox.choose("nsd")
    ui.scarThresholdsLineEdit.text = "2,3"
    ui.myocardiumLabelsLineEdit.text = "2,3,4"
    ui.bloodPoolLabelsLineEdit.text = "1"
    ui.expertScarLabelsLineEdit.text = "3,4"
    ui.forceCpuCheckBox.checked = True
    ui.sliceIndicesLineEdit.text = "1,3,5"


def straight_route(walk: Walk, labels, out: Path) -> None:
    ui, p, model = walk.ui, walk.widget._parameterNode, walk.model
    walk.report("slice range", ui.sliceRangeLabel.text.startswith("0 to "), shown=ui.sliceRangeLabel.text)
    seconds = walk.run(ui.applyButton)
    walk.report("train", ui.statusLabel.text.startswith("Done"), seconds=seconds, arrays=_arrays(model))
    ranges = {}
    for field in ("Error risk (relative)", "Scar uncertainty (MC-dropout std)", "Scar probability"):
        ui.resultFieldComboBox.choose(field)
        display = model.GetDisplayNode()
        ranges[display.GetActiveScalarName()] = [round(v, 4) for v in display.GetScalarRange()]
    top = float(vtk_to_numpy(model.GetMesh().GetPointData().GetArray("scar_uncertainty")).max())
    walk.report("colour by", ranges["scar_probability"] == [0, 1] and abs(ranges["scar_uncertainty"][1] - top) < 1e-4,
                ranges=ranges)
    ui.scoreTruthSelector.setCurrentNode(labels)
    ui.scoreScarLabelsLineEdit.text = "3,4"
    ui.scoreMyocardiumLabelsLineEdit.text = "2,3,4"
    ui.scoreSliceIndicesLineEdit.text = "2,4"
    ui.scoreButton.click()
    walk.report("score on held-out slices 2,4", ui.statusLabel.text.startswith("Scored"))
    seconds = walk.run(ui.tagButton)
    walk.report("tag", ui.statusLabel.text.startswith("Tagged"), seconds=seconds)
    (out / "export").mkdir(parents=True, exist_ok=True)
    ui.exportUnitsComboBox.choose("mm")
    ui.exportPrefixLineEdit.currentPath = str(out / "export" / "heart")
    seconds = walk.run(ui.exportButton)
    files = sorted(path.name for path in (out / "export").iterdir())
    walk.report("export openCARP", ui.statusLabel.text.startswith("Exported"), seconds=seconds, files=files)
    ui.channelOutputDirLineEdit.currentPath = str(out / "channels")
    seconds = walk.run(ui.findChannelsButton)
    walk.report("channels", ui.statusLabel.text.startswith("Channels on"), seconds=seconds)
    ui.ahaLabelsSelector.setCurrentNode(labels)
    ui.ahaRvLabelSpinBox.value = 1
    walk.run(ui.computeAhaButton)
    walk.report("AHA with label 1 as the RV (EMIDEC has no RV)", "surrounds the LV axis" in ui.statusLabel.text)
    ui.ahaLabelsSelector.setCurrentNode(None)
    p.outputToNewModel = False


def stop_and_second_click(walk: Walk) -> None:
    ui, p, model = walk.ui, walk.widget._parameterNode, walk.model
    before, nodes = _arrays(model), walk.scene.GetNumberOfNodes()
    epochs = p.maxEpochs
    p.maxEpochs = p.earlyStoppingPatience = 100000
    walk.start()
    process = walk.widget._run._process
    deadline = time.monotonic() + 300
    while ui.progressBar.value == 0 and time.monotonic() < deadline:
        slicer.app.processEvents()
        time.sleep(0.05)
    others = {name: _reachable(getattr(ui, name)) for name in ("tagButton", "exportButton", "computeAhaButton",
                                                           "findChannelsButton", "applySavedButton")}
    walk.report("during training", ui.applyButton.text == "Stop" and not any(others.values()),
                apply_button=ui.applyButton.text, others_enabled=others, epoch=ui.progressBar.value)
    ui.applyButton.click()  # the second click on the button: it reads Stop
    walk.report("Stop mid-training", walk.widget._run is None and process.poll() is not None
                and _arrays(model) == before and walk.scene.GetNumberOfNodes() == nodes,
                arrays_unchanged=_arrays(model) == before, nodes_unchanged=walk.scene.GetNumberOfNodes() == nodes)
    p.maxEpochs = p.earlyStoppingPatience = epochs


def rerun_same_model(walk: Walk) -> None:
    ui, model = walk.ui, walk.model
    tables = {role: model.GetNodeReference(role) for role in (AHA_TABLE_REFERENCE, CHANNEL_TABLE_REFERENCE)}
    had = {role: table is not None for role, table in tables.items()}
    count = model.GetMesh().GetPointData().GetNumberOfArrays()
    walk.widget._parameterNode.seed = 7
    walk.run(ui.applyButton)
    left = {role: model.GetNodeReference(role) is not None for role in tables}
    arrays = _arrays(model)
    walk.report("new result on the same model", ui.statusLabel.text.startswith("Done") and not any(left.values())
                and len(arrays) == len(set(arrays)), tables_before=had, tables_after=left, arrays=arrays,
                arrays_before=count, models=walk.scene.GetNumberOfNodesByClass("vtkMRMLModelNode"),
                shown=model.GetDisplayNode().GetActiveScalarName(),
                log=[line for line in ui.logTextEdit.toPlainText().splitlines()[-6:] if "earlier" in line])


def moved_during_training(walk: Walk) -> None:
    before = _arrays(walk.model)
    walk.start()
    shift = walk.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration fix")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 4.0)
    shift.SetMatrixTransformToParent(matrix)
    walk.model.SetAndObserveTransformNodeID(shift.GetID())
    harness.run_to_end(walk.widget, 1800)
    walk.report("mesh moved by a transform while training", "moved during the run" in walk.ui.statusLabel.text
                and _arrays(walk.model) == before)
    walk.model.SetAndObserveTransformNodeID(None)
    walk.scene.RemoveNode(shift)


def model_without_result(walk: Walk, out: Path) -> None:
    ui, p = walk.ui, walk.widget._parameterNode
    bare = csl.load_model(walk.scene, out / "heart.vtk", name="bare mesh")
    kept = p.tagModel, p.ahaModel, p.scoreModel
    p.tagModel = p.ahaModel = p.scoreModel = bare
    buttons = {name: {"enabled": getattr(ui, name).enabled, "tip": getattr(ui, name).toolTip}
               for name in ("tagButton", "exportButton", "findChannelsButton", "computeAhaButton", "scoreButton")}
    walk.report("model without a result", not any(b["enabled"] for b in buttons.values()), buttons=buttons)
    p.tagModel, p.ahaModel, p.scoreModel = kept
    walk.scene.RemoveNode(bare)


def error_then_status(walk: Walk) -> None:
    ui = walk.ui
    ui.sliceIndicesLineEdit.text = "1,3,99"
    ui.applyButton.click()
    walk.report("bad slice index", walk.widget._run is None and not ui.progressBar.visible
                and ui.applyButton.text == "Train and apply" and "\n" not in ui.statusLabel.text)
    ui.sliceIndicesLineEdit.text = "1,3,5"


def saved_scene_with_missing_model_file(walk: Walk, out: Path) -> None:
    ui, scene = walk.ui, walk.scene
    harness.QFileDialog.answer = str(out / "scar.pth")
    ui.saveModelButton.click()
    enabled_before = ui.applySavedButton.enabled
    folder = out / "scene"
    folder.mkdir(exist_ok=True)
    scene.SetRootDirectory(str(folder))
    scene.SetURL(str(folder / "scene.mrml"))
    assert scene.Commit()
    scene.Clear(0)
    (out / "scar.pth").rename(out / "scar_moved.pth")
    scene.SetURL(str(folder / "scene.mrml"))
    assert scene.Import()
    p = walk.widget._parameterNode
    back = {"scarRule": p.scarRule, "scarThresholds": p.scarThresholds, "expertScarLabels": p.expertScarLabels,
            "sliceIndices": p.sliceIndices, "savedModelPath": Path(p.savedModelPath).name,
            "exportPrefix": Path(p.exportPrefix).name}
    walk.report("scene saved and loaded, the saved model moved away", enabled_before and not ui.applySavedButton.enabled
                and back["scarRule"] == "nsd", back=back, apply_saved_tip=ui.applySavedButton.toolTip)


def close_mid_run(walk: Walk) -> None:
    """A run on the loaded scene's nodes, and the scene closed under it."""
    walk.start()
    process = walk.widget._run._process
    walk.scene.Clear(0)
    walk.report("scene closed mid-run", walk.widget._run is None and process.wait(timeout=30) is not None
                and not walk.ui.progressBar.visible)


def main(out: Path, case: str, spacing: str, epochs: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    labels_path = EMIDEC / f"Case_{case}" / "Contours" / f"Case_{case}.nii.gz"
    if not (out / "heart.vtk").is_file():
        subprocess.run([sys.executable, "-m", "cardioscar", "mesh-from-labels", "--labels", str(labels_path),
                        "--spacing", spacing, "--output", str(out / "heart.vtk")], check=True, capture_output=True)
    context = csl.create_scene()
    scene = context.scene
    slicer.vtkMRMLLayoutLogic().SetMRMLScene(scene)
    lge = csl.load_volume(scene, EMIDEC / f"Case_{case}" / "Images" / f"Case_{case}.nii.gz", name=f"Case_{case} LGE")
    labels = csl.load_volume(scene, labels_path, labelmap=True, name=f"Case_{case} labels")
    model = csl.load_model(scene, out / "heart.vtk", name="heart")
    with harness.cardioscar_panel(context.application_logic) as widget:
        walk = Walk(widget, scene, model)
        _route(walk, lge, labels, epochs)
        straight_route(walk, labels, out)
        stop_and_second_click(walk)
        rerun_same_model(walk)
        moved_during_training(walk)
        model_without_result(walk, out)
        error_then_status(walk)
        saved_scene_with_missing_model_file(walk, out)
        close_mid_run(walk)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(Path(arguments[0]), arguments[1] if len(arguments) > 1 else "P022",
         arguments[2] if len(arguments) > 2 else "2.5", int(arguments[3]) if len(arguments) > 3 else 60)
