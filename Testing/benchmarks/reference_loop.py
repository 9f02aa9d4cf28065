"""The documented training algorithm, written plainly from the documentation, as a yardstick.

It follows the documented "custom training loop" literally: complete-group batches of ~10,000
rows, ``mc_samples`` SEPARATE stochastic forward passes averaged, the documented group loss
(relabelling the groups of every batch at every step), Adam with the triangular cyclical rate
(1e-3 .. 1e-2, half-cycle 2,000 batches) stepped per batch, ``loss.item()`` per step, early
stopping on the epoch mean loss (patience 500, at most 10,000 epochs), seed 42, no denormal
flushing, torch's default thread count. It keeps the last weights (as the reference tool does).

Benchmarks cap it with ``max_epochs`` / ``time_limit_s`` and observe it through ``on_epoch``.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from cardioscar.fit.batching import ScarReconstructionDataset, create_complete_group_batches
from cardioscar.fit.engines import BayesianNN, compute_group_reconstruction_loss
from cardioscar.fit.training import CyclicalLR


class ReferenceNet(BayesianNN):
    """The documented network evaluated the plain way: ``nn.Sequential`` with ``nn.Dropout``
    (``torch.bernoulli`` masks). Same layers and state-dict keys as :class:`BayesianNN`."""

    def forward(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        return torch.sigmoid(self.network(x))


def reference_network(start: BayesianNN | None = None) -> ReferenceNet:
    """A fresh reference network, or one carrying the weights of ``start``."""
    net = ReferenceNet()
    if start is not None:
        net.load_state_dict(start.state_dict())
    return net


def reference_train(coordinates, intensities, group_ids, *, batch_size: int = 10000, max_epochs: int = 10000,
                    patience: int = 500, mc_samples: int = 3, base_lr: float = 1e-3, max_lr: float = 1e-2,
                    step_size: int = 2000, seed: int = 42, model: BayesianNN | None = None,
                    time_limit_s: float | None = None,
                    on_epoch: Callable[[int, float, BayesianNN, float], None] | None = None) -> tuple[BayesianNN, dict]:
    """Train like the documented loop; return the model (last weights) and a small history.

    ``model``: weights to start from (copied into a :class:`ReferenceNet`).

    ``on_epoch(epoch, loss, model, elapsed_s)`` is called after every epoch; time spent inside it
    is excluded from ``elapsed_s`` and from the time limit.
    """
    torch.manual_seed(seed)
    dataset = ScarReconstructionDataset(coordinates, intensities, group_ids)
    batches = create_complete_group_batches(dataset, batch_size)
    coords = torch.from_numpy(dataset.coordinates)
    targets = torch.from_numpy(dataset.intensities)
    groups = torch.from_numpy(dataset.group_ids)
    model = reference_network(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=base_lr)
    scheduler = CyclicalLR(optimizer, base_lr=base_lr, max_lr=max_lr, step_size=step_size)
    losses: list[float] = []
    best, since_best = float("inf"), 0
    excluded = 0.0
    started = time.perf_counter()
    model.train()
    for epoch in range(1, max_epochs + 1):
        step_losses = []
        for start, end in batches:
            x, y, g = coords[start:end], targets[start:end].squeeze(), groups[start:end]
            passes = [model(x).squeeze() for _ in range(mc_samples)]
            mean_prediction = torch.stack(passes).mean(dim=0)
            loss = compute_group_reconstruction_loss(mean_prediction, y, g)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            step_losses.append(loss.item())
        epoch_loss = float(np.mean(step_losses))
        losses.append(epoch_loss)
        elapsed = time.perf_counter() - started - excluded
        if on_epoch is not None:
            hook_start = time.perf_counter()
            on_epoch(epoch, epoch_loss, model, elapsed)
            excluded += time.perf_counter() - hook_start
        if epoch_loss < best:
            best, since_best = epoch_loss, 0
        else:
            since_best += 1
        if since_best >= patience or (time_limit_s is not None and elapsed >= time_limit_s):
            break
    seconds = time.perf_counter() - started - excluded
    return model, {"train_loss": losses, "best_loss": best, "epochs_run": len(losses), "seconds": seconds,
                   "rows": len(dataset)}
