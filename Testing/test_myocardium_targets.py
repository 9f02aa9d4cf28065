"""Myocardium-aware targets (issue 18, item 1): pixels outside the myocardium carry no constraint.

Real files of the segmented phantom family (a scar-fraction map that is 0 outside the myocardium,
its 0/1 myocardium mask and its EMIDEC-style label map: 0 background, 1 blood, 2 myocardium,
3 scar), through the real command line and the Python API."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import run_cli_in_process, scar_free_label_map

from cardioscar.errors import CardioScarError
from cardioscar.logic import PreprocessingRequest, load_preprocessing_result, prepare_training_data


def _myocardium(paths) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(paths["myocardium_mask"]))) != 0


def test_label_map_with_myocardium_labels_drops_every_pixel_outside(segmented, tmp_path):
    out = tmp_path / "labels.npz"
    done = run_cli_in_process("prepare", "--mesh", segmented["mesh"], "--image", segmented["label_map"],
                              "--scar-labels", "3", "--myocardium-labels", "2,3", "--output", out)
    assert done.returncode == 0, done.stderr
    data = load_preprocessing_result(out)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(segmented["label_map"])))
    k, (i, j) = data.group_slice, data.group_pixel.T
    assert np.isin(labels[k, j, i], (2, 3)).all()  # every group is a myocardium pixel
    assert set(np.unique(data.group_targets)) <= {0.0, 1.0}
    plain = load_preprocessing_result(_prepare_plain(segmented, tmp_path))
    assert data.n_groups < plain.n_groups
    # the dropped counts are the pixels of each slice that are not myocardium
    expected = [int((~np.isin(labels[s], (2, 3))).sum()) for s in range(labels.shape[0])]
    assert data.dropped_outside_myocardium.tolist() == expected
    assert data.myocardium_source == "labels 2,3"


def _prepare_plain(segmented, tmp_path):
    out = tmp_path / "plain.npz"
    done = run_cli_in_process("prepare", "--mesh", segmented["mesh"], "--image", segmented["label_map"],
                              "--scar-labels", "3", "--output", out)
    assert done.returncode == 0, done.stderr
    return out


def test_scar_map_with_a_mask_file_equals_the_label_route(segmented):
    """The fraction map cut by the mask file: the same groups as the label map cut by its labels,
    and no group in a pixel the mask excludes (where the map is 0 and means 'no data')."""
    by_mask = prepare_training_data(PreprocessingRequest(mesh_path=segmented["mesh"], image_path=segmented["image"],
                                                         myocardium_mask=segmented["myocardium_mask"]))
    by_labels = prepare_training_data(PreprocessingRequest(mesh_path=segmented["mesh"], image_path=segmented["label_map"],
                                                           scar_labels=[3], myocardium_labels=[2, 3]))
    mask = _myocardium(segmented)
    assert mask[by_mask.group_slice, by_mask.group_pixel[:, 1], by_mask.group_pixel[:, 0]].all()
    np.testing.assert_array_equal(by_mask.group_pixel, by_labels.group_pixel)
    np.testing.assert_array_equal(by_mask.node_ids, by_labels.node_ids)
    assert by_mask.myocardium_source.startswith("mask ")


def test_a_mask_on_another_grid_is_sampled_at_the_pixel_centres(segmented, tmp_path):
    """A mask resampled to half the pixel size (same patient frame) keeps the same groups."""
    mask = sitk.ReadImage(str(segmented["myocardium_mask"]))
    finer = sitk.Resample(mask, [2 * n for n in mask.GetSize()[:2]] + [mask.GetSize()[2]], sitk.Transform(),
                          sitk.sitkNearestNeighbor, mask.GetOrigin(),
                          [mask.GetSpacing()[0] / 2, mask.GetSpacing()[1] / 2, mask.GetSpacing()[2]],
                          mask.GetDirection(), 0, mask.GetPixelID())
    # origin of the finer grid: its first voxel centre a quarter pixel before the coarse one
    direction = np.array(mask.GetDirection()).reshape(3, 3)
    shift = direction @ np.array([-mask.GetSpacing()[0] / 4, -mask.GetSpacing()[1] / 4, 0.0])
    finer.SetOrigin(tuple(np.array(mask.GetOrigin()) + shift))
    finer = sitk.Resample(mask, finer, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    path = tmp_path / "finer_mask.nii.gz"
    sitk.WriteImage(finer, str(path))
    coarse = prepare_training_data(PreprocessingRequest(mesh_path=segmented["mesh"], image_path=segmented["image"],
                                                        myocardium_mask=segmented["myocardium_mask"]))
    fine = prepare_training_data(PreprocessingRequest(mesh_path=segmented["mesh"], image_path=segmented["image"],
                                                      myocardium_mask=path))
    np.testing.assert_array_equal(coarse.group_pixel, fine.group_pixel)


@pytest.mark.parametrize("args,message", [
    (("--scar-labels", "3", "--myocardium-labels", "2"), "--scar-labels 3 not in --myocardium-labels 2"),
    (("--scar-labels", "7", "--myocardium-labels", "7,8"), "match no pixel of the chosen slices (labels present: 0, 1, 2, 3)"),
    (("--myocardium-labels", "2,3"), "give --scar-labels too"),
])
def test_bad_combinations_are_one_line_errors(segmented, tmp_path, args, message):
    done = run_cli_in_process("prepare", "--mesh", segmented["mesh"], "--image", segmented["label_map"], *args,
                              "--output", tmp_path / "x.npz")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert not (tmp_path / "x.npz").exists()


def test_a_label_map_given_as_a_mask_without_its_labels_is_refused(segmented, tmp_path):
    """EMIDEC's map as --myocardium-mask without --myocardium-labels: every non-zero voxel, the
    cavity's too, was myocardium, silently (P022's n-SD graded 88 pixels for a 45 ml infarct).
    The wall's labels alone (no cavity among them) still pass as a mask."""
    request = PreprocessingRequest(mesh_path=segmented["mesh"], image_path=segmented["image"],
                                   myocardium_mask=segmented["label_map"])
    with pytest.raises(CardioScarError, match=r"--myocardium-mask .* is a label map \(labels 1,2,3\) given without "
                                              r"--myocardium-labels.* label 1 fills the inside .*give the myocardium's "
                                              r"labels with --myocardium-labels"):
        prepare_training_data(request)
    labels = sitk.ReadImage(str(segmented["label_map"]))
    wall = sitk.GetArrayFromImage(labels)
    wall[wall == 1] = 0  # the wall's labels 2, 3 and no cavity: a mask of the whole wall
    image = sitk.GetImageFromArray(wall)
    image.CopyInformation(labels)
    wall_path = tmp_path / "wall_labels_only.nii.gz"
    sitk.WriteImage(image, str(wall_path))
    by_wall = prepare_training_data(dataclasses.replace(request, myocardium_mask=wall_path))
    by_mask = prepare_training_data(dataclasses.replace(request, myocardium_mask=segmented["myocardium_mask"]))
    np.testing.assert_array_equal(by_wall.group_pixel, by_mask.group_pixel)


def test_a_mask_that_misses_the_slices_is_refused(segmented, tmp_path):
    mask = sitk.ReadImage(str(segmented["myocardium_mask"]))
    mask.SetOrigin(tuple(np.array(mask.GetOrigin()) + 1000.0))
    far = tmp_path / "far.nii.gz"
    sitk.WriteImage(mask, str(far))
    done = run_cli_in_process("prepare", "--mesh", segmented["mesh"], "--image", segmented["image"],
                              "--myocardium-mask", far, "--output", tmp_path / "x.npz")
    assert done.returncode == 2 and "does not overlap slice" in done.stderr, done.stderr


def test_a_scar_free_label_map_with_its_myocardium_trains_a_scar_free_heart(segmented, tmp_path):
    """Scar labels that match no pixel were refused whatever else was given, so a normal patient's
    expert map could not be prepared (nor a cohort with normal controls finish). With the myocardium
    given they are a scar-free heart, said in a warning; without it they stay an error that says
    how a scar-free heart goes through."""
    labels = scar_free_label_map(segmented["label_map"], tmp_path)
    out = tmp_path / "healthy.npz"
    done = run_cli_in_process("prepare", "--mesh", segmented["mesh"], "--image", labels, "--scar-labels", "3,4",
                              "--myocardium-labels", "2,3,4", "--output", out)
    assert done.returncode == 0, done.stderr
    assert "Scar labels 3,4 match no pixel" in done.stderr and "a scar-free heart" in done.stderr
    data = load_preprocessing_result(out)
    assert data.n_groups > 100 and not data.group_targets.any()
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(labels)))
    k, (i, j) = data.group_slice, data.group_pixel.T
    assert (array[k, j, i] == 2).all()  # the groups are the myocardium's pixels, all healthy
    refused = run_cli_in_process("prepare", "--mesh", segmented["mesh"], "--image", labels, "--scar-labels", "3,4",
                                 "--output", tmp_path / "x.npz")
    assert refused.returncode == 2 and "give its myocardium too" in refused.stderr, refused.stderr
    assert not (tmp_path / "x.npz").exists()
    # a mistyped scar label beside a map that holds scar (label 3, a myocardium label) is no scar-free
    # heart: the infarct would train as healthy
    typo = run_cli_in_process("prepare", "--mesh", segmented["mesh"], "--image", segmented["label_map"],
                              "--scar-labels", "4", "--myocardium-labels", "2,3,4", "--output", tmp_path / "x.npz")
    assert typo.returncode == 2 and "myocardium labels present are 2, 3" in typo.stderr, typo.stderr
    assert not (tmp_path / "x.npz").exists()
