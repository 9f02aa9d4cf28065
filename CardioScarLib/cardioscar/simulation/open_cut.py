"""The mesh's open cut, and which conducting channels open onto it.

Why: a mesh of the LV myocardium usually ends in a cut through the wall (the basal plane of a
phantom or a model; the first and last short-axis slice of a ``mesh-from-labels`` mesh), with no
node beyond it. The channel search closes the core along the mesh's edges, so the core is never
eroded from past the cut: a border-zone strip between core and the cut reads as enclosed, as if
the core went on beyond it, and its ends along the cut read as entrances (on EMIDEC P047 and P028,
channels 1-4 mm below the basal cut). Such a channel may be the mesh's artefact, or a real corridor
that ends at the cut: it is *flagged*, not dropped.

The cut, on a volumetric mesh, from the wall's own pieces (:mod:`cardioscar.aha.wall`: its boundary
faces and its long axis): a boundary face turns *along* the long axis when its normal, averaged over
the faces within :data:`SMOOTHING_STEPS` steps over the surface (a voxel mesh's staircase then turns
as the surface it steps along), is more along the axis than across it
(:func:`~cardioscar.aha.wall.axial_components`: caps, the steps between two slices' rings of a
``mesh-from-labels`` mesh, open ends); such faces joined by shared nodes make patches. A cap or a
step lies on one face of the wall: the across-axis faces around it all face the cavity (the
endocardium) or all face away from it (the epicardium). An open end spans the wall: faces of both
kinds border it, each at least :data:`MIN_SIDE_SHARE` of its border; and it lies at one of the
mesh's two ends along the axis (within :data:`END_SLACK_MM`), where a label mesh's steps that happen
to span the wall (a slice's ring exposed across its width) do not. The cut is the nodes of those
patches. ``Testing/benchmarks/open_cut_meshes.py`` measures it on every mesh kind the tool meets.

A channel is *near the open cut* when one of its entrances (``entrances_lps``, the mean of the
entrance's nodes) lies within half ``max_width_mm`` of a cut node: the reach of the closing, within
which the missing tissue beyond the cut changes what is enclosed.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import vtk
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from vtk.util.numpy_support import vtk_to_numpy

from ..aha.segments import LongAxis
from ..aha.wall import axial_components, boundary_faces, lv_cells_only

logger = logging.getLogger(__name__)

#: A patch of along-axis faces is an open end when each kind of across-axis face (facing the
#: cavity, facing away) is at least this share of the faces bordering it. A cap or step borders
#: one kind (a few faces of the other where a voxel staircase turns); measured in
#: ``Testing/benchmarks/open_cut_meshes.py``.
MIN_SIDE_SHARE = 0.2
#: An open end holds a node within this many mm (along the axis) of the mesh's top or bottom: the
#: steps between a ``mesh-from-labels`` mesh's rings lie a slice (10 mm) or more from its ends.
END_SLACK_MM = 3.0
#: Steps over the surface (faces sharing a node) over which the faces' normals are averaged.
SMOOTHING_STEPS = 2
#: Why a flagged channel is flagged (the summary's, the warning's and the panel's words).
OPEN_CUT_REASON = "may be an artefact of the mesh's open base: the core is closed along the cut"


@dataclasses.dataclass(frozen=True)
class AlongAxisPatch:
    """A patch of boundary faces turned along the long axis: its node ids, the share of the
    across-axis faces bordering it that face the cavity (0: all face away, 1: all face it), and
    how far (mm along the axis) its highest node lies below the mesh's top and its lowest above
    the mesh's bottom."""

    nodes: np.ndarray
    cavity_share: float
    bordering_faces: int
    below_top_mm: float
    above_bottom_mm: float

    @property
    def spans_wall(self) -> bool:
        """Faces of both kinds border it (each at least :data:`MIN_SIDE_SHARE`)."""
        return self.bordering_faces > 0 and MIN_SIDE_SHARE <= self.cavity_share <= 1.0 - MIN_SIDE_SHARE

    @property
    def open_end(self) -> bool:
        """It spans the wall at one of the mesh's two ends (within :data:`END_SLACK_MM`)."""
        return self.spans_wall and min(self.below_top_mm, self.above_bottom_mm) <= END_SLACK_MM


def _smoothed(adjacency: csr_matrix, normals: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """The faces' normals averaged, area-weighted, over the faces within :data:`SMOOTHING_STEPS` steps
    over the surface (faces sharing a node): a voxel mesh's staircase then turns as the surface it
    steps along (its single faces point along the image's axes, either way of the long axis)."""
    weighted = normals * areas[:, None]
    for _ in range(SMOOTHING_STEPS):
        weighted = adjacency @ weighted
    return weighted / np.maximum(np.linalg.norm(weighted, axis=1, keepdims=True), 1e-12)


def along_axis_patches(dataset: vtk.vtkDataSet, axis: LongAxis) -> list[AlongAxisPatch]:
    """The mesh's patches of boundary faces turned along ``axis`` (caps, steps, open ends; by their
    smoothed normals), each with what decides whether it is an open end (see the module docstring).

    ``dataset`` is the volumetric LV mesh in the frame of ``axis`` (LPS, as
    :func:`~cardioscar.aha.wall.lv_wall` gives both)."""
    ids, centroids, normals, areas = boundary_faces(lv_cells_only(dataset, np.ones(dataset.GetNumberOfPoints(), bool)))
    incidence = coo_matrix((np.ones(ids.size), (np.repeat(np.arange(len(ids)), 3), ids.ravel())),
                           shape=(len(ids), dataset.GetNumberOfPoints())).tocsr()
    adjacency = (incidence @ incidence.T).tocsr()  # faces that share a node (each with itself)
    across, along = axial_components(centroids, _smoothed(adjacency, normals, areas), axis)
    turned = np.flatnonzero(np.abs(along) >= np.abs(across))
    if not len(turned):
        return []
    count, patch_of = connected_components(adjacency[turned][:, turned], directed=False)
    border = (coo_matrix((np.ones(len(turned)), (patch_of, turned)), shape=(count, len(ids))).tocsr()
              @ adjacency).tocoo()  # each patch's faces' neighbours
    keep = np.abs(along[border.col]) < np.abs(across[border.col])  # the across-axis ones
    patch, face = border.row[keep], border.col[keep]
    facing = np.bincount(patch, weights=(across[face] < 0).astype(float), minlength=count)
    bordering = np.bincount(patch, minlength=count)
    heights = axis.heights(vtk_to_numpy(dataset.GetPoints().GetData()).astype(float))
    top, bottom = float(heights.max()), float(heights.min())
    order = np.argsort(patch_of, kind="stable")
    starts = np.searchsorted(patch_of[order], np.arange(count))
    patches = []
    for k, members in enumerate(np.split(order, starts[1:])):
        nodes = np.unique(ids[turned[members]])
        patches.append(AlongAxisPatch(nodes=nodes, cavity_share=float(facing[k] / max(bordering[k], 1)),
                                      bordering_faces=int(bordering[k]), below_top_mm=top - float(heights[nodes].max()),
                                      above_bottom_mm=float(heights[nodes].min()) - bottom))
    return patches


def open_cut_nodes(dataset: vtk.vtkDataSet, axis: LongAxis) -> np.ndarray:
    """The node ids (sorted) of the mesh's open cut: the nodes of its along-axis patches that span
    the wall at one of its ends (:func:`along_axis_patches`); none on a closed wall."""
    ends = [patch.nodes for patch in along_axis_patches(dataset, axis) if patch.open_end]
    return np.unique(np.concatenate(ends)) if ends else np.zeros(0, np.int64)


def entrance_distances(entrances_lps: list[np.ndarray], cut_points: np.ndarray) -> list[float]:
    """Each channel's nearest entrance's distance (mm) to the nearest cut point; inf without a cut.

    ``entrances_lps``: per channel, its entrances' points (k, 3); ``cut_points``: the cut's nodes (LPS mm)."""
    if not len(cut_points):
        return [float("inf")] * len(entrances_lps)
    tree = cKDTree(cut_points)
    return [float(tree.query(points)[0].min()) if len(points) else float("inf") for points in entrances_lps]


def open_cut_note(row: dict) -> str:
    """What a channel's line (the command line's, the batch script's) adds for a flagged channel
    (its :meth:`~cardioscar.simulation.channels.Channel.row`); empty for the others."""
    return f", near the mesh's open cut (an entrance {row['open_cut_mm']:.1f} mm from it)" if row["near_open_cut"] else ""


def mark_open_cut(result, cut_points: np.ndarray, max_width_mm: float) -> None:
    """Set each of the ``result``'s channels' (:class:`~cardioscar.simulation.channels.ChannelResult`)
    ``open_cut_mm`` (its nearest entrance's distance to the cut, None without a cut) and
    ``near_open_cut`` (within half ``max_width_mm``), and the result's count of cut nodes; one
    warning naming how many are flagged and why."""
    reach = 0.5 * max_width_mm
    distances = entrance_distances([c.entrances_lps for c in result.channels], cut_points)
    result.channels = [dataclasses.replace(c, open_cut_mm=float(d) if np.isfinite(d) else None,
                                           near_open_cut=bool(d <= reach))
                       for c, d in zip(result.channels, distances)]
    result.open_cut_nodes = int(len(cut_points))
    if result.near_open_cut:
        logger.warning("%d of %d channel(s) have an entrance within %g mm (half --max-width) of the mesh's open cut: "
                       "they %s (near_open_cut in channels.csv)", result.near_open_cut, len(result.channels), reach,
                       OPEN_CUT_REASON)
