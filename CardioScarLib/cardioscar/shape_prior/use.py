"""Where the shape prior meets the faces: the ``.npz`` entries, the choice to train with it, and
its log-odds on the training rows. Kept here so that ``logic.py`` gains only a few calls."""

from __future__ import annotations

import json
import logging

import numpy as np

from cardioscar.errors import in_log_format
from cardioscar.fit.normalization import denormalize
from cardioscar.io.checks import SHAPE_PRIOR_AUTO
from cardioscar.shape_prior.field import ShapePrior

logger = logging.getLogger(__name__)

#: Prefix of the prior's arrays in the training ``.npz``.
NPZ_PREFIX = "shape_prior_"


def npz_entries(prior: ShapePrior | None) -> dict[str, np.ndarray]:
    """The ``.npz`` keys holding ``prior`` (none without one)."""
    return {} if prior is None else {NPZ_PREFIX + key: value for key, value in prior.to_arrays().items()}


def prior_from_npz(arrays: dict, where: str) -> ShapePrior | None:
    """The prior stored by :func:`npz_entries`, or ``None`` (an older file, or no slice had a target)."""
    entries = {key[len(NPZ_PREFIX):]: value for key, value in arrays.items() if key.startswith(NPZ_PREFIX)}
    return ShapePrior.from_arrays(entries, where) if entries else None


def training_prior(prior: ShapePrior | None, wanted: bool | str, targets: np.ndarray | None = None,
                   scar_rule: str = "") -> ShapePrior | None:
    """The prior to train with: ``prior`` when ``wanted``; a warning when it is wanted but the
    training data has none (a ``.npz`` written before the prior existed: re-run prepare).

    ``wanted`` ``"auto"`` (:data:`cardioscar.io.checks.SHAPE_PRIOR_AUTO`): the prior when
    every target (``targets``, the rows' values) is 0 or 1, drawn rather than graded by a raw-LGE
    rule (``scar_rule``, the training data's record of one: empty for labels and maps), and every
    plane lies in a stack of two or more parallel ones (:meth:`ShapePrior.stacks_only`: with
    long-axis views pooled the prior gained nothing measured); without it otherwise. A rule's
    0/1 grades lost with the prior on every phantom set measured (the raw-LGE demo's scar Dice
    0.838 against 0.852 off; the unseen family's n-SD cases 0.302 against 0.316, their core
    0.446 against 0.503): a threshold on noisy intensities draws no outline worth interpolating.
    Except a rule's scar target cut to the experts' labels (``prepare --expert-scar-labels``,
    :func:`experts_outline`): the rule grades only inside their scar, so those rows are the labels
    route's array for array (EMIDEC, 9 cases; ``Testing/benchmarks/expert_prior_emidec.py``) and
    train with the prior as those do. Its core target (the rule's core within that scar) stays off:
    held out, the prior gained on 4 and lost on 3 of 8 EMIDEC slices (mean Dice 0.546 against
    0.528) and over-called more (mean |called - target share| 0.118 against 0.079; P029 39 % of the
    slice called against 1.4 %, P064 28 % against 5 %), though it fits the slices closer (Dice
    0.932 against 0.914 on 9 of 9): a gain too mixed to change the default for.
    Why the targets decide (fast preset, ``Testing/benchmarks``, figures in
    ``Testing/benchmarks/ROBUSTNESS.md``): on 0/1 labels the prior is the better interpolation
    between the slices (EMIDEC leave-one-slice-out, 49 real label maps: Dice at 0.5 0.705 / AUC 0.932 against 0.671 / 0.917 without; the
    segmented phantoms' four label-map seeds, whole reconstruction: mean Dice 0.887 against
    0.880), while on fractions it adds nothing and can cost (the four fraction-map seeds with
    prior version 3 0.910 against 0.913, seed 4 0.872 against 0.888; the demo with its long-axis
    slice pooled 0.905 against 0.916; the real biv-me planes' held-out AUC 0.882 against 0.933): a fraction's
    shape is not the outline of ``target >= 0.5`` the prior draws."""
    if wanted == SHAPE_PRIOR_AUTO:
        labels = targets is not None and len(targets) > 0 and bool(np.isin(np.asarray(targets), (0.0, 1.0)).all())
        stacks = prior is not None and prior.stacks_only()
        drawn = not scar_rule or experts_outline(scar_rule)
        chosen = labels and stacks and drawn
        if prior is None:
            why = "the training data holds none"
        elif not drawn:
            why = "the targets are a raw-LGE rule's grades, not drawn labels"
        elif not labels:
            why = "the targets are not all 0 or 1 (fractions)"
        elif not stacks:
            why = ("the targets are 0/1 but some slice with targets lies in no stack of two or more parallel ones "
                   "(a long-axis view, or a short-axis slice alone)")
        else:
            experts = " (the experts' scar: a rule's scar target cut to --expert-scar-labels)" if scar_rule else ""
            why = (f"every target is 0 or 1{experts} and every slice with targets lies in a stack of two or more "
                   "parallel ones")
        if prior is None and labels and drawn:
            # drawn labels, for which a fresh prepare would give auto a prior to choose: say so, as "on" does
            logger.warning("shape prior (auto): off, the training data holds none (written by an older CardioScar?) "
                           "although its targets are 0/1 labels; re-run `cardioscar prepare` to let auto use it")
        else:
            logger.info("shape prior (auto): %s, " + in_log_format(why), "on" if chosen else "off")
        return prior if chosen else None
    if not wanted:
        return None
    if prior is None:
        logger.warning("shape prior requested but the training data holds none (written by an older "
                       "CardioScar?): training without it; re-run `cardioscar prepare` to use it")
    return prior


def experts_outline(scar_rule: str) -> bool:
    """Whether a raw-LGE rule's targets (``scar_rule``, the training data's JSON record) are outlined
    by the experts: the scar target of a rule cut to their labels (``expert_scar_labels``) is 1 on
    every pixel of their scar and 0 elsewhere, the rule grading only inside it, so the targets are
    the drawn labels the prior interpolates well. A core target's outline is the rule's within the
    scar; a damaged record is taken as a rule's grades."""
    try:
        record = json.loads(scar_rule)
    except ValueError:
        return False
    if not isinstance(record, dict):
        return False
    return bool(record.get("expert_scar_labels")) and record.get("target", "scar") == "scar"


def fit_to_rows(prior: ShapePrior, coordinates: np.ndarray, scaler_min,
                scaler_max) -> tuple[ShapePrior, np.ndarray | None]:
    """The prior to train and store (its residual weight reaching every training row, so that it is
    1 on all of them) and its (K,) log-odds at the rows (normalised coordinates, back in LPS mm), as
    :meth:`ShapePrior.node_terms` gives them: ``slab_scale`` of its :meth:`ShapePrior.logit`. ``None``
    when that scale is 0: the rows then train exactly as without a prior (the stored prior acts only
    between the slabs)."""
    rows_lps = denormalize(np.asarray(coordinates, dtype=np.float64), scaler_min, scaler_max)
    fitted = prior.reaching(rows_lps)
    logger.info("shape prior: the network's residual counts fully within %.1f mm of a training plane; "
                "the prior votes there with %.2f of its weight", fitted.residual_full_mm, fitted.slab_scale)
    if fitted.slab_scale == 0:
        return fitted, None
    return fitted, fitted.node_terms(rows_lps)[0]


def node_prior(prior: ShapePrior | None, points_lps: np.ndarray) -> dict[str, np.ndarray | None]:
    """``mc_dropout_predict``'s prior arguments at the nodes: the log-odds, the residual's weight and
    its bound (as trained)."""
    if prior is None:
        return {"prior_logit": None, "residual_weight": None}
    logit, weight = prior.node_terms(points_lps)
    return {"prior_logit": logit, "residual_weight": weight, "residual_bound": prior.residual_bound}


def with_residual_decay(checkpoint: dict, decay_mm: float) -> dict:
    """A shallow copy of ``checkpoint`` whose shape prior uses another residual decay (mm; inf: the
    residual counts everywhere, as before version 2). The weight acts only when the model is
    applied, so one training can be scored at several decays (the benchmarks' sweeps)."""
    return {**checkpoint, "shape_prior": {**checkpoint["shape_prior"], "residual_decay_mm": float(decay_mm)}}
