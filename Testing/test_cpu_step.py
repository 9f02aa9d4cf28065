"""The CPU training step (hand-written backward in chunks of whole groups) against autograd on
the documented loss, with the very same dropout masks."""

import numpy as np
import pytest
import torch
from torch import nn

from cardioscar.fit.batching import ScarReconstructionDataset
from cardioscar.fit import cpu_step
from cardioscar.fit.cpu_step import GroupLossStep, chunk_batch, network_layers
from cardioscar.fit.devices import cpu_workers
from cardioscar.fit.engines import BayesianNN, compute_group_reconstruction_loss, drop_threshold


def make_batch(n_groups=40, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, n_groups)
    groups = np.repeat(np.arange(n_groups) * 3 + 5, sizes)  # non-contiguous labels
    coords = rng.random((len(groups), 3)).astype(np.float32)
    values = np.repeat(rng.random(n_groups), sizes).astype(np.float32)
    return ScarReconstructionDataset(coords, values, groups)


def autograd_reference(model, data, batch, step, seed, passes, prior=None, bound=np.inf):
    """Loss and gradients from separate passes with plain autograd and the documented loss, each
    pass using the masks the step draws for it; ``prior`` (rows,): log-odds added before the sigmoid,
    the network's output entering as ``bound * tanh(f / bound)`` beside it (written out here)."""
    per_chunk = [step._masks(np.random.SFC64([seed, index]), chunk.inputs.shape[0])
                 for index, chunk in enumerate(batch.chunks)]
    masks = [torch.cat([chunk[d] for chunk in per_chunk]).view(len(data), passes, -1)
             for d in range(len(step.thresholds))]
    model.zero_grad(set_to_none=True)
    x = torch.from_numpy(data.coordinates)
    outputs = []
    for k in range(passes):
        h, dropout = x, 0
        for module in model.network:
            if isinstance(module, nn.Dropout):
                if module.p > 0:
                    h = h * masks[dropout][:, k] * drop_threshold(module.p)[1]
                    dropout += 1
            else:
                h = module(h)
        f = h.reshape(-1) if np.isinf(bound) else bound * torch.tanh(h.reshape(-1) / bound)
        outputs.append(torch.sigmoid(f + (0.0 if prior is None else torch.from_numpy(prior))))
    loss = compute_group_reconstruction_loss(torch.stack(outputs).mean(0), torch.from_numpy(data.intensities),
                                             torch.from_numpy(data.group_ids))
    loss.backward()
    return loss.item(), [None if p.grad is None else p.grad.clone() for p in model.parameters()]


def step_gradients(model, batch, passes, seed, pool=None):
    model.zero_grad(set_to_none=True)
    loss = GroupLossStep(model, passes, pool).step(batch, seed)
    return loss, [None if p.grad is None else p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("dropout,passes,rows,after", [(0.0, 3, 9, None), (0.1, 3, 9, None), (0.3, 1, 5, None),
                                                      (0.3, 4, 1000, None), (0.2, 3, 9, (2,))])
def test_step_matches_autograd_with_the_same_masks(dropout, passes, rows, after):
    """``after=(2,)``: the reference tool's one dropout after hidden layer 2 (a fine-tuned reference checkpoint)."""
    torch.manual_seed(1)
    model = BayesianNN(3, 16, 4, dropout, dropout_after=after)
    data = make_batch()
    batch = chunk_batch(data.coordinates, data.intensities, data.group_ids, rows)
    assert (len(batch.chunks) > 5) == (rows < 100) and batch.n_groups == 40
    ours_loss, ours = step_gradients(model, batch, passes, seed=123)
    ref_loss, ref = autograd_reference(model, data, batch, GroupLossStep(model, passes, None), 123, passes)
    assert ours_loss == pytest.approx(ref_loss, rel=1e-5)
    assert ref_loss > 1e-3
    for mine, theirs in zip(ours, ref):
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-7)


def test_a_shape_prior_is_added_before_the_sigmoid_and_the_gradient_follows():
    """The shape prior's log-odds per row (cardioscar.shape_prior) enters the step as in autograd,
    and it changes the loss (a step that ignored it would match the reference without it)."""
    torch.manual_seed(2)
    model = BayesianNN(3, 16, 4, 0.2)
    data = make_batch()
    prior = np.random.default_rng(3).normal(0.0, 2.0, len(data)).astype(np.float32)
    batch = chunk_batch(data.coordinates, data.intensities, data.group_ids, 9, prior)
    ours_loss, ours = step_gradients(model, batch, 3, seed=5)
    ref_loss, ref = autograd_reference(model, data, batch, GroupLossStep(model, 3, None), 5, 3, prior)
    plain_loss, _ = autograd_reference(model, data, batch, GroupLossStep(model, 3, None), 5, 3)
    assert ours_loss == pytest.approx(ref_loss, rel=1e-5)
    assert abs(ref_loss - plain_loss) > 0.01
    for mine, theirs in zip(ours, ref):
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-7)


def test_a_bounded_residual_enters_as_c_tanh_f_over_c_and_the_gradient_follows():
    """Prior version 5's bound (cardioscar.shape_prior.ShapePrior.residual_bound): the step's loss and
    gradients match autograd through ``c tanh(f / c)``, and differ from the unbounded step's (an output
    scaled up so that the network's residual exceeds the bound on most rows)."""
    torch.manual_seed(2)
    model = BayesianNN(3, 16, 4, 0.2)
    with torch.no_grad():
        model.linear_layers()[-1].weight.mul_(40.0)
    data = make_batch()
    prior = np.random.default_rng(3).normal(0.0, 2.0, len(data)).astype(np.float32)
    batch = chunk_batch(data.coordinates, data.intensities, data.group_ids, 9, prior, residual_bound=1.5)
    ours_loss, ours = step_gradients(model, batch, 3, seed=5)
    ref_loss, ref = autograd_reference(model, data, batch, GroupLossStep(model, 3, None), 5, 3, prior, 1.5)
    free_loss, _ = autograd_reference(model, data, batch, GroupLossStep(model, 3, None), 5, 3, prior)
    assert ours_loss == pytest.approx(ref_loss, rel=1e-5)
    assert abs(ref_loss - free_loss) > 0.003
    for mine, theirs in zip(ours, ref):
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-7)
    # the GPU's autograd step (training._batch_loss) bounds alike: without dropout both see one field
    from cardioscar.fit import training

    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    bounded = ScarReconstructionDataset(data.coordinates, data.intensities, data.group_ids, prior_logit=prior,
                                        residual_bound=1.5)
    (gpu_batch,) = training._prepare_batches(bounded, 10 ** 6, 1, torch.device("cpu"))
    cpu_loss = GroupLossStep(model, 1, None).step(chunk_batch(data.coordinates, data.intensities, data.group_ids, 9,
                                                              prior, residual_bound=1.5), 5)
    assert training._batch_loss(model, gpu_batch, 1).item() == pytest.approx(cpu_loss, rel=1e-5)
    unbounded = ScarReconstructionDataset(data.coordinates, data.intensities, data.group_ids, prior_logit=prior)
    (free_batch,) = training._prepare_batches(unbounded, 10 ** 6, 1, torch.device("cpu"))
    assert abs(training._batch_loss(model, free_batch, 1).item() - cpu_loss) > 0.003


def test_masks_drop_at_the_configured_rate_and_differ_between_seeds():
    model = BayesianNN(3, 64, 4, 0.25)
    step = GroupLossStep(model, 3, None)
    first = step._masks(np.random.SFC64([1, 0]), 500)
    assert len(first) == 2 and first[0].shape == (1500, 64)
    assert abs(1.0 - float(first.mean()) - 0.25) < 0.01
    assert not torch.equal(first[0], step._masks(np.random.SFC64([2, 0]), 500)[0])


def test_frozen_layers_get_no_gradient_and_the_rest_match_autograd():
    torch.manual_seed(2)
    model = BayesianNN(3, 16, 4, 0.2)
    for layer in model.linear_layers()[:2]:
        layer.weight.requires_grad_(False)
        layer.bias.requires_grad_(False)
    data = make_batch(seed=3)
    batch = chunk_batch(data.coordinates, data.intensities, data.group_ids, 10)
    _, ours = step_gradients(model, batch, 2, seed=7)
    _, ref = autograd_reference(model, data, batch, GroupLossStep(model, 2, None), 7, 2)
    assert ours[:4] == [None] * 4
    for mine, theirs in zip(ours[4:], ref[4:]):
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-7)


def test_worker_threads_give_the_single_thread_result_exactly():
    torch.manual_seed(3)
    model = BayesianNN(3, 32, 4, 0.1)
    data = make_batch(n_groups=200, seed=4)
    batch = chunk_batch(data.coordinates, data.intensities, data.group_ids, 30)
    alone = step_gradients(model, batch, 3, seed=9)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with cpu_workers(torch.device("cpu")) as pool:
            together = step_gradients(model, batch, 3, seed=9, pool=pool)
            again = step_gradients(model, batch, 3, seed=9, pool=pool)
    finally:
        torch.set_num_threads(threads)
    assert together[0] == pytest.approx(alone[0], rel=1e-6)
    assert together[0] == again[0]
    for mine, theirs, repeat in zip(together[1], alone[1], again[1]):
        assert torch.allclose(mine, theirs, rtol=1e-5, atol=1e-8)
        assert torch.equal(mine, repeat)


def test_chunks_hold_whole_groups_with_their_targets():
    data = make_batch(n_groups=30, seed=5)
    batch = chunk_batch(data.coordinates, data.intensities, data.group_ids, 12)
    assert sum(len(chunk.inputs) for chunk in batch.chunks) == len(data)
    assert sum(len(chunk.targets) for chunk in batch.chunks) == 30
    targets = torch.cat([chunk.targets for chunk in batch.chunks]).numpy()
    assert np.allclose(targets, data.intensities[np.unique(data.group_ids, return_index=True)[1], 0])
    for chunk in batch.chunks:
        assert np.allclose(1.0 / chunk.inv_counts.numpy(), np.bincount(chunk.inverse.numpy()))


def test_unsupported_layouts_are_refused():
    with pytest.raises(ValueError, match="does not support"):
        network_layers(type("Net", (), {"network": nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1))})())
    with pytest.raises(ValueError, match="one output unit"):
        network_layers(type("Net", (), {"network": nn.Sequential(nn.Linear(3, 4), nn.ReLU())})())


def test_cpu_workers_flush_subnormals_and_restore_the_thread_count():
    def reads_subnormal_as_zero() -> bool:
        return float(torch.tensor([1e-40]) * 1.0) == 0.0

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with cpu_workers(torch.device("cpu")) as pool:
            assert torch.get_num_threads() == 1
            assert all(pool.submit(reads_subnormal_as_zero).result() for _ in range(4))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_the_public_add_relu_fallback_gives_the_fused_ops_values():
    """``ADD_RELU`` is torch's private one-pass op; where a torch lacks it the step uses the public
    two-pass stand-in, which must give the same values (bias broadcast over rows, in place)."""
    z = torch.randn(257, 96)
    bias = torch.randn(96)
    fused = cpu_step.ADD_RELU(z.clone(), bias)
    target = z.clone()
    public = cpu_step.add_relu_in_two_passes(target, bias)
    assert public is target  # in place, like the fused op
    assert torch.equal(public, fused) and torch.equal(fused, torch.relu(z + bias))
    assert cpu_step.ADD_RELU is torch.ops.aten._add_relu_  # this torch has the one-pass op
