"""Myocardium-aware targets in the Slicer Logic (issue 18, item 1), on real MRML (slicer-core).

The segmented phantom's real files (a scar-fraction map that is 0 outside the myocardium, its 0/1
myocardium mask, its label map: 0 background, 1 blood, 2 myocardium, 3 scar) loaded through
Slicer's own storage nodes. Each way of giving the myocardium to the Logic (labels of a label map,
a mask volume node, a segmentation's myocardium segment) must give the groups the command line's
library gives for the same files: pixels outside the myocardium make no group.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import slicer  # noqa: E402  (slicer-core)
import SimpleITK as sitk  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.logic import PreprocessingRequest, prepare_training_data  # noqa: E402
from conftest import scar_free_label_map  # noqa: E402

GROUP_KEYS = ("group_ids", "node_ids", "group_slice", "group_pixel")


@pytest.fixture(scope="module")
def by_labels(segmented):
    """The library's (command line's) rows: the label map cut by its myocardium labels."""
    return prepare_training_data(PreprocessingRequest(mesh_path=segmented["mesh"], image_path=segmented["label_map"],
                                                      scar_labels=[3], myocardium_labels=[2, 3]))


def _options(**overrides) -> csl.ReconstructionOptions:
    values = dict(preset="fast", max_epochs=2, seed=7, num_threads=1, inference_mc_samples=2)
    values.update(overrides)
    return csl.ReconstructionOptions(**values)


def _same_groups(prepared, expected) -> None:
    for key in GROUP_KEYS:
        np.testing.assert_array_equal(getattr(prepared, key), getattr(expected, key), err_msg=key)
    np.testing.assert_allclose(prepared.intensities, expected.intensities, atol=1e-6)


def _scene(segmented):
    context = csl.create_scene()
    return context, csl.load_model(context.scene, segmented["mesh"]), csl.CardioScarLogic(context.scene,
                                                                                          context.color_logic)


def test_label_map_with_myocardium_labels_groups_like_the_command_line(segmented, by_labels):
    context, model, logic = _scene(segmented)
    labels = csl.load_volume(context.scene, segmented["label_map"], labelmap=True)
    plain = logic.prepare_training(labels, model, _options(scar_labels="3")).prepared
    run = logic.prepare_training(labels, model, _options(scar_labels="3", myocardium_labels="2,3"))
    _same_groups(run.prepared, by_labels)
    assert run.prepared.n_groups < plain.n_groups  # blood and background pixels no longer constrain
    assert run.prepared.myocardium_source == "labels 2,3"
    np.testing.assert_array_equal(run.prepared.dropped_outside_myocardium, by_labels.dropped_outside_myocardium)
    assert run.prepared.dropped_outside_myocardium.sum() > 0


def test_a_mask_volume_node_cuts_the_fraction_map_like_the_command_line(segmented, by_labels):
    """The fraction map with the 0/1 mask node, and with the label map as mask node read by its
    myocardium labels: the groups of the label route; the mask file route of the library agrees."""
    context, model, logic = _scene(segmented)
    image = csl.load_volume(context.scene, segmented["image"])
    mask = csl.load_volume(context.scene, segmented["myocardium_mask"], labelmap=True)
    label_mask = csl.load_volume(context.scene, segmented["label_map"], labelmap=True)
    run = logic.prepare_training(image, model, _options(), myocardium_mask=mask)
    by_file = prepare_training_data(PreprocessingRequest(mesh_path=segmented["mesh"], image_path=segmented["image"],
                                                         myocardium_mask=segmented["myocardium_mask"]))
    _same_groups(run.prepared, by_file)
    for key in GROUP_KEYS[1:]:
        np.testing.assert_array_equal(getattr(run.prepared, key), getattr(by_labels, key), err_msg=key)
    assert run.prepared.myocardium_source == f"mask {mask.GetName()}"
    by_label_node = logic.prepare_training(image, model, _options(myocardium_labels="2,3"), myocardium_mask=label_mask)
    np.testing.assert_array_equal(by_label_node.prepared.group_pixel, run.prepared.group_pixel)

    # the mask is read in world coordinates: moved away by a transform it no longer covers the slices
    transform = context.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = np.eye(4)
    matrix[2, 3] = 1000.0
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(matrix))
    mask.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(CardioScarError, match="myocardium mask 'phantom_myocardium' does not overlap slice"):
        logic.prepare_training(image, model, _options(), myocardium_mask=mask)


def _segmentation_of(context, segmented, tmp_path):
    """A segmentation with a 'Myocardium' segment (labels 2, 3) and a 'Scar' segment (label 3)
    drawn on the label map's grid, overlapping as a user would paint them."""
    labels = sitk.ReadImage(str(segmented["label_map"]))
    segmentation = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    for name, wanted in (("Myocardium", (2, 3)), ("Scar", (3,))):
        array = np.isin(sitk.GetArrayFromImage(labels), wanted).astype(np.uint8)
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(labels)
        path = tmp_path / f"{name}.nii.gz"
        sitk.WriteImage(image, str(path))
        node = csl.load_volume(context.scene, path, labelmap=True, name=name)
        if segmentation.GetSegmentation().GetNumberOfSegments() == 0:
            segmentation.SetReferenceImageGeometryParameterFromVolumeNode(node)
        before = segmentation.GetSegmentation().GetNumberOfSegments()
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(node, segmentation)
        segment_id = segmentation.GetSegmentation().GetNthSegmentID(before)
        segmentation.GetSegmentation().GetSegment(segment_id).SetName(name)
        context.scene.RemoveNode(node)
    return segmentation


def test_a_segmentation_with_a_myocardium_segment_groups_like_the_command_line(segmented, by_labels, tmp_path):
    context, model, logic = _scene(segmented)
    segmentation = _segmentation_of(context, segmented, tmp_path)
    n_nodes = context.scene.GetNumberOfNodes()
    run = logic.prepare_training(segmentation, model, _options(myocardium_segment=" myocardium"))
    assert context.scene.GetNumberOfNodes() == n_nodes  # the temporary label maps are gone
    _same_groups(run.prepared, by_labels)
    assert run.prepared.myocardium_source == "segment myocardium"
    np.testing.assert_array_equal(run.prepared.dropped_outside_myocardium, by_labels.dropped_outside_myocardium)
    with pytest.raises(CardioScarError, match=r"has no segment named 'Myo' \(segments: Myocardium, Scar\)"):
        logic.prepare_training(segmentation, model, _options(myocardium_segment="Myo"))


def test_the_summary_table_records_the_myocardium_and_the_dropped_pixels(segmented, by_labels):
    context, model, logic = _scene(segmented)
    labels = csl.load_volume(context.scene, segmented["label_map"], labelmap=True)
    result = logic.train_and_apply(labels, model, _options(scar_labels="3", myocardium_labels="2,3"))
    rows = {measure: value for measure, value, _ in result.summary}
    assert rows["Myocardium"] == "labels 2,3"
    assert rows["Pixels outside the myocardium (no constraint)"] == str(int(by_labels.dropped_outside_myocardium.sum()))
    table = result.table_node.GetTable()
    measures = [table.GetValue(r, 0).ToString() for r in range(table.GetNumberOfRows())]
    assert "Myocardium" in measures


def test_bad_myocardium_inputs_are_one_line_errors_and_change_nothing(segmented):
    context, model, logic = _scene(segmented)
    image = csl.load_volume(context.scene, segmented["image"])
    labels = csl.load_volume(context.scene, segmented["label_map"], labelmap=True)
    n_nodes = context.scene.GetNumberOfNodes()
    cases = [
        (image, _options(myocardium_labels="2,3"), None, "name labels of a label-map input: for 'phantom_lge' choose a "
                                                         "myocardium mask volume"),
        (labels, _options(scar_labels="3", myocardium_labels="2"), None, "Scar labels 3 are not among the myocardium "
                                                                          "labels 2"),
        # labels absent from the chosen slices: the scar labels are checked first (scar labels are
        # myocardium labels), either way in targets.unmatched_labels' wording, with the Logic's names
        (labels, _options(scar_labels="7", myocardium_labels="7,8"), None,
         r"(options.scar_labels 7|myocardium labels of 'phantom_labels' 7,8) match no pixel "
         r".*labels present: 0, 1, 2, 3"),
        (image, _options(myocardium_segment="Myocardium"), None, "names a segment of a segmentation input"),
        (image, _options(myocardium_labels="9"), labels, "myocardium mask 'phantom_labels' has no voxel with labels 9"),
        (image, _options(myocardium_labels="2;3"), None, "options.myocardium_labels must be comma-separated integers"),
    ]
    for node, options, mask, message in cases:
        with pytest.raises(CardioScarError, match=message):
            logic.train_and_apply(node, model, options, myocardium_mask=mask)
    assert context.scene.GetNumberOfNodes() == n_nodes
    assert model.GetMesh().GetPointData().GetArray("scar_probability") is None


def test_a_scar_free_label_map_with_its_myocardium_trains_a_scar_free_heart(segmented, tmp_path, caplog):
    """As the command line: scar labels matching no pixel are a scar-free heart when the myocardium
    labels are given (the groups the library makes, every target 0, a warning), and stay an error
    without them, the scene left as it was."""
    path = scar_free_label_map(segmented["label_map"], tmp_path)
    expected = prepare_training_data(PreprocessingRequest(mesh_path=segmented["mesh"], image_path=path,
                                                          scar_labels=[3, 4], myocardium_labels=[2, 3, 4]))
    context, model, logic = _scene(segmented)
    labels = csl.load_volume(context.scene, path, labelmap=True)
    with caplog.at_level("WARNING", logger="cardioscar.prepare.targets"):
        run = logic.prepare_training(labels, model, _options(scar_labels="3,4", myocardium_labels="2,3,4"))
    assert "a scar-free heart" in caplog.text
    _same_groups(run.prepared, expected)
    assert run.prepared.n_groups > 100 and not run.prepared.intensities.any()
    n_nodes = context.scene.GetNumberOfNodes()
    with pytest.raises(CardioScarError, match="give its myocardium too"):
        logic.train_and_apply(labels, model, _options(scar_labels="3,4"))
    scarred = csl.load_volume(context.scene, segmented["label_map"], labelmap=True)
    n_nodes = context.scene.GetNumberOfNodes()
    with pytest.raises(CardioScarError, match="myocardium labels present are 2, 3"):  # a mistyped scar label
        logic.train_and_apply(scarred, model, _options(scar_labels="4", myocardium_labels="2,3,4"))
    assert context.scene.GetNumberOfNodes() == n_nodes
    assert context.scene.GetNumberOfNodes() == n_nodes
    assert model.GetMesh().GetPointData().GetArray("scar_probability") is None
