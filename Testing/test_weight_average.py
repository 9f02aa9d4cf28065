"""Stochastic weight averaging over the schedule's end (``TrainingConfig.weight_average``).

Real torch training on small data. Every optimiser step is watched with torch's own step hook
(one batch per epoch here, so one step is one epoch): the weights returned must be the mean of the
last epochs' weights of the final phase, not the best epoch's nor the last one's; off, they are
the best epoch's start as before; the option is validated and a checkpoint records it.
"""

import math

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from cardioscar.errors import CardioScarError
from cardioscar.fit import training
from cardioscar.fit.checkpoint import build_checkpoint, load_checkpoint, save_checkpoint
from cardioscar.fit.training import TrainingConfig, config_used, fit_scar_field

EPOCHS = 30


def step_problem():
    """Two-node groups along x with a sharp step (one batch: 1,200 rows)."""
    rng = np.random.default_rng(0)
    coordinates = rng.random((1200, 3)).astype(np.float32)
    return coordinates, (coordinates[:, 0] > 0.5).astype(np.float32), np.repeat(np.arange(600), 2)


def watched_fit(config: TrainingConfig):
    """Train on ``step_problem`` and return the net, its history and the weights after every epoch
    (one run: the configs below do not retry)."""
    after_steps: list[list[torch.Tensor]] = []

    def snapshot(optimizer, args, kwargs):
        after_steps.append([p.detach().clone() for group in optimizer.param_groups for p in group["params"]])

    handle = register_optimizer_step_post_hook(snapshot)
    try:
        net, history = fit_scar_field(*step_problem(), config, device="cpu")
    finally:
        handle.remove()
    assert len(after_steps) == history["epochs_run"]
    return net, history, after_steps


def config(**overrides) -> TrainingConfig:
    return TrainingConfig.fast(**{"max_epochs": EPOCHS, "hidden_dim": 16, "num_threads": 1, "retry_failed_fit": False,
                                 **overrides})


@pytest.mark.parametrize("tolerance", [0.0, 1e-6])  # without and with the convergence test's added phases
def test_the_kept_weights_are_the_mean_of_the_last_epochs(tolerance):
    net, history, epochs = watched_fit(config(weight_average=0.3, convergence_tolerance=tolerance))
    last_phase = EPOCHS if history["extensions"] == 0 else round(training.EXTENSION_SHARE * EPOCHS)
    count = math.ceil(0.3 * last_phase)
    assert history["weight_averaged"] and history["averaged_epochs"] == count
    if tolerance:
        assert history["extensions"] >= 1  # the window restarted in the added phase
    mean = [torch.stack(tensors).mean(dim=0) for tensors in zip(*epochs[-count:])]
    kept = list(net.parameters())
    assert all(torch.allclose(k, m, atol=1e-6) for k, m in zip(kept, mean))
    # not the last epoch's, nor the mean of one more epoch (the window is exact)
    assert not all(torch.allclose(k, w, atol=1e-6) for k, w in zip(kept, epochs[-1]))
    wider = [torch.stack(tensors).mean(dim=0) for tensors in zip(*epochs[-count - 1:])]
    assert not all(torch.allclose(k, w, atol=1e-6) for k, w in zip(kept, wider))
    # the history's loss is the averaged weights' own, on which retries compare runs
    assert history["final_loss"] == pytest.approx(training._group_loss(net, training.ScarReconstructionDataset(
        *step_problem()), torch.device("cpu")), rel=1e-5)


def test_off_keeps_the_best_epochs_weights():
    net, history, epochs = watched_fit(config(convergence_tolerance=0.0))
    assert not history["weight_averaged"] and history["averaged_epochs"] == 0
    best = history["best_epoch"]
    assert best >= 2  # the weights that started it are the ones after the epoch before
    assert all(torch.equal(k, w) for k, w in zip(net.parameters(), epochs[best - 2]))


@pytest.mark.parametrize("value", [1.0, -0.1, True, "0.2", float("nan")])
def test_a_bad_share_is_refused_by_name(value):
    with pytest.raises(CardioScarError, match=r"weight_average must be in \[0, 1\)"):
        TrainingConfig.fast(weight_average=value)


def test_the_cyclical_schedule_refuses_it():
    with pytest.raises(CardioScarError, match="weight_average needs schedule 'onecycle'"):
        TrainingConfig(weight_average=0.2)


def test_a_checkpoint_records_it(tmp_path):
    used = config(weight_average=0.25, convergence_tolerance=0.0)
    net, history, _ = watched_fit(used)
    info = {"scaler_min": [0.0] * 3, "scaler_max": [1.0] * 3, "n_nodes": 1200, "n_groups": 600,
            "coordinate_space": "LPS"}
    path = tmp_path / "model.pth"
    save_checkpoint(build_checkpoint(net, history, config_used(used, history), info), path)
    loaded = load_checkpoint(path)
    assert loaded["hyperparameters"]["weight_average"] == 0.25
    assert TrainingConfig.from_dict(loaded["hyperparameters"]).weight_average == 0.25
    assert loaded["history"]["weight_averaged"] is True
    assert loaded["history"]["averaged_epochs"] == math.ceil(0.25 * EPOCHS)
    assert loaded["history"]["attempts"][-1]["weight_averaged"] is True
