"""Optional partial-volume correction of group targets.

A clinical pixel holds the mean of everything its footprint box covers (pixel square in-plane x
slab of half-width ``half_thickness`` along the normal). Where the box straddles the endocardium or the
epicardium, or the wall runs obliquely through a thick slab, part of the box is blood or
background, so a scar map expressed per *box* (e.g. a scar probability over the whole image) is
diluted by the myocardial fraction ``phi_g`` of the box. The group loss, however, asks the mean of
the field over the group's *myocardial* nodes to equal the target, so the diluted value biases the
reconstruction towards too little scar.

The correction estimates ``phi_g`` from the volumetric mesh (the myocardium) and replaces each
target by ``clip(y_g / phi_g, 0, 1)``. Groups whose box is almost empty of myocardium
(``phi_g < min_coverage``) are dropped: there the division amplifies pixel noise and the error of
the ``phi_g`` estimate itself by more than ``1 / min_coverage``.

Estimating ``phi_g``: every box is sampled on a regular midpoint grid (``in_plane_samples`` per
in-plane side, and along the normal as many layers as needed for a step of at most
``normal_step_mm``), all boxes at once, and one ``vtkProbeFilter`` call (with a static cell
locator) says which samples fall inside a 3D cell of the mesh. ``phi_g`` is the inside fraction.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Sequence

import numpy as np
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from ..errors import CardioScarError
from .mapping import GroupMapping
from .slices import SliceLayer

logger = logging.getLogger(__name__)

#: Groups whose box is less than this fraction myocardium are dropped (see the module docstring).
DEFAULT_MIN_COVERAGE = 0.1
#: 3 x 3 sub-squares: a 0.5 mm in-plane step for 1.5 mm pixels, finer than typical tet edges.
DEFAULT_IN_PLANE_SAMPLES = 3
#: Largest sample step along the slice normal (mm): 8 layers for the usual 8 mm slab.
DEFAULT_NORMAL_STEP_MM = 1.0
_RAS_FROM_LPS = np.array([-1.0, -1.0, 1.0])


def require_volumetric(dataset: vtk.vtkDataSet) -> None:
    """Raise :class:`CardioScarError` unless ``dataset`` has 3D cells (the myocardium as a volume)."""
    cell_types = vtk.vtkCellTypes()
    # VTK 9.6 renamed both calls; Slicer may ship an older VTK, so use whichever exists.
    getattr(dataset, "GetDistinctCellTypes", dataset.GetCellTypes)(cell_types)
    dimension = getattr(vtk, "vtkCellTypeUtilities", vtk.vtkCellTypes).GetDimension
    types = [cell_types.GetCellType(k) for k in range(cell_types.GetNumberOfTypes())]
    if not any(dimension(int(t)) == 3 for t in types):
        raise CardioScarError(
            "Partial-volume correction needs a volumetric mesh (.vtu / unstructured grid with tetrahedra), "
            f"but the mesh has no 3D cells ({dataset.GetClassName()}); drop --partial-volume-correction or use the volume mesh.")


def _box_samples(layer: SliceLayer, pixels: np.ndarray, in_plane: int, normal_step_mm: float) -> np.ndarray:
    """(len(pixels) * S, 3) LPS midpoint samples of each pixel's box, grouped per pixel."""
    n_d = max(1, math.ceil(2.0 * layer.half_thickness / normal_step_mm))
    plane = (np.arange(in_plane) + 0.5) / in_plane - 0.5
    depth = ((np.arange(n_d) + 0.5) / n_d - 0.5) * 2.0 * layer.half_thickness
    du, dv, dd = (a.ravel() for a in np.meshgrid(plane, plane, depth, indexing="ij"))
    offsets = np.column_stack([du, dv, dd])                              # (S, 3) in (i, j, d mm)
    index = np.column_stack([pixels.astype(np.float64), np.zeros(len(pixels))])
    samples = (index[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
    matrix = layer.index_to_lps()
    return samples @ matrix[:3, :3].T + matrix[:3, 3]


def inside_cells(dataset: vtk.vtkDataSet, points: np.ndarray) -> np.ndarray:
    """Boolean per point: inside some cell of ``dataset`` (one C++ probe over all points; also the
    fibre rule's cross-sections, :func:`cardioscar.simulation.fibres.cavity_counts`)."""
    vtk_points = vtk.vtkPoints()
    vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True))
    probe_input = vtk.vtkPolyData()
    probe_input.SetPoints(vtk_points)
    locator = vtk.vtkStaticCellLocator()
    locator.SetDataSet(dataset)
    locator.BuildLocator()
    strategy = vtk.vtkCellLocatorStrategy()
    strategy.SetCellLocator(locator)
    probe = vtk.vtkProbeFilter()
    probe.SetInputData(probe_input)
    probe.SetSourceData(dataset)
    probe.SetFindCellStrategy(strategy)
    probe.PassPointArraysOff()
    probe.Update()
    mask = probe.GetOutput().GetPointData().GetArray(probe.GetValidPointMaskArrayName())
    return vtk_to_numpy(mask).astype(bool)


def myocardial_coverage(
    dataset: vtk.vtkDataSet,
    slices: Sequence[SliceLayer],
    group_slice: np.ndarray,
    group_pixel: np.ndarray,
    *,
    space: str = "LPS",
    in_plane_samples: int = DEFAULT_IN_PLANE_SAMPLES,
    normal_step_mm: float = DEFAULT_NORMAL_STEP_MM,
) -> np.ndarray:
    """(M,) fraction of each group's footprint box that lies inside the volumetric mesh.

    ``space`` is the frame of the dataset's coordinates ("LPS" or "RAS", as in
    :class:`cardioscar.io.meshio.Mesh`); the samples are generated in LPS and moved into that frame.
    """
    require_volumetric(dataset)
    if in_plane_samples < 1 or not normal_step_mm > 0:
        raise CardioScarError(f"in_plane_samples must be >= 1 and normal_step_mm > 0, got {in_plane_samples}, {normal_step_mm}.")
    group_slice = np.asarray(group_slice, dtype=np.int64)
    group_pixel = np.asarray(group_pixel, dtype=np.int64).reshape(-1, 2)
    coverage = np.zeros(len(group_slice), dtype=np.float64)
    parts, owners, counts = [], [], []
    for s, layer in enumerate(slices):
        mine = np.flatnonzero(group_slice == s)
        if mine.size == 0:
            continue
        samples = _box_samples(layer, group_pixel[mine], in_plane_samples, normal_step_mm)
        parts.append(samples)
        owners.append(mine)
        counts.append(samples.shape[0] // mine.size)
    if not parts:
        return coverage
    points = np.concatenate(parts)
    if space == "RAS":
        points = points * _RAS_FROM_LPS
    inside = inside_cells(dataset, points)
    start = 0
    for mine, per_group in zip(owners, counts):
        stop = start + mine.size * per_group
        coverage[mine] = inside[start:stop].reshape(mine.size, per_group).mean(axis=1)
        start = stop
    # at DEBUG: correct_targets, which every caller runs next, says the coverage in its one line
    logger.debug("Partial volume: %d samples in %d boxes, median myocardial coverage %.2f",
                 points.shape[0], coverage.size, float(np.median(coverage)))
    return coverage


def correct_targets(mapping: GroupMapping, coverage: np.ndarray,
                    min_coverage: float = DEFAULT_MIN_COVERAGE) -> tuple[GroupMapping, np.ndarray]:
    """Divide each group's target by its coverage, drop groups below ``min_coverage``.

    Returns the new mapping (groups renumbered contiguously, their rows removed) and the coverage
    of the kept groups.
    """
    if not 0.0 < min_coverage <= 1.0:
        raise CardioScarError(f"min_coverage must be within (0, 1], got {min_coverage}.")
    coverage = np.asarray(coverage, dtype=np.float64)
    if coverage.shape != (mapping.n_groups,):
        raise CardioScarError(f"coverage has shape {coverage.shape}, expected ({mapping.n_groups},) for the mapping.")
    keep = coverage >= min_coverage
    dropped = int((~keep).sum())
    if not keep.any():
        raise CardioScarError(
            f"Partial-volume correction: no group has a myocardial coverage >= {min_coverage}; check that the mesh is "
            "the myocardium volume and shares the slices' frame.")
    new_id = np.cumsum(keep) - 1
    row_keep = keep[mapping.group_ids]
    corrected = np.clip(mapping.group_values[keep] / coverage[keep], 0.0, 1.0)
    logger.info("Partial volume: median myocardial coverage %.2f; dropped %d of %d groups (%d rows) with coverage "
                "< %.2f; %d targets clipped to 1", float(np.median(coverage)), dropped, mapping.n_groups,
                int((~row_keep).sum()), min_coverage, int(np.sum(mapping.group_values[keep] > coverage[keep])))
    new_mapping = replace(
        mapping,
        node_ids=mapping.node_ids[row_keep],
        group_ids=new_id[mapping.group_ids[row_keep]].astype(np.int64),
        row_weights=None if mapping.row_weights is None else mapping.row_weights[row_keep],
        group_values=corrected,
        group_slice=mapping.group_slice[keep],
        group_pixel=mapping.group_pixel[keep],
    )
    return new_mapping, coverage[keep]


def corrected_slices(slices: Sequence[SliceLayer], group_slice: np.ndarray, group_pixel: np.ndarray,
                     group_values: np.ndarray) -> list[SliceLayer]:
    """Slices whose grouped pixels hold the corrected targets (other pixels keep their values).

    Lets slice-based methods (the baselines) see the same partial-volume-corrected data as the
    network, so comparisons between them are fair.
    """
    layers = []
    for s, layer in enumerate(slices):
        values = np.array(layer.values, dtype=np.float64)
        mine = np.asarray(group_slice) == s
        pixels = np.asarray(group_pixel)[mine]
        values[pixels[:, 1], pixels[:, 0]] = np.asarray(group_values)[mine]
        layers.append(replace(layer, values=values))
    return layers
