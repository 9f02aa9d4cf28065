"""The training configuration: :class:`TrainingConfig`, its documented defaults and the fast preset.

Why a module of its own: it needs no torch, so the command line builds the whole configuration
(a preset and the options given, with the rules between fields, such as ``base_lr <= max_lr``)
and refuses a bad one before torch loads, and the Slicer Logic checks its options the same way
when they are made. The loop that runs it, and the constants its docstring names
(``FAILED_FIT_FRACTION``, ``CONVERGENCE_TAIL``, ...), are in :mod:`cardioscar.fit.training`,
which re-exports this class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from cardioscar.io.checks import SHAPE_PRIOR_AUTO, check_training_values


@dataclass
class TrainingConfig:
    """Training hyperparameters (documented names and defaults) plus a few extras.

    ``schedule``: ``"cyclical"`` (documented triangular CLR between ``base_lr`` and ``max_lr``
    with half-cycle ``lr_step_size`` batches) or ``"onecycle"`` (one warm-up to ``max_lr`` and a
    cosine decay to ``base_lr`` spread over ``max_epochs``; used by the fast preset).
    ``num_threads``: torch CPU threads during training (``None`` leaves torch's setting).
    ``init_output_bias``: start a fresh network's output at the mean target (logit of it) instead
    of 0.5, so the first steps do not drive it into the all-background collapse that large
    learning rates otherwise cause (used by the fast preset).
    ``retry_failed_fit``: when the best epoch's loss is still above ``FAILED_FIT_FRACTION`` of the
    group targets' variance (the fit explains almost nothing: a high peak rate can kill a small
    network's units on small, imbalanced data), or when the run died (its loss frozen for
    ``DEAD_EPOCHS`` epochs: it is stopped at once, and its best epoch is where it stood before
    the collapse, not a converged fit, whatever its loss), train again from scratch with a third
    of ``max_lr``, up to ``MAX_RETRIES`` times, and keep the run whose weights have the lowest
    group loss with dropout off (used by the fast preset). A run that stalled (the groups it
    ignores, see ``IGNORED_GROUP_MISS``, hold more than ``STALLED_FIT_FRACTION`` of the targets'
    variance: it sits in a poor minimum that a lower rate does not leave, since the same start
    leads back into it) is trained again from the next seed at the same peak rate, within the
    same ``MAX_RETRIES``; so is a run that missed a scar patch under the stall share (it ignores
    ``MISSED_SCAR_GROUPS`` or more groups whose targets are scar, and its ignored groups hold at
    least ``SAID_IGNORED_FRACTION``), and one that called a faint scar patch of a fraction map at under
    half its targets (``FAINT_SCAR_RATIO``). A run that diverged (its loss rose after the best epoch and stayed more
    than ``DIVERGED_FRACTION`` of the variance above it over its last ``CONVERGENCE_TAIL``, without
    freezing) is retried like a dead one; it is stopped as soon as its loss has stayed up for
    ``DIVERGED_EPOCHS`` epochs in a row, instead of being judged at its end. Each retry answers the
    last run's own failure (a stall retry whose run died or diverged is retried with a third of
    that run's peak), or, when the last run had none but fitted worse than the kept one, the kept
    run's.
    ``fourier_features``: number of random Fourier frequencies encoding the coordinates
    (:class:`cardioscar.engines.FourierFeatures`; 0 = raw coordinates, as documented), drawn
    with a standard deviation of ``1 / fourier_scale_mm`` cycles per millimetre.
    ``shape_prior``: learn a residual on the shape-based interpolation of the slices' scar
    (:mod:`cardioscar.shape_prior`): ``p = sigmoid(prior_logit + f)``; applied where the training
    data is built (:func:`cardioscar.logic.train_scar_model`), stored in the checkpoint.
    ``"auto"`` (the fast preset's): with it where every target is a drawn 0 or 1 (label maps,
    segmentations) and every slice lies in a stack, without it on fractions and a scar rule's
    grades (:func:`cardioscar.shape_prior.use.training_prior` says why); the checkpoint records which.
    ``convergence_tolerance``: with the one-cycle schedule, how much the dropout-free group loss
    may still fall over the schedule's last ``CONVERGENCE_TAIL``, as a share of the group targets'
    variance (of what a constant field leaves unexplained), for the run to count as converged; a
    run still falling faster is continued with a lower-rate cosine phase (``EXTENSION_SHARE`` of
    ``max_epochs``, at most ``MAX_EXTENSIONS`` times) and tested again, so it ends on convergence
    (or says it did not) instead of on a budget tuned to one phantom. 0 turns the test off (the
    documented behaviour: the budget and the patience end the run).
    """

    batch_size: int = 10000
    max_epochs: int = 10000
    early_stopping_patience: int = 500
    mc_samples: int = 3
    dropout_rate: float = 0.1
    base_lr: float = 1e-3
    max_lr: float = 1e-2
    lr_step_size: int = 2000
    seed: int = 42
    hidden_dim: int = 128
    n_layers: int = 4
    schedule: str = "cyclical"
    num_threads: int | None = None
    init_output_bias: bool = False
    retry_failed_fit: bool = False
    fourier_features: int = 0
    fourier_scale_mm: float = 16.0
    shape_prior: bool | str = False
    weight_decay: float = 0.0
    convergence_tolerance: float = 0.0

    def __post_init__(self) -> None:
        # the command line runs the same checks on the options it was given, before torch loads
        for name, value in check_training_values(asdict(self)).items():
            setattr(self, name, value)

    @classmethod
    def fast(cls, **overrides) -> "TrainingConfig":
        """Recommended interactive preset: whole-data batches and a narrower network.

        * One batch holds up to 65,536 rows (the whole demo phantom, 30.8k rows / 6.4k groups):
          per-batch overheads vanish and the full-data gradient tolerates a peak rate of 1e-2.
        * A 4 x 96 network (28,417 parameters; architecture is saved in the checkpoint): the
          documented layout (two dropout layers) at 57 % of its cost per row.
        * One dropout pass per row in the loss, 600 epochs under one warm-up (10 %) + cosine
          cycle from 1e-4 to 1e-2 and back, and the output bias started at the mean target (so
          the high rate cannot drive the net into the all-background collapse).
        * A patience as long as the cycle: a one-cycle schedule is meant to run to its end (the
          best epoch is near it); stopping on the noisy loss of the high-rate phase kept poor
          weights on small meshes (Dice 0.37 instead of 0.73 on an 8k-node phantom).
        * A failed fit is retried with a third of the peak rate, and once more with a ninth
          (``retry_failed_fit``); a run whose network died stops as soon as its loss freezes
          and is retried too, even when it had explained most of the targets before dying
          (label-map seed 5 of the segmented phantoms with a 4 x 128 network collapsed at
          epoch 74 after reaching 0.036; kept, it scored Dice 0.67).
          On small, imbalanced data (the real biv-me surfaces, 4k nodes, a scar in 20 of 1,054
          pixels) the 1e-2 peak killed the network for 4 of 12 seeds (Dice 0), while 3e-3 as
          the peak costs Dice on the larger cases (headline 0.9575 instead of 0.963). With the
          long-axis planes added (a 12 mm scar between two short-axis planes) even 3e-3 died for
          one seed, and 1.1e-3 fitted (``Testing/benchmarks/bench_real_planes.py``).
          A run that converged in a poor minimum (a patch of the targets fitted outright wrong,
          ``STALLED_FIT_FRACTION``) is retried from the next seed within the same retries: a
          lower rate from the same start stalled on the same patch (an unseen label-map phantom).
          A run that diverged without dying (the unseen label map s7, training seed 1: from 0.0001
          at epoch 158 to 0.021 from epoch 234 on, 81 % of the targets' variance) is retried like
          a dead one, stopped once its loss has stayed up for ``DIVERGED_EPOCHS`` epochs (s7: at
          epoch 278, not 600); after a stall retry whose run died, the next retry lowers that run's peak.
        * The run ends on a convergence test (``convergence_tolerance`` 0.01, :class:`_ConvergenceTest`):
          600 epochs are the least it runs, and a fit whose group loss still fell by more than 1 %
          of the targets' variance over the cycle's last fifth gets lower-rate phases. On the
          8 segmented seeds (12k nodes), the demo and 6 EMIDEC leave-one-slice-out cases the fall
          was 0.02-0.87 %, so they stop at 600 as before; forcing a phase on every one of them (a tolerance of 1 %
          of the loss itself) cost 1.4x the time for a mean Dice of 0.896 against 0.896.

        Chosen with ``Testing/benchmarks/bench_fast_preset.py`` (phantoms acquired in "volume"
        mode, prepared with the partial-volume correction as the demo does; 2 threads on a 2-core
        machine whose speed varied by up to 2x). Dice at 0.5, training time and mean MC-dropout
        uncertainty on the slices / between them, on the demo phantom; Dice on the headline
        case's covered nodes (one slice of a 330k-node mesh):

        ===================  ==========================================  ================
        network, epochs      demo                                        headline
        ===================  ==========================================  ================
        3 x 64, 400          0.951, 14.5 s, 0.0152 / 0.0154              0.948, 11-18 s
        3 x 64, 600          0.961, 26 s, 0.0141 / 0.0142                --
        3 x 64, 1000         --                                          0.956, 32 s
        3 x 96, 600          0.965, 24-39 s, 0.0122 / 0.0122             0.963, 24-37 s
        3 x 128, 400         0.969, 27 s                                 0.938, 28 s
        4 x 80, 600          0.977, 40 s, 0.0147 / 0.0148                --
        **4 x 96, 600**      0.976, 50 s, 0.0153 / 0.0155                0.959, 44 s
        4 x 128, 400 / 1000  0.968, 59 s                                 0.957, 48 s
        ===================  ==========================================  ================

        The 3-layer networks (one dropout layer) fit the headline case as well, but on the demo
        phantom their uncertainty is barely, or not, higher between the slices than on them (the
        accuracy bar of ``Testing/test_accuracy.py``); the 4-layer ones keep it higher there.

        On the segmented phantom family (issue 18: scar fraction within the myocardium, NaN
        outside it, a mesh up to a pixel off the image's wall, 12k nodes, 10 MC samples,
        ``Testing/benchmarks/bench_robust.py``), Dice at 0.5, best Dice, fit / true group loss:

        ==================================  ====================================================
        network                             seed 0 (fraction map); seed 1 (label map, 5 samples)
        ==================================  ====================================================
        **4 x 96, 600 (this preset)**       0.914, 0.921, 0.00025 / 0.00056; 0.911, 0.912,
                                            0.0050 / 0.031
        + 64 Fourier features, 16 mm        0.667, 0.697, 0.00002 / 0.00056; --
        + 16 Fourier features, 40 mm        0.896, 0.900, 0.00002 / 0.00056; --
        ==================================  ====================================================

        With the pixels outside the myocardium dropped, this preset already fits the groups
        below the true field's loss; Fourier features (``fourier_features``) fit them ten times
        closer still and interpolate worse between the slices, so the preset keeps raw
        coordinates. The documented mode needs minutes for the same Dice (see README.md#performance).
        A peak rate of 2e-2 or 4,096-row batches gave lower Dice; bfloat16 autocast
        does not pay on CPUs without AMX (its matmuls ran 2.6x slower than fp32 there). Keyword
        arguments override fields.
        """
        values = dict(batch_size=65536, max_epochs=600, early_stopping_patience=600, mc_samples=1,
                      dropout_rate=0.1, base_lr=1e-4, max_lr=1e-2, hidden_dim=96, n_layers=4,
                      schedule="onecycle", init_output_bias=True, retry_failed_fit=True,
                      convergence_tolerance=0.01, shape_prior=SHAPE_PRIOR_AUTO)
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict:
        """Plain dict (numbers and strings only) for checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        """Rebuild from :meth:`to_dict` output; unknown keys (e.g. from other tools) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
