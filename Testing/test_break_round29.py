"""Round 29 of the break-it review: the Slicer Attri-VAE module as a panel user drives it, on real
MRML (slicer-core), real EMIDEC files and the real ``cardioscar attrivae`` command line in worker
processes (conftest's tiny ``attrivae_model``).

Each test failed before its fix: an output folder that is a file found only after the whole
explanation had run; an explanation's files kept one by one, so a copy failing part-way mixed
two runs' maps in the user's folder; an LGE removed from the scene during a run ending in
Python's AttributeError; segments whose names differ only in case, the first taken whatever
was typed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))
sys.path.insert(0, str(REPO / "AttriVAE"))

import CardioScarLogic as csl  # noqa: E402
from AttriVAELogic import AttriVAELogic, AttriVAEOptions  # noqa: E402
from AttriVAELogic import scene as results  # noqa: E402
from AttriVAELogic.logic import JOB_FOLDER_PREFIX  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from CardioScarLogic.scarsource import segment_named  # noqa: E402
from test_attrivae_slicer_logic import EXPLAIN, case_files, nodes  # noqa: E402,F401  (fixtures)
from test_attrivae_slicer_panel import LATEST, panel  # noqa: E402,F401  (the panel over a Qt stand-in)
import slicer_widget_harness as harness  # noqa: E402
from test_temporary_folders import temporary  # noqa: E402,F401  (the system's temporary folder, redirected)


def test_an_output_folder_that_is_a_file_is_refused_before_the_explanation_runs(nodes, attrivae_model, tmp_path,
                                                                                  temporary):
    """The panel's Output folder naming a file was refused only when the files were copied, after
    the explanation (minutes on a full model) had run; now before any process starts or any job
    folder is made, naming the box and the file."""
    taken = tmp_path / "results.txt"
    taken.write_text("the user's notes")
    options = AttriVAEOptions(model_path=str(attrivae_model), **EXPLAIN)
    with pytest.raises(CardioScarError, match=r"^Output folder .*results\.txt is a file, not a folder"):
        AttriVAELogic(nodes["scene"]).start_explanation(nodes["lge"], nodes["labels"], options, str(taken))
    assert not list(temporary.glob(JOB_FOLDER_PREFIX + "*"))
    assert taken.read_text() == "the user's notes"


def _explanation(folder: Path, names: list[str]) -> results.Explanation:
    files = {(name, "attention map"): folder / f"attention_{name}.nii.gz" for name in names}
    return results.Explanation(0.5, {}, {}, None, files)


def test_an_explanations_files_are_kept_all_together_or_not_at_all(tmp_path):
    """A copy failing part-way (here the second file gone from the job folder; a full disk does the
    same) left the first file of this run in the user's folder beside the previous run's second:
    two explanations mixed under one folder. Now the previous files stay, all of them."""
    job, kept = tmp_path / "job", tmp_path / "kept"
    job.mkdir()
    kept.mkdir()
    (job / "attention_age.nii.gz").write_bytes(b"this run's age map")
    for name in ("age", "sex"):
        (kept / f"attention_{name}.nii.gz").write_bytes(b"the previous run's map")
    with pytest.raises(CardioScarError, match="Could not write"):
        results.keep_files(_explanation(job, ["age", "sex"]), str(kept))
    assert sorted(p.name for p in kept.iterdir()) == ["attention_age.nii.gz", "attention_sex.nii.gz"]
    assert {p.read_bytes() for p in kept.iterdir()} == {b"the previous run's map"}
    (job / "attention_sex.nii.gz").write_bytes(b"this run's sex map")
    results.keep_files(_explanation(job, ["age", "sex"]), str(kept))
    assert (kept / "attention_sex.nii.gz").read_bytes() == b"this run's sex map"


def test_an_explanation_kept_again_drops_the_earlier_maps_of_other_attributes(tmp_path, caplog):
    """Explaining again with fewer attributes into the same Output folder left the earlier run's
    maps and traversals of the others there, named as this case's, beside this run's files; they go
    with the new set now, with a warning (a file of another name stays: never the library's)."""
    job, kept = tmp_path / "job", tmp_path / "kept"
    job.mkdir()
    kept.mkdir()
    (job / "attention_age.nii.gz").write_bytes(b"this run's age map")
    for name in ("attention_age.nii.gz", "attention_sex.nii.gz", "traversal_sex.png", "notes_sex.txt"):
        (kept / name).write_bytes(b"the previous run's")
    with caplog.at_level("WARNING"):
        results.keep_files(_explanation(job, ["age"]), str(kept))
    assert sorted(p.name for p in kept.iterdir()) == ["attention_age.nii.gz", "notes_sex.txt"]
    assert (kept / "attention_age.nii.gz").read_bytes() == b"this run's age map"
    assert "Removed attention_sex.nii.gz" in caplog.text and "Removed traversal_sex.png" in caplog.text


def test_an_lge_removed_during_the_run_is_a_one_line_refusal_that_writes_nothing(nodes, attrivae_model, tmp_path):
    """The Data module stays usable while the panel runs: deleting the LGE node then ended the run
    in "AttributeError: 'NoneType' object has no attribute 'AddNewNodeByClass'" (the table was made
    through the removed node's scene). Now one line naming the LGE, no node added, no file kept."""
    scene, lge = nodes["scene"], nodes["lge"]
    logic = AttriVAELogic(scene)
    options = AttriVAEOptions(model_path=str(attrivae_model), **EXPLAIN)
    for start in (lambda: logic.start_prediction(lge, nodes["labels"], options),
                  lambda: logic.start_explanation(lge, nodes["labels"], options, str(tmp_path / "kept"))):
        if lge.GetScene() is None:
            scene.AddNode(lge)
        run = start()
        scene.RemoveNode(lge)
        before = scene.GetNumberOfNodes()
        with pytest.raises(CardioScarError, match=r"^The LGE '.*' was removed from the scene while Attri-VAE ran: "
                                                  "nothing was written") as error:
            run.wait()
        assert "\n" not in str(error.value) and scene.GetNumberOfNodes() == before
        assert not run.folder.exists() and not (tmp_path / "kept").exists()


def test_segments_whose_names_differ_only_in_case_are_told_apart_or_refused():
    """Segment names are matched ignoring case; with "Myocardium" (imported) beside "MYOCARDIUM"
    (drawn), the first was taken whatever was typed: "MYOCARDIUM" gave the other segment, without a
    word (the CardioScar panel's myocardium and masks, the Attri-VAE module's cavity and myocardium).
    Now the segment spelt as typed, and a name that fits both in another case is refused."""
    scene = csl.create_scene().scene
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "segments")
    for segment_id, name in (("imported", "Myocardium"), ("drawn", "MYOCARDIUM"), ("scar", "Scar")):
        node.GetSegmentation().AddEmptySegment(segment_id, name)
    assert segment_named(node, "MYOCARDIUM") == "drawn"
    assert segment_named(node, " Myocardium ") == "imported"
    assert segment_named(node, "scar", "scar") == "scar"
    with pytest.raises(CardioScarError, match=r"^The segmentation 'segments' has 2 segments named 'myocardium' in "
                                              r"some case \(Myocardium, MYOCARDIUM\): rename all but the cavity"):
        segment_named(node, "myocardium", "cavity")


def test_explaining_again_removes_the_earlier_explanations_other_maps(nodes, attrivae_model):
    """Explain with two attributes, then with another one (another model, or fewer attributes):
    the first run's maps and pictures stayed in the scene, named "<LGE> attention <attribute>" as
    this run's are and put back over the LGE by ``show_attention_of`` as if current. Now they go
    with the new explanation (the files table listed only the new run's already)."""
    scene, lge = nodes["scene"], nodes["lge"]
    logic = AttriVAELogic(scene)
    first = logic.explain(lge, nodes["labels"], AttriVAEOptions(model_path=str(attrivae_model), **EXPLAIN))
    earlier = [node.GetID() for node in [*first.attention_nodes.values(), *first.picture_nodes.values()]]
    second = logic.explain(lge, nodes["labels"], AttriVAEOptions(model_path=str(attrivae_model), attributes="age",
                                                                 steps=3))
    assert set(second.attention_nodes) == {"age"}
    kept = {node.GetID() for node in [*second.attention_nodes.values(), *second.picture_nodes.values()]}
    assert [node_id for node_id in earlier if node_id not in kept and scene.GetNodeByID(node_id) is not None] == []
    with pytest.raises(CardioScarError, match="no attention map of lv_volume_ml: run Explain first"):
        AttriVAELogic.show_attention_of(lge, "lv_volume_ml")
    AttriVAELogic.show_attention_of(lge, "age")


@LATEST
def test_the_panels_results_go_when_another_lge_labels_or_model_is_chosen(panel, attrivae_model, tmp_path):
    """The results box's table (MI probability, attributes; it names no case) stayed after the
    user chose another LGE, labels or model, and read as the new choice's prediction (the Qt
    stand-in's panel; the real widgets' signals are not proven here). Now it goes back to
    "(shown after Predict)" when the choice changes, and stays while it does not."""
    widget, ui, scene = panel["widget"], panel["ui"], panel["scene"]
    other = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "another case")
    other_model = tmp_path / "other.pth"
    for choose in (lambda: setattr(widget._parameterNode, "lgeVolume", other),
                   lambda: setattr(widget._parameterNode, "labels", None),
                   lambda: setattr(ui.modelPathLineEdit, "currentPath", str(other_model))):
        widget._parameterNode.lgeVolume, widget._parameterNode.labels = panel["lge"], panel["labels"]
        ui.modelPathLineEdit.currentPath = str(attrivae_model)
        ui.predictButton.click()
        harness.run_to_end(widget)
        assert "MI probability" in ui.resultsLabel.text
        ui.opacitySpinBox.value = 0.3  # not an input of the prediction: the table stays
        assert "MI probability" in ui.resultsLabel.text
        choose()
        assert ui.resultsLabel.text == "(shown after Predict)" and ui.explanationLabel.text == ""
