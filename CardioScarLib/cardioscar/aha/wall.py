"""The wall's two faces (endocardium, epicardium) and the transmural columns between them.

Why: transmurality is the share of the wall thickness that is scar, measured along the
endo-epi direction, so it needs to know which boundary faces are endocardium. On a volumetric
mesh the boundary faces are oriented outwards from their own cell; a face is

* *base* when it faces the base (normal within 45 degrees of the apex-to-base direction) in the
  basal 15 % of the LV,
* *endocardium* when it faces the cavity: where its outward normal is more across the long axis
  than along it, when the normal points towards the axis; a face that turns more along the axis
  (an apical cap, the step between two slices' rings of ``mesh-from-labels``, an open end) takes
  the side of the nearest such face over the surface (faces that share a node, counted in steps),
  and one on a part of the surface without any, whether its normal points towards the middle of
  the LV axis,
* *epicardium* otherwise.

Why over the surface: the steps between the rings of a mesh of 10 mm short-axis slices face along
the axis, and "towards the middle of the axis" alone called the epicardium's apex-facing steps
above the middle endocardium and the endocardium's base-facing steps there epicardium: on three
EMIDEC meshes 1,900-2,800 nodes lay on both faces, and the fibre rule found no transmural
direction in 7-12 % of the elements (``Testing/benchmarks/fibre_rule_fallback.py``).

Each LV node then joins the *column* of its nearest endocardial node (nearest-surface columns);
a column's transmurality is the volume-weighted share of scar among its nodes. A surface mesh
has no nodes inside the wall: its transmurality can only be *estimated* from each endocardial
node and the nearest epicardial node (both scar: 1, one: 0.5, none: 0), and is labelled so.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import numpy as np
import vtk
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from vtk.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy

from cardioscar.errors import CardioScarError

from .one_ventricle import check_one_ventricle
from .segments import LongAxis, axis_from_shape

BASE_NORMAL_COS = 0.7071
BASE_ZONE = 0.15


class BoundaryFaces(NamedTuple):
    """Triangles of a mesh's boundary: original point ids (F, 3), centroids, outward unit normals, areas."""

    ids: np.ndarray
    centroids: np.ndarray
    normals: np.ndarray
    areas: np.ndarray


@dataclass(frozen=True)
class WallFaces:
    """Boundary nodes of the LV wall: ids into the mesh, and each endocardial node's share of area;
    and the boundary triangles they were told apart on (outward normals).

    Why the triangles: the open end (:func:`cardioscar.simulation.open_cut.open_end_nodes`, read by
    the fibre rule's Laplace solve and the channel search, both after :func:`lv_wall`) is found on the
    same faces, which are then computed once per mesh."""

    endo_ids: np.ndarray
    endo_area: np.ndarray
    epi_ids: np.ndarray
    volumetric: bool
    boundary: BoundaryFaces


def cell_centres(dataset: vtk.vtkDataSet) -> np.ndarray:
    """(n_cells, 3) float centre of each cell (VTK's mean of its nodes)."""
    centres = vtk.vtkCellCenters()
    centres.SetInputData(dataset)
    centres.Update()
    return vtk_to_numpy(centres.GetOutput().GetPoints().GetData()).astype(float)


def is_volumetric(dataset: vtk.vtkDataSet) -> bool:
    """True when the mesh has 3D cells (tetrahedra, hexahedra, ...) among its cells."""
    if not isinstance(dataset, vtk.vtkUnstructuredGrid) or dataset.GetNumberOfCells() == 0:
        return False
    types = vtk_to_numpy(dataset.GetDistinctCellTypesArray())
    cell_types = getattr(vtk, "vtkCellTypeUtilities", vtk.vtkCellTypes)  # VTK 9.6 moved GetDimension there
    return any(cell_types.GetDimension(int(kind)) == 3 for kind in types)


def lv_cells_only(dataset: vtk.vtkDataSet, lv_nodes: np.ndarray) -> vtk.vtkDataSet:
    """The cells whose every node is an LV node, keeping the original point ids (``vtkOriginalPointIds``)."""
    ids = numpy_to_vtkIdTypeArray(np.arange(dataset.GetNumberOfPoints(), dtype=np.int64), deep=True)
    ids.SetName("aha_point_id")
    copy = dataset.NewInstance()
    copy.ShallowCopy(dataset)
    copy.GetPointData().AddArray(ids)
    if lv_nodes.all():
        return copy
    mask = numpy_to_vtk(lv_nodes.astype(np.uint8), deep=True)
    mask.SetName("aha_lv")
    copy.GetPointData().AddArray(mask)
    threshold = vtk.vtkThreshold()
    threshold.SetInputData(copy)
    threshold.SetInputArrayToProcess(0, 0, 0, vtk.vtkDataObject.FIELD_ASSOCIATION_POINTS, "aha_lv")
    threshold.SetLowerThreshold(0.5)
    threshold.SetUpperThreshold(1.5)
    threshold.SetThresholdFunction(vtk.vtkThreshold.THRESHOLD_BETWEEN)
    threshold.AllScalarsOn()
    threshold.Update()
    return threshold.GetOutput()


def boundary_faces(dataset: vtk.vtkDataSet) -> BoundaryFaces:
    """Triangles of the boundary, their ids the original point ids (``aha_point_id`` of :func:`lv_cells_only`)."""
    surface = vtk.vtkDataSetSurfaceFilter()
    surface.SetInputData(dataset)
    surface.PassThroughCellIdsOn()
    surface.Update()
    triangles = vtk.vtkTriangleFilter()
    triangles.SetInputConnection(surface.GetOutputPort())
    triangles.PassLinesOff()
    triangles.PassVertsOff()
    triangles.Update()
    poly = triangles.GetOutput()
    if poly.GetNumberOfPolys() == 0:
        raise CardioScarError("the LV part of the mesh has no faces (only points or lines); give a surface or "
                              "volumetric mesh of the LV myocardium")
    conn = vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    local_points = vtk_to_numpy(poly.GetPoints().GetData()).astype(float)
    original = vtk_to_numpy(poly.GetPointData().GetArray("aha_point_id")).astype(np.int64)
    corners = local_points[conn]
    centroids = corners.mean(axis=1)
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    areas = 0.5 * np.linalg.norm(cross, axis=1)
    normals = cross / np.maximum(2.0 * areas, 1e-12)[:, None]
    cell_ids = poly.GetCellData().GetArray("vtkOriginalCellIds")
    if cell_ids is not None and is_volumetric(dataset):
        # outward = away from the 3D cell the face bounds
        owners = vtk_to_numpy(cell_ids).astype(np.int64)
        owner_centres = cell_centres(dataset)[owners]
        flip = np.einsum("ij,ij->i", normals, centroids - owner_centres) < 0
        normals[flip] *= -1.0
    return BoundaryFaces(original[conn], centroids, normals, areas)


def _orient_closed_surface(normals: np.ndarray, centroids: np.ndarray, areas: np.ndarray, centre: np.ndarray
                           ) -> np.ndarray:
    """Outward normals of a surface mesh of the myocardium, made consistent by VTK, flipped to point out.

    A closed surface encloses positive volume with outward normals (divergence theorem); used
    when there are no 3D cells to say which side is the wall.
    """
    signed_volume = float((np.einsum("ij,ij->i", centroids - centre, normals) * areas).sum())
    return normals if signed_volume >= 0 else -normals


def axial_components(centroids: np.ndarray, normals: np.ndarray, axis: LongAxis) -> tuple[np.ndarray, np.ndarray]:
    """Each boundary face's normal across the long axis (its component outwards from the axis at
    the face's centroid) and along it (towards the base): a face turns across the axis (the
    endocardium's and epicardium's walls) where the first is the larger, along it (a cap, the step
    between two slices' rings, an open end) otherwise; the wall's faces and the open end
    (:mod:`cardioscar.simulation.open_cut`) read it alike."""
    outward = axis.radial(centroids)
    outward /= np.maximum(np.linalg.norm(outward, axis=1, keepdims=True), 1e-12)
    return np.einsum("ij,ij->i", normals, outward), normals @ axis.base_direction


def _facing_cavity(ids: np.ndarray, centroids: np.ndarray, normals: np.ndarray, axis: LongAxis, base: np.ndarray,
                   centre: np.ndarray) -> np.ndarray:
    """Which of the non-``base`` faces (node ids (F, 3), centroids, outward normals) face the cavity
    (see the module docstring): by the normal across the axis, else by the nearest such face over
    the surface, else towards ``centre``, the middle of the axis."""
    across, along = axial_components(centroids, normals, axis)
    clear = ~base & (np.abs(across) > np.abs(along))
    endo = clear & (across < 0)
    unclear = np.flatnonzero(~base & ~clear)
    endo[unclear] = np.einsum("ij,ij->i", normals[unclear], centre - centroids[unclear]) > 0
    if len(unclear) and clear.any():
        kept = np.flatnonzero(~base)  # the base is no bridge between the two faces
        incidence = csr_matrix((np.ones(3 * len(kept)), (np.repeat(np.arange(len(kept)), 3), ids[kept].ravel())),
                               shape=(len(kept), int(ids.max()) + 1))
        _, _, nearest = dijkstra(incidence @ incidence.T, directed=False, unweighted=True,
                                 indices=np.flatnonzero(clear[kept]), min_only=True, return_predecessors=True)
        source = nearest[np.searchsorted(kept, unclear)]
        endo[unclear[source >= 0]] = endo[kept[source[source >= 0]]]
    return endo


def wall_faces(dataset: vtk.vtkDataSet, lv_nodes: np.ndarray, axis: LongAxis) -> WallFaces:
    """Classify the LV part's boundary into endocardium and epicardium (see the module docstring)."""
    volumetric = is_volumetric(dataset)
    lv = lv_cells_only(dataset, lv_nodes)
    if not volumetric:
        normals_filter = vtk.vtkPolyDataNormals()
        geometry = vtk.vtkGeometryFilter()
        geometry.SetInputData(lv)
        normals_filter.SetInputConnection(geometry.GetOutputPort())
        normals_filter.ConsistencyOn()
        normals_filter.SplittingOff()
        normals_filter.ComputeCellNormalsOn()
        normals_filter.Update()
        lv = normals_filter.GetOutput()
    ids, centroids, normals, areas = boundary_faces(lv)
    heights = axis.heights(centroids)
    low, high = float(heights.min()), float(heights.max())
    centre = axis.origin + axis.base_direction * (0.5 * (low + high))
    if not volumetric:
        normals = _orient_closed_surface(normals, centroids, areas, centre)
    base = (normals @ axis.base_direction > BASE_NORMAL_COS) & (heights > high - BASE_ZONE * (high - low))
    endo = _facing_cavity(ids, centroids, normals, axis, base, centre)
    epi = ~base & ~endo
    if not endo.any() or not epi.any():
        raise CardioScarError("could not tell the endocardium from the epicardium on the LV mesh (one of them has "
                              "no faces); give a mesh of the whole LV wall, or leave transmurality out (--no-transmurality)")
    endo_area = np.zeros(dataset.GetNumberOfPoints())
    np.add.at(endo_area, ids[endo].ravel(), np.repeat(areas[endo] / 3.0, 3))
    endo_ids = np.unique(ids[endo])
    return WallFaces(endo_ids=endo_ids, endo_area=endo_area[endo_ids], epi_ids=np.unique(ids[epi]),
                     volumetric=volumetric, boundary=BoundaryFaces(ids, centroids, normals, areas))


def column_transmurality(points: np.ndarray, lv_ids: np.ndarray, scar: np.ndarray, weights: np.ndarray,
                         faces: WallFaces) -> tuple[np.ndarray, np.ndarray]:
    """Transmurality (0-1) of the column under each endocardial node (order of ``faces.endo_ids``)
    and the column's centre, which decides its segment (the cap's columns lie beyond the cavity tip).

    Volumetric: volume-weighted share of scar (0/1 per node) over the LV nodes whose nearest
    endocardial node it is. Surface: the estimate (endo + nearest epi) / 2, centred between them.
    """
    endo_points = points[faces.endo_ids]
    if not faces.volumetric:
        _, nearest_epi = cKDTree(points[faces.epi_ids]).query(endo_points)
        epi_ids = faces.epi_ids[nearest_epi]
        return 0.5 * (scar[faces.endo_ids] + scar[epi_ids]), 0.5 * (endo_points + points[epi_ids])
    _, column = cKDTree(endo_points).query(points[lv_ids])
    volume = np.bincount(column, weights=weights[lv_ids], minlength=len(faces.endo_ids))
    scar_volume = np.bincount(column, weights=weights[lv_ids] * scar[lv_ids], minlength=len(faces.endo_ids))
    centres = np.stack([np.bincount(column, weights=weights[lv_ids] * points[lv_ids, k], minlength=len(volume))
                        for k in range(3)], axis=1)
    empty = volume <= 0
    centres[~empty] /= volume[~empty, None]
    centres[empty] = endo_points[empty]
    return np.divide(scar_volume, volume, out=np.zeros_like(volume), where=~empty), centres


def wall_depth(positions: np.ndarray, endo_points: np.ndarray, epi_points: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transmural depth ``d_endo / (d_endo + d_epi)`` in [0, 1] at ``positions`` (0 on the
    endocardium, 1 on the epicardium), from the nearest endocardial and epicardial node, and the
    indices of those nodes (into ``endo_points``, ``epi_points``): the fibre rule's frame and the
    channel search's layers both stand on it."""
    d_endo, i_endo = cKDTree(endo_points).query(positions)
    d_epi, i_epi = cKDTree(epi_points).query(positions)
    return d_endo / np.maximum(d_endo + d_epi, 1e-12), i_endo, i_epi


#: The walls :func:`lv_wall` found inside :func:`walls_kept`, by the geometry they were found on.
_KEPT_WALLS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("cardioscar_kept_walls", default=None)


@contextlib.contextmanager
def walls_kept() -> Iterator[None]:
    """Inside, :func:`lv_wall` finds the wall of each geometry once (the same nodes and cells in the
    same frame, from any file or :class:`~cardioscar.io.meshio.Mesh`) and hands it out again.

    Why: a cohort row asking for fibres and channels ran the biventricular test (cross-sections in
    40 directions) and the wall's faces five times on one geometry: the fibre rule's and the channel
    search's checks before the fit, the rule in each export format's file, the channel search. A
    refusal is not kept: it ends the row."""
    kept = _KEPT_WALLS.get()
    token = _KEPT_WALLS.set({} if kept is None else kept)
    try:
        yield
    finally:
        _KEPT_WALLS.reset(token)


def _geometry_key(mesh) -> str:
    """A digest of the mesh's frame, LPS nodes, cell types and cells: what its wall depends on."""
    from cardioscar.io.meshio import cell_layout
    from cardioscar.simulation.opencarp import cell_types

    digest = hashlib.blake2b(mesh.space.encode(), digest_size=16)
    for part in (mesh.points_lps(), cell_types(mesh.dataset), *cell_layout(mesh.dataset)):
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()


def lv_wall(mesh, user: str, advice: str) -> tuple[np.ndarray, vtk.vtkDataSet, LongAxis, WallFaces]:
    """The whole mesh as the LV wall: its points and cells in LPS, its long axis (from its shape)
    and its two faces, or a one-line error naming the ``user`` of the wall ("the fibre rule") and
    the ``advice`` (its alternative, appended to the error); a biventricular mesh is refused
    (:mod:`.one_ventricle`).

    Why here: the fibre rule and the channel search need the same wall of a volumetric LV mesh
    with no AHA options (all nodes are LV); aha's own advice does not apply to them. Inside
    :func:`walls_kept`, found once per geometry."""
    kept = _KEPT_WALLS.get()
    key = None if kept is None else _geometry_key(mesh)
    if key is not None and key in kept:
        return kept[key]
    wall = _find_lv_wall(mesh, user, advice)
    if key is not None:
        wall[0].flags.writeable = False  # handed out again: read, never changed in place
        kept[key] = wall
    return wall


def _find_lv_wall(mesh, user: str, advice: str) -> tuple[np.ndarray, vtk.vtkDataSet, LongAxis, WallFaces]:
    """:func:`lv_wall`'s work, its refusals in one line."""
    name = "the mesh" if mesh.path is None else mesh.path.name
    if not is_volumetric(mesh.dataset):
        raise CardioScarError(f"{name} has no volume cells: {user} needs the LV wall's endocardium, epicardium and the "
                              f"depth between them; give a volumetric (tetrahedral or hexahedral) LV mesh{advice}")
    points = mesh.points_lps()
    lps = mesh.dataset_lps(points)  # a helix's sense is fixed in the right-handed LPS frame
    check_one_ventricle(lps, name, user, advice)  # first: a biventricular shape gives no LV axis to refuse it by
    try:
        axis = axis_from_shape(points, np.ones(len(points)),
                               f"{user} has no axis option (it takes the shape's): check its output{advice}")
        faces = wall_faces(lps, np.ones(len(points), dtype=bool), axis)
    except CardioScarError as error:
        reason = str(error).split(";")[0]
        raise CardioScarError(f"{name}: {user} found no LV wall ({reason}); give a volumetric mesh of the "
                              f"LV myocardium{advice}") from None
    return points, lps, axis, faces
