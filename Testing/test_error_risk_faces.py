"""scar_error_risk's border term on the faces that read a checkpoint: a damaged
``constraint_points_lps`` entry is set aside with one warning (the value term alone, as for
files without it) instead of a traceback or a risk near 1 on every node; a fine-tuned model
records the constrained nodes of the data it was tuned on."""

import logging

import numpy as np
import pytest
import torch

from cardioscar.cli import main
from cardioscar.fit.checkpoint import save_checkpoint
from cardioscar.io.meshio import read_mesh
from cardioscar.logic import (CONSTRAINT_POINTS_KEY, checkpoint_constraint_points, constraint_points,
                              load_preprocessing_result, load_trained_model, predict_on_points)
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom

from conftest import trained_small_phantom


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The 1,500-node phantom, prepared and trained by the real CLI (to convergence: 76 nodes >= 0.5,
    so a border runs through the mesh), and its checkpoint."""
    out = tmp_path_factory.mktemp("risk_faces")
    phantom, paths = trained_small_phantom(out, max_epochs=400)
    return out, paths, load_trained_model(out / "model.pth")


def _risk(checkpoint: dict, points: np.ndarray) -> np.ndarray:
    return predict_on_points(checkpoint, points, mc_samples=4, seed=0).error_risk


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and CONSTRAINT_POINTS_KEY in r.getMessage()]


DAMAGED = {
    "sparse": lambda p: p.to_sparse(),  # was: TypeError traceback
    "integer": lambda p: p.round().to(torch.int64),
    "nan": lambda p: torch.full_like(p, float("nan")),
    "two columns": lambda p: p[:, :2].clone(),
    "a list": lambda p: p.tolist(),
    "shifted 1 m": lambda p: p + 1000.0,  # was: the border spread 100 mm, risk ~1 on every node near a border
    "scaled x1000": lambda p: p * 1000.0,
    "more points than rows": lambda p: p.repeat(3, 1),
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_entry_is_set_aside_with_one_warning(trained, damage, caplog):
    out, paths, checkpoint = trained
    points = read_mesh(paths["mesh"]).points_lps()
    older = {key: value for key, value in checkpoint.items() if key != CONSTRAINT_POINTS_KEY}
    value_only = _risk(older, points)
    assert np.abs(_risk(checkpoint, points) - value_only).max() > 0.1  # the border term matters here
    damaged = {**older, CONSTRAINT_POINTS_KEY: DAMAGED[damage](checkpoint[CONSTRAINT_POINTS_KEY])}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cardioscar"):
        risk = _risk(damaged, points)
    np.testing.assert_array_equal(risk, value_only)
    assert len(_warnings(caplog)) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cardioscar"):
        _risk(older, points)
    assert not _warnings(caplog)  # a file without the entry (older, the reference tool's) is not damaged


@pytest.mark.parametrize("dtype, tolerance", [(torch.bfloat16, 0.02), (torch.float16, 0.002), (torch.float64, 1e-9)])
def test_apply_reads_the_points_in_another_float_type(trained, dtype, tolerance, tmp_path, capsys):
    """A checkpoint whose tensors were cast (e.g. to save space) still has its border term; bfloat16
    crashed `apply` with a traceback (numpy has no bfloat16). No warning about the entry: read from
    the command's stderr (its own handler; `main` keeps its records from caplog's root logger, so
    caplog read nothing whatever apply said)."""
    out, paths, checkpoint = trained
    cast = {**checkpoint, CONSTRAINT_POINTS_KEY: checkpoint[CONSTRAINT_POINTS_KEY].to(dtype)}
    save_checkpoint(cast, tmp_path / "cast.pth")
    capsys.readouterr()
    assert main(["apply", "--model", str(tmp_path / "cast.pth"), "--mesh", str(paths["mesh"]), "--output",
                 str(tmp_path / "pred.vtk"), "--mc-samples", "4", "--seed", "0"]) == 0
    assert [line for line in capsys.readouterr().err.splitlines() if CONSTRAINT_POINTS_KEY in line] == []
    written = read_mesh(tmp_path / "pred.vtk").point_array("scar_error_risk")
    assert written.dtype == np.float64
    # the same risk as from the float32 points, but for the rounding (bfloat16: 0.25 mm at 50 mm)
    expected = _risk(checkpoint, read_mesh(paths["mesh"]).points_lps())
    np.testing.assert_allclose(written, expected, atol=tolerance)


def test_a_fine_tuned_model_records_the_nodes_its_own_data_constrains(trained, tmp_path):
    """The field a fine-tuned model gives is fitted to the new data (another patient's mesh, as a
    rule), so its border is placed by the new data's groups, not by the base model's."""
    out, _, base = trained
    phantom = make_phantom(PhantomConfig(target_nodes=1500, seed=5))
    paths = write_phantom(phantom, tmp_path)
    assert main(["prepare", "--mesh", str(paths["mesh"]), "--image", str(paths["image"]),
                 "--slice-thickness-padding", "2", "--output", str(tmp_path / "data.npz")]) == 0
    assert main(["fine-tune", "--model", str(out / "model.pth"), "--training-data", str(tmp_path / "data.npz"),
                 "--output", str(tmp_path / "tuned.pth"), "--preset", "fast", "--max-epochs", "3"]) == 0
    tuned = checkpoint_constraint_points(load_trained_model(tmp_path / "tuned.pth"))
    new = constraint_points(load_preprocessing_result(tmp_path / "data.npz"))
    assert len(tuned) != len(checkpoint_constraint_points(base))
    np.testing.assert_allclose(np.sort(tuned, axis=0), np.sort(new, axis=0), atol=1e-4)
