"""Parts of a mesh that no cell connects to the rest: debris the AHA frame must not be built on.

Why: the AHA levels run from the most apical endocardium to the most basal LV node, and the long
axis comes from the LV nodes' shape, so a small stray piece away from the wall (segmentation
debris meshed with the heart, a node left without cells) moves the base, the apex and the axis,
and every segment with them, silently: on the 3,000-node phantom a copy of 82 basal wall nodes
(2.7 %) placed 30 mm beyond the base put 25 % of the wall's nodes into another segment (14 % at
20 mm, where it lies within 5 mm of the wall and passes). A mesh of separate shells (an
endocardial and an epicardial surface) is not debris: its parts are large.
"""

from __future__ import annotations

import numpy as np
import vtk
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import cell_layout

#: A part with under this share of the LV nodes counts as small (a shell of a surface mesh holds
#: about half of them).
SMALL_PART_SHARE = 0.05
#: A small part whose every node lies farther than this from every large part is debris.
MAX_GAP_MM = 5.0
#: The command line's way out of the debris refusal; a face without ``--lv-mask`` (the Slicer panel, a
#: cohort row) words it as its own (:func:`cardioscar.errors.advice_in_face_words`).
LV_MASK_DEBRIS_ADVICE = ", or mark the LV nodes with --lv-mask"


def node_parts(dataset: vtk.vtkDataSet, nodes: np.ndarray) -> np.ndarray:
    """Connected part (0, 1, ...) of every node in the boolean mask ``nodes``, joined through the
    cells' edges between such nodes; a node in no cell is a part of its own. -1 off the mask."""
    offsets, connectivity = cell_layout(dataset)
    first = np.repeat(connectivity[offsets[:-1]], np.diff(offsets))  # each cell's node to its first node
    inside = nodes[first] & nodes[connectivity]
    n = len(nodes)
    graph = coo_matrix((np.ones(int(inside.sum())), (first[inside], connectivity[inside])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    parts = np.full(n, -1, dtype=np.int64)
    _, parts[nodes] = np.unique(labels[nodes], return_inverse=True)
    return parts


def refuse_debris(dataset: vtk.vtkDataSet, points: np.ndarray, lv_nodes: np.ndarray, where: str) -> np.ndarray | None:
    """Refuse small parts of the LV nodes (each under :data:`SMALL_PART_SHARE` of them) whose
    nearest node lies over :data:`MAX_GAP_MM` from every large part, naming how many nodes and
    where. A small part closer than that (an apical ring that ``mesh-from-labels`` could not join
    to the next slice's) is near enough to be the wall's own, and is left to the mesh's maker.
    Returns the LV nodes' parts (:func:`node_parts`; None for a mesh without cells): the AHA's warning
    of a mesh in pieces asks the same of the same cells."""
    if dataset.GetNumberOfCells() == 0:
        return None
    parts = node_parts(dataset, lv_nodes)
    sizes = np.bincount(parts[lv_nodes])
    large = sizes >= SMALL_PART_SHARE * int(lv_nodes.sum())
    if large.all() or not large.any():
        return parts
    in_large = lv_nodes & large[np.maximum(parts, 0)]
    loose = np.flatnonzero(lv_nodes & ~in_large)
    distance, _ = cKDTree(points[in_large]).query(points[loose])
    gap = np.full(len(sizes), np.inf)
    np.minimum.at(gap, parts[loose], distance)
    debris = np.flatnonzero(np.isfinite(gap) & (gap > MAX_GAP_MM))
    if debris.size:
        nearest = debris[np.argmin(gap[debris])]
        centre = ", ".join(f"{c:.0f}" for c in points[parts == nearest].mean(axis=0))
        raise CardioScarError(
            f"{where}: {int(sizes[debris].sum())} LV node(s) in {debris.size} small part(s) that no cell joins to the "
            f"rest lie {gap[nearest]:.0f} mm or more from the wall (one centred at LPS {centre}); they would move the "
            "long axis, base and apex, and every segment with them: remove them from the mesh (debris of the "
            f"segmentation?){LV_MASK_DEBRIS_ADVICE}")
    return parts
