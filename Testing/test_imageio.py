"""Image reading through SimpleITK: real ACDC NIfTI, a real bivme DICOM series, and user errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.errors import CardioScarError
from cardioscar.imageio import image_summary, read_image
from cardioscar.mapping import map_slices_to_nodes
from cardioscar.meshio import read_mesh
from cardioscar.slices import slices_from_image
from cardioscar.targets import slice_targets

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
ACDC_GT = DATA / "acdc_patient101" / "patient101_frame01_gt.nii.gz"
BIVME = DATA / "bivme_patient1"


def test_acdc_label_map_geometry_and_targets() -> None:
    image = read_image(ACDC_GT)
    assert image.GetSize() == (232, 256, 10)
    np.testing.assert_allclose(image.GetSpacing(), (1.640625, 1.640625, 10.0), atol=1e-4)  # pixdim, not sform
    layers = slices_from_image(image, slice_indices=[4, 5], half_thickness=5.0, label=ACDC_GT.name)
    assert layers[0].shape == (256, 232)
    np.testing.assert_allclose(layers[1].origin - layers[0].origin, image.TransformIndexToPhysicalPoint((0, 0, 1)),
                               atol=1e-4)
    myocardium = slice_targets(layers, scar_labels=[2])
    labels = sitk.GetArrayFromImage(image)
    np.testing.assert_array_equal(myocardium[0].values, (labels[4] == 2).astype(float))
    assert 0 < myocardium[0].values.sum() < myocardium[0].values.size
    with pytest.raises(CardioScarError, match="--scar-labels"):
        slice_targets(layers)  # labels 0..3 are not targets in [0, 1]


def test_bivme_single_dicom_slice_is_a_3d_oblique_volume_that_maps_the_fitted_mesh() -> None:
    image = read_image(BIVME / "dicom_ED" / "Se1")
    assert image.GetDimension() == 3 and image.GetSize() == (256, 208, 1)
    np.testing.assert_allclose(image.GetSpacing()[:2], (1.40625, 1.40625))
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    assert np.abs(direction - np.eye(3)).max() > 0.3  # a real oblique plane
    (layer,) = slices_from_image(image, half_thickness=3.0, label="Se1")
    np.testing.assert_allclose(layer.origin, image.GetOrigin())
    mesh = read_mesh(BIVME / "fitted_model_frame000" / "patient1_LV_ENDOCARDIAL_000.vtk")
    mapping = map_slices_to_nodes(mesh.points_lps(), [layer])
    assert mapping.n_groups > 10
    # Every mapped node is within the 3 mm slab of the DICOM plane.
    distance = (mesh.points_lps()[mapping.node_ids] - layer.origin) @ layer.normal
    assert np.abs(distance).max() <= 3.0
    # The contour points drawn on this image (guidepoints, frameID 2 = Se1) lie on our plane, inside
    # the image; contours of the neighbouring short-axis slice (frameID 1) are ~17.7 mm off it.
    table = np.genfromtxt(BIVME / "guidepoints" / "GPFile_000.txt", delimiter="\t", skip_header=1,
                          usecols=(0, 1, 2, 4))
    on_plane = layer.lps_to_index(table[table[:, 3] == 2, :3])
    assert len(on_plane) > 20 and np.abs(on_plane[:, 2]).max() < 0.5
    assert (on_plane[:, 0] > 0).all() and (on_plane[:, 0] < 255).all()
    assert (on_plane[:, 1] > 0).all() and (on_plane[:, 1] < 207).all()
    neighbour = layer.lps_to_index(table[table[:, 3] == 1, :3])
    np.testing.assert_allclose(np.abs(neighbour[:, 2]), 17.7, atol=1.0)


def test_folder_with_several_equal_series_is_an_error(tmp_path: Path) -> None:
    for series in ("Se1", "Se2"):
        for dicom in (BIVME / "dicom_ED" / series).iterdir():
            shutil.copy(dicom, tmp_path / dicom.name)
    with pytest.raises(CardioScarError, match="holds 2 series of equal size"):
        read_image(tmp_path)


def test_folder_picks_the_largest_series(tmp_path: Path) -> None:
    volume = sitk.GetImageFromArray(np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for series_uid, count in (("1.2.826.0.1.3680043.2.1125.1", 3), ("1.2.826.0.1.3680043.2.1125.2", 1)):
        for k in range(count):
            plane = volume[:, :, k]
            plane.SetMetaData("0020|000e", series_uid)
            plane.SetMetaData("0020|000d", "1.2.826.0.1.3680043.2.1125.9")
            plane.SetMetaData("0020|0032", f"0\\0\\{k * 2.0}")
            plane.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
            plane.SetMetaData("0020|0013", str(k))
            plane.SetMetaData("0008|0018", f"{series_uid}.{k}")
            writer.SetFileName(str(tmp_path / f"{series_uid[-1]}_{k}.dcm"))
            writer.Execute(plane)
    image = read_image(tmp_path)
    assert image.GetSize() == (5, 4, 3)


def test_user_errors(tmp_path: Path) -> None:
    with pytest.raises(CardioScarError, match="Image not found"):
        read_image(tmp_path / "absent.nii.gz")
    (tmp_path / "broken.nii.gz").write_bytes(b"this is not an image" * 10)
    with pytest.raises(CardioScarError, match="Cannot read image .*broken.nii.gz"):
        read_image(tmp_path / "broken.nii.gz")
    sitk.WriteImage(sitk.Image(8, 9, sitk.sitkFloat32), str(tmp_path / "flat.nrrd"))
    with pytest.raises(CardioScarError, match="must be a 3D volume with N slices"):
        read_image(tmp_path / "flat.nrrd")
    sitk.WriteImage(sitk.Image([4, 4, 3], sitk.sitkVectorFloat32, 3), str(tmp_path / "vector.mha"))
    with pytest.raises(CardioScarError, match="3 components"):
        read_image(tmp_path / "vector.mha")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CardioScarError, match="No DICOM series found"):
        read_image(tmp_path / "empty")


def test_image_summary_reports_lps_bounds() -> None:
    image = sitk.Image([10, 20, 5], sitk.sitkUInt8)
    image.SetSpacing((2.0, 1.0, 3.0))
    image.SetOrigin((-5.0, 0.0, 10.0))
    text = image_summary(image)
    assert "size (10, 20, 5)" in text
    assert "LPS bounds [-6.0..14.0, -0.5..19.5, 8.5..23.5]" in text


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_every_format_keeps_the_oblique_geometry(tmp_path, suffix):
    """NIfTI, NRRD and MHA all come back with the same voxels, origin, spacing and direction."""
    angle = 0.5
    direction = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((4, 5, 6)).astype(np.float32))
    image.SetSpacing((1.25, 1.5, 8.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    image.SetDirection(direction.ravel().tolist())
    path = tmp_path / f"lge{suffix}"
    sitk.WriteImage(image, str(path))
    read = read_image(path)
    np.testing.assert_allclose(read.GetDirection(), direction.ravel(), atol=1e-6)
    np.testing.assert_allclose(read.GetSpacing(), (1.25, 1.5, 8.0), atol=1e-6)
    np.testing.assert_allclose(read.GetOrigin(), (10.0, -20.0, 30.0), atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(image))
