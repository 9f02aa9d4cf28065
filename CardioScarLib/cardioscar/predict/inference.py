"""Batched MC-dropout prediction.

Each mesh node gets ``mc_samples`` stochastic predictions with dropout on; their mean is the scar
probability and their population standard deviation the uncertainty.

Why it is fast (each step keeps the distribution of separate stochastic passes exactly):

* The layers before the first dropout are deterministic, so they run once per node; only the
  activations after them are spread over the ``mc_samples`` samples (a broadcast multiply with the
  first dropout mask, no repeated copy).
* Dropout masks come from 16-bit lanes of 64-bit random words (the scheme of
  :func:`cardioscar.engines.mc_dropout`, ``p`` rounded to a multiple of 2**-16), compared straight
  into a 0/1 float tensor (boolean masks take slow paths on the CPU); the 1 / (1 - p) scale is
  folded into the next layer's weights. On the CPU the words come from numpy's SFC64 generator,
  seeded from torch's, so ``torch.manual_seed`` still fixes the result.
* On the CPU, work is cut into chunks of at most ``MAX_ROWS_PER_FORWARD`` rows (nodes x samples)
  that run through preallocated buffers small enough to stay in cache, and whole chunks go to
  single-threaded workers (one per torch thread) instead of splitting every small operation over
  torch's threads. On a GPU a chunk is a whole batch of ``batch_size`` nodes: kernels need many
  rows to fill the device, and each chunk costs a few dozen launches and a read-back. Either way
  memory is bounded by the chunk.
* Denormal floats are flushed to zero during the call (trained weights produce subnormal
  activations that are very slow on x86); the caller's setting is restored afterwards.

Random numbers are consumed node by node (all of a node's masks are contiguous in the stream), so
for a fixed seed the result does not depend on ``batch_size`` whenever
``n_dropouts * mc_samples * width`` is a multiple of 4 (it is for the default widths).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from cardioscar.fit.engines import BayesianNN, bounded_residual, drop_threshold
from cardioscar.errors import CardioScarError, TrainingCancelled
from cardioscar.fit.devices import as_device, cpu_workers, flushed_denormals

logger = logging.getLogger(__name__)

#: Rows (nodes x samples) per chunk. 2,048 rows x 128 floats = 1 MB per buffer, so element-wise
#: passes stay in the L2 cache (single ops ran up to 1.5x faster per row than on 32k-row tensors;
#: whole runs with 1k-4k-row chunks timed alike on the 2-core test machine).
MAX_ROWS_PER_FORWARD = 2048


def nodes_per_chunk(device: torch.device, batch_size: int, mc_samples: int) -> int:
    """Nodes run through the network at once: cache-sized on the CPU, a whole batch elsewhere."""
    if device.type != "cpu":
        return int(batch_size)
    return max(1, min(int(batch_size), MAX_ROWS_PER_FORWARD // int(mc_samples)))


def node_batches(n_nodes: int, batch_size: int) -> list[tuple[int, int]]:
    """Split ``n_nodes`` into consecutive ``[start, end)`` ranges of at most ``batch_size`` nodes."""
    return [(start, min(start + batch_size, n_nodes)) for start in range(0, n_nodes, batch_size)]


@dataclass
class _Step:
    """One stage of the stochastic part of the network.

    ``kind`` is ``"linear"`` (``weight``, transposed, already carries the scale of the dropouts
    before it), ``"relu"`` or ``"dropout"`` (``threshold``: a lane below it drops the element)."""

    kind: str
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    threshold: int = 0


def split_network(model: BayesianNN) -> tuple[nn.Sequential, nn.Dropout | None, list[nn.Module]]:
    """``(deterministic prefix, first active dropout, modules after it)`` of ``model.network``.

    Everything before the first dropout with ``p > 0`` gives the same output on every MC sample.
    Without such a dropout the whole network is the prefix and the rest is empty. A Fourier
    encoding (``model.encoding``) is deterministic and opens the prefix.
    """
    layers = list(model.network)
    encoding = [model.encoding] if getattr(model, "encoding", None) is not None else []
    for index, layer in enumerate(layers):
        if isinstance(layer, nn.Dropout) and layer.p > 0.0:
            return nn.Sequential(*encoding, *layers[:index]), layer, layers[index + 1:]
    return nn.Sequential(*encoding, *layers), None, []


def _plan(first: nn.Dropout, rest: list[nn.Module]) -> tuple[int, list[_Step]]:
    """Threshold of the first dropout and the steps after it.

    Each dropout's 1 / (1 - p) scale moves into the next Linear's weights (through ReLUs, which
    commute with a positive scale), saving a pass over the activations.
    """
    threshold, pending_scale = drop_threshold(first.p)
    steps: list[_Step] = []
    for layer in rest:
        if isinstance(layer, nn.Dropout):
            if layer.p > 0.0:
                layer_threshold, scale = drop_threshold(layer.p)
                steps.append(_Step("dropout", threshold=layer_threshold))
                pending_scale *= scale
        elif isinstance(layer, nn.Linear):
            bias = layer.bias.detach() if layer.bias is not None else None
            # contiguous: products with a transposed view ran ~15 % slower
            weight = (layer.weight.detach() * pending_scale).t().contiguous()
            steps.append(_Step("linear", weight=weight, bias=bias))
            pending_scale = 1.0
        elif isinstance(layer, nn.ReLU):
            steps.append(_Step("relu"))
        else:
            raise ValueError(f"MC-dropout sampling supports Linear, ReLU and Dropout layers, not {layer}")
    if pending_scale != 1.0:
        raise ValueError("MC-dropout sampling needs a Linear layer after the last dropout")
    return threshold, steps


class _Sampler:
    """Runs chunks of nodes through the network ``mc_samples`` times.

    :meth:`draw` (called in chunk order, on one thread) takes a chunk's random words from torch's
    generator, so the stream is consumed node by node whatever the threading; :meth:`__call__` may
    then run on any worker thread, each with its own preallocated buffers.
    """

    def __init__(self, model: BayesianNN, mc_samples: int, max_nodes: int, device: torch.device,
                 residual_bound: float = math.inf) -> None:
        self.mc_samples = mc_samples
        self.residual_bound = residual_bound
        self.max_nodes = max_nodes
        self.device = device
        self.prefix, first, rest = split_network(model)
        self.stochastic = first is not None
        self.local = threading.local()
        if not self.stochastic:
            return
        first_threshold, self.steps = _plan(first, rest)
        self.thresholds = [first_threshold] + [s.threshold for s in self.steps if s.kind == "dropout"]
        self.width = model.hidden_dim
        self.lanes_per_node = len(self.thresholds) * mc_samples * self.width
        self.bits = None
        if device.type == "cpu":
            self.bits = np.random.SFC64(int(torch.randint(0, 2 ** 62, (1,))))
        self.max_width = max([self.width] + [s.weight.shape[1] for s in self.steps if s.kind == "linear"])

    def draw(self, n: int) -> torch.Tensor | None:
        """Random words for ``n`` nodes (4 mask lanes per word).

        On the CPU they come from numpy's SFC64 generator, seeded from torch's generator (so
        ``torch.manual_seed`` still fixes the result): it is ~2x cheaper per word than torch's
        Mersenne Twister, and this serial draw is the part the worker threads cannot share.
        """
        if not self.stochastic:
            return None
        count = (n * self.lanes_per_node + 3) // 4
        if self.bits is not None:
            return torch.from_numpy(self.bits.random_raw(count).view(np.int64))
        return torch.empty(count, dtype=torch.int64, device=self.device).random_(-(2 ** 63), None)

    def _buffers(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """This thread's two activation buffers and mask buffer (made on first use)."""
        if not hasattr(self.local, "buffers"):
            rows = self.max_nodes * self.mc_samples
            self.local.buffers = [torch.empty(rows * self.max_width, device=self.device) for _ in range(2)]
            self.local.keep = torch.empty(rows * self.width, device=self.device)
        return self.local.buffers, self.local.keep

    @torch.inference_mode()  # the mode is per thread: workers need it too
    def __call__(self, x: torch.Tensor, words: torch.Tensor | None,
                 prior: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(std, mean)`` over the samples for the nodes ``x`` of shape (n, in); ``prior`` = (log-odds,
        weight), each (n, 1): every sample's output, bounded (:func:`bounded_residual`, as in training),
        is scaled by the weight and added to the log-odds before the sigmoid (the shape prior)."""
        shared = self.prefix(x)
        if words is None:
            prediction = torch.sigmoid(shared if prior is None else
                                       bounded_residual(shared, self.residual_bound) * prior[1] + prior[0]).reshape(-1)
            return torch.zeros_like(prediction), prediction
        buffers, keep_buffer = self._buffers()
        n, width, t = shared.shape[0], self.width, self.mc_samples
        lanes = words.view(torch.int16)[: n * self.lanes_per_node].view(n, -1, t * width)
        masks = iter(range(len(self.thresholds)))

        def keep() -> torch.Tensor:
            """The next dropout's 0/1 mask, (n, t * width), node-major like the rows."""
            index = next(masks)
            out = keep_buffer[: n * t * width].view(n, t * width)
            return torch.ge(lanes[:, index], self.thresholds[index], out=out)

        current = 0
        h = buffers[current][: n * t * width].view(n, t, width)
        torch.mul(keep().view(n, t, width), shared.view(n, 1, width), out=h)
        h = h.view(n * t, width)
        for step in self.steps:
            if step.kind == "linear":
                current = 1 - current
                out_width = step.weight.shape[1]
                out = buffers[current][: n * t * out_width].view(n * t, out_width)
                if out_width == 1 and step.bias is not None:  # the output layer: a mat-vec is ~2x cheaper
                    h = torch.addmv(step.bias, h, step.weight[:, 0], out=out.view(-1)).view(-1, 1)
                elif step.bias is not None:
                    h = torch.addmm(step.bias, h, step.weight, out=out)
                else:
                    h = torch.mm(h, step.weight, out=out)
            elif step.kind == "relu":
                h = h.relu_()
            else:
                h = h.mul_(keep().view(n * t, width))
        samples = torch.sigmoid(h.reshape(n, t) if prior is None else
                                bounded_residual(h.reshape(n, t), self.residual_bound) * prior[1] + prior[0])
        return torch.std_mean(samples, dim=1, correction=0)


def mc_dropout_predict(model: BayesianNN, coordinates, mc_samples: int = 10, batch_size: int = 50000,
                       device: str | torch.device | None = None,
                       should_cancel: Callable[[], bool] | None = None,
                       prior_logit: np.ndarray | None = None,
                       residual_weight: np.ndarray | None = None,
                       residual_bound: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(mean, std)``, float32 arrays of shape (N,), for normalised coordinates (N, 3).

    ``prior_logit`` (N,): the shape prior's log-odds per node (:mod:`cardioscar.shape_prior`),
    added to each sample's output before the sigmoid, as in training; ``None``: no prior.
    ``residual_weight`` (N,): a factor on each sample's output first (the prior's residual weight,
    :meth:`cardioscar.shape_prior.ShapePrior.residual_weight`; ``None``: 1); only with ``prior_logit``.
    ``residual_bound``: each sample's output enters as ``bound * tanh(f / bound)`` before that weight,
    as in training (:attr:`cardioscar.shape_prior.ShapePrior.residual_bound`; inf: as it is); the mean
    and std are still those of the samples' sigmoids.

    ``std`` is the population standard deviation (ddof = 0) of the ``mc_samples`` predictions; with
    one sample it is 0 (a warning is logged). Nodes go through the network in chunks of
    :func:`nodes_per_chunk` (at most ``batch_size``; on the CPU also at most
    ``MAX_ROWS_PER_FORWARD`` node-samples); ``should_cancel()`` is polled before each chunk. The
    model's train/eval state, its device and the denormal setting are left as they were.
    """
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, (int, np.integer)) or mc_samples < 1:
        raise CardioScarError(f"mc_samples must be an integer >= 1, got {mc_samples!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise CardioScarError(f"batch_size must be a positive integer, got {batch_size!r}")
    coords = np.asarray(coordinates, dtype=np.float32)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise CardioScarError(f"coordinates must have shape (N, 3), got {coords.shape}")
    prior = None if prior_logit is None else np.asarray(prior_logit, dtype=np.float32).reshape(-1, 1)
    if prior is not None and prior.shape[0] != coords.shape[0]:
        raise CardioScarError(f"prior_logit must hold one value per node ({coords.shape[0]}), got {prior.shape[0]}")
    weight = None
    if prior is not None:
        weight = np.ones_like(prior) if residual_weight is None else \
            np.asarray(residual_weight, dtype=np.float32).reshape(-1, 1)
        if weight.shape != prior.shape:
            raise CardioScarError(f"residual_weight must hold one value per node ({coords.shape[0]}), got {weight.shape[0]}")
    if mc_samples == 1:
        logger.warning("mc_samples=1: the uncertainty (std) will be 0 everywhere; use 10 or more samples for a useful one")
    device = as_device(device)
    modes = [(module, module.training) for module in model.modules()]  # eval() + enable_dropout() is a mode too
    home = next(model.parameters()).device
    model = model.to(device)
    model.eval()
    mean = np.empty(coords.shape[0], dtype=np.float32)
    std = np.empty(coords.shape[0], dtype=np.float32)
    chunk_nodes = nodes_per_chunk(device, batch_size, mc_samples)
    # chunks drawn but not yet collected: enough to keep the CPU workers (or the GPU's queue) fed
    max_in_flight = 2 * torch.get_num_threads() if device.type == "cpu" else 2
    try:
        with torch.inference_mode(), flushed_denormals(), cpu_workers(device) as pool:
            sampler = _Sampler(model, int(mc_samples), min(chunk_nodes, max(1, coords.shape[0])), device,
                               float(residual_bound))
            in_flight: deque = deque()

            def collect() -> None:
                start, end, result = in_flight.popleft()
                std_b, mean_b = result.result() if pool is not None else result
                mean[start:end] = mean_b.float().cpu().numpy()
                std[start:end] = std_b.float().cpu().numpy()

            for start, end in node_batches(coords.shape[0], chunk_nodes):
                if should_cancel is not None and should_cancel():
                    raise TrainingCancelled(f"prediction cancelled after {start} of {coords.shape[0]} nodes")
                x = torch.from_numpy(coords[start:end]).to(device)
                words = sampler.draw(end - start)
                offset = None if prior is None else (torch.from_numpy(prior[start:end]).to(device),
                                                     torch.from_numpy(weight[start:end]).to(device))
                if pool is None:
                    in_flight.append((start, end, sampler(x, words, offset)))
                else:
                    in_flight.append((start, end, pool.submit(sampler, x, words, offset)))
                while len(in_flight) > max_in_flight:
                    collect()
            while in_flight:
                collect()
    finally:
        for module, training in modes:
            module.training = training
        model.to(home)
    return mean, std
