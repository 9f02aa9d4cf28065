"""The training step on the CPU: forward pass and a hand-written backward, in cache-sized chunks.

Why: on the CPU the documented step is bounded less by its matrix products than by element-wise
passes over large activation tensors, dropout-mask generation and autograd's bookkeeping (about
a fifth of the matmul rate). The group loss couples only the nodes of one pixel group, so a
batch can be cut into *chunks of whole groups*: a chunk's forward pass, its groups' residuals and
its backward pass run back to back while its activations are still in cache, and the chunks'
weight gradients are summed. The result is the documented step (mean of ``mc_samples`` dropout
passes inside the group loss, mean over the batch's groups, same gradient) up to the order of
floating-point sums. How the work shrinks:

* Layers before the first dropout are deterministic: they run once per row, their output is
  broadcast over the ``mc_samples`` passes, and their gradient is the sum over the passes.
* ReLU and dropout act in place, and the backward needs only the kept activation: an element
  passes gradient exactly when its stored activation is positive. Dropout's 1 / (1 - p) scale
  is folded into the next layer's weights.
* Dropout masks are 16-bit lanes of SFC64 words (as in inference) drawn per chunk from a
  generator seeded by (step seed, chunk index), so the result never depends on thread timing.
* Whole chunks run on single-threaded workers (one per torch thread), taken as workers free up;
  the chunks' gradients are added in chunk order, so a seeded run repeats exactly.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cardioscar.batching import group_boundaries, pack_groups
from cardioscar.engines import BayesianNN, drop_threshold

#: Row-samples (rows x passes after the first dropout) per chunk. Large enough that the ~70
#: Python-level operations of a chunk cost little beside its matrix products, small enough that
#: its activations (1.5 MB each at width 128) stay in cache; 2,048-4,096 timed best on the 2-core
#: test machine (1,024: 15-20 % slower).
ROWS_PER_CHUNK = 3072


@dataclass
class Layer:
    """One ``Linear`` of the network and what follows it: a ReLU, then maybe a dropout.

    ``in_scale`` is the 1 / (1 - p) of the dropout feeding this layer (folded into its weight);
    ``threshold`` the lane threshold of the dropout after it (``None``: no dropout)."""

    linear: nn.Linear
    relu: bool = False
    threshold: int | None = None
    in_scale: float = 1.0


def network_layers(model: BayesianNN) -> list[Layer]:
    """Read ``model.network`` as hidden ``Linear -> ReLU [-> Dropout]`` layers and one output unit.

    Raises ``ValueError`` for other layouts (the backward below relies on a ReLU before every
    dropout and after every hidden layer).
    """
    layers: list[Layer] = []
    scale = 1.0
    for module in model.network:
        if isinstance(module, nn.Linear):
            layers.append(Layer(module, in_scale=scale))
            scale = 1.0
        elif isinstance(module, nn.ReLU) and layers and not layers[-1].relu:
            layers[-1].relu = True
        elif isinstance(module, nn.Dropout) and layers and layers[-1].relu and layers[-1].threshold is None:
            if module.p > 0.0:
                layers[-1].threshold, scale = drop_threshold(module.p)
        else:
            raise ValueError(f"the CPU training step does not support {module} at this place")
    if not layers or any(not layer.relu for layer in layers[:-1]) or layers[-1].relu \
            or layers[-1].threshold is not None or layers[-1].linear.out_features != 1:
        raise ValueError("the CPU training step needs hidden Linear+ReLU layers and one output unit")
    return layers


@dataclass
class Chunk:
    """Whole groups of one batch: ``inputs`` (n, 3), ``inverse`` (n,) the chunk-local group of each
    row, and per group ``inv_counts`` (1 / size) and ``targets``."""

    inputs: torch.Tensor
    inverse: torch.Tensor
    inv_counts: torch.Tensor
    targets: torch.Tensor


@dataclass
class ChunkedBatch:
    """A batch as chunks; ``n_groups`` is the batch's group count (the loss is a mean over it)."""

    chunks: list[Chunk]
    n_groups: int


def chunk_batch(coordinates: np.ndarray, intensities: np.ndarray, group_ids: np.ndarray,
                rows_per_chunk: int) -> ChunkedBatch:
    """Cut one batch (rows sorted by group) into chunks of whole groups of about
    ``rows_per_chunk`` rows."""
    bounds = group_boundaries(group_ids)
    chunks = []
    for start, end in pack_groups(bounds, max(1, rows_per_chunk)):
        local = bounds[(bounds >= start) & (bounds <= end)] - start
        sizes = np.diff(local)
        inverse = np.repeat(np.arange(len(sizes)), sizes)
        sums = np.bincount(inverse, weights=intensities[start:end].reshape(-1).astype(np.float64))
        chunks.append(Chunk(torch.from_numpy(np.ascontiguousarray(coordinates[start:end])),
                            torch.from_numpy(inverse.astype(np.int64)),
                            torch.from_numpy((1.0 / sizes).astype(np.float32)),
                            torch.from_numpy((sums / sizes).astype(np.float32))))
    return ChunkedBatch(chunks, len(bounds) - 1)


class GroupLossStep:
    """Loss and parameter gradients of the group loss for one :class:`ChunkedBatch`.

    ``step(batch, seed)`` sets ``.grad`` of the trainable parameters (those of a frozen first
    layer are left ``None``) and returns the batch loss as a float. ``seed`` picks the dropout
    masks. ``pool``: single-threaded workers (see :func:`cardioscar.devices.cpu_workers`) or
    ``None`` to run on the calling thread; the caller decides the float mode of that thread
    (``fit_scar_field`` flushes subnormals).
    """

    def __init__(self, model: BayesianNN, mc_samples: int, pool: ThreadPoolExecutor | None) -> None:
        self.layers = network_layers(model)
        dropouts = [i for i, layer in enumerate(self.layers) if layer.threshold is not None]
        self.first_dropout = dropouts[0] if dropouts else len(self.layers)
        self.thresholds = [self.layers[i].threshold for i in dropouts]
        if len({self.layers[i].linear.out_features for i in dropouts}) > 1:
            raise ValueError("the CPU training step needs every dropout to act on the same width")
        self.passes = int(mc_samples) if dropouts else 1
        trainable = [i for i, layer in enumerate(self.layers) if layer.linear.weight.requires_grad]
        self.first_trainable = trainable[0] if trainable else len(self.layers)
        self.pool = pool
        self.local = threading.local()

    def step(self, batch: ChunkedBatch, seed: int) -> float:
        weights = [(layer.linear.weight.detach() * layer.in_scale) if layer.in_scale != 1.0
                   else layer.linear.weight.detach() for layer in self.layers]
        biases = [layer.linear.bias.detach() if layer.linear.bias is not None else None for layer in self.layers]
        jobs = [(chunk, index, batch.n_groups, weights, [weight.t() for weight in weights], biases, seed)
                for index, chunk in enumerate(batch.chunks)]
        if self.pool is None:
            results = [self._run(*job) for job in jobs]
        else:  # chunks are handed out as workers free up; their sums are added in chunk order
            results = [future.result() for future in [self.pool.submit(self._run, *job) for job in jobs]]
        for index in range(self.first_trainable, len(self.layers)):
            linear = self.layers[index].linear
            linear.weight.grad = _ordered_sum([result[1][index] for result in results])
            if linear.bias is not None:
                linear.bias.grad = _ordered_sum([result[2][index] for result in results])
        return sum(result[0] for result in results) / batch.n_groups

    def _run(self, chunk: Chunk, index: int, n_groups: int, weights, transposed, biases, seed: int):
        """Chunk ``index`` of a batch: (sum of squared residuals, weight grads, bias grads), the
        grads indexed by layer (``None`` below the first trainable one)."""
        grad_w = [torch.zeros_like(w) if i >= self.first_trainable else None for i, w in enumerate(weights)]
        grad_b = [torch.zeros_like(b) if b is not None and i >= self.first_trainable else None
                  for i, b in enumerate(biases)]
        with torch.no_grad():
            loss = self._chunk(chunk, n_groups, weights, transposed, biases, np.random.SFC64([seed, index]),
                               grad_w, grad_b)
        return loss, grad_w, grad_b

    def _masks(self, bits: np.random.SFC64, n: int, scratch: "_Scratch | None" = None) -> list[torch.Tensor]:
        """0/1 float keep-masks, one per dropout, each (n * passes, width), rows node-major (each
        mask from its own contiguous run of lanes: a strided compare is several times slower)."""
        if not self.thresholds:
            return []
        scratch = scratch if scratch is not None else _Scratch()
        width = self.layers[self.first_dropout].linear.out_features
        lanes_per_mask = n * self.passes * width
        words = torch.from_numpy(bits.random_raw((len(self.thresholds) * lanes_per_mask + 3) // 4).view(np.int64))
        lanes = words.view(torch.int16)[: len(self.thresholds) * lanes_per_mask].view(-1, n * self.passes, width)
        return [torch.ge(lanes[d], threshold, out=scratch.take(("mask", d), n * self.passes, width))
                for d, threshold in enumerate(self.thresholds)]

    def _chunk(self, chunk: Chunk, n_groups: int, weights, transposed, biases, bits: np.random.SFC64,
               grad_w: list, grad_b: list) -> float:
        """Forward, loss and backward of one chunk; adds its gradients into ``grad_w``/``grad_b``
        and returns its sum of squared group residuals. ``weights[i]`` is layer i's weight with
        its input dropout scale, ``transposed[i]`` its transpose (the forward layout)."""
        if not hasattr(self.local, "scratch"):
            self.local.scratch = _Scratch()
        scratch = self.local.scratch
        n, passes, last = chunk.inputs.shape[0], self.passes, len(self.layers) - 1
        masks = iter(self._masks(bits, n, scratch))
        # forward: outputs[i] is layer i's activation (the input of layer i + 1)
        h, outputs = chunk.inputs, []
        for index in range(last):
            layer = self.layers[index]
            z = scratch.take(("z", index), h.shape[0], layer.linear.out_features)
            if biases[index] is not None:
                torch.addmm(biases[index], h, transposed[index], out=z)
            else:
                torch.mm(h, transposed[index], out=z)
            h = z.relu_()
            if index == self.first_dropout:  # broadcast over the passes: (n, passes, width)
                spread = scratch.take("spread", n * passes, h.shape[1])
                h = torch.mul(next(masks).view(n, passes, -1), h.view(n, 1, -1), out=spread.view(n, passes, -1))
                h = h.view(n * passes, -1)
            elif layer.threshold is not None:
                h = h.mul_(next(masks))
            outputs.append(h)
        z = torch.mv(h, weights[last][0])
        if biases[last] is not None:
            z += biases[last]
        p = torch.sigmoid_(z)
        # the group loss of the mean over passes, and its gradient at the output unit
        mean = p.view(n, passes).mean(dim=1)
        residual = torch.zeros_like(chunk.targets).index_add_(0, chunk.inverse, mean)
        residual = residual.mul_(chunk.inv_counts).sub_(chunk.targets)
        coefficient = residual * chunk.inv_counts * (2.0 / (n_groups * passes))
        grad = (coefficient[chunk.inverse].view(n, 1) * (p * (1.0 - p)).view(n, passes)).view(-1)
        # backward
        for index in range(last, self.first_trainable - 1, -1):
            layer = self.layers[index]
            below = outputs[index - 1] if index > 0 else chunk.inputs
            if index == last:
                grad_w[index].view(-1).addmv_(below.t(), grad, alpha=layer.in_scale)
                if grad_b[index] is not None:
                    grad_b[index] += grad.sum()
            else:
                grad_w[index].addmm_(grad.t(), below, alpha=layer.in_scale)
                if grad_b[index] is not None:
                    grad_b[index] += grad.sum(dim=0)
            if index == self.first_trainable or index == 0:
                break
            down = scratch.take(("grad", index % 2), below.shape[0], below.shape[1])
            if index == last:
                torch.outer(grad, weights[index][0], out=down)
            else:
                torch.mm(grad, weights[index], out=down)
            # through ReLU and dropout of layer index - 1: only positive kept activations pass
            grad = torch.ops.aten.threshold_backward.grad_input(down, below, 0.0, grad_input=down)
            if index - 1 == self.first_dropout and passes > 1:
                grad = torch.sum(grad.view(n, passes, -1), dim=1,
                                 out=scratch.take("spread_grad", n, grad.shape[1]))
        return float((residual * residual).sum())


class _Scratch:
    """One worker's reusable buffers: a fresh tensor per operation costs an allocation (and page
    faults) on every chunk; with reused buffers the backward's ReLU pass ran about twice as fast."""

    def __init__(self) -> None:
        self.buffers: dict = {}

    def take(self, key, rows: int, cols: int) -> torch.Tensor:
        """A (rows, cols) view of the buffer named ``key``, grown when too small."""
        buffer = self.buffers.get(key)
        if buffer is None or buffer.numel() < rows * cols:
            buffer = self.buffers[key] = torch.empty(rows * cols)
        return buffer[: rows * cols].view(rows, cols)


def _ordered_sum(parts: list[torch.Tensor]) -> torch.Tensor:
    """Sum in list order (chunk 0 first), so that a seeded run is bit-for-bit repeatable."""
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total
