"""Batched MC-dropout prediction."""

import logging

import numpy as np
import pytest
import torch

from cardioscar.engines import BayesianNN
from cardioscar.errors import CardioScarError, TrainingCancelled
from cardioscar.inference import mc_dropout_predict, node_batches


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


def test_matches_population_statistics_of_separate_passes(model):
    coords = np.random.default_rng(1).random((50, 3)).astype(np.float32)
    torch.manual_seed(5)
    mean, std = mc_dropout_predict(model, coords, mc_samples=4, batch_size=50, device="cpu")
    # the same random stream drawn as one forward over the repeated input, computed by hand
    torch.manual_seed(5)
    with torch.no_grad():
        samples = model(torch.from_numpy(coords).repeat(4, 1), training=True).view(4, 50).numpy()
    assert np.allclose(mean, samples.mean(0), atol=1e-6)
    assert np.allclose(std, samples.std(0, ddof=0), atol=1e-6)


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
    with caplog.at_level(logging.WARNING, logger="cardioscar.inference"):
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


def test_forwards_are_cut_to_the_row_cap(model, monkeypatch):
    from cardioscar import inference

    monkeypatch.setattr(inference, "MAX_ROWS_PER_FORWARD", 9)  # 9 // 4 samples -> 2 nodes per forward
    coords = np.random.default_rng(4).random((7, 3)).astype(np.float32)
    polls = []
    torch.manual_seed(3)
    mean, std = mc_dropout_predict(model, coords, mc_samples=4, batch_size=5, device="cpu",
                                   should_cancel=lambda: polls.append(1) and False)
    assert len(polls) == 4  # ceil(7 / 2) forwards
    torch.manual_seed(3)
    expected = []
    with torch.no_grad():
        for start in range(0, 7, 2):
            x = torch.from_numpy(coords[start:start + 2])
            expected.append(model(x.repeat(4, 1), training=True).view(4, -1))
    samples = torch.cat(expected, dim=1).numpy()
    assert np.allclose(mean, samples.mean(0), atol=1e-6) and np.allclose(std, samples.std(0), atol=1e-6)
