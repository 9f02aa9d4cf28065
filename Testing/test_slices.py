"""SliceLayer construction from real image files and VTK grid layer files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import numpy_to_vtk

from cardioscar.errors import CardioScarError
from cardioscar.io.imageio import read_image
from cardioscar.prepare.slices import SliceLayer, slice_from_vtk_grid, slice_to_vtk_grid, slices_from_image


def write_oblique_nifti(path: Path, size_ijk=(7, 6, 10), spacing=(1.2, 0.8, 6.0)) -> np.ndarray:
    """Write an oblique, anisotropic NIfTI with a distinct value per voxel; return its [k, j, i] array."""
    rng = np.random.default_rng(7)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    array = np.arange(np.prod(size_ijk[::-1]), dtype=np.float32).reshape(size_ijk[::-1])
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetDirection(q.reshape(-1).tolist())
    image.SetOrigin((12.5, -40.0, 88.0))
    sitk.WriteImage(image, str(path))
    return array


@pytest.fixture()
def oblique(tmp_path: Path) -> tuple[sitk.Image, np.ndarray]:
    path = tmp_path / "oblique.nii.gz"
    array = write_oblique_nifti(path)
    return read_image(path), array


@pytest.mark.parametrize("axis, index", [("z", 4), ("y", 2), ("x", 5)])
def test_slices_follow_axis_index_and_physical_points(oblique, axis: str, index: int) -> None:
    image, array = oblique
    (layer,) = slices_from_image(image, slice_axis=axis, slice_indices=[index], half_thickness=2.5, label="lge")
    expected = {"z": array[index], "y": array[:, index, :], "x": array[:, :, index]}[axis]
    np.testing.assert_array_equal(layer.values, expected)
    assert layer.label == f"lge {'ijk'['xyz'.index(axis)]}={index}"
    # Every pixel centre is the image's own physical point of that voxel (LPS).
    centres = layer.pixel_centres_lps()
    for row, col in [(0, 0), (expected.shape[0] - 1, expected.shape[1] - 1), (1, 2)]:
        ijk = {"z": (col, row, index), "y": (col, index, row), "x": (index, col, row)}[axis]
        np.testing.assert_allclose(centres[row, col], image.TransformIndexToPhysicalPoint(ijk), atol=1e-4)
    # The normal is perpendicular to the slice and the slab is what was asked for.
    assert abs(layer.normal @ layer.axis_i) < 1e-6 and abs(layer.normal @ layer.axis_j) < 1e-6
    assert layer.half_thickness == 2.5


def test_all_slices_by_default(oblique) -> None:
    image, _ = oblique
    layers = slices_from_image(image)
    assert [layer.label for layer in layers] == [f"image k={k}" for k in range(10)]
    assert np.isclose(np.linalg.norm(layers[1].origin - layers[0].origin), 6.0)


def test_out_of_range_index_names_valid_range(oblique) -> None:
    image, _ = oblique
    with pytest.raises(CardioScarError, match="slice index 12 is out of range for axis z: valid 0-9"):
        slices_from_image(image, slice_indices=[2, 12])
    with pytest.raises(CardioScarError, match="valid 0-6"):
        slices_from_image(image, slice_axis="x", slice_indices=[-1])
    with pytest.raises(CardioScarError, match="x, y or z"):
        slices_from_image(image, slice_axis="w")
    with pytest.raises(CardioScarError, match="given twice"):
        slices_from_image(image, slice_indices=[3, 3])


def test_half_thickness_must_be_positive(oblique) -> None:
    image, _ = oblique
    with pytest.raises(CardioScarError, match="> 0 mm"):
        slices_from_image(image, half_thickness=0.0)


def test_nan_in_image_is_an_error(tmp_path: Path) -> None:
    array = np.zeros((2, 3, 4), dtype=np.float32)
    array[1, 2, 3] = np.nan
    path = tmp_path / "nan.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    with pytest.raises(CardioScarError, match="k=1 contains NaN"):
        slices_from_image(read_image(path))


def oblique_layer(values: np.ndarray) -> SliceLayer:
    angle = 0.7
    axis_i = np.array([np.cos(angle), np.sin(angle), 0.3])
    axis_i /= np.linalg.norm(axis_i)
    axis_j = np.cross([0.2, -0.1, 1.0], axis_i)
    return SliceLayer(values=values, origin=np.array([-20.0, 35.5, 101.0]), axis_i=axis_i,
                      axis_j=axis_j / np.linalg.norm(axis_j), spacing=(1.5, 0.75), half_thickness=4.0,
                      label="layer")


@pytest.mark.parametrize("suffix", [".vtk", ".vti", ".vts", ".vtu"])
def test_grid_layer_round_trip(tmp_path: Path, suffix: str) -> None:
    layer = oblique_layer(np.random.default_rng(1).random((4, 5)))
    path = tmp_path / f"grid{suffix}"
    slice_to_vtk_grid(layer, path, scalar_field="Scar")
    back = slice_from_vtk_grid(path, scalar_field="Scar", half_thickness=4.0)
    np.testing.assert_allclose(back.values, layer.values)
    np.testing.assert_allclose(back.origin, layer.origin, atol=1e-6)
    np.testing.assert_allclose(back.axis_i, layer.axis_i, atol=1e-9)
    np.testing.assert_allclose(back.axis_j, layer.axis_j, atol=1e-9)
    np.testing.assert_allclose(back.spacing, layer.spacing)
    assert b"SPACE" in path.read_bytes()


@pytest.mark.parametrize("suffix", [".vtk", ".vtu"])
def test_grid_of_sheared_pixels_with_an_obtuse_angle_round_trips(tmp_path: Path, suffix: str) -> None:
    """Sheared pixels whose short diagonal is shorter than an edge: the diagonal is the offset that
    is the sum of the other two, not the longest one."""
    axis_j = np.array([-0.9, 0.45, 0.0])
    layer = SliceLayer(values=np.random.default_rng(2).random((3, 4)), origin=np.array([5.0, -3.0, 40.0]),
                       axis_i=np.array([1.0, 0.0, 0.0]), axis_j=axis_j / np.linalg.norm(axis_j), spacing=(1.0, 1.0),
                       half_thickness=4.0, label="sheared")
    path = tmp_path / f"sheared{suffix}"
    slice_to_vtk_grid(layer, path)
    back = slice_from_vtk_grid(path, half_thickness=4.0)
    np.testing.assert_allclose(back.pixel_centres_lps(), layer.pixel_centres_lps(), atol=1e-6)
    np.testing.assert_allclose(back.values, layer.values)


@pytest.mark.parametrize("suffix", [".vtk", ".vtu"])
def test_grid_holes_become_nan(tmp_path: Path, suffix: str) -> None:
    values = np.random.default_rng(2).random((4, 5))
    values[1, 3] = values[3, 0] = np.nan
    path = tmp_path / f"holes{suffix}"
    slice_to_vtk_grid(oblique_layer(values), path)
    back = slice_from_vtk_grid(path)
    np.testing.assert_array_equal(np.isnan(back.values), np.isnan(values))
    np.testing.assert_allclose(back.values[np.isfinite(values)], values[np.isfinite(values)])


def test_axis_aligned_legacy_structured_points(tmp_path: Path) -> None:
    """The reference tool's kind of grid: a 2D vtkImageData written as legacy STRUCTURED_POINTS."""
    image = vtk.vtkImageData()
    image.SetDimensions(4, 3, 1)  # 3 x 2 cells
    image.SetSpacing(2.0, 3.0, 1.0)
    image.SetOrigin(10.0, 20.0, -7.0)
    values = numpy_to_vtk(np.arange(6, dtype=np.float64) / 10, deep=1)
    values.SetName("ScalarValue")
    image.GetCellData().AddArray(values)
    writer = vtk.vtkStructuredPointsWriter()
    writer.SetInputData(image)
    writer.SetFileName(str(tmp_path / "sp.vtk"))
    writer.Write()
    layer = slice_from_vtk_grid(tmp_path / "sp.vtk", half_thickness=1.5)
    np.testing.assert_allclose(layer.values, np.arange(6).reshape(2, 3) / 10)
    np.testing.assert_allclose(layer.origin, [11.0, 21.5, -7.0])
    np.testing.assert_allclose(layer.axis_i, [1, 0, 0])
    np.testing.assert_allclose(layer.axis_j, [0, 1, 0])
    assert layer.spacing == (2.0, 3.0)


def test_grid_marked_ras_is_converted_to_lps(tmp_path: Path) -> None:
    layer = oblique_layer(np.ones((2, 3)) * 0.5)
    path = tmp_path / "ras.vts"
    slice_to_vtk_grid(layer, path)
    reader = vtk.vtkXMLStructuredGridReader()
    reader.SetFileName(str(path))
    reader.Update()
    grid = reader.GetOutput()
    marker = grid.GetFieldData().GetAbstractArray("SPACE")
    marker.SetValue(0, "RAS")
    writer = vtk.vtkXMLStructuredGridWriter()
    writer.SetInputData(grid)
    writer.SetFileName(str(tmp_path / "ras_marked.vts"))
    writer.Write()
    back = slice_from_vtk_grid(tmp_path / "ras_marked.vts")
    np.testing.assert_allclose(back.origin, layer.origin * [-1, -1, 1], atol=1e-6)


def _write_with_field(dataset: vtk.vtkDataSet, cell_values: np.ndarray, writer: vtk.vtkXMLWriter, path: Path) -> None:
    """Give ``dataset`` a ScalarValue cell field holding ``cell_values`` and write it with ``writer``."""
    values = numpy_to_vtk(np.ascontiguousarray(cell_values, dtype=float), deep=1)
    values.SetName("ScalarValue")
    dataset.GetCellData().AddArray(values)
    writer.SetInputData(dataset)
    writer.SetFileName(str(path))
    writer.Write()


def test_non_planar_grid_is_rejected(tmp_path: Path) -> None:
    grid = vtk.vtkStructuredGrid()
    grid.SetDimensions(3, 3, 1)
    points = vtk.vtkPoints()
    for j in range(3):
        for i in range(3):
            points.InsertNextPoint(i, j, 0.5 if (i, j) == (2, 2) else 0.0)
    grid.SetPoints(points)
    _write_with_field(grid, np.zeros(4), vtk.vtkXMLStructuredGridWriter(), tmp_path / "bent.vts")
    with pytest.raises(CardioScarError, match="not planar"):
        slice_from_vtk_grid(tmp_path / "bent.vts")


def test_missing_or_point_field_lists_fields(tmp_path: Path) -> None:
    layer = oblique_layer(np.zeros((2, 2)))
    path = tmp_path / "g.vti"
    slice_to_vtk_grid(layer, path, scalar_field="Other")
    with pytest.raises(CardioScarError, match="no cell field 'ScalarValue'; cell fields: Other; point fields: none"):
        slice_from_vtk_grid(path)
    with pytest.raises(CardioScarError, match="File not found"):
        slice_from_vtk_grid(tmp_path / "absent.vtk")


def test_three_d_grid_is_rejected(tmp_path: Path) -> None:
    image = vtk.vtkImageData()
    image.SetDimensions(3, 3, 3)
    _write_with_field(image, np.zeros(8), vtk.vtkXMLImageDataWriter(), tmp_path / "cube.vti")
    with pytest.raises(CardioScarError, match="2D grid of quad/pixel cells"):
        slice_from_vtk_grid(tmp_path / "cube.vti")


def test_polydata_quads_in_any_order_and_rectilinear_grid(tmp_path: Path) -> None:
    values = np.random.default_rng(3).random((3, 4))
    layer = oblique_layer(values)
    slice_to_vtk_grid(layer, tmp_path / "quads.vtu")
    reader = vtk.vtkXMLUnstructuredGridReader()
    reader.SetFileName(str(tmp_path / "quads.vtu"))
    reader.Update()
    grid = reader.GetOutput()
    order = np.random.default_rng(0).permutation(grid.GetNumberOfCells())
    poly = vtk.vtkPolyData()
    poly.SetPoints(grid.GetPoints())
    polys = vtk.vtkCellArray()
    for cell in order:
        ids = grid.GetCell(int(cell)).GetPointIds()
        polys.InsertNextCell(4, [ids.GetId(k) for k in range(4)])
    poly.SetPolys(polys)
    _write_with_field(poly, values.reshape(-1)[order], vtk.vtkXMLPolyDataWriter(), tmp_path / "shuffled.vtp")
    back = slice_from_vtk_grid(tmp_path / "shuffled.vtp")
    centres = {tuple(np.round(c, 6)): v for c, v in zip(layer.pixel_centres_lps().reshape(-1, 3), values.reshape(-1))}
    got = {tuple(np.round(c, 6)): v for c, v in zip(back.pixel_centres_lps().reshape(-1, 3), back.values.reshape(-1))}
    assert got.keys() == centres.keys()  # same pixels in space, whichever cell came first
    assert all(got[key] == centres[key] for key in centres)

    rect = vtk.vtkRectilinearGrid()
    rect.SetDimensions(3, 1, 4)  # an x-z plane
    rect.SetXCoordinates(numpy_to_vtk(np.array([0.0, 2.0, 4.0]), deep=1))
    rect.SetYCoordinates(numpy_to_vtk(np.array([5.0]), deep=1))
    rect.SetZCoordinates(numpy_to_vtk(np.array([1.0, 2.0, 3.0, 4.0]), deep=1))
    _write_with_field(rect, np.arange(6, dtype=float) / 6, vtk.vtkXMLRectilinearGridWriter(), tmp_path / "rect.vtr")
    plane = slice_from_vtk_grid(tmp_path / "rect.vtr")
    np.testing.assert_allclose(np.abs(plane.normal), [0, 1, 0], atol=1e-12)
    assert sorted(plane.spacing) == [1.0, 2.0]
    assert plane.values.size == 6 and np.isfinite(plane.values).all()
    np.testing.assert_allclose(plane.pixel_centres_lps()[..., 1], 5.0)


def test_irregular_lattice_is_rejected(tmp_path: Path) -> None:
    rect = vtk.vtkRectilinearGrid()
    rect.SetDimensions(4, 2, 1)
    rect.SetXCoordinates(numpy_to_vtk(np.array([0.0, 1.0, 2.0, 4.0]), deep=1))  # last cell twice as wide
    rect.SetYCoordinates(numpy_to_vtk(np.array([0.0, 1.0]), deep=1))
    rect.SetZCoordinates(numpy_to_vtk(np.array([0.0]), deep=1))
    cell_values = numpy_to_vtk(np.zeros(3), deep=1)
    cell_values.SetName("ScalarValue")
    rect.GetCellData().AddArray(cell_values)
    writer = vtk.vtkXMLRectilinearGridWriter()
    writer.SetInputData(rect)
    writer.SetFileName(str(tmp_path / "uneven.vtr"))
    writer.Write()
    with pytest.raises(CardioScarError, match="regular lattice"):
        slice_from_vtk_grid(tmp_path / "uneven.vtr")
