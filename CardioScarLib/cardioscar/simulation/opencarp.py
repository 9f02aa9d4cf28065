"""openCARP mesh files (.pts, .elem, .lon) and a .json sidecar, and a tagged .vtu.

Formats written (openCARP's text mesh format):
* ``.pts``: the node count N on the first line, then N lines ``x y z``. openCARP expects
  micrometres, so coordinates are scaled by 1000 from the mesh's mm unless ``units='mm'``.
* ``.elem``: the element count M, then M lines ``CODE n0 n1 ... TAG``: ``Tt`` tetrahedra, ``Hx``
  hexahedra, ``Pr`` prisms (VTK wedges), ``Py`` pyramids, ``Tr`` triangles, ``Qd`` quadrilaterals;
  0-based node indices, TAG the region tag. The node order is openCARP's: meshtool, openCARP's mesh
  converter, reorders exactly two VTK cell types when it reads a VTK mesh (vtk_utils.cpp,
  ``perm_con_vtk_to_carp``): a hexahedron becomes VTK nodes (7, 6, 5, 4, 3, 0, 1, 2) and a wedge
  (0, 1, 2, 3, 5, 4); every other type keeps VTK's order. :data:`VTK_TO_CARP` holds the same
  permutations, so meshtool converts our files back to the VTK cells we started from. A
  tetrahedron listed inside out is written positively oriented, as meshtool does (:data:`INSIDE_OUT_SWAP`). VTK's
  axis-aligned voxels and pixels (``mesh-from-labels`` writes voxels) list their nodes in x-fastest
  order, documented by VTK as (0, 1, 3, 2, 4, 5, 7, 6) of a hexahedron (pixel: (0, 1, 3, 2) of a quad);
  they are reordered to a hexahedron (quad) first. Other cell types (polyhedra, quadratic cells, ...)
  are refused.
* ``.lon`` (only with fibres): first line ``1`` (one fibre direction per element, 3 numbers a line)
  or ``2`` (fibre and sheet directions, 6 numbers a line), then one line per element; unit vectors
  (a field of other lengths is normalised, with a warning).
* ``.json``: what the tags mean, the thresholds, the units, the coordinate frame, class volumes and
  the scar rule that produced the training targets (when known).
The set is written only after all checks pass, and atomically as a whole (``atomic_write_set``): a
failure on any file leaves the previous files at the prefix as they were; a successful export
without fibres removes an earlier export's ``PREFIX.lon`` (:func:`left_over`).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from ..io.atomic import atomic_write_set
from ..io.checks import SET_SUFFIXES, check_prefix
from ..errors import CardioScarError
from ..io.meshio import Mesh, cell_layout, coincident_nodes, set_text_field, text_field, write_mesh
from .tags import CLASS_NAMES, TissueTags, cell_node_lists

logger = logging.getLogger(__name__)

ELEMENT_CODES = {vtk.VTK_TETRA: "Tt", vtk.VTK_HEXAHEDRON: "Hx", vtk.VTK_VOXEL: "Hx", vtk.VTK_WEDGE: "Pr",
                 vtk.VTK_PYRAMID: "Py", vtk.VTK_TRIANGLE: "Tr", vtk.VTK_QUAD: "Qd", vtk.VTK_PIXEL: "Qd"}
_HEX_TO_CARP = np.array([7, 6, 5, 4, 3, 0, 1, 2])  # meshtool's perm_con_vtk_to_carp for a hexahedron
_VOXEL_TO_HEX = np.array([0, 1, 3, 2, 4, 5, 7, 6])  # hexahedron node i is voxel node _VOXEL_TO_HEX[i]
# position i of an openCARP element holds VTK node VTK_TO_CARP[type][i]
VTK_TO_CARP = {vtk.VTK_HEXAHEDRON: _HEX_TO_CARP, vtk.VTK_VOXEL: _VOXEL_TO_HEX[_HEX_TO_CARP],
               vtk.VTK_WEDGE: np.array([0, 1, 2, 3, 5, 4]), vtk.VTK_PIXEL: np.array([0, 1, 3, 2])}
#: The node order written for a tetrahedron listed inside out (negative signed volume
#: ``((p1 - p0) x (p2 - p0)) . (p3 - p0) / 6``: a writer that keeps no orientation, a mirrored copy).
#: openCARP's mesh tool meshtool treats such a tetrahedron as wrongly oriented and, in every
#: ``meshtool convert``, lists it as nodes (2, 1, 0, 3) (its ``correct_insideOut``, run because other
#: tools may not keep the orientation); files written here skip meshtool, so the export does the same.
INSIDE_OUT_SWAP = np.array([2, 1, 0, 3])
#: Cell types that hold tissue volume; the others written (triangles, quads) are surface elements.
VOLUME_TYPES = (vtk.VTK_TETRA, vtk.VTK_HEXAHEDRON, vtk.VTK_VOXEL, vtk.VTK_WEDGE, vtk.VTK_PYRAMID)
UNIT_SCALE = {"um": 1000.0, "mm": 1.0}
#: Bounding-box diagonal (mm) of a mesh that can be a heart (or a piece of one) in millimetres.
MIN_DIAGONAL_MM, MAX_DIAGONAL_MM = 1.0, 2000.0
#: Bounding-box diagonal (mm) under which a mesh is warned of as perhaps in centimetres: real human
#: hearts measure 101-198 mm across (EMIDEC's 75 and ACDC 101's myocardium 101-161, biv-me's
#: biventricular epicardium 198; ``Testing/benchmarks/round19_mesh_diagonals.py``), 10-20 written in
#: centimetres, which the range above passes (a mouse heart in millimetres is as small: a warning).
CENTIMETRE_DIAGONAL_MM = 30.0
TAG_ARRAY = "tissue_tag"
#: Field-data note (JSON ``{"healthy": 1, "border_zone": 2, "core": 3}``) beside ``tissue_tag``: which
#: value is which class, so that ``aha --tags-field tissue_tag`` reads them from the mesh; with
#: ``export --tags 0,1,2`` the guide's "border zone 2" (its number under the default ``--tags 1,2,3``;
#: Documentation/lge-to-opencarp.md) was the core, counted as border zone, exit 0.
TAG_VALUES_ARRAY = "CardioScarTissueTagValues"
#: A fibre or sheet vector shorter than this has no direction.
MIN_FIBRE_LENGTH = 1e-6
#: How far a fibre or sheet vector's length may lie from 1 before it is normalised (with a warning):
#: 6-decimal values of a unit vector stay well within it.
UNIT_TOLERANCE = 1e-3
#: How far a sheet may lean from perpendicular to its fibre (|cos| of the angle between them) before
#: it is made perpendicular (with a warning), and the tilt (degrees from perpendicular) beyond which
#: the pair is refused: cell averages of orthonormal node frames lean a few degrees; a sheet that
#: leans further is no sheet of that fibre (the fibre field twice, components in another order).
PERPENDICULAR_TOLERANCE = 1e-3
MAX_SHEET_TILT_DEGREES = 10.0


def coordinates(mesh: Mesh, space: str | None, units: str) -> tuple[np.ndarray, str]:
    """Node coordinates in ``space`` (LPS or RAS; None = the mesh file's own frame) and ``units``."""
    if units not in UNIT_SCALE:
        raise CardioScarError(f"--units '{units}' is not one of {', '.join(UNIT_SCALE)}")
    frame = mesh.space if space is None else space.upper()
    if frame not in ("LPS", "RAS"):
        raise CardioScarError(f"--space '{space}' must be LPS or RAS")
    points = mesh.points_lps()
    check_millimetres(points)
    if frame == "RAS":
        points = points * np.array([-1.0, -1.0, 1.0])
    return points * UNIT_SCALE[units], frame


def _diagonal_mm(points: np.ndarray) -> Optional[float]:
    """The bounding-box diagonal both unit checks judge (None under two nodes: no size to judge)."""
    if len(points) < 2:
        return None
    return float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))


def check_millimetres(points: np.ndarray, before: str = "before exporting") -> None:
    """The mesh must be in millimetres (the frame of the images and of every writer here): a heart
    in metres or micrometres would be written 1000 times off in every unit, silently (and ``aha``
    would report its volumes 10^9 times off). ``before``: what the user scales the mesh before."""
    diagonal = _diagonal_mm(points)
    if diagonal is not None and not MIN_DIAGONAL_MM <= diagonal <= MAX_DIAGONAL_MM:
        raise CardioScarError(f"The mesh is {diagonal:.4g} mm across (its bounding-box diagonal); a heart mesh in "
                              f"millimetres is {MIN_DIAGONAL_MM:g}-{MAX_DIAGONAL_MM:g} mm: scale a mesh in metres or "
                              f"micrometres to millimetres {before}")


def warn_if_centimetres(points: np.ndarray, source: str, work: str) -> None:
    """Warn when the mesh is under :data:`CENTIMETRE_DIAGONAL_MM` across: a human heart written in
    centimetres (some modelling tools' unit) passes :func:`check_millimetres` and was exported 10
    times too small (openCARP's ``.pts`` in micrometres a tenth of the heart, each class's ml a
    thousandth), its AHA volumes a thousandth and its channels sought 10 times too wide, exit 0.
    ``source``: the mesh's name; ``work``: what its millimetres are read for."""
    diagonal = _diagonal_mm(points)
    if diagonal is not None and MIN_DIAGONAL_MM <= diagonal < CENTIMETRE_DIAGONAL_MM:
        logger.warning("%s is %.3g mm across (its bounding-box diagonal); a human heart in millimetres is about 100-200: "
                       "is the mesh in centimetres? then scale its coordinates to millimetres (x10) before %s; a "
                       "small animal's heart or a piece of wall this size is read as it is", source, diagonal, work)


#: What a gap between pieces of a volume mesh does to each stage that reads the mesh whole (the
#: clause :func:`warn_about_pieces` gives after its count). Measured on the 1,500-node phantom cut in
#: two halves 2 mm apart: its AHA segments' scar moved (segment 7 13 % -> 4 % cut across the axis,
#: 13 % -> 25 % and segment 17 not covered cut along it), and the channel search has no path across.
PIECES_EXPORT = "a simulator conducts into none of them"
PIECES_AHA = ("the AHA analysis reads their cut faces as wall faces and the gap moves the levels, so segments and "
              "transmurality near it are off")
PIECES_CHANNELS = "the channel search finds no path across the gap, so a corridor through it is cut or missed"
#: The same for pieces that touch the largest only at coincident nodes (parts appended without merging
#: their points), which ``aha`` and ``channels`` run no :func:`check_elements_joined` to name. Measured
#: on the phantom's halves joined at a seam of 93 such nodes: the channel search's edges do not cross
#: it, and segment 13's mean transmurality read 76 % for the whole mesh's 68 % (scar shares unchanged).
SEAM_AHA = "the AHA analysis reads the seam's faces as wall faces, so transmurality near it is off"
SEAM_CHANNELS = "the channel search finds no path across the seam, so a corridor through it is cut or missed"


#: The attribute set on the log records of :func:`warn_about_pieces`, so that a face that warned of the
#: user's mesh before training (a cohort row) can leave out the same warning about its prediction.
PIECES_RECORD = "cardioscar_mesh_pieces"


def warn_about_pieces(mesh: Mesh, consequence: str = PIECES_EXPORT, name: Optional[str] = None,
                      seam: Optional[str] = None, parts: Optional[np.ndarray] = None) -> None:
    """Warn when a volumetric mesh falls into pieces that no element joins (apart from pieces that
    touch through coincident nodes, which :func:`check_elements_joined` names); a mesh without volume
    cells is left alone (a surface's shells are pieces of their own). Why: a simulator conducts into
    none of the smaller pieces, so their tissue is never activated; the export wrote them without a
    word (``mesh-from-labels`` warns of its own, EMIDEC P003's apical ring 2.6 mm off, but not of a
    mesh from another tool; ``aha`` refuses only small pieces over 5 mm away), and ``aha`` and
    ``channels`` measured an LV in two halves as if whole. ``consequence``: what the gap does to the
    stage that asks (:data:`PIECES_EXPORT`, :data:`PIECES_AHA`, :data:`PIECES_CHANNELS`); ``name``:
    what the message calls the mesh (default its file's name, or "the mesh"); ``seam``: what a seam of
    coincident nodes does to a stage that runs no :func:`check_elements_joined` (:data:`SEAM_AHA`,
    :data:`SEAM_CHANNELS`; None: not looked for): such pieces were measured as one, without a word.
    ``parts``: the nodes' connected parts (:func:`cardioscar.aha.islands.node_parts` of every node or of
    those in cells) where the caller has them (the AHA's debris check), so they are not found twice."""
    from scipy.spatial import cKDTree

    from ..aha.islands import node_parts
    from ..aha.wall import is_volumetric

    if not is_volumetric(mesh.dataset):
        return
    _, connectivity = cell_layout(mesh.dataset)
    used = np.zeros(mesh.n_points, dtype=bool)
    used[connectivity] = True
    parts = node_parts(mesh.dataset, used) if parts is None else parts
    sizes = np.bincount(parts[used])  # a node in no cell is a part of its own in parts of every node: size 0 here
    if np.count_nonzero(sizes) < 2:
        return
    points = mesh.points_lps()
    main = parts == int(np.argmax(sizes))
    loose = np.flatnonzero(used & ~main)
    distance, _ = cKDTree(points[main]).query(points[loose])
    gaps = np.full(len(sizes), np.inf)
    np.minimum.at(gaps, parts[loose], distance)
    apart = np.flatnonzero(np.isfinite(gaps) & (gaps > 1e-6))
    source = name or (mesh.path.name if mesh.path else "the mesh")
    touching = np.flatnonzero(gaps <= 1e-6)
    if seam is not None and touching.size:
        logger.warning("%s falls apart at a seam: %d of its %d nodes lie in %d piece(s) that no element joins to the "
                       "largest, touching it only at nodes that lie on its own (points not merged): %s; %s, or remesh "
                       "the heart in one piece", source, int(sizes[touching].sum()), int(used.sum()), touching.size,
                       seam, MERGE_ADVICE, extra={PIECES_RECORD: True})
    if apart.size:
        logger.warning("%s falls apart: %d of its %d nodes lie in %d piece(s) that no element joins to the largest, "
                       "%.1f mm or more from it: %s; remove them, or remesh the heart in one piece", source,
                       int(sizes[apart].sum()), int(used.sum()), apart.size, float(gaps[apart].min()), consequence,
                       extra={PIECES_RECORD: True})


#: The tagged ``.vtu``'s cell vectors of the fibre and sheet directions (unit, the points' frame).
FIBRE_ARRAY, SHEET_ARRAY = "fibre", "sheet"
#: Field-data note (JSON, :func:`cardioscar.simulation.fibres.rule_record`) on a ``.vtu`` whose fibres
#: are rule-based: what ``PREFIX.json``'s ``fibre_rule`` says of an openCARP set's.
FIBRE_RULE_ARRAY = "CardioScarFibreRule"


def cell_types(dataset: vtk.vtkDataSet) -> np.ndarray:
    """Each cell's VTK type: an unstructured grid's own array, read at once (a loop over 4.85M
    cells took 1.3 s, twice per export); other datasets (polydata) cell by cell. VTK 9.6 renamed
    the grid's accessor (``GetCellTypes()``; ``GetCellTypesArray`` deprecated), Slicer's older VTK
    has only the old name."""
    if isinstance(dataset, vtk.vtkUnstructuredGrid) and dataset.GetNumberOfCells():
        renamed = (vtk.vtkVersion.GetVTKMajorVersion(), vtk.vtkVersion.GetVTKMinorVersion()) >= (9, 6)
        return vtk_to_numpy(dataset.GetCellTypes() if renamed else dataset.GetCellTypesArray()).astype(np.int64)
    return np.array([dataset.GetCellType(c) for c in range(dataset.GetNumberOfCells())], dtype=np.int64)


def check_exportable(mesh: Mesh) -> None:
    """Refuse, without writing anything, a mesh the openCARP export cannot write as it is. Faces that
    train before they export (cohorts, the batch script) call it first, so the refusal does not
    come after the training."""
    check_millimetres(mesh.points_lps())
    dataset = mesh.dataset
    source = mesh.path.name if mesh.path else "the mesh"
    if dataset.GetNumberOfCells() == 0:
        raise CardioScarError(f"{source} has no cells: an openCARP .elem needs volume (or surface) elements")
    kinds = cell_types(dataset)
    unknown = [int(kind) for kind in np.unique(kinds) if int(kind) not in ELEMENT_CODES]
    if unknown:
        c = int(np.flatnonzero(kinds == unknown[0])[0])
        name = vtk.vtkCellTypeUtilities.GetClassNameFromTypeId(unknown[0])
        raise CardioScarError(f"{source} cell {c} is a {name}; the openCARP export writes linear tetrahedra, "
                              "hexahedra, wedges, pyramids, triangles and quads only: convert the mesh first "
                              "(e.g. tetrahedralise it)")
    check_volume_cells_only(mesh)
    check_cells_have_volume(mesh)
    check_elements_joined(mesh)


def check_vtu_exportable(mesh: Mesh) -> None:
    """Refuse a mesh the tagged ``.vtu`` export would write wrong (see :func:`check_exportable`)."""
    check_millimetres(mesh.points_lps())
    check_volume_cells_only(mesh)
    check_cells_have_volume(mesh)
    check_elements_joined(mesh)


def _collapsed_cells(layout: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Which cells of ``layout`` (:func:`cell_layout`'s offsets and connectivity) list one node
    twice (a tetrahedron ``5 6 7 7``, a hexahedron collapsed into a wedge)."""
    offsets, connectivity = layout
    sizes = np.diff(offsets)
    collapsed = np.zeros(len(sizes), bool)
    for size in np.unique(sizes):
        cells = np.flatnonzero(sizes == size)
        nodes = np.sort(connectivity[offsets[cells][:, None] + np.arange(size)], axis=1)
        collapsed[cells] = (np.diff(nodes, axis=1) == 0).any(axis=1)
    return collapsed


#: A volume cell whose volume is at most this share of its size cubed (its nodes' bounding-box
#: diagonal) is flat: a regular tetrahedron's share is 0.064, a cube's 0.19;
#: real meshes' slivers (a Delaunay mesh of random points: Testing/test_bad_inputs_round18.py) far above it.
FLAT_CELL_SHARE = 1e-9
#: Ulps of the points' coordinates a flat cell's node may lie off its plane after rounding: a
#: coplanar tetrahedron written in float32 100 mm from the origin is some 1e-5 mm thick, not zero.
FLAT_CELL_ULPS = 8


def cell_volumes(dataset: vtk.vtkDataSet, layout: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(each cell's signed volume, its size: its nodes' bounding-box diagonal, whether it is a volume
    cell) in the points' units: tetrahedra measured here (O(cells), vectorised), other volume cells
    by VTK's cell-size filter, which splits them into tetrahedra; 0 for surface cells. ``layout``:
    :func:`cell_layout` of ``dataset`` when the caller has it already."""
    kinds = cell_types(dataset)
    solid = np.isin(kinds, VOLUME_TYPES)
    volume, size = np.zeros(len(kinds)), np.zeros(len(kinds))
    if not solid.any():
        return volume, size, solid
    points = vtk_to_numpy(dataset.GetPoints().GetData()).astype(np.float64)
    offsets, connectivity = cell_layout(dataset) if layout is None else layout
    for kind in np.unique(kinds[solid]):
        cells = np.flatnonzero(kinds == kind)
        count = offsets[cells[0] + 1] - offsets[cells[0]]
        corners = points[connectivity[offsets[cells][:, None] + np.arange(count)]]
        size[cells] = np.linalg.norm(corners.max(axis=1) - corners.min(axis=1), axis=1)
        if kind == vtk.VTK_TETRA:
            edges = corners[:, 1:] - corners[:, :1]
            volume[cells] = np.einsum("ij,ij->i", edges[:, 0], np.cross(edges[:, 1], edges[:, 2])) / 6
    others = solid & (kinds != vtk.VTK_TETRA)
    if others.any():
        measure = vtk.vtkCellSizeFilter()
        measure.SetInputData(dataset)
        for switch in (measure.ComputeVertexCountOff, measure.ComputeLengthOff, measure.ComputeAreaOff):
            switch()
        measure.Update()
        volume[others] = vtk_to_numpy(measure.GetOutput().GetCellData().GetArray("Volume"))[others]
    return volume, size, solid


def flat_cells(dataset: vtk.vtkDataSet, layout: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Which cells are volume cells of no volume up to rounding: at most :data:`FLAT_CELL_SHARE` of
    their size cubed, or thinner than :data:`FLAT_CELL_ULPS` of the coordinates' own rounding
    (``layout``: as in :func:`cell_volumes`)."""
    volume, size, solid = cell_volumes(dataset, layout)
    if not solid.any():
        return solid
    coordinates = vtk_to_numpy(dataset.GetPoints().GetData())
    rounding = FLAT_CELL_ULPS * np.finfo(coordinates.dtype).eps * float(np.abs(coordinates).max())
    return solid & (np.abs(volume) <= size ** 2 * (FLAT_CELL_SHARE * size + rounding))


def check_cells_have_volume(mesh: Mesh) -> None:
    """Refuse a mesh with volume cells of no volume: cells that list one node twice (a decimation or
    a converter leaves them), then cells whose nodes are all distinct but flat (four coplanar nodes
    of a tetrahedron, a node written at another's position), each named as such. The mesh's cell
    array is read once for both.

    Why: they tag and export with exit 0, and a simulator then integrates over elements of zero
    volume (a singular element matrix: openCARP fails to converge or conducts wrongly there), or
    meshtool drops them and the tags no longer match the elements. Where they are is the user's
    mesh to mend (remove them, or remesh), once, not ours to guess (round 18). Flat is judged
    relative to the cell's own size and the coordinates' rounding: a real mesh's slivers are thin
    but not flat and must export; a flat cell written in float32 far from the origin keeps a volume
    of rounding only."""
    layout = cell_layout(mesh.dataset)
    _refuse_cells(mesh, _collapsed_cells(layout), layout, "list a node twice", "elements without volume")
    _refuse_cells(mesh, flat_cells(mesh.dataset, layout), layout, "have no volume",
                  "flat elements (coplanar nodes, or a node on another's position)")


def _refuse_cells(mesh: Mesh, bad: np.ndarray, layout: tuple[np.ndarray, np.ndarray], fault: str,
                  what: str) -> None:
    """One line naming how many cells are ``bad`` (they ``fault``: ``what`` they are) and the
    first with its nodes, when any is."""
    if not bad.any():
        return
    offsets, connectivity = layout
    c = int(np.flatnonzero(bad)[0])
    source = mesh.path.name if mesh.path else "the mesh"
    raise CardioScarError(f"{source}: {int(bad.sum())} of its {len(bad)} cells {fault} (cell {c}: nodes "
                          f"{' '.join(str(n) for n in connectivity[offsets[c]:offsets[c + 1]])}), {what} that a "
                          "simulator cannot integrate: remove them from the mesh (or remesh it) and export again")


def check_volume_cells_only(mesh: Mesh) -> None:
    """Refuse a volume mesh that also holds surface or line cells (a mesher's boundary triangles
    and edges, as gmsh writes them), for every export format: openCARP would simulate each surface
    cell as tissue of its own, conducting along the wall's faces, and a tagged ``.vtu`` carries them
    into meshtool or the next converter the same way; such a file cannot be told from an intended
    one afterwards. Dropping them here instead would leave the user's mesh and the export with
    different cells, so the fix is theirs to make, once, on the mesh."""
    kinds = cell_types(mesh.dataset)
    volume = int(np.isin(kinds, VOLUME_TYPES).sum())
    if 0 < volume < len(kinds):
        source = mesh.path.name if mesh.path else "the mesh"
        raise CardioScarError(f"{source} mixes {volume} volume elements with {len(kinds) - volume} surface or line "
                              "elements (e.g. a mesher's boundary faces); a simulator would take them as tissue: "
                              "remove them from the mesh (keep the volume cells only) and export again")


#: The share of the nodes lying on another node above which the elements are not joined at all
#: (each element's corners written apart: nearly every node; parts appended unmerged: their seam).
MAX_COINCIDENT_SHARE = 0.5


#: How to join the elements of a mesh written without merging its points.
#: The attribute set on the log record of :func:`check_elements_joined`'s warning, so that a face
#: that checked the user's mesh before training can leave out the same warning about its prediction.
COINCIDENT_RECORD = "cardioscar_coincident_nodes"
MERGE_ADVICE = "merge the coincident points (e.g. vtkCleanUnstructuredGrid, ParaView's Clean to Grid)"


def check_elements_joined(mesh: Mesh) -> None:
    """Refuse a mesh whose elements share no nodes (each element's corners written apart: over
    :data:`MAX_COINCIDENT_SHARE` of the nodes lie on another node), and warn about a few such nodes.

    Why: a simulator conducts from one element to the next only through shared nodes. A mesh
    written without merging its points (a converter, a shrink or append filter) looks whole in a
    viewer, tags and exports with exit 0, but openCARP then simulates every element alone (no
    propagation at all), and parts appended without merging are split by a line of block along
    their seam. A few coincident nodes can be meant (a split that models a line of block): a
    warning with the count, so the user knows either way."""
    extra, places, used = coincident_nodes(mesh)
    if not extra:
        return
    source = mesh.path.name if mesh.path else "the mesh"
    what = f"{source}: {extra} of its {used} nodes lie on another node ({places} places), so the elements there share no node"
    if extra > MAX_COINCIDENT_SHARE * used:
        raise CardioScarError(f"{what}: a simulator would conduct through none of them (a mesh written without "
                              f"merging its points); {MERGE_ADVICE} and export again")
    logger.warning("%s: a simulator conducts across none of them (a line of block), as where parts were appended "
                   "without merging their points; merge them unless the split is meant", what,
                   extra={COINCIDENT_RECORD: True})


class SaidBeforeTraining(logging.Filter):
    """Leaves out, inside the block, this thread's warnings about coincident nodes and about a mesh in
    pieces: a face that trains before it exports, segments or searches for channels (a cohort row, the
    batch script) said them of the user's mesh before the fit, and the result has its nodes and cells.

    Why: the log said the same nodes twice, once of the mesh the user gave and once of the prediction
    (a cohort row's `aha` on an LV in pieces: once before its fit, again of scar_prediction.vtk; the
    batch script only after the training, and the export's coincident nodes twice). Other threads'
    records pass: a cohort worker may run several patients at once."""

    def __init__(self) -> None:
        super().__init__()
        self._thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self._thread or not (getattr(record, COINCIDENT_RECORD, False)
                                                     or getattr(record, PIECES_RECORD, False))

    def __enter__(self) -> "SaidBeforeTraining":
        logger.addFilter(self)
        return self

    def __exit__(self, *exc) -> None:
        logger.removeFilter(self)


def _element_lines(mesh: Mesh, tags: np.ndarray) -> list[str]:
    """The ``.elem`` lines, each tetrahedron positively oriented (:data:`INSIDE_OUT_SWAP`)."""
    check_exportable(mesh)
    dataset = mesh.dataset
    kinds = cell_types(dataset)
    tetrahedra = kinds == vtk.VTK_TETRA
    inside_out = tetrahedra & (cell_volumes(dataset)[0] < 0)
    if inside_out.any():
        logger.info("%s: %d of %d tetrahedra were inside out (negative volume, their nodes in the other order): "
                    "written positively oriented, as openCARP's meshtool converts them",
                    mesh.path.name if mesh.path else "the mesh", int(inside_out.sum()), int(tetrahedra.sum()))
    lines = []
    for c, nodes in enumerate(cell_node_lists(dataset)):
        kind = int(kinds[c])
        if kind in VTK_TO_CARP:
            nodes = nodes[VTK_TO_CARP[kind]]
        elif inside_out[c]:
            nodes = nodes[INSIDE_OUT_SWAP]
        lines.append(f"{ELEMENT_CODES[kind]} {' '.join(str(n) for n in nodes)} {int(tags[c])}")
    return lines


def perpendicular_sheets(fibres: np.ndarray, sheets: np.ndarray) -> np.ndarray:
    """The unit ``sheets`` (n x 3) made perpendicular to the unit ``fibres``, or refused.

    Why: a simulator takes the sheet as the second axis of an orthonormal frame (the sheet normal
    is fibre x sheet) and builds the conductivity tensor from it; a leaning sheet gives a frame that
    is not orthonormal, so conduction along the fibre leaks into the sheet direction and the normal
    is no longer of unit length, silently. Within :data:`PERPENDICULAR_TOLERANCE` a sheet is kept
    as given (six decimals); up to :data:`MAX_SHEET_TILT_DEGREES` off it loses its part along the
    fibre, with a warning; beyond, refused, naming an element."""
    cosine = np.einsum("ij,ij->i", fibres, sheets)
    leaning = np.abs(cosine) > PERPENDICULAR_TOLERANCE
    if not leaning.any():
        return sheets
    tilt = np.degrees(np.arcsin(np.minimum(np.abs(cosine), 1.0)))
    if tilt.max() > MAX_SHEET_TILT_DEGREES:
        element = int(np.argmax(tilt))
        raise CardioScarError(f"The fibre field's sheet direction leans {tilt[element]:.0f} degrees from perpendicular to "
                              f"the fibre in element {element} ({int((tilt > MAX_SHEET_TILT_DEGREES).sum())} element(s) "
                              f"over {MAX_SHEET_TILT_DEGREES:g}): a sheet must be perpendicular to its fibre (the "
                              "simulator builds an orthonormal frame from them); check the field's 6 components "
                              "(fibre x, y, z, then sheet x, y, z)")
    logger.warning("The fibre field has %d element(s) whose sheet direction leans up to %.2g degrees from perpendicular "
                   "to the fibre; the .lon gets the sheet made perpendicular (its part along the fibre removed)",
                   int(leaning.sum()), float(tilt.max()))
    sheets = sheets - cosine[:, None] * fibres
    return sheets / np.linalg.norm(sheets, axis=1, keepdims=True)


def unit_fibres(fibres: np.ndarray, n_elements: int) -> np.ndarray:
    """The fibre field as one row per element of unit fibre (and perpendicular unit sheet)
    directions, or refused: what every writer of fibres (``.lon``, the tagged ``.vtu``) writes."""
    fibres = np.asarray(fibres, np.float64)
    if fibres.ndim != 2 or fibres.shape[0] != n_elements or fibres.shape[1] not in (3, 6):
        raise CardioScarError(f"The fibre field has shape {fibres.shape}; it must be one row per element "
                              f"({n_elements}) of 3 (fibre) or 6 (fibre and sheet) numbers")
    if not np.all(np.isfinite(fibres)):
        raise CardioScarError("The fibre field has NaN or infinite values")
    lengths = np.linalg.norm(fibres.reshape(n_elements, -1, 3), axis=2)
    if np.any(lengths < MIN_FIBRE_LENGTH):
        # a simulator's conductivity along f f^T has no direction there: the tissue silently isotropic
        element, part = (int(v[0]) for v in np.nonzero(lengths < MIN_FIBRE_LENGTH))
        raise CardioScarError(f"The fibre field has {int((lengths < MIN_FIBRE_LENGTH).any(axis=1).sum())} element(s) "
                              f"with a zero-length {('fibre', 'sheet')[part]} direction (e.g. element {element}): give a "
                              "direction to every element (a fibre rule's output covers the whole mesh)")
    off_unit = np.abs(lengths - 1.0) > UNIT_TOLERANCE
    if off_unit.any():
        # a simulator that builds its conductivity from the vectors as read, sigma_t I + (sigma_l - sigma_t)
        # f f^T, gets sigma_t + 0.64 (sigma_l - sigma_t) along a fibre of length 0.8 (a cell average of
        # node directions); only the direction is meant
        logger.warning("The fibre field has %d element(s) whose fibre or sheet vector is not of unit length (%.3g to "
                       "%.3g); the .lon gets their directions as unit vectors", int(off_unit.any(axis=1).sum()),
                       float(lengths[off_unit].min()), float(lengths[off_unit].max()))
        fibres = (fibres.reshape(n_elements, -1, 3) / lengths[:, :, None]).reshape(n_elements, -1)
    if fibres.shape[1] == 6:
        fibres = np.hstack([fibres[:, :3], perpendicular_sheets(fibres[:, :3], fibres[:, 3:])])
    return fibres


def _fibre_lines(fibres: np.ndarray, n_elements: int, flip_xy: bool) -> list[str]:
    """The .lon lines; ``flip_xy``: the points are written in the other frame than the fibres'
    (LPS <-> RAS), so their x and y components change sign too (a fibre is an axis, but the
    mirrored axis of an oblique fibre is another fibre)."""
    fibres = unit_fibres(fibres, n_elements)
    if flip_xy:
        fibres = fibres * np.tile([-1.0, -1.0, 1.0], fibres.shape[1] // 3)
    header = "1" if fibres.shape[1] == 3 else "2"
    return [header] + [" ".join(f"{v:.6f}" for v in row) for row in fibres]


def left_over(prefix: str | Path, suffixes: Iterable[str]) -> list[Path]:
    """The files of an earlier export at ``prefix`` that a set of ``suffixes`` does not replace: its
    ``.lon`` when this export has no fibres. They are removed with the new set's placing, because
    openCARP reads ``PREFIX.lon`` with ``PREFIX.elem``: an earlier mesh's fibres with this mesh's
    elements (one per line, so nothing fails when the counts agree) would be a wrong simulation."""
    prefix = Path(prefix)
    return [prefix.with_name(prefix.name + suffix) for suffix in SET_SUFFIXES if suffix not in set(suffixes)]


def write_opencarp(mesh: Mesh, tags: TissueTags, prefix: str | Path, units: str = "um", space: str | None = None,
                   fibres: np.ndarray | None = None, scar_rule: dict | None = None,
                   fibre_rule: dict | None = None) -> dict[str, Path]:
    """Write ``PREFIX.pts``, ``PREFIX.elem``, ``PREFIX.json`` (and ``PREFIX.lon`` with ``fibres``: one
    row per element, in the frame of ``mesh.space`` as a mesh file's cell vectors are)."""
    check_prefix(prefix)
    prefix = Path(prefix)
    points, frame = coordinates(mesh, space, units)
    if units == "mm":
        # openCARP has no unit setting for a mesh: it reads .pts as micrometres, so a heart written in
        # mm is simulated 1,000 times too small (its activation times scaled by the same), exit 0 (round 16)
        logger.warning("--units mm: %s.pts holds millimetres, but openCARP reads .pts as micrometres, so it would "
                       "simulate this heart 1,000 times too small; write --units um (the default) unless the file is "
                       "for a tool that reads millimetres", prefix.name)
    texts = {".pts": "\n".join([str(len(points))] + [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in points]) + "\n"}
    elements = _element_lines(mesh, tags.element_tags)
    texts[".elem"] = "\n".join([str(len(elements))] + elements) + "\n"
    if fibres is not None:
        texts[".lon"] = "\n".join(_fibre_lines(fibres, len(elements), frame != mesh.space)) + "\n"
    texts[".json"] = json.dumps(sidecar(tags, units, frame, scar_rule, fibres, fibre_rule), indent=2) + "\n"
    written = {suffix: prefix.with_name(prefix.name + suffix) for suffix in texts}
    # the whole set, or the previous one; an earlier export's .lon goes with its set
    with atomic_write_set(list(written.values()), left_over(prefix, written)) as temporaries:
        for tmp, text in zip(temporaries, texts.values()):
            tmp.write_text(text, encoding="utf-8")
    logger.info("Wrote openCARP model %s.{%s}: %d nodes, %d elements, %s in %s", prefix,
                ",".join(s[1:] for s in written), len(points), len(elements), units, frame)
    return written


def sidecar(tags: TissueTags, units: str, frame: str, scar_rule: dict | None, fibres: np.ndarray | None,
            fibre_rule: dict | None = None) -> dict:
    """The .json description that travels with the simulator files (``fibre_rule``: the fibres are
    rule-based, not measured; its rule and angles)."""
    field_rule = ("core field >= core, else scar field >= border_zone" if tags.two_fields
                  else "scar field >= core -> core, >= border_zone -> border zone")
    # one field's tags 2 and 3 are probability bands, not tissue (TissueTags.class_labels): their
    # legend says so beside the names a reader of "tags" would take for border-zone and core tissue
    healthy, band, top = tags.class_labels()
    legend = {} if tags.two_fields else {"region_legend": dict(zip(map(str, tags.tag_values), (
        f"{healthy}: scar field < {tags.border_zone:g}", f"{band} of one scar field, not border-zone tissue",
        f"{top} of one scar field, not core tissue")))}
    return {
        "tags": {name: tag for name, tag in zip(CLASS_NAMES, tags.tag_values)},
        **legend,
        "tag_rule": {"nodes": field_rule, "elements": "the same thresholds on the mean of the element's nodes",
                     "border_zone": tags.border_zone, "core": tags.core,
                     "border_zone_is": tags.border_zone_meaning()},
        "units": units, "coordinate_frame": frame,
        "fibres": None if fibres is None else ("fibre" if np.shape(fibres)[1] == 3 else "fibre+sheet"),
        "classes": tags.summary(),
        "fibre_rule": fibre_rule,
        "scar_rule": scar_rule,
    }


def drop_stale_tissue_tags(dataset) -> bool:
    """Remove the ``tissue_tag`` point and cell arrays an earlier ``export --format vtu`` (or the
    Slicer *Tag*) left on a mesh that now gets a new probability; True if there were any.

    Why: the tags are the earlier field cut at its thresholds; kept beside a new field they
    disagreed with it without a word, and meshtool, ``aha --tags-field`` or a simulator reading
    the cell tags took the old scar for the new one."""
    found = False
    for data in (dataset.GetPointData(), dataset.GetCellData()):
        if data.HasArray(TAG_ARRAY):
            data.RemoveArray(TAG_ARRAY)
            found = True
    set_text_field(dataset, TAG_VALUES_ARRAY, None)
    return found


def earlier_result_fields() -> tuple[str, ...]:
    """The point fields that an earlier result's later steps derived from its scar, besides the
    tags: the channel search's ``bz_channel`` and ``core_marginal``, and the core model's fields an
    ``export --format vtu --core-mesh`` copied in (:data:`cardioscar.simulation.export.CORE_COPIES`)."""
    from .channels import CHANNEL_FIELD
    from .export import CORE_COPIES
    from .hidden_channels import MARGINAL_CORE_FIELD

    return (CHANNEL_FIELD, MARGINAL_CORE_FIELD, *CORE_COPIES.values())


def drop_earlier_result_fields(dataset) -> list[str]:
    """Remove :func:`earlier_result_fields` from a mesh that now gets a new probability; the names removed.

    Why: a re-run on an earlier run's channels mesh or tagged ``.vtu`` kept its channels and its
    core model's probability beside the new scar: ``channels --scar-field``, ``export --core-field
    core_probability`` or a viewer then paired the new scar with the old run's core and channels."""
    data = dataset.GetPointData()
    dropped = [name for name in earlier_result_fields() if data.HasArray(name)]
    for name in dropped:
        data.RemoveArray(name)
    return dropped


def note_tag_values(dataset, tag_values: tuple[int, int, int], tags: TissueTags | None = None) -> None:
    """Note on ``dataset`` which ``tissue_tag`` value is healthy, border zone and core; with ``tags``
    (the tagging that made them), also whether they are tissue classes (two fields) or probability
    bands of one field, and their names for a reader (:meth:`TissueTags.class_labels`). Why the
    second: ``aha`` and ``channels`` often get the ``.vtu`` without its ``.json`` sidecar, and
    named one field's bands border zone and core."""
    note: dict = dict(zip(CLASS_NAMES, (int(v) for v in tag_values)))
    if tags is not None:
        note.update(classes="tissue" if tags.two_fields else "bands", labels=list(tags.class_labels()))
    set_text_field(dataset, TAG_VALUES_ARRAY, json.dumps(note))


def _tag_note(dataset) -> dict:
    """The ``CardioScarTissueTagValues`` note as a dict ({} without one, or unreadable)."""
    try:
        record = json.loads(text_field(dataset, TAG_VALUES_ARRAY) or "null")
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def recorded_tag_values(dataset) -> dict | None:
    """The class -> ``tissue_tag`` value note of a tagged mesh (None without one: an older export, or
    tags made elsewhere)."""
    record = _tag_note(dataset)
    return {name: record[name] for name in CLASS_NAMES} if set(CLASS_NAMES) <= set(record) else None


def recorded_classes(dataset) -> tuple[str | None, tuple[str, str] | None]:
    """What the note beside ``tissue_tag`` says of its classes, read in one parse of the note:
    ``"tissue"`` (two fields), ``"bands"`` (one field cut at two probabilities) or None (no such
    note: an export before 2026-12-07 did not say, and its tags are read as before); and for bands
    their two names (:meth:`TissueTags.class_labels`; None where the note does not give them)."""
    record = _tag_note(dataset)
    classes = record.get("classes")
    labels = record.get("labels")
    named = classes == "bands" and isinstance(labels, list) and len(labels) == 3
    return (classes if classes in ("tissue", "bands") else None,
            (str(labels[1]), str(labels[2])) if named else None)


def _set_cell_array(dataset, name: str, values: np.ndarray) -> None:
    """Put ``values`` (one row per cell) on ``dataset`` as the cell array ``name``, replacing one of that name."""
    array = numpy_to_vtk(np.ascontiguousarray(values), deep=1)
    array.SetName(name)
    dataset.GetCellData().RemoveArray(name)
    dataset.GetCellData().AddArray(array)


def _drop_unwritten(dataset, fibres: np.ndarray | None, source: str, target: str) -> None:
    """Remove from the export's copy the fields an earlier export or run left that this export does
    not write anew, with a warning naming them: the ``fibre`` / ``sheet`` cell vectors this export
    has no fibres (or no sheet) for, and the channels (:data:`.channels.CHANNEL_FIELD`) of earlier tags.

    Why: a ``.vtu`` re-exported without fibres from an earlier fibre export kept its ``fibre`` and
    ``sheet``, and a simulator read them as this model's (another helix, or another mesh's rule
    beside the new tags); ``bz_channel`` is where the earlier tags' channels ran, not the new ones'."""
    from .channels import CHANNEL_FIELD

    written = () if fibres is None else (FIBRE_ARRAY, SHEET_ARRAY)[:fibres.shape[1] // 3]
    stale = [(data, name) for data, names in ((dataset.GetCellData(), (FIBRE_ARRAY, SHEET_ARRAY)),
                                              (dataset.GetPointData(), (FIBRE_ARRAY, SHEET_ARRAY, CHANNEL_FIELD)))
             for name in names if data.HasArray(name) and not (data is dataset.GetCellData() and name in written)]
    for data, name in stale:
        data.RemoveArray(name)
    if stale:
        logger.warning("%s carries %s from an earlier export or run, which this export does not write anew: not "
                       "copied to %s, whose fibres and tags are this export's alone (give --fibres to write fibres)",
                       source, ", ".join(sorted({name for _, name in stale})), target)


def write_tagged_vtu(mesh: Mesh, tags: TissueTags, path: str | Path, fibres: np.ndarray | None = None,
                     fibre_rule: dict | None = None) -> None:
    """The mesh as ``.vtu`` with ``tissue_tag`` as cell and point data (meshtool and ParaView read it).

    ``fibres`` (one row per element, in the frame of ``mesh.space``, as the ``.lon``'s): written as
    the unit cell vectors :data:`FIBRE_ARRAY` (and :data:`SHEET_ARRAY` with 6 components), in the
    frame of the written points, so a modeller finds them under names that say what they are;
    ``fibre_rule``: the rule's record (rule-based, not measured) as the :data:`FIBRE_RULE_ARRAY` note,
    the ``.vtu``'s counterpart of ``PREFIX.json``'s ``fibre_rule``."""
    target = Path(path)
    if target.suffix.lower() != ".vtu":
        raise CardioScarError(f"--output for --format vtu must end in .vtu or be a prefix, got '{target.name}'")
    check_vtu_exportable(mesh)
    copy = mesh.dataset.NewInstance()
    copy.DeepCopy(mesh.dataset)
    field = None if fibres is None else unit_fibres(fibres, copy.GetNumberOfCells())
    _drop_unwritten(copy, field, mesh.path.name if mesh.path else "the mesh", target.name)
    _set_cell_array(copy, TAG_ARRAY, np.asarray(tags.element_tags, np.int32))
    if field is not None:
        _set_cell_array(copy, FIBRE_ARRAY, field[:, :3])
        if field.shape[1] == 6:
            _set_cell_array(copy, SHEET_ARRAY, field[:, 3:])
    set_text_field(copy, FIBRE_RULE_ARRAY, None if fibre_rule is None else json.dumps(fibre_rule))
    note_tag_values(copy, tags.tag_values, tags)
    write_mesh(Mesh(dataset=copy, space=mesh.space, path=mesh.path), target, {TAG_ARRAY: tags.node_tags})
