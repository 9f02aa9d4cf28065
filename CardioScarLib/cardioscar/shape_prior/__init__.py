"""Shape prior (issue 18): a log-odds field on the mesh from the slice targets by shape-based
interpolation, which the network corrects instead of learning the field from nothing.

Why: a coordinate MLP fitted to a few slices blends two offset scar shapes into a smooth field
that falls below 0.5 between the slices (the scar "shrinks"); shape-based interpolation keeps the
outline. With the prior, the prediction is ``sigmoid(prior_logit(x) + f(x))``: between the slices
``f`` is smooth and small, so the interpolated shape survives; on the slices the group constraints
still rule. ``maps`` builds the per-slice signed distance maps; ``field`` evaluates, stores and
reloads the prior (the same maps travel in the ``.npz`` and in the checkpoint).
"""

from cardioscar.shape_prior.field import PRIOR_VERSION, ShapePrior
from cardioscar.shape_prior.maps import build_shape_prior

__all__ = ["PRIOR_VERSION", "ShapePrior", "build_shape_prior"]
