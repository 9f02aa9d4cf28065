"""The coordinate network and the group reconstruction loss.

The network maps a normalised mesh-node coordinate to a scar value in [0, 1]. It is only ever
supervised through *groups*: the mean prediction over the nodes inside one acquired pixel must
equal that pixel's value. Dropout stays active at inference (MC dropout) so that the spread of
repeated predictions can serve as an uncertainty estimate.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cardioscar.fit.batching import group_sums

logger = logging.getLogger(__name__)


LANE_LEVELS = 1 << 16


def drop_threshold(p: float) -> tuple[int, float]:
    """Signed 16-bit lane threshold below which an element is dropped, and the inverted-dropout
    scale, for rate ``p`` rounded to a multiple of 2**-16 (see :func:`_keep_lanes`)."""
    drop_levels = min(max(round(p * LANE_LEVELS), 1), LANE_LEVELS - 1)
    return drop_levels - LANE_LEVELS // 2, LANE_LEVELS / (LANE_LEVELS - drop_levels)


def _keep_lanes(x: torch.Tensor, p: float) -> tuple[torch.Tensor, float]:
    """Boolean keep-mask shaped like ``x`` (each element dropped with probability ~``p``) and the
    matching inverted-dropout scale.

    On the CPU, ``torch.bernoulli`` draws one Mersenne-Twister number per element and was the
    single largest cost of a training step (more than all matmuls together). Here one 64-bit draw
    feeds four elements: it is split into four 16-bit lanes, each compared with a threshold, so
    ``p`` is rounded to a multiple of 2**-16 (0.1 -> 0.100006; the scale uses the rounded value).
    Elements stay independent.
    """
    threshold, scale = drop_threshold(p)
    words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2 ** 63), None)
    lanes = words.view(torch.int16)[: x.numel()].view(x.shape)
    return lanes >= threshold, scale


def mc_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout: zero each element with probability ``p``, scale the rest by 1 / (1 - p).

    Uses the cheap CPU masks of :func:`_keep_lanes`; on other devices ``F.dropout`` is already
    fast and is used as is.
    """
    if p <= 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    keep, scale = _keep_lanes(x, p)
    return x * torch.where(keep, scale, 0.0).to(x.dtype)


def relu_mc_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """``mc_dropout(relu(x), p)`` in fewer passes over memory.

    ReLU and dropout both multiply by a 0/1 pattern, so one mask ``(kept and x > 0) * scale``
    serves both: one multiply forward and one backward instead of ReLU + dropout each way.
    """
    if p <= 0.0:
        return torch.relu(x)
    if x.device.type != "cpu":
        return F.dropout(torch.relu(x), p, training=True)
    keep, scale = _keep_lanes(x, p)
    return x * torch.where(keep & (x > 0), scale, 0.0).to(x.dtype)


def bounded_residual(residual: torch.Tensor, bound: float) -> torch.Tensor:
    """The shape prior's residual as it enters the log-odds: ``bound * tanh(residual / bound)``, so
    that no residual moves the prior by more than ``bound`` logits (a network fitted to 0/1 rows
    saturates at 4-6 logits and carried that to nodes near a plane with no row of their own:
    Testing/benchmarks/ROBUSTNESS.md, *An outside reviewer's cases*); ``bound`` inf: the residual
    as it is (prior versions 1-4). One function for training and inference, so both bound alike."""
    return residual if math.isinf(bound) else bound * torch.tanh(residual / bound)


class FourierFeatures(nn.Module):
    """Fixed random Fourier features ``[x, sin(2 pi x B), cos(2 pi x B)]`` of normalised coordinates.

    Why: a ReLU MLP fed the three raw coordinates learns smooth fields first (spectral bias) and
    stops short of scar borders a few millimetres wide; a bank of sinusoids lets it place them.
    ``frequencies`` (3, F), in cycles per normalised unit, is drawn in millimetres
    (:meth:`draw`) and stored as a buffer, so a checkpoint carries it and inference encodes
    exactly as training did. The raw coordinates stay in the output for the smooth part.
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("frequencies", torch.zeros(3, int(n_features)))

    @property
    def out_features(self) -> int:
        return 3 + 2 * self.frequencies.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase = (2.0 * math.pi) * (x @ self.frequencies.to(x.dtype))
        return torch.cat([x, torch.sin(phase), torch.cos(phase)], dim=1)

    def draw(self, scale_mm: float, extent_mm: Sequence[float], generator: torch.Generator | None = None) -> None:
        """Set isotropic Gaussian frequencies with standard deviation ``1 / scale_mm`` cycles per
        mm, expressed per normalised unit of each axis (whose length is ``extent_mm`` of it)."""
        extent = torch.as_tensor([max(float(e), 1e-6) for e in extent_mm], dtype=torch.float32).view(3, 1)
        per_mm = torch.randn(self.frequencies.shape, generator=generator) / float(scale_mm)
        with torch.no_grad():
            self.frequencies.copy_(per_mm * extent)


class BayesianNN(nn.Module):
    """Coordinate MLP with MC dropout.

    ``n_layers`` hidden ``Linear + ReLU`` layers of width ``hidden_dim``, with a dropout layer after
    every second hidden layer (as documented; ``dropout_after`` lists other 0-based hidden layers),
    then ``Linear(hidden_dim, 1)`` and a sigmoid. The defaults (3 -> 4 x 128 -> 1, p = 0.1) give
    the documented 50,177 parameters. The reference tool's code puts its one dropout after hidden
    layer 2 instead (``dropout_after=(2,)``); its checkpoints are rebuilt that way
    (:func:`cardioscar.checkpoint.model_from_checkpoint`), so their MC samples are its own.
    ``fourier_features`` > 0 puts a :class:`FourierFeatures` encoding (``self.encoding``) before
    the first layer (3-d coordinates only); it is fixed, so training computes it once per row
    (:meth:`encode`) and feeds the layers in ``network``.
    """

    def __init__(self, input_dim: int = 3, hidden_dim: int = 128, n_layers: int = 4,
                 dropout_rate: float = 0.1, dropout_after: Sequence[int] | None = None,
                 fourier_features: int = 0) -> None:
        super().__init__()
        if input_dim < 1 or hidden_dim < 1 or n_layers < 1:
            raise ValueError("BayesianNN needs input_dim, hidden_dim and n_layers >= 1")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"BayesianNN dropout_rate must be in [0, 1), got {dropout_rate}")
        after = tuple(range(1, n_layers, 2)) if dropout_after is None else tuple(sorted({int(i) for i in dropout_after}))
        if any(not 0 <= index < n_layers for index in after):
            raise ValueError(f"BayesianNN dropout_after must list hidden layers 0..{n_layers - 1}, got {list(after)}")
        self.input_dim = int(input_dim)
        self.hidden_dim = int(hidden_dim)
        self.n_layers = int(n_layers)
        self.dropout_rate = float(dropout_rate)
        self.dropout_after = after
        if fourier_features < 0 or (fourier_features and self.input_dim != 3):
            raise ValueError("BayesianNN fourier_features must be >= 0, and needs input_dim 3")
        self.fourier_features = int(fourier_features)
        self.encoding = FourierFeatures(self.fourier_features) if self.fourier_features else None
        layers: list[nn.Module] = []
        width_in = self.encoding.out_features if self.encoding is not None else self.input_dim
        for index in range(self.n_layers):
            layers += [nn.Linear(width_in, self.hidden_dim), nn.ReLU()]
            if index in after:
                layers.append(nn.Dropout(self.dropout_rate))
            width_in = self.hidden_dim
        layers.append(nn.Linear(width_in, 1))
        self.network = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, training: bool = False,
                prior_logit: torch.Tensor | None = None, residual_bound: float = math.inf) -> torch.Tensor:
        """Return predictions of shape ``(N, 1)`` in [0, 1].

        Dropout is active when the module is in train mode (or its dropout layers were switched on
        with :meth:`enable_dropout`) and, whatever the mode, when ``training=True``.
        ``prior_logit`` (N, 1): a fixed log-odds added before the sigmoid (the shape prior of
        :mod:`cardioscar.shape_prior`; the network then learns the residual), which enters
        bounded by ``residual_bound`` logits (:func:`bounded_residual`; inf: unbounded).
        """
        x = self.encode(x)
        layers = list(self.network)
        index = 0
        while index < len(layers):
            layer = layers[index]
            after = layers[index + 1] if index + 1 < len(layers) else None
            if isinstance(layer, nn.ReLU) and isinstance(after, nn.Dropout):
                x = relu_mc_dropout(x, after.p) if (training or after.training) else torch.relu_(x)
                index += 2
                continue
            if isinstance(layer, nn.ReLU):
                x = torch.relu_(x)  # in place on the Linear output it follows: one allocation less
            elif isinstance(layer, nn.Dropout):
                if training or layer.training:
                    x = mc_dropout(x, layer.p)
            else:
                x = layer(x)
            index += 1
        return torch.sigmoid(x if prior_logit is None else bounded_residual(x, residual_bound) + prior_logit)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The input of ``network``'s first layer: the coordinates, or their Fourier features."""
        return x if self.encoding is None else self.encoding(x)

    def enable_dropout(self) -> None:
        """Switch only the dropout layers to train mode, for MC-dropout sampling."""
        for layer in self.modules():
            if isinstance(layer, nn.Dropout):
                layer.train()

    def count_parameters(self) -> int:
        """Number of trainable parameters (50,177 at the defaults)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def linear_layers(self) -> list[nn.Linear]:
        """The Linear layers from input to output, so callers can freeze the first k of them."""
        return [layer for layer in self.network if isinstance(layer, nn.Linear)]

    def architecture(self) -> dict:
        """Constructor arguments, stored in checkpoints so the model can be rebuilt exactly."""
        arch = {"input_dim": self.input_dim, "hidden_dim": self.hidden_dim,
                "n_layers": self.n_layers, "dropout_rate": self.dropout_rate, "dropout_after": list(self.dropout_after)}
        if self.fourier_features:  # the documented layout's dict stays as it was
            arch["fourier_features"] = self.fourier_features
        return arch


def compute_group_reconstruction_loss(predictions: torch.Tensor, targets: torch.Tensor,
                                      group_ids: torch.Tensor, return_per_group: bool = False,
                                      *, inverse: torch.Tensor | None = None,
                                      n_groups: int | None = None, weights: torch.Tensor | None = None):
    """Mean over groups of ``(mean prediction in the group - group target)^2``.

    ``weights`` ``(N,)``: each row's weight in its group's means (the gaussian slice profile,
    :mod:`cardioscar.prepare.mapping`), ``sum(w p) / sum(w)``; ``None``: the plain mean (the box).

    ``predictions`` and ``targets`` are ``(N,)`` or ``(N, 1)``; ``group_ids`` ``(N,)`` may hold any
    integer labels in any order. Every node of a group is expected to carry the group's target;
    the group target used is the mean of its nodes' targets (equal to it in that case).

    Vectorised with ``index_add`` (no loop over groups). Callers that evaluate the same batch
    many times may pass ``inverse`` (contiguous labels 0..n_groups-1, e.g. from
    ``torch.unique(group_ids, return_inverse=True)``) and ``n_groups`` to skip the relabelling.

    Returns the scalar loss, or ``(loss, per_group_losses)`` with ``return_per_group=True``
    (per-group losses ordered by sorted group label).
    """
    pred = predictions.reshape(-1)
    tgt = targets.reshape(-1).to(pred.dtype)
    if pred.shape[0] != tgt.shape[0] or pred.shape[0] != group_ids.reshape(-1).shape[0]:
        raise ValueError("predictions, targets and group_ids must have the same number of rows")
    if inverse is None or n_groups is None:
        _, inverse = torch.unique(group_ids.reshape(-1), return_inverse=True)
        n_groups = int(inverse.max().item()) + 1 if inverse.numel() else 0
    w = None if weights is None else weights.reshape(-1).to(pred.dtype)
    counts = group_sums(torch.ones_like(pred), inverse, n_groups, w)
    per_group = ((group_sums(pred, inverse, n_groups, w) - group_sums(tgt, inverse, n_groups, w)) / counts) ** 2
    loss = per_group.mean()
    if return_per_group:
        return loss, per_group
    return loss
