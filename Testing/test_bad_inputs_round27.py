"""Round 27 of the bad-input review: last session's leftovers that a user trips on (the batch script's
warning of a mesh in pieces said after the training, a ``format_version`` of 2.0 refused, `aha` finding
a mesh's parts twice). `Documentation/bad-input.md` has a row for each bad input
(`Testing/test_slicer_bad_inputs_round27.py` for the Slicer Logic and panel). Real parts: the 1,500-node
phantom and its halves written to real VTK files (round 26's), the batch script in process, real
checkpoint and ``.npz`` files.
"""

from __future__ import annotations

import logging

import pytest

from cardioscar.errors import CardioScarError
from test_bad_inputs_round26 import halves  # noqa: F401 (the phantom whole and in two halves)
from test_batch_script import _load_script


def _batch_of_halves(halves, tmp_path, *options: str) -> list[str]:
    """The batch script's arguments for the halves: one epoch of the documented preset (the shortest
    training the script allows: that preset does not retry), two slices, then ``options``."""
    return ["--volume", str(halves["out"] / "phantom_lge.nii.gz"), "--mesh", str(halves["halves"]), "--slices", "0,3",
            "--preset", "documented", "--max-epochs", "1", "--threads", "1", "--no-progress",
            "--inference-mc-samples", "2", "--output", str(tmp_path / "scar.vtk"), *options]


def _apart(caplog) -> list[tuple[int, str]]:
    return [(i, record.getMessage()) for i, record in enumerate(caplog.records) if "falls apart" in record.getMessage()]


def test_the_batch_script_warns_of_a_mesh_in_pieces_before_its_training_once(halves, tmp_path, caplog):
    """The batch script's export of an LV in two halves said that it falls apart only after the
    training (a long run's end), as a cohort row no longer does. Now the warning comes with the
    script's checks before the training, of the user's mesh, and is not said again after it."""
    caplog.set_level(logging.INFO)
    assert _load_script().run(_batch_of_halves(halves, tmp_path, "--export-opencarp", str(tmp_path / "heart"))) == 0
    training = next(i for i, record in enumerate(caplog.records)
                    if record.getMessage().startswith("CardioScar: training on"))
    [(said, message)] = _apart(caplog)
    assert said < training and message.startswith("halves.vtk falls apart: ") and "a simulator conducts" in message
    assert (tmp_path / "heart.elem").exists()


def test_the_batch_scripts_aha_and_channel_search_warn_of_pieces_before_the_training(halves, tmp_path, caplog,
                                                                                      monkeypatch):
    """The same for the AHA and the channel search (the run stopped where the training starts: the
    AHA's bull's-eye alone takes seconds), each with what the gap does to it."""
    import cardioscar.logic

    def stop(*args, **kwargs):
        raise CardioScarError("stopped before the training (the test reads the script's checks only)")

    monkeypatch.setattr(cardioscar.logic, "train_scar_model", stop)
    rv = ",".join(f"{c:g}" for c in halves["options"].rv_point)
    assert _load_script().run(_batch_of_halves(halves, tmp_path, "--channels-dir", str(tmp_path / "channels"),
                                               "--aha-dir", str(tmp_path / "aha"), "--rv-point", rv)) == 2
    said = [message for _, message in _apart(caplog)]
    assert len(said) == 2 and all(message.startswith("halves.vtk falls apart: ") for message in said), said
    assert "the channel search finds no path" in said[0] and "the AHA analysis reads" in said[1], said


def test_a_format_version_stored_as_a_whole_float_reads_as_that_version(tmp_path):
    """A ``format_version`` of 2.0 (a file rewritten by a tool whose numbers are all floats) was refused
    as "2.0, not a whole number >= 1", which it is. Each loader now reads it as the version it is (the
    training data's ``.npz``, a scar model, an Attri-VAE model); a float that is no whole number (2.5)
    is still refused as damaged, and a whole one above the newest as newer."""
    import numpy as np
    import torch

    from cardioscar.attrivae.checkpoint import FORMAT, load_checkpoint as load_attrivae
    from cardioscar.fit.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
    from cardioscar.logic import TRAINING_DATA_FORMAT, load_preprocessing_result
    from test_bad_inputs_round22 import _reference_tool_rows
    from test_checkpoint import make_checkpoint

    rows = _reference_tool_rows(n_nodes=200)
    rows.update(group_ids=np.arange(200), group_sizes=np.ones(200, dtype=np.int64))
    np.savez(tmp_path / "float.npz", **rows, format_version=np.float64(TRAINING_DATA_FORMAT))
    assert load_preprocessing_result(tmp_path / "float.npz").n_groups == 200
    save_checkpoint({**make_checkpoint(hidden=8, layers=2)[1], "format_version": float(CHECKPOINT_FORMAT)},
                    tmp_path / "model.pth")
    assert load_checkpoint(tmp_path / "model.pth")["hyperparameters"]["hidden_dim"] == 8
    torch.save({"format": FORMAT, "format_version": 1.0}, tmp_path / "attrivae.pth")
    assert load_attrivae(tmp_path / "attrivae.pth")["format"] == FORMAT
    for value, fragment in ((2.5, "has format_version 2.5, not a whole number >= 1 (a damaged or hand-edited file)"),
                            (3.0, "has format_version 3.0, newer than this CardioScar reads (2)")):
        np.savez(tmp_path / "edited.npz", **rows, format_version=np.float64(value))
        with pytest.raises(CardioScarError) as refused:
            load_preprocessing_result(tmp_path / "edited.npz")
        assert str(refused.value).startswith(f"Training data {tmp_path / 'edited.npz'} {fragment}"), refused.value


def test_the_aha_finds_the_meshs_parts_once(halves, monkeypatch, warnings_of_cardioscar):
    """`aha` found the mesh's connected parts twice, for its debris check and again for its warning of a
    mesh in pieces: the same question of the same cells. Once now, and the halves are still warned of
    (the whole mesh is not)."""
    import cardioscar.aha.islands as islands
    from cardioscar.aha import analyse_mesh
    from cardioscar.io.meshio import read_mesh

    real, asked = islands.node_parts, []

    def counted(*args):  # the real function, its calls counted
        asked.append(args)
        return real(*args)

    monkeypatch.setattr(islands, "node_parts", counted)
    for name in ("halves", "whole"):
        asked.clear()
        warnings_of_cardioscar.clear()
        analyse_mesh(read_mesh(halves[name]), halves["options"])
        assert len(asked) == 1, name
        assert len([m for m in warnings_of_cardioscar if "falls apart" in m]) == (name == "halves"), name
