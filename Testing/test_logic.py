"""The orchestrators in ``cardioscar.logic`` and the documented ``cardioscar.utilities`` adapters.

Real files throughout: the small phantom written to disk, read back through SimpleITK and VTK.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.errors import CardioScarError, TrainingCancelled
from cardioscar.logic import (
    PreprocessingRequest,
    load_preprocessing_result,
    predict_on_points,
    prepare_training_data,
    save_inference_result,
    save_preprocessing_result,
    train_scar_model,
)
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom
from cardioscar.prepare.slices import slice_to_vtk_grid, slices_from_image
from cardioscar.fit.training import TrainingConfig

TINY = dict(max_epochs=3, early_stopping_patience=3)


@pytest.fixture(scope="module")
def prepared(small_phantom):
    phantom, paths = small_phantom
    request = PreprocessingRequest(
        mesh_path=paths["mesh"], image_path=paths["image"], slice_thickness_padding=phantom.slice_half_thickness_mm
    )
    return phantom, paths, prepare_training_data(request)


def test_grid_layers_map_like_the_image(prepared, tmp_path):
    """The VTK grid-layer input has the same footprint semantics as the image input."""
    phantom, paths, from_image = prepared
    layers = slices_from_image(sitk.ReadImage(str(paths["image"])))
    grid_paths = []
    for k, layer in enumerate(layers):
        grid_paths.append(tmp_path / f"slice_{k}.vtk")
        slice_to_vtk_grid(layer, grid_paths[-1])
    request = PreprocessingRequest(
        mesh_path=paths["mesh"], vtk_grid_paths=grid_paths, slice_thickness_padding=phantom.slice_half_thickness_mm
    )
    from_grids = prepare_training_data(request)
    # Grid files hold only the pixels that exist; compare (node, target) pairs, not group numbers.
    pairs = lambda r: sorted(zip(r.node_ids.tolist(), np.round(r.intensities[:, 0], 5).tolist()))
    assert pairs(from_grids) == pairs(from_image)
    np.testing.assert_allclose(from_grids.scaler_min, from_image.scaler_min)


def test_prepared_rows_are_consistent(prepared):
    phantom, _, result = prepared
    assert result.n_mesh_nodes == len(phantom.truth)
    assert np.all(np.diff(result.group_ids) >= 0)
    assert result.group_sizes.sum() == result.n_nodes == len(result.node_ids)
    # Each group has a single target value (the pixel's).
    first = np.r_[0, np.cumsum(result.group_sizes)[:-1]]
    np.testing.assert_array_equal(np.repeat(result.intensities[first, 0], result.group_sizes), result.intensities[:, 0])
    # The scaler comes from every node, not only those in slices.
    points = phantom.points_lps
    np.testing.assert_allclose(result.scaler_min, points.min(axis=0))
    np.testing.assert_allclose(result.scaler_max, points.max(axis=0))


def test_request_needs_exactly_one_source(small_phantom):
    _, paths = small_phantom
    with pytest.raises(CardioScarError, match="exactly one"):
        PreprocessingRequest(mesh_path=paths["mesh"])
    with pytest.raises(CardioScarError, match="exactly one"):
        PreprocessingRequest(mesh_path=paths["mesh"], image_path=paths["image"], vtk_grid_paths=[paths["mesh"]])
    with pytest.raises(CardioScarError, match="slice_thickness_padding"):
        PreprocessingRequest(mesh_path=paths["mesh"], image_path=paths["image"], slice_thickness_padding=0)


def test_request_combines_several_images(tmp_path):
    """A short-axis stack and a long-axis slice stored as two images map as one set of slices:
    the stack's rows first, unchanged, then the long-axis slice's groups."""
    phantom = make_phantom(PhantomConfig(target_nodes=4000, seed=5, long_axis=True))
    paths = write_phantom(phantom, tmp_path)
    padding = phantom.slice_half_thickness_mm

    def prepare(images, indices=None):
        return prepare_training_data(PreprocessingRequest(mesh_path=paths["mesh"], image_path=images,
                                                          slice_indices=indices, slice_thickness_padding=padding))

    stack, long_axis = prepare(paths["image"]), prepare([paths["long_axis_image"]])
    both = prepare([paths["image"], paths["long_axis_image"]])
    n_stack = phantom.image.GetSize()[2]
    assert both.slice_labels == stack.slice_labels + ["phantom_lge_long_axis.nii.gz k=0"]
    assert both.n_groups == stack.n_groups + long_axis.n_groups and both.n_nodes == stack.n_nodes + long_axis.n_nodes
    for key in ("coordinates", "intensities", "node_ids", "group_pixel"):
        np.testing.assert_array_equal(getattr(both, key)[: len(getattr(stack, key))], getattr(stack, key), err_msg=key)
        np.testing.assert_array_equal(getattr(both, key)[len(getattr(stack, key)):], getattr(long_axis, key), err_msg=key)
    assert set(both.group_slice[stack.n_groups:]) == {n_stack}
    # indices count across the images: the stack's slice 1 and the long-axis slice
    picked = prepare([paths["image"], paths["long_axis_image"]], [1, n_stack])
    assert picked.slice_labels == [stack.slice_labels[1], "phantom_lge_long_axis.nii.gz k=0"]
    with pytest.raises(CardioScarError, match=f"slice index {n_stack + 1} is out of range for axis z of the 2 images "
                                              f"together: valid 0-{n_stack}"):
        prepare([paths["image"], paths["long_axis_image"]], [n_stack + 1])
    with pytest.raises(CardioScarError, match="image_path is an empty list"):
        PreprocessingRequest(mesh_path=paths["mesh"], image_path=[])


def test_npz_round_trip_and_reference_format(prepared, tmp_path):
    _, _, result = prepared
    save_preprocessing_result(result, tmp_path / "full.npz")
    again = load_preprocessing_result(tmp_path / "full.npz")
    np.testing.assert_array_equal(again.node_ids, result.node_ids)
    assert again.slice_labels == result.slice_labels
    # A file holding only the documented keys (as the existing tool writes) still trains.
    documented = {k: getattr(result, k) for k in ("coordinates", "intensities", "group_ids", "group_sizes", "scaler_min", "scaler_max")}
    np.savez(tmp_path / "reference.npz", **documented)
    checkpoint = train_scar_model(tmp_path / "reference.npz", TrainingConfig(**TINY))
    assert checkpoint["dataset_info"]["n_groups"] == result.n_groups
    with pytest.raises(CardioScarError, match="group_sizes"):
        np.savez(tmp_path / "partial.npz", coordinates=result.coordinates)
        load_preprocessing_result(tmp_path / "partial.npz")


@pytest.mark.parametrize("damage, message", [
    (dict(intensities=lambda r: r.intensities * 100), "intensities must lie in [0, 1]"),
    (dict(scaler_min=lambda r: r.scaler_min[:2]), "scaler_min/scaler_max must be 3 finite values"),
    (dict(scaler_max=lambda r: np.full(3, np.nan)), "scaler_min/scaler_max must be 3 finite values"),
    (dict(coordinates=lambda r: np.full(r.coordinates.shape, "x")), "must be numbers"),
    (dict(coordinates=lambda r: r.coordinates[:, :2]), "coordinates must be (N, 3)"),
])
def test_damaged_training_data_fields_are_one_line_errors(prepared, tmp_path, damage, message):
    """A readable .npz with a damaged field: named, before any training (it used to crash, or to
    train on nonsense and save a model that crashed later)."""
    _, _, result = prepared
    fields = {k: getattr(result, k) for k in ("coordinates", "intensities", "group_ids", "group_sizes", "scaler_min",
                                              "scaler_max")}
    fields.update({key: change(result) for key, change in damage.items()})
    np.savez(tmp_path / "damaged.npz", **fields)
    with pytest.raises(CardioScarError, match=re.escape(message)):
        load_preprocessing_result(tmp_path / "damaged.npz")


def test_a_model_with_damaged_weights_or_scaler_predicts_nothing(prepared):
    phantom, _, result = prepared
    checkpoint = train_scar_model(result, TrainingConfig(**TINY))
    broken = dict(checkpoint, model_state_dict={k: v.clone() for k, v in checkpoint["model_state_dict"].items()})
    next(iter(broken["model_state_dict"].values()))[0, 0] = float("nan")
    with pytest.raises(CardioScarError, match="predicts NaN or infinite values"):
        predict_on_points(broken, phantom.points_lps, mc_samples=2)
    bad_scaler = dict(checkpoint, dataset_info=dict(checkpoint["dataset_info"], scaler_min=[0.0, 1.0]))
    with pytest.raises(CardioScarError, match="The checkpoint's dataset_info: scaler_min/scaler_max must be 3"):
        predict_on_points(bad_scaler, phantom.points_lps, mc_samples=2)


def test_cancel_stops_training_and_returns_nothing(prepared):
    _, _, result = prepared
    calls = []

    def cancel_after_two() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(TrainingCancelled):
        train_scar_model(result, TrainingConfig(max_epochs=500, early_stopping_patience=500), should_cancel=cancel_after_two)
    assert len(calls) == 3  # polled before every batch, stopped at the first request


def test_predict_on_points_and_threshold(prepared):
    phantom, _, result = prepared
    checkpoint = train_scar_model(result, TrainingConfig(**TINY))
    inference = predict_on_points(checkpoint, phantom.points_lps, mc_samples=4, threshold=0.3)
    assert inference.n_nodes == len(phantom.truth)
    np.testing.assert_array_equal(inference.binary_predictions, inference.mean_predictions >= 0.3)
    assert inference.mean_scar_probability == pytest.approx(float(np.mean(inference.mean_predictions)))
    with pytest.raises(CardioScarError, match="threshold"):
        predict_on_points(checkpoint, phantom.points_lps, threshold=1.5)
    with pytest.raises(CardioScarError, match="mc_samples"):
        predict_on_points(checkpoint, phantom.points_lps, mc_samples=0)


def test_ras_mesh_round_trip_through_the_pipeline(prepared, tmp_path):
    """A Slicer-written RAS mesh maps like its LPS twin and the output keeps RAS coordinates."""
    phantom, paths, from_lps = prepared
    lps = read_mesh(paths["mesh"])
    ras_points = lps.points_lps() * np.array([-1.0, -1.0, 1.0])
    ras_dataset = lps.dataset.NewInstance()
    ras_dataset.DeepCopy(lps.dataset)
    from vtk.util.numpy_support import numpy_to_vtk

    ras_dataset.GetPoints().SetData(numpy_to_vtk(ras_points, deep=True))
    ras_path = tmp_path / "heart_ras.vtk"
    write_mesh(Mesh(dataset=ras_dataset, space="RAS", path=None), ras_path, {})
    from_ras = prepare_training_data(
        PreprocessingRequest(mesh_path=ras_path, image_path=paths["image"], slice_thickness_padding=phantom.slice_half_thickness_mm)
    )
    np.testing.assert_array_equal(from_ras.node_ids, from_lps.node_ids)
    checkpoint = train_scar_model(from_ras, TrainingConfig(**TINY))
    inference = predict_on_points(checkpoint, read_mesh(ras_path).points_lps(), mc_samples=2)
    save_inference_result(inference, ras_path, tmp_path / "out.vtk")
    out = read_mesh(tmp_path / "out.vtk")
    assert out.space == "RAS"
    np.testing.assert_allclose(out.points_lps(), read_mesh(ras_path).points_lps(), atol=1e-4)
    assert b"SPACE=RAS" in (tmp_path / "out.vtk").read_bytes()[:300]


def test_save_inference_result_refuses_other_mesh(prepared, tmp_path):
    phantom, paths, result = prepared
    checkpoint = train_scar_model(result, TrainingConfig(**TINY))
    inference = predict_on_points(checkpoint, phantom.points_lps[:100], mc_samples=2)
    with pytest.raises(CardioScarError, match="nodes"):
        save_inference_result(inference, paths["mesh"], tmp_path / "out.vtk")
    assert not (tmp_path / "out.vtk").exists()


# ------------------------------------------------------------------ documented utilities


def test_process_vtk_grid_data_matches_brute_force():
    from cardioscar.utilities import process_vtk_grid_data

    rng = np.random.default_rng(0)
    spacing, nx, ny, z0 = 2.0, 6, 5, 10.0
    cells, values = [], []
    for j in range(ny):
        for i in range(nx):
            x, y = i * spacing, j * spacing
            cells.append([x, x + spacing, y, y + spacing, z0, z0])
            values.append(rng.random())
    cells, values = np.array(cells), np.array(values)
    nodes = rng.uniform([-2, -2, 4], [nx * spacing + 2, ny * spacing + 2, 16], size=(3000, 3))
    rows = process_vtk_grid_data(nodes, [(cells, values)], z_padding=3.0)
    expected = set()
    for n, (x, y, z) in enumerate(nodes):
        inside = (cells[:, 0] <= x) & (x < cells[:, 1]) & (cells[:, 2] <= y) & (y < cells[:, 3]) & (-3.0 <= z - z0 < 3.0)
        for c in np.flatnonzero(inside):
            expected.add((n, round(values[c], 9)))
    found = set()
    for x, y, z, value, _ in rows:
        n = int(np.flatnonzero(np.all(nodes == [x, y, z], axis=1))[0])
        found.add((n, round(value, 9)))
    assert found == expected and len(found) > 100


@pytest.mark.parametrize("rows", [1, 2])
def test_process_vtk_grid_data_on_a_one_row_layer_of_thick_cells(rows):
    """One row of 8 mm thick cells: two axes have a single centre value, and the normal is z (the
    documented padding axis), not the first of them (y)."""
    from cardioscar.utilities import process_vtk_grid_data

    spacing, nx, z0, padding = 2.0, 5, 10.0, 0.5
    cells = np.array([[i * spacing, (i + 1) * spacing, j * spacing, (j + 1) * spacing, z0 - 4.0, z0 + 4.0]
                      for j in range(rows) for i in range(nx)])
    values = np.linspace(0.1, 0.9, len(cells))
    nodes = np.array([[3.0, 1.0, 10.0],     # inside cell 1
                      [3.0, -0.2, 10.0],    # beside the row in y: outside
                      [3.0, 1.0, 14.2],     # in the padding above the cells: inside
                      [3.0, 1.0, 14.6]])    # beyond the padding: outside
    rows_found = process_vtk_grid_data(nodes, [(cells, values)], z_padding=padding)
    hits = {tuple(row[:3]): row[3] for row in rows_found}
    assert set(hits) == {(3.0, 1.0, 10.0), (3.0, 1.0, 14.2)}
    assert all(value == pytest.approx(values[1]) for value in hits.values())


def test_normalize_denormalize_round_trip():
    from cardioscar.utilities import denormalize_coordinates, normalize_coordinates

    points = np.random.default_rng(1).normal(size=(50, 3)) * 40
    normalized, scaler = normalize_coordinates(points)
    assert normalized.min() == pytest.approx(0) and normalized.max() == pytest.approx(1)
    np.testing.assert_allclose(denormalize_coordinates(normalized, scaler.data_min_, scaler.data_max_), points)


def test_load_mesh_points_and_save_mesh_with_scalars(small_phantom, tmp_path):
    from cardioscar.utilities import load_mesh_points, save_mesh_with_scalars

    phantom, paths = small_phantom
    points = load_mesh_points(paths["mesh"])
    np.testing.assert_allclose(points, phantom.points_lps, atol=1e-4)
    save_mesh_with_scalars(paths["mesh"], tmp_path / "o.vtu", {"scar_probability": np.linspace(0, 1, len(points))})
    assert read_mesh(tmp_path / "o.vtu").point_array("scar_probability")[-1] == pytest.approx(1.0)


def test_seeded_inference_is_reproducible_and_leaves_global_rng(prepared):
    import torch

    phantom, _, result = prepared
    checkpoint = train_scar_model(result, TrainingConfig(**TINY))
    state = torch.random.get_rng_state()
    first = predict_on_points(checkpoint, phantom.points_lps, mc_samples=3, seed=7)
    second = predict_on_points(checkpoint, phantom.points_lps, mc_samples=3, seed=7)
    other = predict_on_points(checkpoint, phantom.points_lps, mc_samples=3, seed=8)
    np.testing.assert_array_equal(first.mean_predictions, second.mean_predictions)
    assert not np.array_equal(first.mean_predictions, other.mean_predictions)
    assert torch.equal(state, torch.random.get_rng_state())
    # unseeded calls are independent draws (they used to repeat the forked global state's masks)
    unseeded = [predict_on_points(checkpoint, phantom.points_lps, mc_samples=3).mean_predictions for _ in range(2)]
    assert not np.array_equal(*unseeded)
    assert torch.equal(state, torch.random.get_rng_state())


def test_process_vtk_grid_data_on_a_one_row_2d_layer_takes_its_flat_axis_as_normal():
    """A 2D grid layer (no extent along its normal) of one row standing in the x-z plane: y is
    the normal, although z also has a single centre value."""
    from cardioscar.utilities import process_vtk_grid_data

    cells = np.array([[i * 2.0, (i + 1) * 2.0, 5.0, 5.0, 9.0, 11.0] for i in range(5)])
    nodes = np.array([[3.0, 5.3, 10.0], [3.0, 5.0, 11.5], [3.0, 5.6, 10.0]])
    rows = process_vtk_grid_data(nodes, [(cells, np.full(5, 0.5))], z_padding=0.5)
    assert [tuple(row[:3]) for row in rows] == [(3.0, 5.3, 10.0)]
