"""Whether a volumetric mesh (or a closed surface mesh) holds one ventricle: the cavities its
cross-sections enclose.

Why: the steps that take the whole mesh as the LV wall (the fibre rule, the channel search; both
through :func:`cardioscar.aha.wall.lv_wall`) would give a biventricular mesh's RV free wall and
septum LV fibres and LV depths without a word. A plane cuts an LV's cavity once; short-axis
sections of both ventricles enclose the RV's cavity beside the LV's. The thresholds were measured
by ``Testing/benchmarks/fibre_one_ventricle.py`` (``Testing/benchmarks/ROBUSTNESS.md``).
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from ..errors import CardioScarError

logger = logging.getLogger(__name__)

#: How :func:`cavity_counts` cuts a mesh: :data:`CAVITY_LEVELS` cross-sections evenly over this
#: share of its length along each direction (away from the apex, where the cavity closes, and the
#: base, where a mesh may be open), across :data:`CAVITY_DIRECTIONS` directions over a hemisphere
#: (about 18 degrees apart; a biventricular mesh's shape gives no LV axis: on biv-me's, the sections
#: with both cavities lie 83-87 degrees from the shape's axis), sampled from the mesh's cells on a grid of
#: :data:`CAVITY_PIXEL_MM` (larger for a mesh of over :data:`MAX_CAVITY_SAMPLES` grid points);
#: a cavity is an enclosed hole of at least :data:`MIN_CAVITY_MM2` (5 mm wide; gaps between a
#: coarse mesh's elements are far smaller).
CAVITY_LEVELS, CAVITY_SPAN, CAVITY_DIRECTIONS = 15, (0.2, 0.8), 40
CAVITY_PIXEL_MM, MAX_CAVITY_SAMPLES, MIN_CAVITY_MM2 = 1.5, 1_000_000, 20.0
#: The share of one direction's cross-sections that may enclose two cavities or more before the
#: mesh is taken for more than one ventricle (a plane cuts an LV's cavity once; a biventricular
#: mesh's short-axis sections cut the LV's and the RV's). Measured by
#: ``Testing/benchmarks/fibre_one_ventricle.py`` (ROBUSTNESS.md): 0-2 of 15 on LV-only meshes (EMIDEC's
#: 75 ``mesh-from-labels`` meshes, the demo and segmented phantoms, biv-me's LV part), 14 of 15 on
#: biv-me's biventricular myocardium; refused over 6.
MAX_TWO_CAVITY_SHARE = 0.4


def closed_surface(dataset_lps) -> Optional[vtk.vtkPolyData]:
    """The triangles of a surface mesh (no volume cells) when they close (no edge bounds one face
    only: the myocardium's epicardium, endocardia and base joined), else None. Why: such a surface
    encloses the wall, so its cross-sections can be cut as a volumetric mesh's are; an open one
    (a base left open, an endocardium alone) encloses nothing that tells the wall from the cavity."""
    geometry = vtk.vtkGeometryFilter()
    geometry.SetInputData(dataset_lps)
    triangles = vtk.vtkTriangleFilter()
    triangles.SetInputConnection(geometry.GetOutputPort())
    triangles.Update()
    surface = triangles.GetOutput()
    if surface.GetNumberOfPolys() == 0:
        return None
    edges = vtk.vtkFeatureEdges()
    edges.SetInputData(surface)
    for switch in (edges.BoundaryEdgesOn, edges.NonManifoldEdgesOff, edges.FeatureEdgesOff, edges.ManifoldEdgesOff):
        switch()
    edges.Update()
    return surface if edges.GetOutput().GetNumberOfCells() == 0 else None


def has_cross_sections(dataset_lps) -> bool:
    """Whether :func:`cavity_counts` can cut the mesh: volume cells, or a closed surface."""
    from .wall import is_volumetric

    return is_volumetric(dataset_lps) or closed_surface(dataset_lps) is not None


def enclosed_grid(surface: vtk.vtkPolyData, origin: np.ndarray, pixel: float, shape: list[int]) -> np.ndarray:
    """The grid points (``shape``, from ``origin`` by ``pixel``) that ``surface`` encloses, by the
    parity of its crossings along each grid row (VTK's stencil): a wall between two surfaces is
    inside, the cavity an endocardium closes is not."""
    stencil = vtk.vtkPolyDataToImageStencil()
    stencil.SetInputData(surface)
    stencil.SetOutputOrigin(*origin)
    stencil.SetOutputSpacing(pixel, pixel, pixel)
    stencil.SetOutputWholeExtent(0, shape[0] - 1, 0, shape[1] - 1, 0, shape[2] - 1)
    image = vtk.vtkImageStencilToImage()
    image.SetInputConnection(stencil.GetOutputPort())
    image.SetInsideValue(1)
    image.SetOutsideValue(0)
    image.SetOutputScalarType(vtk.VTK_UNSIGNED_CHAR)
    image.Update()
    values = vtk_to_numpy(image.GetOutput().GetPointData().GetScalars())
    return values.reshape(shape[::-1]).transpose(2, 1, 0).astype(bool)  # VTK's x fastest -> (nx, ny, nz)


def _inside_grid(dataset_lps) -> tuple[np.ndarray, np.ndarray, float]:
    """The mesh's cells (a closed surface mesh: what it encloses) on a regular LPS grid: (nx, ny, nz)
    inside or not, the grid's first point and its pixel (mm); two pixels of outside around the mesh."""
    from ..prepare.partial_volume import inside_cells
    from .wall import is_volumetric

    low, high = (np.array(dataset_lps.GetBounds()).reshape(3, 2).T)
    pixel = max(CAVITY_PIXEL_MM, float(np.prod(high - low) / MAX_CAVITY_SAMPLES) ** (1.0 / 3.0))
    origin = low - 2.0 * pixel
    axes = [origin[k] + pixel * np.arange(int(np.ceil((high[k] - low[k]) / pixel)) + 5) for k in range(3)]
    shape = [len(a) for a in axes]
    surface = None if is_volumetric(dataset_lps) else closed_surface(dataset_lps)
    if surface is not None:
        return enclosed_grid(surface, origin, pixel, shape), origin, pixel
    samples = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return inside_cells(dataset_lps, samples).reshape(shape), origin, pixel


def _cavities(section: np.ndarray, pixel: float) -> int:
    """The enclosed holes of at least :data:`MIN_CAVITY_MM2` in a cross-section (True: the wall)."""
    from scipy import ndimage

    four = ndimage.generate_binary_structure(2, 1)  # the outside's 4-neighbours: no leak through a diagonal
    regions, _ = ndimage.label(~section, structure=four)
    sizes = np.bincount(regions.ravel())
    sizes[np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))] = 0  # around it
    sizes[0] = 0  # the wall
    return int((sizes * pixel ** 2 >= MIN_CAVITY_MM2).sum())


def _sections(inside: np.ndarray, origin: np.ndarray, pixel: float, direction: np.ndarray,
              filled: np.ndarray) -> np.ndarray:
    """(levels, n, n) cross-sections of the gridded mesh (``filled``: its grid points inside, LPS)
    across the unit ``direction``, by the nearest grid point (outside the grid: outside the mesh)."""
    from scipy import ndimage

    from .shape_axis import frames

    e_u, e_v = (vector[0] for vector in frames(direction[None, :]))
    centre = filled.mean(axis=0)
    heights = (filled - centre) @ direction
    half = float(np.linalg.norm(filled - centre, axis=1).max()) + 2.0 * pixel  # outside all round
    steps = np.arange(-half, half + pixel, pixel)
    levels = heights.min() + np.linspace(*CAVITY_SPAN, CAVITY_LEVELS) * np.ptp(heights)
    grid_h, grid_u, grid_v = np.meshgrid(levels, steps, steps, indexing="ij")
    samples = centre + grid_h[..., None] * direction + grid_u[..., None] * e_u + grid_v[..., None] * e_v
    index = ((samples - origin) / pixel).reshape(-1, 3).T
    values = ndimage.map_coordinates(inside.astype(np.uint8), index, order=0, mode="constant", cval=0)
    return values.reshape(grid_h.shape).astype(bool)


def cavity_counts(dataset_lps, across: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """The cavities each of the :data:`CAVITY_LEVELS` cross-sections encloses, across the one of
    :data:`CAVITY_DIRECTIONS` directions along which most enclose two or more (then: most
    cavities), or across ``across`` alone (the long axis, where it is known); returns (counts, that
    direction).

    Why: the fibre rule and the channel search are the LV's; on a biventricular mesh they would give
    the RV free wall and the septum LV fibres and depths about an axis the shape does not give,
    without a word. A plane cuts an LV's
    cavity once; short-axis sections of both ventricles enclose two cavities, the RV's beside the
    LV's. Every direction is tried, as a biventricular shape gives no LV long axis to cut across;
    where the long axis is known (given points or slice normal, a clear shape axis), its short-axis
    sections are the ones that would enclose the RV's cavity, and one direction costs a 40th of the
    sections (the grid, a third of a second on the demo mesh, is the rest)."""
    return _counts_across(_inside_grid(dataset_lps), across)


def _counts_across(grid: tuple[np.ndarray, np.ndarray, float], across: Optional[np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cavity_counts` of a mesh already on its grid (:func:`_inside_grid`), which
    :func:`check_one_ventricle` cuts a second time across every direction without gridding it again."""
    from .shape_axis import hemisphere

    inside, origin, pixel = grid
    filled = origin + pixel * np.argwhere(inside)
    if len(filled) == 0:  # a mesh thinner than the grid: no section to cut (the rule refuses it for its wall)
        return np.zeros(CAVITY_LEVELS, dtype=int), hemisphere(1)[0]
    directions = hemisphere(CAVITY_DIRECTIONS) if across is None else [across / np.linalg.norm(across)]
    found = []
    for direction in directions:
        sections = _sections(inside, origin, pixel, direction, filled)
        found.append((np.array([_cavities(section, pixel) for section in sections]), direction))
    # most sections with two cavities, then most cavities (an LV's: across its long axis)
    return max(found, key=lambda pair: (int((pair[0] >= 2).sum()), int(pair[0].sum())))


def check_one_ventricle(dataset_lps, name: str, user: str, advice: str, across: Optional[np.ndarray] = None) -> None:
    """Refuse a mesh whose cross-sections along some direction enclose two cavities too often
    (:func:`cavity_counts`): a mesh of both ventricles, to which ``user`` (an LV-only step: "the
    fibre rule", "the channel search") does not apply; ``advice`` is appended to the error.

    ``across``, the long axis where it is known, is cut alone (a quarter of the time; every LV mesh
    measured encloses one cavity in each section across it) unless one of its sections encloses two,
    when every direction is cut too. Why: biv-me's myocardium at 3 mm voxels has only 5 and 6 of 15
    such sections across its LV's axis and its slice normal, and 8 across another direction
    (``Testing/benchmarks/aha_one_ventricle_axis.py``)."""
    limit = MAX_TWO_CAVITY_SHARE * CAVITY_LEVELS
    grid = _inside_grid(dataset_lps)
    counts, direction = _counts_across(grid, across)
    if across is not None and 0 < (counts >= 2).sum() <= limit:
        counts, direction = _counts_across(grid, None)
    two = int((counts >= 2).sum())
    logger.debug("%s: cavities per cross-section %s across %s", name, counts.tolist(), np.round(direction, 2).tolist())
    if two > limit:
        raise CardioScarError(f"{name} looks biventricular: {two} of {len(counts)} cross-sections across one direction "
                              f"enclose two cavities (an LV's enclose one); {user} is the LV's: give an LV-only "
                              f"mesh{advice}")
