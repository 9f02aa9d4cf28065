"""The panel's worker process (CardioScarLogic.background / .worker) with real processes.

Real MRML (slicer-core), real files, a real child Python running the real library and torch:
the same seed gives the same result as the synchronous Logic the console and batch mode use,
the progress reaches the parent line by line, Stop ends the process at once and leaves the
scene as it was, and a failed worker writes nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import vtk  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.background import BackgroundRun, parse_line  # noqa: E402
from CardioScarLogic import worker  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from test_slicer_logic import case, scene  # noqa: E402,F401  (the same phantom, loaded through MRML)


def _options(case, **overrides):
    values = dict(preset="fast", max_epochs=15, half_thickness=case["half"], seed=11, num_threads=1, threshold=0.5,
                  slice_indices="0,2,4", force_cpu=True)
    values.update(overrides)
    return csl.ReconstructionOptions(**values)


def _arrays(model):
    data = model.GetMesh().GetPointData()
    return {data.GetArrayName(i) for i in range(data.GetNumberOfArrays())}


def _wait(run: BackgroundRun, timeout: float = 120.0) -> list:
    messages, deadline = [], time.monotonic() + timeout
    while run.running and time.monotonic() < deadline:
        messages += run.messages()
        time.sleep(0.05)
    assert not run.running, "the worker did not end in time"
    return messages + run.messages()


def test_worker_result_equals_the_synchronous_logic_for_the_same_seed(case, scene):
    context, volume, model = scene
    logic = csl.CardioScarLogic(context.scene)
    before = set(_arrays(model))
    run = BackgroundRun.training(logic, volume, model, _options(case))
    messages = _wait(run)
    assert not run.folder.exists() or any(run.folder.iterdir())
    assert set(_arrays(model)) == before, "nothing is written while the worker runs"
    background = run.finish(model)
    assert not run.folder.exists(), "the job folder is removed"

    progress = [m for m in messages if m.kind == "progress"]
    assert progress and progress[-1].fields["max_epochs"] == 15 and progress[-1].fields["epoch"] >= 1
    assert "loss" in progress[-1].text and progress[-1].text.startswith("epoch ")
    assert any(m.kind == "done" for m in messages) and background.device.startswith("cpu")

    synchronous = csl.CardioScarLogic(context.scene).train_and_apply(volume, model, _options(case))
    np.testing.assert_array_equal(background.probability, synchronous.probability)
    np.testing.assert_array_equal(background.uncertainty, synchronous.uncertainty)
    np.testing.assert_array_equal(background.binary, synchronous.binary)
    for name, tensor in synchronous.checkpoint["model_state_dict"].items():
        assert torch.equal(tensor, background.checkpoint["model_state_dict"][name]), name
    assert background.checkpoint["history"]["train_loss"] == synchronous.checkpoint["history"]["train_loss"]
    assert logic.last_checkpoint is background.checkpoint  # "Save model" saves the worker's model
    assert [row[0] for row in background.summary] == [row[0] for row in synchronous.summary]


def test_stop_ends_the_worker_at_once_and_leaves_the_scene_as_it_was(case, scene):
    context, volume, model = scene
    nodes_before, arrays_before = context.scene.GetNumberOfNodes(), _arrays(model)
    run = BackgroundRun.training(csl.CardioScarLogic(context.scene), volume, model,
                                 _options(case, max_epochs=100000, early_stopping_patience=100000))
    deadline = time.monotonic() + 120
    while not any(m.kind == "progress" for m in run.messages()):  # it is training now
        assert run.running and time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    run.stop()
    assert time.monotonic() - started < 5.0
    assert run._process.poll() is not None and not run.folder.exists()
    assert _arrays(model) == arrays_before and "scar_probability" not in arrays_before
    assert context.scene.GetNumberOfNodes() == nodes_before
    with pytest.raises(CardioScarError):
        run.finish(model)
    run.stop()  # twice is harmless


def test_a_worker_that_fails_reports_one_line_and_writes_nothing(case, scene, tmp_path):
    context, volume, model = scene
    logic = csl.CardioScarLogic(context.scene)
    saved = tmp_path / "model.pth"
    logic.train_and_apply(volume, model, _options(case, max_epochs=3))
    logic.save_model(saved)
    probability = model.GetMesh().GetPointData().GetArray("scar_probability")
    before = vtk.util.numpy_support.vtk_to_numpy(probability).copy()
    run = BackgroundRun.prediction(logic, saved, model, _options(case))
    saved.write_bytes(b"not a model any more")  # damaged after the check, before the worker reads it
    _wait(run)
    with pytest.raises(CardioScarError) as error:
        run.finish(model)
    assert "\n" not in str(error.value) and str(error.value)
    after = vtk.util.numpy_support.vtk_to_numpy(model.GetMesh().GetPointData().GetArray("scar_probability"))
    np.testing.assert_array_equal(before, after)


def test_a_bad_slice_index_fails_before_any_process_starts(case, scene):
    context, volume, model = scene
    with pytest.raises(CardioScarError, match="out of range|valid"):
        BackgroundRun.training(csl.CardioScarLogic(context.scene), volume, model, _options(case, slice_indices="0,99"))


def test_the_worker_ends_itself_when_its_parent_goes(case, scene):
    """The parent's end closes the worker's stdin (however the parent ends); closing it here
    stands for that."""
    context, volume, model = scene
    run = BackgroundRun.training(csl.CardioScarLogic(context.scene), volume, model,
                                 _options(case, max_epochs=100000, early_stopping_patience=100000))
    try:
        run._process.stdin.close()
        run._process.wait(timeout=30)
        assert run._process.returncode == 3
    finally:
        run.stop()


def test_report_lines_and_free_text_are_told_apart():
    message = parse_line(worker.MESSAGE_PREFIX + '{"kind": "warning", "message": "odd"}\n')
    assert (message.kind, message.text) == ("warning", "Warning: odd")
    assert parse_line("Traceback (most recent call last):").kind == "output"
    assert parse_line(worker.MESSAGE_PREFIX + "{broken").kind == "output"
