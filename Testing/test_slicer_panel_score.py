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
import slicer_widget_harness as harness  # noqa: E402
from CardioScarLogic import results  # noqa: E402
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
