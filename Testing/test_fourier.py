"""Fourier-feature coordinate encoding (issue 18): frequencies placed in millimetres, the CPU
training step on encoded rows equals autograd through the encoding, and a checkpoint carries the
encoding so that a reloaded model predicts exactly what the trained one did."""

import numpy as np
import pytest
import torch

from cardioscar.fit.checkpoint import build_checkpoint, load_checkpoint, model_from_checkpoint, save_checkpoint
from cardioscar.fit.cpu_step import GroupLossStep, chunk_batch
from cardioscar.fit.engines import BayesianNN, FourierFeatures, compute_group_reconstruction_loss
from cardioscar.errors import CardioScarError
from cardioscar.predict.inference import mc_dropout_predict
from cardioscar.fit.training import TrainingConfig, fit_scar_field


def problem(n_groups=50, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 7, n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    coords = rng.random((len(groups), 3)).astype(np.float32)
    values = np.repeat((rng.random(n_groups) > 0.6).astype(np.float32), sizes)
    return coords, values, groups


def test_frequencies_are_drawn_per_millimetre_on_each_axis():
    encoding = FourierFeatures(4000)
    encoding.draw(scale_mm=16.0, extent_mm=(100.0, 50.0, 200.0), generator=torch.Generator().manual_seed(0))
    per_mm = encoding.frequencies / torch.tensor([100.0, 50.0, 200.0]).view(3, 1)
    assert per_mm.std(dim=1).numpy() == pytest.approx([1 / 16] * 3, rel=0.05)
    x = torch.rand(5, 3)
    encoded = encoding(x)
    assert encoded.shape == (5, 3 + 8000) and torch.equal(encoded[:, :3], x)
    assert torch.allclose(encoded[:, 3:4003] ** 2 + encoded[:, 4003:] ** 2, torch.ones(5, 4000), atol=1e-5)


def test_cpu_step_on_encoded_rows_matches_autograd_through_the_encoding():
    """No dropout, so the step and autograd see the same network: same loss and gradients."""
    torch.manual_seed(3)
    model = BayesianNN(3, 16, 4, 0.0, fourier_features=6)
    model.encoding.draw(10.0, (80.0, 80.0, 100.0))
    coords, values, groups = problem()
    with torch.no_grad():
        encoded = model.encode(torch.from_numpy(coords)).numpy()
    batch = chunk_batch(encoded, values.reshape(-1, 1), groups, 40)
    model.zero_grad(set_to_none=True)
    loss = GroupLossStep(model, 1, None).step(batch, 0)
    ours = [p.grad.clone() for p in model.network.parameters()]
    model.zero_grad(set_to_none=True)
    reference = compute_group_reconstruction_loss(model(torch.from_numpy(coords)), torch.from_numpy(values),
                                                  torch.from_numpy(groups))
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-5) and reference.item() > 1e-3
    for mine, theirs in zip(ours, [p.grad for p in model.network.parameters()]):
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-7)
    assert model.encoding.frequencies.grad is None  # fixed, not trained


def test_checkpoint_carries_the_encoding(tmp_path):
    coords, values, groups = problem()
    config = TrainingConfig(batch_size=400, max_epochs=5, max_lr=2e-2, hidden_dim=16, num_threads=1, fourier_features=8,
                            fourier_scale_mm=12.0)
    model, history = fit_scar_field(coords, values, groups, config, extent_mm=(90.0, 90.0, 110.0))
    assert model.encoding is not None and model.encoding.frequencies.abs().sum() > 0
    path = tmp_path / "model.pth"
    save_checkpoint(build_checkpoint(model, history, config, {"scaler_min": [0.0] * 3, "scaler_max": [1.0] * 3}), path)
    checkpoint = load_checkpoint(path)
    assert checkpoint["hyperparameters"]["fourier_features"] == 8
    again = model_from_checkpoint(checkpoint)
    assert torch.equal(again.encoding.frequencies, model.encoding.frequencies)
    x = torch.rand(300, 3)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    torch.manual_seed(5)
    first = mc_dropout_predict(model, x.numpy(), mc_samples=4)
    torch.manual_seed(5)
    second = mc_dropout_predict(again, x.numpy(), mc_samples=4)
    for a, b in zip(first, second):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_a_checkpoint_without_an_encoding_loads_as_before():
    model = BayesianNN(3, 16, 4, 0.1)
    checkpoint = build_checkpoint(model, {}, {}, {})
    assert "fourier_features" not in checkpoint["hyperparameters"]  # as in files written before the encoding
    assert model_from_checkpoint(checkpoint).encoding is None


@pytest.mark.parametrize("field,value", [("fourier_features", -1), ("fourier_features", 2.5),
                                         ("fourier_scale_mm", 0.0), ("fourier_scale_mm", float("nan"))])
def test_bad_encoding_options_are_one_line_errors(field, value):
    with pytest.raises(CardioScarError, match=field):
        TrainingConfig(**{field: value})
