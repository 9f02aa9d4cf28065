"""Round 21's leftovers in the Slicer Logic, on a real MRML scene (slicer-core): a saved model of a
newer layout given to *Apply a saved model*, and training options that break a rule with the
preset's values, refused when the options are made instead of when training begins (after the
slices were prepared). `Documentation/bad-input.md`'s table has the rows
(`Testing/test_bad_inputs_round22.py` for the command line and the Python API)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.fit.checkpoint import CHECKPOINT_FORMAT  # noqa: E402
from test_bad_inputs_round17 import trained  # noqa: E402,F401 (the 1,500-node phantom and a model trained on it)


@pytest.mark.parametrize("given", ["file", "dict"])
def test_apply_a_saved_model_of_a_newer_format_is_refused(trained, tmp_path, given):
    """*Apply a saved model* read a checkpoint of any layout in this build's meaning; one of a newer
    ``format_version`` is now refused naming the file, its version and the newest read, and the
    same file without the key (an older build's) applies. ``apply_model`` takes a checkpoint dict
    too (the console, a script holding the last training's checkpoint), whose version went
    unchecked after that: it is refused before its keys are read."""
    saved = torch.load(trained["out"] / "model.pth", weights_only=True)
    newer = {**saved, "format_version": CHECKPOINT_FORMAT + 1}
    older = {key: value for key, value in saved.items() if key != "format_version"}
    if given == "file":
        torch.save(newer, tmp_path / "newer.pth")
        torch.save(older, tmp_path / "older.pth")
        newer, older = tmp_path / "newer.pth", tmp_path / "older.pth"
    named = "newer.pth" if given == "file" else r"^The model given \(a checkpoint dict\)"
    context = csl.create_scene()
    node = csl.load_model(context.scene, trained["paths"]["mesh"], name="heart")
    logic = csl.CardioScarLogic()
    options = csl.ReconstructionOptions(inference_mc_samples=2)
    with pytest.raises(CardioScarError, match=rf"{named} has format_version {CHECKPOINT_FORMAT + 1}, newer than this "
                                              rf"CardioScar reads \({CHECKPOINT_FORMAT}\)"):
        logic.apply_model(newer, node, options)
    assert len(logic.apply_model(older, node, options).probability) == len(trained["points"])


@pytest.mark.parametrize("preset, extra, fragment", [
    ("documented", {"base_lr": 0.05}, "extra_training['base_lr'] (0.05) must be <= extra_training['max_lr'] (0.01)"),
    ("fast", {"base_lr": 0.05}, "extra_training['base_lr'] (0.05) must be <= extra_training['max_lr'] (0.01)"),
    ("documented", {"convergence_tolerance": 0.01}, "extra_training['convergence_tolerance'] needs schedule 'onecycle'"),
    ("fast", {"learning_rate": 0.01}, "extra_training: 'learning_rate' is not a training option"),
])
def test_training_options_at_odds_with_the_preset_are_refused_when_made(preset, extra, fragment):
    """The Logic's options (the panel, the console, the batch script) took ``base_lr`` above the
    preset's ``max_lr``, or a convergence tolerance with the documented preset's cyclical schedule,
    and refused them only when training began, after preparing the slices; a name that is no
    training option ended in TrainingConfig's TypeError. Now each is one line when the options are made,
    naming the option as the console gives it (a key of ``extra_training``; Testing/test_face_words.py)."""
    with pytest.raises(CardioScarError) as refused:
        csl.ReconstructionOptions(preset=preset, extra_training=extra)
    assert fragment in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("extra, fragment", [
    (None, "extra_training must be a dict of TrainingConfig fields, e.g. {'base_lr': 1e-3}, got NoneType."),
    ([("base_lr", 1e-3)], "extra_training must be a dict of TrainingConfig fields, e.g. {'base_lr': 1e-3}, got list."),
    ({1: 0.5, "lr": 0.1}, "extra_training: 'lr', 1 is not a training option"),
])
def test_extra_training_that_is_no_dict_of_names_is_one_line(extra, fragment):
    """Options made now check ``extra_training`` at once: None ended in Python's "'NoneType' object
    is not iterable", a list of pairs was called "('base_lr', 0.001) is not a training option", and
    a number among the names made the sort of the unknown names raise a TypeError."""
    with pytest.raises(CardioScarError) as refused:
        csl.ReconstructionOptions(extra_training=extra)
    assert fragment in str(refused.value) and "\n" not in str(refused.value)


def test_training_options_the_preset_allows_are_kept():
    """The same options where the preset allows them: the fast preset's one-cycle schedule takes a
    convergence tolerance, and a base rate under the peak is kept."""
    options = csl.ReconstructionOptions(preset="fast", extra_training={"convergence_tolerance": 0.02, "base_lr": 1e-3})
    config = options.training_config()
    assert (config.convergence_tolerance, config.base_lr, config.schedule) == (0.02, 1e-3, "onecycle")
