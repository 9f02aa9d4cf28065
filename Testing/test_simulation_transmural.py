"""The fibre rule's Laplace transmural coordinate (cardioscar.simulation.transmural) on a smooth
thick-walled ring open at its apical end (radii 10 and 20 mm, 36 mm tall; hexahedra, and the same
hexahedra split into tetrahedra), where phi is known: ln(r / 10) / ln 2, its gradient radial.

A straight ring has no apex of its own: which end the shape's long axis calls apical is a tie that
the CPU's rounding breaks (z = 0 on the Intel Xeon these tests were written on, z = 36 on an AMD
EPYC), so the tests read the apical end from the axis the rule found (``apex_z``)."""

import numpy as np
import pytest
import vtk
from vtk.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray

from cardioscar.aha.wall import cell_centres
from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import Mesh
from cardioscar.io.meshio import cell_layout
from cardioscar.simulation.fibres import rule_fibres, rule_frame, rule_wall
from cardioscar.simulation.opencarp import cell_types
from cardioscar.simulation.open_cut import OpenEndUse, along_axis_patches, open_end_nodes
from cardioscar.simulation.transmural import laplace_transmural, stiffness_matrix

#: Six tetrahedra about a hexahedron's 0-6 diagonal: neighbours' shared faces split alike.
HEX_AS_TETS = np.array([[0, 1, 2, 6], [0, 2, 3, 6], [0, 3, 7, 6], [0, 7, 4, 6], [0, 4, 5, 6], [0, 5, 1, 6]])


def _ring(tetrahedra: bool, layers: int = 5, around: int = 48, rows: int = 12) -> Mesh:
    """The ring of the module docstring, 2 mm layers through the wall, 3 mm rows along z (LPS)."""
    radius, angle, height = np.meshgrid(np.linspace(10.0, 20.0, layers + 1),
                                        np.linspace(0.0, 2 * np.pi, around, endpoint=False),
                                        np.linspace(0.0, 36.0, rows + 1), indexing="ij")
    points = np.c_[(radius * np.cos(angle)).ravel(), (radius * np.sin(angle)).ravel(), height.ravel()]
    index = np.arange(len(points)).reshape(radius.shape)
    i, j, k = np.meshgrid(np.arange(layers), np.arange(around), np.arange(rows), indexing="ij")
    n = (j + 1) % around
    cells = np.stack([index[i, j, k], index[i + 1, j, k], index[i + 1, n, k], index[i, n, k], index[i, j, k + 1],
                      index[i + 1, j, k + 1], index[i + 1, n, k + 1], index[i, n, k + 1]], axis=-1).reshape(-1, 8)
    if tetrahedra:
        cells = cells[:, HEX_AS_TETS].reshape(-1, 4)
    grid = vtk.vtkUnstructuredGrid()
    vtk_points = vtk.vtkPoints()
    vtk_points.SetData(numpy_to_vtk(points, deep=True))
    grid.SetPoints(vtk_points)
    array = vtk.vtkCellArray()
    array.SetData(numpy_to_vtkIdTypeArray(np.arange(0, cells.size + 1, cells.shape[1]), deep=True),
                  numpy_to_vtkIdTypeArray(cells.ravel().astype(np.int64), deep=True))
    grid.SetCells(vtk.VTK_TETRA if tetrahedra else vtk.VTK_HEXAHEDRON, array)
    return Mesh(dataset=grid, space="LPS")


@pytest.fixture(scope="module", params=[False, True], ids=["hexahedra", "tetrahedra"])
def ring(request):
    mesh = _ring(request.param)
    _, (points, lps, axis, faces) = rule_wall(mesh)
    apex_z = 0.0 if axis.base_direction[2] > 0 else 36.0
    return mesh, points, lps, axis, faces, apex_z


def test_the_stiffness_matrix_holds_constants_and_linear_fields_in_its_null_space_inside(ring):
    """Consistency of the finite elements: a constant has no flux anywhere, and a linear field none
    at an interior node (both would fail with a wrong element matrix or node order)."""
    _, points, lps, _, faces, _ = ring
    offsets, connectivity = cell_layout(lps)
    stiffness = stiffness_matrix(points, cell_types(lps), offsets, connectivity)
    assert abs(stiffness @ np.ones(len(points))).max() < 1e-9
    inside = np.setdiff1d(np.arange(len(points)), np.r_[faces.endo_ids, faces.epi_ids])
    inside = inside[(points[inside, 2] > 1.0) & (points[inside, 2] < 35.0)]
    for column in range(3):
        assert abs((stiffness @ points[:, column])[inside]).max() < 1e-9
    assert np.allclose(stiffness.diagonal()[inside], stiffness.diagonal()[inside].mean(), rtol=0.5)


def test_phi_is_0_and_1_on_the_faces_and_rises_through_the_wall_as_ln_r(ring):
    _, points, lps, axis, faces, apex_z = ring
    coordinate = laplace_transmural(points, lps, faces, axis)
    free = open_end_nodes(points, axis, faces, OpenEndUse.LAPLACE_FREE)
    assert len(free) and set(np.round(points[free, 2], 6)) == {apex_z}  # the open end's annulus only
    assert (coordinate.phi[np.setdiff1d(faces.endo_ids, free)] == 0.0).all()
    assert (coordinate.phi[np.setdiff1d(faces.epi_ids, free)] == 1.0).all()
    radius = np.hypot(points[:, 0], points[:, 1])
    assert abs(coordinate.phi - np.log(radius / 10.0) / np.log(2.0)).max() < 0.02
    line = np.flatnonzero((np.abs(points[:, 1]) < 1e-9) & (points[:, 0] > 0) & (points[:, 2] == apex_z))
    assert len(line) == 6 and (np.diff(coordinate.phi[line[np.argsort(radius[line])]]) > 0.1).all()
    assert abs(coordinate.depth - np.log(np.hypot(*cell_centres(lps)[:, :2].T) / 10.0) / np.log(2.0)).max() < 0.05


def test_one_open_end_read_two_ways_the_laplace_solves_free_nodes_and_the_channel_cut(ring):
    """One definition of the open end (:func:`open_end_nodes`), read for two uses. The ring is open at
    both ends: the channel cut is both end planes, rims included (a channel's distance to the cut
    counts them); the Laplace solve frees only the apical end's annulus less its rim (the base plane
    is the wall's base, free anyway; the rim keeps its face's value)."""
    _, points, _, axis, faces, apex_z = ring
    radius, z = np.hypot(points[:, 0], points[:, 1]), points[:, 2]
    apical = np.flatnonzero(np.isclose(z, apex_z))
    rim = apical[np.isclose(radius[apical], 10.0) | np.isclose(radius[apical], 20.0)]
    free = open_end_nodes(points, axis, faces, OpenEndUse.LAPLACE_FREE)
    assert np.array_equal(free, np.setdiff1d(apical, rim))
    cut = open_end_nodes(points, axis, faces, OpenEndUse.CHANNEL_CUT)
    assert set(np.round(z[cut], 6)) == {0.0, 36.0} and np.isin(free, cut).all()
    for end in (0.0, 36.0):  # each end's annulus, its rim on both faces with it (a hexahedral corner or two aside)
        at_end = np.isclose(z[cut], end)
        assert at_end.sum() >= 280 and {10.0, 20.0} <= set(np.round(radius[cut[at_end]], 6))
    base = [p for p in along_axis_patches(points, axis, faces, OpenEndUse.LAPLACE_FREE) if p.below_top_mm == 0.0]
    assert len(base) == 1 and not base[0].open_end and base[0].spans_wall  # the cut's reading would take it


def test_the_transmural_direction_is_radial_everywhere_even_at_the_open_end_where_nearest_nodes_fell_back(ring):
    _, points, lps, axis, faces, apex_z = ring
    centres = cell_centres(lps)
    radial = np.c_[centres[:, :2] / np.hypot(*centres[:, :2].T)[:, None], np.zeros(len(centres))]
    laplace = rule_frame(points, lps, faces, axis, "laplace")
    nearest = rule_frame(points, lps, faces, axis, "nearest")
    off = np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", laplace.e_t, radial), -1.0, 1.0)))
    assert off.max() < 3.0 and not laplace.no_transmural.any() and not laplace.along_axis.any()
    at_the_end = np.abs(centres[:, 2] - apex_z) < 6.0
    assert nearest.no_transmural[at_the_end].sum() > 40 and not nearest.no_transmural[~at_the_end].any()


def test_the_rule_records_its_transmural_direction_and_refuses_an_unknown_one():
    mesh = _ring(False, layers=3, around=24, rows=6)
    for transmural in ("laplace", "nearest"):
        field, record = rule_fibres(mesh, transmural=transmural)
        assert record["transmural"].startswith(f"{transmural}: ")
        assert np.allclose(np.linalg.norm(field[:, :3], axis=1), 1.0)
    with pytest.raises(CardioScarError, match=r"^transmural='poisson': give one of laplace, nearest"):
        rule_fibres(mesh, transmural="poisson")
