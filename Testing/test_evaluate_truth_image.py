"""``cardioscar evaluate --truth-image``: a reconstruction scored against the truth of the slices.

The known answer: on the session's segmented phantom, a label map whose scar is the myocardium
pixels of columns ``i >= I0`` (a pixel edge, so the truth of a node is whether its continuous
column index, from SimpleITK's own transform, is ``>= I0 - 0.5``). A prediction made by that rule
scores Dice 1 on the scored nodes; one shifted by 3 columns scores the Dice counted here; nodes
off the slices are not scored. One real EMIDEC case checks that the command scores the nodes the
leave-one-slice-out benchmark scores (:func:`cardioscar.evaluate.heldout.scored_nodes`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import SHARED_DATA, assert_refused_in_one_line, scar_free_label_map

from cardioscar.cli import main
from cardioscar.errors import CardioScarError
from cardioscar.evaluate import heldout
from cardioscar.io.meshio import read_mesh, write_mesh
from cardioscar.logic import evaluate_on_slices
from cardioscar.prepare.slices import slices_from_image

I0 = 26  # the first scar column of the test's label map (the phantom's image is 52 pixels wide)


@pytest.fixture(scope="module")
def case(segmented, tmp_path_factory):
    """The phantom's mesh, a label map with the column rule's scar, each node's continuous index and
    slab half-width, and the writer of a prediction by the rule shifted by some columns."""
    folder = tmp_path_factory.mktemp("truth_image")
    image = sitk.ReadImage(str(segmented["label_map"]))
    labels = sitk.GetArrayFromImage(image)
    myocardium = np.isin(labels, (2, 3))
    columns = np.arange(labels.shape[2])[None, None, :]
    ruled = np.where(myocardium, np.where(columns >= I0, 3, 2), np.where(labels == 1, 1, 0)).astype(np.uint8)
    out = sitk.GetImageFromArray(ruled)
    out.CopyInformation(image)
    label_map = folder / "column_labels.nii.gz"
    sitk.WriteImage(out, str(label_map))
    mesh = read_mesh(segmented["mesh"])
    index = np.array([image.TransformPhysicalPointToContinuousIndex(p.tolist()) for p in mesh.points_lps()])
    meta = json.loads(Path(segmented["metadata"]).read_text())
    half = 0.5 * meta["config"]["slab_mm"]

    def prediction(shift: int) -> Path:
        path = folder / f"prediction_{shift}.vtk"
        write_mesh(mesh, path, {"scar_probability": (index[:, 0] >= I0 - 0.5 + shift).astype(np.float32)})
        return path

    return {"folder": folder, "labels": label_map, "ruled": ruled, "index": index, "half": half,
            "spacing_k": image.GetSpacing()[2], "prediction": prediction}


def expected_scored(case: dict, slices: list[int] | None = None) -> np.ndarray:
    """The nodes the rule says are scored: within the half-width of a chosen plane (half-open), on a
    pixel of the grid that is myocardium (labels 2, 3), counted from SimpleITK's index."""
    index, ruled = case["index"], case["ruled"]
    k = np.rint(index[:, 2]).astype(int)
    d = (index[:, 2] - k) * case["spacing_k"]
    pixel = np.floor(index[:, :2] + 0.5).astype(int)
    inside = ((pixel >= 0) & (pixel < ruled.shape[1:][::-1])).all(axis=1) & (k >= 0) & (k < ruled.shape[0])
    inside &= (d >= -case["half"]) & (d < case["half"])
    if slices is not None:
        inside &= np.isin(k, slices)
    value = np.zeros(len(index), dtype=int)
    value[inside] = ruled[k[inside], pixel[inside, 1], pixel[inside, 0]]
    return inside & np.isin(value, (2, 3))


def evaluate(case: dict, shift: int, *extra: str) -> dict:
    json_path = case["folder"] / f"scores_{shift}_{len(extra)}.json"
    assert main(["evaluate", "--prediction", str(case["prediction"](shift)), "--truth-image", str(case["labels"]),
                 "--scar-labels", "3", "--myocardium-labels", "2,3", "--slice-thickness-padding", str(case["half"]),
                 "--json", str(json_path), *extra]) == 0
    return json.loads(json_path.read_text())


def test_a_prediction_equal_to_the_truth_scores_dice_1_on_the_scored_nodes(case):
    scores = evaluate(case, 0)
    scored = expected_scored(case)
    assert scores["n_nodes"] == scored.sum() > 1000
    assert scores["dice"] == 1.0 and scores["auc"] == 1.0 and scores["best_dice"] == 1.0
    assert sum(s["scored_nodes"] for s in scores["slices"]) == scores["n_nodes"]
    assert sum(s["scar_nodes"] for s in scores["slices"]) == int((case["index"][scored, 0] >= I0 - 0.5).sum()) > 100
    assert scores["mesh_nodes"] == scores["n_nodes"] + sum(scores["not_scored"].values())


def test_a_shifted_prediction_scores_the_dice_of_its_overlap(case):
    scores = evaluate(case, 3)
    scored = expected_scored(case)
    column = case["index"][scored, 0]
    truth, called = column >= I0 - 0.5, column >= I0 + 2.5
    assert scores["dice"] == pytest.approx(2 * (truth & called).sum() / (truth.sum() + called.sum()), abs=1e-12)
    assert scores["dice"] < 0.9


def test_write_truth_puts_the_slices_truth_on_the_scored_nodes_only(case):
    out = case["folder"] / "truth_on_mesh.vtk"
    evaluate(case, 0, "--write-truth", str(out))
    written = read_mesh(out)
    scored = expected_scored(case)
    mask = written.point_array(heldout.SCORED_FIELD).astype(bool)
    truth = written.point_array(heldout.TRUTH_FIELD)
    assert np.array_equal(mask, scored)
    assert np.array_equal(truth[scored], (case["index"][scored, 0] >= I0 - 0.5).astype(np.float32))
    assert np.isnan(truth[~scored]).all()
    # nodes off every slab (between the slices) are among the unscored
    d = (case["index"][:, 2] - np.rint(case["index"][:, 2])) * case["spacing_k"]
    off = np.abs(d) >= case["half"]
    assert off.sum() > 100 and not mask[off].any()
    assert np.array_equal(written.point_array("scar_probability"), read_mesh(case["prediction"](0)).point_array(
        "scar_probability"))


def test_slice_indices_score_one_held_out_slice(case):
    scores = evaluate(case, 3, "--slice-indices", "4")
    assert [s["slice"] for s in scores["slices"]] == ["column_labels.nii.gz k=4"]
    assert scores["n_nodes"] == expected_scored(case, [4]).sum() > 100


def test_a_scar_map_is_cut_at_the_truth_threshold(segmented):
    mesh = read_mesh(segmented["mesh"])
    prediction = Path(segmented["mesh"]).parent.parent / "scar_map_prediction.vtk"
    write_mesh(mesh, prediction, {"scar_probability": mesh.point_array("scar_truth").astype(np.float32)})
    common = dict(myocardium_mask=segmented["myocardium_mask"], slice_thickness_padding=4.0)
    low = evaluate_on_slices(prediction, segmented["image"], truth_threshold=0.2, **common)
    high = evaluate_on_slices(prediction, segmented["image"], truth_threshold=0.6, **common)
    assert low["n_nodes"] == high["n_nodes"] > 1000
    assert (low["truth_threshold"], high["truth_threshold"]) == (0.2, 0.6)
    assert sum(s["scar_nodes"] for s in low["slices"]) == sum(s["scar_nodes"] for s in high["slices"])  # sampled
    assert low["dice"] != high["dice"] and low["volume_error"] < high["volume_error"]


def test_no_node_on_pixels_with_truth_is_refused_naming_the_myocardium(segmented):
    points = read_mesh(segmented["mesh"]).points_lps()
    layer = slices_from_image(sitk.ReadImage(str(segmented["image"])), "z", [3], 4.0)[0]
    empty = type(layer)(**{**layer.__dict__, "values": np.full(layer.shape, np.nan)})
    sampled = heldout.sample_slice_truth(points, [empty])
    assert sampled.not_scored["outside_the_myocardium"] > 100
    with pytest.raises(CardioScarError, match="all lie in pixels outside the myocardium"):
        heldout.check_something_scored(sampled, points, [empty], "mesh.vtk", "labels.nii.gz")


@pytest.mark.parametrize("extra, fragment", [
    (["--scar-labels", "4", "--myocardium-labels", "2,3,4"], "match no pixel"),
    (["--scar-labels", "3"], "needs --myocardium-labels"),
    (["--scar-labels", "3", "--myocardium-labels", "2,3", "--truth-field", "scar_truth"], "leave --truth-field out"),
    (["--scar-labels", "3", "--myocardium-labels", "2,3", "--truth-threshold", "0.3"], "leave --truth-threshold out"),
    (["--scar-labels", "3", "--myocardium-labels", "2,3", "--slice-indices", "9"], "out of range for axis z: valid 0-8"),
    # prepare's check of the myocardium labels, in the scoring's words
    (["--scar-labels", "3", "--myocardium-labels", "1,2,3"], "would score the wall at the endocardium against a "
                                                             "healthy truth"),
])
def test_bad_truth_image_options_are_refused_in_one_line(case, extra, fragment, capsys, tmp_path):
    assert_refused_in_one_line(["evaluate", "--prediction", case["prediction"](0), "--truth-image", case["labels"],
                                "--write-truth", tmp_path / "out.vtk", *extra], fragment, capsys, tmp_path)


def test_an_image_off_the_mesh_is_refused(case, capsys, tmp_path):
    image = sitk.ReadImage(str(case["labels"]))
    image.SetOrigin(tuple(np.add(image.GetOrigin(), (0.0, 0.0, 400.0))))
    moved = tmp_path / "moved_labels.nii.gz"
    sitk.WriteImage(image, str(moved))
    assert_refused_in_one_line(["evaluate", "--prediction", case["prediction"](0), "--truth-image", moved,
                                "--scar-labels", "3", "--myocardium-labels", "2,3", "--write-truth",
                                tmp_path / "out.vtk"], "does not overlap", capsys, tmp_path)


def test_truth_and_truth_image_together_or_image_options_with_a_mesh_are_refused(case, segmented, capsys, tmp_path):
    mesh_truth = ["evaluate", "--prediction", case["prediction"](0), "--truth", segmented["mesh"]]
    with pytest.raises(SystemExit) as refused:  # argparse's usage error, one line (cli.OneLineParser)
        main([str(a) for a in [*mesh_truth, "--truth-image", case["labels"]]])
    errors = capsys.readouterr().err.strip().splitlines()
    assert refused.value.code != 0 and len(errors) == 1 and "not allowed with argument --truth" in errors[0]
    assert_refused_in_one_line([*mesh_truth, "--scar-labels", "3", "--write-truth", tmp_path / "out.vtk"],
                               "with --truth (a mesh) leave them out", capsys, tmp_path)


@pytest.mark.parametrize("option", [["--slice-axis", "z"], ["--slice-thickness-padding", "2"],
                                    ["--slice-thickness-padding", "5.0"]])
def test_the_slices_options_given_with_a_truth_mesh_are_refused_even_at_their_defaults(case, segmented, option,
                                                                                       capsys, tmp_path):
    assert_refused_in_one_line(["evaluate", "--prediction", case["prediction"](0), "--truth", segmented["mesh"],
                                *option, "--json", tmp_path / "out.json"],
                               f"{option[0]} read a --truth-image; with --truth (a mesh) leave them out", capsys,
                               tmp_path)


def test_write_truth_says_which_scar_truth_it_replaces(case, warnings_of_cardioscar):
    """The phantom's prediction carries the phantom's whole scar_truth: the written file holds the
    slices' truth in its place (a new file; the prediction is left as it was), and the warning says
    so; a second scoring of that file replaces an earlier scoring's truth, named as such."""
    first, second = case["folder"] / "replaced_once.vtk", case["folder"] / "replaced_twice.vtk"
    given = dict(scar_labels=[3], myocardium_labels=[2, 3], slice_thickness_padding=case["half"])
    evaluate_on_slices(case["prediction"](0), case["labels"], write_truth=first, **given)
    assert any("has a scar_truth that no scoring wrote (a ground truth, as a phantom's)" in message
               and str(first) in message for message in warnings_of_cardioscar), warnings_of_cardioscar
    assert np.isfinite(read_mesh(case["prediction"](0)).point_array(heldout.TRUTH_FIELD)).all()  # unchanged
    warnings_of_cardioscar.clear()
    scores = evaluate_on_slices(first, case["labels"], write_truth=second, **given)
    assert any(message.startswith("replaced_once.vtk has an earlier scoring's scar_truth")
               for message in warnings_of_cardioscar), warnings_of_cardioscar
    assert scores["dice"] == 1.0


def test_a_scar_free_truth_is_worded_as_a_score_not_as_training(segmented, tmp_path, warnings_of_cardioscar):
    """The checks prepare and the scoring share say what a label does to the score when scoring."""
    healthy = scar_free_label_map(segmented["label_map"], tmp_path)
    mesh = read_mesh(segmented["mesh"])
    prediction = tmp_path / "prediction.vtk"
    write_mesh(mesh, prediction, {"scar_probability": np.zeros(mesh.n_points, np.float32)})
    scores = evaluate_on_slices(prediction, healthy, scar_labels=[3], myocardium_labels=[2, 3],
                                slice_thickness_padding=4.0)
    assert scores["n_nodes"] > 1000 and sum(line["scar_nodes"] for line in scores["slices"]) == 0
    # no scar to overlap: Dice undefined, not 1.0 for the empty call (nor 0 beside a best of 1)
    assert (scores["dice"], scores["best_dice"], scores["scar_free_truth"], scores["false_positive_share"]) == \
        (None, None, True, 0.0)
    scar_free = [message for message in warnings_of_cardioscar if message.startswith("Scar labels 3 match no pixel")]
    assert len(scar_free) == 1 and "scored against a healthy truth" in scar_free[0]
    assert not any("train" in message for message in warnings_of_cardioscar), warnings_of_cardioscar
    # prepare's reading of the same map still speaks of training
    from cardioscar.prepare.targets import warn_scar_free

    warnings_of_cardioscar.clear()
    warn_scar_free(slices_from_image(sitk.ReadImage(str(healthy)), "z", None, 4.0), [3], [2, 3])
    assert "every myocardium pixel trains as healthy" in warnings_of_cardioscar[0]


EMIDEC_CASE = SHARED_DATA / "emidec" / "Case_P085" / "Contours" / "Case_P085.nii.gz"


@pytest.mark.skipif(not EMIDEC_CASE.is_file(), reason="EMIDEC data not beside the checkout")
def test_emidec_held_out_slice_scores_the_benchmarks_nodes(tmp_path):
    """A real case: the mesh of the other slices (as the benchmark makes it), the held-out slice k
    scored with ``--slice-indices k`` at the benchmark's half-width: the same nodes, the same Dice."""
    from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, labelled_slices, myocardium_mesh_from_labels

    image = sitk.ReadImage(str(EMIDEC_CASE))
    k = heldout.middle_slice(labelled_slices(sitk.GetArrayViewFromImage(image), MYOCARDIUM_LABELS))
    mesh = myocardium_mesh_from_labels(image, MYOCARDIUM_LABELS, held_out_k=k, spacing_mm=1.5)
    points = mesh.points_lps()
    probability = (points[:, 0] - points[:, 0].min()) / np.ptp(points[:, 0])  # any field in [0, 1]
    prediction = tmp_path / "prediction.vtu"
    write_mesh(mesh, prediction, {"scar_probability": probability})
    half = 0.25 * image.GetSpacing()[2]
    scores = evaluate_on_slices(prediction, EMIDEC_CASE, scar_labels=[3, 4], myocardium_labels=[2, 3, 4],
                                slice_indices=[k], slice_thickness_padding=half)
    nodes, truth = heldout.scored_nodes(points, slices_from_image(image, "z", [k], half)[0], half,
                                        MYOCARDIUM_LABELS, (3, 4))
    expected = heldout.held_out_scores(probability[nodes], truth)
    assert scores["n_nodes"] == nodes.size > 500 and scores["slices"][0]["scar_nodes"] == int(truth.sum()) > 0
    assert scores["dice"] == pytest.approx(expected["dice"]) and scores["auc"] == pytest.approx(expected["auc"])
