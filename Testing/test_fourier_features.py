"""The Fourier-feature encoding of the coordinates: its frequencies mean millimetres, the CPU step
(which sees encoded inputs) matches autograd through the encoding, checkpoints keep it, and MC
sampling runs it in the deterministic prefix."""

import math

import numpy as np
import pytest
import torch

from cardioscar.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from cardioscar.cpu_step import GroupLossStep, chunk_batch
from cardioscar.engines import BayesianNN, FourierFeatures, compute_group_reconstruction_loss, fourier_frequencies
from cardioscar.inference import mc_dropout_predict
from cardioscar.training import TrainingConfig, fit_scar_field


def test_frequencies_are_drawn_in_millimetres_whatever_the_box():
    """The same seed gives the same per-mm frequencies on a 60 mm and a 120 mm axis, scaled by the
    extent into the normalised frame; their spread is 1 / length."""
    small = fourier_frequencies(4000, 8.0, (60.0, 60.0, 120.0), seed=3)
    per_mm = small / torch.tensor([60.0, 60.0, 120.0]).view(3, 1)
    assert torch.allclose(per_mm[0].std(), torch.tensor(1 / 8.0), rtol=0.05)
    assert torch.allclose(per_mm[2].std(), torch.tensor(1 / 8.0), rtol=0.05)
    again = fourier_frequencies(4000, 8.0, (30.0, 60.0, 120.0), seed=3)
    assert torch.allclose(again[0] * 2, small[0])  # half the extent, half the normalised frequency
    with pytest.raises(ValueError):
        fourier_frequencies(8, 8.0, (0.0, 1.0, 1.0), seed=0)


def test_encoding_is_a_phase_in_millimetres():
    """A point moved by one wavelength (2 pi / w) along a frequency's direction has the same
    features for that frequency, in normalised coordinates of a 50 mm box."""
    span = torch.tensor([50.0, 50.0, 50.0])
    frequencies = fourier_frequencies(1, 6.0, span.tolist(), seed=1)
    encoding = FourierFeatures(frequencies)
    w_mm = frequencies[:, 0] / span
    step_mm = 2 * math.pi * w_mm / (w_mm @ w_mm)
    x = torch.tensor([[0.2, 0.3, 0.4]])
    moved = x + (step_mm / span).view(1, 3)
    assert torch.allclose(encoding(x)[:, 3:], encoding(moved)[:, 3:], atol=1e-4)


def test_cpu_step_matches_autograd_through_the_encoding():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 7, 50)
    groups = np.repeat(np.arange(50), sizes)
    coords = rng.random((len(groups), 3)).astype(np.float32)
    values = np.repeat(rng.random(50), sizes).astype(np.float32)
    torch.manual_seed(0)
    model = BayesianNN(3, 16, 3, 0.0, encoding=FourierFeatures(fourier_frequencies(8, 5.0, (80, 80, 90), 0)))
    inputs = model.encode(torch.from_numpy(coords)).numpy()
    assert inputs.shape == (len(groups), 3 + 16)
    batch = chunk_batch(inputs, values, groups, 60)
    model.zero_grad(set_to_none=True)
    loss = GroupLossStep(model, 1, None).step(batch, 7)
    fast = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad(set_to_none=True)
    reference = compute_group_reconstruction_loss(model(torch.from_numpy(coords)), torch.from_numpy(values),
                                                  torch.from_numpy(groups))
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-5)
    for mine, theirs in zip(fast, [p.grad for p in model.parameters() if p.requires_grad]):
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-6)


def test_a_fit_needs_the_extent_and_its_checkpoint_keeps_the_encoding(tmp_path):
    rng = np.random.default_rng(1)
    coords = rng.random((400, 3)).astype(np.float32)
    groups = np.arange(400) // 4
    values = (coords[:, 0] > 0.5).astype(np.float32)
    config = TrainingConfig.fast(max_epochs=3, hidden_dim=16, fourier_features=12, fourier_length_mm=5.0)
    from cardioscar.errors import CardioScarError
    with pytest.raises(CardioScarError, match="coordinate_range_mm"):
        fit_scar_field(coords, values, groups, config)
    model, _ = fit_scar_field(coords, values, groups, config, coordinate_range_mm=(70.0, 70.0, 100.0))
    assert model.architecture()["fourier_features"] == 12
    path = tmp_path / "model.pth"
    save_checkpoint({"model_state_dict": model.state_dict(), "hyperparameters": model.architecture()}, path)
    rebuilt = model_from_checkpoint(load_checkpoint(path))
    assert torch.equal(rebuilt.encoding.frequencies, model.encoding.frequencies)
    torch.manual_seed(5)
    mean_a, std_a = mc_dropout_predict(model, coords[:50], mc_samples=4)
    torch.manual_seed(5)
    mean_b, std_b = mc_dropout_predict(rebuilt, coords[:50], mc_samples=4)
    np.testing.assert_allclose(mean_a, mean_b, rtol=1e-6)
    # the sampler's deterministic prefix includes the encoding: its mean equals plain forward passes
    rebuilt.eval()
    with torch.no_grad():
        no_dropout = BayesianNN(3, 16, 4, 0.0, encoding=rebuilt.encoding)
        no_dropout.load_state_dict(rebuilt.state_dict())
        direct = no_dropout(torch.from_numpy(coords[:50])).reshape(-1).numpy()
    sampled, spread = mc_dropout_predict(no_dropout, coords[:50], mc_samples=2)
    np.testing.assert_allclose(sampled, direct, rtol=1e-5)
    assert float(spread.max()) == 0.0
