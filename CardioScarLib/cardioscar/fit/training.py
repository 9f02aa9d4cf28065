"""Fitting the scar field to the group constraints.

``fit_scar_field`` is the one training loop behind every face (CLI, Python API, Slicer). Its
maths at the documented defaults is the documented method: complete-group batches of ~10,000
rows, the mean of ``mc_samples`` dropout passes inside the group loss, Adam with a triangular
cyclical learning rate stepped per batch, early stopping on the epoch's mean loss. It is
organised for speed without changing that maths:

* on the CPU, a step is :class:`cardioscar.cpu_step.GroupLossStep`: chunks of whole groups run
  forward, loss and a hand-written backward while in cache, on one worker per torch thread, the
  deterministic layers before the first dropout once per row (see that module);
* on a GPU, the ``mc_samples`` passes are one autograd forward over the batch repeated
  ``mc_samples`` times (dropout masks are drawn per row, so this is the same distribution as
  separate passes), and the epoch loss stays on the device until the epoch ends;
* data, per-batch group indices and group targets are prepared once and stay on the device;
* subnormal floats are flushed to zero while training (a trained network's saturated sigmoid
  produces them and they make CPU matmuls several times slower).

``TrainingConfig.fast()`` is a preset for interactive use (see its docstring).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from scipy.spatial import cKDTree

from cardioscar.fit.batching import ScarReconstructionDataset, create_complete_group_batches, group_means, group_sums
from cardioscar.fit.cpu_step import ROWS_PER_CHUNK, GroupLossStep, chunk_batch
from cardioscar.fit.devices import as_device, cpu_workers, flushed_denormals
from cardioscar.fit.engines import BayesianNN
from cardioscar.fit.config import TrainingConfig
from cardioscar.io.checks import MAX_SEED
from cardioscar.errors import CardioScarError, TrainingCancelled

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.2
#: A fit whose best loss is above this fraction of the group targets' variance explains almost
#: nothing of them (healthy fits of the phantoms end near 1 % of it; collapsed ones near 85 %).
FAILED_FIT_FRACTION = 0.5
#: How many times a failed fit is trained again, each time with a third of the peak rate before.
MAX_RETRIES = 2
#: A group the field ignores: its fitted mean is more than this far from its target (a drawn scar
#: pixel fitted as background, or the reverse, with the sigmoid saturated on the wrong side: a
#: group fitted part-way still passes a gradient) while the mean target of its ``NEIGHBOUR_GROUPS``
#: nearest groups is within ``NEIGHBOUR_AGREEMENT`` of its own (a patch of the targets, not a lone
#: pixel that a smooth field cannot follow, such as a scar rule's noise).
IGNORED_GROUP_MISS = 0.9
NEIGHBOUR_AGREEMENT = 0.5
#: The group itself and its nearest groups by centroid (in mm): on a slice, its closest pixels.
NEIGHBOUR_GROUPS = 5
#: A fit whose ignored groups hold more than this share of the group targets' variance has stalled
#: in a poor minimum: the sigmoid is saturated on the wrong side over that patch, so the group loss
#: passes almost no gradient there and the convergence test sees a flat loss. Healthy fast-preset
#: fits of the phantom families and EMIDEC leave at most 5.4 % there, stalled ones 10-22 %
#: (Testing/benchmarks/ROBUSTNESS.md, *Stalled fits*).
STALLED_FIT_FRACTION = 0.08
#: A kept fit whose ignored groups hold at least this share (and at most the stall share) is named
#: in the log, not retried, unless they are a missed scar patch (``MISSED_SCAR_GROUPS``: EMIDEC
#: P026's one-slice patch left 5.7 %, and another seed fits it). Below it, the specks of healthy
#: fits stay unsaid: with the prior 0-0.5 % on EMIDEC (P022's labels 0.2 %,
#: 3 groups), the nsd rule's 0-1.1 % (Testing/benchmarks/ROBUSTNESS.md, *Stalled fits*).
SAID_IGNORED_FRACTION = 0.02
#: A fit that ignores at least this many groups whose targets are scar (>= 0.5), calling them
#: healthy, with its ignored groups holding at least ``SAID_IGNORED_FRACTION`` of the variance, has
#: missed a scar patch under the stall share and is retried from the next seed like a stalled one: a
#: small infarct's lone patch holds little of the variance yet is part of the patient's scar (EMIDEC
#: P026's 12-pixel patch on one slice, 0.40 ml: 11 groups, 5.7 %, called background by training
#: seeds 0 and 42; seeds 1 and 43 fit it). On the larger scars of 25 other EMIDEC cases the fast
#: preset's fits ignore up to 13 scar groups, holding at most 1.5 % (P098 13 groups 1.5 %, P057 7
#: groups 1.0 %), so the count alone would retry them, the share alone any patch of healthy targets;
#: together they retry P026 only there and none of the 8 segmented phantoms
#: (Testing/benchmarks/ROBUSTNESS.md, *Stalled fits*).
MISSED_SCAR_GROUPS = 6
#: A scar fraction a group's target must reach for the faint-scar test below; targets of 1 (drawn
#: labels) are left to the ignored-group tests above.
FAINT_SCAR_TARGET = 0.25
#: A group whose fitted mean is below this share of its fractional target (``FAINT_SCAR_TARGET`` up to,
#: not including, 1) calls its scar fainter than half of what the slice says. A fit that does so on
#: ``MISSED_SCAR_GROUPS`` or more coherent groups holding at least ``SAID_IGNORED_FRACTION`` of the
#: targets' variance has missed a faint scar patch, which the 0.9 miss of ``IGNORED_GROUP_MISS`` can
#: never see on a fraction map (a 0.5 target cannot be missed by 0.9), and is retried from the next seed
#: like a missed scar. ACDC's fraction map with its middle slice held out (fast preset, training seeds
#: 0-5): seeds 1 and 2 fitted the faint patch of the neighbouring slices (targets 0.47-0.50) at
#: 0.08-0.17 over 61 and 48 groups holding 10 % and 5.4 % of the variance (loss 13 % and 8 % of it), and
#: called the held-out scar at Dice 0.155 and 0.168; seeds 0, 3, 4, 5 missed no group by more than 0.15
#: (loss 0.4-0.5 % of the variance) and scored 0.61-0.80 (Testing/benchmarks/ROBUSTNESS.md,
#: *A faint scar patch missed on a fraction map*).
FAINT_SCAR_RATIO = 0.5
#: A run that may be retried stops once its loss, above the failed-fit level, has been exactly
#: the same for this many epochs: then no unit passes a gradient (the output saturated or every
#: ReLU died), while with dropout a live network's loss changes every epoch.
DEAD_EPOCHS = 20
#: A run has diverged when even the lowest epoch loss over its last ``CONVERGENCE_TAIL`` of epochs
#: is above its best epoch's loss by more than this share of the group targets' variance: the
#: network left the fit it had and never came back to it, though its loss did not freeze exactly
#: (dropout still moves it, so ``DEAD_EPOCHS`` does not see it). Only the best epoch's weights are
#: kept then, possibly taken mid-cycle at a high rate, not where a run converged. The unseen label
#: map s7 (training seed 1, no prior) rose from 0.0001 to 0.021 (81 % of its targets' variance) at
#: epoch 230 and stayed there; in healthy fast-preset runs the best epoch lies in that last fifth (a
#: late rise of 0: the 8 segmented seeds, the demo, EMIDEC cases; Testing/benchmarks/ROBUSTNESS.md,
#: *Diverged runs*).
DIVERGED_FRACTION = 0.1
#: A run that may be retried stops as diverged once each of its last this many epoch losses has
#: been above its best so far by more than ``DIVERGED_FRACTION`` of the targets' variance, that best
#: explaining at least half of it (a fit to lose): the epochs left are wasted, as the retry trains
#: again from scratch. The unseen label map s7 at training seed 1 sat there for its last 372
#: epochs (now stopped at epoch 278 of 600); of 89 fast-preset runs that neither died nor diverged
#: (the unseen family's label maps off and auto and its scheduled cases, the segmented seeds, 3
#: EMIDEC cases) none sat there longer than 18 epochs in a row, most 0-4
#: (Testing/benchmarks/ROBUSTNESS.md, *Diverged runs*).
DIVERGED_EPOCHS = 50
#: Millimetres per normalised unit assumed when ``fit_scar_field`` is not told the mesh's
#: extent (a heart's bounding box is 80-120 mm).
DEFAULT_EXTENT_MM = 100.0
#: Rows per forward pass when a trained network's group loss is measured (bounds the memory).
ROWS_PER_EVAL = 65536
#: The convergence test (``TrainingConfig.convergence_tolerance``) compares the dropout-free group
#: loss at the start of this last share of a one-cycle schedule with the loss at its end.
CONVERGENCE_TAIL = 0.2
#: A schedule that ends unconverged is followed by a cosine phase of this share of ``max_epochs``,
#: from this share of ``max_lr`` down to ``base_lr``, at most ``MAX_EXTENSIONS`` times.
EXTENSION_SHARE = 0.5
EXTENSION_PEAK_SHARE = 0.1
MAX_EXTENSIONS = 2


class CyclicalLR:
    """Triangular cyclical learning rate, stepped once per batch.

    Iteration ``i`` (0-based) uses ``base + (max - base) * max(0, 1 - |i / step - 2c + 1|)`` with
    ``c = floor(1 + i / (2 step))``: ``base_lr`` at 0, ``max_lr`` at ``step_size``, back to
    ``base_lr`` at ``2 step_size``. The rate for iteration 0 is set on construction.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float = 1e-3, max_lr: float = 1e-2,
                 step_size: int = 2000) -> None:
        self.optimizer = optimizer
        self.base_lr = float(base_lr)
        self.max_lr = float(max_lr)
        self.step_size = int(step_size)
        self.iteration = 0
        self._apply()

    def rate(self, iteration: int) -> float:
        """Learning rate of a given iteration."""
        cycle = math.floor(1 + iteration / (2 * self.step_size))
        x = abs(iteration / self.step_size - 2 * cycle + 1)
        return self.base_lr + (self.max_lr - self.base_lr) * max(0.0, 1.0 - x)

    def _apply(self) -> None:
        lr = self.rate(self.iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        """Advance to the next iteration."""
        self.iteration += 1
        self._apply()

    def get_last_lr(self) -> float:
        """The learning rate the next optimizer step will use."""
        return float(self.optimizer.param_groups[0]["lr"])


class OneCycleCosine(CyclicalLR):
    """Linear warm-up from ``base_lr`` to ``max_lr`` over the first 10 % of ``total_steps``, then
    a cosine decay back to ``base_lr``: fast early progress, then fine convergence in few epochs."""

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, max_lr: float,
                 total_steps: int) -> None:
        self.total_steps = max(int(total_steps), 1)
        self.warmup = max(int(0.1 * self.total_steps), 1)
        super().__init__(optimizer, base_lr, max_lr, step_size=self.warmup)

    def rate(self, iteration: int) -> float:
        if iteration < self.warmup:
            return self.base_lr + (self.max_lr - self.base_lr) * iteration / self.warmup
        return _cosine(self.base_lr, self.max_lr, (iteration - self.warmup) / max(self.total_steps - self.warmup, 1))


class CosineDecay(CyclicalLR):
    """A cosine from ``max_lr`` down to ``base_lr`` over ``total_steps``, without warm-up: the
    phase that continues an unconverged one-cycle run from where its weights stand."""

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, max_lr: float,
                 total_steps: int) -> None:
        self.total_steps = max(int(total_steps), 1)
        super().__init__(optimizer, base_lr, max_lr, step_size=self.total_steps)

    def rate(self, iteration: int) -> float:
        return _cosine(self.base_lr, self.max_lr, iteration / self.total_steps)


def _cosine(base_lr: float, max_lr: float, progress: float) -> float:
    """The rate ``progress`` (0..1, clipped above) along a cosine from ``max_lr`` down to ``base_lr``."""
    return base_lr + 0.5 * (max_lr - base_lr) * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@dataclass
class TrainingProgress:
    """One progress report. ``epoch`` is 1-based; ``eta_s`` estimates the time to the epoch at
    which training would stop without further improvement (``None`` before the first epoch)."""

    epoch: int
    max_epochs: int
    loss: float
    best_loss: float
    learning_rate: float
    elapsed_s: float
    eta_s: float | None


#: seconds of training between two logged progress lines
PROGRESS_LOG_INTERVAL_S = 5.0


def progress_log_lines(interval_s: float = PROGRESS_LOG_INTERVAL_S) -> Callable[[TrainingProgress], None]:
    """A progress callback that logs a line every ``interval_s`` seconds of training and at the
    last epoch, never per epoch.

    Why: where the messages go to a file or a pipe (a redirected run, a cluster job's log), a
    progress bar rewrites its line with carriage returns: the log became one line of thousands of
    characters, and the messages logged during training (the shape prior's choice) were glued into
    it. ``cardioscar demo`` logs these lines, and ``cardioscar train`` when stderr is no terminal.
    A run the quality checks start again restarts its clock: its first epoch is said at once, as
    the first run's (kept against the earlier run's time, it was silent until that time was past)."""
    last = [-interval_s]

    def report(progress: TrainingProgress) -> None:
        if progress.elapsed_s < last[0]:  # a new run: its clock starts again
            last[0] = -interval_s
        if progress.elapsed_s - last[0] >= interval_s or progress.epoch == progress.max_epochs:
            last[0] = progress.elapsed_s
            logger.info("  epoch %d/%d  loss %.5f  best %.5f  (%.0f s)", progress.epoch, progress.max_epochs,
                        progress.loss, progress.best_loss, progress.elapsed_s)

    return report


@dataclass
class _Batch:
    """A complete-group batch prepared once on the device."""

    inputs: torch.Tensor        # (mc * n, 3): the batch repeated mc times
    inverse: torch.Tensor       # (n,) local group index 0..n_groups-1
    inv_counts: torch.Tensor    # (n_groups,) 1 / group size (1 / sum of the row weights)
    group_targets: torch.Tensor  # (n_groups,)
    n_rows: int
    n_groups: int
    prior_logit: torch.Tensor | None = None  # (mc * n, 1) the shape prior's log-odds, repeated like inputs
    row_weights: torch.Tensor | None = None  # (n,) the rows' slice-profile weights; None: all 1 (the box)
    residual_bound: float = math.inf  # logits the network's output may move the prior by (inf: unbounded)


def _prepare_batches(dataset: ScarReconstructionDataset, batch_size: int, mc_samples: int,
                     device: torch.device) -> list[_Batch]:
    _, inverse_np = np.unique(dataset.group_ids, return_inverse=True)
    coords = torch.from_numpy(dataset.coordinates).to(device)
    targets = torch.from_numpy(dataset.intensities.reshape(-1)).to(device)
    inverse_all = torch.from_numpy(inverse_np.reshape(-1).astype(np.int64)).to(device)
    weights_all = None if dataset.row_weights is None else \
        torch.from_numpy(dataset.row_weights.astype(np.float32)).to(device)
    prepared = []
    for start, end in create_complete_group_batches(dataset, batch_size):
        first, last = int(inverse_np[start]), int(inverse_np[end - 1])
        n_groups = last - first + 1
        inverse = inverse_all[start:end] - first
        weights = None if weights_all is None else weights_all[start:end]
        counts = group_sums(torch.ones_like(targets[start:end]), inverse, n_groups, weights)
        group_targets = group_sums(targets[start:end], inverse, n_groups, weights) / counts
        inputs = coords[start:end].repeat(mc_samples, 1) if mc_samples > 1 else coords[start:end]
        prior = None
        if dataset.prior_logit is not None:
            prior = torch.from_numpy(dataset.prior_logit[start:end]).to(device).view(-1, 1).repeat(mc_samples, 1)
        prepared.append(_Batch(inputs.contiguous(), inverse, 1.0 / counts, group_targets, end - start, n_groups,
                               prior, weights, dataset.residual_bound))
    return prepared


def _batch_loss(model: BayesianNN, batch: _Batch, mc_samples: int) -> torch.Tensor:
    """Group loss of the MC-dropout mean prediction (same maths as the documented loss), each
    group's mean weighted by its rows' slice-profile weights when there are any."""
    predictions = model(batch.inputs, prior_logit=batch.prior_logit,
                        residual_bound=batch.residual_bound).view(mc_samples, batch.n_rows).mean(dim=0)
    sums = group_sums(predictions, batch.inverse, batch.n_groups, batch.row_weights)
    return ((sums * batch.inv_counts - batch.group_targets) ** 2).mean()


def _freeze(model: BayesianNN, frozen_layers: int) -> None:
    linears = model.linear_layers()
    if isinstance(frozen_layers, bool) or not isinstance(frozen_layers, (int, np.integer)) \
            or not 0 <= frozen_layers <= len(linears) - 1:
        raise CardioScarError(
            f"frozen_layers must be an integer from 0 to {len(linears) - 1} (the model has "
            f"{len(linears)} Linear layers and the last must stay trainable), got {frozen_layers!r}")
    for index, layer in enumerate(linears):
        for parameter in layer.parameters():
            parameter.requires_grad_(index >= frozen_layers)


def _init_output_bias(net: BayesianNN, dataset: ScarReconstructionDataset) -> None:
    """Start the output at the mean target (of the rows, weighted as in the group means); on a
    shape prior, at the prior itself (residual 0)."""
    mean_target = float(np.clip(np.average(dataset.intensities.reshape(-1), weights=dataset.row_weights), 0.01, 0.99))
    with torch.no_grad():
        net.linear_layers()[-1].bias.fill_(0.0 if dataset.prior_logit is not None
                                           else math.log(mean_target / (1.0 - mean_target)))


def _warn_about_the_kept_run(history: dict, retried: bool, failed_level: float, variance: float) -> bool:
    """Say the worst that is wrong with the kept run, once, with what to do about it; True when it
    warned (what :func:`describe_stop` points at: ``history["warned"]``).

    Why one line, in this order: the conditions overlap (a run that explains little of the variance
    also ignores groups), and the first that holds names the remedy that matters most; each remedy
    says whether the fast preset's retries (``retried``: ``TrainingConfig.retry_failed_fit``) already
    tried it."""
    # The advice is part of each format string, not a value filled in: a face rewords a record's own
    # words (the Logic's console said "--preset fast" for its options.preset), never its values.
    another_seed = (" (the fast preset tried several)" if retried else
                    " or with the fast preset (--preset fast), which retries such fits")
    if history["best_loss"] > failed_level > 0:
        advice = ("even with lower peak rates; check the targets and the slab half-width" if retried
                  else "the all-background collapse of small or imbalanced data; the fast preset (--preset fast, "
                       "TrainingConfig.fast(), with retry_failed_fit) retrains such fits")
        logger.warning("the result explains %s of the targets' variance (best loss %.3g): " + advice,
                       _explained(history["best_loss"], variance), history["best_loss"])
    elif history["diverged"]:
        logger.warning("the result %s; train again with a lower --max-lr or another --seed"
                       + (" (the fast preset's retries fitted worse)" if retried else
                          ", or with the fast preset (--preset fast), which retries such runs"), _diverged(history))
    elif history["ignored_share"] > STALLED_FIT_FRACTION:
        logger.warning("the result is %s; train again with another --seed" + another_seed + ", or give the slices' "
                       "scar as a shape prior (--shape-prior on) where they are drawn labels", _stalled(history))
    elif _missed_scar(history):
        logger.warning("the result %s; train again with another --seed" + another_seed, _missed(history))
    elif _missed_faint_scar(history):
        logger.warning("the result %s; train again with another --seed" + another_seed, _faint(history))
    else:
        if history["ignored_share"] >= SAID_IGNORED_FRACTION:
            # under the stall test's share, but a patch all the same, of healthy targets called scar or of
            # fewer scar groups than a missed scar patch: said, not retried (nor warned)
            logger.info("the result ignores %d groups (%.1f %% of the targets' variance; a stalled fit holds over "
                        "%.0f %%): a patch of the targets it calls the other class, such as a small scar on one slice; "
                        "if it matters, train again with another --seed", history["ignored_groups"],
                        100 * history["ignored_share"], 100 * STALLED_FIT_FRACTION)
        return False
    return True


def fit_scar_field(coordinates, intensities, group_ids, config: TrainingConfig | None = None,
                   device: str | torch.device | None = None,
                   progress_callback: Callable[[TrainingProgress], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None, model: BayesianNN | None = None,
                   frozen_layers: int = 0, extent_mm=None, prior_logit=None,
                   row_weights=None, residual_bound: float = math.inf) -> tuple[BayesianNN, dict]:
    """Train a network whose group means match the group targets; return it with its history.

    ``coordinates`` (K, 3) normalised, ``intensities`` (K,) or (K, 1) in [0, 1], ``group_ids``
    (K,). ``model``: a network to continue from (fine-tuning); it is copied, never modified, and
    keeps its own architecture. ``frozen_layers``: how many of its first Linear layers to keep
    fixed. ``extent_mm`` (3,): the millimetres one normalised unit spans on each axis (the
    scaler's max - min), which places a Fourier encoding's frequencies in mm; without it a unit
    is taken as ``DEFAULT_EXTENT_MM``. ``prior_logit`` (K,): a fixed log-odds per row added to
    the network's output before the sigmoid (the shape prior, :mod:`cardioscar.shape_prior`): the
    network learns the residual, and a fresh one starts with output bias 0 (the prior as it is).
    ``residual_bound``: that residual enters as ``bound * tanh(f / bound)`` logits (the prior's
    :attr:`cardioscar.shape_prior.ShapePrior.residual_bound`, applied alike at prediction; inf: as it is).
    ``row_weights`` (K,): each row's weight in its group's mean (the gaussian slice profile,
    :mod:`cardioscar.prepare.mapping`): every group mean below is ``sum(w f) / sum(w)``; ``None``:
    the plain mean (the box). ``should_cancel()`` is polled before every batch (a large mesh's epoch can take
    seconds; the Slicer panel pumps its events from this hook); when it returns True,
    :class:`TrainingCancelled` is raised and nothing is returned.

    The returned model holds the weights that started the best epoch (so with a single batch per
    epoch and no dropout its loss is exactly ``best_loss``), in eval mode, on ``device``.
    History keys: ``train_loss``, ``learning_rate`` (per epoch), ``best_loss``, ``best_epoch`` and
    ``converged_epoch`` (1-based epoch of the best loss), ``epochs_run``, ``stopped_early``,
    ``seconds``, ``device``, ``target_variance`` (of the group targets), ``dead_epoch`` (the
    epoch at which a run that could be retried was found dead and stopped, or None),
    ``retried_max_lr`` (the peak rate of the last retry, see ``TrainingConfig.retry_failed_fit``,
    or None), ``retry_kept`` (the weights come from a retry), ``max_lr`` (the peak rate the
    returned weights were trained with; see :func:`config_used`), ``final_loss`` (the returned
    weights' group loss with dropout off, on which runs are compared), ``ignored_groups`` and
    ``ignored_share`` (the groups those weights ignore, see ``IGNORED_GROUP_MISS``, and their share
    of the targets' variance: above ``STALLED_FIT_FRACTION`` the run stalled), ``ignored_scar_groups``
    (how many of them have a scar target, >= 0.5, called healthy: a missed scar patch),
    ``faint_scar_groups`` and ``faint_scar_share`` (the coherent fractional scar groups fitted under
    ``FAINT_SCAR_RATIO`` of their targets, and their share of the variance), ``late_rise`` (how far
    the lowest epoch loss of the run's last ``CONVERGENCE_TAIL`` stayed above the best, in shares of
    the targets' variance) and ``diverged`` (it exceeds ``DIVERGED_FRACTION``; ``stop_reason`` is then
    ``"diverged"`` and ``converged`` None, as the convergence test measured weights that were not kept),
    ``diverged_epoch`` (the epoch at which a run that could be retried was stopped as diverged,
    ``DIVERGED_EPOCHS``, or None; its ``late_rise`` is then measured over those epochs, so it is above
    ``DIVERGED_FRACTION`` by construction and reads as "stopped", not as how far the loss rose: see
    :func:`_late_rise`),
    ``longest_rise`` (the most epochs in a row the loss stayed above its best so far by the diverged share,
    counted once that best explains at least half the variance),
    ``seed`` (the kept run's; a stalled run is retried from the next seed) and ``attempts`` (one
    dict per run: ``max_lr``, ``seed``, ``epochs_run``, ``best_epoch``, ``best_loss``,
    ``final_loss``, ``ignored_share``, ``ignored_scar_groups``, ``dead_epoch``, ``late_rise``,
    ``diverged``, ``diverged_epoch``, ``longest_rise``).
    """
    config = config if config is not None else TrainingConfig()
    device = as_device(device)
    dataset = ScarReconstructionDataset(coordinates, intensities, group_ids, prior_logit=prior_logit,
                                        row_weights=row_weights, residual_bound=residual_bound)
    variance = _group_target_variance(dataset)
    failed_level = FAILED_FIT_FRACTION * variance
    dead_level = failed_level if config.retry_failed_fit and variance > 0 else None

    extent = [DEFAULT_EXTENT_MM] * 3 if extent_mm is None else [float(e) for e in np.asarray(extent_mm).reshape(3)]
    coherent = _coherent_groups(dataset, extent)

    def run(attempt: TrainingConfig) -> tuple[BayesianNN, dict]:
        return _fit(dataset, attempt, device, progress_callback, should_cancel, model, frozen_layers, dead_level,
                    extent, coherent)

    net, history = run(config)
    attempts = [_attempt_summary(config, history)]
    kept, attempt, last, seconds = config, config, history, history["seconds"]
    for _ in range(MAX_RETRIES if dead_level is not None else 0):
        # the last run's own failure decides the remedy: a stall retry whose run died is a run that
        # died at that peak rate, so the next one lowers it; a last run without a failure but
        # worse than the kept one leaves the kept run's reason
        retry = _retry_reason(last, failed_level, variance) or _retry_reason(history, failed_level, variance)
        if retry is None:
            break
        reason, stalled = retry
        if stalled:  # the same start leads back into the same minimum, whatever the rate
            attempt = replace(attempt, seed=(attempt.seed + 1) % (MAX_SEED + 1))
            logger.warning("%s; training again from seed %d", reason, attempt.seed)
        else:
            attempt = _lowered_peak(attempt)
            logger.warning("%s; training again with max_lr %.3g", reason, attempt.max_lr)
        again_net, again = run(attempt)
        last = again
        seconds += again["seconds"]
        attempts.append(_attempt_summary(attempt, again))
        better = again["final_loss"] < history["final_loss"]
        logger.info("the run with max_lr %.3g ends at group loss %.4g against %.4g before: keeping the %s",
                    attempt.max_lr, again["final_loss"], history["final_loss"], "new run" if better else "earlier one")
        if better:
            net, history, kept = again_net, again, attempt
    history.update(target_variance=variance, retried_max_lr=None if attempt is config else attempt.max_lr,
                   retry_kept=kept is not config, max_lr=kept.max_lr, seed=kept.seed, seconds=seconds,
                   attempts=attempts)
    history["warned"] = _warn_about_the_kept_run(history, config.retry_failed_fit, failed_level, variance)
    return net, history


def _retry_reason(history: dict, failed_level: float, variance: float) -> tuple[str, bool] | None:
    """Why the run behind ``history`` must be trained again and whether it stalled (then it is
    retried from another seed, else with a lower peak rate), or None when it may be kept.

    A run that died was stopped part-way through its schedule: its best epoch is where the
    network stood before it collapsed, not where it converged, even when that epoch already
    explains more than half of the targets' variance (label-map seed 5 of the segmented phantoms
    with a 4 x 128 network: 0.036 at epoch 73, then the all-background field from epoch 74).
    """
    if history["dead_epoch"] is not None:
        return (f"the network died: its loss froze from epoch {history['dead_epoch'] - DEAD_EPOCHS + 1} of "
                f"{history['epochs_run']}, so its best epoch ({history['best_epoch']}, loss "
                f"{history['best_loss']:.3g}) is where it stood, not where it would have converged"), False
    if history["best_loss"] > failed_level:
        return f"the fit explains {_explained(history['best_loss'], variance)} of the targets' variance " \
               f"(best loss {history['best_loss']:.3g})", False
    if history["diverged"]:
        return f"the run {_diverged(history)}", False
    if history["ignored_share"] > STALLED_FIT_FRACTION:
        return f"the fit {_stalled(history)}", True
    if _missed_scar(history):  # a small patch: a poor minimum all the same, so another start
        return f"the fit {_missed(history)}", True
    if _missed_faint_scar(history):
        return f"the fit {_faint(history)}", True
    return None


def _missed_faint_scar(history: dict) -> bool:
    """Whether the run behind ``history`` called a faint scar patch of a fraction map at under
    ``FAINT_SCAR_RATIO`` of its targets (histories from before the count was kept have none)."""
    return _patch_missed(history, "faint_scar_groups", "faint_scar_share")


def _patch_missed(history: dict, groups: str, share: str) -> bool:
    """Whether ``history``'s count ``groups`` reaches ``MISSED_SCAR_GROUPS`` and its ``share`` of the
    variance ``SAID_IGNORED_FRACTION``: a patch that weighs, not a few groups at a scar's border."""
    return (history.get(groups) or 0) >= MISSED_SCAR_GROUPS and (history.get(share) or 0.0) >= SAID_IGNORED_FRACTION


def _faint(history: dict) -> str:
    """What a missed faint scar patch is, in words for the retry and the final warning."""
    return (f"misses a faint scar patch: it fits {history['faint_scar_groups']} groups whose scar fractions, and "
            f"their neighbours', are {FAINT_SCAR_TARGET} or more at under {FAINT_SCAR_RATIO:.0%} of them "
            f"({100 * history['faint_scar_share']:.1f} % of the targets' variance)")


def _missed_scar(history: dict) -> bool:
    """Whether the run behind ``history`` calls a scar patch healthy (``MISSED_SCAR_GROUPS``), one
    that weighs (``SAID_IGNORED_FRACTION``); histories from before the count was kept have none."""
    return _patch_missed(history, "ignored_scar_groups", "ignored_share")


def _missed(history: dict) -> str:
    """What a missed scar patch is, in words for the retry and the final warning."""
    return (f"misses a scar patch: it calls {history['ignored_scar_groups']} groups healthy whose targets, and their "
            f"neighbours', are scar (fitted more than {IGNORED_GROUP_MISS} from them; "
            f"{100 * history['ignored_share']:.1f} % of the targets' variance)")


def _stalled(history: dict) -> str:
    """What makes a run stalled, in words for the retry and the final warning."""
    return (f"stalled in a poor minimum: it ignores a patch of the targets ({history['ignored_groups']} groups "
            f"fitted more than {IGNORED_GROUP_MISS} from targets their neighbours share: scar called background or "
            f"the reverse) holding {100 * history['ignored_share']:.0f} % of the targets' variance")


def _diverged(history: dict) -> str:
    """What makes a run diverged, in words for the retry and the final warning."""
    stopped = history.get("diverged_epoch")
    span = (f"for its last {DIVERGED_EPOCHS} epochs" if stopped is not None
            else f"over its last {round(100 * CONVERGENCE_TAIL)} % of {history['epochs_run']} epochs")
    until = f" (stopped at epoch {stopped})" if stopped is not None else ""
    return (f"diverged: its loss rose after epoch {history['best_epoch']} (loss {history['best_loss']:.3g}) and "
            f"{span} came no nearer to it than {100 * history['late_rise']:.0f} % of the targets' variance{until}, "
            f"so the weights kept are that epoch's, taken part-way through the schedule")


def _attempt_summary(config: TrainingConfig, history: dict) -> dict:
    """One training run of :func:`fit_scar_field`, as its history's ``attempts`` lists it."""
    return {"max_lr": config.max_lr, "seed": config.seed, "epochs_run": history["epochs_run"],
            "best_epoch": history["best_epoch"], "best_loss": history["best_loss"], "final_loss": history["final_loss"],
            "ignored_share": history["ignored_share"], "ignored_scar_groups": history["ignored_scar_groups"],
            "faint_scar_groups": history.get("faint_scar_groups"), "faint_scar_share": history.get("faint_scar_share"),
            "dead_epoch": history["dead_epoch"], "late_rise": history["late_rise"], "diverged": history["diverged"],
            "diverged_epoch": history["diverged_epoch"], "longest_rise": history["longest_rise"]}


#: What a summary of a run that was warned about points at: the warning says what went wrong and
#: what to do, where the summary (the model's file line, a results table) has room for the state only.
SEE_WARNING = " (see the training's warning)"


def describe_stop(history: dict) -> str:
    """Why a run ended, in a few words for logs and summary tables (old histories: the budget or
    the patience, as ``stopped_early`` says). A stalled fit's loss stops falling too, so "converged"
    alone would read as a good fit: it is called a poor minimum, as is one that missed a scar patch.
    A poor or diverged run points at its warning (:data:`SEE_WARNING`) only when its history says one
    was given (``warned``): "(see the log)" pointed at nothing for a history without that record (an
    older checkpoint's, one built by hand), whose log is gone or never was."""
    reason = history.get("stop_reason") or ("patience" if history.get("stopped_early") else "budget")
    extensions = int(history.get("extensions") or 0)
    added = f" after {extensions} further phase{'s' if extensions > 1 else ''}" if extensions else ""
    see = SEE_WARNING if history.get("warned") else ""
    poor = ((history.get("ignored_share") or 0.0) > STALLED_FIT_FRACTION or _missed_scar(history)
            or _missed_faint_scar(history))
    if reason == "converged" and poor and not history.get("ignored_groups") and _missed_faint_scar(history):
        return (f"converged{added} in a poor minimum: {history['faint_scar_groups']} faint scar groups fitted under "
                f"{FAINT_SCAR_RATIO:.0%} of their targets{see}")
    if reason == "converged" and poor:
        return f"converged{added} in a poor minimum: {history['ignored_groups']} groups ignored{see}"
    if reason == "converged":
        return f"converged{added}"
    if reason == "budget" and history.get("converged") is False:
        return f"not converged{added}: the loss was still falling"
    if reason == "diverged":  # stopped DIVERGED_EPOCHS into the rise where it could be retried, else judged at its end
        stopped = history.get("diverged_epoch")
        early = "" if stopped is None else f"; stopped early at epoch {stopped}"
        return f"diverged: its loss rose after epoch {history.get('best_epoch')}, whose weights are kept{early}{see}"
    return {"budget": "ran its epochs (no convergence test)", "patience": "stopped by the patience",
            "dead": "stopped: the network died"}.get(reason, reason)


def variance_explained(loss: float, variance: float) -> float:
    """The fraction of the group targets' variance a fit with this loss explains: 1 for a perfect
    fit, 0 for the best constant field, below 0 for worse (the warnings and Slicer's summary table
    both report it)."""
    return 1.0 - loss / variance


def _explained(loss: float, variance: float) -> str:
    """``only 37 %`` of the variance, or ``none`` for a fit worse than the best constant field
    (a percentage below zero reads as a misprint)."""
    fraction = variance_explained(loss, variance)
    return f"only {100 * fraction:.0f} %" if fraction > 0 else "none"


def _with_peak(config: TrainingConfig, max_lr: float) -> TrainingConfig:
    """``config`` with peak rate ``max_lr`` (and a base rate no higher than it)."""
    return config if max_lr == config.max_lr else replace(config, max_lr=max_lr, base_lr=min(config.base_lr, max_lr))


def _lowered_peak(config: TrainingConfig) -> TrainingConfig:
    """``config`` with a third of its peak rate (a retry of a failed fit)."""
    return _with_peak(config, config.max_lr / 3)


def config_used(config: TrainingConfig, history: dict) -> TrainingConfig:
    """The configuration of the run whose weights :func:`fit_scar_field` returned with ``history``
    (checkpoints record it, so a retried fit is not described with the peak rate or seed that failed)."""
    used = _with_peak(config, history.get("max_lr", config.max_lr))
    seed = history.get("seed", config.seed)
    return used if seed == used.seed else replace(used, seed=seed)


def _group_target_variance(dataset: ScarReconstructionDataset) -> float:
    """Variance over groups of the group mean targets: the loss of the best constant field."""
    return float(_group_means(dataset, dataset.intensities.reshape(-1)).var())


def _coherent_groups(dataset: ScarReconstructionDataset, extent_mm) -> np.ndarray:
    """Per group: whether the mean target of it and its ``NEIGHBOUR_GROUPS - 1`` nearest groups (by
    centroid in mm) is within ``NEIGHBOUR_AGREEMENT`` of its own target. Only such a group, fitted
    outright wrong, is a patch the field ignores: a lone scar pixel among background ones (a scar
    rule's noise) is one a smooth field rightly does not follow. Computed once per fit (a k-d tree
    query over the groups, milliseconds)."""
    targets = _group_means(dataset, dataset.intensities.reshape(-1))
    centroids = np.stack([_group_means(dataset, dataset.coordinates[:, axis]) * float(extent_mm[axis])
                          for axis in range(3)], axis=1)
    _, nearest = cKDTree(centroids).query(centroids, k=min(NEIGHBOUR_GROUPS, len(targets)))
    local = targets[np.asarray(nearest).reshape(len(targets), -1)].mean(axis=1)
    return np.abs(local - targets) <= NEIGHBOUR_AGREEMENT


def _group_means(dataset: ScarReconstructionDataset, values: np.ndarray) -> np.ndarray:
    """Mean of per-row ``values`` over each group of ``dataset`` (in group order), weighted by the
    rows' slice-profile weights when the dataset has them."""
    _, inverse = np.unique(dataset.group_ids, return_inverse=True)
    return group_means(values, inverse, dataset.row_weights)[0]


def _fit(dataset: ScarReconstructionDataset, config: TrainingConfig, device: torch.device, progress_callback,
         should_cancel, model: BayesianNN | None, frozen_layers: int,
         dead_level: float | None = None, extent_mm=(DEFAULT_EXTENT_MM,) * 3,
         coherent: np.ndarray | None = None) -> tuple[BayesianNN, dict]:
    """One training run of :func:`fit_scar_field` (seeded, on ``device``, threads restored);
    ``dead_level``, ``coherent``: see :func:`_train_loop`."""
    previous_threads = torch.get_num_threads()
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    try:
        if config.num_threads is not None:
            torch.set_num_threads(config.num_threads)
        with torch.random.fork_rng(devices=fork_devices), flushed_denormals():
            torch.manual_seed(config.seed)
            if model is None:
                net = BayesianNN(3, config.hidden_dim, config.n_layers, config.dropout_rate,
                                 fourier_features=config.fourier_features)
                if net.encoding is not None:
                    net.encoding.draw(config.fourier_scale_mm, extent_mm)
                if config.init_output_bias:
                    _init_output_bias(net, dataset)
            else:
                net = copy.deepcopy(model)
            net = net.to(device)
            _freeze(net, frozen_layers)
            return net, _train(net, dataset, config, device, progress_callback, should_cancel, dead_level, coherent)
    finally:
        torch.set_num_threads(previous_threads)


def _train(net: BayesianNN, dataset: ScarReconstructionDataset, config: TrainingConfig,
           device: torch.device, progress_callback, should_cancel, dead_level: float | None,
           coherent: np.ndarray | None) -> dict:
    with cpu_workers(device) as pool:
        return _train_loop(net, dataset, config, device, _batch_steps(net, dataset, config, device, pool),
                           progress_callback, should_cancel, dead_level, coherent)


def _batch_steps(net: BayesianNN, dataset: ScarReconstructionDataset, config: TrainingConfig,
                 device: torch.device, pool) -> list[Callable[[], torch.Tensor | float]]:
    """One callable per batch that sets the parameters' gradients and returns the batch loss.

    On the CPU: :class:`cardioscar.cpu_step.GroupLossStep` (chunks of whole groups, hand-written
    backward, a mask seed per step from torch's generator). Elsewhere: :func:`_autograd_steps`.
    """
    if device.type != "cpu":
        return _autograd_steps(net, dataset, config, device)
    step = GroupLossStep(net, config.mc_samples, pool)
    nodes_per_chunk = max(1, ROWS_PER_CHUNK // step.passes)
    with torch.no_grad():  # a fixed encoding: once per row, not once per step
        inputs = net.encode(torch.from_numpy(dataset.coordinates)).numpy()
    prior, weights = dataset.prior_logit, dataset.row_weights
    batches = [chunk_batch(inputs[start:end], dataset.intensities[start:end], dataset.group_ids[start:end],
                           nodes_per_chunk, None if prior is None else prior[start:end],
                           None if weights is None else weights[start:end], dataset.residual_bound)
               for start, end in create_complete_group_batches(dataset, config.batch_size)]
    return [lambda batch=batch: step.step(batch, int(torch.randint(0, 2 ** 62, (1,)))) for batch in batches]


def _autograd_steps(net: BayesianNN, dataset: ScarReconstructionDataset, config: TrainingConfig,
                    device: torch.device) -> list[Callable[[], torch.Tensor]]:
    """The GPU step: autograd on the batch repeated ``mc_samples`` times, its tensors prepared once
    on the device, the loss left there. Nothing in it reads a value back to the host, so a GPU
    queues a whole epoch without waiting (``Testing/test_training.py`` counts such reads)."""

    def autograd_step(batch: _Batch) -> torch.Tensor:
        loss = _batch_loss(net, batch, config.mc_samples)
        loss.backward()
        return loss.detach()

    return [lambda batch=batch: autograd_step(batch)
            for batch in _prepare_batches(dataset, config.batch_size, config.mc_samples, device)]


def _optimizer_and_schedule(net: BayesianNN, config: TrainingConfig,
                            steps_per_epoch: int) -> tuple[torch.optim.Optimizer, CyclicalLR]:
    """The optimizer over the trainable parameters (frozen layers stay out of it) and the rate
    schedule that drives it, stepped once per batch: a one-cycle schedule spreads its warm-up and
    decay over ``max_epochs``, the cyclical one repeats every ``2 * lr_step_size`` batches."""
    trainable = [p for p in net.parameters() if p.requires_grad]
    # fused: one kernel for all parameters (on the CPU ~0.3 ms per step instead of ~1.1 ms of
    # per-tensor operations, time in which the CPU workers wait)
    optimizer = (torch.optim.AdamW(trainable, lr=config.base_lr, weight_decay=config.weight_decay, fused=True)
                 if config.weight_decay > 0 else torch.optim.Adam(trainable, lr=config.base_lr, fused=True))
    if config.schedule == "onecycle":
        return optimizer, OneCycleCosine(optimizer, config.base_lr, config.max_lr, config.max_epochs * steps_per_epoch)
    return optimizer, CyclicalLR(optimizer, config.base_lr, config.max_lr, config.lr_step_size)


class _StopWatch:
    """Takes each epoch's loss and says whether the run should stop before its schedule ends.

    It holds what the stops are decided on and what the history reports of them: the best epoch
    (the patience counts from it, and its weights are the ones kept), the epoch losses (a dead run
    is one whose last ``DEAD_EPOCHS`` are one value), and the current and longest rise (epochs in a
    row above the best so far by ``DIVERGED_FRACTION`` of the targets' variance, see :func:`_risen`).
    The dead and diverged stops apply only with a ``dead_level`` (a run that may be retried: the
    epochs left would be wasted, as the retry trains from scratch); the patience always does.
    ``stop_reason`` is the latest reason found ("budget" until one is): a dead run's overrides the
    patience's, and a run found dead is not also stopped as diverged.
    """

    def __init__(self, patience: int, variance: float, dead_level: float | None) -> None:
        self.patience = patience
        self.variance = variance
        self.dead_level = dead_level
        self.losses: list[float] = []
        self.best_loss = math.inf
        self.best_epoch = 0
        self.dead_epoch: int | None = None
        self.diverged_epoch: int | None = None
        self.risen = 0
        self.longest_rise = 0
        self.stop_reason = "budget"

    def after_epoch(self, epoch: int, loss: float) -> bool:
        """Record the 1-based ``epoch``'s loss; True when the run should stop after it."""
        self.losses.append(loss)
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, epoch
        stop = epoch - self.best_epoch >= self.patience
        if stop:
            self.stop_reason = "patience"
        if self.dead_level is not None and _is_dead(self.losses, self.dead_level):
            logger.info("the loss has stayed at %.6g for %d epochs: no unit learns any more; stopping at epoch %d",
                        loss, DEAD_EPOCHS, epoch)
            stop, self.dead_epoch, self.stop_reason = True, epoch, "dead"
        self.risen = self.risen + 1 if _risen(loss, self.best_loss, self.variance) else 0
        self.longest_rise = max(self.longest_rise, self.risen)
        if self.dead_level is not None and self.dead_epoch is None and self.risen >= DIVERGED_EPOCHS:
            logger.info("the loss has stayed more than %.0f %% of the targets' variance above its best (epoch %d) for "
                        "%d epochs: the run diverged; stopping at epoch %d", 100 * DIVERGED_FRACTION,
                        self.best_epoch, DIVERGED_EPOCHS, epoch)
            stop, self.diverged_epoch, self.stop_reason = True, epoch, "diverged"
        return stop

    def schedule_ended(self, converged: bool) -> None:
        """The schedule (with any phase the convergence test added) ran out without a stop: the
        run ends converged, or on its budget when the test found it still falling."""
        self.stop_reason = "converged" if converged else "budget"


@dataclass
class _Judgement:
    """How well the kept weights fit and whether the run that made them diverged (see
    :func:`fit_scar_field`'s history keys of the same names)."""

    final_loss: float
    ignored_groups: int
    ignored_scar_groups: int
    ignored_share: float
    faint_scar_groups: int
    faint_scar_share: float
    late_rise: float
    diverged: bool


def _judge_kept_run(net: BayesianNN, dataset: ScarReconstructionDataset, device: torch.device,
                    coherent: np.ndarray | None, watch: _StopWatch, variance: float) -> _Judgement:
    """Judge the run on the weights it keeps (``net``, in eval mode), not on the ones it ended on:
    runs are compared on the dropout-free group loss, a stall shows as groups fitted outright
    wrong, and a late rise as epoch losses that never came back near the best."""
    targets = _group_means(dataset, dataset.intensities.reshape(-1))
    misses = _group_field(net, dataset, device) - targets
    ignored = np.abs(misses) > IGNORED_GROUP_MISS
    # a drawn 1 stays a 1 up to the rounding of a slice-profile weighted mean
    fraction = (targets >= FAINT_SCAR_TARGET) & (targets < 1.0 - 1e-4)
    faint = fraction & (targets + misses < FAINT_SCAR_RATIO * targets)
    if coherent is not None:
        ignored &= coherent
        faint &= coherent
    # a run stopped as diverged is judged on the epochs that stopped it (its last fifth may reach back
    # before the rise)
    rise = _late_rise(watch.losses, watch.best_loss, variance,
                      DIVERGED_EPOCHS if watch.diverged_epoch is not None else None)
    diverged = watch.dead_epoch is None and rise > DIVERGED_FRACTION
    if diverged:
        span = (f"{DIVERGED_EPOCHS} epochs" if watch.diverged_epoch is not None
                else f"{round(100 * CONVERGENCE_TAIL)} % of the epochs")
        logger.info("the loss rose after epoch %d and stayed up: over the last %s it came no nearer than %.0f %% "
                    "of the targets' variance to its best", watch.best_epoch, span, 100 * rise)

    def share_of_variance(groups: np.ndarray) -> float:
        """The loss ``groups`` contribute, in shares of the targets' variance."""
        return float(np.sum(misses[groups] ** 2) / (misses.size * variance)) if variance > 0 else 0.0

    return _Judgement(
        final_loss=float(np.mean(misses ** 2)), ignored_groups=int(ignored.sum()),
        ignored_scar_groups=int((ignored & (targets >= 0.5)).sum()), ignored_share=share_of_variance(ignored),
        faint_scar_groups=int(faint.sum()), faint_scar_share=share_of_variance(faint),
        late_rise=rise, diverged=diverged)


def _train_loop(net: BayesianNN, dataset: ScarReconstructionDataset, config: TrainingConfig,
                device: torch.device, batch_steps: list, progress_callback, should_cancel,
                dead_level: float | None = None, coherent: np.ndarray | None = None) -> dict:
    """The epochs of one run. With a ``dead_level`` (a run that may be retried) the run stops once its
    loss has stayed at one value of at least that level for ``DEAD_EPOCHS`` epochs, or above its best
    by the diverged share for ``DIVERGED_EPOCHS`` epochs (see those constants; :class:`_StopWatch`). With
    a ``convergence_tolerance`` the schedule's end is a convergence test (:class:`_ConvergenceTest`)
    that may add lower-rate phases. ``coherent`` (per group, :func:`_coherent_groups`): the groups
    whose misses count as ignored (all when None). The best epoch's starting weights are put back
    and judged (:func:`_judge_kept_run`)."""
    optimizer, scheduler = _optimizer_and_schedule(net, config, len(batch_steps))
    logger.info("training on %s: %d rows, %d batches, max %d epochs, patience %d",
                device, len(dataset), len(batch_steps), config.max_epochs, config.early_stopping_patience)

    variance = _group_target_variance(dataset)
    test = _ConvergenceTest(config, lambda: _group_loss(net, dataset, device, keep_mode=True),
                            variance) if config.convergence_tolerance > 0 else None
    watch = _StopWatch(config.early_stopping_patience, variance, dead_level)
    rates: list[float] = []
    best_state = None
    stopped_early = False
    planned = config.max_epochs
    started = last_report = time.perf_counter()
    net.train()
    epoch = 0
    while epoch < planned:
        epoch += 1
        start_state = [p.detach().clone() for p in net.parameters()]
        epoch_sum = 0.0
        for batch_index, batch_step in enumerate(batch_steps, 1):
            if should_cancel is not None and should_cancel():
                raise TrainingCancelled(f"training cancelled at epoch {epoch} of {planned} (batch "
                                        f"{batch_index} of {len(batch_steps)}); nothing was saved")
            optimizer.zero_grad(set_to_none=True)
            epoch_sum = epoch_sum + batch_step()
            optimizer.step()
            scheduler.step()
        epoch_loss = float(epoch_sum / len(batch_steps))  # the one host sync per epoch
        rates.append(scheduler.get_last_lr())
        stop = watch.after_epoch(epoch, epoch_loss)
        if watch.best_epoch == epoch:
            best_state = start_state
        if test is not None and not stop:
            extension = test.after_epoch(epoch, planned)
            if extension:
                scheduler = CosineDecay(optimizer, config.base_lr, max(config.base_lr,
                                                                       EXTENSION_PEAK_SHARE * config.max_lr),
                                        extension * len(batch_steps))
                planned += extension
            elif epoch == planned:
                watch.schedule_ended(test.converged)
        now = time.perf_counter()
        if progress_callback is not None and (now - last_report >= PROGRESS_INTERVAL_S or stop or epoch == planned):
            last_report = now
            horizon = min(planned, watch.best_epoch + config.early_stopping_patience)
            progress_callback(TrainingProgress(epoch, planned, epoch_loss, watch.best_loss, rates[-1],
                                               now - started, (now - started) / epoch * (horizon - epoch)))
        if stop:
            stopped_early = epoch < planned
            break

    if best_state is None:
        raise CardioScarError("training produced no finite loss (NaN): check that intensities are finite "
                              "and in [0, 1], or lower max_lr")
    with torch.no_grad():
        for parameter, value in zip(net.parameters(), best_state):
            parameter.copy_(value)
    for parameter in net.parameters():
        parameter.requires_grad_(True)
    net.eval()
    judged = _judge_kept_run(net, dataset, device, coherent, watch, variance)
    # the convergence test measured the weights a diverged run ended on, not the best epoch's that are kept
    stop_reason = "diverged" if judged.diverged else watch.stop_reason
    seconds = time.perf_counter() - started
    # DEBUG: the model's file line says the best loss, its epoch and why the run ended, once
    logger.debug("best loss %.6g at epoch %d of %d (%.1f s); longest rise above the best: %d epochs", watch.best_loss,
                watch.best_epoch, len(watch.losses), seconds, watch.longest_rise)
    return {"train_loss": watch.losses, "learning_rate": rates, "best_loss": watch.best_loss,
            "best_epoch": watch.best_epoch, "converged_epoch": watch.best_epoch, "epochs_run": len(watch.losses),
            "stopped_early": stopped_early, "final_loss": judged.final_loss, "ignored_groups": judged.ignored_groups,
            "ignored_scar_groups": judged.ignored_scar_groups, "ignored_share": judged.ignored_share,
            "faint_scar_groups": judged.faint_scar_groups, "faint_scar_share": judged.faint_scar_share,
            "dead_epoch": watch.dead_epoch, "late_rise": judged.late_rise, "diverged": judged.diverged,
            "diverged_epoch": watch.diverged_epoch, "longest_rise": watch.longest_rise, "seconds": seconds,
            "device": str(device), "stop_reason": stop_reason,
            "converged": None if test is None or stop_reason in ("dead", "patience", "diverged") else test.converged,
            "extensions": 0 if test is None else test.extensions,
            "convergence_fall": None if test is None else test.fall}


class _ConvergenceTest:
    """Whether a one-cycle run has converged, judged on the dropout-free group loss.

    A one-cycle schedule ends at a rate too low to move the weights much, so running it to its
    end says nothing about convergence: a network still descending when the rate runs out stops
    short of what the constraints allow. This test measures the loss at the start of the
    schedule's last ``CONVERGENCE_TAIL`` and at its end. The fall is counted in shares of the
    group targets' variance (the loss of the best constant field), so it reads as "the fit still
    explained this much more of the targets", the same on a near-perfect fit (whose tiny loss
    still falls by a large factor) as on a coarse one. A fall above the tolerance adds
    a cosine phase (``EXTENSION_SHARE`` of ``max_epochs`` from ``EXTENSION_PEAK_SHARE`` of the peak
    rate), tested the same way, up to ``MAX_EXTENSIONS`` times; then the run ends unconverged,
    with a warning.
    """

    def __init__(self, config: TrainingConfig, measure: Callable[[], float], variance: float) -> None:
        self.tolerance = config.convergence_tolerance
        self.scale = variance if variance > 0 else 1.0
        self.extension_epochs = max(1, round(EXTENSION_SHARE * config.max_epochs))
        self.measure = measure
        self.extensions = 0
        self.converged: bool | None = None
        self.fall: float | None = None
        self.tail_epoch = self._tail_start(0, config.max_epochs)
        self.tail_loss = measure() if self.tail_epoch == 0 else None

    @staticmethod
    def _tail_start(phase_start: int, phase_epochs: int) -> int:
        return phase_start + phase_epochs - max(1, math.ceil(CONVERGENCE_TAIL * phase_epochs))

    def after_epoch(self, epoch: int, planned: int) -> int:
        """Measure where the schedule says; at its end return the epochs of a further phase (0: none)."""
        if epoch == self.tail_epoch:
            self.tail_loss = self.measure()
        if epoch != planned:
            return 0
        end_loss = self.measure()
        self.fall = (self.tail_loss - end_loss) / self.scale
        self.converged = self.fall <= self.tolerance
        if self.converged:
            logger.info("converged: over the last %d %% of the schedule the group loss fell by %.2g %% of the "
                        "targets' variance (tolerance %.2g %%)", round(100 * CONVERGENCE_TAIL), 100 * self.fall,
                        100 * self.tolerance)
            return 0
        if self.extensions == MAX_EXTENSIONS:
            logger.warning("not converged after %d further phases: over the last of them the group loss still fell "
                           "by %.2g %% of the targets' variance (tolerance %.2g %%); more epochs (--max-epochs) may "
                           "fit the targets closer", MAX_EXTENSIONS, 100 * self.fall, 100 * self.tolerance)
            return 0
        self.extensions += 1
        self.tail_epoch = self._tail_start(planned, self.extension_epochs)
        if self.tail_epoch == planned:
            self.tail_loss = end_loss
        logger.info("not converged yet: over the last %d %% of the schedule the group loss fell by %.2g %% of the "
                    "targets' variance (tolerance %.2g %%); training %d more epochs at lower rates",
                    round(100 * CONVERGENCE_TAIL), 100 * self.fall, 100 * self.tolerance, self.extension_epochs)
        return self.extension_epochs


def _group_loss(net: BayesianNN, dataset: ScarReconstructionDataset, device: torch.device,
                keep_mode: bool = False) -> float:
    """Group loss of ``net``'s field with dropout off, over the whole dataset.

    Runs are compared on it: the best epoch's training loss is one dropout draw, and a run that
    ran longer had more draws to be lucky with. ``keep_mode``: measure in eval mode and give the
    network back in the mode it was in (the convergence test measures during training)."""
    if keep_mode:
        training = net.training
        net.eval()
        try:
            return _group_loss(net, dataset, device)
        finally:
            net.train(training)
    fitted = _group_field(net, dataset, device)
    return float(np.mean((fitted - _group_means(dataset, dataset.intensities.reshape(-1))) ** 2))


def _group_field(net: BayesianNN, dataset: ScarReconstructionDataset, device: torch.device) -> np.ndarray:
    """Each group's mean of ``net``'s field with dropout off (``net`` in eval mode)."""
    rows = torch.from_numpy(dataset.coordinates)
    prior = None if dataset.prior_logit is None else torch.from_numpy(dataset.prior_logit).view(-1, 1)
    with torch.no_grad():
        field = torch.cat([net(rows[start:start + ROWS_PER_EVAL].to(device), prior_logit=None if prior is None
                               else prior[start:start + ROWS_PER_EVAL].to(device),
                               residual_bound=dataset.residual_bound).cpu()
                           for start in range(0, len(rows), ROWS_PER_EVAL)])
    return _group_means(dataset, field.numpy().reshape(-1))


def _late_rise(losses: list[float], best_loss: float, variance: float, tail_epochs: int | None = None) -> float:
    """How far the lowest epoch loss over the run's last ``CONVERGENCE_TAIL`` of epochs (or its last
    ``tail_epochs``) stays above the best epoch's, in shares of the group targets' variance (0 when
    the best epoch is among them). The lowest, not the mean: one epoch near the best is enough to
    say the run came back, so a late rise counts only when it lasted over the whole tail. A
    non-finite epoch loss counts as infinitely high (a run that ended in NaN has diverged).

    For a run stopped as diverged (``tail_epochs`` = ``DIVERGED_EPOCHS``, the window that stopped
    it) the figure is above ``DIVERGED_FRACTION`` by construction: each of those epochs was that far
    above the best, which cannot fall during them. Being the lowest excess over a window that starts
    at the first epoch to cross that share, it says little more than that: a loss that climbs
    gradually reads just above ``DIVERGED_FRACTION`` (the unseen label map s7: 0.107, against 0.807
    over its last fifth when it ran to the end), one that jumps reads the jump. It is not comparable
    with the late rise of a run that ran to its end; ``diverged_epoch`` tells the two apart."""
    tail = losses[-(tail_epochs or max(1, math.ceil(CONVERGENCE_TAIL * len(losses)))):]
    lowest = min((loss for loss in tail if math.isfinite(loss)), default=math.inf)
    return (lowest - best_loss) / variance if variance > 0 else 0.0


def _risen(loss: float, best_loss: float, variance: float) -> bool:
    """The run had a fit (its best so far explains at least ``1 - FAILED_FIT_FRACTION`` of the
    targets' variance) and the epoch loss is above that best by more than ``DIVERGED_FRACTION`` of
    the variance (a non-finite one always is). A run still near the constant field has no fit to
    lose: in the warm-up's high rates such a run can sit above its early best for 50 epochs and
    more, then fit (the unseen label map s6 with the prior, seed 0's retry at 3.3e-3). None is
    when the targets are all one value: no share to measure, as ``_late_rise`` says."""
    return 0 < variance and best_loss <= FAILED_FIT_FRACTION * variance and \
        (not math.isfinite(loss) or loss - best_loss > DIVERGED_FRACTION * variance)


def _is_dead(losses: list[float], level: float) -> bool:
    """The last ``DEAD_EPOCHS`` epoch losses are one and the same value, at least ``level``."""
    recent = losses[-DEAD_EPOCHS:]
    return len(recent) == DEAD_EPOCHS and recent[0] >= level and min(recent) == max(recent)
