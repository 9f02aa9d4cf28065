"""A volumetric myocardium mesh built from the label map of a short-axis stack.

Why: a user with a segmented LGE (or cine) stack but no heart mesh still needs one to reconstruct
the scar on, and the leave-one-slice-out benchmark needs a mesh that knows nothing of the slice
it holds out. The myocardium of a clinical stack is only known on slices 8-13 mm apart, so it is
interpolated between them by shape, not by stacking: each used slice's myocardium mask becomes an
in-plane signed distance map (mm, negative inside), the maps of the two slices around a height
are blended linearly along the stack axis (shape-based interpolation: the wall moves smoothly
from one contour to the next instead of jumping halfway), and the interpolated myocardium is cut
into a regular grid of hexahedral voxels. Beyond the first and last used slice the end slice's
shape is kept for ``extend_mm`` (by default half the slice spacing: the end slices' own slabs), to
the nearest whole voxel layer (a layer is kept when its centre lies within that extent).

The grid's axes follow the image's i, j, k axes (so an oblique image gives an oblique mesh) and
its nodes are independent of the pixel grid. Points are in LPS millimetres, the frame of
SimpleITK and of the rest of the library.
"""

from __future__ import annotations

import logging
from typing import Iterable, Sequence

import numpy as np
import SimpleITK as sitk
import vtk
from scipy import ndimage
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from ..aha.islands import node_parts
from ..evaluate.baselines import signed_distance_mm
from ..errors import CardioScarError
from ..io.checks import check_label_list, whole_labels
from ..io.meshio import Mesh
from ..lge.mask_fit import SOLID_MASK_ADVICE, solid_slices
from .myocardium import MESH_HARM, check_myocardium_labels

logger = logging.getLogger(__name__)

#: EMIDEC / many label maps: 2 normal myocardium, 3 infarct, 4 no-reflow.
MYOCARDIUM_LABELS = (2, 3, 4)


def labelled_slices(label_array_kji: np.ndarray, labels: Iterable[int]) -> list[int]:
    """Indices k of the slices that hold at least one pixel of ``labels``."""
    mask = np.isin(np.asarray(label_array_kji), list(labels))
    return [int(k) for k in np.flatnonzero(mask.any(axis=(1, 2)))]


def myocardium_mesh_from_labels(label_image: sitk.Image, labels: Sequence[int] = MYOCARDIUM_LABELS,
                                held_out_k: int | Iterable[int] | None = None, spacing_mm: float = 1.5,
                                extend_mm: float | None = None) -> Mesh:
    """Hexahedral voxel mesh (LPS mm) of the myocardium of a label stack, interpolated between slices.

    ``labels``: the label values that are myocardium (EMIDEC: 2, 3, 4). ``held_out_k``: slice
    indices (along k) whose labels must not shape the mesh (leave-one-slice-out); the myocardium
    there is interpolated from the other slices. ``spacing_mm``: edge of the cubic voxels.
    ``extend_mm``: how far the end slices' shape is continued beyond them (default: half the
    median slice spacing). A voxel is kept when the interpolated signed distance at its centre is
    <= 0; the mesh is a ``vtkUnstructuredGrid`` of ``VTK_HEXAHEDRON`` cells (not ``VTK_VOXEL``: a
    voxel must stay axis-aligned, which an oblique image direction breaks, and simulators'
    converters such as meshtool read hexahedra), each with a positive volume.

    Raises:
        CardioScarError: not a 3D label image, a bad spacing, a held-out index out of range, or fewer
            than two slices with labels.
    """
    if label_image.GetDimension() != 3:
        raise CardioScarError(f"The label image must be 3D (a short-axis stack), got {label_image.GetDimension()}D")
    if not (np.isfinite(spacing_mm) and 0.2 <= spacing_mm <= 10.0):
        raise CardioScarError(f"The mesh voxel edge (spacing_mm, --spacing) must be within 0.2-10 mm, got {spacing_mm}")
    labels = sorted(set(check_label_list(labels, "The myocardium labels (labels, --myocardium-labels)", "[2, 3, 4]")))
    if not labels:
        raise CardioScarError("No myocardium labels given; list them, e.g. 2,3,4")
    array = whole_labels(sitk.GetArrayViewFromImage(label_image), "The label image (--labels)")
    held_out = set() if held_out_k is None else {int(held_out_k)} if np.isscalar(held_out_k) \
        else {int(k) for k in held_out_k}
    outside = sorted(k for k in held_out if not 0 <= k < array.shape[0])
    if outside:
        raise CardioScarError(f"Held-out slice index {outside[0]} (held_out_k, --exclude-slices) is out of range: valid 0-{array.shape[0] - 1}")
    used = [k for k in labelled_slices(array, labels) if k not in held_out]
    if len(used) < 2:
        raise CardioScarError(f"The label image has {len(used)} slice(s) with labels {labels} besides the held-out "
                              f"ones; a myocardium mesh needs at least two")
    di, dj, dk = (float(s) for s in label_image.GetSpacing())
    _warn_about_a_flat_heart(array[used], labels, (di, dj, dk), used)
    heights = np.array(used, dtype=float) * dk
    if extend_mm is None:
        extend_mm = 0.5 * float(np.median(np.diff(heights)))
    if not (np.isfinite(extend_mm) and extend_mm >= 0):
        raise CardioScarError(f"mesh extend_mm must be >= 0, got {extend_mm}")

    # the cavity listed as myocardium (1,2,3,4 on EMIDEC) fills the LV: P001 133,189 nodes for 73,382
    check_myocardium_labels(list(array[used]), labels, [(di, dj)] * len(used), "--myocardium-labels (myocardium labels)",
                            MESH_HARM)
    masks = np.isin(array[used], labels)
    _refuse_a_solid_myocardium(masks, labels)
    _warn_about_a_coarse_mesh(masks, (di, dj), spacing_mm)
    empty_mm = float(np.median(np.diff(heights)))
    distances = [signed_distance_mm(mask.astype(float), (di, dj), empty_mm) for mask in masks]

    # The in-plane box of every used slice's myocardium, two pixels wider, in mm from pixel (0, 0).
    rows, cols = np.nonzero(masks.any(axis=0))
    low = np.array([(cols.min() - 2) * di, (rows.min() - 2) * dj, heights[0] - extend_mm])
    high = np.array([(cols.max() + 2) * di, (rows.max() + 2) * dj, heights[-1] + extend_mm])
    n_cells = np.maximum(np.ceil((high - low) / spacing_mm).astype(int), 1)
    # Along the stack, only layers whose centre lies within the end slices' extent: rounding the count
    # up added a layer beyond the last slab whenever the extent is not a whole number of voxels (EMIDEC
    # P051, 5 slices of 10 mm at 1.5 mm: 34 layers for 50 mm), tissue outside the acquired image, in no
    # slab, at the base, moving the AHA base 1 mm out (19 of EMIDEC's 75 stacks).
    n_cells[2] = max(int(np.floor((high[2] - low[2]) / spacing_mm + 0.5)), 1)
    centres = [low[a] + (np.arange(n_cells[a]) + 0.5) * spacing_mm for a in range(3)]

    # Each used slice's signed distance at the voxel centres' in-plane positions: (slices, ny, nx).
    jj, ii = np.meshgrid(centres[1] / dj, centres[0] / di, indexing="ij")
    sampled = np.stack([ndimage.map_coordinates(d, [jj, ii], order=1, mode="nearest") for d in distances])
    inside = np.empty((n_cells[2], n_cells[1], n_cells[0]), dtype=np.uint8)
    for level, z in enumerate(centres[2]):
        upper = int(np.clip(np.searchsorted(heights, z, side="right"), 1, len(heights) - 1))
        w = float(np.clip((z - heights[upper - 1]) / (heights[upper] - heights[upper - 1]), 0.0, 1.0))
        inside[level] = ((1.0 - w) * sampled[upper - 1] + w * sampled[upper]) <= 0.0
    if not inside.any():
        raise CardioScarError("The interpolated myocardium holds no voxel; use a smaller mesh spacing_mm")

    grid = _voxel_grid(inside, low, spacing_mm)
    _to_lps(grid, label_image)
    _voxels_to_hexahedra(grid, np.linalg.det(np.asarray(label_image.GetDirection()).reshape(3, 3)) < 0)
    _warn_about_loose_parts(grid, label_image, used)
    # its node and cell counts are said once, by the line of the file it is written to
    logger.info("Myocardium mesh from labels %s of slices %s (held out %s): hexahedra of %.2f mm", labels, used,
                sorted(held_out), spacing_mm)
    return Mesh(grid, "LPS")


#: The myocardium's extent along the stack over its widest in-plane extent below which the spacing
#: is doubted. EMIDEC's 75 maps and ACDC's two: 0.71-1.30 (a short-axis stack covers the LV, about
#: as long as it is wide); the same maps read with the 1 mm spacing of a header that records none
#: (an array saved with an identity affine, a PNG stack): 0.09-0.21.
FLAT_HEART_RATIO = 0.3


def _warn_about_a_flat_heart(masks_kji: np.ndarray, labels: Sequence[int], spacing: tuple[float, float, float],
                             used: Sequence[int]) -> None:
    """Warn when the myocardium is far flatter along the stack than across it.

    Why: a label map whose header records no physical spacing reads as 1 mm in every direction,
    so a stack of 10 mm slices becomes a heart a tenth of its length: the mesh is built, exported
    and simulated without a word, its volumes and conduction paths wrong. A partial stack (two
    slices meshed on purpose) can be as flat, hence a warning."""
    inside = np.isin(masks_kji, labels)
    rows, cols = np.nonzero(inside.any(axis=0))
    across = max((cols.max() - cols.min() + 1) * spacing[0], (rows.max() - rows.min() + 1) * spacing[1])
    along = (used[-1] - used[0] + 1) * spacing[2]
    if along < FLAT_HEART_RATIO * across:
        logger.warning("the myocardium spans %.0f mm along the stack (slices %d-%d, %g mm apart) but %.0f mm across: "
                       "a short-axis stack's LV is about as long as it is wide (0.7-1.3 on EMIDEC and ACDC), so the "
                       "image's spacing (%g, %g, %g mm) looks wrong (a header without physical spacing reads 1 mm): "
                       "the mesh would be %.1f times as wide as it is long; give the label map with its true spacing",
                       along, used[0], used[-1], spacing[2], across, *spacing, across / along)


#: Voxels through the wall below which the mesh is too coarse for the wall's depth. EMIDEC's 75 maps:
#: myocardium is 6.8-13.2 mm thick (median 9.1; ACDC 101: 6.8 and 8.2), so the default 1.5 mm voxel
#: gives 4-9 through it and the test suite's 3 mm at least 2.
MIN_VOXELS_THROUGH_WALL = 2.0


def _refuse_a_solid_myocardium(masks_kji: np.ndarray, labels: Sequence[int]) -> None:
    """Refuse myocardium labels that enclose no cavity on any slice: the blood pool (EMIDEC's cavity,
    ``--myocardium-labels 1`` read as "the myocardium of a 0/1 mask") or another solid structure.

    Why: EMIDEC P001 given label 1 was meshed as a solid LV cavity (70,137 nodes), exit 0, and
    ``prepare`` then only warned; every own map of EMIDEC's 75 and ACDC's 2 encloses the cavity on
    some slice, so a stack of solid slices is never a wall (``lge.mask_fit.solid_slices``)."""
    covered = solid_slices(list(masks_kji))
    if covered:
        raise CardioScarError(f"--myocardium-labels {','.join(map(str, labels))} enclose no cavity on any of the "
                              f"{covered} slices they cover, where a myocardium is a ring around the blood pool: "
                              f"{SOLID_MASK_ADVICE}")


def wall_thickness_mm(masks_kji: np.ndarray, spacing_ij: tuple[float, float]) -> float:
    """The myocardium's typical in-plane thickness (mm): four times the mean distance of its pixels
    from its edge (a band of thickness T: T/4), less the half pixel a pixel's centre lies inside."""
    di, dj = spacing_ij
    depths = [ndimage.distance_transform_edt(mask, sampling=(dj, di))[mask] for mask in masks_kji if mask.any()]
    return 4.0 * (float(np.concatenate(depths).mean()) - 0.5 * min(di, dj))


def _warn_about_a_coarse_mesh(masks_kji: np.ndarray, spacing_ij: tuple[float, float], spacing_mm: float) -> None:
    """Warn when the mesh's voxel edge leaves under two voxels through the wall.

    Why: ``--spacing`` (the mesh's voxel edge) given as the slices' spacing, 10 mm, made EMIDEC P001's
    mesh of 200 voxels, one through its 10 mm wall, without a word: every node on both the endo- and
    the epicardium, so the transmurality, the channels' layers and the fibre rule's helix through the
    wall have nothing to resolve. A coarse mesh may be meant (a quick look): a warning."""
    thickness = wall_thickness_mm(masks_kji, spacing_ij)
    if spacing_mm * MIN_VOXELS_THROUGH_WALL > thickness:
        logger.warning("the mesh's voxel edge (--spacing, spacing_mm) %g mm is over half the myocardium's thickness in "
                       "the labels (about %.1f mm): under %g voxels through the wall, so its depth (transmurality, the "
                       "channels' layers, the fibre rule's helix) is not resolved; --spacing is the mesh's voxel edge "
                       "(default 1.5 mm), not the slices' spacing", spacing_mm, thickness, MIN_VOXELS_THROUGH_WALL)


def _warn_about_loose_parts(grid: vtk.vtkUnstructuredGrid, label_image: sitk.Image, used: Sequence[int]) -> None:
    """Warn when the mesh falls apart into pieces no cell joins. Why: where the myocardium shrinks
    a lot from one slice to the next (a small apical ring above a wide one), the blended shapes
    may not overlap, and the end slice's ring becomes a piece of its own a few millimetres from
    the rest (EMIDEC P003 and P064 at 1.5 mm: 3 % and 5 % of the nodes, 2.6 and 8.9 mm away). A
    simulator conducts nothing across that gap, and ``aha`` refuses such a piece when it lies
    over 5 mm away."""
    points = vtk_to_numpy(grid.GetPoints().GetData()).astype(np.float64)
    parts = node_parts(grid, np.ones(len(points), dtype=bool))
    sizes = np.bincount(parts)
    if len(sizes) < 2:
        return
    direction = np.asarray(label_image.GetDirection(), dtype=np.float64).reshape(3, 3)
    k = (points - np.asarray(label_image.GetOrigin())) @ direction[:, 2] / label_image.GetSpacing()[2]
    main = int(np.argmax(sizes))
    loose = parts != main
    slices = sorted({min(used, key=lambda u: abs(u - value)) for value in np.unique(np.rint(k[loose]))})
    logger.warning("the mesh falls apart: %d of its %d nodes lie in %d piece(s) that no cell joins to the rest, near "
                   "slice(s) k=%s (the myocardium changes too much between neighbouring slices to be interpolated); a "
                   "simulation would not conduct across the gap: check those slices' labels, or leave them out "
                   "(--exclude-slices)", int(loose.sum()), len(points), len(sizes) - 1,
                   ",".join(str(v) for v in slices))


def _voxel_grid(inside_zyx: np.ndarray, low_mm: np.ndarray, spacing_mm: float) -> vtk.vtkUnstructuredGrid:
    """The voxels flagged in ``inside_zyx`` as an unstructured grid, in mm of the image's i/j/k axes."""
    image = vtk.vtkImageData()
    image.SetDimensions(*(n + 1 for n in inside_zyx.shape[::-1]))
    image.SetOrigin(*low_mm)
    image.SetSpacing(spacing_mm, spacing_mm, spacing_mm)
    flags = numpy_to_vtk(inside_zyx.ravel(), deep=True)
    flags.SetName("myocardium")
    image.GetCellData().SetScalars(flags)
    threshold = vtk.vtkThreshold()
    threshold.SetInputData(image)
    threshold.SetInputArrayToProcess(0, 0, 0, vtk.vtkDataObject.FIELD_ASSOCIATION_CELLS, "myocardium")
    threshold.SetThresholdFunction(vtk.vtkThreshold.THRESHOLD_UPPER)
    threshold.SetUpperThreshold(0.5)
    threshold.Update()
    grid = vtk.vtkUnstructuredGrid()
    grid.DeepCopy(threshold.GetOutput())
    grid.GetCellData().RemoveArray("myocardium")
    return grid


def _to_lps(grid: vtk.vtkUnstructuredGrid, image: sitk.Image) -> None:
    """Move points from mm along the image's i/j/k axes to LPS: origin + direction x (mm)."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    local = vtk_to_numpy(grid.GetPoints().GetData()).astype(np.float64)
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(local @ direction.T + np.asarray(image.GetOrigin()), deep=True))
    grid.SetPoints(points)


#: Hexahedron node i is voxel node _VOXEL_TO_HEX[i] (VTK lists a voxel's nodes x-fastest, a
#: hexahedron's round each face); _FLIP swaps the bottom and top faces, turning an inside-out cell.
_VOXEL_TO_HEX = np.array([0, 1, 3, 2, 4, 5, 7, 6])
_FLIP = np.array([4, 5, 6, 7, 0, 1, 2, 3])


def _voxels_to_hexahedra(grid: vtk.vtkUnstructuredGrid, mirrored: bool) -> None:
    """Replace the grid's voxel cells by hexahedra on the same nodes; ``mirrored`` (the image's
    direction has a negative determinant) flips each so that its volume stays positive."""
    n_cells = grid.GetNumberOfCells()
    connectivity = vtk_to_numpy(grid.GetCells().GetConnectivityArray()).reshape(n_cells, 8)
    hexahedra = connectivity[:, _VOXEL_TO_HEX]
    if mirrored:
        hexahedra = hexahedra[:, _FLIP]
    cells = vtk.vtkCellArray()
    offsets = numpy_to_vtk(np.arange(0, 8 * n_cells + 1, 8, dtype=np.int64), deep=True)
    cells.SetData(offsets, numpy_to_vtk(np.ascontiguousarray(hexahedra, dtype=np.int64).ravel(), deep=True))
    grid.SetCells(vtk.VTK_HEXAHEDRON, cells)
