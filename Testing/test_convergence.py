"""The convergence test that ends a one-cycle run (``TrainingConfig.convergence_tolerance``).

Real torch training on small data: a run still falling at the end of its schedule is continued
with lower-rate phases and says whether it converged; a converged run is not; the documented
configuration has no test; the history survives a checkpoint.
"""

import numpy as np
import pytest

from cardioscar.errors import CardioScarError
from cardioscar.fit import training
from cardioscar.fit.checkpoint import build_checkpoint, load_checkpoint, save_checkpoint
from cardioscar.fit.training import TrainingConfig, describe_stop, fit_scar_field


#: A share of the targets' variance that the 40-epoch runs below still lose faster than.
TOLERANCE = 0.001


def falling_problem(seed: int = 0):
    """Two-node groups along x with a sharp step: a 16-unit network needs many epochs for it."""
    rng = np.random.default_rng(seed)
    coordinates = rng.random((1200, 3)).astype(np.float32)
    groups = np.repeat(np.arange(600), 2)
    targets = (coordinates[:, 0] > 0.5).astype(np.float32)
    return coordinates, targets, groups


def short_fast(**overrides) -> TrainingConfig:
    values = dict(max_epochs=40, hidden_dim=16, num_threads=1, convergence_tolerance=TOLERANCE)
    values.update(overrides)
    return TrainingConfig.fast(**values)


def test_a_run_still_falling_at_its_budget_is_continued_and_ends_converged_or_says_not(caplog):
    coordinates, targets, groups = falling_problem()
    with caplog.at_level("INFO", logger="cardioscar.fit.training"):
        _, history = fit_scar_field(coordinates, targets, groups, short_fast(), device="cpu")
    extension = round(training.EXTENSION_SHARE * 40)
    assert history["extensions"] >= 1, history["convergence_fall"]
    assert history["epochs_run"] == 40 + extension * history["extensions"]
    assert len(history["learning_rate"]) == history["epochs_run"]
    # each added phase starts below the first phase's peak and ends at the base rate
    added = history["learning_rate"][40:]
    assert max(added) <= training.EXTENSION_PEAK_SHARE * 1e-2 + 1e-12
    assert added[-1] == pytest.approx(1e-4, rel=1e-6)
    assert "not converged yet: over the last 20 % of the schedule the group loss fell by" in caplog.text
    if history["converged"]:
        assert history["stop_reason"] == "converged" and history["convergence_fall"] <= TOLERANCE
    else:
        assert history["stop_reason"] == "budget" and history["extensions"] == training.MAX_EXTENSIONS
        assert history["convergence_fall"] > TOLERANCE and "not converged after" in caplog.text


def test_the_added_phases_fit_the_groups_closer_than_the_budget_alone():
    coordinates, targets, groups = falling_problem()
    _, budget = fit_scar_field(coordinates, targets, groups, short_fast(convergence_tolerance=0.0), device="cpu")
    _, tested = fit_scar_field(coordinates, targets, groups, short_fast(), device="cpu")
    assert budget["converged"] is None and budget["stop_reason"] == "budget" and budget["epochs_run"] == 40
    assert tested["extensions"] >= 1 and tested["final_loss"] < budget["final_loss"]


def test_a_converged_run_ends_at_its_budget_and_says_so(caplog):
    """Same first phase, a tolerance above the fall it measured: no phase is added."""
    coordinates, targets, groups = falling_problem()
    _, probe = fit_scar_field(coordinates, targets, groups, short_fast(), device="cpu")
    first_fall = probe["convergence_fall"] if probe["extensions"] == 0 else None
    tolerance = 0.9 if first_fall is None else min(0.9, 2 * first_fall + 0.01)
    with caplog.at_level("INFO", logger="cardioscar.fit.training"):
        _, history = fit_scar_field(coordinates, targets, groups, short_fast(convergence_tolerance=tolerance),
                                    device="cpu")
    assert history["converged"] is True and history["stop_reason"] == "converged"
    assert history["extensions"] == 0 and history["epochs_run"] == 40
    assert 0 <= history["convergence_fall"] <= tolerance
    assert "converged: over the last 20 % of the schedule" in caplog.text and describe_stop(history) == "converged"


def test_the_measurement_does_not_change_the_training():
    """The test measures with dropout off and no random draw: the first phase is the plain run."""
    coordinates, targets, groups = falling_problem()
    _, plain = fit_scar_field(coordinates, targets, groups, short_fast(convergence_tolerance=0.0), device="cpu")
    _, tested = fit_scar_field(coordinates, targets, groups, short_fast(convergence_tolerance=0.9), device="cpu")
    assert tested["train_loss"] == plain["train_loss"]


def test_the_documented_configuration_has_no_convergence_test():
    assert TrainingConfig().convergence_tolerance == 0.0
    coordinates, targets, groups = falling_problem()
    config = TrainingConfig(batch_size=600, max_epochs=6, hidden_dim=16, num_threads=1)
    _, history = fit_scar_field(coordinates, targets, groups, config, device="cpu")
    assert history["converged"] is None and history["extensions"] == 0 and history["epochs_run"] == 6
    assert describe_stop(history) == "ran its epochs (no convergence test)"


@pytest.mark.parametrize("overrides, message", [
    (dict(convergence_tolerance=-0.1), r"convergence_tolerance must be in \[0, 1\)"),
    (dict(convergence_tolerance=1.0), r"convergence_tolerance must be in \[0, 1\)"),
    (dict(convergence_tolerance=True), r"convergence_tolerance must be in \[0, 1\)"),
    (dict(convergence_tolerance=0.01, schedule="cyclical"), "convergence_tolerance needs schedule 'onecycle'"),
])
def test_bad_tolerances_are_refused(overrides, message):
    with pytest.raises(CardioScarError, match=message):
        TrainingConfig(**{"schedule": "onecycle", **overrides})


def test_the_stop_is_kept_in_the_checkpoint(tmp_path):
    coordinates, targets, groups = falling_problem()
    config = short_fast(max_epochs=10)
    model, history = fit_scar_field(coordinates, targets, groups, config, device="cpu")
    path = tmp_path / "model.pth"
    save_checkpoint(build_checkpoint(model, history, config, {"n_nodes": 1200}), path)
    loaded = load_checkpoint(path)
    for key in ("stop_reason", "converged", "extensions", "convergence_fall"):
        assert loaded["history"][key] == history[key]
    assert TrainingConfig.from_dict(loaded["hyperparameters"]).convergence_tolerance == TOLERANCE
    assert describe_stop(loaded["history"]) == describe_stop(history)


def test_an_old_history_is_described_from_what_it_has():
    assert describe_stop({"stopped_early": True}) == "stopped by the patience"
    assert describe_stop({"stopped_early": False}) == "ran its epochs (no convergence test)"
    assert describe_stop({"stop_reason": "budget", "converged": False, "extensions": 2}) == \
        "not converged after 2 further phases: the loss was still falling"
