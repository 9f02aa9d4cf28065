"""Batched MC-dropout prediction."""

import logging

import numpy as np
import pytest
import torch

from cardioscar.fit.engines import BayesianNN
from cardioscar.errors import CardioScarError, TrainingCancelled
from cardioscar.predict.inference import mc_dropout_predict, node_batches


@pytest.fixture
def model():
    """An untrained network made spatially varied (larger first and last weights)."""
    torch.manual_seed(0)
    net = BayesianNN(hidden_dim=32)
    with torch.no_grad():
        net.linear_layers()[0].weight.mul_(8.0)
        net.linear_layers()[-1].weight.mul_(4.0)
    return net.eval()


def test_shapes_types_and_uncertainty(model):
    coords = np.random.default_rng(0).random((1000, 3))
    mean, std = mc_dropout_predict(model, coords, mc_samples=8, batch_size=300, device="cpu")
    assert mean.shape == (1000,) and std.shape == (1000,)
    assert mean.dtype == np.float32 and std.dtype == np.float32
    assert ((mean >= 0) & (mean <= 1)).all()
    assert (std > 0).mean() > 0.99
    assert not model.training  # state restored
    model.train()
    mc_dropout_predict(model, coords[:10], mc_samples=2, device="cpu")
    assert model.training


def separate_full_passes(net, coords, passes):
    """The documented way: ``passes`` full forwards with ``nn.Dropout`` (torch's own masks) on."""
    net.train()
    with torch.no_grad():
        x = torch.from_numpy(coords)
        samples = torch.stack([torch.sigmoid(net.network(x))[:, 0] for _ in range(passes)]).numpy()
    net.eval()
    return samples


def test_distribution_equals_separate_full_passes(model):
    coords = np.random.default_rng(1).random((40, 3)).astype(np.float32)
    torch.manual_seed(5)
    mean, std = mc_dropout_predict(model, coords, mc_samples=4000, batch_size=40, device="cpu")
    samples = separate_full_passes(model, coords, 4000)
    loop_mean, loop_std = samples.mean(0), samples.std(0)
    # per node: means within 5 standard errors, stds within 8% (std's relative error ~1-2% here)
    assert (np.abs(mean - loop_mean) < 5 * np.sqrt((std ** 2 + loop_std ** 2) / 4000)).all()
    assert (np.abs(std / loop_std - 1) < 0.08).all()
    assert abs(std.mean() / loop_std.mean() - 1) < 0.02


def test_fixed_seed_result_is_independent_of_batching_and_threads(model):
    coords = np.random.default_rng(2).random((700, 3)).astype(np.float32)
    threads = torch.get_num_threads()
    results = []
    try:
        for batch_size, n_threads in ((700, 1), (7, 1), (50000, 2), (33, 2)):
            torch.set_num_threads(n_threads)
            torch.manual_seed(11)
            results.append(mc_dropout_predict(model, coords, mc_samples=30, batch_size=batch_size, device="cpu"))
    finally:
        torch.set_num_threads(threads)
    for mean, std in results[1:]:
        assert np.allclose(mean, results[0][0], atol=1e-5) and np.allclose(std, results[0][1], atol=1e-5)
    torch.manual_seed(12)
    other, _ = mc_dropout_predict(model, coords, mc_samples=30, device="cpu")
    assert np.abs(other - results[0][0]).max() > 1e-3  # the seed matters: masks are random


def test_batched_equals_unbatched_in_distribution(model):
    coords = np.random.default_rng(2).random((3000, 3)).astype(np.float32)
    torch.manual_seed(1)
    m1, s1 = mc_dropout_predict(model, coords, mc_samples=30, batch_size=3000, device="cpu")
    torch.manual_seed(2)
    m2, s2 = mc_dropout_predict(model, coords, mc_samples=30, batch_size=256, device="cpu")
    # different random masks, same distribution: means agree within a few standard errors
    assert np.abs(m1 - m2).mean() < 3 * s1.mean() / np.sqrt(30)
    assert abs(s1.mean() - s2.mean()) < 0.1 * s1.mean()
    with torch.no_grad():
        deterministic = model.eval()(torch.from_numpy(coords)).numpy()[:, 0]
    assert np.corrcoef(m1, deterministic)[0, 1] > 0.8  # node order kept through the batches


def test_node_batches_bound_memory():
    assert node_batches(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert node_batches(8, 4) == [(0, 4), (4, 8)]
    assert node_batches(3, 50000) == [(0, 3)]
    assert node_batches(0, 5) == []


def test_single_sample_warns_and_gives_zero_std(model, caplog):
    coords = np.random.default_rng(3).random((20, 3))
    with caplog.at_level(logging.WARNING, logger="cardioscar.predict.inference"):
        mean, std = mc_dropout_predict(model, coords, mc_samples=1, device="cpu")
    assert (std == 0).all() and mean.shape == (20,)
    assert "mc_samples=1" in caplog.text


def test_invalid_arguments_and_cancel(model):
    coords = np.zeros((10, 3))
    with pytest.raises(CardioScarError, match="mc_samples must be an integer >= 1"):
        mc_dropout_predict(model, coords, mc_samples=0)
    with pytest.raises(CardioScarError, match="batch_size must be a positive integer"):
        mc_dropout_predict(model, coords, batch_size=0)
    with pytest.raises(CardioScarError, match=r"shape \(N, 3\)"):
        mc_dropout_predict(model, np.zeros((10, 2)))
    polls = []
    with pytest.raises(TrainingCancelled):
        mc_dropout_predict(model, coords, batch_size=3, should_cancel=lambda: polls.append(1) or len(polls) > 2)
    assert len(polls) == 3


def test_chunks_are_cut_to_the_row_cap(model, monkeypatch):
    from cardioscar.predict import inference

    rows = []
    original = inference._Sampler.__call__

    def spy(self, x, words, prior=None):
        rows.append(x.shape[0] * self.mc_samples)
        return original(self, x, words, prior)

    coords = np.random.default_rng(4).random((7, 3)).astype(np.float32)
    torch.manual_seed(3)
    uncapped = mc_dropout_predict(model, coords, mc_samples=4, device="cpu")
    monkeypatch.setattr(inference._Sampler, "__call__", spy)
    monkeypatch.setattr(inference, "MAX_ROWS_PER_FORWARD", 9)  # 9 // 4 samples -> 2 nodes per chunk
    polls = []
    torch.manual_seed(3)
    mean, std = mc_dropout_predict(model, coords, mc_samples=4, batch_size=5, device="cpu",
                                   should_cancel=lambda: polls.append(1) and False)
    assert rows == [8, 8, 8, 4] and len(polls) == 4  # ceil(7 / 2) chunks, never more than 9 rows
    assert np.allclose(mean, uncapped[0], atol=1e-6) and np.allclose(std, uncapped[1], atol=1e-6)
    rows.clear()
    mc_dropout_predict(model, coords, mc_samples=4, batch_size=1, device="cpu")
    assert rows == [4] * 7  # batch_size caps the nodes per chunk too



def test_a_gpu_gets_whole_batches_per_chunk():
    """On a GPU the cache-sized CPU chunks would cost a few dozen kernel launches and a read-back
    per ~200 nodes; there a chunk is a whole batch (only the choice is checked: no GPU here)."""
    from cardioscar.predict.inference import MAX_ROWS_PER_FORWARD, nodes_per_chunk

    cuda = torch.device("cuda")
    assert nodes_per_chunk(cuda, 50000, 10) == 50000
    assert nodes_per_chunk(cuda, 300, 10) == 300
    assert nodes_per_chunk(torch.device("cpu"), 50000, 10) == MAX_ROWS_PER_FORWARD // 10
    assert nodes_per_chunk(torch.device("cpu"), 3, 10) == 3
    assert nodes_per_chunk(torch.device("cpu"), 50000, 10 * MAX_ROWS_PER_FORWARD) == 1

def flush_denormal_is_on() -> bool:
    return (torch.tensor([1e-40]) * 1.0).item() == 0.0


@pytest.mark.parametrize("flush_before", [False, True])
def test_settings_are_restored_even_on_cancel(model, flush_before):
    coords = np.random.default_rng(5).random((100, 3)).astype(np.float32)
    threads = torch.get_num_threads()
    torch.set_flush_denormal(flush_before)
    try:
        assert flush_denormal_is_on() == flush_before
        model.train()
        mc_dropout_predict(model, coords, mc_samples=3, device="cpu")
        assert flush_denormal_is_on() == flush_before and torch.get_num_threads() == threads and model.training
        model.eval()
        with pytest.raises(TrainingCancelled):
            mc_dropout_predict(model, coords, mc_samples=3, batch_size=10, device="cpu", should_cancel=lambda: True)
        assert flush_denormal_is_on() == flush_before and torch.get_num_threads() == threads and not model.training
    finally:
        torch.set_flush_denormal(False)


def test_the_documented_mc_setup_eval_plus_enable_dropout_is_kept(model):
    """``model.eval(); model.enable_dropout()`` (the documented MC recipe) is a state of its own:
    after a prediction the dropout layers must still be on."""
    coords = np.random.default_rng(6).random((50, 3)).astype(np.float32)
    model.eval()
    model.enable_dropout()
    flags = [module.training for module in model.modules()]
    mc_dropout_predict(model, coords, mc_samples=3, device="cpu")
    assert [module.training for module in model.modules()] == flags and any(flags) and not model.training


def test_split_network_finds_the_deterministic_prefix():
    from cardioscar.predict.inference import split_network

    prefix, first, rest = split_network(BayesianNN(hidden_dim=8, n_layers=6))
    assert [type(m).__name__ for m in prefix] == ["Linear", "ReLU", "Linear", "ReLU"]
    assert first.p == pytest.approx(0.1) and len(rest) == 11  # 4 x (Linear, ReLU), 2 Dropouts, Linear(8, 1)
    prefix, first, rest = split_network(BayesianNN(hidden_dim=8, dropout_rate=0.0))
    assert first is None and rest == [] and len(prefix) == 11


@pytest.mark.parametrize("kwargs", [{"n_layers": 1}, {"dropout_rate": 0.0}])
def test_network_without_dropout_is_deterministic(kwargs):
    torch.manual_seed(0)
    net = BayesianNN(hidden_dim=16, **kwargs).eval()
    coords = np.random.default_rng(6).random((50, 3)).astype(np.float32)
    mean, std = mc_dropout_predict(net, coords, mc_samples=5, batch_size=20, device="cpu")
    with torch.no_grad():
        expected = net(torch.from_numpy(coords))[:, 0].numpy()
    assert np.allclose(mean, expected, atol=1e-6) and (std == 0).all()


def test_deeper_network_matches_separate_full_passes():
    torch.manual_seed(1)
    net = BayesianNN(hidden_dim=16, n_layers=6, dropout_rate=0.3)
    with torch.no_grad():
        net.linear_layers()[0].weight.mul_(6.0)
    coords = np.random.default_rng(7).random((20, 3)).astype(np.float32)
    torch.manual_seed(2)
    mean, std = mc_dropout_predict(net, coords, mc_samples=3000, device="cpu")
    samples = separate_full_passes(net, coords, 3000)
    assert (np.abs(mean - samples.mean(0)) < 5 * np.sqrt((std ** 2 + samples.var(0)) / 3000)).all()
    assert (np.abs(std / samples.std(0) - 1) < 0.1).all()


def test_unsupported_layer_after_the_first_dropout_is_refused():
    net = BayesianNN(hidden_dim=8)
    net.network[6] = torch.nn.Tanh()  # the ReLU after the third Linear
    with pytest.raises(ValueError, match="supports Linear, ReLU and Dropout layers, not Tanh"):
        mc_dropout_predict(net, np.zeros((4, 3)), mc_samples=2, device="cpu")
