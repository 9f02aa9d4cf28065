"""Vectorised mapping of mesh nodes to slice pixels (groups).

A group is one pixel of one slice: the mesh nodes whose continuous pixel index rounds to that pixel
(footprint ``[i-0.5, i+0.5) x [j-0.5, j+0.5)``) and whose signed distance d to the slice plane along
its normal has ``-half_thickness <= d < half_thickness`` (:meth:`SliceLayer.in_slab`). The node's target is that same pixel's value, so value and
group can never disagree (the reference tool read them from different voxels). Slices are handled
one at a time with a single matrix product each; a node inside the slabs of two slices belongs to
both groups (it is never dropped or deduplicated). Pixels whose value is NaN (grid-layer holes)
make no group.

The pixel's through-plane model (``slice_profile``, :data:`SLICE_PROFILES`): ``box`` (the default)
is the slab above, every node weighted 1. ``gaussian`` is the smooth slice profile a scanner has
(roughly Gaussian, its FWHM the nominal slice thickness, about a quarter of its weight outside
the slab): a row carries the weight ``w = exp(-4 ln2 d^2 / FWHM^2)`` with FWHM the slab's full
width ``2 half_thickness``, and the footprint reaches ``|d| < FWHM`` (:data:`GAUSSIAN_REACH`,
where w has fallen to 1/16), so a node between two slices of a stack belongs to both groups,
each with its own weight. A pixel makes a group only where a node lies inside its slab, as with
the box (:func:`_anchored`): the tails add rows to the box's groups, never groups of their own.
The group's target is then the weighted mean ``sum(w f) / sum(w)``
(:mod:`cardioscar.fit`). The checks below keep reading ``half_thickness`` as the slice's
thickness (half its FWHM): the gaussian's reach past it is by design, not a slab too wide.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import CardioScarError
from ..io.meshio import bounds_text
from ..predict.meshscale import node_spacing
from .slices import SliceLayer

logger = logging.getLogger(__name__)

#: The pixel models of the through-plane footprint (see the module docstring); ``box`` is the default.
SLICE_PROFILES = ("box", "gaussian")
#: How far the gaussian footprint reaches along the normal, in FWHMs (w = 2^-(4 r^2) = 1/16 at r = 1).
GAUSSIAN_REACH = 1.0


def check_slice_profile(profile: str) -> str:
    """``profile`` if it is one of :data:`SLICE_PROFILES`, else a one-line refusal."""
    if profile not in SLICE_PROFILES:
        raise CardioScarError(f"slice profile must be one of {', '.join(SLICE_PROFILES)} (--slice-profile), "
                              f"got {profile!r}")
    return profile


@dataclass
class GroupMapping:
    """Rows (node, group) sorted by group; groups numbered 0..M-1 in (slice, j, i) order."""

    node_ids: np.ndarray      # (K,) int64 mesh node index of each row
    group_ids: np.ndarray     # (K,) int64 contiguous, non-decreasing
    group_values: np.ndarray  # (M,) float64 target of each group
    group_slice: np.ndarray   # (M,) int64 index into the slice list
    group_pixel: np.ndarray   # (M, 2) int64 (i, j) of the pixel
    #: (K,) float64 slice-profile weight of each row in its group's mean; None: the box, all 1
    row_weights: Optional[np.ndarray] = None
    slice_profile: str = "box"

    @property
    def n_rows(self) -> int:
        return int(self.node_ids.shape[0])

    @property
    def n_groups(self) -> int:
        return int(self.group_values.shape[0])

    @property
    def group_sizes(self) -> np.ndarray:
        """(M,) int64 number of rows (nodes) in each group."""
        return np.bincount(self.group_ids, minlength=self.n_groups).astype(np.int64)

    @property
    def row_values(self) -> np.ndarray:
        """(K,) float64 target of each row: its group's pixel value."""
        return self.group_values[self.group_ids]


def profile_weights(distance: np.ndarray, half_thickness: float) -> np.ndarray:
    """The gaussian slice profile at signed distances ``distance`` (mm) from the plane: 1 on it,
    1/2 at ``+-half_thickness`` (FWHM = the slab's full width)."""
    fwhm = 2.0 * float(half_thickness)
    return np.exp(-4.0 * np.log(2.0) * (np.asarray(distance, dtype=np.float64) / fwhm) ** 2)


def _in_footprint(distance: np.ndarray, layer: SliceLayer, profile: str) -> np.ndarray:
    """Which signed distances lie in the through-plane footprint: the slab, or for ``gaussian``
    the half-open ``[-reach, reach)`` with reach :data:`GAUSSIAN_REACH` FWHMs."""
    if profile == "box":
        return layer.in_slab(distance)
    reach = GAUSSIAN_REACH * 2.0 * layer.half_thickness
    return (distance >= -reach) & (distance < reach)


def _anchored(nodes: np.ndarray, keys: np.ndarray, distance: np.ndarray,
              layer: SliceLayer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gaussian rows of the pixels that hold a node inside the slab (the box's groups).

    Why: a pixel reached only by its profile's tails (the mesh ends, or a surface mesh has no
    node near the plane there) would be one group of a few far nodes held to the value the
    pixel's centre gave. On the unseen family's surface-mesh seed 1 such groups (446 of 1,240)
    cost 0.08 Dice and raised the over-call (``Testing/benchmarks/ROBUSTNESS.md``)."""
    anchored = np.isin(keys, keys[layer.in_slab(distance)])
    return nodes[anchored], keys[anchored], distance[anchored]


def _slice_rows(points: np.ndarray, layer: SliceLayer,
                profile: str = "box") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Node ids inside one slice's footprint on a pixel with a value, their flat pixel key
    ``j * n_cols + i``, every node inside the footprint (NaN pixels, outside a myocardium mask,
    included), the signed distance to the plane of each of the first (mm), and the flat keys of
    the mesh's cut: every pixel that holds a node inside the slab (the box), whatever its value."""
    index_to_lps = layer.index_to_lps()
    lps_to_index = np.linalg.inv(index_to_lps)
    # Distance along the normal first (one mat-vec), so the in-plane solve only runs on slab nodes.
    row_d = lps_to_index[2, :3]
    distance = points @ row_d + lps_to_index[2, 3]
    in_slab = np.flatnonzero(_in_footprint(distance, layer, profile))
    if in_slab.size == 0:
        empty = in_slab.astype(np.int64)
        return empty, empty, empty, np.zeros(0), empty
    ij = points[in_slab] @ lps_to_index[:2, :3].T + lps_to_index[:2, 3]
    pixel = np.floor(ij + 0.5)  # half-open footprint [i-0.5, i+0.5)
    rows, cols = layer.shape
    inside = (pixel[:, 0] >= 0) & (pixel[:, 0] < cols) & (pixel[:, 1] >= 0) & (pixel[:, 1] < rows)
    pixel_i = pixel[inside, 0].astype(np.int64)
    pixel_j = pixel[inside, 1].astype(np.int64)
    nodes = in_slab[inside].astype(np.int64)
    has_value = np.isfinite(layer.values[pixel_j, pixel_i])
    cut = np.unique((pixel_j * cols + pixel_i)[layer.in_slab(distance[nodes])])
    return (nodes[has_value], pixel_j[has_value] * cols + pixel_i[has_value], nodes,
            distance[nodes[has_value]], cut)


def nodes_on_slices(points_lps: np.ndarray, slices: Sequence[SliceLayer]) -> np.ndarray:
    """Whether each node lies on a pixel with a value inside a slice's slab (box profile): the nodes
    :func:`map_slices_to_nodes` maps, without its checks, warnings and summary line. Why: a step that
    needs only that set of the slices mapped before (the demo's baselines, after its prepare) said
    the mapping's line twice."""
    points = np.ascontiguousarray(points_lps, dtype=np.float64)
    on = np.zeros(points.shape[0], dtype=bool)
    for layer in slices:
        on[_slice_rows(points, layer)[0]] = True
    return on


def map_slices_to_nodes(points_lps: np.ndarray, slices: Sequence[SliceLayer], *,
                        scar_targets: bool = True, slice_profile: str = "box",
                        myocardium_given: bool = False) -> GroupMapping:
    """Map (N, 3) LPS node coordinates to the pixels of ``slices``; see the module docstring.

    ``myocardium_given``: the targets are NaN outside a myocardium mask or labels, so a refusal that
    would blame the mesh names a myocardium that encloses no cavity instead (:func:`_myocardium_cause`).

    ``scar_targets``: the slices hold scar targets (labels, a scar map, a rule's grades), so a
    value of 0.5 or more is scar and :func:`_check_scar_reaches_the_mesh` applies; False for
    min-max normalised raw intensities, whose bright pixels are blood pool and fat as much as scar.
    ``slice_profile``: the pixel's through-plane model, ``box`` or ``gaussian`` (module docstring)."""
    check_slice_profile(slice_profile)
    points = np.ascontiguousarray(points_lps, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] == 0:
        raise CardioScarError(f"Mesh coordinates must be a non-empty (N, 3) array, got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise CardioScarError("Mesh coordinates contain NaN or infinite values")
    layers = list(slices)
    if not layers:
        raise CardioScarError("No slices given to map onto the mesh")

    node_parts, key_parts, footprint_parts, weight_parts, cuts = [], [], [], [], []
    offset = 0
    for layer in layers:
        nodes, keys, footprint, distance, cut = _slice_rows(points, layer, slice_profile)
        cuts.append(cut)
        if slice_profile != "box":  # the box's rows all weigh 1: no weights to compute or keep
            nodes, keys, distance = _anchored(nodes, keys, distance, layer)
            weight_parts.append(profile_weights(distance, layer.half_thickness))
        node_parts.append(nodes)
        footprint_parts.append(footprint)
        key_parts.append(keys + offset)
        offset += layer.values.size
    node_ids = np.concatenate(node_parts)
    keys = np.concatenate(key_parts)
    corners = np.concatenate([layer.footprint_corners_lps() for layer in layers])
    in_footprints = np.unique(np.concatenate(footprint_parts)).size
    if node_ids.size == 0 and in_footprints and myocardium_given:
        cause = _myocardium_cause(layers)
        raise CardioScarError(f"No mesh node lies on a pixel with a target: {in_footprints} lie in the slices' "
                              "footprints, all outside the myocardium given" + (
                                  cause or "; does the myocardium mask or labels mark this mesh's wall (of this "
                                           "patient, in the image's frame)?"))
    if node_ids.size == 0:
        raise CardioScarError(
            f"No mesh node lies inside any slice footprint: mesh LPS bounds {bounds_text(points)}, slices LPS "
            f"bounds {bounds_text(corners)}{_unit_hint(points, corners, layers)}; check that mesh and image share a frame "
            "(SPACE marker), --slice-axis and --slice-thickness-padding")

    ratio = _size_ratio(points, corners)
    if 0.0 < ratio < 1 / 100 or ratio > 100:
        # a mesh in metres near the image origin lands in a pixel or two: rows, but nonsense
        raise CardioScarError(f"The mesh (LPS bounds {bounds_text(points)}) and the slices (LPS bounds "
                              f"{bounds_text(corners)}) differ in size by orders of magnitude"
                              f"{_unit_hint(points, corners, layers)}")
    _check_not_centimetres(points, corners, layers)
    _warn_outside_field_of_view(points, layers)
    unique_keys, group_ids = np.unique(keys, return_inverse=True)
    # Stable: within a group (one slice) nodes keep their ascending order from np.flatnonzero.
    order = np.argsort(group_ids, kind="stable")
    node_ids, group_ids = node_ids[order], group_ids[order].astype(np.int64)
    row_weights = None if slice_profile == "box" else np.concatenate(weight_parts)[order]

    slice_starts = np.cumsum([0] + [layer.values.size for layer in layers])
    group_slice = (np.searchsorted(slice_starts, unique_keys, side="right") - 1).astype(np.int64)
    local = unique_keys - slice_starts[group_slice]
    n_cols = np.array([layer.shape[1] for layer in layers], dtype=np.int64)[group_slice]
    group_pixel = np.column_stack([local % n_cols, local // n_cols]).astype(np.int64)
    group_values = _gather_values(layers, group_slice, group_pixel)
    spacing = functools.cache(lambda: node_spacing(points))  # once, and only if a check below reads it
    cause = functools.cache(lambda: _myocardium_cause(layers) if myocardium_given else "")  # likewise, for a refusal
    if scar_targets:
        _check_scar_reaches_the_mesh(points, layers, [nodes.size for nodes in node_parts], group_values, cause)
        _check_scar_on_the_mesh(points, layers, cuts, spacing, cause)
    if not _check_mesh_on_the_myocardium(points, layers, cuts, spacing, cause):
        _warn_mesh_off_the_myocardium(in_footprints, np.unique(node_ids).size)
        _check_mesh_on_the_drawn_heart(points, layers, cuts, spacing)

    warn_about_slab_widths(points, layers)
    warn_slices_at_one_end(points, layers)
    memberships = np.bincount(node_ids, minlength=points.shape[0])
    logger.info("Mapping (%s slice profile): %d of %d nodes covered, %d groups, %d rows; %d nodes in more than one "
                "group", slice_profile, int((memberships > 0).sum()), points.shape[0], unique_keys.size, node_ids.size,
                int((memberships > 1).sum()))
    return GroupMapping(node_ids=node_ids, group_ids=group_ids, group_values=group_values,
                        group_slice=group_slice, group_pixel=group_pixel, row_weights=row_weights,
                        slice_profile=slice_profile)


#: A heart mesh in millimetres spans dozens of pixels of any LGE slice (an adult LV 60-120 mm across
#: 0.6-2.5 mm pixels, a mouse heart 7 mm across 0.1 mm pixels); one in centimetres spans a handful.
MIN_MESH_PIXELS = 10.0
#: On images with fine pixels (0.6-0.8 mm, a zero-filled reconstruction) a heart in centimetres spans
#: 12-20 pixels; it is told apart by its slabs: it spans under two slab widths (four half-widths),
#: where a heart in millimetres spans five or more (80 mm across 10 mm slabs, a mouse's 7 mm across 1 mm).
MIN_MESH_PIXELS_BESIDE_SLABS = 25.0
MIN_MESH_HALF_WIDTHS = 4.0


def _check_not_centimetres(points: np.ndarray, corners: np.ndarray, layers: Sequence[SliceLayer]) -> None:
    """Refuse a mesh only a few pixels across inside a much larger field of view: a heart mesh in
    centimetres (10 times too small) still lands in a few pixels, so the orders-of-magnitude check
    passes, and every group then averages nodes from all over the heart. With pixels under 1 mm it
    spans more than :data:`MIN_MESH_PIXELS` (9.8 cm across 0.7 mm pixels: 14), so there the slab
    widths decide (round 16: such a mesh placed on the scar trained, exit 0). A patch of wall in
    millimetres as small (14 mm across 1.5 mm pixels) reads the same, so the message names it too
    (round 17): no size tells the two apart, and the patch meets a slice or two."""
    pixel = min(min(layer.spacing) for layer in layers)
    half_width = max(layer.half_thickness for layer in layers)
    extent = float(np.ptp(points, axis=0).max())
    small = extent < MIN_MESH_PIXELS * pixel or (
        extent < MIN_MESH_PIXELS_BESIDE_SLABS * pixel and extent < MIN_MESH_HALF_WIDTHS * half_width)
    if len(points) >= 20 and small and _size_ratio(points, corners) < 1 / 5:
        raise CardioScarError(
            f"The mesh spans only {extent:.3g} mm (LPS bounds {bounds_text(points)}), {extent / pixel:.1f} pixels of "
            f"{pixel:g} mm and {extent / half_width:.1f} slab half-widths of {half_width:g} mm, inside slices "
            f"{float(np.ptp(corners, axis=0).max()):.4g} mm across: a heart mesh in centimetres? scale its coordinates "
            "to millimetres (x10). A patch of wall this small, in mm, is not reconstructed on its own (it meets one or "
            "two slices): give the heart's mesh and cut the patch from the result")


#: The share of mesh nodes that may project outside every slice's pixel grid before a warning.
MAX_OUTSIDE_FIELD_OF_VIEW = 0.25


def _warn_outside_field_of_view(points: np.ndarray, layers: Sequence[SliceLayer]) -> None:
    """Warn when many nodes project outside the pixel grid of every slice (in-plane, at any distance
    along the normal). A cardiac field of view holds the whole heart, so this is a mesh in another
    frame (a RAS file without its SPACE marker is mirrored in x and y) that overlaps the slices only
    in part: the covered nodes train on the wrong pixels, and nothing else says so."""
    outside = np.ones(len(points), dtype=bool)
    for layer in layers:
        lps_to_index = np.linalg.inv(layer.index_to_lps())
        pixel = np.floor(points @ lps_to_index[:2, :3].T + lps_to_index[:2, 3] + 0.5)
        rows, cols = layer.shape
        outside &= ~((pixel[:, 0] >= 0) & (pixel[:, 0] < cols) & (pixel[:, 1] >= 0) & (pixel[:, 1] < rows))
    share = float(outside.mean())
    if share > MAX_OUTSIDE_FIELD_OF_VIEW:
        logger.warning("%.0f%% of the mesh's nodes (LPS bounds %s) lie outside the field of view of every slice; a "
                       "heart mesh lies inside it: check the mesh's frame (its SPACE=LPS or SPACE=RAS marker; none = "
                       "LPS) and that mesh and image are of the same patient", 100 * share, bounds_text(points))


#: Scar pixels (target >= 0.5) on the chosen slices from which, if none reaches a node of a mesh
#: (20 nodes or more: not a handful of probe points), the input is refused: fewer may be a speck a
#: coarse mesh's nodes miss.
MIN_LOST_SCAR_PIXELS = 20


def _check_scar_reaches_the_mesh(points: np.ndarray, layers: Sequence[SliceLayer], rows: Sequence[int],
                                 group_values: np.ndarray, cause: Callable[[], str] = str) -> None:
    """Refuse when the chosen slices show scar (target >= 0.5) but no scar pixel reaches a mesh
    node, and warn when slices with scar catch no node at all.

    Why: a pixel that catches no node constrains nothing, so the model learned a heart without
    scar, exit 0. A stack placed beside the mesh along its normal (another exam's slice
    positions, a header off by centimetres, ``--slice-indices`` past the mesh's base or apex)
    still overlaps it in-plane, so the field-of-view check passed: on the 1,500-node phantom
    with the stack 45 mm off, the four slices with scar caught no node, the five without caught
    498, and the largest target was 5e-10; a mesh read in the other frame overlaps the slices
    only where there is no scar (the same phantom: 279 rows, none of them scar). A stack longer
    than the mesh is normal, so slices without scar that catch nothing pass quietly."""
    scar = np.array([int(np.count_nonzero(layer.values >= 0.5)) for layer in layers])
    missed = [index for index, count in enumerate(rows) if count == 0 and scar[index] > 0]
    where = ""
    if missed:
        first = layers[missed[0]]
        along = (points - first.origin) @ first.normal
        where = (", ".join(f"'{layers[index].label}'" for index in missed[:4]) + (" ..." if len(missed) > 4 else "")
                 + f" catch no node; the mesh lies {along.min():.3g} to {along.max():.3g} mm from the plane of "
                 f"'{first.label}' along its normal")
    if len(points) >= 20 and scar.sum() >= MIN_LOST_SCAR_PIXELS and not np.any(group_values >= 0.5):
        raise CardioScarError(
            f"None of the {int(scar.sum())} scar pixels of the chosen slices reaches a mesh node"
            f"{f' ({where})' if where else ''}: the model would learn a heart without scar{cause()}; "
            f"{'else ' if cause() else ''}check that the mesh and the image are of the same patient, exam and frame "
            "(SPACE marker), the image's slice positions, and --slice-indices / --slice-thickness-padding")
    if missed:
        logger.warning("%d of %d scar pixels lie on slices that catch no mesh node (%s): that scar constrains "
                       "nothing; check the slice positions against the mesh", int(scar[missed].sum()),
                       int(scar.sum()), where)


def scar_near_the_mesh(layers: Sequence[SliceLayer], cuts: Sequence[np.ndarray], reach_mm: float) -> tuple[int, int]:
    """(scar pixels within ``reach_mm`` in-plane of the mesh's cut, scar pixels) on the chosen
    slices, scar meaning target >= 0.5. ``cuts``: per slice, the flat keys ``j * n_cols + i`` of the
    pixels that hold a node in the slab, whatever their target (NaN outside a myocardium given
    included). Measured in-plane from the cut, so that a coarse mesh, whose nodes miss many of its
    own wall's pixels, still covers its wall when ``reach_mm`` is its node spacing. The cut is
    first closed over :data:`WALL_BRIDGE_MM`: a surface mesh's nodes lie on the endo- and epicardium
    only, and the mid-wall scar between them is this heart's (the unseen phantom family's surface
    meshes: 0.54-0.77 of their own scar near the surfaces, 0.83-1.00 closed).

    Why the cut and not the pixels with a target: with a myocardium given (NaN outside it), a
    surface mesh's nodes lie on the wall's edges, about half of them on the pixels just outside
    (the cavity's, the epicardial fat's): only the others caught a pixel, too few to close over the
    wall, and the segmented phantom's own surface mesh (seed 0, ``--myocardium-labels 2,3``) was
    warned as another patient's, 45 % of its scar near it."""
    from scipy.ndimage import distance_transform_edt

    near = total = 0
    for layer, cut in zip(layers, cuts):
        scar = layer.values >= 0.5
        if not scar.any():
            continue
        total += int(scar.sum())
        if cut.size:
            caught = np.zeros(layer.values.size, bool)
            caught[cut] = True
            distance = distance_transform_edt(~closed_cut(caught.reshape(layer.shape), layer), sampling=_sampling(layer))
            near += int(np.count_nonzero(scar & (distance <= reach_mm)))
    return near, total


def _sampling(layer: SliceLayer) -> tuple[float, float]:
    """The pixel's size (mm) along the rows and columns of ``values[j, i]``, as scipy's
    distance transforms take it."""
    return layer.spacing[1], layer.spacing[0]


def closed_cut(caught: np.ndarray, layer: SliceLayer) -> np.ndarray:
    """The pixels of ``layer`` that catch a node (``caught``, (rows, cols) bool), closed over
    :data:`WALL_BRIDGE_MM`: a surface mesh's nodes lie on the endo- and epicardium only, and the
    wall between them is this mesh's cut too."""
    from scipy.ndimage import distance_transform_edt

    grown = distance_transform_edt(~caught, sampling=_sampling(layer)) <= WALL_BRIDGE_MM
    return caught | (distance_transform_edt(grown, sampling=_sampling(layer)) > WALL_BRIDGE_MM)


#: Gaps between the pixels that catch a node that :func:`scar_near_the_mesh` closes (mm; a
#: morphological closing of this radius): up to twice this, the width of a thick left-ventricular
#: wall between a surface mesh's endo- and epicardial nodes.
WALL_BRIDGE_MM = 6.0


#: Shares of the scar pixels near the mesh (:func:`scar_near_the_mesh`) under which the mesh is
#: refused as another patient's, and under which it is named in a warning. EMIDEC's 52 infarct maps
#: (``Testing/benchmarks/other_patients_mesh.py``): their own ``mesh-from-labels`` mesh 0.98-1.00 at
#: 1.5, 3 and 4.5 mm, 0.92 shifted 3 mm in-plane and 0.71 shifted 6 mm; the next three patients'
#: meshes 0.00-0.91 (median 0.04), 123 of 156 under 0.3 and 148 under 0.6 (closed as
#: :func:`scar_near_the_mesh` closes them; 124 and 149 before).
MIN_SCAR_ON_MESH, WARN_SCAR_ON_MESH = 0.3, 0.6


def _myocardium_cause(layers: Sequence[SliceLayer]) -> str:
    """The likelier cause of a mesh off the targets when the myocardium that bounds them (their
    non-NaN pixels) encloses no cavity: the blood pool given for it (``lge.mask_fit``'s words)."""
    from ..lge.mask_fit import solid_mask_cause

    return solid_mask_cause([np.isfinite(layer.values) for layer in layers])


def _check_scar_on_the_mesh(points: np.ndarray, layers: Sequence[SliceLayer], cuts: Sequence[np.ndarray],
                            spacing: Callable[[], float], cause: Callable[[], str] = str) -> None:
    """Refuse a mesh that lies off most of the slices' scar, and warn when it lies off much of it.

    Why: with ``--scar-labels`` alone every pixel of a label map trains, so the check of in-slab
    nodes on the myocardium (which needs the myocardium given) never runs; another patient's mesh
    (EMIDEC's maps all have their origin at 0) meets part of this one's scar and trained, exit 0
    (P001's mesh on P003's map: 4 % of the scar pixels caught a node). Measured within one node
    spacing of the pixels that catch a node, so that a coarse mesh of this heart is not taken
    for another's. For 0/1 targets only (labels, a rule's grades): a graded map or an image's
    values at or above 0.5 may be a bright blood pool, which no mesh of the wall covers."""
    if len(points) < 20 or not _zero_one(layers):
        return
    near, total = scar_near_the_mesh(layers, cuts, spacing())
    if total < MIN_LOST_SCAR_PIXELS or near >= WARN_SCAR_ON_MESH * total:
        return
    text = (f"only {100.0 * near / total:.0f} % of the {total} scar pixels of the chosen slices lie on the mesh (within "
            f"its node spacing of a pixel that catches a node; a mesh of this heart: over 90 %)")
    if near < MIN_SCAR_ON_MESH * total:
        raise CardioScarError(f"The mesh is not where the image's scar is: {text}{cause()}; "
                              f"{'else ' if cause() else ''}give the mesh (and any myocardium mask) of the image's "
                              "patient and exam, the mesh in the image's frame (SPACE marker)")
    logger.warning("%s%s: are the mesh (and any myocardium mask) of the image's patient and exam, and the mesh in the "
                   "image's frame?", text[0].upper() + text[1:], cause() and f"{cause()}; else")


def _zero_one(layers: Sequence[SliceLayer]) -> bool:
    """Whether every target of the slices is 0 or 1 (NaN: no target)."""
    return all(bool(np.all((layer.values == 0) | (layer.values == 1) | np.isnan(layer.values))) for layer in layers)


#: The share of the nodes inside the chosen slices that may miss the myocardium (NaN pixels once a
#: mask or labels restrict the slices) before a warning, and how many such nodes it takes.
MIN_NODES_ON_MYOCARDIUM, MIN_NODES_IN_SLABS = 0.25, 100


def _warn_mesh_off_the_myocardium(in_slabs: int, on_myocardium: int) -> None:
    """Warn when few of the mesh's nodes inside the chosen slices lie on the myocardium that the
    mask or labels give (pixels outside it are NaN; without one every pixel counts, so this
    never fires).

    Why: another patient's mesh, where every image has the same origin (EMIDEC's NIfTI), lies
    inside the field of view, meets scar and passed every check: P001's mesh on P003's map
    trained 4,443 rows from the 8 % of its in-slab nodes that happen to touch P003's
    myocardium, exit 0. A mesh made from the map has 76-84 % there (six EMIDEC cases), another
    patient's 8-15 % (four pairs). A biventricular mesh with an LV mask, or a mesh a few
    millimetres off the LGE (another breath-hold), lies lower than its own map's, so a warning."""
    if in_slabs < MIN_NODES_IN_SLABS or on_myocardium >= MIN_NODES_ON_MYOCARDIUM * in_slabs:
        return
    logger.warning("only %.0f%% of the mesh's nodes inside the chosen slices (%d of %d) lie on the myocardium the mask "
                   "or labels give (a mesh of this heart: most of them): is the mesh of this patient and exam, and "
                   "in the image's frame?", 100.0 * on_myocardium / in_slabs, on_myocardium, in_slabs)


#: Pixels of myocardium a slice must show for :func:`mesh_on_the_myocardium` to read it.
MIN_MYOCARDIUM_PIXELS = 20

#: Shares of the mesh's cut on the myocardium (:func:`mesh_on_the_myocardium`) under which the
#: mesh is refused as another patient's, and under which it is named in a warning. EMIDEC's 52
#: infarct maps with ``--myocardium-labels 2,3,4`` (``Testing/benchmarks/mesh_pair_check.py``):
#: their own ``mesh-from-labels`` mesh 0.91-1.00 (1.5 mm, its surface, 4.5 mm), shifted 3 mm
#: in-plane 0.82-0.94, 6 mm 0.67-0.82 (all 260 silent); the next three patients' meshes 0.00-0.82
#: (median 0.16): with the checks before this one 125 of 156 refused, 25 warned, 6 passed; now 144
#: refused, 10 warned, 2 passed (two hearts of one shape and place, 0.78 and 0.82). A biventricular
#: mesh with the LV myocardium's labels alone: 0.69 and 0.54 (ACDC 101's labels with an RV wall drawn
#: 3.5 and 7 mm thick around its RV cavity, the LV mesh 0.93), so the warning names that case.
MIN_MESH_ON_MYOCARDIUM, WARN_MESH_ON_MYOCARDIUM = 0.25, 0.6


def mesh_on_the_myocardium(layers: Sequence[SliceLayer], cuts: Sequence[np.ndarray],
                           reach_mm: float) -> tuple[Optional[float], int]:
    """(median over the slices read of the share of the mesh's cut within ``reach_mm`` plus one
    pixel of the myocardium, slices read). The myocardium is a slice's finite pixels (a mask or
    labels make the rest NaN); a slice is read when it shows :data:`MIN_MYOCARDIUM_PIXELS` of it
    beside NaN pixels and the mesh cuts it. ``cuts``: per slice, the flat keys ``j * n_cols + i``
    of the pixels that hold a node in the slab, closed as :func:`closed_cut` closes them.

    Why the cut and not the nodes: a mesh of this heart cuts the slice along its wall, so nearly
    all of its cut lies on the myocardium, whatever the mesh's density (the reach) or kind (the
    closing bridges a surface mesh's two walls); another patient's heart lying over this one's
    scar still cuts the slice where this heart has none. The median: the mesh's cap at the base
    or apex may cut a slice beyond this heart's myocardium."""
    return _cut_on_region(layers, cuts, reach_mm, _myocardium_region)


def mesh_on_the_drawn_heart(layers: Sequence[SliceLayer], cuts: Sequence[np.ndarray],
                            reach_mm: float) -> tuple[Optional[float], int]:
    """:func:`mesh_on_the_myocardium` with the heart a label map draws (its non-zero labels,
    ``SliceLayer.drawn``) in place of the myocardium: a slice is read when it shows
    :data:`MIN_MYOCARDIUM_PIXELS` drawn pixels that are not scar and the mesh cuts it.

    Why: with the scar labels alone no myocardium is given, yet the map draws the blood pool and
    the wall around the scar; a mesh of this heart cuts the slices within them, another
    patient's heart over this one's scar cuts them also where this heart has none."""
    return _cut_on_region(layers, cuts, reach_mm, _drawn_region)


def _cut_on_region(layers: Sequence[SliceLayer], cuts: Sequence[np.ndarray], reach_mm: float,
                   region: Callable[[SliceLayer], Optional[np.ndarray]]) -> tuple[Optional[float], int]:
    """(median over the slices read of the share of the closed cut within ``reach_mm`` plus one
    pixel of ``region(layer)``, slices read); ``region`` None: the slice is not read."""
    from scipy.ndimage import distance_transform_edt

    shares = []
    for layer, cut in zip(layers, cuts):
        wall = region(layer) if cut.size else None
        if wall is None:
            continue
        caught = np.zeros(layer.values.size, bool)
        caught[cut] = True
        closed = closed_cut(caught.reshape(layer.shape), layer)
        distance = distance_transform_edt(~wall, sampling=_sampling(layer))
        shares.append(float(np.mean(distance[closed] <= reach_mm + max(layer.spacing))))
    return (float(np.median(shares)) if shares else None), len(shares)


def _shows_myocardium(layer: SliceLayer) -> bool:
    """Whether ``layer`` shows a myocardium: :data:`MIN_MYOCARDIUM_PIXELS` finite pixels beside NaN ones."""
    finite = np.count_nonzero(np.isfinite(layer.values))
    return MIN_MYOCARDIUM_PIXELS <= finite < layer.values.size


def _myocardium_region(layer: SliceLayer) -> Optional[np.ndarray]:
    """The myocardium a mask or labels give ``layer`` (its finite pixels), None if it shows none."""
    return np.isfinite(layer.values) if _shows_myocardium(layer) else None


def _drawn_region(layer: SliceLayer) -> Optional[np.ndarray]:
    """The heart ``layer``'s label map drew, None unless it shows :data:`MIN_MYOCARDIUM_PIXELS`
    drawn pixels besides the scar (a map of the scar alone says nothing of where the heart is)."""
    if layer.drawn is None or layer.drawn.all():
        return None
    beside_scar = np.count_nonzero(layer.drawn & ~(layer.values >= 0.5))
    return layer.drawn if beside_scar >= MIN_MYOCARDIUM_PIXELS else None


def _check_mesh_on_the_myocardium(points: np.ndarray, layers: Sequence[SliceLayer], cuts: Sequence[np.ndarray],
                                  spacing: Callable[[], float], cause: Callable[[], str] = str) -> bool:
    """Refuse a mesh whose cut through the chosen slices lies mostly off the myocardium that the
    mask or labels give, and warn when much of it does; whether a slice was read (if none, the
    node share of :func:`_warn_mesh_off_the_myocardium` is all there is to say).

    Why: another patient's mesh (EMIDEC's images all have their origin at 0) whose heart happens
    to lie over this one's scar passed the scar check (8 of 156 pairs, P094's mesh on P092's map
    with 91 % of the scar near it), and the node share on the myocardium (a surface mesh of this
    heart: 45 %) cannot tell it from this heart's: the scar was put on the wrong wall, exit 0."""
    if len(points) < 20 or not any(_shows_myocardium(layer) for layer in layers):
        return False
    share, read = mesh_on_the_myocardium(layers, cuts, spacing())
    if share is None or share >= WARN_MESH_ON_MYOCARDIUM:
        return share is not None
    text = (f"only {100.0 * share:.0f} % of the mesh's cut through the chosen slices lies on the myocardium the mask or "
            f"labels give (within its node spacing and a pixel; the median of {read} slices; a mesh of this heart: "
            "over 80 %)")
    if share < MIN_MESH_ON_MYOCARDIUM:
        raise CardioScarError(f"The mesh is not where the image's myocardium is: {text}{cause()}; "
                              f"{'else ' if cause() else ''}give the mesh (and the mask) of the image's patient and "
                              "exam, the mesh in the image's frame (SPACE marker)")
    logger.warning("%s%s: are the mesh and the mask or labels of the image's patient and exam, and the mesh in the "
                   "image's frame? (A biventricular mesh with a mask or labels of the LV myocardium alone reads "
                   "lower, its RV wall off that myocardium: 54-69 %% on ACDC 101 with an RV wall drawn 3.5-7 mm thick)",
                   text[0].upper() + text[1:], cause() and f"{cause()}; else")
    return True


#: The share of the mesh's cut on the heart a label map draws (:func:`mesh_on_the_drawn_heart`)
#: under which, with no myocardium given, the mesh is named in a warning. EMIDEC's 52 infarct maps
#: with ``--scar-labels 3,4`` alone (``Testing/benchmarks/mesh_pair_check.py --labels-alone``): their
#: own ``mesh-from-labels`` mesh 0.96-1.00 (1.5 mm, its surface, 4.5 mm), shifted 3 mm in-plane
#: 0.89-0.97, 6 mm 0.79-0.89 (all 260 silent); ACDC 101's mesh of one phase on the other's map 0.82
#: and 0.99; the 8 other patients' meshes that passed the scar check 0.35-1.00: 5 now warned, 3 pass
#: (0.76, 0.89, 1.00: hearts of one shape and place). Never refused: the wrong pairs it alone names
#: read 0.35 or more, and a map that draws little besides the scar reads low for its own mesh too.
WARN_MESH_ON_DRAWN_HEART = 0.7


def _check_mesh_on_the_drawn_heart(points: np.ndarray, layers: Sequence[SliceLayer], cuts: Sequence[np.ndarray],
                                   spacing: Callable[[], float]) -> None:
    """Warn when, with no myocardium given, much of the mesh's cut through the chosen slices lies
    off the heart the label map draws (its non-zero labels).

    Why: with ``--scar-labels`` alone :func:`_check_mesh_on_the_myocardium` has no myocardium to
    read, and 8 of 156 other-patient EMIDEC pairs passed every check: the scar trained onto another
    patient's wall, exit 0. The map's blood pool and myocardium still say where this heart is."""
    if len(points) < 20 or any(_shows_myocardium(layer) for layer in layers):
        return
    share, read = mesh_on_the_drawn_heart(layers, cuts, spacing())
    if share is None or share >= WARN_MESH_ON_DRAWN_HEART:
        return
    logger.warning("Only %.0f %% of the mesh's cut through the chosen slices lies on the heart the label map draws (its "
                   "non-zero labels, within the mesh's node spacing and a pixel; the median of %d slices; a mesh made "
                   "from the map: over 95 %%): are the mesh and the label map of the same patient and exam, and the "
                   "mesh in the image's frame? (A map that draws little besides the scar reads lower; give "
                   "--myocardium-labels to check against the wall itself)", 100.0 * share, read)


#: Normals closer than this (1 - |cos|) count as parallel slices of one stack.
_PARALLEL = 1e-3
#: Overlap (mm) below which two slabs count as touching: rounding of recorded slice positions.
_TOUCHING_MM = 0.05
#: Overlap, as a share of the distance between the planes, up to which it passes quietly: the
#: default 5 mm half-width shares a 2 mm band on EMIDEC's slices 8 mm apart (a quarter) and a
#: 0.3 mm band on the segmented phantom's 9.7 mm; a whole spacing as half-width shares all of it.
_QUIET_OVERLAP = 0.5


def warn_slices_at_one_end(points: np.ndarray, layers: Sequence[SliceLayer]) -> None:
    """Warn when parallel chosen slices all lie at one end of the mesh: its middle (the median node
    along their normal) lies outside the band their slabs span.

    Why (round 16): ``--slice-indices 7,8`` of the phantom's nine (its apical two) trained, exit 0
    without a word, and ``apply`` then gave the basal half of the heart the end slices' scar
    carried on: an extrapolation shown as a reconstruction. Sparse slices across the heart (3,4,5
    of EMIDEC's ten, every other slice) keep the middle inside the band; pooled short- and
    long-axis views (not parallel) are not judged."""
    normal = layers[0].normal
    if len(points) < 20 or any(abs(float(np.dot(layer.normal, normal))) < 0.999 for layer in layers):
        return
    planes = np.array([float(np.dot(layer.origin, normal)) for layer in layers])
    low = float(np.min(planes - [layer.half_thickness for layer in layers]))
    high = float(np.max(planes + [layer.half_thickness for layer in layers]))
    along = points @ normal
    middle = float(np.median(along))
    if not low <= middle <= high:
        beyond = float(np.mean((along < low) if middle < low else (along > high)))
        logger.warning("The chosen slices (%s) lie at one end of the mesh: their slabs span %.4g to %.4g mm along "
                       "their normal, the mesh %.4g to %.4g mm, and %.0f%% of its nodes (its middle among them) lie "
                       "beyond them on one side; the model extrapolates the end slices' scar there, it does not "
                       "reconstruct it: choose slices across the heart", ", ".join(f"'{layer.label}'" for layer in layers[:3])
                       + (" ..." if len(layers) > 3 else ""), low, high, float(along.min()), float(along.max()),
                       100 * beyond)


def warn_about_slab_widths(points: np.ndarray, layers: Sequence[SliceLayer]) -> None:
    """Warn when the slab half-width (``--slice-thickness-padding``) is far off the slices' own
    thickness, too wide or too thin, in any of three ways: the slabs of two chosen parallel slices
    overlap (:func:`warn_overlapping_parallel_slabs`); a slab reaches past the neighbouring planes
    of its own stack although those are not chosen (slices 1 and 7, or a single slice, of a 10 mm
    stack with 30 mm: every node of the mesh took one of two slices' values, silently); or every
    slab is thinner than the mesh's node spacing (0.01 mm on a 5 mm mesh: 1 row from 9 slices,
    and a model trained on it)."""
    if not warn_overlapping_parallel_slabs(layers):
        _warn_slab_wider_than_its_stack(layers)
    _warn_slab_thinner_than_the_mesh(points, layers)


def _warn_slab_wider_than_its_stack(layers: Sequence[SliceLayer]) -> None:
    """The stack-spacing half of :func:`warn_about_slab_widths`, at the overlap check's limit: a
    slab as wide as its slice and its neighbours' shares more than :data:`_QUIET_OVERLAP` of the
    spacing with them."""
    wide = [layer for layer in layers if layer.stack_spacing
            and 2 * layer.half_thickness - layer.stack_spacing > max(_TOUCHING_MM, _QUIET_OVERLAP * layer.stack_spacing)]
    if wide:
        layer = wide[0]
        logger.warning(
            "%d slice(s) have a slab wider than their stack's slice spacing, e.g. '%s': half-width %.3g mm, slices "
            "%.3g mm apart; nodes up to %.3g mm from the plane (where the slices not chosen lie) take its pixels' "
            "values. --slice-thickness-padding is HALF the slice thickness (%.3g mm for this stack)",
            len(wide), layer.label, layer.half_thickness, layer.stack_spacing, layer.half_thickness,
            layer.stack_spacing / 2)


def _warn_slab_thinner_than_the_mesh(points: np.ndarray, layers: Sequence[SliceLayer]) -> None:
    """The thin half of :func:`warn_about_slab_widths`: with every slab thinner than the median
    distance between neighbouring nodes, most pixels over the myocardium catch no node and the
    few rows left are the nodes that happen to lie on the planes."""
    widest = max(2 * layer.half_thickness for layer in layers)
    if len(points) < 20:
        return
    spacing = node_spacing(points)
    if widest < spacing:
        logger.warning("every slab is at most %.3g mm thick (--slice-thickness-padding %.3g mm, HALF the slice "
                       "thickness) but the mesh's nodes lie %.3g mm apart (median): most pixels catch no node; give "
                       "half the slices' thickness", widest, widest / 2, spacing)


def warn_overlapping_parallel_slabs(layers: Sequence[SliceLayer]) -> bool:
    """Warn when the slabs of two parallel slices overlap by more than half the distance between
    their planes (half-widths summing to more than 1.5 times that distance).

    Why: crossing planes (short and long axis) share nodes by nature, but parallel slices of a
    stack overlap only when the slab half-width is too wide, typically the slice thickness or
    spacing given where half of it is wanted. Every node between two such slices is then fitted
    to both pixels' values: on the 3,000-node demo phantom (10 mm spacing, 300 fast epochs) a
    10 mm half-width instead of 4 mm lowers Dice from 0.89 to 0.51, silently. Overlapping
    acquisitions exist, so it is a warning, not an error. Returns whether it warned.
    """
    overlaps = []
    for a, first in enumerate(layers):
        for second in layers[a + 1:]:
            if 1.0 - abs(float(np.dot(first.normal, second.normal))) > _PARALLEL:
                continue
            gap = abs(float(np.dot(second.origin - first.origin, first.normal)))
            excess = first.half_thickness + second.half_thickness - gap
            if excess > max(_TOUCHING_MM, _QUIET_OVERLAP * gap):
                overlaps.append((excess, gap, first, second))
    if overlaps:
        _, gap, first, second = max(overlaps, key=lambda item: item[0])
        logger.warning(
            "%d pair(s) of parallel slices have overlapping slabs, e.g. '%s' and '%s': %.3g mm apart but slab "
            "half-widths %.3g + %.3g mm; nodes between them are fitted to both slices' pixels. "
            "--slice-thickness-padding is HALF the slice thickness (5 mm for 10 mm slices)",
            len(overlaps), first.label, second.label, gap, first.half_thickness, second.half_thickness)
    return bool(overlaps)


def _size_ratio(points: np.ndarray, corners: np.ndarray) -> float:
    """Largest extent of the mesh over that of the slices (0 for a single node)."""
    return float(np.ptp(points, axis=0).max() / max(np.ptp(corners, axis=0).max(), 1e-12))


def _unit_hint(points: np.ndarray, corners: np.ndarray, layers: Sequence[SliceLayer]) -> str:
    """A hint when the mesh is orders of magnitude larger or smaller than the slices: simulation
    meshes are often in micrometres (openCARP) or metres, images always in millimetres. Units
    are blamed only when nothing else explains it: a slab wider than the slices themselves (the
    slab width option), or a few nodes far from all others (the bulk of the mesh is fine)."""
    ratio = _size_ratio(points, corners)
    if ratio == 0.0 or 1 / 30 <= ratio <= 30:  # (a single node has no size)
        return ""
    widest = max(layers, key=lambda layer: layer.half_thickness)
    plane = max(widest.shape[0] * widest.spacing[1], widest.shape[1] * widest.spacing[0])
    if widest.half_thickness > 10 * plane:
        return (f" (the slab half-width {widest.half_thickness:g} mm of '{widest.label}' is far larger than the slice "
                f"itself, {plane:.4g} mm across: check --slice-thickness-padding)")
    low, high = np.percentile(points, [1, 99], axis=0)
    if len(points) >= 20 and 1 / 30 <= _size_ratio(np.array([low, high]), corners) <= 30:
        far = int(np.argmax(np.linalg.norm(points - np.median(points, axis=0), axis=1)))
        where = ", ".join(f"{c:.4g}" for c in points[far])
        return f" (node {far} at ({where}) lies far from all others: fix or remove it)"
    unit = "micrometres" if ratio > 30 else "metres or centimetres"
    return (f" (the mesh is {ratio:.3g} times the size of the slices: if its coordinates are in {unit}, "
            "scale them to millimetres)")


def _gather_values(layers: Sequence[SliceLayer], group_slice: np.ndarray, group_pixel: np.ndarray) -> np.ndarray:
    values = np.empty(group_slice.size, dtype=np.float64)
    for s, layer in enumerate(layers):
        mine = group_slice == s
        values[mine] = layer.values[group_pixel[mine, 1], group_pixel[mine, 0]]
    return values
