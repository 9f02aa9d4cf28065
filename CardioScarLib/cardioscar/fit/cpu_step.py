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
* The bias add and the ReLU are one pass after a bias-free matrix product.
* ReLU and dropout act in place, and the backward needs only the kept activation: an element
  passes gradient exactly when its stored activation is positive. Dropout's 1 / (1 - p) scale
  is folded into the next layer's weights.
* Dropout masks are 16-bit lanes of SFC64 words (as in inference) drawn per chunk from a
  generator seeded by (step seed, chunk index), so the result never depends on thread timing.
* Whole chunks run on single-threaded workers (one per torch thread), taken as workers free up;
  the chunks' gradients are added in chunk order, so a seeded run repeats exactly.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cardioscar.fit.batching import group_boundaries, group_means, group_sums, pack_groups
from cardioscar.fit.engines import BayesianNN, bounded_residual, drop_threshold

#: Row-samples (rows x passes after the first dropout) per chunk. Large enough that the ~80
#: Python-level operations of a chunk cost little beside its matrix products, small enough that
#: its activations (1.5 MB each at width 128) stay in cache; 2,048-4,096 timed best on the 2-core
#: test machine (1,024: 15-20 % slower).
ROWS_PER_CHUNK = 3072


def add_relu_in_two_passes(z: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``relu(z + bias)`` in place with public operations: the stand-in for :data:`ADD_RELU` on a
    torch that no longer has the private op (same values, one more pass)."""
    return z.add_(bias).clamp_min_(0.0)


#: ``relu(z + bias)`` in place, one pass (the op torch's own graph passes fuse ``add + relu`` into).
#: Beside a bias-free matrix product it replaced ``addmm`` (which first copies the broadcast
#: bias into its output) and a separate ReLU: bit-identical results, 3-7 % faster steps. It is
#: private to torch, hence the public fallback.
ADD_RELU = getattr(torch.ops.aten, "_add_relu_", add_relu_in_two_passes)


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
    row, per group ``inv_counts`` (1 / size, or 1 / the sum of its rows' weights) and ``targets``,
    ``prior_logit`` (n, 1), the fixed log-odds added before the sigmoid (the shape prior), or
    ``None``, and ``weights`` (n, 1), each row's weight in its group's mean (the gaussian slice
    profile), or ``None`` (every row 1: the box, on the unweighted path); ``residual_bound``: the
    network's output enters as ``bound * tanh(f / bound)`` beside a prior (inf: as it is)."""

    inputs: torch.Tensor
    inverse: torch.Tensor
    inv_counts: torch.Tensor
    targets: torch.Tensor
    prior_logit: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    residual_bound: float = math.inf


@dataclass
class ChunkedBatch:
    """A batch as chunks; ``n_groups`` is the batch's group count (the loss is a mean over it)."""

    chunks: list[Chunk]
    n_groups: int


def chunk_batch(coordinates: np.ndarray, intensities: np.ndarray, group_ids: np.ndarray,
                rows_per_chunk: int, prior_logit: np.ndarray | None = None,
                row_weights: np.ndarray | None = None, residual_bound: float = math.inf) -> ChunkedBatch:
    """Cut one batch (rows sorted by group) into chunks of whole groups of about
    ``rows_per_chunk`` rows (``prior_logit``: the rows' fixed log-odds, or ``None``;
    ``row_weights``: their weights in the group means, or ``None`` for all 1; ``residual_bound``:
    see :class:`Chunk`)."""
    bounds = group_boundaries(group_ids)
    chunks = []
    for start, end in pack_groups(bounds, max(1, rows_per_chunk)):
        local = bounds[(bounds >= start) & (bounds <= end)] - start
        sizes = np.diff(local)
        inverse = np.repeat(np.arange(len(sizes)), sizes)
        means, totals = group_means(intensities[start:end], inverse,
                                    None if row_weights is None else row_weights[start:end])
        chunks.append(Chunk(torch.from_numpy(np.ascontiguousarray(coordinates[start:end])),
                            torch.from_numpy(inverse.astype(np.int64)),
                            torch.from_numpy((1.0 / totals).astype(np.float32)),
                            torch.from_numpy(means.astype(np.float32)),
                            _column(prior_logit, start, end), _column(row_weights, start, end), residual_bound))
    return ChunkedBatch(chunks, len(bounds) - 1)


def _column(values: np.ndarray | None, start: int, end: int) -> torch.Tensor | None:
    """Rows ``[start, end)`` of a per-row array as a float32 (n, 1) tensor, or ``None``."""
    if values is None:
        return None
    return torch.from_numpy(np.ascontiguousarray(values[start:end], dtype=np.float32)).view(-1, 1)


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
        self.widths = [layer.linear.out_features for layer in self.layers]
        self.mask_width = self.widths[self.first_dropout] if dropouts else 0
        self.threshold_lanes = torch.tensor(self.thresholds, dtype=torch.int16).view(-1, 1, 1)
        self.pool = pool
        self.local = threading.local()

    def step(self, batch: ChunkedBatch, seed: int) -> float:
        weights = [(layer.linear.weight.detach() * layer.in_scale) if layer.in_scale != 1.0
                   else layer.linear.weight.detach() for layer in self.layers]
        network = _Network(weights=weights,
                           transposed=[weight.t().contiguous() for weight in weights],  # ~15 % faster forward
                           biases=[None if layer.linear.bias is None else layer.linear.bias.detach()
                                   for layer in self.layers],
                           output_row=weights[-1][0])
        jobs = [(chunk, index, batch.n_groups, network, seed) for index, chunk in enumerate(batch.chunks)]
        if self.pool is None:
            results = (self._run(*job) for job in jobs)
        else:  # chunks are handed out as workers free up; their sums are added in chunk order
            results = (future.result() for future in [self.pool.submit(self._run, *job) for job in jobs])
        loss, grads = _sum_in_order(results)  # while later chunks still run
        for (weight_grad, bias_grad), index in zip(grads, range(self.first_trainable, len(self.layers))):
            layer = self.layers[index]
            # the products used the scaled weight W * s, so dL/dW = s * (what the chunks summed)
            layer.linear.weight.grad = weight_grad.view_as(layer.linear.weight).mul_(layer.in_scale)
            if layer.linear.bias is not None:
                layer.linear.bias.grad = bias_grad
        return loss / batch.n_groups

    def _run(self, chunk: Chunk, index: int, n_groups: int, network: "_Network", seed: int):
        """Chunk ``index`` of a batch: (sum of squared residuals, per trainable layer from the
        first trainable one up: (weight-product gradient, bias gradient or None))."""
        scratch = getattr(self.local, "scratch", None)
        if scratch is None:
            scratch = self.local.scratch = _Scratch()
        with torch.no_grad():
            return self._chunk(chunk, n_groups, network, np.random.SFC64([seed, index]), scratch)

    def _masks(self, bits: np.random.SFC64, n: int, scratch: "_Scratch | None" = None) -> torch.Tensor:
        """0/1 float keep-masks (dropouts, n * passes, width), rows node-major; each dropout's mask
        comes from its own contiguous run of lanes (a strided compare is several times slower)."""
        if not self.thresholds:
            return torch.empty(0, n * self.passes, self.mask_width)
        scratch = scratch if scratch is not None else _Scratch()
        lanes_per_mask = n * self.passes * self.mask_width
        count = len(self.thresholds) * lanes_per_mask
        words = torch.from_numpy(bits.random_raw((count + 3) // 4).view(np.int64))
        lanes = words.view(torch.int16)[:count].view(-1, n * self.passes, self.mask_width)
        masks = scratch.take("mask", lanes.shape)
        # numpy casts the comparison to float in small buffered blocks (one pass over memory);
        # torch.ge with a float ``out`` fills a bool temporary and copies it (~2 % of a step)
        np.greater_equal(lanes.numpy(), self.threshold_lanes.numpy(), out=masks.numpy(), casting="unsafe")
        return masks

    def _chunk(self, chunk: Chunk, n_groups: int, network: "_Network", bits: np.random.SFC64,
               scratch: "_Scratch") -> tuple[float, list]:
        """Forward, loss and backward of one chunk (see :meth:`_run` for what it returns)."""
        n, passes, last = chunk.inputs.shape[0], self.passes, len(self.layers) - 1
        masks = self._masks(bits, n, scratch)
        # forward: outputs[i] is layer i's activation (the input of layer i + 1)
        h, outputs, dropout = chunk.inputs, [], 0
        for index in range(last):
            z = torch.mm(h, network.transposed[index], out=scratch.take(index, (h.shape[0], self.widths[index])))
            h = z.clamp_min_(0.0) if network.biases[index] is None else ADD_RELU(z, network.biases[index])
            if self.layers[index].threshold is not None:
                if index == self.first_dropout and passes > 1:  # broadcast over the passes: (n, passes, width)
                    spread = scratch.take("spread", (n, passes, h.shape[1]))
                    h = torch.mul(masks[dropout].view(n, passes, -1), h.view(n, 1, -1), out=spread).view(n * passes, -1)
                else:
                    h = h.mul_(masks[dropout])
                dropout += 1
            outputs.append(h)
        if network.biases[last] is not None:
            p = torch.addmv(network.biases[last], h, network.output_row)
        else:
            p = torch.mv(h, network.output_row)
        slope = None  # d(the residual as it enters)/df: 1 unbounded, 1 - tanh^2 bounded
        if chunk.prior_logit is not None:  # sigmoid(prior + f): the gradient at f is still p (1 - p)
            if not math.isinf(chunk.residual_bound):
                p = bounded_residual(p, chunk.residual_bound)
                slope = 1.0 - (p / chunk.residual_bound) ** 2
            p.view(n, passes).add_(chunk.prior_logit)
        p = p.sigmoid_()
        # the group loss of the (weighted) group mean of the mean over passes, and its gradient at
        # the output unit: d(mean)/d(p of a row) = w / sum(w) of its group (1 / size unweighted)
        row_mean = p.view(n, passes).mean(dim=1)
        residual = group_sums(row_mean, chunk.inverse, len(chunk.targets),
                              None if chunk.weights is None else chunk.weights.view(-1))
        residual = residual.mul_(chunk.inv_counts).sub_(chunk.targets)
        coefficient = residual * chunk.inv_counts * (2.0 / (n_groups * passes))
        per_row = coefficient[chunk.inverse].view(n, 1)
        if chunk.weights is not None:
            per_row = per_row * chunk.weights
        grad = (per_row * (p - p * p).view(n, passes)).view(-1)
        if slope is not None:
            grad = grad.mul_(slope)
        # backward, from the output unit down to the first trainable layer
        grads = []
        for index in range(last, self.first_trainable - 1, -1):
            below = outputs[index - 1] if index > 0 else chunk.inputs
            has_bias = network.biases[index] is not None
            if index == last:
                grads.append((torch.mv(below.t(), grad), grad.sum(dim=0, keepdim=True) if has_bias else None))
            else:
                grads.append((torch.mm(grad.t(), below), grad.sum(dim=0) if has_bias else None))
            if index == self.first_trainable:
                break
            down = scratch.take(("grad", index % 2), below.shape)
            if index == last:
                torch.outer(grad, network.output_row, out=down)
            else:
                torch.mm(grad, network.weights[index], out=down)
            # through ReLU and dropout of layer index - 1: only positive kept activations pass
            grad = torch.ops.aten.threshold_backward.grad_input(down, below, 0.0, grad_input=down)
            if index - 1 == self.first_dropout and passes > 1:
                grad = _sum_passes(grad.view(n, passes, -1), scratch.take("spread_grad", (n, grad.shape[1])))
        grads.reverse()
        return float(residual.dot(residual)), grads


@dataclass
class _Network:
    """The parameters one step reads: ``weights[i]`` is layer i's weight with its input dropout
    scale, ``transposed[i]`` its contiguous transpose (the forward layout), ``output_row`` the
    output unit's scaled weight row."""

    weights: list[torch.Tensor]
    transposed: list[torch.Tensor]
    biases: list[torch.Tensor | None]
    output_row: torch.Tensor


class _Scratch:
    """One worker's reusable buffers: a fresh tensor per operation costs an allocation (and page
    faults) on every chunk; with reused buffers the backward's ReLU pass ran about twice as fast.
    The views are kept too (chunks repeat every epoch), so that a chunk pays one dictionary lookup
    per buffer instead of two tensor operations."""

    def __init__(self) -> None:
        self.buffers: dict = {}
        self.views: dict = {}

    def take(self, key, shape: tuple[int, ...]) -> torch.Tensor:
        """A contiguous view shaped ``shape`` of the buffer named ``key``, grown when too small."""
        view = self.views.get((key, shape))
        if view is None:
            size = math.prod(shape)
            buffer = self.buffers.get(key)
            if buffer is None or buffer.numel() < size:
                buffer = self.buffers[key] = torch.empty(size)
                self.views = {k: v for k, v in self.views.items() if k[0] != key}
            view = self.views[(key, shape)] = buffer[:size].view(shape)
        return view


def _sum_passes(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Sum (n, passes, width) over the passes into ``out``; adding the pass slices timed 1.5x
    faster than ``torch.sum`` over the middle dimension."""
    torch.add(grad[:, 0], grad[:, 1], out=out)
    for k in range(2, grad.shape[1]):
        out.add_(grad[:, k])
    return out


def _sum_in_order(results) -> tuple[float, list]:
    """Add the chunks' losses and gradients in chunk order (so that a seeded run is bit-for-bit
    repeatable), in place into the first chunk's fresh tensors."""
    loss, grads = next(results)
    for chunk_loss, chunk_grads in results:
        loss += chunk_loss
        for total, part in zip(grads, chunk_grads):
            total[0].add_(part[0])
            if total[1] is not None:
                total[1].add_(part[1])
    return loss, grads
