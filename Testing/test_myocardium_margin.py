"""The myocardium margin (``--myocardium-margin``, ``restrict_to_myocardium(margin_px=...)``):
pixels just outside the myocardium read the wall next to them instead of carrying no constraint.

Hand-made slices for the exact rule, then the real segmented phantom's files through the real
command line (a tetrahedral mesh up to one pixel off the image's myocardium) and through the
Slicer Logic on real MRML (slicer-core), which must give the command line's groups."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import run_cli_in_process

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CardioScar"))
import CardioScarLogic as csl  # noqa: E402  (needs slicer-core)

from cardioscar.errors import CardioScarError
from cardioscar.logic import PreprocessingRequest, load_preprocessing_result, prepare_training_data
from cardioscar.prepare.myocardium import restrict_to_myocardium
from cardioscar.prepare.slices import SliceLayer


def _layer(values: np.ndarray) -> SliceLayer:
    return SliceLayer(values=values, origin=np.zeros(3), axis_i=np.array([1.0, 0, 0]), axis_j=np.array([0, 1.0, 0]),
                      spacing=(1.0, 1.0), half_thickness=2.0, label="s0")


def test_margin_gives_nearby_pixels_the_nearest_myocardium_value_and_leaves_far_ones_nan():
    values = np.zeros((7, 7))
    values[3, 1:4] = [0.2, 0.9, 0.4]          # a myocardium row of three pixels
    values[0, 0] = np.nan                     # no data at all: stays NaN whatever the margin
    mask = np.zeros((7, 7), bool)
    mask[3, 1:4] = True
    (plain,), plain_report = restrict_to_myocardium([_layer(values)], [mask], "test")
    (wide,), wide_report = restrict_to_myocardium([_layer(values)], [mask], "test", margin_px=1)
    assert np.isnan(plain.values[~mask]).all()
    np.testing.assert_array_equal(wide.values[mask], values[mask])
    # the four neighbours of each end pixel and of the middle one read that pixel
    assert wide.values[3, 0] == 0.2 and wide.values[2, 1] == 0.2 and wide.values[4, 1] == 0.2
    assert wide.values[2, 2] == 0.9 and wide.values[4, 2] == 0.9
    assert wide.values[3, 4] == 0.4 and wide.values[2, 3] == 0.4
    assert np.isnan(wide.values[2, 0]) and np.isnan(wide.values[3, 5]) and np.isnan(wide.values[0, 0])  # beyond 1 px
    assert np.isfinite(wide.values).sum() == 3 + 8
    # the report still counts them as outside the myocardium (their own value is not used)
    np.testing.assert_array_equal(wide_report.dropped_pixels, plain_report.dropped_pixels)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_margin_must_be_whole_pixels(bad):
    with pytest.raises(CardioScarError, match=r"--myocardium-margin .* whole number of pixels >= 0"):
        restrict_to_myocardium([_layer(np.zeros((3, 3)))], [np.ones((3, 3), bool)], "test", margin_px=bad)


def test_margin_needs_a_myocardium(tmp_path):
    with pytest.raises(CardioScarError, match="--myocardium-margin widens a myocardium"):
        PreprocessingRequest(mesh_path=tmp_path / "m.vtu", image_path=tmp_path / "i.nii.gz", myocardium_margin_px=1)


def test_margin_with_a_scar_rule_is_refused_not_ignored(tmp_path):
    """A scar rule leaves every pixel outside the myocardium without a value, so a margin could
    widen nothing: the library and the Slicer Logic's options refuse it rather than ignore it."""
    from cardioscar.lge.prepare import ScarRuleRequest

    rule = ScarRuleRequest(rule="psi", myocardium_path=tmp_path / "labels.nii.gz", myocardium_labels=[2])
    with pytest.raises(CardioScarError, match="--myocardium-margin has no effect with --scar-rule"):
        PreprocessingRequest(mesh_path=tmp_path / "m.vtu", image_path=tmp_path / "i.nii.gz", scar_rule=rule,
                             myocardium_mask=tmp_path / "labels.nii.gz", myocardium_labels=[2], myocardium_margin_px=1)
    with pytest.raises(CardioScarError, match="myocardium margin has no effect with a scar rule"):
        csl.ReconstructionOptions(scar_rule="psi", myocardium_labels="2", myocardium_margin=1)


def test_command_line_margin_adds_groups_only_next_to_the_myocardium(segmented, tmp_path):
    """The wall nodes the mesh puts in pixels next to the image's myocardium get groups, whose
    targets are the nearest myocardium pixel's value; nothing farther away does; the .npz says so."""
    runs = {}
    for margin in (0, 1):
        out = tmp_path / f"m{margin}.npz"
        done = run_cli_in_process("prepare", "--mesh", segmented["mesh"], "--image", segmented["image"],
                                  "--myocardium-mask", segmented["myocardium_mask"], "--myocardium-margin", margin,
                                  "--output", out)
        assert done.returncode == 0, done.stderr
        runs[margin] = load_preprocessing_result(out)
    plain, wide = runs[0], runs[1]
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(segmented["myocardium_mask"]))) != 0
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(segmented["image"])))
    key = lambda r: set(zip(r.group_slice.tolist(), r.group_pixel[:, 0].tolist(), r.group_pixel[:, 1].tolist()))
    added = key(wide) - key(plain)
    assert key(plain) <= key(wide) and len(added) > 20
    assert np.setdiff1d(plain.node_ids, wide.node_ids).size == 0 and np.unique(wide.node_ids).size > np.unique(plain.node_ids).size
    targets = dict(zip(zip(wide.group_slice.tolist(), wide.group_pixel[:, 0].tolist(), wide.group_pixel[:, 1].tolist()),
                       wide.group_targets.tolist()))
    for k, i, j in added:
        assert not mask[k, j, i]
        near = [(jj, ii) for jj in range(j - 1, j + 2) for ii in range(i - 1, i + 2)
                if (jj - j) ** 2 + (ii - i) ** 2 <= 1 and 0 <= jj < mask.shape[1] and 0 <= ii < mask.shape[2]
                and mask[k, jj, ii]]
        assert near, "a filled pixel lies more than one pixel from the myocardium"
        assert any(targets[(k, i, j)] == pytest.approx(float(image[k, jj, ii]), abs=1e-6) for jj, ii in near)
    assert wide.myocardium_source.endswith("margin 1 px") and plain.myocardium_source.startswith("mask ")


def test_slicer_logic_margin_groups_like_the_library(segmented):
    expected = prepare_training_data(PreprocessingRequest(
        mesh_path=segmented["mesh"], image_path=segmented["label_map"], scar_labels=[3], myocardium_labels=[2, 3],
        myocardium_margin_px=1))
    context = csl.create_scene()
    model = csl.load_model(context.scene, segmented["mesh"])
    labels = csl.load_volume(context.scene, segmented["label_map"], labelmap=True)
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    options = dict(preset="fast", max_epochs=2, seed=7, num_threads=1, scar_labels="3", myocardium_labels="2,3")
    plain = logic.prepare_training(labels, model, csl.ReconstructionOptions(**options)).prepared
    wide = logic.prepare_training(labels, model, csl.ReconstructionOptions(**options, myocardium_margin=1)).prepared
    for key in ("group_ids", "node_ids", "group_slice", "group_pixel"):
        np.testing.assert_array_equal(getattr(wide, key), getattr(expected, key), err_msg=key)
    np.testing.assert_allclose(wide.intensities, expected.intensities, atol=1e-6)
    assert wide.n_groups > plain.n_groups
    with pytest.raises(CardioScarError, match="^myocardium_margin "):  # the field's name, as typed
        csl.ReconstructionOptions(**options, myocardium_margin=-1)


def test_slicer_logic_margin_without_a_myocardium_is_refused(segmented):
    """As ``cardioscar prepare``: a margin on a plain scar map (nothing says where the myocardium
    is) would change nothing; the Logic (panel, console, batch script) says so instead."""
    context = csl.create_scene()
    model = csl.load_model(context.scene, segmented["mesh"])
    image = csl.load_volume(context.scene, segmented["image"])
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    with pytest.raises(CardioScarError, match="Myocardium margin 1 px widens a myocardium"):
        logic.prepare_training(image, model, csl.ReconstructionOptions(myocardium_margin=1))
    assert logic.prepare_training(image, model, csl.ReconstructionOptions()).prepared.n_groups > 0
