"""The panel's *Score against labels* section (CardioScar.py) on a real MRML scene, with the Qt
stand-in of Testing/slicer_widget_harness.py (see there what it cannot prove). The model is the
session's segmented phantom with a biased, ranked scar_probability, the truth its label map loaded
as a label map node; the figures the panel shows are those of ``cardioscar evaluate --truth-image``
(:func:`cardioscar.logic.evaluate_on_slices`) on the same files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic import results  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.evaluate import heldout  # noqa: E402
from cardioscar.io.meshio import read_mesh, write_mesh  # noqa: E402
from cardioscar.logic import evaluate_on_slices  # noqa: E402
from test_slicer_panel import LATEST, _arrays, case, panel, phantom  # noqa: E402,F401


@pytest.fixture()
def scoring(panel, segmented, tmp_path):
    """The phantom's prediction (its own scar_truth dropped, as a patient's mesh has none) and label
    map in the panel's scene, the section filled as for EMIDEC-style labels, and the command line's
    scores of the same files."""
    mesh = read_mesh(segmented["mesh"])
    mesh.dataset.GetPointData().RemoveArray(heldout.TRUTH_FIELD)
    prediction = tmp_path / "prediction.vtk"
    write_mesh(mesh, prediction, {"scar_probability": np.clip(mesh.point_array("scar_fraction_truth") * 1.5, 0, 1)})
    model = csl.load_model(panel["scene"], prediction)
    labels = csl.load_volume(panel["scene"], segmented["label_map"], labelmap=True)
    ui = panel["ui"]
    ui.halfThicknessSpinBox.value = 4.0
    ui.scoreModelSelector.setCurrentNode(model)
    ui.scoreTruthSelector.setCurrentNode(labels)
    ui.scoreScarLabelsLineEdit.text = "3"
    ui.scoreMyocardiumLabelsLineEdit.text = "2,3"
    expected = evaluate_on_slices(prediction, segmented["label_map"], scar_labels=[3], myocardium_labels=[2, 3],
                                  slice_thickness_padding=4.0)
    return {"model": model, "labels": labels, "expected": expected}


@LATEST
def test_score_shows_the_command_lines_figures_and_writes_nothing_unless_asked(panel, scoring):
    widget, ui, model = panel["widget"], panel["ui"], scoring["model"]
    assert ui.scoreButton.enabled
    before = set(_arrays(model))
    ui.scoreButton.click()  # on the main thread: no worker to wait for
    expected = scoring["expected"]
    assert expected["n_nodes"] > 500 and 0 < expected["dice"] < 1
    text = ui.statusLabel.text
    assert text == f"Scored 'prediction' against 'phantom_labels': {results.score_summary(expected)}.", text
    assert f"Dice {expected['dice']:.3f} at 0.5" in text and f"AUC {expected['auc']:.3f}" in text
    shown = ui.scoreResultsLabel.text
    for line in expected["slices"]:  # per slice: nodes scored (of them scar)
        assert f"<b>{line['scored_nodes']} ({line['scar_nodes']} scar)</b>" in shown
    assert shown.count("<tr>") == len(expected["slices"]) + 1
    assert set(_arrays(model)) == before  # 'Write scar_truth on the model' unticked
    assert ui.logTextEdit.toPlainText().splitlines()[-1] == text
    panel["scene"].Clear(0)  # a closed scene takes its score with it
    assert ui.scoreResultsLabel.text == "No score yet." and not ui.scoreButton.enabled
    # and its status line, which named the closed scene's model; the log keeps the line
    assert ui.statusLabel.text == "" and ui.logTextEdit.toPlainText().splitlines()[-1] == text


@LATEST
def test_scored_slices_and_the_truth_on_the_model(panel, scoring, segmented):
    ui, model = panel["ui"], scoring["model"]
    ui.scoreSliceIndicesLineEdit.text = "2"
    ui.scoreWriteTruthCheckBox.checked = True
    ui.scoreButton.click()
    one = evaluate_on_slices(Path(model.GetStorageNode().GetFileName()), segmented["label_map"], scar_labels=[3],
                             myocardium_labels=[2, 3], slice_indices=[2], slice_thickness_padding=4.0)
    assert f"{one['n_nodes']} of {one['mesh_nodes']} nodes scored on 1 slice(s)" in ui.statusLabel.text
    written = _arrays(model)
    assert int(written[heldout.SCORED_FIELD].sum()) == one["n_nodes"] < scoring["expected"]["n_nodes"]
    assert set(np.unique(written[heldout.SLICE_FIELD])) == {-1, 0}
    assert np.isnan(written[heldout.TRUTH_FIELD][written[heldout.SCORED_FIELD] == 0]).all()


@LATEST
def test_refusals_are_one_line_in_the_sections_words_and_change_nothing(panel, scoring):
    ui, model = panel["ui"], scoring["model"]
    ui.scoreMyocardiumLabelsLineEdit.text = ""  # a label map without its myocardium
    ui.scoreButton.click()
    text = ui.statusLabel.text
    assert "'Truth labels' with 'Truth scar labels' needs 'Truth myocardium labels'" in text and "\n" not in text
    ui.scoreMyocardiumLabelsLineEdit.text = "2,3"
    ui.scoreSliceIndicesLineEdit.text = "40"
    ui.scoreButton.click()
    assert ui.statusLabel.text == "slice index 40 is out of range for axis z: valid 0-8"
    # a scar_truth that no scoring wrote (the phantom's ground truth) is not written over
    ui.scoreSliceIndicesLineEdit.text = ""
    ui.scoreWriteTruthCheckBox.checked = True
    results.write_point_arrays(model, {heldout.TRUTH_FIELD: np.ones(model.GetMesh().GetNumberOfPoints(), np.float32)})
    ui.scoreButton.click()
    assert "holds a scar_truth that no scoring wrote" in ui.statusLabel.text
    assert "'Write scar_truth on the model'" in ui.statusLabel.text
    assert (_arrays(model)[heldout.TRUTH_FIELD] == 1).all() and heldout.SCORED_FIELD not in _arrays(model)
    ui.scoreModelSelector.setCurrentNode(None)
    assert not ui.scoreButton.enabled and "Choose the model to score" in ui.scoreButton.toolTip


@LATEST
def test_a_segmentation_of_the_same_labels_scores_as_the_label_map(panel, scoring, segmented, tmp_path):
    """The Logic takes a segmentation as it does for training: its scar segment, and its myocardium
    segment named in *Truth myocardium segment* (the label boxes then say nothing)."""
    from test_slicer_myocardium import _segmentation_of

    ui = panel["ui"]
    ui.scoreTruthSelector.setCurrentNode(_segmentation_of(panel["context"], segmented, tmp_path))
    ui.scoreScarLabelsLineEdit.text = ""
    ui.scoreMyocardiumLabelsLineEdit.text = ""
    ui.scoreMyocardiumSegmentLineEdit.text = "Myocardium"
    ui.scoreButton.click()
    assert ui.statusLabel.text.startswith("Scored 'prediction' against 'Segmentation")
    assert results.score_summary(scoring["expected"]) in ui.statusLabel.text


#: The segmented phantom's slice drawn alone in the 2D-truth tests (its label map has 9).
PLANE_SLICE = 4


@pytest.fixture()
def plane_truth(segmented, tmp_path) -> Path:
    """The phantom's label map on slice PLANE_SLICE written alone, as a 2D NIfTI (one slice drawn)."""
    import SimpleITK as sitk

    path = tmp_path / "truth_plane.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(segmented["label_map"]))[:, :, PLANE_SLICE], str(path))
    assert sitk.ReadImage(str(path)).GetDimension() == 2
    return path


def test_the_logic_places_a_2d_truth_on_its_mask_s_slice_as_evaluate_does(segmented, plane_truth, tmp_path):
    """A truth drawn on one slice alone: Slicer reads the 2D file as one slice at z = 0, so the Logic
    refused the slice it was drawn on as out of range, and on slice 0 scored it there (270 nodes,
    Dice 0.71, where the slice scores 267 and 0.78). With the stack's 3D label map as the mask it is
    placed on that map's slice, scoring as ``evaluate --truth-image`` of the 2D file does and as the
    3D map does there; refused where no chosen slice fits it, and without the mask."""
    context = csl.create_scene()
    mesh = read_mesh(segmented["mesh"])
    mesh.dataset.GetPointData().RemoveArray(heldout.TRUTH_FIELD)
    write_mesh(mesh, tmp_path / "prediction.vtk",
               {"scar_probability": np.clip(mesh.point_array("scar_fraction_truth") * 1.5, 0, 1)})
    model = csl.load_model(context.scene, tmp_path / "prediction.vtk")
    truth = csl.load_volume(context.scene, plane_truth, labelmap=True)
    stack = csl.load_volume(context.scene, segmented["label_map"], labelmap=True)
    assert truth.GetImageData().GetDimensions()[2] == 1
    logic = csl.CardioScarLogic(context.scene, context.color_logic)

    def options(indices: str) -> csl.ReconstructionOptions:
        return csl.ReconstructionOptions(half_thickness=4.0, slice_indices=indices, scar_labels="3",
                                         myocardium_labels="2,3")

    scores = logic.score_on_slices(truth, model, options(str(PLANE_SLICE)), stack, write_truth=False)
    by_file = evaluate_on_slices(tmp_path / "prediction.vtk", plane_truth, scar_labels=[3], myocardium_labels=[2, 3],
                                 myocardium_mask=segmented["label_map"], slice_indices=[PLANE_SLICE],
                                 slice_thickness_padding=4.0)
    by_stack = logic.score_on_slices(stack, model, options(str(PLANE_SLICE)), write_truth=False)
    assert scores["n_nodes"] > 50
    for key in ("n_nodes", "dice", "auc", "not_scored"):
        assert scores[key] == by_file[key] == by_stack[key], key
    assert scores["slices"][0]["slice"] == f"truth_plane on phantom_labels k={PLANE_SLICE}"
    with pytest.raises(CardioScarError, match=r"^truth_node truth_plane is a 2D image \(52x52 pixels\), which has no "
                                              r"place across the slices: .*no chosen slice has its size, spacing and "
                                              r"origin .*: choose the slice it was drawn on with options.slice_indices"):
        logic.score_on_slices(truth, model, options("0"), stack, write_truth=False)
    for indices in ("0", str(PLANE_SLICE)):
        with pytest.raises(CardioScarError, match=r"^truth_node truth_plane is a 2D image, which has no place across "
                                                  r"the slices: give with it the 3D myocardium_mask of the stack"):
            logic.score_on_slices(truth, model, options(indices), write_truth=False)


@LATEST
def test_the_panel_scores_a_2d_truth_on_the_truth_myocardium_mask(panel, scoring, plane_truth):
    """*Truth myocardium mask* reaches the Logic: a 2D truth with the stack's label map there scores
    as the 3D map does on that slice; without it, one line in the section's words."""
    ui = panel["ui"]
    truth = csl.load_volume(panel["scene"], plane_truth, labelmap=True)
    ui.scoreTruthSelector.setCurrentNode(truth)
    ui.scoreSliceIndicesLineEdit.text = str(PLANE_SLICE)
    ui.scoreButton.click()
    assert ui.statusLabel.text == ("'Truth labels' truth_plane is a 2D image, which has no place across the slices: "
                                   "give with it the 3D 'Truth myocardium mask' of the stack it was drawn on (the label "
                                   "map or mask on the LGE's grid) and 'Scored slices' of that slice, or give the truth "
                                   "as a 3D image on the LGE's grid"), ui.statusLabel.text
    ui.scoreMyocardiumMaskSelector.setCurrentNode(scoring["labels"])
    ui.scoreButton.click()
    one = panel["widget"].logic.score_on_slices(scoring["labels"], scoring["model"], panel["widget"].scoreOptions(),
                                                write_truth=False)
    assert one["n_nodes"] < scoring["expected"]["n_nodes"]
    assert ui.statusLabel.text == f"Scored 'prediction' against 'truth_plane': {results.score_summary(one)}."


def test_a_scar_free_scoring_shows_its_false_positives_not_a_dice():
    """The panel's status line on a scar-free truth: Dice undefined (not 'Dice 0.000 ..., best
    1.000'), the share of the scored volume wrongly called scar instead."""
    scores = {"dice": None, "best_dice": None, "best_threshold": None, "auc": None, "threshold": 0.5,
              "scar_free_truth": True, "false_positive_share": 0.034, "n_nodes": 120, "mesh_nodes": 3000,
              "slices": [{}, {}]}
    assert results.score_summary(scores) == ("No scar in the truth: Dice n/a; 3.4 % of the scored volume called scar "
                                             "at 0.5; 120 of 3000 nodes scored on 2 slice(s)")
