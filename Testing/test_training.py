"""TrainingConfig, CyclicalLR and fit_scar_field (real torch training on small data)."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from cardioscar.fit import training
from cardioscar.fit.batching import ScarReconstructionDataset, create_complete_group_batches
from cardioscar.fit.engines import BayesianNN, compute_group_reconstruction_loss
from cardioscar.errors import CardioScarError, TrainingCancelled
from cardioscar.fit.training import CyclicalLR, TrainingConfig, TrainingProgress, fit_scar_field


def small_problem(n_groups=60, seed=0):
    """Groups of 2-8 nodes along x; the target is 1 on the right half, 0 elsewhere."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, size=n_groups)
    group_ids = np.repeat(np.arange(n_groups), sizes)
    coords = rng.random((len(group_ids), 3)).astype(np.float32)
    coords[:, 0] = (group_ids + rng.random(len(group_ids))) / n_groups
    values = (group_ids >= n_groups // 2).astype(np.float32)
    perm = rng.permutation(len(group_ids))
    return coords[perm], values[perm], group_ids[perm]


def small_config(**overrides):
    values = dict(batch_size=120, max_epochs=12, early_stopping_patience=100, hidden_dim=32, n_layers=4,
                  num_threads=1)
    values.update(overrides)
    return TrainingConfig(**values)


def test_documented_defaults():
    c = TrainingConfig()
    assert (c.batch_size, c.max_epochs, c.early_stopping_patience, c.mc_samples) == (10000, 10000, 500, 3)
    assert (c.dropout_rate, c.base_lr, c.max_lr, c.lr_step_size) == (0.1, 1e-3, 1e-2, 2000)
    assert (c.seed, c.hidden_dim, c.n_layers, c.schedule) == (42, 128, 4, "cyclical")
    assert TrainingConfig.from_dict({**c.to_dict(), "unknown_key": 1}) == c


def test_fast_preset_and_overrides():
    fast = TrainingConfig.fast()
    assert fast.schedule == "onecycle" and fast.max_epochs < TrainingConfig().max_epochs
    assert TrainingConfig.fast(max_epochs=7).max_epochs == 7


def test_fast_preset_fits_in_one_batch_per_epoch_and_separates_the_halves():
    """The preset's whole-data batch, small network and high peak rate must still learn, not collapse."""
    coords, values, groups = small_problem(n_groups=120)
    model, history = fit_scar_field(coords, values, groups, TrainingConfig.fast(max_epochs=150, num_threads=1),
                                    device="cpu")
    preset = TrainingConfig.fast()
    assert model.architecture()["hidden_dim"] == preset.hidden_dim and model.architecture()["n_layers"] == preset.n_layers
    assert len(history["learning_rate"]) == history["epochs_run"]
    assert max(history["learning_rate"]) > 0.9 * preset.max_lr  # one batch/epoch: warm-up reached
    with torch.no_grad():
        prediction = model(torch.from_numpy(coords)).numpy().ravel()
    right = groups >= 60
    assert (prediction[right] > 0.5).mean() > 0.9 and (prediction[~right] < 0.5).mean() > 0.9
    assert history["best_loss"] < 0.05

    assert history["retried_max_lr"] is None  # a healthy fit is not run twice


def test_a_fit_that_explains_little_of_the_targets_is_retried_with_lower_peak_rates(caplog):
    """One epoch cannot fit: the best loss stays near the targets' variance, so the fast preset
    trains again with a third of its peak rate, then a ninth, and reports it; the documented
    defaults never do."""
    coords, values, groups = small_problem(n_groups=120)
    config = TrainingConfig.fast(max_epochs=1, num_threads=1)
    with caplog.at_level("WARNING", logger="cardioscar.fit.training"):
        _, history = fit_scar_field(coords, values, groups, config, device="cpu")
    group_targets = np.array([values[groups == g][0] for g in range(120)])
    assert history["target_variance"] == pytest.approx(group_targets.var())
    assert history["best_loss"] > training.FAILED_FIT_FRACTION * history["target_variance"]
    assert training.MAX_RETRIES == 2 and history["retried_max_lr"] == pytest.approx(config.max_lr / 9)
    assert "training again with max_lr 0.00333" in caplog.text and "training again with max_lr 0.00111" in caplog.text
    used = training.config_used(config, history)
    assert used.max_lr == history["max_lr"] and (used.max_lr != config.max_lr) == history["retry_kept"]
    assert training.config_used(config, {**history, "max_lr": config.max_lr / 3}).max_lr == pytest.approx(config.max_lr / 3)
    assert "even with lower peak rates" in caplog.text  # the retries could not fit one epoch either
    caplog.clear()
    with caplog.at_level("WARNING", logger="cardioscar.fit.training"):
        _, documented = fit_scar_field(coords, values, groups, small_config(max_epochs=1), device="cpu")
    assert documented["best_loss"] > 0.5 * documented["target_variance"] and documented["retried_max_lr"] is None
    assert "training again" not in caplog.text and "the fast preset (--preset fast, TrainingConfig.fast(), with retry_failed_fit)" in caplog.text


def test_a_run_that_dies_after_a_good_start_is_retried_and_the_better_fit_kept(caplog):
    """A peak rate of 0.3 lets this network fit the halves (below half the targets' variance)
    within a few epochs and then kills it (its loss freezes at the all-wrong field's). Its best
    epoch is no converged fit: the run must be trained again with a lower peak, and the kept fit
    must be the attempt with the lowest dropout-free group loss. (Before the fix only the best
    loss was tested, so this run was kept.)"""
    coords, values, groups = small_problem(n_groups=120)
    config = TrainingConfig.fast(max_epochs=150, max_lr=0.3, hidden_dim=32, seed=1, num_threads=1)
    with caplog.at_level("INFO", logger="cardioscar.fit.training"):
        model, history = fit_scar_field(coords, values, groups, config, device="cpu")
    # the kept run went through its whole schedule (and any phase the convergence test added)
    assert history["retry_kept"] and history["dead_epoch"] is None and history["epochs_run"] >= config.max_epochs
    first, *retries = history["attempts"]
    assert first["dead_epoch"] is not None and first["epochs_run"] < config.max_epochs
    assert first["best_loss"] < training.FAILED_FIT_FRACTION * history["target_variance"]
    assert "the network died" in caplog.text and "training again with max_lr 0.1" in caplog.text
    assert retries and retries[0]["max_lr"] == pytest.approx(config.max_lr / 3)
    assert history["final_loss"] == min(a["final_loss"] for a in history["attempts"])
    assert history["final_loss"] < first["final_loss"] / 3
    with torch.no_grad():
        prediction = model(torch.from_numpy(coords)).numpy().ravel()
    right = groups >= 60
    assert (prediction[right] > 0.5).mean() > 0.9 and (prediction[~right] < 0.5).mean() > 0.9


def test_the_final_loss_is_the_dropout_free_group_loss():
    """``final_loss`` is what attempts are compared on: the returned network's group loss with
    dropout off, recomputed here by hand from its predictions."""
    coords, values, groups = small_problem(n_groups=60)
    model, history = fit_scar_field(coords, values, groups, small_config(max_epochs=5), device="cpu")
    with torch.no_grad():
        prediction = model(torch.from_numpy(coords)).numpy().ravel().astype(np.float64)
    by_hand = np.mean([(prediction[groups == g].mean() - values[groups == g].mean()) ** 2 for g in range(60)])
    assert history["final_loss"] == pytest.approx(by_hand, rel=1e-5)
    assert [a["final_loss"] for a in history["attempts"]] == [history["final_loss"]]  # no retries here


def scar_with_a_far_spot(n_groups=200):
    """``small_problem``'s groups with a scar on the 40 groups after the middle and a 12-group
    spot far to the left of it: a fresh network often fits the big scar and leaves the spot as
    background, where the saturated sigmoid passes almost no gradient."""
    coords, values, groups = small_problem(n_groups=n_groups)
    values = np.zeros_like(values)
    values[(groups >= n_groups // 2) & (groups < n_groups // 2 + n_groups // 5)] = 1
    values[(groups >= 10) & (groups < 22)] = 1
    return coords, values, groups


def test_a_run_stalled_in_a_poor_minimum_is_retried_from_the_next_seed(caplog):
    """Seed 6 ends converged on a field that calls the whole spot background (the spot's groups
    hold about 30 % of the targets' variance, though the fit explains 70 % of it: no failed fit, and a lower
    peak rate from the same start found the same minimum on the unseen phantom). The fast preset
    must see it, train again from seed 7 and keep the better fit; the checkpoint's configuration
    must name the kept run's seed. (Before the fix the stalled run was kept, "converged".)
    Like the dead-run test above, this relies on what these seeds do on a CPU."""
    coords, values, groups = scar_with_a_far_spot()
    config = TrainingConfig.fast(max_epochs=300, hidden_dim=32, seed=6, num_threads=1)
    with caplog.at_level("WARNING", logger="cardioscar.fit.training"):
        _, history = fit_scar_field(coords, values, groups, config, device="cpu")
    first, *retries = history["attempts"]
    assert first["seed"] == 6 and first["ignored_share"] > training.STALLED_FIT_FRACTION and first["dead_epoch"] is None
    assert first["best_loss"] < training.FAILED_FIT_FRACTION * history["target_variance"]
    assert "stalled in a poor minimum: it ignores a patch of the targets (" in caplog.text
    assert "training again from seed 7" in caplog.text
    assert retries[0]["seed"] == 7 and retries[0]["max_lr"] == config.max_lr
    assert history["retry_kept"] and history["seed"] == 7 and training.config_used(config, history).seed == 7
    assert history["final_loss"] == min(a["final_loss"] for a in history["attempts"]) < first["final_loss"] / 2
    assert history["ignored_share"] <= training.STALLED_FIT_FRACTION
    assert "the result is stalled" not in caplog.text  # the kept fit is not


def test_a_fit_that_cannot_leave_its_poor_minimum_ends_with_a_warning(caplog):
    """A network trained without the spot, fine-tuned with every layer but the last frozen,
    cannot fit it from any seed: both retries stall too, and the result says so in one line with
    what to do. The documented defaults (no retries) warn the same way."""
    coords, values, groups = scar_with_a_far_spot()
    without_spot = np.where((groups >= 10) & (groups < 22), 0.0, values).astype(np.float32)
    start, _ = fit_scar_field(coords, without_spot, groups, TrainingConfig.fast(max_epochs=150, hidden_dim=32,
                                                                                num_threads=1), device="cpu")
    frozen = len(start.linear_layers()) - 1
    with caplog.at_level("WARNING", logger="cardioscar.fit.training"):
        _, history = fit_scar_field(coords, values, groups, TrainingConfig.fast(max_epochs=50, num_threads=1),
                                    device="cpu", model=start, frozen_layers=frozen)
    assert [a["seed"] for a in history["attempts"]] == [42, 43, 44]
    assert all(a["ignored_share"] > training.STALLED_FIT_FRACTION for a in history["attempts"])
    assert history["ignored_groups"] > 0
    assert caplog.text.count("the result is stalled in a poor minimum") == 1
    assert "train again with another --seed (the fast preset tried several)" in caplog.text
    assert training.describe_stop(history).startswith("converged in a poor minimum: ")
    caplog.clear()
    with caplog.at_level("WARNING", logger="cardioscar.fit.training"):
        _, documented = fit_scar_field(coords, values, groups, small_config(max_epochs=20), device="cpu",
                                       model=start, frozen_layers=frozen)
    assert len(documented["attempts"]) == 1 and "the result is stalled in a poor minimum" in caplog.text
    assert "or with the fast preset (--preset fast), which retries such fits" in caplog.text


def test_a_patch_ignored_under_the_stall_share_is_said(caplog, monkeypatch):
    """A fit that ignores a patch holding less than the stall share is kept without a retry, but
    the log says so: on EMIDEC P026 (4.7 ml of scar) the fast preset's seed 42 called one slice's
    whole 12-pixel patch background (11 groups, 5.7 % of the variance, under 8 %), "converged",
    silently; seed 43 fits it (such a patch of scar targets is now retried and warned about,
    ``MISSED_SCAR_GROUPS``). Here the far spot's share is put under the stall share by raising it,
    and its groups under the missed patch's count (as a patch of healthy targets called scar is)."""
    coords, values, groups = scar_with_a_far_spot()
    without_spot = np.where((groups >= 10) & (groups < 22), 0.0, values).astype(np.float32)
    start, _ = fit_scar_field(coords, without_spot, groups, TrainingConfig.fast(max_epochs=150, hidden_dim=32,
                                                                                num_threads=1), device="cpu")
    monkeypatch.setattr(training, "STALLED_FIT_FRACTION", 0.9)
    monkeypatch.setattr(training, "MISSED_SCAR_GROUPS", 1000)
    with caplog.at_level("INFO", logger="cardioscar.fit.training"):
        _, history = fit_scar_field(coords, values, groups, small_config(max_epochs=20), device="cpu", model=start,
                                    frozen_layers=len(start.linear_layers()) - 1)
    assert history["ignored_groups"] > 0 and "stalled in a poor minimum" not in caplog.text
    assert (f"the result ignores {history['ignored_groups']} groups ({100 * history['ignored_share']:.1f} % of the "
            "targets' variance; a stalled fit holds over 90 %)") in caplog.text
    assert "train again with another --seed" in caplog.text
    caplog.clear()
    monkeypatch.setattr(training, "SAID_IGNORED_FRACTION", 0.5)  # a speck under it (a healthy fit's) is not said
    with caplog.at_level("INFO", logger="cardioscar.fit.training"):
        fit_scar_field(coords, values, groups, small_config(max_epochs=20), device="cpu", model=start,
                       frozen_layers=len(start.linear_layers()) - 1)
    assert "the result ignores" not in caplog.text


def test_a_missed_scar_patch_under_the_stall_share_is_retried_from_the_next_seed(caplog, monkeypatch):
    """A fit that calls a patch of scar targets healthy is retried from the next seed whatever the
    patch's share of the variance: on EMIDEC P026 (4.7 ml of scar) the fast preset's seeds 0 and 42
    called one slice's whole 12-pixel patch background (11 groups, 5.7 %, under the stall share),
    "converged", and were kept. Here seed 6's missed far spot is put under the stall share by
    raising it; the retry from seed 7 fits the spot and is kept. (Before the fix: one run, kept.)"""
    coords, values, groups = scar_with_a_far_spot()
    monkeypatch.setattr(training, "STALLED_FIT_FRACTION", 0.9)
    config = TrainingConfig.fast(max_epochs=300, hidden_dim=32, seed=6, num_threads=1)
    with caplog.at_level("WARNING", logger="cardioscar.fit.training"):
        _, history = fit_scar_field(coords, values, groups, config, device="cpu")
    first, *retries = history["attempts"]
    assert first["ignored_share"] <= training.STALLED_FIT_FRACTION
    assert first["ignored_scar_groups"] >= training.MISSED_SCAR_GROUPS
    assert "misses a scar patch: it calls " in caplog.text and "training again from seed 7" in caplog.text
    assert retries[0]["seed"] == 7 and history["retry_kept"] and history["seed"] == 7
    assert history["ignored_scar_groups"] < training.MISSED_SCAR_GROUPS and "the result misses" not in caplog.text
    assert training.describe_stop(history) == "converged"
    # P026's patch is missed; a large scar's few groups (EMIDEC P098: 13 groups, 1.5 %) are not
    assert training._missed_scar({"ignored_scar_groups": 11, "ignored_share": 0.057})
    assert not training._missed_scar({"ignored_scar_groups": 13, "ignored_share": 0.0149})
    missed = {"stop_reason": "converged", "ignored_groups": 8, "ignored_scar_groups": 8, "ignored_share": 0.05}
    # a history with no record of a warning (an older checkpoint's, one built by hand) points at none
    assert training.describe_stop(missed) == "converged in a poor minimum: 8 groups ignored"
    assert training.describe_stop({**missed, "warned": True}) == ("converged in a poor minimum: 8 groups ignored "
                                                                  "(see the training's warning)")


def faint_spot_on_a_fraction_map():
    """``scar_with_a_far_spot`` as a fraction map: the big scar at 0.8, the far spot faint at 0.5, so
    no group can be missed by ``IGNORED_GROUP_MISS`` (0.9) whatever the field does there."""
    coords, values, groups = scar_with_a_far_spot()
    values = (0.8 * values).astype(np.float32)
    values[(groups >= 10) & (groups < 22)] = 0.5
    return coords, values, groups


def test_a_faint_scar_patch_missed_on_a_fraction_map_is_retried_from_the_next_seed(caplog):
    """ACDC's fraction map with its middle slice held out: training seeds 1 and 2 fitted the faint
    scar of the neighbouring slices (targets near 0.5) at 0.08-0.17, "converged" with no group
    ignored, and called the held-out scar at Dice 0.16 against 0.61-0.80 for seeds whose fit
    reached the targets. Here seed 6 fits the faint spot at under half its 0.5 (all 12 groups, 14 %
    of the variance, none ignored): the fast preset must retry from seed 7, which fits it, and
    keep that run. (Before the fix: one run, kept, and the spot lost.)"""
    coords, values, groups = faint_spot_on_a_fraction_map()
    config = TrainingConfig.fast(max_epochs=300, hidden_dim=32, seed=6, num_threads=1)
    with caplog.at_level("WARNING", logger="cardioscar.fit.training"):
        _, history = fit_scar_field(coords, values, groups, config, device="cpu")
    first, *retries = history["attempts"]
    assert first["seed"] == 6 and first["ignored_share"] == 0.0  # blind to the 0.9 miss tests
    assert first["faint_scar_groups"] == 12 and first["faint_scar_share"] >= training.SAID_IGNORED_FRACTION
    assert "misses a faint scar patch: it fits 12 groups" in caplog.text and "training again from seed 7" in caplog.text
    assert retries[0]["seed"] == 7 and history["retry_kept"] and history["seed"] == 7
    assert history["faint_scar_groups"] < training.MISSED_SCAR_GROUPS and "the result misses" not in caplog.text
    assert history["final_loss"] < first["final_loss"] / 2
    assert training.describe_stop(history) == "converged"
    missed = {"stop_reason": "converged", "ignored_groups": 0, "faint_scar_groups": 12, "faint_scar_share": 0.14}
    assert training.describe_stop(missed) == ("converged in a poor minimum: 12 faint scar groups fitted under 50% of "
                                              "their targets")


def test_drawn_labels_are_left_to_the_ignored_group_tests():
    """Targets of 1 never count as a faint scar patch, however the field misses them: the same
    spot drawn as a label (seed 6 calls it background) is the missed-scar test's, not this one's."""
    coords, values, groups = scar_with_a_far_spot()
    _, history = fit_scar_field(coords, values, groups, TrainingConfig.fast(max_epochs=300, hidden_dim=32, seed=6,
                                                                            num_threads=1), device="cpu")
    assert history["attempts"][0]["ignored_share"] > 0
    assert all(a["faint_scar_groups"] == 0 for a in history["attempts"])


def test_a_healthy_fit_is_not_taken_for_a_stalled_one(caplog):
    """The halves are fitted outright: no group is more than 0.5 off, the run is trained once,
    and its figures are those of a run with the stall test switched off."""
    coords, values, groups = small_problem(n_groups=120)
    config = TrainingConfig.fast(max_epochs=150, num_threads=1)
    with caplog.at_level("WARNING", logger="cardioscar.fit.training"):
        _, history = fit_scar_field(coords, values, groups, config, device="cpu")
    assert history["ignored_groups"] == 0 and history["ignored_share"] == 0.0
    assert len(history["attempts"]) == 1 and history["seed"] == config.seed and "stalled" not in caplog.text
    assert training.describe_stop(history) == "converged"
    assert not history["diverged"] and history["late_rise"] < training.DIVERGED_FRACTION / 10
    saved = training.STALLED_FIT_FRACTION
    try:
        training.STALLED_FIT_FRACTION = math.inf
        _, unchecked = fit_scar_field(coords, values, groups, config, device="cpu")
    finally:
        training.STALLED_FIT_FRACTION = saved
    assert unchecked["final_loss"] == history["final_loss"] and unchecked["train_loss"] == history["train_loss"]


def test_a_run_that_diverges_without_freezing_is_retried_with_a_lower_peak(caplog):
    """At a peak rate of 0.3 this network fits the halves by epoch 16 (7 % of the targets' variance
    left), then its loss rises to nearly twice the variance and stays there to the end without
    freezing (dropout still moves it, so the dead-run test does not fire). Its best epoch is kept
    from part-way up the warm-up: the fast preset must see the late rise, record it and train
    again from the same seed at a third of the peak, keeping the closer fit; without retries the
    run is kept, its history says it diverged and the log says so in one line. (Before the fix
    nothing was recorded and the diverged run was kept, "converged".)"""
    coords, values, groups = small_problem(n_groups=120)
    config = TrainingConfig.fast(max_epochs=150, max_lr=0.3, hidden_dim=32, seed=4, num_threads=1)
    with caplog.at_level("WARNING", logger="cardioscar.fit.training"):
        _, history = fit_scar_field(coords, values, groups, config, device="cpu")
    first, *retries = history["attempts"]
    assert first["dead_epoch"] is None and first["diverged"] and first["late_rise"] > training.DIVERGED_FRACTION
    assert first["best_loss"] < training.FAILED_FIT_FRACTION * history["target_variance"]  # no failed fit either
    assert "the run diverged: its loss rose after epoch" in caplog.text and "training again with max_lr 0.1" in caplog.text
    assert retries[0]["seed"] == 4 and retries[0]["max_lr"] == pytest.approx(config.max_lr / 3)
    assert history["retry_kept"] and not history["diverged"]
    # the retry's fit is kept as the closer one (a third of the loss on the Intel Xeon this was written
    # on, about the same on an AMD EPYC: how much closer is the CPU's rounding, not the retry's logic)
    assert history["final_loss"] == min(a["final_loss"] for a in history["attempts"]) <= first["final_loss"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="cardioscar.fit.training"):
        _, kept = fit_scar_field(coords, values, groups, replace(config, retry_failed_fit=False), device="cpu")
    # stopped as diverged with retries (its late rise measured over the window that stopped it), run to its end without
    assert first["diverged_epoch"] == first["epochs_run"] < 150 and kept["epochs_run"] == 150
    assert len(kept["attempts"]) == 1 and kept["diverged"] and kept["late_rise"] > training.DIVERGED_FRACTION
    assert kept["stop_reason"] == "diverged" and kept["converged"] is None
    assert caplog.text.count("the result diverged") == 1 and "which retries such runs" in caplog.text
    assert training.describe_stop(kept).startswith(f"diverged: its loss rose after epoch {kept['best_epoch']}")


def test_a_run_stopped_as_diverged_has_a_late_rise_just_above_the_share_whatever_the_height():
    """The late rise of a run stopped as diverged is measured over the DIVERGED_EPOCHS that stopped
    it, each of them above the best by more than DIVERGED_FRACTION of the variance: a loss that climbs
    past that share reads just above it, however high it goes (here 0.105 of the variance, at 0.495
    when stopped), while the same losses run to their end read the height they stayed at. So the
    figure says "stopped", not how far the loss rose (the docstring of ``training._late_rise``)."""
    variance = 0.25

    def loss(epoch):  # 0.01 to epoch 30, then 1 % of the variance higher each epoch, up to 1.5 of it
        return 0.01 + variance * (0.0 if epoch <= 30 else min(1.5, 0.005 + 0.01 * (epoch - 30)))

    watch = training._StopWatch(10 ** 6, variance, training.FAILED_FIT_FRACTION * variance)
    stopped_at = next(epoch for epoch in range(1, 1000) if watch.after_epoch(epoch, loss(epoch)))
    first_risen = 40  # the first epoch above the best by more than the share: 0.105 of the variance
    assert stopped_at == watch.diverged_epoch == first_risen + training.DIVERGED_EPOCHS - 1
    assert watch.stop_reason == "diverged" and watch.best_epoch == 1 and watch.dead_epoch is None
    stopped_rise = training._late_rise(watch.losses, watch.best_loss, variance, training.DIVERGED_EPOCHS)
    assert stopped_rise == pytest.approx(0.105) and stopped_rise > training.DIVERGED_FRACTION
    ended = training._StopWatch(10 ** 6, variance, None)  # no retries: no stop, judged over its last fifth
    assert not any(ended.after_epoch(epoch, loss(epoch)) for epoch in range(1, 401))
    assert ended.longest_rise == 400 - first_risen + 1 and ended.stop_reason == "budget"
    assert training._late_rise(ended.losses, ended.best_loss, variance) == pytest.approx(1.5)


def scripted_losses(monkeypatch, scripts):
    """Replace each run's batch steps by one that returns the next loss of ``scripts(max_lr)`` (a
    function of the 1-based epoch) and sets no gradient: the epochs' losses are the script's, the
    weights stay as drawn. A stand-in for the training step only; the loop, its stops and the
    retries around it are the library's."""

    def steps(net, dataset, config, device, pool):
        epochs = iter(range(1, 10 ** 6))
        return [lambda: scripts(config.max_lr)(next(epochs))]

    monkeypatch.setattr(training, "_batch_steps", steps)


def test_a_run_whose_loss_rises_and_stays_up_is_stopped_and_retried(monkeypatch, caplog):
    """A run whose loss falls to 0.01 by epoch 30 and then sits at 0.2 (the halves' variance is
    0.25: 76 % of it above the best, never frozen, as the unseen label map s7 at training seed 1 sat
    for its last 366 epochs) is stopped DIVERGED_EPOCHS epochs into the rise, recorded as diverged,
    and the retries at lower peaks take over. They run to their end: the first one's loss leaves its
    best by as much for one epoch fewer than the window, as a healthy schedule's bump might; the
    second one's best explains under half the variance (0.15) when its loss sits higher for twice the
    window, a run that has not fit yet (the unseen s6's retry in the warm-up), then it fits. Without
    retries the run is not stopped: it is judged at its end, as before. (Before, the diverged run
    trained all 150 epochs and was only judged at the end.)"""
    coords, values, groups = small_problem(n_groups=60)
    config = TrainingConfig.fast(max_epochs=150, hidden_dim=16, num_threads=1, convergence_tolerance=0.0)
    window = training.DIVERGED_EPOCHS

    def noisy(level, epoch):  # dropout moves a live network's loss every epoch: never frozen
        return level * (1.0 + 1e-3 * (epoch % 7))

    def diverging(epoch):
        return noisy(0.01 if epoch <= 30 else 0.2, epoch)

    def bumpy(epoch):
        return noisy(0.2 if 30 < epoch < 30 + window else 0.01, epoch)

    def late_fit(epoch):
        return noisy(0.15 if epoch <= 5 else 0.2 if epoch <= 5 + 2 * window else 0.01, epoch)

    scripts = {config.max_lr: diverging, config.max_lr / 3: bumpy}
    scripted_losses(monkeypatch, lambda max_lr: scripts.get(max_lr, late_fit))
    with caplog.at_level("INFO", logger="cardioscar.fit.training"):
        _, history = fit_scar_field(coords, values, groups, config, device="cpu")
    first, *retries = history["attempts"]
    assert first["epochs_run"] == first["diverged_epoch"] == 30 + window and first["diverged"]
    assert first["best_epoch"] <= 30 and first["dead_epoch"] is None
    assert first["late_rise"] == pytest.approx((0.2 - 0.01) / history["target_variance"], rel=0.01)
    assert f"for {window} epochs: the run diverged; stopping at epoch {30 + window}" in caplog.text
    assert f"the run diverged: its loss rose after epoch {first['best_epoch']} (loss 0.01) and for its last " \
           f"{window} epochs came no nearer to it than 76 % of the targets' variance (stopped at epoch " \
           f"{30 + window})" in caplog.text
    assert [r["max_lr"] for r in retries] == pytest.approx([config.max_lr / 3, config.max_lr / 9])
    assert all(r["epochs_run"] == 150 and r["diverged_epoch"] is None and not r["diverged"] for r in retries)
    assert [r["longest_rise"] for r in retries] == [window - 1, 0]
    _, kept = fit_scar_field(coords, values, groups, replace(config, retry_failed_fit=False), device="cpu")
    assert kept["epochs_run"] == 150 and kept["diverged_epoch"] is None and kept["diverged"]  # judged at the end


def test_a_kept_run_stopped_as_diverged_says_so_in_its_stop(monkeypatch, caplog):
    """Every run diverges (scripted losses, as above): the kept one was stopped early, DIVERGED_EPOCHS
    into its rise, but its stop read as a run judged at its end ("diverged: its loss rose after epoch
    N, whose weights are kept"), the early stop said nowhere in a summary. It points at the warning
    the run gave, at the default level (WARNING), and a history that records none points at nothing
    ("(see the log)" pointed at a log that an older checkpoint's history never had)."""
    coords, values, groups = small_problem(n_groups=60)
    config = TrainingConfig.fast(max_epochs=150, hidden_dim=16, num_threads=1, convergence_tolerance=0.0)
    scripted_losses(monkeypatch, lambda max_lr: lambda epoch: (0.01 if epoch <= 30 else 0.2) * (1 + 1e-3 * (epoch % 7)))
    with caplog.at_level("WARNING", logger="cardioscar.fit.training"):
        _, history = fit_scar_field(coords, values, groups, config, device="cpu")
    stopped = 30 + training.DIVERGED_EPOCHS
    assert history["stop_reason"] == "diverged" and history["diverged_epoch"] == stopped == history["epochs_run"]
    assert history["warned"] and [r.levelname for r in caplog.records if r.message.startswith("the result ")] == \
        ["WARNING"]
    assert training.describe_stop(history) == (f"diverged: its loss rose after epoch {history['best_epoch']}, whose "
                                               f"weights are kept; stopped early at epoch {stopped} (see the "
                                               "training's warning)")
    judged = {**history, "diverged_epoch": None}  # a run without retries runs to its end
    assert training.describe_stop(judged) == (f"diverged: its loss rose after epoch {history['best_epoch']}, whose "
                                              "weights are kept (see the training's warning)")
    unrecorded = {key: value for key, value in judged.items() if key != "warned"}
    assert training.describe_stop(unrecorded) == (f"diverged: its loss rose after epoch {history['best_epoch']}, "
                                                  "whose weights are kept")


def test_a_stall_retry_whose_network_dies_is_retried_with_a_lower_peak(monkeypatch, caplog):
    """The halves with a 9-group spot far inside the background: at peak 0.3, seed 19 stalls
    (the spot fitted as background) and the retry from seed 20 dies, fitting worse, so the stalled
    run stays the kept one. The next retry must answer the death, the last run's failure (seed 20
    at a third of the peak: it fits the spot too), not the kept run's stall again (seed 21 at the
    same peak, before the fix: 18 times the group loss).

    Seed 20 died at peak 0.3 on the Intel Xeon this was written on and not on an AMD EPYC, where
    torch rounds differently; so its death is a stand-in here: that one run's steps return a
    frozen loss above the stalled run's and set no gradient (:func:`scripted_losses`' way). The stall,
    the loop, its death test, the retries and the lowered run's fit are the library's own."""
    coords, values, groups = small_problem(n_groups=120)
    values = np.where((groups >= 10) & (groups < 19), 1.0, values).astype(np.float32)
    config = TrainingConfig.fast(max_epochs=150, max_lr=0.3, hidden_dim=32, seed=19, num_threads=1)
    real_steps = training._batch_steps

    def steps(net, dataset, run_config, device, pool):
        if run_config.seed == 20 and run_config.max_lr == config.max_lr:  # the run that dies
            return [lambda: 0.2]
        return real_steps(net, dataset, run_config, device, pool)

    monkeypatch.setattr(training, "_batch_steps", steps)
    with caplog.at_level("WARNING", logger="cardioscar.fit.training"):
        _, history = fit_scar_field(coords, values, groups, config, device="cpu")
    stalled, dead, lowered = history["attempts"]
    assert stalled["ignored_share"] > training.STALLED_FIT_FRACTION and stalled["dead_epoch"] is None
    assert dead["seed"] == 20 and dead["dead_epoch"] is not None and dead["final_loss"] > stalled["final_loss"]
    assert lowered["seed"] == 20 and lowered["max_lr"] == pytest.approx(config.max_lr / 3)
    assert "the network died" in caplog.text and "training again with max_lr 0.1" in caplog.text
    assert history["seed"] == 20 and history["final_loss"] == lowered["final_loss"] < stalled["final_loss"] / 10
    assert history["ignored_share"] <= training.STALLED_FIT_FRACTION


def test_a_dead_run_is_stopped_and_retried(caplog):
    """A network whose output is saturated (sigmoid(-200) is 0 in float32) passes no gradient: its
    loss never changes. With retries allowed, each run stops after DEAD_EPOCHS such epochs instead
    of training on to the end; without them (documented defaults) the run goes on as documented.
    Its all-zero field fits worse than the best constant one, and the warning says so in words."""
    coords, values, groups = small_problem(n_groups=60)
    dead = BayesianNN(3, 32, 4, 0.1)
    with torch.no_grad():
        dead.network[-1].bias.fill_(-200.0)
    config = TrainingConfig.fast(max_epochs=200, hidden_dim=32, num_threads=1)
    _, history = fit_scar_field(coords, values, groups, config, device="cpu", model=dead)
    assert history["dead_epoch"] == training.DEAD_EPOCHS == history["epochs_run"]
    assert len(set(history["train_loss"])) == 1
    assert history["retried_max_lr"] == pytest.approx(config.max_lr / 9) and not history["retry_kept"]
    with caplog.at_level("WARNING", logger="cardioscar.fit.training"):
        _, documented = fit_scar_field(coords, values, groups, small_config(max_epochs=40), device="cpu", model=dead)
    assert documented["dead_epoch"] is None and documented["epochs_run"] == 40
    assert documented["best_loss"] > documented["target_variance"]
    assert "the result explains none of the targets' variance (best loss" in caplog.text


@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("max_epochs", -3, "max_epochs must be a positive integer"),
    ("mc_samples", 1.5, "mc_samples must be a positive integer"),
    ("early_stopping_patience", 0, "early_stopping_patience"),
    ("base_lr", -1e-3, "base_lr must be a positive number"),
    ("max_lr", float("nan"), "max_lr must be a positive number"),
    ("dropout_rate", 1.0, r"dropout_rate must be in \[0, 1\)"),
    ("seed", -1, "seed must be in 0..2"),
    ("schedule", "cosine", "schedule must be one of"),
    ("weight_decay", -0.1, "weight_decay must be a number >= 0"),
])
def test_validation_names_field_and_range(field, value, message):
    with pytest.raises(CardioScarError, match=message):
        TrainingConfig(**{field: value})


def test_base_lr_must_not_exceed_max_lr():
    with pytest.raises(CardioScarError, match=r"base_lr .* must be <= max_lr"):
        TrainingConfig(base_lr=0.1, max_lr=0.01)


def test_cyclical_lr_known_steps():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=123.0)
    documented = CyclicalLR(optimizer, base_lr=1e-3, max_lr=1e-2, step_size=2000)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # iteration 0 set on construction
    for iteration, expected in [(0, 1e-3), (1000, 5.5e-3), (2000, 1e-2), (3000, 5.5e-3), (4000, 1e-3),
                                (6000, 1e-2), (7000, 5.5e-3)]:
        assert documented.rate(iteration) == pytest.approx(expected)
    scheduler = CyclicalLR(optimizer, base_lr=1e-3, max_lr=1e-2, step_size=20)
    seen = []
    for _ in range(61):
        seen.append(scheduler.get_last_lr())
        scheduler.step()
    assert seen[0] == pytest.approx(1e-3) and seen[20] == pytest.approx(1e-2)
    assert seen[10] == pytest.approx(5.5e-3) and seen[40] == pytest.approx(1e-3) and seen[60] == pytest.approx(1e-2)
    assert max(seen) == pytest.approx(1e-2) and min(seen) == pytest.approx(1e-3)


def test_batched_mc_loss_equals_documented_loss():
    coords, values, groups = small_problem()
    ds = ScarReconstructionDataset(coords, values, groups)
    model = BayesianNN(hidden_dim=16, dropout_rate=0.0)
    batches = training._prepare_batches(ds, 100, 3, torch.device("cpu"))
    total = 0
    for batch in batches:
        start, end = total, total + batch.n_rows
        total = end
        x = torch.from_numpy(ds.coordinates[start:end])
        separate = torch.stack([model(x).squeeze(1) for _ in range(3)]).mean(0)
        expected = compute_group_reconstruction_loss(separate, torch.from_numpy(ds.intensities[start:end]),
                                                     torch.from_numpy(ds.group_ids[start:end]))
        assert training._batch_loss(model, batch, 3).item() == pytest.approx(expected.item(), rel=1e-5)
    assert total == len(ds)


class HostReads(TorchDispatchMode):
    """Counts the operations that make a GPU wait for the host: reading a value back (``item``,
    ``float()``, ``bool()``) and ops whose output size depends on the data."""

    WAITING = {"_local_scalar_dense", "nonzero", "_unique2", "unique_dim", "unique_consecutive",
               "masked_select", "repeat_interleave", "equal"}

    def __init__(self):
        super().__init__()
        self.reads = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._schema.name.split("::")[-1] in self.WAITING:
            self.reads.append(func._schema.name)
        return func(*args, **(kwargs or {}))


def train_the_gpu_way(net, coords, values, groups, config) -> dict:
    """The GPU path's training loop (autograd steps on prepared batches), run on the CPU."""
    dataset = ScarReconstructionDataset(coords, values, groups)
    steps = training._autograd_steps(net, dataset, config, torch.device("cpu"))
    return training._train_loop(net, dataset, config, torch.device("cpu"), steps, None, None)


def test_gpu_epoch_reads_the_host_once():
    """The GPU path (data prepared once, autograd steps, fused Adam, the scheduler and the epoch
    bookkeeping) run on the CPU as a stand-in for a GPU, which this machine lacks: every op is the
    one a GPU would queue, so a value read back per step (a sync) would show here."""
    coords, values, groups = small_problem()
    config = small_config(max_epochs=3, batch_size=60)
    assert len(create_complete_group_batches(ScarReconstructionDataset(coords, values, groups), config.batch_size)) >= 4
    net = BayesianNN(3, config.hidden_dim, config.n_layers, config.dropout_rate)
    with HostReads() as reads:
        history = train_the_gpu_way(net, coords, values, groups, config)
    assert history["epochs_run"] == 3
    assert reads.reads == ["aten::_local_scalar_dense"] * 3  # the epoch loss, once per epoch


def test_gpu_path_learns_like_the_cpu_step():
    """The GPU path's training (autograd on the repeated batch, run on the CPU as a stand-in for a
    GPU) fits the small problem as well as the CPU step: same maths, different code."""
    coords, values, groups = small_problem()
    config = small_config(max_epochs=40, max_lr=2e-2)
    torch.manual_seed(config.seed)
    net = BayesianNN(3, config.hidden_dim, config.n_layers, config.dropout_rate)
    _, cpu_way = fit_scar_field(coords, values, groups, config, model=net)  # trains a copy
    gpu_way = train_the_gpu_way(net, coords, values, groups, config)
    assert gpu_way["train_loss"][0] == pytest.approx(cpu_way["train_loss"][0], rel=0.05)
    assert gpu_way["best_loss"] < 0.25 * gpu_way["train_loss"][0]
    assert 0.75 < gpu_way["best_loss"] / cpu_way["best_loss"] < 1.33


def test_training_learns_and_history_is_complete():
    coords, values, groups = small_problem()
    model, history = fit_scar_field(coords, values, groups, small_config(max_epochs=40, max_lr=2e-2))
    assert history["epochs_run"] == 40 and len(history["train_loss"]) == 40 and len(history["learning_rate"]) == 40
    assert history["best_loss"] == min(history["train_loss"])
    assert history["train_loss"][history["best_epoch"] - 1] == history["best_loss"]
    assert history["converged_epoch"] == history["best_epoch"]
    assert history["stopped_early"] is False and history["device"] == "cpu" and history["seconds"] > 0
    assert history["best_loss"] < 0.5 * history["train_loss"][0]
    assert not model.training


def test_weight_decay_shrinks_the_weights_and_still_learns():
    """AdamW's decoupled decay (``weight_decay``) must reach the optimiser: the same seeded run
    ends with smaller weights, and still separates the two halves."""
    coords, values, groups = small_problem()
    norms = {}
    for decay in (0.0, 2.0):
        model, history = fit_scar_field(coords, values, groups, small_config(max_epochs=40, max_lr=2e-2, weight_decay=decay))
        norms[decay] = sum(float(layer.weight.detach().norm()) for layer in model.linear_layers())
        assert history["best_loss"] < 0.5 * history["train_loss"][0]
    assert norms[2.0] < 0.9 * norms[0.0]


def test_seeded_runs_are_reproducible():
    coords, values, groups = small_problem()
    m1, h1 = fit_scar_field(coords, values, groups, small_config())
    m2, h2 = fit_scar_field(coords, values, groups, small_config())
    assert h1["train_loss"] == h2["train_loss"]
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    _, h3 = fit_scar_field(coords, values, groups, small_config(seed=7))
    assert h3["train_loss"] != h1["train_loss"]


def full_batch_loss(model, coords, values, groups):
    with torch.no_grad():
        pred = model(torch.from_numpy(coords))
    return compute_group_reconstruction_loss(pred, torch.from_numpy(values), torch.from_numpy(groups)).item()


def test_early_stopping_restores_best_weights():
    coords, values, groups = small_problem()
    # no dropout and one batch per epoch make the epoch loss an exact function of the weights;
    # a large constant rate makes the loss bounce so that the last epoch is not the best
    config = small_config(batch_size=10 ** 6, mc_samples=1, dropout_rate=0.0, base_lr=0.05, max_lr=0.05,
                          max_epochs=200, early_stopping_patience=8)
    model, history = fit_scar_field(coords, values, groups, config)
    assert history["stopped_early"] is True
    assert history["epochs_run"] == history["best_epoch"] + 8
    assert history["train_loss"][-1] > history["best_loss"]
    assert full_batch_loss(model, coords, values, groups) == pytest.approx(history["best_loss"], rel=1e-5)


def test_cancel_stops_before_the_next_batch_and_leaves_model_untouched():
    coords, values, groups = small_problem()
    start = BayesianNN(hidden_dim=32)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    calls = []

    def should_cancel():
        calls.append(1)
        return len(calls) > 4

    config = small_config(max_epochs=50)
    assert len(create_complete_group_batches(ScarReconstructionDataset(coords, values, groups), config.batch_size)) == 3
    # polled before each of the 3 batches per epoch: the 5th poll is epoch 2, batch 2
    with pytest.raises(TrainingCancelled, match=r"cancelled at epoch 2 of 50 \(batch 2 of 3\); nothing was saved"):
        fit_scar_field(coords, values, groups, config, should_cancel=should_cancel, model=start)
    assert len(calls) == 5
    for key, value in start.state_dict().items():
        assert torch.equal(value, before[key])


def test_progress_callback_fields(monkeypatch):
    monkeypatch.setattr(training, "PROGRESS_INTERVAL_S", 0.0)
    coords, values, groups = small_problem()
    reports: list[TrainingProgress] = []
    _, history = fit_scar_field(coords, values, groups, small_config(max_epochs=6), progress_callback=reports.append)
    assert [r.epoch for r in reports] == list(range(1, 7))
    assert all(r.max_epochs == 6 and r.elapsed_s >= 0 and r.eta_s is not None and r.eta_s >= 0 for r in reports)
    assert [r.loss for r in reports] == history["train_loss"]
    assert reports[-1].best_loss == history["best_loss"] and reports[-1].eta_s == 0
    assert all(1e-3 <= r.learning_rate <= 1e-2 for r in reports)
    elapsed = [r.elapsed_s for r in reports]
    assert elapsed == sorted(elapsed)


def test_progress_callback_is_throttled_but_reports_last_epoch():
    coords, values, groups = small_problem()
    reports = []
    _, history = fit_scar_field(coords, values, groups, small_config(max_epochs=30), progress_callback=reports.append)
    assert 1 <= len(reports) <= 30 // 1
    assert reports[-1].epoch == 30
    assert all(b.elapsed_s - a.elapsed_s >= 0.2 for a, b in zip(reports[:-2], reports[1:-1]))


def test_fine_tuning_freezes_first_linear_layers():
    coords, values, groups = small_problem()
    base, _ = fit_scar_field(coords, values, groups, small_config(max_epochs=5))
    before = [layer.weight.detach().clone() for layer in base.linear_layers()]
    tuned, _ = fit_scar_field(coords, values, groups, small_config(max_epochs=5, seed=3), model=base, frozen_layers=2)
    after = [layer.weight.detach() for layer in tuned.linear_layers()]
    assert torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])
    assert all(not torch.equal(a, b) for a, b in zip(after[2:], before[2:]))
    assert all(p.requires_grad for p in tuned.parameters())
    assert all(torch.equal(l.weight, b) for l, b in zip(base.linear_layers(), before))  # caller's copy untouched


@pytest.mark.parametrize("bad", [-1, 5, 2.5])
def test_invalid_frozen_layers(bad):
    coords, values, groups = small_problem()
    with pytest.raises(CardioScarError, match="frozen_layers must be an integer from 0 to 4"):
        fit_scar_field(coords, values, groups, small_config(max_epochs=1), model=BayesianNN(hidden_dim=32),
                       frozen_layers=bad)
