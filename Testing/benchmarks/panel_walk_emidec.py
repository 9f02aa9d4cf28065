"""A modeller's walk through the Slicer panel on EMIDEC P022 (no-reflow): expert labels + LGE to openCARP.

The real panel class (``CardioScar/CardioScar.py``) on a real MRML scene, with the Qt stand-in of
``Testing/slicer_widget_harness.py`` (see there for what it cannot prove). Steps, as a modeller
clicks them: the LGE, the experts' label map (as a label map node, and as the scalar volume *Add
data* makes by default) and the mesh of ``mesh-from-labels`` are loaded; the rule n-SD 2,3, the
myocardium labels 2,3,4, blood-pool label 1, expert scar labels 3,4 and core label 4 are chosen;
the scar and the core runs train (``fast`` preset, seed 42); *Tag tissue* with the two fields;
*Export* openCARP in mm; the scene (MRML + parameter node) is saved, closed and loaded again.

The command line's files of the same route (``expert_scar_split_emidec.py``, seed 42) are compared:
the scar and core probabilities node by node and the exported ``.pts`` / ``.elem`` byte by byte. A few
mistakes typed into the route's boxes (:data:`MISTAKES`) must each be one status line in the panel's words.
One JSON line of figures; the checks that fail are listed under ``"defects"``.

    PYTHONPATH=CardioScarLib python Testing/benchmarks/panel_walk_emidec.py CLI_DIR OUT_DIR [CASE]

``CLI_DIR`` is the folder ``expert_scar_split_emidec.py OUT_DIR CASE`` wrote for the case (its
``heart.vtk``, ``scar_pred.vtk``, ``core_pred.vtk``, ``heart.pts``, ``heart.elem``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "CardioScar"))
sys.path.insert(0, str(REPO / "Testing"))

import slicer  # noqa: E402
import vtk  # noqa: E402
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
import slicer_widget_harness as harness  # noqa: E402
from cardioscar.io.meshio import read_mesh  # noqa: E402

EMIDEC = Path("/work/shared/data/emidec")
#: The parameter-node values the walk sets and expects back from a saved scene.
KEPT = {"scarRule": "nsd", "scarThresholds": "2,3", "myocardiumLabels": "2,3,4", "bloodPoolLabels": "1",
        "expertScarLabels": "3,4", "expertCoreLabels": "4", "exportUnits": "mm", "preset": "fast", "seed": 42}


def _field(node, name: str) -> np.ndarray:
    return vtk_to_numpy(node.GetMesh().GetPointData().GetArray(name)).astype(np.float64)


def _file_field(path: Path, name: str) -> np.ndarray:
    return vtk_to_numpy(read_mesh(path).dataset.GetPointData().GetArray(name)).astype(np.float64)


def _choose_route(ui, labels, half: float) -> None:
    """What the modeller types and picks, in the panel's order."""
    ui.myocardiumMaskSelector.setCurrentNode(labels)
    ui.presetComboBox.choose("fast")
    ui.halfThicknessSpinBox.value = half
    ui.scarRuleComboBox.choose("nsd")
    ui.scarThresholdsLineEdit.text = "2,3"
    ui.myocardiumLabelsLineEdit.text = "2,3,4"
    ui.bloodPoolLabelsLineEdit.text = "1"
    ui.expertScarLabelsLineEdit.text = "3,4"
    ui.expertCoreLabelsLineEdit.text = "4"
    ui.forceCpuCheckBox.checked = True


def _run(widget, button, defects: list, what: str) -> float:
    started = time.perf_counter()
    harness.click_to_end(widget, button, timeout=1800)
    if widget.ui.statusLabel.text.startswith(("Error", "The ", "'")) or "Error" in widget.ui.statusLabel.text:
        defects.append(f"{what}: {widget.ui.statusLabel.text}")
    return round(time.perf_counter() - started, 1)


def _prepared_targets(widget, labels, lge, model) -> np.ndarray:
    """The training targets the panel's Logic prepares with ``labels`` as the myocardium mask."""
    run = widget.logic.prepare_training(lge, model, widget.options(), labels)
    return np.asarray(run.prepared.intensities)


#: Mistakes a modeller makes in the route's boxes (box, typed value): each must be one status line in the
#: panel's words, and start nothing.
MISTAKES = (("expertScarLabelsLineEdit", "7"), ("expertCoreLabelsLineEdit", "2"), ("expertScarLabelsLineEdit", ""),
            ("myocardiumLabelsLineEdit", "2"), ("expertScarLabelsLineEdit", "0,3"), ("scarThresholdsLineEdit", "3,2"),
            ("expertScarLabelsLineEdit", "3;4"))


def _refusals(widget, defects: list) -> dict:
    """The status line of each mistake, the box put back after it."""
    ui, lines = widget.ui, {}
    for name, typed in MISTAKES:
        box = getattr(ui, name)
        kept, box.text = box.text, typed
        ui.applyButton.click()
        line = lines[f"{name}={typed}"] = ui.statusLabel.text
        if widget._run is not None:
            ui.applyButton.click()  # Stop
            defects.append(f"{name} {typed!r} started a run")
        elif "--" in line or "\n" in line:
            defects.append(f"{name} {typed!r}: not in the panel's words: {line}")
        box.text = kept
    return lines


def _save_scene(scene, folder: Path) -> None:
    """Every node with data written beside the scene, then the scene file (as Slicer's Save does)."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = {"vtkMRMLModelNode": ".vtk", "vtkMRMLTableNode": ".tsv"}
    for index in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(index)
        kind = next((suffix[k] for k in suffix if node.IsA(k)), ".nrrd" if node.IsA("vtkMRMLVolumeNode") else None)
        if kind is None:
            continue
        if node.GetStorageNode() is None:
            node.AddDefaultStorageNode()
        storage = node.GetStorageNode()
        storage.SetFileName(str(folder / f"{node.GetID()}{kind}"))
        assert storage.WriteData(node), node.GetName()
    scene.SetRootDirectory(str(folder))
    scene.SetURL(str(folder / "scene.mrml"))
    assert scene.Commit()


def main(cli_dir: Path, out_dir: Path, case: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    defects: list[str] = []
    figures: dict = {"case": case}
    context = csl.create_scene()
    scene = context.scene
    slicer.vtkMRMLLayoutLogic().SetMRMLScene(scene)
    lge_path = EMIDEC / f"Case_{case}" / "Images" / f"Case_{case}.nii.gz"
    labels_path = EMIDEC / f"Case_{case}" / "Contours" / f"Case_{case}.nii.gz"
    lge = csl.load_volume(scene, lge_path, name=f"Case_{case} LGE")
    label_map = csl.load_volume(scene, labels_path, labelmap=True, name=f"Case_{case} labels")
    as_scalar = csl.load_volume(scene, labels_path, name=f"Case_{case} labels (scalar)")  # Add data's default
    model = csl.load_model(scene, cli_dir / "heart.vtk", name="heart")
    with harness.cardioscar_panel(context.application_logic) as widget:
        ui, p = widget.ui, widget._parameterNode
        ui.inputSelector.setCurrentNode(lge)
        ui.modelSelector.setCurrentNode(model)
        figures["expert_boxes_before_rule"] = {"enabled": ui.expertScarLabelsLineEdit.enabled,
                                               "tooltip": ui.expertScarLabelsLineEdit.toolTip}
        _choose_route(ui, label_map, 5.0)

        # the label map read as a scalar volume (Add data's default) grades the same targets
        targets = {}
        for name, node in (("label_map", label_map), ("scalar_volume", as_scalar)):
            try:
                targets[name] = _prepared_targets(widget, node, lge, model)
            except Exception as error:  # noqa: BLE001 - a walk records what the modeller would see
                defects.append(f"labels as {name}: {error}")
        if len(targets) == 2:
            figures["scalar_volume_same_targets"] = bool(np.array_equal(targets["label_map"], targets["scalar_volume"]))
            if not figures["scalar_volume_same_targets"]:
                defects.append("the label map loaded as a scalar volume grades other targets")

        figures["scar_run_s"] = _run(widget, ui.applyButton, defects, "scar run")
        scar_node = p.resultModel
        ui.scarTargetComboBox.choose("core")
        figures["core_run_s"] = _run(widget, ui.applyButton, defects, "core run")
        core_node = p.tagCoreModel
        figures["nodes"] = int(model.GetMesh().GetNumberOfPoints())
        figures["tag_core_model"] = core_node.GetName() if core_node is not None else None
        figures["tag_model"] = p.tagModel.GetName() if p.tagModel is not None else None
        for name, node, path in (("scar", scar_node, "scar_pred.vtk"), ("core", core_node, "core_pred.vtk")):
            if node is not None and (cli_dir / path).is_file():
                difference = np.abs(_field(node, "scar_probability") - _file_field(cli_dir / path, "scar_probability"))
                figures[f"{name}_probability_vs_cli_max_abs"] = float(difference.max())
                figures[f"{name}_probability_mean"] = round(float(_field(node, "scar_probability").mean()), 4)

        figures["tag_s"] = _run(widget, ui.tagButton, defects, "tag tissue")
        figures["tag_status"] = ui.statusLabel.text
        ui.exportUnitsComboBox.choose("mm")
        ui.exportFormatComboBox.choose("opencarp")
        ui.exportPrefixLineEdit.currentPath = str(out_dir / "export" / "heart")
        (out_dir / "export").mkdir(exist_ok=True)
        figures["export_s"] = _run(widget, ui.exportButton, defects, "export")
        figures["export_status"] = ui.statusLabel.text
        for name in ("heart.pts", "heart.elem"):
            ours, theirs = out_dir / "export" / name, cli_dir / name
            if ours.is_file() and theirs.is_file():
                figures[f"{name}_equals_cli"] = ours.read_bytes() == theirs.read_bytes()

        ui.myocardiumMaskSelector.setCurrentNode(as_scalar)
        figures["scalar_volume_accepted_as_mask"] = p.myocardiumMask is as_scalar
        ui.myocardiumMaskSelector.setCurrentNode(label_map)
        figures["refusals"] = _refusals(widget, defects)
        figures["warnings_in_log"] = [line for line in ui.logTextEdit.toPlainText().splitlines()
                                      if line.startswith("Warning: ")]

        # save, close, load: the boxes, the rule and the core model come back
        _save_scene(scene, out_dir / "scene")
        scene.Clear(0)
        scene.SetURL(str(out_dir / "scene" / "scene.mrml"))
        assert scene.Import()
        p = widget._parameterNode
        back = {name: getattr(p, name) for name in KEPT}
        figures["reloaded"] = back
        if back != KEPT:
            defects.append(f"the reloaded scene's parameters differ: {back}")
        boxes = {"expertScarLabels": ui.expertScarLabelsLineEdit.text, "expertCoreLabels": ui.expertCoreLabelsLineEdit.text}
        if boxes != {k: KEPT[k] for k in boxes} or not ui.expertScarLabelsLineEdit.enabled:
            defects.append(f"the reloaded expert boxes show {boxes}, enabled {ui.expertScarLabelsLineEdit.enabled}")
        figures["reloaded_core_model"] = p.tagCoreModel.GetName() if p.tagCoreModel is not None else None
        figures["reloaded_myocardium_mask"] = p.myocardiumMask.GetName() if p.myocardiumMask is not None else None
        figures["reloaded_target"] = p.scarTarget
        figures["reloaded_tag_enabled"] = ui.tagButton.enabled
        if figures["reloaded_core_model"] != figures["tag_core_model"]:
            defects.append("the core model of the tissue tags did not come back")
    figures["defects"] = defects
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "P022")
