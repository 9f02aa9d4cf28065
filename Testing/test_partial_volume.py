"""Partial-volume correction on the real phantom files (mesh, LGE stack) and through the CLI.

The phantom is acquired twice with the same seed and geometry: "volume" (each pixel = mean of
scar x myocardium over its whole box, as a scanner sees it) and "myocardium" (mean over the
myocardial part only, what the group loss assumes). Correcting the first must give the second.
"""

from __future__ import annotations

import numpy as np
import pytest

from cardioscar.prepare import partial_volume as pv
from cardioscar.errors import CardioScarError
from cardioscar.logic import PreprocessingRequest, prepare_from_slices, prepare_training_data
from cardioscar.prepare.mapping import map_slices_to_nodes
from cardioscar.io.meshio import read_mesh
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom
from cardioscar.prepare.slices import slices_from_image
from conftest import run_cli_in_process


@pytest.fixture(scope="module")
def volume_case(small_phantom):
    """The shared phantom (seed 3, 8000 nodes, partial_volume="volume") read back from its files."""
    phantom, paths = small_phantom
    mesh = read_mesh(paths["mesh"])
    slices = slices_from_image(phantom.image, half_thickness=phantom.slice_half_thickness_mm, label="volume")
    mapping = map_slices_to_nodes(mesh.points_lps(), slices)
    coverage = pv.myocardial_coverage(mesh.dataset, slices, mapping.group_slice, mapping.group_pixel, space=mesh.space)
    return phantom, paths, mesh, slices, mapping, coverage


def test_coverage_matches_analytic_myocardium_fraction(volume_case):
    phantom, _, _, slices, mapping, coverage = volume_case
    assert coverage.shape == (mapping.n_groups,)
    assert np.all((coverage >= 0) & (coverage <= 1))
    # Boxes cut by the endo- or epicardium (the ones the correction is for), checked against the
    # analytic wall on an independent 12 x 12 x 64 grid (13x the samples of the estimate).
    rng = np.random.default_rng(0)
    border = np.flatnonzero((coverage > 0.05) & (coverage < 0.95))
    assert border.size > 100
    errors = []
    for g in rng.choice(border, 30, replace=False):
        layer = slices[mapping.group_slice[g]]
        i, j = mapping.group_pixel[g]
        u = (np.arange(12) + 0.5) / 12 - 0.5
        d = ((np.arange(64) + 0.5) / 64 - 0.5) * 2 * layer.half_thickness
        ii, jj, dd = (a.ravel() for a in np.meshgrid(i + u, j + u, d, indexing="ij"))
        lps = np.column_stack([ii, jj, dd]) @ layer.index_to_lps()[:3, :3].T + layer.origin
        exact = phantom.geometry.myocardium_local(phantom.geometry.to_local(lps)).mean()
        errors.append(coverage[g] - exact)
    errors = np.abs(errors)
    # Error sources: the 3 x 3 x 8 midpoint grid of the estimate (a wall surface crossing a box
    # moves phi by at most half a sample layer, and oblique crossings average out) and the tet
    # facets of the 8000-node mesh. Measured: mean 0.012, max 0.03; a wrong frame, half a slab or
    # pixel units for mm along the normal give errors of 0.2 and more.
    assert errors.mean() < 0.03, errors
    assert errors.max() < 0.08, errors


def test_corrected_targets_match_myocardium_acquisition(volume_case):
    phantom, _, mesh, _, mapping, coverage = volume_case
    reference = make_phantom(PhantomConfig(target_nodes=8000, seed=3, partial_volume="myocardium"))
    ref_slices = slices_from_image(reference.image, half_thickness=reference.slice_half_thickness_mm)
    ref_mapping = map_slices_to_nodes(reference.points_lps, ref_slices)
    np.testing.assert_array_equal(ref_mapping.group_pixel, mapping.group_pixel)  # same geometry, same groups

    corrected, kept_coverage = pv.correct_targets(mapping, coverage)
    keep = coverage >= pv.DEFAULT_MIN_COVERAGE
    assert 0 < (~keep).sum() < 0.2 * mapping.n_groups
    # Dropped groups leave consistently: contiguous ids, their rows gone, the others' rows intact.
    assert corrected.n_groups == keep.sum()
    np.testing.assert_array_equal(np.unique(corrected.group_ids), np.arange(corrected.n_groups))
    np.testing.assert_array_equal(corrected.group_sizes, mapping.group_sizes[keep])
    np.testing.assert_array_equal(corrected.node_ids, mapping.node_ids[keep[mapping.group_ids]])
    np.testing.assert_array_equal(corrected.group_pixel, mapping.group_pixel[keep])
    np.testing.assert_array_equal(kept_coverage, coverage[keep])

    truth = ref_mapping.group_values[keep]
    raw = mapping.group_values[keep]
    scarred = truth > 0.05
    assert scarred.sum() > 100
    err_corrected = np.abs(corrected.group_values - truth)[scarred]
    err_raw = np.abs(raw - truth)[scarred]
    assert np.median(err_corrected) < 0.01, np.median(err_corrected)
    assert np.median(err_corrected) < 0.5 * np.median(err_raw)
    assert err_corrected.mean() < 0.25 * err_raw.mean(), (err_corrected.mean(), err_raw.mean())
    assert np.all((corrected.group_values >= 0) & (corrected.group_values <= 1))

    # The in-memory orchestrator applies the same correction.
    result = prepare_from_slices(mesh.points_lps(), slices_from_image(phantom.image, half_thickness=phantom.slice_half_thickness_mm),
                                 coverage_mesh=mesh)
    assert result.partial_volume_correction and result.n_groups == corrected.n_groups
    np.testing.assert_allclose(result.intensities[:, 0], corrected.row_values.astype(np.float32))
    np.testing.assert_allclose(result.group_coverage, kept_coverage)


def test_surface_mesh_is_refused(small_phantom):
    phantom, paths = small_phantom
    slices = slices_from_image(phantom.image, half_thickness=phantom.slice_half_thickness_mm)
    surface = read_mesh(paths["surface"])
    with pytest.raises(CardioScarError, match="needs a volumetric mesh") as info:
        prepare_from_slices(surface.points_lps(), slices, coverage_mesh=surface)
    assert "\n" not in str(info.value)
    request = PreprocessingRequest(mesh_path=paths["surface"], image_path=paths["image"],
                                   slice_thickness_padding=4.0, partial_volume_correction=True)
    with pytest.raises(CardioScarError, match=r"\.vtu"):
        prepare_training_data(request)


def test_cli_flag_end_to_end(small_phantom, tmp_path):
    _, paths = small_phantom
    common = ["prepare", "--mesh", paths["mesh"], "--image", paths["image"], "--slice-thickness-padding", "4"]
    plain = run_cli_in_process(*common, "--output", tmp_path / "plain.npz")
    corrected = run_cli_in_process(*common, "--partial-volume-correction", "--output", tmp_path / "pv.npz")
    assert plain.returncode == 0 and corrected.returncode == 0, plain.stderr + corrected.stderr
    with np.load(tmp_path / "plain.npz") as a, np.load(tmp_path / "pv.npz") as b:
        assert not bool(a["partial_volume_correction"]) and a["group_coverage"].size == 0
        assert bool(b["partial_volume_correction"])
        coverage = b["group_coverage"]
        assert coverage.shape == b["group_sizes"].shape
        assert coverage.min() >= pv.DEFAULT_MIN_COVERAGE and coverage.max() <= 1.0
        assert b["group_sizes"].size < a["group_sizes"].size
        assert b["group_sizes"].sum() == b["group_ids"].size
        # Division by a coverage <= 1 only raises targets: the mean rises on the kept groups.
        assert b["intensities"].mean() > a["intensities"].mean()

    refused = run_cli_in_process(*common[:2], paths["surface"], *common[3:], "--partial-volume-correction",
                                 "--output", tmp_path / "surface.npz")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "volumetric mesh" in refused.stderr
    assert not (tmp_path / "surface.npz").exists()


def test_corrected_slices_carry_the_training_targets(small_phantom):
    """The baselines can see exactly the corrected targets the network trains on."""
    from cardioscar.logic import prepare_from_slices
    from cardioscar.io.meshio import read_mesh
    from cardioscar.prepare.partial_volume import corrected_slices
    from cardioscar.prepare.slices import slices_from_image

    phantom, paths = small_phantom
    mesh = read_mesh(paths["mesh"])
    slices = slices_from_image(phantom.image, half_thickness=phantom.slice_half_thickness_mm)
    result = prepare_from_slices(mesh.points_lps(), slices, coverage_mesh=mesh)
    targets = result.group_targets
    fixed = corrected_slices(slices, result.group_slice, result.group_pixel, targets)
    read_back = np.array([fixed[s].values[j, i] for s, (i, j) in zip(result.group_slice, result.group_pixel)])
    np.testing.assert_allclose(read_back, targets, rtol=1e-6)
    assert np.mean(read_back) > np.mean([slices[s].values[j, i] for s, (i, j) in zip(result.group_slice, result.group_pixel)])
