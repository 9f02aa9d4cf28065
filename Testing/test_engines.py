"""BayesianNN architecture and the group reconstruction loss."""

import pytest
import torch

from cardioscar.fit.engines import BayesianNN, compute_group_reconstruction_loss, mc_dropout


def test_default_architecture_has_documented_parameter_count():
    model = BayesianNN()
    assert model.count_parameters() == 50177
    assert [(l.in_features, l.out_features) for l in model.linear_layers()] == \
        [(3, 128), (128, 128), (128, 128), (128, 128), (128, 1)]
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 2
    assert model.architecture() == {"input_dim": 3, "hidden_dim": 128, "n_layers": 4, "dropout_rate": 0.1,
                                    "dropout_after": [1, 3]}


@pytest.mark.parametrize("hidden, layers", [(64, 2), (32, 6), (16, 1)])
def test_width_and_depth_are_configurable(hidden, layers):
    model = BayesianNN(hidden_dim=hidden, n_layers=layers)
    expected = (3 * hidden + hidden) + (layers - 1) * (hidden * hidden + hidden) + (hidden + 1)
    assert model.count_parameters() == expected
    assert len(model.linear_layers()) == layers + 1
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == layers // 2


def test_forward_deterministic_in_eval_and_stochastic_with_dropout():
    torch.manual_seed(0)
    model = BayesianNN().eval()
    x = torch.rand(256, 3)
    a, b = model(x), model(x)
    assert a.shape == (256, 1) and torch.equal(a, b)
    assert ((a >= 0) & (a <= 1)).all()
    assert not torch.equal(model(x, training=True), model(x, training=True))
    model.enable_dropout()
    assert not torch.equal(model(x), model(x))
    assert not model.network[0].training  # only the dropout layers were switched on


def test_fast_dropout_rate_and_scale():
    torch.manual_seed(1)
    x = torch.ones(400, 1000)
    y = mc_dropout(x, 0.1)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.003
    assert abs(y.mean().item() - 1.0) < 0.005  # inverted dropout keeps the expectation
    assert torch.unique(y).tolist() == pytest.approx([0.0, 65536 / (65536 - 6554)])


def test_loss_matches_hand_computation():
    predictions = torch.tensor([0.2, 0.4, 0.9, 0.5, 0.1, 0.3])
    targets = torch.tensor([1.0, 0.5, 1.0, 0.0, 0.0, 0.5])
    group_ids = torch.tensor([7, 3, 7, 9, 9, 3])  # not contiguous, not sorted
    # group 3: mean(0.4, 0.3) = 0.35, target 0.5 -> 0.0225
    # group 7: mean(0.2, 0.9) = 0.55, target 1.0 -> 0.2025
    # group 9: mean(0.5, 0.1) = 0.30, target 0.0 -> 0.09
    loss, per_group = compute_group_reconstruction_loss(predictions, targets, group_ids, return_per_group=True)
    assert per_group.tolist() == pytest.approx([0.0225, 0.2025, 0.09])
    assert loss.item() == pytest.approx((0.0225 + 0.2025 + 0.09) / 3)
    plain = compute_group_reconstruction_loss(predictions.view(-1, 1), targets.view(-1, 1), group_ids)
    assert plain.item() == pytest.approx(loss.item())


def test_loss_with_precomputed_inverse_and_gradient():
    predictions = torch.tensor([0.2, 0.4, 0.9, 0.5], requires_grad=True)
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0])
    group_ids = torch.tensor([5, 8, 5, 8])
    inverse = torch.tensor([0, 1, 0, 1])
    loss = compute_group_reconstruction_loss(predictions, targets, group_ids, inverse=inverse, n_groups=2)
    loss.backward()
    # d/dp of 1/2 * [(mean_g - t_g)^2] = (mean_g - t_g) / 2 for each of the 2 members... / size
    assert predictions.grad.tolist() == pytest.approx([(0.55 - 1) / 2, 0.45 / 2, (0.55 - 1) / 2, 0.45 / 2])
    assert loss.item() == pytest.approx((0.45 ** 2 + 0.45 ** 2) / 2)


def test_fused_relu_dropout_equals_relu_then_dropout():
    from cardioscar.fit.engines import relu_mc_dropout

    x = torch.randn(300, 64, requires_grad=True)
    torch.manual_seed(9)
    fused = relu_mc_dropout(x, 0.1)
    (fused * torch.arange(64.0)).sum().backward()
    fused_grad = x.grad.clone()
    x.grad = None
    torch.manual_seed(9)
    plain = mc_dropout(torch.relu(x), 0.1)
    (plain * torch.arange(64.0)).sum().backward()
    assert torch.equal(fused, plain)
    assert torch.equal(fused_grad, x.grad)
    assert (fused[x <= 0] == 0).all()
