"""Scar-rule masks in the Slicer Logic on a real MRML scene (slicer-core): label maps and
segmentations with named segments for the myocardium, blood pool and remote region, read as the
command line's --myocardium-mask/-labels, --blood-pool-mask/-labels and --remote-mask.

The phantom's raw LGE and its label map (1 blood pool, 2 myocardium) are real files read through
Slicer's storage nodes; the segmentation is made from that label map by Slicer's own import."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CardioScar"))

import slicer  # noqa: E402
import SimpleITK as sitk  # noqa: E402
import vtk  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, raw_lge_acquisition, write_phantom  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("rule_masks")
    phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=3))
    paths = write_phantom(phantom, out)
    lge, labels = raw_lge_acquisition(phantom)
    sitk.WriteImage(lge, str(out / "lge.nii.gz"))
    sitk.WriteImage(labels, str(out / "labels.nii.gz"))
    return out, paths["mesh"], phantom.slice_half_thickness_mm


@pytest.fixture()
def scene(files):
    out, mesh, half = files
    context = csl.create_scene()
    lge = csl.load_volume(context.scene, out / "lge.nii.gz")
    labels = csl.load_volume(context.scene, out / "labels.nii.gz", labelmap=True, name="labels")
    model = csl.load_model(context.scene, mesh)
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    return {"scene": context.scene, "lge": lge, "labels": labels, "model": model, "logic": logic, "half": half}


def _labelmap_like(scene, reference, array: np.ndarray, name: str):
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, array.astype(np.uint8))
    matrix = vtk.vtkMatrix4x4()
    reference.GetIJKToRASMatrix(matrix)
    node.SetIJKToRASMatrix(matrix)
    return node


def _segmentation(scene, labels_node, names: dict):
    """Slicer's import of a label map, its segments renamed by label value (``names``)."""
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "heart segments")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(labels_node)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labels_node, segmentation)
    ids = vtk.vtkStringArray()
    segmentation.GetSegmentation().GetSegmentIDs(ids)
    values = sorted(int(v) for v in np.unique(slicer.util.arrayFromVolume(labels_node)) if v)
    for index, value in enumerate(values):
        segmentation.GetSegmentation().GetSegment(ids.GetValue(index)).SetName(names[value])
    return segmentation


def _options(s, **kwargs):
    """Slices 1-8: the apical slice 0 has myocardium but no cavity, which IIR refuses."""
    return csl.ReconstructionOptions(half_thickness=s["half"], preset="fast", slice_indices="1,2,3,4,5,6,7,8", **kwargs)


def _targets_and_record(s, options, myocardium, **nodes):
    run = s["logic"].prepare_training(s["lge"], s["model"], options, myocardium, **nodes)
    return run.prepared.group_targets.copy(), json.loads(run.prepared.scar_rule)


def test_a_segmentation_with_named_segments_equals_the_label_map(scene):
    s = scene
    by_labels = _targets_and_record(s, _options(s, scar_rule="iir", myocardium_labels="2", blood_pool_labels="1"),
                                    s["labels"])
    segmentation = _segmentation(s["scene"], s["labels"], {1: "Blood pool", 2: "Myocardium"})
    nodes_before = s["scene"].GetNumberOfNodes()
    by_segments = _targets_and_record(s, _options(s, scar_rule="iir", myocardium_segment="myocardium",
                                                  blood_pool_segment="Blood pool"), segmentation)
    np.testing.assert_array_equal(by_segments[0], by_labels[0])
    assert by_segments[1] == by_labels[1] and by_labels[1]["rule"] == "iir"
    assert by_labels[1]["slices"][0]["blood_pixels"] > 0 and set(np.unique(by_labels[0])) == {0.0, 1.0}
    assert s["scene"].GetNumberOfNodes() == nodes_before  # the exports left nothing behind
    # the blood pool as its own node (a second label map) gives the same, too
    blood = _labelmap_like(s["scene"], s["labels"], slicer.util.arrayFromVolume(s["labels"]) == 1, "blood only")
    own = _targets_and_record(s, _options(s, scar_rule="iir", myocardium_labels="2"), s["labels"], blood_pool_node=blood)
    np.testing.assert_array_equal(own[0], by_labels[0])


def test_a_remote_region_replaces_the_darkest_sector(scene):
    """A remote region drawn on the brightest myocardium raises the n-SD levels: far fewer scar
    targets than the automatic darkest sector, the same from a label map and from a segment."""
    s = scene
    labels = slicer.util.arrayFromVolume(s["labels"])
    lge = slicer.util.arrayFromVolume(s["lge"])
    bright = (labels == 2) & (lge > np.percentile(lge[labels == 2], 80))
    remote = _labelmap_like(s["scene"], s["labels"], bright, "bright remote")
    options = _options(s, scar_rule="nsd", myocardium_labels="2")
    automatic = _targets_and_record(s, options, s["labels"])
    drawn = _targets_and_record(s, options, s["labels"], remote_node=remote)
    assert {r["remote"] for r in drawn[1]["slices"] if "remote" in r} == {"user mask"}
    assert all("darkest" in r["remote"] for r in automatic[1]["slices"] if "remote" in r)
    assert drawn[0].mean() < automatic[0].mean() / 2
    # the scar-free check reads the same remote: the phantom's compact scar stands out of the darkest
    # sector's noise, while above the bright remote little is left (recorded either way, as on the command line)
    assert not automatic[1]["scar_spread"]["scattered"]
    assert drawn[1]["scar_spread"]["largest_of_myo"] < automatic[1]["scar_spread"]["largest_of_myo"]
    # a segmentation whose Remote segment is drawn over part of its Myocardium segment (segments overlap)
    segmentation = _segmentation(s["scene"], s["labels"], {1: "Blood", 2: "Myocardium"})
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(remote, segmentation)
    ids = vtk.vtkStringArray()
    segmentation.GetSegmentation().GetSegmentIDs(ids)
    segmentation.GetSegmentation().GetSegment(ids.GetValue(ids.GetNumberOfValues() - 1)).SetName("Remote")
    segmented = _targets_and_record(s, _options(s, scar_rule="nsd", myocardium_segment="Myocardium",
                                                remote_segment="Remote"), segmentation)
    np.testing.assert_array_equal(segmented[0], drawn[0])
    assert {r["remote"] for r in segmented[1]["slices"] if "remote" in r} == {"user mask"}


def test_a_remote_over_the_scar_is_named_as_the_logics_remote_node(scene, caplog):
    """The whole myocardium as ``remote_node``: the scar-free warning's advice that the remote holds the
    scar was a value filled into the record, which the Logic's rewording leaves, so the console said
    "the --remote-mask (remote_mask) holds the scar". It is now in the record's format: the console
    names the Logic's parameter, the panel its box, and the library keeps the command line's option."""
    from CardioScarLogic.wording import LIBRARY_MSG, in_panel_words, library_message

    s = scene
    whole = _labelmap_like(s["scene"], s["labels"], slicer.util.arrayFromVolume(s["labels"]) == 2, "whole myocardium")
    caplog.set_level(logging.WARNING)
    record = _targets_and_record(s, _options(s, scar_rule="nsd", myocardium_labels="2"), s["labels"],
                                 remote_node=whole)[1]
    assert record["scar_spread"]["scattered"]
    warned = [r for r in caplog.records if "no compact enhancement" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in caplog.records]
    said = warned[0].getMessage()
    assert "or the remote_node holds the scar" in said and "--" not in said and "remote_mask" not in said, said
    assert "or the --remote-mask holds the scar" in library_message(warned[0]) and hasattr(warned[0], LIBRARY_MSG)
    assert "or the 'Remote myocardium' holds the scar" in in_panel_words(library_message(warned[0]))


@pytest.mark.parametrize("kwargs, nodes, fragment", [
    ({"scar_rule": "iir", "myocardium_segment": "Myocardium"}, {}, "needs the blood pool: choose a blood-pool node, or give the blood pool's segment name"),
    ({"scar_rule": "iir", "myocardium_labels": "2", "blood_pool_segment": "Blood"}, {"blood": "segmentation"},
     "type the name of its blood pool segment"),
    ({"scar_rule": "iir", "myocardium_segment": "Myocardium", "blood_pool_segment": "Nope"}, {},
     "has no segment named 'Nope'"),
    ({"scar_rule": "nsd", "myocardium_labels": "2", "blood_pool_segment": "Blood"}, {"as_labels": True},
     "names a segment of a segmentation"),
    ({"scar_rule": "nsd", "myocardium_labels": "2"}, {"remote": "blood"}, "has no pixel inside the myocardium"),
])
def test_mask_mistakes_are_one_line_and_change_nothing(scene, kwargs, nodes, fragment):
    s = scene
    labels = slicer.util.arrayFromVolume(s["labels"])
    segmentation = _segmentation(s["scene"], s["labels"], {1: "Blood", 2: "Myocardium"})
    myocardium = s["labels"] if nodes.get("as_labels") or "myocardium_labels" in kwargs else segmentation
    extra = {}
    if nodes.get("blood") == "segmentation":
        extra["blood_pool_node"] = segmentation
        kwargs = {**kwargs, "blood_pool_segment": ""}
    if nodes.get("remote") == "blood":
        extra["remote_node"] = _labelmap_like(s["scene"], s["labels"], labels == 1, "blood as remote")
    arrays_before = s["model"].GetMesh().GetPointData().GetNumberOfArrays()
    nodes_before = s["scene"].GetNumberOfNodes()
    with pytest.raises(CardioScarError) as error:
        s["logic"].train_and_apply(s["lge"], s["model"], _options(s, **kwargs), myocardium_mask=myocardium, **extra)
    assert fragment in str(error.value) and "\n" not in str(error.value)
    assert s["model"].GetMesh().GetPointData().GetNumberOfArrays() == arrays_before
    assert s["scene"].GetNumberOfNodes() == nodes_before


def test_a_mask_off_the_lges_left_ventricle_is_refused_as_on_the_command_line(scene):
    """The phantom's label map moved 15 pixels (22 mm) in-plane: its cavity no longer on the bright
    blood pool (share 0.81 on the 4 slices where it still encloses one), refused by the library's
    check in one line naming the node; nothing added to the scene or the model."""
    s = scene
    moved = _labelmap_like(s["scene"], s["labels"], np.roll(slicer.util.arrayFromVolume(s["labels"]), 15, axis=2),
                           "moved labels")
    arrays_before = s["model"].GetMesh().GetPointData().GetNumberOfArrays()
    nodes_before = s["scene"].GetNumberOfNodes()
    with pytest.raises(CardioScarError) as error:
        s["logic"].train_and_apply(s["lge"], s["model"], _options(s, scar_rule="nsd", myocardium_labels="2"),
                                   myocardium_mask=moved)
    assert "moved labels does not lie on the left ventricle of the LGE lge:" in str(error.value)  # in the Logic's words
    assert "\n" not in str(error.value) and "options.dark_blood_lge, which skips this check" in str(error.value)
    assert s["model"].GetMesh().GetPointData().GetNumberOfArrays() == arrays_before
    assert s["scene"].GetNumberOfNodes() == nodes_before
    # the way out the message names: the Logic's dark_blood_lge reaches the check, which is skipped and recorded
    options = _options(s, scar_rule="nsd", myocardium_labels="2", dark_blood_lge=True)
    _, record = _targets_and_record(s, options, moved)
    assert record["mask_fit"]["skipped"] == "dark-blood LGE" and record["mask_fit"]["cavity_brighter_share"] < 0.85


def test_masks_are_sampled_in_world_coordinates_like_the_command_line(scene):
    """The label map on a twice finer in-plane grid gives the same targets (each LGE pixel centre
    reads the mask where it lies); moved away by a transform, the mask no longer overlaps: one line."""
    s = scene
    options = _options(s, scar_rule="psi", myocardium_labels="2")
    expected = _targets_and_record(s, options, s["labels"])[0]
    coarse = slicer.util.arrayFromVolume(s["labels"])
    fine = _labelmap_like(s["scene"], s["labels"], np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2), "fine labels")
    matrix = vtk.vtkMatrix4x4()
    s["labels"].GetIJKToRASMatrix(matrix)
    refine = np.array([[0.5, 0, 0, -0.25], [0, 0.5, 0, -0.25], [0, 0, 1, 0], [0, 0, 0, 1]])
    fine.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(slicer.util.arrayFromVTKMatrix(matrix) @ refine))
    np.testing.assert_array_equal(_targets_and_record(s, options, fine)[0], expected)
    away = s["scene"].AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[2, 3] = 1000.0
    away.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
    fine.SetAndObserveTransformNodeID(away.GetID())
    with pytest.raises(CardioScarError, match="The myocardium mask 'fine labels' does not overlap slice"):
        _targets_and_record(s, options, fine)


def test_expert_labels_of_the_label_map_node_bound_the_rule_as_on_the_command_line(scene):
    """``expert_scar_labels`` / ``expert_core_labels`` read from the myocardium's label-map node: each
    group's scar target is the experts' scar at its pixel, its core target within it (no-reflow
    always core); the record names the labels; a segmentation, or the labels without a rule, is
    refused in one line in the Logic's words, and in the panel's."""
    from test_expert_scar_labels import expert_label_map
    from CardioScarLogic.wording import in_panel_words, library_words

    s = scene
    drawn = expert_label_map(slicer.util.arrayFromVolume(s["labels"]))
    experts = _labelmap_like(s["scene"], s["labels"], drawn, "experts")
    chosen = {"scar_rule": "nsd", "myocardium_labels": "2,3,4", "expert_scar_labels": "3,4", "expert_core_labels": "4"}
    targets = {}
    for target in ("scar", "core"):
        prepared = s["logic"].prepare_training(s["lge"], s["model"], _options(s, scar_target=target, **chosen),
                                               experts).prepared
        k = np.array(SLICES)[prepared.group_slice]
        at_group = drawn[k, prepared.group_pixel[:, 1], prepared.group_pixel[:, 0]]
        targets[target] = prepared.group_targets == 1, at_group
        record = json.loads(prepared.scar_rule)
        assert (record["expert_scar_labels"], record["expert_core_labels"]) == ([3, 4], [4])
    scar, at_group = targets["scar"]
    np.testing.assert_array_equal(scar, np.isin(at_group, [3, 4]))
    core, _ = targets["core"]
    assert core[at_group == 4].all() and not core[~np.isin(at_group, [3, 4])].any() and 0 < core.mean() < scar.mean()
    segmentation = _segmentation(s["scene"], experts, {2: "Myocardium", 3: "Scar", 4: "No-reflow", 1: "Blood"})
    with pytest.raises(CardioScarError, match="options.expert_scar_labels names labels of a label map") as error:
        s["logic"].prepare_training(s["lge"], s["model"], _options(s, **chosen), segmentation)
    assert "\n" not in str(error.value)
    with pytest.raises(CardioScarError, match="^expert_scar_labels and expert_core_labels need a scar rule") as error:
        csl.ReconstructionOptions(expert_scar_labels="3,4")
    assert in_panel_words(library_words(error.value)).startswith("'Expert scar labels' and 'Expert core labels' need")


SLICES = [1, 2, 3, 4, 5, 6, 7, 8]
