"""The segmented phantom family (issue 18): its pixels, labels, mesh and truth hold what it claims.

Every figure is recomputed here by other means than the phantom's own code paths: footprints
from SimpleITK's index-to-physical transform sampled on a finer grid, wall distances from densely
sampled ellipsoid surfaces, cell volumes from VTK's mesh-quality filter.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from scipy.spatial import cKDTree
from vtk.util import numpy_support

from cardioscar.cli import main as cli_main
from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import read_mesh
from cardioscar.phantoms.phantom import make_phantom
from cardioscar.phantoms.phantom_segmented import BLOOD, MYOCARDIUM, SCAR, SegmentedConfig

NODES = 4000


@pytest.fixture(scope="module")
def tet():
    return make_phantom(SegmentedConfig(seed=1, target_nodes=NODES, mesh_type="tet"))


@pytest.fixture(scope="module")
def hexa():
    return make_phantom(SegmentedConfig(seed=1, target_nodes=NODES, mesh_type="hex"))


def _footprint_fraction(phantom, k: int, j: int, i: int, per_side: int = 5, layers: int = 24) -> tuple[float, float]:
    """(myocardial fraction, mean scar fraction over the myocardium) of pixel (i, j) of slice k,
    from a finer midpoint grid than the phantom's, placed with SimpleITK's own transform."""
    image, cfg = phantom.image, phantom.config
    offsets = (np.arange(per_side) + 0.5) / per_side - 0.5
    normal = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    depths = ((np.arange(layers) + 0.5) / layers - 0.5) * cfg.slab_mm
    points = []
    for di in offsets:
        for dj in offsets:
            centre = np.array(image.TransformContinuousIndexToPhysicalPoint((i + di, j + dj, float(k))))
            points.extend(centre + d * normal for d in depths)
    local = phantom.geometry.to_local(np.array(points))
    inside = phantom.geometry.myocardium_local(local)
    if not inside.any():
        return 0.0, 0.0
    return float(inside.mean()), float(phantom.scar_field(local[inside]).mean())


def test_pixels_are_the_scar_fraction_within_the_myocardium(tet):
    values = sitk.GetArrayFromImage(tet.image)
    mask = sitk.GetArrayFromImage(tet.myocardium_image).astype(bool)
    assert values[~mask].max() == 0.0 and values[mask].max() > 0.8
    rng = np.random.default_rng(0)
    scar_pixels = np.argwhere(mask & (values > 0.2))
    checked = 0
    for k, j, i in np.concatenate([scar_pixels[rng.choice(len(scar_pixels), 25, replace=False)],
                                   np.argwhere(mask)[rng.choice(mask.sum(), 15, replace=False)]]):
        myo, scar = _footprint_fraction(tet, k, j, i)
        if abs(myo - 0.5) > 0.15:   # clear of the mask threshold at both sample resolutions
            assert myo >= 0.5
            assert values[k, j, i] == pytest.approx(scar, abs=0.06)
            checked += 1
    assert checked >= 25
    # Pixels outside the mask with clearly little myocardium hold 0 (not their scar).
    outside = np.argwhere(~mask & (sitk.GetArrayFromImage(tet.label_image) == BLOOD))
    for k, j, i in outside[rng.choice(len(outside), 10, replace=False)]:
        assert _footprint_fraction(tet, k, j, i)[0] < 0.65


def test_label_map_agrees_with_the_fraction_map(tet):
    values = sitk.GetArrayFromImage(tet.image)
    mask = sitk.GetArrayFromImage(tet.myocardium_image).astype(bool)
    labels = sitk.GetArrayFromImage(tet.label_image)
    assert set(np.unique(labels)) == {0, BLOOD, MYOCARDIUM, SCAR}
    np.testing.assert_array_equal(np.isin(labels, (MYOCARDIUM, SCAR)), mask)
    np.testing.assert_array_equal(labels == SCAR, mask & (values >= 0.5))
    # Blood-pool labels sit inside the cavity ellipsoid (pixel centres, LV frame).
    centres = np.array([tet.image.TransformIndexToPhysicalPoint(tuple(int(v) for v in idx[::-1]))
                        for idx in np.argwhere(labels == BLOOD)])
    local = tet.geometry.to_local(centres)
    g = tet.geometry
    in_cavity = (local[:, 0] ** 2 + local[:, 1] ** 2) / g.a_endo**2 + local[:, 2] ** 2 / g.c_endo**2 < 1.05
    assert in_cavity.mean() > 0.95
    for image in (tet.image, tet.myocardium_image, tet.label_image):
        assert image.GetSpacing() == tet.image.GetSpacing() and image.GetDirection() == tet.image.GetDirection()


def _ellipsoid_points(a: float, c: float, step: float = 0.25) -> np.ndarray:
    u = np.linspace(0, np.pi / 2, int(np.pi / 2 * c / step))
    pts = []
    for uu in u:
        n = max(8, int(2 * np.pi * a * np.sin(uu) / step))
        th = np.linspace(0, 2 * np.pi, n, endpoint=False)
        pts.append(np.stack([a * np.sin(uu) * np.cos(th), a * np.sin(uu) * np.sin(th), np.full(n, -c * np.cos(uu))], 1))
    return np.concatenate(pts)


@pytest.mark.parametrize("which", ["tet", "hexa"])
def test_mesh_wall_is_within_one_pixel_of_the_segmentation_but_not_on_it(which, request):
    phantom = request.getfixturevalue(which)
    g, bound = phantom.geometry, phantom.config.wall_offset_mm
    assert bound == phantom.config.pixel_mm
    surface = numpy_support.vtk_to_numpy(phantom.surface.GetPoints().GetData())
    local = g.to_local(surface)
    local = local[local[:, 2] < -1.0]                      # leave out the base plane
    endo = cKDTree(_ellipsoid_points(g.a_endo, g.c_endo)).query(local)[0]
    epi = cKDTree(_ellipsoid_points(g.a_epi, g.c_epi)).query(local)[0]
    distance = np.minimum(endo, epi)
    assert distance.max() <= bound + 0.2
    assert distance.max() >= 0.6 * bound                   # the mesh is not the image's wall
    assert np.median(distance) > 0.1 * bound


def test_two_infarcts_with_their_stated_peaks(tet):
    meta = tet.metadata
    peaks = [inf["peak_fraction"] for inf in meta["infarcts"]]
    assert len(peaks) == 2 and peaks[0] == 1.0 and 0.55 <= peaks[1] <= 0.7
    g, local = tet.geometry, tet.geometry.to_local(tet.points_lps)
    for inf, peak in zip(meta["infarcts"], peaks):
        centre = g.wall_to_local(np.array([0.5]), np.array([inf["u"]]), np.array([inf["theta"]]))[0]
        near = np.linalg.norm(local - centre, axis=1) < 0.5 * inf["radius_mm"]
        assert near.sum() > 5
        assert tet.truth_fraction[near].max() <= peak + 1e-9
        assert tet.truth_fraction[near].max() >= (peak - 0.05 if peak < 1 else 1 - tet.config.patchiness)
        assert tet.truth[near].sum() > 0                    # each infarct has binary scar
    np.testing.assert_array_equal(tet.truth, (tet.truth_fraction >= 0.5).astype(float))
    np.testing.assert_allclose(tet.truth_fraction, tet.scar_field(local))


def _cell_volumes(grid: vtk.vtkUnstructuredGrid) -> tuple[np.ndarray, np.ndarray]:
    quality = vtk.vtkMeshQuality()
    quality.SetInputData(grid)
    quality.SetTetQualityMeasureToVolume()
    quality.SetHexQualityMeasureToVolume()
    quality.SetWedgeQualityMeasureToVolume()
    quality.Update()
    volumes = numpy_support.vtk_to_numpy(quality.GetOutput().GetCellData().GetArray("Quality"))
    types = np.array([grid.GetCellType(c) for c in range(grid.GetNumberOfCells())])
    return volumes, types


def test_tet_and_hex_meshes_are_valid(tet, hexa):
    volumes, types = _cell_volumes(tet.mesh)
    assert set(types) == {vtk.VTK_TETRA} and volumes.min() > 0
    volumes_hex, types_hex = _cell_volumes(hexa.mesh)
    assert set(types_hex) == {vtk.VTK_HEXAHEDRON, vtk.VTK_WEDGE} and volumes_hex.min() > 0
    assert (types_hex == vtk.VTK_HEXAHEDRON).mean() > 0.9
    # Same nodes, so both fill the same wall: equal total volume.
    assert volumes_hex.sum() == pytest.approx(volumes.sum(), rel=0.01)
    np.testing.assert_array_equal(tet.points_lps, hexa.points_lps)


def test_drawn_from_the_seed():
    a = make_phantom(SegmentedConfig(seed=4, target_nodes=2000))
    b = make_phantom(SegmentedConfig(seed=4, target_nodes=2000))
    c = make_phantom(SegmentedConfig(seed=5, target_nodes=2000))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a.image), sitk.GetArrayFromImage(b.image))
    np.testing.assert_array_equal(a.points_lps, b.points_lps)
    np.testing.assert_array_equal(a.truth_fraction, b.truth_fraction)
    assert a.config != c.config
    for cfg in (a.config, c.config):
        assert 1.25 <= cfg.pixel_mm <= 2.0 and 8.0 <= cfg.slice_gap_mm <= 13.0 and 6.0 <= cfg.slab_mm <= min(10.0, cfg.slice_gap_mm)
    assert not np.array_equal(a.points_lps[:50], c.points_lps[:50])


def test_written_files_and_the_command_line(tmp_path):
    assert 0 == cli_main(["phantom", "--family", "segmented", "--mesh-type", "hex", "--nodes", "2000", "--seed", "2",
              "--output-dir", str(tmp_path)])
    meta = json.loads((tmp_path / "phantom.json").read_text(encoding="utf-8"))
    assert meta["family"] == "segmented" and meta["config"]["mesh_type"] == "hex"
    mesh = read_mesh(tmp_path / "phantom_mesh.vtk")
    truth, fraction = mesh.point_array("scar_truth"), mesh.point_array("scar_fraction_truth")
    np.testing.assert_array_equal(truth, fraction >= 0.5)
    labels = sitk.ReadImage(str(tmp_path / meta["files"]["label_map"]))
    mask = sitk.ReadImage(str(tmp_path / meta["files"]["myocardium_mask"]))
    np.testing.assert_array_equal(np.isin(sitk.GetArrayFromImage(labels), (2, 3)), sitk.GetArrayFromImage(mask) == 1)


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(CardioScarError, match="mesh_type"):
        make_phantom(SegmentedConfig(mesh_type="voxel"))
    with pytest.raises(CardioScarError, match="faint_peak_range"):
        make_phantom(SegmentedConfig(faint_peak_range=(0.4, 0.9)))
    assert cli_main(["phantom", "--family", "segmented", "--long-axis", "--output-dir", str(tmp_path / "x")]) != 0
    assert "--long-axis" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
