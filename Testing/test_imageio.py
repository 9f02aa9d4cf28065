"""Image reading through SimpleITK: real ACDC NIfTI, a real bivme DICOM series, and user errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.errors import CardioScarError
from cardioscar.io.imageio import image_summary, read_dicom_planes, read_image
from cardioscar.logic import PreprocessingRequest, prepare_training_data
from cardioscar.prepare.mapping import map_slices_to_nodes
from cardioscar.io.meshio import read_mesh
from cardioscar.prepare.slices import slices_from_image, slices_from_path, slices_from_paths
from conftest import BIVME, SHARED_DATA, bivme_dicom, bivme_dicom_with_thickness, write_dicom_series
from cardioscar.prepare.targets import slice_targets

ACDC_GT = SHARED_DATA / "acdc_patient101" / "patient101_frame01_gt.nii.gz"
#: The real short-axis planes of the bivme case, one file per series, about 17.7 mm apart.
SHORT_AXIS = ("Se11", "Se1", "Se2", "Se3", "Se4", "Se5")


def _as_one_series(series: tuple[str, ...], folder: Path) -> list[sitk.Image]:
    """The real short-axis files of ``series`` written into ``folder`` as one DICOM series (see
    :func:`conftest.write_dicom_series`); returns the originals."""
    originals = [sitk.ReadImage(str(bivme_dicom(name))) for name in series]
    write_dicom_series(originals, series, folder, "1.2.826.0.1.3680043.2.1125.77")
    return originals


def _original_at(originals: list[sitk.Image], origin: np.ndarray) -> sitk.Image:
    """The original file whose recorded position is ``origin`` (exactly one must match)."""
    matches = [image for image in originals if np.allclose(image.GetOrigin(), origin, atol=1e-6)]
    assert len(matches) == 1, origin
    return matches[0]


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


def test_real_short_axis_stack_reads_as_one_volume_with_every_slice_where_its_file_puts_it(tmp_path: Path) -> None:
    originals = _as_one_series(SHORT_AXIS, tmp_path)
    image = read_image(tmp_path)
    assert image.GetSize() == (256, 208, 6)
    volume = sitk.GetArrayFromImage(image)
    for k in range(6):
        original = _original_at(originals, np.asarray(image.TransformIndexToPhysicalPoint((0, 0, k))))
        np.testing.assert_array_equal(volume[k], sitk.GetArrayFromImage(original)[0])
    along_z = slices_from_path(tmp_path, half_thickness=3.0)
    for k, layer in enumerate(along_z):
        np.testing.assert_allclose(layer.origin, image.TransformIndexToPhysicalPoint((0, 0, k)), atol=0.01)


def test_repeated_slice_positions_are_reported(tmp_path: Path, caplog) -> None:
    """A series holding the same plane twice (a repeated breath-hold, or cine time frames) keeps
    both as slices of their own, and says so."""
    images = [sitk.ReadImage(str(bivme_dicom(name))) for name in ("Se1", "Se1", "Se3")]
    for index, image in enumerate(images):
        image.SetMetaData("0008|0018", f"1.2.826.0.1.3680043.2.1125.78.{index}")  # distinct instances
    write_dicom_series(images, ["0", "1", "2"], tmp_path, "1.2.826.0.1.3680043.2.1125.78")
    with caplog.at_level("WARNING", logger="cardioscar.io.imageio"):
        planes = read_dicom_planes(tmp_path)
    assert len(planes) == 3
    assert "1 file(s) of the DICOM series" in caplog.text and "repeat the position" in caplog.text


@pytest.mark.parametrize("series", [SHORT_AXIS, tuple(name for name in SHORT_AXIS if name != "Se2")],
                         ids=["even", "missing-slice"])
def test_a_psir_magnitude_and_phase_pair_is_judged_on_its_distinct_positions(tmp_path, caplog, series) -> None:
    """A PSIR series holding a magnitude and a phase image at each position (the real short-axis
    planes, the phase written as their negation) was also warned of as not evenly spaced: the
    spacing was judged on all files, the repeated positions read as gaps of zero. Now the distinct
    positions are judged: an even stack is warned of its repeats only, a stack missing a slice still
    of its gap, naming a file's index that lies at it."""
    originals = [sitk.ReadImage(str(bivme_dicom(name))) for name in series]
    images = []
    for index, (original, kind) in enumerate([(image, kind) for image in originals for kind in ("M", "P")]):
        image = sitk.Cast(original, sitk.sitkInt16) * (1 if kind == "M" else -1)
        for key in original.GetMetaDataKeys():
            image.SetMetaData(key, original.GetMetaData(key))
        image.SetMetaData("0008|0018", f"1.2.826.0.1.3680043.2.1125.79.{index}")  # an instance of its own
        image.SetMetaData("0008|0008", f"ORIGINAL\\PRIMARY\\{kind}\\NONE")
        images.append(image)
    write_dicom_series(images, [f"{index:02d}" for index in range(len(images))], tmp_path,
                       "1.2.826.0.1.3680043.2.1125.79")
    with caplog.at_level("WARNING", logger="cardioscar.io.imageio"):
        planes = read_dicom_planes(tmp_path)
    assert len(planes) == 2 * len(series)
    assert f"{len(series)} file(s) of the DICOM series" in caplog.text and "repeat the position" in caplog.text
    if series == SHORT_AXIS:
        assert "not evenly spaced" not in caplog.text
    else:
        [gap] = re.findall(r"not evenly spaced: slice k=(\d+) would sit 8\.8\d mm", caplog.text)
        assert _original_at(originals, np.asarray(planes[int(gap)].GetOrigin())) is originals[2]


def test_stack_missing_a_slice_keeps_each_slice_where_it_was_acquired(tmp_path: Path) -> None:
    """A clinical stack may miss a slice. Read as one volume, evenly stepped from the first file to
    the last, the middle slice would sit 8.8 mm (half a gap) from where it was acquired."""
    originals = _as_one_series(tuple(name for name in SHORT_AXIS if name != "Se2"), tmp_path)
    with pytest.raises(CardioScarError, match=r"not evenly spaced: slice k=2 would sit 8\.8\d mm"):
        read_image(tmp_path)
    with pytest.raises(CardioScarError, match="cut it along z"):
        slices_from_path(tmp_path, slice_axis="x")
    assert [plane.GetSize() for plane in read_dicom_planes(tmp_path)] == [(256, 208, 1)] * 5
    layers = slices_from_path(tmp_path, half_thickness=3.0)
    assert [layer.label for layer in layers] == [f"{tmp_path.name} k={k}" for k in range(5)]
    for layer in layers:
        original = _original_at(originals, layer.origin)
        np.testing.assert_array_equal(layer.values, sitk.GetArrayFromImage(original)[0])
        np.testing.assert_allclose(layer.normal, np.asarray(original.GetDirection()).reshape(3, 3)[:, 2], atol=1e-9)
    # Through the Python API, as the CLI's `prepare --image FOLDER` runs it: every mapped node of
    # the real fitted mesh lies within the 3 mm slab of the plane its group's file records.
    mesh_path = BIVME / "fitted_model_frame000" / "patient1_LV_ENDOCARDIAL_000.vtk"
    result = prepare_training_data(PreprocessingRequest(mesh_path=mesh_path, image_path=tmp_path,
                                                        slice_thickness_padding=3.0, normalize_intensities=True))
    assert set(result.group_slice.tolist()) == set(range(5))  # the mesh crosses every plane
    points = read_mesh(mesh_path).points_lps()
    group_of_row = np.repeat(np.arange(result.n_groups), result.group_sizes)
    for k, layer in enumerate(layers):
        rows = result.group_slice[group_of_row] == k
        original = _original_at(originals, layer.origin)
        normal = np.asarray(original.GetDirection()).reshape(3, 3)[:, 2]
        distance = (points[result.node_ids[rows]] - np.asarray(original.GetOrigin())) @ normal
        assert rows.any() and np.abs(distance).max() <= 3.0 + 1e-6

def test_folder_with_several_equal_series_is_an_error(tmp_path: Path) -> None:
    for series in ("Se1", "Se2"):
        for dicom in (BIVME / "dicom_ED" / series).iterdir():
            shutil.copy(dicom, tmp_path / dicom.name)
    with pytest.raises(CardioScarError, match=r"holds 2 series of 1 file\(s\) each; give each series a folder of its "
                                              r"own, or pass the files of the planes to use as images") as error:
        read_image(tmp_path)
    # the files it suggests are the two planes, each read where its file says
    suggested = str(error.value).split("--image ")[1].removesuffix(" ...)").split(" ")
    layers = slices_from_paths(suggested, half_thickness=3.0)
    assert sorted(Path(name).parent for name in suggested) == [tmp_path, tmp_path]
    assert sorted(np.round(layer.origin, 2).tolist() for layer in layers) == sorted(
        np.round(sitk.ReadImage(str(bivme_dicom(series))).GetOrigin(), 2).tolist() for series in ("Se1", "Se2"))


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
    with pytest.raises(CardioScarError, match="No DICOM series found.*give a DICOM series folder or an image file"):
        read_image(tmp_path / "empty")


def test_a_folder_of_series_folders_names_them() -> None:
    """The real biv-me export keeps every series in a folder of its own; given the parent folder,
    the error lists the series folders (in natural order) and says how to pass them."""
    parent = BIVME / "dicom_ED"
    with pytest.raises(CardioScarError) as error:
        read_image(parent)
    message = str(error.value)
    assert "\n" not in message
    assert "its 11 sub-folder(s) Se1, Se2, Se3, Se4, ... hold series" in message
    assert f"--image {parent / 'Se1'} {parent / 'Se2'} ..." in message


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


def test_the_same_plane_given_twice_is_reported(caplog) -> None:
    """Pooling images that hold the same plane weights its pixels double: say so (and go on)."""
    planes = [BIVME / "dicom_ED" / "Se3", BIVME / "dicom_ED" / "Se6", BIVME / "dicom_ED" / "Se3"]
    with caplog.at_level("WARNING", logger="cardioscar.prepare.slices"):
        layers = slices_from_paths(planes, half_thickness=3.0)
    assert len(layers) == 3
    repeated = [r.getMessage() for r in caplog.records if "same plane" in r.getMessage()]
    assert repeated == ["slices 'Se3 k=0' and 'Se3 k=0' are the same plane (the same image given twice, or a repeated "
                        "acquisition?): its pixels count twice"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="cardioscar.prepare.slices"):
        slices_from_paths(planes[:2], half_thickness=3.0)
    assert not [r for r in caplog.records if "same plane" in r.getMessage()]


def test_auto_slab_takes_each_dicom_files_recorded_thickness(tmp_path: Path, caplog) -> None:
    """``half_thickness="auto"``: half the SliceThickness each file records, file by file, in a
    series folder as well as across pooled images (a 6 mm short-axis series beside an 8 mm one),
    and the log says which half-width each image got (it was taken silently)."""
    eight = bivme_dicom_with_thickness("Se3", "8", tmp_path / "eight")
    with caplog.at_level("INFO", logger="cardioscar.prepare.slices"):
        layers = slices_from_paths([BIVME / "dicom_ED" / "Se1", eight, BIVME / "dicom_ED" / "Se6"],
                                   half_thickness="auto")
    assert [layer.half_thickness for layer in layers] == [3.0, 4.0, 3.0]
    said = [r.getMessage() for r in caplog.records if "slab half-width" in r.getMessage()]
    assert [message.split(" (")[0] for message in said] == ["Se1: slab half-width 3 mm", "Se3.dcm: slab half-width 4 mm",
                                                            "Se6: slab half-width 3 mm"]
    caplog.clear()
    with caplog.at_level("INFO", logger="cardioscar.prepare.slices"):
        slices_from_paths([BIVME / "dicom_ED" / "Se1"], half_thickness=5.0)
    assert not [r for r in caplog.records if "slab half-width" in r.getMessage()]  # a width given is not repeated
    stack = tmp_path / "stack"
    stack.mkdir()
    images = [sitk.ReadImage(str(bivme_dicom("Se1"))), sitk.ReadImage(str(eight))]
    write_dicom_series(images, ["Se1", "Se3"], stack, "1.2.826.0.1.3680043.2.1125.93")
    layers = slices_from_path(stack, half_thickness="auto")  # in order along the normal: Se3 (8 mm), then Se1
    assert [layer.half_thickness for layer in layers] == [4.0, 3.0]
    assert np.allclose(layers[0].origin, images[1].GetOrigin(), atol=1e-3)


def test_auto_slab_needs_a_recorded_thickness_along_z(tmp_path: Path) -> None:
    sitk.WriteImage(sitk.Image([4, 4, 3], sitk.sitkFloat32), str(tmp_path / "scar.nii.gz"))
    with pytest.raises(CardioScarError, match="^scar.nii.gz records no slice thickness .*give --slice-thickness-padding "
                                              "in mm instead of 'auto'$"):
        slices_from_path(tmp_path / "scar.nii.gz", half_thickness="auto")
    with pytest.raises(CardioScarError, match="^Se3.dcm records no slice thickness"):
        slices_from_path(bivme_dicom_with_thickness("Se3", "", tmp_path / "none"), half_thickness="auto")
    with pytest.raises(CardioScarError, match="auto takes each DICOM file's slice thickness, which is along z"):
        slices_from_path(BIVME / "dicom_ED" / "Se1", slice_axis="x", half_thickness="auto")
    with pytest.raises(CardioScarError, match="VTK grid layers record none"):
        PreprocessingRequest(mesh_path=tmp_path / "m.vtk", vtk_grid_paths=[tmp_path / "g.vtk"],
                             slice_thickness_padding="auto")
    with pytest.raises(CardioScarError, match="must be > 0 mm .* or 'auto'"):
        PreprocessingRequest(mesh_path=tmp_path / "m.vtk", image_path=tmp_path / "scar.nii.gz",
                             slice_thickness_padding="thin")


def test_why_not_one_volume_reads_the_files_in_any_order(tmp_path):
    """The Slicer module asks this of a volume node's files (listed in the DICOM database's order)."""
    from cardioscar.io.imageio import why_not_one_volume
    from conftest import bivme_dicom, write_dicom_series

    series = ("Se11", "Se1", "Se2", "Se3", "Se4", "Se5")
    write_dicom_series([sitk.ReadImage(str(bivme_dicom(name))) for name in series], series, tmp_path, "1.2.826.0.1.98")
    files = [tmp_path / f"{name}.dcm" for name in series]
    assert why_not_one_volume(files[::-1]) is None
    assert why_not_one_volume([files[4], files[0], files[5], files[1], files[3]]) == \
        "it is not evenly spaced: slice k=2 would sit 8.85 mm from its recorded position"


@pytest.mark.parametrize("name", ["lge.nii", "lge.nii.gz"])
def test_a_truncated_nifti_file_is_refused(tmp_path, name):
    """ITK reads a NIfTI file cut short (an interrupted copy) without an error and fills the
    missing voxels with zeros; it must be an error that says so."""
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((6, 40, 50)).astype(np.float32))
    whole = tmp_path / name
    sitk.WriteImage(image, str(whole))
    assert read_image(whole).GetSize() == (50, 40, 6)
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CardioScarError, match=f"Cannot read image {cut}: .*truncated"):
        read_image(cut)


def test_an_sform_with_unexpected_scales_is_one_logged_line_and_no_itk_text():
    """ACDC's sform is unit-scale over 1.64 x 1.64 x 10 mm voxels: ITK printed its multi-line
    "NiftiImageIO ... has unexpected scales in sform" WARNING on every read, the batch script
    five times per image (twice from SimpleITK, three times from the ITK that Slicer's storage
    nodes bundle, which SimpleITK's switch does not reach). Now one INFO line per file, saying
    which geometry was used, on the library's reads and on a Slicer storage node's alike; other
    text written to stderr meanwhile is kept."""
    import os
    import subprocess
    import sys

    from conftest import REPO_ROOT

    script = "\n".join([
        "import logging, os",
        "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')",
        "import CardioScarLogic as csl",
        "from cardioscar.io.imageio import itk_warnings_off, read_image",
        f"path = {str(ACDC_GT)!r}",
        "read_image(path)",
        "read_image(path)",
        "csl.load_volume(csl.create_scene().scene, path, labelmap=True)",
        "with itk_warnings_off():",
        "    os.write(2, b'other text\\n')",
    ])
    paths = os.pathsep.join(str(REPO_ROOT / folder) for folder in ("CardioScarLib", "CardioScar"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": paths})
    assert result.returncode == 0, result.stderr
    assert "NiftiImageIO" not in result.stderr and "WARNING: In" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert [line for line in lines if "sform" in line] == [
        "INFO Image patient101_frame01_gt.nii.gz: its NIfTI sform gives 1 x 1 x 1 mm voxels, pixdim 1.641 x "
        "1.641 x 10 mm; read with pixdim's voxel size and the sform's orientation and origin (as ITK and Slicer "
        "read it); a tool that takes the voxel size from the sform would see 1 x 1 x 1 mm voxels"], result.stderr
    assert "other text" in lines
