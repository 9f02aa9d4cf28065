"""The shape prior (issue 18, ``cardioscar.shape_prior``): shape-based interpolation of the slices'
scar outline, the log-odds the network learns a residual on, stored in the ``.npz`` and in the
checkpoint so that ``apply`` on another mesh reproduces it.

The slices here have a straight scar edge: with 1 mm pixels and scar in columns ``i < e`` the
in-plane signed distance at pixel centre ``i`` is exactly ``i - e + 0.5`` mm (half a pixel
from the last scar centre to the outline), linear in ``i``, so bilinear sampling is exact
between pixel centres too and every expected value below is written down independently.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cardioscar.fit.checkpoint import load_checkpoint
from cardioscar.logic import (fine_tune_scar_model, load_preprocessing_result, predict_on_points,
                              prepare_from_slices, save_preprocessing_result, save_trained_model, train_scar_model)
from cardioscar.errors import CardioScarError
from cardioscar.shape_prior import ShapePrior, build_shape_prior
from cardioscar.prepare.slices import SliceLayer
from cardioscar.fit.training import TrainingConfig

SIZE = 40


def edge_slice(z: float, edge: int | None, *, axis_i=(1.0, 0.0, 0.0), axis_j=(0.0, 1.0, 0.0), origin=None,
               nan_from: int | None = None) -> SliceLayer:
    """A 40 x 40 slice of 1 mm pixels at height ``z`` along its normal: scar (1) in columns
    ``i < edge`` (none for ``edge=None``), 0 elsewhere, NaN in columns ``i >= nan_from``."""
    values = np.zeros((SIZE, SIZE))
    if edge is not None:
        values[:, :edge] = 1.0
    if nan_from is not None:
        values[:, nan_from:] = np.nan
    axis_i, axis_j = np.asarray(axis_i, float), np.asarray(axis_j, float)
    normal = np.cross(axis_i, axis_j)
    base = np.zeros(3) if origin is None else np.asarray(origin, float)
    return SliceLayer(values, base + z * normal, axis_i, axis_j, (1.0, 1.0), 2.0, f"z={z}")


def points_at(layer: SliceLayer, i: np.ndarray, j: np.ndarray, d: np.ndarray) -> np.ndarray:
    """LPS points at continuous pixel index (i, j) of ``layer`` and ``d`` mm along its normal."""
    return layer.origin + np.outer(i, layer.axis_i) + np.outer(j, layer.axis_j) + np.outer(d, layer.normal)


def linear(slices: list[SliceLayer]) -> ShapePrior:
    """The prior of ``slices`` without the bulge: plain shape-based interpolation."""
    return dataclasses.replace(build_shape_prior(slices), bulge_radius_mm=np.inf)


def test_two_parallel_slices_interpolate_exactly_linearly_and_only_the_neighbours_count():
    below, above, far = edge_slice(0.0, 20), edge_slice(10.0, 30), edge_slice(20.0, 5)
    prior = linear([far, below, above])  # order does not matter
    rng = np.random.default_rng(0)
    i, j, t = rng.uniform(2, 37, 200), rng.uniform(2, 37, 200), rng.uniform(0.0, 10.0, 200)
    expected = (1 - t / 10) * (i - 19.5) + (t / 10) * (i - 29.5)  # `far` (z = 20) is not a neighbour
    np.testing.assert_allclose(prior.signed_distance(points_at(below, i, j, t)), expected, atol=1e-4)
    # log-odds -d / alpha near the outline, saturating softly at +-clip_logit
    logit = prior.logit(points_at(below, i, j, t))
    soft = prior.clip_logit * np.tanh(-expected / (prior.alpha_mm * prior.clip_logit))
    np.testing.assert_allclose(logit, soft, atol=1e-4)
    near_outline = prior.logit(points_at(below, np.array([19.45, 19.55]), np.array([7.0, 7.0]), np.full(2, -1.0)))
    np.testing.assert_allclose(near_outline, [0.05 / prior.alpha_mm, -0.05 / prior.alpha_mm], rtol=1e-3)
    # beyond the last plane the end slice's shape continues; between 10 and 20 the upper pair counts
    np.testing.assert_allclose(prior.signed_distance(points_at(below, i, j, -3.0 - t)), i - 19.5, atol=1e-4)
    np.testing.assert_allclose(prior.signed_distance(points_at(below, i, j, 10.0 + t)),
                               (1 - t / 10) * (i - 29.5) + (t / 10) * (i - 4.5), atol=1e-4)


def test_the_bulge_grows_the_outline_between_the_planes_only():
    """``bulge_radius_mm`` R: a parabolic profile's chord falls a b / (2 R) short half-way."""
    below, above = edge_slice(0.0, 20), edge_slice(10.0, 30)
    plain = linear([below, above])
    bulging = build_shape_prior([below, above])
    assert bulging.bulge_radius_mm == 20.0  # the default
    i, j, t = np.full(6, 22.0), np.full(6, 9.0), np.array([0.0, 1.0, 5.0, 7.5, 9.99, 12.0])
    points = points_at(below, i, j, t)
    shrink = np.where(t <= 10.0, t * (10.0 - t) / 40.0, 0.0)  # none beyond the last plane
    np.testing.assert_allclose(bulging.signed_distance(points), plain.signed_distance(points) - shrink, atol=1e-6)


def test_an_oblique_stack_and_a_crossing_long_axis_slice():
    axis_i = np.array([1.0, 1.0, 0.3]) / np.linalg.norm([1.0, 1.0, 0.3])
    axis_j = np.cross([0.2, -0.1, 1.0], axis_i)
    axis_j /= np.linalg.norm(axis_j)
    origin = np.array([-12.0, 7.0, 3.0])
    below = edge_slice(0.0, 20, axis_i=axis_i, axis_j=axis_j, origin=origin)
    above = edge_slice(10.0, 30, axis_i=axis_i, axis_j=axis_j, origin=origin)
    prior = linear([below, above])
    i, j, t = np.array([15.0, 25.5, 33.2]), np.array([5.0, 20.0, 31.0]), np.array([2.0, 5.0, 9.0])
    expected = (1 - t / 10) * (i - 19.5) + (t / 10) * (i - 29.5)
    np.testing.assert_allclose(prior.signed_distance(points_at(below, i, j, t)), expected, atol=1e-4)

    # a long-axis slice across the stack (its normal is the stack's axis_i): a point on its plane
    # takes its value (weight 1 / 1e-3 mm against 1 / t), a point off every grid gets no prior
    crossing = edge_slice(0.0, 10, axis_i=below.normal, axis_j=axis_j, origin=points_at(below, [25.0], [0.0], [-15.0])[0])
    mixed = linear([below, above, crossing])
    on_plane = points_at(crossing, np.array([12.0]), np.array([20.0]), np.array([0.0]))
    assert mixed.signed_distance(on_plane)[0] == pytest.approx(12.0 - 9.5, abs=0.02)
    nowhere = points_at(below, np.array([500.0]), np.array([500.0]), np.array([3.0]))
    assert np.isnan(mixed.signed_distance(nowhere)[0]) and mixed.logit(nowhere)[0] == 0.0


def test_a_slice_without_scar_sits_one_gap_outside_and_missing_targets_copy_their_neighbours():
    scar, empty = edge_slice(0.0, 20), edge_slice(10.0, None)
    prior = linear([scar, empty])
    i, j = np.array([10.0, 19.0, 30.0]), np.array([20.0, 20.0, 20.0])
    halfway = prior.signed_distance(points_at(scar, i, j, np.full(3, 5.0)))
    np.testing.assert_allclose(halfway, 0.5 * (i - 19.5) + 0.5 * 10.0, atol=1e-4)  # +gap (10 mm) on the empty slice

    # columns 25.. have no target (outside the myocardium): they copy column 24, which is healthy
    # here, and scar when the scar reaches the wall (edge 25 = the last target column is scar)
    healthy_wall = build_shape_prior([edge_slice(0.0, 20, nan_from=25)])
    scar_wall = build_shape_prior([edge_slice(0.0, 25, nan_from=25)])
    on_plane = points_at(scar, np.array([30.0]), np.array([20.0]), np.array([0.0]))
    assert healthy_wall.signed_distance(on_plane)[0] == pytest.approx(30.0 - 19.5)
    assert scar_wall.signed_distance(on_plane)[0] < 0  # the wall node in a blood-pool pixel reads scar
    assert build_shape_prior([edge_slice(0.0, 20, nan_from=0)]) is None  # no target anywhere: no prior


def test_the_residual_weight_is_one_on_the_training_slabs_and_falls_off_beyond_them():
    below, above = edge_slice(0.0, 20), edge_slice(10.0, 30)
    i, j = np.full(4, 20.0), np.full(4, 20.0)
    rows = points_at(below, i, j, np.array([-1.5, 0.0, 1.5, 8.5]))  # within 1.5 mm of a plane
    prior = linear([below, above]).reaching(rows)
    assert prior.residual_full_mm == pytest.approx(1.5)
    np.testing.assert_array_equal(prior.residual_weight(rows), 1.0)  # training is unchanged
    d = np.array([1.0, 4.0, 5.0, 6.5, -3.5, 13.5])  # nearest plane: 1, 4, 5, 3.5, 3.5, 3.5 mm away
    nearest = np.array([1.0, 4.0, 5.0, 3.5, 3.5, 3.5])
    expected = np.exp(-0.5 * (np.maximum(nearest - 1.5, 0.0) / 2.0) ** 2)
    expected[4:] = 1.0  # beyond the stack's ends the network keeps its weight (network_beyond_ends)
    np.testing.assert_allclose(prior.residual_weight(points_at(below, np.full(6, 20.0), np.full(6, 20.0), d)),
                               expected, rtol=1e-6)
    nowhere = points_at(below, np.array([500.0]), np.array([500.0]), np.array([5.0]))
    assert prior.residual_weight(nowhere)[0] == 1.0  # no slice covers it: no prior, the network rules
    reloaded = ShapePrior.from_arrays(prior.to_arrays(), "data.npz")
    assert (reloaded.residual_full_mm, reloaded.residual_decay_mm) == (1.5, 2.0)
    with pytest.raises(CardioScarError, match="shape prior is damaged"):
        ShapePrior.from_arrays({**prior.to_arrays(), "residual_decay_mm": np.float64(0.0)}, "data.npz")


def test_damaged_priors_are_refused_in_one_line():
    arrays = build_shape_prior([edge_slice(0.0, 20), edge_slice(10.0, 30)]).to_arrays()
    with pytest.raises(CardioScarError, match="shape prior is damaged"):
        ShapePrior.from_arrays({**arrays, "distance_mm": arrays["distance_mm"][:-1]}, "data.npz")
    with pytest.raises(CardioScarError, match="data.npz"):
        ShapePrior.from_arrays({**arrays, "version": np.int64(99)}, "data.npz")


def _training_case() -> tuple[np.ndarray, list[SliceLayer], np.ndarray]:
    """A slab of nodes (1.25 mm grid) over three slices 8 mm apart whose scar edge moves, and
    another mesh (random points in the same region) to apply the model to."""
    axis = np.arange(1.0, 38.0, 1.25)
    grid = np.stack(np.meshgrid(axis, axis, np.arange(-3.0, 19.0, 1.25), indexing="ij"), -1).reshape(-1, 3)
    slices = [edge_slice(0.0, 15), edge_slice(8.0, 20), edge_slice(16.0, 26)]
    other = np.random.default_rng(1).uniform([1, 1, -3], [37, 37, 18], (3000, 3))
    return grid, slices, other


def test_the_prior_travels_through_the_npz_and_the_checkpoint_to_an_apply_mesh(tmp_path):
    grid, slices, other = _training_case()
    prepared = prepare_from_slices(grid, slices)
    save_preprocessing_result(prepared, tmp_path / "data.npz")
    reloaded = load_preprocessing_result(tmp_path / "data.npz")
    np.testing.assert_array_equal(reloaded.shape_prior.logit(other), prepared.shape_prior.logit(other))

    config = TrainingConfig.fast(max_epochs=30, early_stopping_patience=30, seed=3, shape_prior=True)
    checkpoint = train_scar_model(tmp_path / "data.npz", config)
    assert checkpoint["hyperparameters"]["shape_prior"] is True
    save_trained_model(checkpoint, tmp_path / "model.pth")
    loaded = load_checkpoint(tmp_path / "model.pth")  # weights_only=True inside
    prior = ShapePrior.from_checkpoint(loaded)
    np.testing.assert_array_equal(prior.logit(other), prepared.shape_prior.logit(other))

    # the residual counts fully up to the farthest training node from its slice's plane (z = 0, 8, 16)
    rows_z = grid[np.unique(prepared.node_ids), 2]
    assert prior.residual_full_mm == pytest.approx(np.abs(rows_z[:, None] - [0.0, 8.0, 16.0]).min(axis=1).max())
    assert prior.residual_decay_mm == 2.0

    # apply = sigmoid(scale * prior + weight * network) with the very same dropout masks, the network
    # alone being the checkpoint without its prior (as an older file loads: zero prior). Written out
    # from the planes z = 0, 8, 16: the fade exp(-(excess / 2 mm)^2 / 2) beyond the full distance;
    # between the planes weight = fade and scale = 1 - fade (1 - slab_scale); beyond the ends
    # (z < 0, z > 16) weight 1 and scale slab_scale * fade
    with_prior = predict_on_points(loaded, other, mc_samples=1, seed=7).mean_predictions
    bare = {key: value for key, value in loaded.items() if key != "shape_prior"}
    network = predict_on_points(bare, other, mc_samples=1, seed=7).mean_predictions.astype(np.float64)
    z = other[:, 2]
    fade = np.exp(-0.5 * (np.maximum(np.abs(z[:, None] - [0.0, 8.0, 16.0]).min(axis=1) - prior.residual_full_mm, 0) / 2) ** 2)
    ends = (z < 0) | (z > 16)
    weight = prior.residual_weight(other)
    np.testing.assert_allclose(weight, np.where(ends, 1.0, fade), rtol=1e-5)
    scale = np.where(ends, prior.slab_scale * fade, 1 - fade * (1 - prior.slab_scale))
    assert (weight == 1.0).sum() > 100 and (weight < 0.7).sum() > 100  # on the slabs, and between them
    expected = 1.0 / (1.0 + np.exp(-(weight * np.log(network / (1 - network)) + scale * prior.logit(other))))
    np.testing.assert_allclose(with_prior, expected, atol=2e-5)
    assert np.abs(with_prior - network)[weight < 0.7].max() > 0.1  # the prior matters between the slabs
    # with a short decay (it travels in the checkpoint), 1 mm beyond the slabs the network can no longer
    # move the prior; on the slabs it still does
    short = {**loaded, "shape_prior": {**loaded["shape_prior"], "residual_decay_mm": 0.2}}
    gated = predict_on_points(short, other, mc_samples=1, seed=7).mean_predictions
    alone = 1.0 / (1.0 + np.exp(-prior.logit(other)))
    between = (prior.plane_distance(other) > prior.residual_full_mm + 1.0) & (weight < 1.0)  # not beyond the ends
    assert between.sum() > 100
    assert np.abs(gated - alone)[between].max() < 1e-3 < 0.1 < np.abs(gated - alone)[weight == 1.0].max()

    # a version 1 prior (before the residual weight) loads with the residual everywhere, as it was used
    old = {key: value for key, value in loaded["shape_prior"].items()
           if key not in ("residual_full_mm", "residual_decay_mm")}
    first = ShapePrior.from_checkpoint({"shape_prior": {**old, "version": 1}})
    assert first.residual_full_mm == np.inf and (first.residual_weight(other) == 1.0).all()
    np.testing.assert_array_equal(first.logit(other), prior.logit(other))

    # fine-tuning keeps the base model's choice (its f is a residual on a prior), with the new data's prior
    tuned = fine_tune_scar_model(tmp_path / "model.pth", prepared, TrainingConfig.fast(max_epochs=3, shape_prior=False))
    assert tuned["hyperparameters"]["shape_prior"] is True and "shape_prior" in tuned


def test_the_prior_votes_with_slab_scale_where_the_groups_speak_and_fully_beyond_the_slabs():
    below, above = edge_slice(0.0, 20), edge_slice(10.0, 30)
    rows = points_at(below, np.full(3, 20.0), np.full(3, 20.0), np.array([-1.5, 0.0, 1.5]))
    d = np.array([0.0, 1.5, 2.5, 3.5, 5.0, 8.5])  # nearest plane 0, 1.5, 2.5, 3.5, 5, 1.5 mm away
    points = points_at(below, np.full(6, 22.0), np.full(6, 20.0), d)
    for slab_scale in (0.0, 0.4, 1.0):
        prior = dataclasses.replace(linear([below, above]).reaching(rows), slab_scale=slab_scale)
        logit, weight = prior.node_terms(points)
        expected_weight = np.exp(-0.5 * (np.maximum(np.array([0.0, 1.5, 2.5, 3.5, 5.0, 1.5]) - 1.5, 0.0) / 2.0) ** 2)
        np.testing.assert_allclose(weight, expected_weight, rtol=1e-6)
        np.testing.assert_allclose(logit, prior.logit(points) * (1 - expected_weight * (1 - slab_scale)), rtol=1e-5)
        on_slab = expected_weight == 1.0
        np.testing.assert_allclose(logit[on_slab], slab_scale * prior.logit(points)[on_slab], rtol=1e-6)
        assert abs(logit[4]) > 0.5 * abs(prior.logit(points)[4]) > 0  # 3.5 mm beyond the slabs: mostly the prior
        reloaded = ShapePrior.from_arrays(prior.to_arrays(), "data.npz")
        assert reloaded.slab_scale == slab_scale
    with pytest.raises(CardioScarError, match="shape prior is damaged"):
        ShapePrior.from_arrays({**prior.to_arrays(), "slab_scale": np.float64(1.5)}, "data.npz")

    # beyond the stack's end planes (below z = 0, above z = 10) the prior would only extrude the last
    # outline: the network keeps its full weight there and the prior's vote fades out
    beyond = points_at(below, np.full(4, 22.0), np.full(4, 20.0), np.array([-1.5, -6.0, 16.0, 5.0]))
    prior = dataclasses.replace(prior, slab_scale=0.4)
    logit, weight = prior.node_terms(beyond)
    np.testing.assert_array_equal(weight[:3], 1.0)
    fade = np.exp(-0.5 * (np.array([0.0, 4.5, 4.5]) / 2.0) ** 2)  # 1.5 mm full, 2 mm decay
    np.testing.assert_allclose(logit[:3], 0.4 * fade * prior.logit(beyond)[:3], rtol=1e-5)
    assert weight[3] < 0.5  # 5 mm from both planes: between them, the prior rules
    extruding = dataclasses.replace(prior, network_beyond_ends=False)
    np.testing.assert_allclose(extruding.residual_weight(beyond)[:3], np.exp(-0.5 * (np.array([1.5, 6.0, 6.0]) - 1.5) ** 2 / 4))

    # a version 2 prior (before slab_scale) votes fully everywhere and its residual decays beyond the
    # ends too, as it was trained and used
    older = {key: value for key, value in prior.to_arrays().items() if key not in ("slab_scale", "network_beyond_ends")}
    second = ShapePrior.from_arrays({**older, "version": np.int64(2)}, "data.npz")
    assert (second.slab_scale, second.network_beyond_ends) == (1.0, False)
    np.testing.assert_array_equal(second.node_terms(points)[0], second.logit(points))
    np.testing.assert_array_equal(second.residual_weight(beyond), extruding.residual_weight(beyond))
    assert ShapePrior.from_arrays(prior.to_arrays(), "data.npz").network_beyond_ends is True


def test_with_slab_scale_0_the_slabs_and_the_ends_train_and_predict_as_without_a_prior():
    """With ``slab_scale`` = 0 the prior costs a full reconstruction nothing on the slabs and beyond
    the stack's ends: there the prediction is the prior-off model's, bit for bit (same seed);
    between distant slabs the prior still rules."""
    grid, slices, other = _training_case()
    prepared = prepare_from_slices(grid, slices)
    prepared = dataclasses.replace(prepared, shape_prior=dataclasses.replace(prepared.shape_prior, slab_scale=0.0))
    config = TrainingConfig.fast(max_epochs=20, early_stopping_patience=20, seed=5, shape_prior=False)
    with_prior = train_scar_model(prepared, dataclasses.replace(config, shape_prior=True))
    without = train_scar_model(prepared, config)
    prior = ShapePrior.from_checkpoint(with_prior)
    on = predict_on_points(with_prior, other, mc_samples=4, seed=2).mean_predictions
    off = predict_on_points(without, other, mc_samples=4, seed=2).mean_predictions
    on_slab = prior.residual_weight(other) == 1.0
    assert on_slab.sum() > 100 and (~on_slab).sum() > 100
    np.testing.assert_array_equal(on[on_slab], off[on_slab])
    assert np.abs(on - off)[~on_slab].max() > 0.1  # the prior acts between the slabs
    # slab_scale 1 (as a version 2 prior loads): the rows train with the full log-odds, unlike off
    full_vote = dataclasses.replace(prepared, shape_prior=dataclasses.replace(prepared.shape_prior, slab_scale=1.0))
    old_style = train_scar_model(full_vote, dataclasses.replace(config, shape_prior=True))
    assert np.abs(predict_on_points(old_style, other, mc_samples=4, seed=2).mean_predictions - off)[on_slab].max() > 0.05


def test_training_option_is_checked():
    with pytest.raises(CardioScarError, match="shape_prior must be true, false, 'on', 'off' or 'auto'"):
        TrainingConfig(shape_prior="yes")
    assert TrainingConfig().shape_prior is False and TrainingConfig.fast().shape_prior == "auto"
    assert TrainingConfig(shape_prior=" Auto").shape_prior == "auto"  # as the faces take it
    # on / off as the command line, the Slicer options and the manifest take them (they were refused here)
    assert TrainingConfig(shape_prior="on").shape_prior is True and TrainingConfig(shape_prior="OFF").shape_prior is False


def test_auto_trains_with_the_prior_on_labels_and_without_it_on_fractions(caplog):
    """The fast preset's ``auto``: 0/1 targets (a label map) over a stack get the prior, the same
    slices as fractions do not, nor a lone plane, a pooled long-axis view or a raw-LGE rule's 0/1
    grades; the checkpoint says which ran."""
    grid, slices, _ = _training_case()
    config = TrainingConfig.fast(max_epochs=5, early_stopping_patience=5, seed=1)
    with caplog.at_level("INFO", logger="cardioscar.shape_prior.use"):
        labels = train_scar_model(prepare_from_slices(grid, slices), config)
    assert labels["hyperparameters"]["shape_prior"] is True and "shape_prior" in labels
    # the user reads why it went on (it once gave the long-axis reason for an "on")
    assert "shape prior (auto): on, every target is 0 or 1 and every slice with targets lies in a stack" in caplog.text
    assert "long-axis" not in caplog.text
    caplog.clear()
    fractions = [dataclasses.replace(layer, values=np.where(layer.values > 0, 0.7, 0.05)) for layer in slices]
    with caplog.at_level("INFO", logger="cardioscar.shape_prior.use"):
        soft = train_scar_model(prepare_from_slices(grid, fractions), config)
    assert soft["hyperparameters"]["shape_prior"] is False and "shape_prior" not in soft
    assert "shape prior (auto): off, the targets are not all 0 or 1" in caplog.text
    lone = train_scar_model(prepare_from_slices(grid, slices[:1]), config)
    assert lone["hyperparameters"]["shape_prior"] is False
    long_axis = edge_slice(20.0, 10, axis_i=(0.0, 1.0, 0.0), axis_j=(0.0, 0.0, 1.0), origin=(0.0, 0.0, -3.0))
    pooled = prepare_from_slices(grid, slices + [long_axis])
    assert len(pooled.shape_prior.maps) == 4
    caplog.clear()
    with caplog.at_level("INFO", logger="cardioscar.shape_prior.use"):
        assert train_scar_model(pooled, config)["hyperparameters"]["shape_prior"] is False
    assert "shape prior (auto): off, the targets are 0/1 but some slice with targets lies in no stack" in caplog.text
    # 0/1 grades of a raw-LGE rule (prepare records the rule) are not drawn labels: off
    graded = dataclasses.replace(prepare_from_slices(grid, slices), scar_rule='{"rule": "nsd", "target": "scar"}')
    caplog.clear()
    with caplog.at_level("INFO", logger="cardioscar.shape_prior.use"):
        assert train_scar_model(graded, config)["hyperparameters"]["shape_prior"] is False
    assert "shape prior (auto): off, the targets are a raw-LGE rule's grades" in caplog.text
    # labels in a .npz of a CardioScar without the prior: auto cannot use it, and says so as "on" does
    caplog.clear()
    with caplog.at_level("INFO", logger="cardioscar.shape_prior.use"):
        old = train_scar_model(dataclasses.replace(prepare_from_slices(grid, slices), shape_prior=None), config)
    assert old["hyperparameters"]["shape_prior"] is False
    assert [r.levelname for r in caplog.records if "holds none" in r.getMessage()] == ["WARNING"]
    # "on" still means on, whatever the targets
    forced = train_scar_model(prepare_from_slices(grid, fractions), dataclasses.replace(config, shape_prior=True))
    assert forced["hyperparameters"]["shape_prior"] is True


EXPERT_RULE = {"rule": "nsd", "border": 2.0, "core": 3.0, "expert_scar_labels": [3, 4], "expert_core_labels": [4]}


def test_auto_trains_a_rules_scar_cut_to_the_experts_labels_with_the_prior(caplog):
    """``prepare --scar-rule ... --expert-scar-labels``: the scar target is the experts' drawn scar
    (the rule grades only inside it), so ``auto`` treats it as the labels route does; the core target
    (the rule's core within it), a rule without expert labels and a damaged record stay off."""
    import json

    from cardioscar.io.checks import SHAPE_PRIOR_AUTO
    from cardioscar.shape_prior.use import training_prior

    grid, slices, _ = _training_case()
    prepared = prepare_from_slices(grid, slices)
    scar = json.dumps({**EXPERT_RULE, "target": "scar"})
    with caplog.at_level("INFO", logger="cardioscar.shape_prior.use"):
        chosen = training_prior(prepared.shape_prior, SHAPE_PRIOR_AUTO, prepared.intensities, scar)
    assert chosen is prepared.shape_prior
    assert ("shape prior (auto): on, every target is 0 or 1 (the experts' scar: a rule's scar target cut to "
            "--expert-scar-labels) and every slice") in caplog.text
    # the why in the record's format, not a value filled in: a face (the Slicer Logic) rewords only the format
    assert any("--expert-scar-labels" in str(r.msg) for r in caplog.records if "shape prior (auto)" in r.getMessage())
    off = {"core": json.dumps({**EXPERT_RULE, "target": "core"}), "no experts": '{"rule": "nsd", "target": "scar"}',
           "empty list": json.dumps({**EXPERT_RULE, "expert_scar_labels": [], "target": "scar"}), "damaged": "{"}
    for why, record in off.items():
        caplog.clear()
        with caplog.at_level("INFO", logger="cardioscar.shape_prior.use"):
            assert training_prior(prepared.shape_prior, SHAPE_PRIOR_AUTO, prepared.intensities, record) is None, why
        assert "shape prior (auto): off, the targets are a raw-LGE rule's" in caplog.text, why
    # graded (not 0/1) targets with the experts' record stay off, as fractions do
    soft = np.where(prepared.intensities > 0.5, 0.7, 0.1)
    assert training_prior(prepared.shape_prior, SHAPE_PRIOR_AUTO, soft, scar) is None
    # and the checkpoint says the model trained with it
    config = TrainingConfig.fast(max_epochs=5, early_stopping_patience=5, seed=1)
    model = train_scar_model(dataclasses.replace(prepared, scar_rule=scar), config)
    assert model["hyperparameters"]["shape_prior"] is True and "shape_prior" in model


def test_the_command_line_and_the_batch_script_take_shape_prior_on_or_off(capsys):
    from cardioscar.cli import _training_config, build_parser

    parser = build_parser()
    base = ["train", "--training-data", "d.npz", "--output", "m.pth", "--preset", "fast"]
    assert _training_config(parser.parse_args(base + ["--shape-prior", "on"])).shape_prior is True
    assert _training_config(parser.parse_args(base + ["--shape-prior", "off"])).shape_prior is False
    assert _training_config(parser.parse_args(base + ["--shape-prior", "auto"])).shape_prior == "auto"
    assert _training_config(parser.parse_args(base)).shape_prior == "auto"  # the fast preset's
    assert _training_config(parser.parse_args(base[:-2])).shape_prior is False  # the documented preset's
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--shape-prior", "maybe"])
    assert "must be on, off or auto" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the usage line names the choices (it read SHAPE_PRIOR)
        parser.parse_args(["train", "--help"])
    assert "--shape-prior {on,off,auto}" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # a fine-tuned model keeps its base model's choice
        parser.parse_args(["fine-tune", "--model", "m.pth"] + base[1:] + ["--shape-prior", "on"])
    batch = importlib.util.module_from_spec(spec := importlib.util.spec_from_file_location(
        "cardioscar_batch_shape_prior", Path(__file__).resolve().parents[1] / "CardioScar" / "Scripts" / "cardioscar_batch.py"))
    spec.loader.exec_module(batch)
    args = batch.build_parser().parse_args(["--mesh", "m.vtk", "--volume", "v.nii.gz", "--output", "o.vtk",
                                            "--shape-prior", "on"])
    assert args.shape_prior is True
    assert batch.build_parser().parse_args(["--mesh", "m.vtk", "--volume", "v.nii.gz", "--output", "o.vtk"]
                                           ).shape_prior is None  # the preset's


def _pooled_views() -> tuple[SliceLayer, SliceLayer, SliceLayer, np.ndarray]:
    """Two short-axis slices 16 mm apart and one long-axis view across them (its plane y = 20, its
    pixels along x and z), with training rows as the slabs give them: within 1.5 mm of each plane."""
    below, above = edge_slice(0.0, 20), edge_slice(16.0, 30)
    lone = edge_slice(0.0, 25, axis_i=(1.0, 0.0, 0.0), axis_j=(0.0, 0.0, 1.0), origin=(0.0, 20.0, -5.0))
    z = np.arange(-1.5, 17.6, 0.5)
    short_axis_rows = points_at(below, np.full(14, 20.0), np.full(14, 10.0), np.r_[np.linspace(-1.5, 1.5, 7),
                                                                                   np.linspace(14.5, 17.5, 7)])
    long_axis_rows = np.stack([np.full(z.size, 12.0), 20.0 + np.resize([-1.5, 0.0, 1.5], z.size), z], axis=1)
    return below, above, lone, np.concatenate([short_axis_rows, long_axis_rows])


def test_a_lone_long_axis_view_does_not_split_a_short_axis_gap_between_the_network_and_the_prior():
    """Version 4: the residual weight is measured against stacks of two or more parallel planes.
    Before, a point between two short-axis slices 1 mm from a long-axis plane had weight 1 (the
    network rules) and its neighbour 8 mm from it the prior's weight, so a held-out slice was
    ranked by where its nodes lie (biv-me: held-out AUC 0.51, prior off 0.93;
    Testing/benchmarks/ROBUSTNESS.md). Every long-axis row must still have weight 1: where that view
    carries groups the network follows them."""
    below, above, lone, rows = _pooled_views()
    prior = linear([below, above, lone]).reaching(rows)
    assert prior.weigh_lone_planes is False  # the default
    assert prior.residual_full_mm == pytest.approx(8.0)  # the farthest long-axis row, half-way up the gap
    np.testing.assert_array_equal(prior.residual_weight(rows), 1.0)
    held_out = np.array([[12.0, 21.0, 8.0], [12.0, 28.0, 8.0], [30.0, 5.0, 8.0]])  # 1, 8 and 15 mm from y = 20
    logit, weight = prior.node_terms(held_out)
    np.testing.assert_array_equal(weight, 1.0)
    np.testing.assert_allclose(logit, prior.slab_scale * prior.logit(held_out), rtol=1e-6)
    # without long-axis rows (a short-axis stack alone) the gap belongs to the prior, as in version 3
    stack_only = linear([below, above, lone]).reaching(rows[:14])
    assert stack_only.residual_full_mm == pytest.approx(1.5) and (stack_only.residual_weight(held_out) < 0.01).all()

    # a version 3 prior loads measuring against every plane, as it was trained and used: the split
    third = {key: value for key, value in prior.to_arrays().items() if key != "weigh_lone_planes"}
    old = ShapePrior.from_arrays({**third, "version": np.int64(3)}, "data.npz").reaching(rows)
    assert old.weigh_lone_planes is True and old.residual_full_mm == pytest.approx(1.5)
    old_weight = old.residual_weight(held_out)
    assert old_weight[0] == 1.0 and old_weight[1] < 0.01  # the near node: the network; the far one: the prior
    assert ShapePrior.from_arrays(prior.to_arrays(), "data.npz").weigh_lone_planes is False
    with pytest.raises(CardioScarError, match="shape prior is damaged"):
        ShapePrior.from_arrays({**prior.to_arrays(), "weigh_lone_planes": np.int64(2)}, "data.npz")


def test_a_bounded_residual_holds_in_training_and_at_apply_and_older_priors_predict_as_before(tmp_path):
    """Prior version 5's ``residual_bound`` c: the network's residual enters as ``c tanh(f / c)`` in the
    trained fit (the group loss the training reports is that field's) and at apply (every MC sample's,
    before the residual weight), so no node's log-odds moves more than c from the prior's vote; the
    checkpoint carries c. A version 4 prior (no field) loads unbounded and predicts as it did."""
    import torch

    from cardioscar.fit.engines import bounded_residual
    from cardioscar.fit.training import fit_scar_field
    from cardioscar.shape_prior.use import fit_to_rows

    grid, slices, other = _training_case()
    prepared = prepare_from_slices(grid, slices)
    bound = 0.5
    prepared = dataclasses.replace(prepared, shape_prior=dataclasses.replace(prepared.shape_prior, residual_bound=bound))
    config = TrainingConfig.fast(max_epochs=8, early_stopping_patience=8, seed=4, shape_prior=True)

    # training: the reported loss is the group loss of sigmoid(prior + c tanh(f / c)) at the rows
    fitted, row_logit = fit_to_rows(prepared.shape_prior, prepared.coordinates, prepared.scaler_min, prepared.scaler_max)
    model, history = fit_scar_field(prepared.coordinates, prepared.intensities, prepared.group_ids, config,
                                    prior_logit=row_logit, residual_bound=bound)
    with torch.no_grad():
        f = model.network(torch.from_numpy(prepared.coordinates.astype(np.float32))).numpy().reshape(-1).astype(np.float64)
    assert np.abs(f).max() > 2 * bound  # the bound binds
    field = 1.0 / (1.0 + np.exp(-(row_logit + bound * np.tanh(f / bound))))
    groups, inverse = np.unique(prepared.group_ids, return_inverse=True)
    means = np.bincount(inverse, field) / np.bincount(inverse)
    targets = np.bincount(inverse, prepared.intensities.reshape(-1)) / np.bincount(inverse)
    assert history["final_loss"] == pytest.approx(np.mean((means - targets) ** 2), rel=1e-3)
    unbounded = 1.0 / (1.0 + np.exp(-(row_logit + f)))
    assert abs(np.mean((np.bincount(inverse, unbounded) / np.bincount(inverse) - targets) ** 2)
               - history["final_loss"]) > 1e-3
    assert torch.allclose(bounded_residual(torch.tensor([-9.0, 0.3, 9.0]), np.inf), torch.tensor([-9.0, 0.3, 9.0]))

    # apply: each sample's residual bounded, then weighted; the bound travels in the checkpoint
    checkpoint = train_scar_model(prepared, config)
    prior = ShapePrior.from_checkpoint(checkpoint)
    assert prior.residual_bound == bound and checkpoint["shape_prior"]["version"] == 5
    logit, weight = prior.node_terms(other)
    bare = {key: value for key, value in checkpoint.items() if key != "shape_prior"}
    network = predict_on_points(bare, other, mc_samples=1, seed=7).mean_predictions.astype(np.float64)
    residual = np.log(network / (1 - network))
    assert np.abs(residual).max() > 2 * bound
    with_bound = predict_on_points(checkpoint, other, mc_samples=1, seed=7).mean_predictions.astype(np.float64)
    np.testing.assert_allclose(with_bound, 1 / (1 + np.exp(-(logit + weight * bound * np.tanh(residual / bound)))),
                               atol=2e-5)
    moved = np.log(with_bound / (1 - with_bound)) - logit
    assert np.abs(moved).max() <= bound * 1.001
    sampled = predict_on_points(checkpoint, other, mc_samples=6, seed=7)  # MC dropout: mean and std of the sigmoids
    assert sampled.std_predictions.max() > 0

    # a version 4 prior (before the bound) loads unbounded and predicts as the unbounded formula, as before
    older = {key: value for key, value in checkpoint["shape_prior"].items() if key != "residual_bound"}
    fourth = {**checkpoint, "shape_prior": {**older, "version": 4}}
    assert ShapePrior.from_checkpoint(fourth).residual_bound == np.inf
    as_before = predict_on_points(fourth, other, mc_samples=1, seed=7).mean_predictions.astype(np.float64)
    np.testing.assert_allclose(as_before, 1 / (1 + np.exp(-(logit + weight * residual))), atol=2e-5)
    assert np.abs(as_before - with_bound).max() > 0.05
    with pytest.raises(CardioScarError, match="shape prior is damaged"):
        ShapePrior.from_arrays({**prior.to_arrays(), "residual_bound": np.float64(0.0)}, "data.npz")
    # fine-tuning keeps the bound the base model's residual learnt under, whatever the new data's prior says
    unbounded_data = dataclasses.replace(prepared, shape_prior=dataclasses.replace(prepared.shape_prior,
                                                                                  residual_bound=np.inf))
    save_trained_model(checkpoint, tmp_path / "model.pth")
    tuned = fine_tune_scar_model(tmp_path / "model.pth", unbounded_data, TrainingConfig.fast(max_epochs=2))
    assert ShapePrior.from_checkpoint(tuned).residual_bound == bound


def test_an_unbounded_prior_is_written_as_version_4_for_older_builds():
    """The default (unbounded) prior is written as version 4, without ``residual_bound``, so a
    ``.npz`` or checkpoint made with the defaults stays readable by a build that predates the
    bound (which refuses a version 5 prior as "from a newer CardioScar"); only a finite bound
    writes version 5. Both read back as written."""
    grid, slices, _ = _training_case()
    prior = prepare_from_slices(grid, slices).shape_prior
    assert np.isinf(prior.residual_bound)
    arrays, entry = prior.to_arrays(), prior.to_checkpoint()
    assert int(arrays["version"]) == 4 and entry["version"] == 4
    assert "residual_bound" not in arrays and "residual_bound" not in entry
    assert np.isinf(ShapePrior.from_arrays(arrays, "data.npz").residual_bound)
    bounded = dataclasses.replace(prior, residual_bound=2.0)
    assert int(bounded.to_arrays()["version"]) == 5 and bounded.to_checkpoint()["version"] == 5
    assert ShapePrior.from_checkpoint({"shape_prior": bounded.to_checkpoint()}).residual_bound == 2.0


def test_a_bounded_prior_whose_bound_is_true_is_refused_as_damaged():
    """A version 5 prior's ``residual_bound`` of True (a hand-edited or another tool's file) was
    read as a bound of 1 logit, which would train or predict with a bound never chosen; it is
    refused as a damaged prior, in the checkpoint (a Python bool) and the ``.npz`` (numpy's)."""
    grid, slices, _ = _training_case()
    bounded = dataclasses.replace(prepare_from_slices(grid, slices).shape_prior, residual_bound=2.0)
    with pytest.raises(CardioScarError, match="the checkpoint: the shape prior is damaged"):
        ShapePrior.from_checkpoint({"shape_prior": {**bounded.to_checkpoint(), "residual_bound": True}})
    with pytest.raises(CardioScarError, match="data.npz: the shape prior is damaged"):
        ShapePrior.from_arrays({**bounded.to_arrays(), "residual_bound": np.bool_(True)}, "data.npz")
