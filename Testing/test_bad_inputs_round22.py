"""Round 21's leftovers, the "no silent wrong answers" ones: a training ``.npz`` whose rows of one
group carry different targets, and a checkpoint of a layout this build cannot read.

Each test is one input that trained or applied without a word before; `Documentation/bad-input.md`'s
table has a row for each (`Testing/test_slicer_bad_inputs_round22.py` for the Slicer Logic, and
`Testing/test_cli_light_refusals.py` for the training options judged with the preset's values).
Real parts: round 17's 1,500-node phantom and a model trained on it for a few epochs, real numpy
and torch files, the real command line in process.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from cardioscar.cli import main
from cardioscar.errors import CardioScarError
from cardioscar.fit.checkpoint import CHECKPOINT_FORMAT
from cardioscar.fit.training import TrainingConfig
from cardioscar.io.meshio import read_mesh
from cardioscar.logic import load_preprocessing_result, predict_on_points, train_scar_model
from conftest import assert_refused_in_one_line
from test_bad_inputs_round17 import trained  # noqa: F401 (the 1,500-node phantom and a model trained on it)


def _joined(arrays: dict) -> dict:
    """The file joined with a copy of itself whose targets are ``1 - target`` and whose group ids
    collide with the original's: what concatenating two patients' (or two stacks') files gives."""
    return {**arrays,
            "coordinates": np.concatenate([arrays["coordinates"]] * 2),
            "intensities": np.concatenate([arrays["intensities"], 1.0 - arrays["intensities"]]),
            "group_ids": np.concatenate([arrays["group_ids"]] * 2),
            "node_ids": np.concatenate([arrays["node_ids"]] * 2)}


def test_training_data_whose_groups_hold_different_targets_is_refused(trained, tmp_path, capsys):
    """Two files joined with colliding group ids trained every collided group on the mean of its
    rows' targets (0.5 for a scar pixel joined with a healthy one), exit 0. Now ``train``,
    ``fine-tune`` and the Python API (a file or an in-memory result) refuse it in one line naming
    the file, how many groups disagree, the first and its targets."""
    arrays = dict(np.load(trained["out"] / "data.npz"))
    targets, ids = arrays["intensities"].ravel(), arrays["group_ids"]
    mixed = np.unique(ids[np.abs(2 * targets - 1) > 1e-6])
    first = mixed[0]
    low, high = sorted({float(np.float32(t)) for t in (targets[ids == first][0], 1 - targets[ids == first][0])})
    fragment = (f"{mixed.size} of its {np.unique(ids).size} groups hold rows with different targets "
                f"(group {first} first: {low:g}, {high:g})")
    np.savez(tmp_path / "joined.npz", **_joined(arrays))
    assert_refused_in_one_line(["train", "--training-data", tmp_path / "joined.npz", "--output", tmp_path / "out.pth",
                                "--preset", "fast", "--max-epochs", "1"],
                               f"Training data {tmp_path / 'joined.npz'}: {fragment}", capsys, tmp_path)
    assert_refused_in_one_line(["fine-tune", "--model", trained["out"] / "model.pth", "--training-data",
                                tmp_path / "joined.npz", "--output", tmp_path / "out.pth", "--max-epochs", "1"],
                               fragment, capsys, tmp_path)
    good = load_preprocessing_result(trained["out"] / "data.npz")
    joined = _joined({"coordinates": good.coordinates, "intensities": good.intensities, "group_ids": good.group_ids,
                      "node_ids": good.node_ids})
    with pytest.raises(CardioScarError, match=rf"^The PreprocessingResult: {mixed.size} of its"):
        train_scar_model(replace(good, **joined), TrainingConfig.fast(max_epochs=1))


def test_group_targets_apart_by_float_rounding_train(trained, tmp_path):
    """Rows of one group a float32 rounding apart (a file rewritten through float64 by another tool)
    are one target, not a collision: the file loads."""
    arrays = dict(np.load(trained["out"] / "data.npz"))
    targets = arrays["intensities"].astype(np.float32)
    nudged = targets.copy()
    nudged[::2] = np.nextafter(targets[::2], np.float32(2), dtype=np.float32) * (targets[::2] < 1) \
        + targets[::2] * (targets[::2] >= 1)
    assert np.any(nudged != targets)
    np.savez(tmp_path / "rounded.npz", **{**arrays, "intensities": nudged})
    assert load_preprocessing_result(tmp_path / "rounded.npz").n_groups == np.unique(arrays["group_ids"]).size


def test_models_record_their_format_and_older_ones_still_apply(trained, tmp_path):
    """``train`` writes ``format_version`` (an int, read with weights_only). A model saved before the
    key existed (the same file without it: what earlier builds and the reference tool wrote) reads as
    the current layout and applies to the same field."""
    saved = torch.load(trained["out"] / "model.pth", weights_only=True)
    assert type(saved["format_version"]) is int and saved["format_version"] == CHECKPOINT_FORMAT == 1
    older = {key: value for key, value in saved.items() if key != "format_version"}
    torch.save(older, tmp_path / "older.pth")
    mesh = trained["paths"]["mesh"]
    for name in ("older", "current"):
        model = tmp_path / "older.pth" if name == "older" else trained["out"] / "model.pth"
        assert main(["apply", "--model", str(model), "--mesh", str(mesh), "--output", str(tmp_path / f"{name}.vtk"),
                     "--mc-samples", "2"]) == 0
    fields = [read_mesh(tmp_path / f"{name}.vtk").point_array("scar_probability") for name in ("older", "current")]
    assert np.array_equal(*fields)
    assert main(["fine-tune", "--model", str(tmp_path / "older.pth"), "--training-data", str(trained["out"] / "data.npz"),
                 "--output", str(tmp_path / "tuned.pth"), "--max-epochs", "1"]) == 0
    assert torch.load(tmp_path / "tuned.pth", weights_only=True)["format_version"] == CHECKPOINT_FORMAT


@pytest.mark.parametrize("value, fragment", [
    (CHECKPOINT_FORMAT + 1, f"has format_version {CHECKPOINT_FORMAT + 1}, newer than this CardioScar reads "
                            f"({CHECKPOINT_FORMAT}): upgrade cardioscar, or retrain with this one"),
    ("abc", "has format_version 'abc', not a whole number >= 1"),
    (True, "has format_version True, not a whole number >= 1"),
    (0, "has format_version 0, not a whole number >= 1"),
    (1.5, "has format_version 1.5, not a whole number >= 1"),
])
def test_a_model_of_a_newer_or_damaged_format_is_refused(trained, tmp_path, capsys, value, fragment):
    """A checkpoint of a newer layout (whose keys may mean other things) was read in this build's
    meaning: it had no version to tell. Now ``apply`` and ``fine-tune`` refuse one above this build's
    in one line naming the file, its version and the newest read; a version that is no whole number
    >= 1 is refused as damaged."""
    saved = torch.load(trained["out"] / "model.pth", weights_only=True)
    torch.save({**saved, "format_version": value}, tmp_path / "edited.pth")
    assert_refused_in_one_line(["apply", "--model", tmp_path / "edited.pth", "--mesh", trained["paths"]["mesh"],
                                "--output", tmp_path / "out.vtk", "--mc-samples", "2"],
                               f"{tmp_path / 'edited.pth'} {fragment}", capsys, tmp_path)
    assert_refused_in_one_line(["fine-tune", "--model", tmp_path / "edited.pth", "--training-data",
                                trained["out"] / "data.npz", "--output", tmp_path / "out.pth", "--max-epochs", "1"],
                               fragment, capsys, tmp_path)


@pytest.mark.parametrize("value, fragment", [
    (CHECKPOINT_FORMAT + 1, f"The checkpoint \\(in memory\\) has format_version {CHECKPOINT_FORMAT + 1}, newer than "
                            f"this CardioScar reads \\({CHECKPOINT_FORMAT}\\)"),
    ("2", "The checkpoint \\(in memory\\) has format_version '2', not a whole number >= 1"),
])
def test_a_checkpoint_dict_of_a_newer_or_damaged_format_is_refused_in_memory(trained, value, fragment):
    """``predict_on_points`` given a checkpoint dict (the Python API's in-memory route: one trained or
    loaded and edited in a script) skipped the ``format_version`` check that only the file loader
    ran, and predicted in this build's meaning. Now the network is built only from a layout this
    build reads; the dict without the key (an older build's) predicts the same field as the file."""
    checkpoint, points = trained["checkpoint"], trained["points"]
    with pytest.raises(CardioScarError, match=f"^{fragment}"):
        predict_on_points({**checkpoint, "format_version": value}, points, mc_samples=2, seed=0)
    older = {key: value for key, value in checkpoint.items() if key != "format_version"}
    assert np.array_equal(predict_on_points(older, points, mc_samples=2, seed=0).mean_predictions,
                          predict_on_points(checkpoint, points, mc_samples=2, seed=0).mean_predictions)


@pytest.mark.parametrize("value, fragment", [
    ("2", "has format_version '2', not a whole number >= 1 (a damaged or hand-edited file): train the model again"),
    (2, "has format_version 2, newer than this CardioScar reads (1): upgrade cardioscar"),
    (1.5, "has format_version 1.5, not a whole number >= 1"),
])
def test_an_attrivae_model_of_a_text_or_newer_format_is_refused_in_one_line(tmp_path, value, fragment):
    """The Attri-VAE loader compared ``format_version > 1`` bare: a text version (a hand-edited or
    foreign file) ended in Python's TypeError ("'>' not supported between instances of 'str' and
    'int'"), not a line naming the file. Now it is refused as the scar model's is; a file without
    the key reads as the current layout."""
    from cardioscar.attrivae.checkpoint import FORMAT, load_checkpoint as load_attrivae

    torch.save({"format": FORMAT, "format_version": value}, tmp_path / "edited.pth")
    with pytest.raises(CardioScarError) as refused:
        load_attrivae(tmp_path / "edited.pth")
    assert str(refused.value).startswith(f"--model {tmp_path / 'edited.pth'} {fragment}")
    assert "\n" not in str(refused.value)
    torch.save({"format": FORMAT}, tmp_path / "unversioned.pth")
    assert load_attrivae(tmp_path / "unversioned.pth")["format"] == FORMAT


def _reference_tool_rows(n_nodes: int = 3000, seed: int = 0) -> dict:
    """Training data laid out as the reference tool's image input writes it: nodes in a 24 mm box
    over a 12 x 12 x 3 image of 2 x 2 x 8 mm voxels holding a scar blob; each node's group is the
    voxel of its rounded continuous index and its value the voxel of the floored one (the tool's
    half-voxel shift), min-max scaled; the documented keys only (no ``format_version``)."""
    rng = np.random.default_rng(seed)
    spacing = np.array([2.0, 2.0, 8.0])
    shape = np.array([12, 12, 3])
    points = rng.uniform(0.0, (shape - 1) * spacing, size=(n_nodes, 3))
    index = points / spacing
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    image = np.exp(-((i - 4.0) ** 2 + (j - 7.0) ** 2) / 8.0) * (k + 1)
    values = image[tuple(np.floor(index).astype(int).T)]
    group_ids = np.ravel_multi_index(tuple(np.rint(index).astype(int).T), shape)
    order = np.argsort(group_ids, kind="stable")
    low, high = points.min(axis=0), points.max(axis=0)
    return {"coordinates": ((points - low) / (high - low))[order].astype(np.float32),
            "intensities": ((values - values.min()) / (values.max() - values.min()))[order, None].astype(np.float32),
            "group_ids": group_ids[order].astype(np.int64),
            "group_sizes": np.unique(group_ids, return_counts=True)[1].astype(np.int64),
            "scaler_min": low, "scaler_max": high}


def test_the_reference_tools_training_data_still_trains_with_a_warning(tmp_path, caplog):
    """The reference tool's image input groups a node by its rounded voxel but reads its value from
    the floor one, so most of its groups hold rows with different targets. Round 22's check refused
    such files as joined or damaged, where earlier builds trained them (on each group's mean target)
    and the documentation says its files load. A file without ``format_version`` is trained again,
    with a warning naming the file and what to do; the same rows in our layout are still refused."""
    arrays = _reference_tool_rows()
    targets, ids = arrays["intensities"].ravel(), arrays["group_ids"]
    mixed = sum(np.ptp(targets[ids == group]) > 1e-6 for group in np.unique(ids))
    assert mixed > np.unique(ids).size // 2
    np.savez(tmp_path / "reference.npz", **arrays)
    with caplog.at_level("WARNING", logger="cardioscar.logic"):
        result = load_preprocessing_result(tmp_path / "reference.npz")
    assert f"{tmp_path / 'reference.npz'}: {mixed} of its {np.unique(ids).size} groups hold rows with different " \
           "targets" in caplog.text and "re-run `cardioscar prepare`" in caplog.text
    checkpoint = train_scar_model(result, TrainingConfig.fast(max_epochs=1))
    assert checkpoint["dataset_info"]["n_groups"] == np.unique(ids).size
    assert main(["train", "--training-data", str(tmp_path / "reference.npz"), "--output", str(tmp_path / "ref.pth"),
                 "--preset", "fast", "--max-epochs", "1", "--no-progress"]) == 0
    np.savez(tmp_path / "ours.npz", **arrays, format_version=np.int64(2))
    with pytest.raises(CardioScarError, match="groups hold rows with different targets"):
        load_preprocessing_result(tmp_path / "ours.npz")
