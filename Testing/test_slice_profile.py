"""The pixel's through-plane model (``prepare --slice-profile box|gaussian``,
:mod:`cardioscar.prepare.mapping`): the rows and weights of a tiny mapping, the weighted group
mean on every path that forms one (the CPU step, the autograd batches, the documented loss, the
convergence measure), the ``.npz`` record and old files without it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cardioscar import logic
from cardioscar.errors import CardioScarError
from cardioscar.fit import training
from cardioscar.fit.batching import ScarReconstructionDataset
from cardioscar.fit.cpu_step import GroupLossStep, chunk_batch
from cardioscar.fit.engines import BayesianNN, compute_group_reconstruction_loss
from cardioscar.prepare.mapping import map_slices_to_nodes, profile_weights
from cardioscar.prepare.slices import SliceLayer

HALF = 2.0  # slab half-width, mm: FWHM 4 mm, the gaussian footprint reaches 4 mm


def one_slice(values=None) -> SliceLayer:
    """A 4 x 4 slice of 1 mm pixels in the z = 0 plane (pixel (i, j) centred at x = i, y = j)."""
    values = np.full((4, 4), 0.5) if values is None else values
    return SliceLayer(values=values, origin=np.zeros(3), axis_i=np.array([1.0, 0, 0]), axis_j=np.array([0, 1.0, 0]),
                      spacing=(1.0, 1.0), half_thickness=HALF, label="tiny")


#: Nodes over pixel (1, 1) at distances 0, 1.5, HALF + 1 and 4.5 mm from the plane, one over (2, 1) at 0,
#: one over (3, 2) at HALF + 1 mm only (a pixel that the profile's tail alone reaches).
NODES = np.array([[1.0, 1.0, 0.0], [1.1, 0.9, 1.5], [0.9, 1.2, -(HALF + 1.0)], [1.0, 1.0, 4.5], [2.0, 1.0, 0.0],
                  [3.0, 2.0, HALF + 1.0]])


def test_box_rows_are_the_slab_and_carry_no_weights():
    mapping = map_slices_to_nodes(NODES, [one_slice()])
    assert mapping.slice_profile == "box" and mapping.row_weights is None
    assert mapping.node_ids.tolist() == [0, 1, 4] and mapping.group_ids.tolist() == [0, 0, 1]
    assert mapping.group_pixel.tolist() == [[1, 1], [2, 1]]
    same = map_slices_to_nodes(NODES, [one_slice()], slice_profile="box")
    for name in ("node_ids", "group_ids", "group_values", "group_slice", "group_pixel"):
        assert np.array_equal(getattr(same, name), getattr(mapping, name))


def test_gaussian_rows_reach_twice_the_half_width_weighted_by_the_profile():
    mapping = map_slices_to_nodes(NODES, [one_slice()], slice_profile="gaussian")
    # the node at HALF + 1 mm is in pixel (1, 1)'s group (not in the box's); the one at 4.5 mm is past the
    # reach; pixel (3, 2), with no node in its slab, makes no group of its tail alone (as with the box)
    assert mapping.node_ids.tolist() == [0, 1, 2, 4] and mapping.group_ids.tolist() == [0, 0, 0, 1]
    assert mapping.group_pixel.tolist() == [[1, 1], [2, 1]]
    fwhm = 2 * HALF
    expected = [1.0, math.exp(-4 * math.log(2) * 1.5 ** 2 / fwhm ** 2),
                math.exp(-4 * math.log(2) * (HALF + 1.0) ** 2 / fwhm ** 2), 1.0]
    assert mapping.row_weights.shape == (4,) and np.allclose(mapping.row_weights, expected, rtol=1e-12)
    assert profile_weights(np.array([HALF, -2 * HALF]), HALF) == pytest.approx([0.5, 1 / 16])


def test_an_unknown_profile_is_refused_on_the_request_and_the_mapping(tmp_path):
    with pytest.raises(CardioScarError, match=r"slice profile must be one of box, gaussian .*'lorentzian'"):
        map_slices_to_nodes(NODES, [one_slice()], slice_profile="lorentzian")
    with pytest.raises(CardioScarError, match="--slice-profile"):
        logic.PreprocessingRequest(mesh_path=tmp_path / "m.vtk", image_path=tmp_path / "i.nii.gz",
                                   slice_profile="Gaussian")


def weighted_groups(seed: int = 0, n_groups: int = 30):
    """Rows of ``n_groups`` groups of 2-7 nodes with targets and profile weights in (1/16, 1]."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 8, n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    coords = rng.random((len(groups), 3)).astype(np.float32)
    values = np.repeat(rng.random(n_groups), sizes).astype(np.float32)
    weights = rng.uniform(1 / 16, 1.0, len(groups))
    return coords, values, groups, weights


def test_the_cpu_step_and_autograd_form_the_same_weighted_group_loss():
    """Dropout off, so both see one field: the hand-written step's loss and gradients equal the
    documented loss's with the rows' weights, and the weights change the loss (an unweighted step
    would not match)."""
    coords, values, groups, weights = weighted_groups()
    torch.manual_seed(0)
    model = BayesianNN(3, 16, 3, 0.0)
    with torch.no_grad():  # a field that varies within a group, so that its weights matter
        model.linear_layers()[-1].weight.mul_(30.0)
    batch = chunk_batch(coords, values, groups, 40, row_weights=weights)
    model.zero_grad(set_to_none=True)
    step_loss = GroupLossStep(model, 1, None).step(batch, seed=5)
    step_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    reference = compute_group_reconstruction_loss(model(torch.from_numpy(coords)).reshape(-1),
                                                  torch.from_numpy(values), torch.from_numpy(groups),
                                                  weights=torch.from_numpy(weights))
    reference.backward()
    assert step_loss == pytest.approx(reference.item(), rel=1e-5)
    for mine, theirs in zip(step_grads, [p.grad for p in model.parameters()]):
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-7)
    plain = compute_group_reconstruction_loss(model(torch.from_numpy(coords)).reshape(-1), torch.from_numpy(values),
                                              torch.from_numpy(groups))
    assert abs(plain.item() - reference.item()) > 1e-3 * reference.item()  # 100 times the tolerance above


def test_weights_of_one_are_the_unweighted_step_bit_for_bit():
    coords, values, groups, _ = weighted_groups(1)
    torch.manual_seed(1)
    model = BayesianNN(3, 16, 3, 0.2)
    losses = []
    for weights in (None, np.ones(len(groups))):
        model.zero_grad(set_to_none=True)
        losses.append((GroupLossStep(model, 3, None).step(chunk_batch(coords, values, groups, 40, row_weights=weights),
                                                          seed=9), [p.grad.clone() for p in model.parameters()]))
    assert losses[0][0] == losses[1][0]
    assert all(torch.equal(a, b) for a, b in zip(losses[0][1], losses[1][1]))


def test_the_autograd_batches_and_the_convergence_measure_weight_the_group_means():
    """``_prepare_batches`` / ``_batch_loss`` (the GPU step) and ``_group_loss`` (runs compared,
    the convergence test) give the weighted documented loss of a dropout-free network."""
    coords, values, groups, weights = weighted_groups(2)
    data = ScarReconstructionDataset(coords, values, groups, row_weights=weights)
    torch.manual_seed(2)
    model = BayesianNN(3, 16, 3, 0.0).eval()
    expected = compute_group_reconstruction_loss(model(torch.from_numpy(data.coordinates)).reshape(-1),
                                                 torch.from_numpy(data.intensities), torch.from_numpy(data.group_ids),
                                                 weights=torch.from_numpy(data.row_weights)).item()
    (batch,) = training._prepare_batches(data, 10 ** 6, 2, torch.device("cpu"))
    assert training._batch_loss(model, batch, 2).item() == pytest.approx(expected, rel=1e-5)
    assert training._group_loss(model, data, torch.device("cpu")) == pytest.approx(expected, rel=1e-5)


def _prepared(slice_profile: str) -> logic.PreprocessingResult:
    """A 4 x 4 slice with a third of its pixels scar, over a grid of nodes through its slab."""
    slices = [one_slice(np.where(np.arange(16).reshape(4, 4) % 3 == 0, 1.0, 0.0))]
    grid = np.stack(np.meshgrid(np.linspace(0, 3, 7), np.linspace(0, 3, 7), np.linspace(-3.5, 3.5, 8),
                                indexing="ij"), -1).reshape(-1, 3)
    return logic.prepare_from_slices(grid, slices, slice_profile=slice_profile)


def test_the_npz_records_the_profile_and_an_old_file_loads_as_box(tmp_path):
    result = _prepared("gaussian")
    path = tmp_path / "g.npz"
    logic.save_preprocessing_result(result, path)
    loaded = logic.load_preprocessing_result(path)
    assert loaded.slice_profile == "gaussian" and np.allclose(loaded.row_weights, result.row_weights, rtol=1e-6)
    assert loaded.row_weights.min() < 0.5 < loaded.row_weights.max() <= 1.0
    with np.load(path) as data:  # as a file written before the profile existed
        old = {key: data[key] for key in data.files if key not in ("slice_profile", "row_weights")}
    np.savez(tmp_path / "old.npz", **old)
    before = logic.load_preprocessing_result(tmp_path / "old.npz")
    assert before.slice_profile == "box" and before.row_weights is None
    np.savez(tmp_path / "cut.npz", **old, slice_profile=np.asarray("gaussian"), row_weights=np.ones(3, np.float32))
    with pytest.raises(CardioScarError, match=r"cut.npz: the gaussian slice profile needs row_weights, one in \(0, 1\]"):
        logic.load_preprocessing_result(tmp_path / "cut.npz")


def test_a_box_npz_stores_no_row_weights_and_round_trips(tmp_path):
    result = _prepared("box")
    path = tmp_path / "b.npz"
    logic.save_preprocessing_result(result, path)
    with np.load(path) as data:  # the box's weights are all 1: nothing is stored for them
        assert "row_weights" not in data.files and str(data["slice_profile"]) == "box"
    loaded = logic.load_preprocessing_result(path)
    assert loaded.slice_profile == "box" and loaded.row_weights is None
    for name in ("coordinates", "intensities", "group_ids", "node_ids"):
        assert np.array_equal(getattr(loaded, name), getattr(result, name)), name
