"""The mesh's open end (one definition, two readings), and which conducting channels open onto it.

Why: a mesh of the LV myocardium usually ends in a cut through the wall (the basal plane of a
phantom or a model; the first and last short-axis slice of a ``mesh-from-labels`` mesh), with no
node beyond it. Two parts of the tool read it, from the same boundary faces (those the wall's two
faces were told apart on, :class:`~cardioscar.aha.wall.WallFaces`, found once per mesh) through
:func:`open_end_nodes`:

* the channel search closes the core along the mesh's edges, so the core is never eroded from past
  the cut: a border-zone strip between core and the cut reads as enclosed, as if the core went on
  beyond it, and its ends along the cut read as entrances (on EMIDEC P047 and P028, channels 1-4 mm
  below the basal cut). Such a channel may be the mesh's artefact, or a real corridor that ends at
  the cut: it is *flagged*, not dropped (:attr:`OpenEndUse.CHANNEL_CUT`);
* the fibre rule's Laplace transmural solve (:mod:`.transmural`) leaves an open end's nodes free,
  where :func:`~cardioscar.aha.wall.wall_faces` split them between the two faces and would hold phi
  at 0 and 1 across the cut (:attr:`OpenEndUse.LAPLACE_FREE`).

Both start alike (:func:`along_axis_patches`): a boundary face turns *along* the long axis when its
normal is more along the axis than across it (:func:`~cardioscar.aha.wall.axial_components`: caps,
the steps between two slices' rings of a ``mesh-from-labels`` mesh, open ends); such faces joined
by shared nodes make patches. They differ, as measured before they were joined into one function
(same node sets on the phantoms, the test rings and EMIDEC label meshes), in three ways:

* the channel cut averages each face's normal over the faces within :data:`SMOOTHING_STEPS` steps
  over the surface (a voxel mesh's staircase then turns as the surface it steps along); the Laplace
  solve reads each face's own normal;
* the channel cut is a patch that spans the wall: a cap or a step lies on one face of the wall (the
  across-axis faces around it all face the cavity, or all face away), an open end has faces of both
  kinds bordering it, each at least :data:`MIN_SIDE_SHARE` of its border, and it lies at one of the
  mesh's two ends along the axis (within :data:`END_SLACK_MM`), where a label mesh's steps that
  happen to span the wall (a slice's ring exposed across its width) do not. The Laplace solve's
  open end is a patch that holds a node the wall's faces put on both faces: a cap's patch lies on
  one face and keeps its value; a basal plane (the wall's *base*, no face of either) is free anyway;
* the channel cut is all the patch's nodes (a channel's distance to the cut counts its rim); the
  Laplace solve frees only the nodes on no across-axis face, so that the rim keeps its face's value.

On EMIDEC P047's label mesh the cut is 1,580 nodes and the Laplace solve frees 1,137, 135 of them
outside the cut (on steps that span the wall 8-13 and 29-33 mm above its apical end); on the
phantoms the cut is the basal plane and the solve frees none. ``Testing/benchmarks/open_cut_meshes.py`` measures the cut on
every mesh kind the tool meets.

A channel is *near the open cut* when one of its entrances (``entrances_lps``, the mean of the
entrance's nodes) lies within half ``max_width_mm`` of a cut node: the reach of the closing, within
which the missing tissue beyond the cut changes what is enclosed.
"""

from __future__ import annotations

import dataclasses
import enum
import logging

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..aha.segments import LongAxis
from ..aha.wall import WallFaces, axial_components

logger = logging.getLogger(__name__)

#: A patch of along-axis faces is the channel cut when each kind of across-axis face (facing the
#: cavity, facing away) is at least this share of the faces bordering it. A cap or step borders
#: one kind (a few faces of the other where a voxel staircase turns); measured in
#: ``Testing/benchmarks/open_cut_meshes.py``.
MIN_SIDE_SHARE = 0.2
#: The channel cut holds a node within this many mm (along the axis) of the mesh's top or bottom: the
#: steps between a ``mesh-from-labels`` mesh's rings lie a slice (10 mm) or more from its ends.
END_SLACK_MM = 3.0
#: Steps over the surface (faces sharing a node) over which the channel cut averages the faces' normals.
SMOOTHING_STEPS = 2
#: Why a flagged channel is flagged (the summary's, the warning's and the panel's words).
OPEN_CUT_REASON = "may be an artefact of the mesh's open base: the core is closed along the cut"


class OpenEndUse(enum.Enum):
    """Who reads the open end, which decides its reading (the module docstring's three differences)."""

    #: the channel search's cut: normals smoothed, a patch spanning the wall at an end, all its nodes
    CHANNEL_CUT = "channel cut"
    #: the Laplace transmural solve's free nodes: the faces' own normals, a patch holding a node of
    #: both faces, its nodes on no across-axis face
    LAPLACE_FREE = "Laplace free nodes"


@dataclasses.dataclass(frozen=True)
class AlongAxisPatch:
    """A patch of boundary faces turned along the long axis, read for ``use``: its node ids, those of
    them on an across-axis face too (its rim), the share of the across-axis faces bordering it that
    face the cavity (0: all face away, 1: all face it), whether it holds a node of both of the wall's
    faces, and how far (mm along the axis) its highest node lies below the mesh's top and its lowest
    above the mesh's bottom."""

    use: OpenEndUse
    nodes: np.ndarray
    rim: np.ndarray
    cavity_share: float
    bordering_faces: int
    on_both_faces: bool
    below_top_mm: float
    above_bottom_mm: float

    @property
    def spans_wall(self) -> bool:
        """Faces of both kinds border it (each at least :data:`MIN_SIDE_SHARE`)."""
        return self.bordering_faces > 0 and MIN_SIDE_SHARE <= self.cavity_share <= 1.0 - MIN_SIDE_SHARE

    @property
    def open_end(self) -> bool:
        """It is an open end for its ``use``: the channel cut's spans the wall at one of the mesh's
        two ends (within :data:`END_SLACK_MM`); the Laplace solve's holds a node of both faces."""
        if self.use is OpenEndUse.LAPLACE_FREE:
            return self.on_both_faces
        return self.spans_wall and min(self.below_top_mm, self.above_bottom_mm) <= END_SLACK_MM

    @property
    def open_nodes(self) -> np.ndarray:
        """The nodes it gives an open end: the channel cut all of them, the Laplace solve those off its rim."""
        return self.nodes if self.use is OpenEndUse.CHANNEL_CUT else np.setdiff1d(self.nodes, self.rim)


def _smoothed(adjacency: csr_matrix, normals: np.ndarray, areas: np.ndarray, steps: int) -> np.ndarray:
    """The faces' normals averaged, area-weighted, over the faces within ``steps`` steps over the
    surface (faces sharing a node): a voxel mesh's staircase then turns as the surface it steps along
    (its single faces point along the image's axes, either way of the long axis). No steps: the
    faces' own normals, untouched."""
    if steps == 0:
        return normals
    weighted = normals * areas[:, None]
    for _ in range(steps):
        weighted = adjacency @ weighted
    return weighted / np.maximum(np.linalg.norm(weighted, axis=1, keepdims=True), 1e-12)


def along_axis_patches(points: np.ndarray, axis: LongAxis, wall: WallFaces,
                       use: OpenEndUse = OpenEndUse.CHANNEL_CUT) -> list[AlongAxisPatch]:
    """The mesh's patches of boundary faces turned along ``axis`` (caps, steps, open ends; by their
    normals as ``use`` reads them), each with what decides whether it is an open end (see the module
    docstring).

    ``points``, ``axis`` and ``wall``: the volumetric LV mesh's points, its long axis and its wall's
    faces, all in LPS (as :func:`~cardioscar.aha.wall.lv_wall` gives them); the boundary faces are
    the wall's own (:attr:`~cardioscar.aha.wall.WallFaces.boundary`), not found again."""
    ids, centroids, normals, areas = wall.boundary
    incidence = coo_matrix((np.ones(ids.size), (np.repeat(np.arange(len(ids)), 3), ids.ravel())),
                           shape=(len(ids), len(points))).tocsr()
    adjacency = (incidence @ incidence.T).tocsr()  # faces that share a node (each with itself)
    steps = SMOOTHING_STEPS if use is OpenEndUse.CHANNEL_CUT else 0
    across, along = axial_components(centroids, _smoothed(adjacency, normals, areas, steps), axis)
    turned = np.abs(along) >= np.abs(across)
    members_of = np.flatnonzero(turned)
    if not len(members_of):
        return []
    count, patch_of = connected_components(adjacency[members_of][:, members_of], directed=False)
    border = (coo_matrix((np.ones(len(members_of)), (patch_of, members_of)), shape=(count, len(ids))).tocsr()
              @ adjacency).tocoo()  # each patch's faces' neighbours
    keep = ~turned[border.col]  # the across-axis ones
    patch, face = border.row[keep], border.col[keep]
    facing = np.bincount(patch, weights=(across[face] < 0).astype(float), minlength=count)
    bordering = np.bincount(patch, minlength=count)
    on_across = np.unique(ids[~turned])
    both = np.intersect1d(wall.endo_ids, wall.epi_ids)
    heights = axis.heights(points)
    top, bottom = float(heights.max()), float(heights.min())
    order = np.argsort(patch_of, kind="stable")
    starts = np.searchsorted(patch_of[order], np.arange(count))
    patches = []
    for k, members in enumerate(np.split(order, starts[1:])):
        nodes = np.unique(ids[members_of[members]])
        patches.append(AlongAxisPatch(use=use, nodes=nodes, rim=nodes[np.isin(nodes, on_across)],
                                      cavity_share=float(facing[k] / max(bordering[k], 1)),
                                      bordering_faces=int(bordering[k]), on_both_faces=bool(np.isin(nodes, both).any()),
                                      below_top_mm=top - float(heights[nodes].max()),
                                      above_bottom_mm=float(heights[nodes].min()) - bottom))
    return patches


def open_end_nodes(points: np.ndarray, axis: LongAxis, wall: WallFaces, use: OpenEndUse) -> np.ndarray:
    """The node ids (sorted) of the mesh's open end as ``use`` reads it (the module docstring): the
    open nodes of its along-axis patches that are an open end (:func:`along_axis_patches`, same
    arguments); none on a closed wall."""
    ends = [patch.open_nodes for patch in along_axis_patches(points, axis, wall, use) if patch.open_end]
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
