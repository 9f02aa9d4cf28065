"""The AHA analysis of one reconstructed mesh: segments, per-segment table, files.

Every face (``cardioscar aha``, the Python API, the demo, the Slicer Logic) calls
:func:`analyse_mesh` on a mesh in memory, or :func:`run_aha` for files in and files out.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import vtk
from scipy.spatial import cKDTree
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from cardioscar.errors import CardioScarError
from cardioscar.io.checks import whole_labels
from cardioscar.io.atomic import atomic_write_set
from cardioscar.io.meshio import MESH_SUFFIXES, Mesh, check_mesh_target, coincident_nodes, save_mesh
from cardioscar.evaluate.metrics import node_volumes
from cardioscar.predict.error_risk import ERROR_RISK_FIELD
from cardioscar.simulation.opencarp import (MAX_COINCIDENT_SHARE, MERGE_ADVICE, PIECES_AHA, SEAM_AHA, TAG_ARRAY,
                                            check_millimetres, recorded_classes, recorded_tag_values,
                                            warn_about_pieces, warn_if_centimetres)
from cardioscar.io.checks import check_scar_field_name
from cardioscar.simulation.tags import CORE_MESH_ADVICE, check_probability_field, warn_border_zone_off_the_call

from .bullseye import save_bullseye
from .handedness import INSERTION_ORDER, frame_handedness
from .insertion import contact_points, insertions_from_contacts, refuse_cavity_as_rv
from .islands import refuse_debris
from .one_ventricle import check_one_ventricle, has_cross_sections
from .shape_axis import shape_axis
from .segments import (ANATOMICAL_SENSE, AhaFrame, LongAxis, axis_from_direction, axis_from_points,
                       axis_from_shape, insertion_frame, orient_towards_base)
from .table import BAND_COLUMNS, TISSUE_COLUMNS, lv_total, segment_rows, save_table
from .wall import WallFaces, cell_centres, column_transmurality, is_volumetric, wall_faces

logger = logging.getLogger(__name__)

#: A mesh whose shape gives its axis with a ring contrast under this (:attr:`.shape_axis.ShapeAxis.contrast`)
#: is checked for a second ventricle across every direction (:func:`.one_ventricle.check_one_ventricle`),
#: one at or over it across its shape axis first, as one whose axis is given: biv-me's biventricular
#: mesh measures 1.53-1.59 (1, 1.5, 2 and 3 mm voxels), LV meshes 2.01 and more (EMIDEC's 75
#: ``mesh-from-labels`` meshes at 3 mm and its six lowest again at 1.5 mm, hexahedra and tetrahedra,
#: ``Testing/benchmarks/round23_good_meshes.py``; the phantoms, ACDC and biv-me's endocardium 2.2-4.7,
#: its myocardium's LV part 2.8-3.0; ``Testing/benchmarks/round19_biventricular_aha.py``). Segmented as
#: one LV, a biventricular mesh's RV free wall was counted as LV myocardium (biv-me's at 3 mm: 221 ml
#: for its LV part's 156), exit 0; the cut across a known axis: ``Testing/benchmarks/aha_one_ventricle_axis.py``.
ONE_VENTRICLE_CHECK_CONTRAST = 1.8
#: The command line's way out of the biventricular refusal; a face without ``--lv-mask`` (the Slicer
#: panel, a cohort row) words it as its own (:func:`cardioscar.errors.advice_in_face_words`).
LV_MASK_ADVICE = ", or mark its LV nodes with --lv-mask FIELD (and --lv-value for a region label)"

SEGMENT_ARRAY = "aha_segment"
#: An RV insertion point farther than this from every LV node is refused (a click off the mesh).
MAX_RV_DISTANCE_MM = 5.0
#: The most the line through ``--apex`` and ``--base`` may pass from the LV's centre, as a share of the
#: wall's typical distance from its own axis: the right points pass it through the cavity (the
#: phantom's: 0.00; EMIDEC P001's voxel mesh, its most apical node and its basal centre: 0.19); points
#: read in the other frame (RAS for an LPS mesh) pass it beside the heart (phantoms 1.4-2.5, P001 14.6),
#: and the angles about it number the segments wrong.
MAX_AXIS_OFFSET_SHARE = 0.5
#: Without an identifiable endocardium the apical cap is this share of the length at the apex.
CAP_SHARE_WITHOUT_CAVITY = 0.10
FILES = {"csv": "aha.csv", "json": "aha.json", "png": "bullseye.png"}
#: The segmented mesh's name without its suffix (the input's format): ``aha_mesh.vtk`` etc.
MESH_STEM = "aha_mesh"
#: The border-zone value of a tags field (0 none, 1 border zone, 2 core) unless --border-zone-tag says.
DEFAULT_BORDER_ZONE_TAG = 1


@dataclass
class LabelMap:
    """A label map with an RV blood-pool label, as an array [k, j, i] and its index-to-LPS matrix."""

    labels: np.ndarray
    ijk_to_lps: np.ndarray
    source: str
    rv_label: int = 1
    myocardium_label: int = 2


@dataclass
class AhaOptions:
    """How to segment and what to measure; see ``cardioscar aha --help`` for each option.

    ``lv_mask_field`` (with ``lv_mask_value``, else non-zero) picks the LV nodes of a mesh that
    holds more (a biventricular mesh); the others get segment 0.

    Long axis: ``apex`` and ``base`` points, else ``slice_normal`` (the short-axis stack's
    normal), else the mesh's shape. RV insertion: ``rv_point`` (the anterior insertion, with an
    optional ``rv_inferior_point``), else ``labels``. ``transmurality``: ``"auto"`` (computed on a
    volumetric mesh, estimated on a surface mesh), ``"required"`` (refuse a surface mesh) or ``"off"``.
    """

    field: str = "scar_probability"
    uncertainty_field: Optional[str] = "scar_uncertainty"
    threshold: float = 0.5
    rv_point: Optional[Sequence[float]] = None
    rv_inferior_point: Optional[Sequence[float]] = None
    labels: Optional[LabelMap] = None
    apex: Optional[Sequence[float]] = None
    base: Optional[Sequence[float]] = None
    slice_normal: Optional[Sequence[float]] = None
    slice_normal_source: str = "slice normal"
    lv_mask_field: Optional[str] = None
    lv_mask_value: Optional[float] = None
    tags_field: Optional[str] = None
    border_zone_tag: Optional[int] = None  # None: DEFAULT_BORDER_ZONE_TAG, refused on the export's tags
    core_tag: Optional[int] = None  # the dense core's value of tags_field (export's: 3); None: no core column
    transmurality: str = "auto"


@dataclass
class AhaResult:
    """Segments on the nodes and cells (0 outside the LV), the table rows and how they were made."""

    point_segments: np.ndarray
    cell_segments: np.ndarray
    rows: list[dict]
    summary: dict
    frame: AhaFrame = field(repr=False)


def _where(mesh: Mesh) -> str:
    return mesh.path.name if mesh.path else "the mesh"


def _lv_nodes(mesh: Mesh, options: AhaOptions, where: str) -> np.ndarray:
    if options.lv_mask_field is None:
        return np.ones(mesh.n_points, dtype=bool)
    mask = _lv_mask(mesh, options.lv_mask_field, where)
    lv = mask != 0 if options.lv_mask_value is None else np.isclose(mask, options.lv_mask_value)
    if lv.sum() < 10:
        which = "non-zero" if options.lv_mask_value is None else f"equal to {options.lv_mask_value:g} (--lv-value)"
        raise CardioScarError(f"{where}: --lv-mask '{options.lv_mask_field}' marks {int(lv.sum())} nodes as LV "
                              f"({which}); give the point field and value of the LV myocardium")
    return lv


def _lv_mask(mesh: Mesh, field_name: str, where: str) -> np.ndarray:
    """The values of the point field ``--lv-mask`` names: one whole number per node (0/1, or region
    labels that ``--lv-value`` picks from).

    Why: a field of several components was read by its first (a fibre field's x, a 0/1 pair whose
    first column is 1 everywhere), a NaN counted as an LV node (it is not 0), and a probability or
    a field interpolated between labels was non-zero almost everywhere, so the whole mesh (an RV's
    nodes too) was segmented as the LV, exit 0."""
    values = mesh.point_array(field_name)
    if values.ndim > 1 and values.shape[1] != 1:
        raise CardioScarError(f"{where}: --lv-mask '{field_name}' has {values.shape[1]} components per node; give a "
                              "point field of one value per node that marks the LV (0/1, or a region label with --lv-value)")
    return whole_labels(values.reshape(-1), f"{where}: --lv-mask '{field_name}'", "nodes",
                        "give the field that marks the LV nodes (0/1, or a region label with --lv-value), not a "
                        "probability or a field interpolated between labels")


def _refuse_a_second_ventricle(whole_mesh: Optional[tuple[vtk.vtkDataSet, str, str]],
                               across: Optional[np.ndarray]) -> None:
    """Refuse ``whole_mesh`` (see :func:`_long_axis`) when its sections across the long axis
    ``across`` (None: across every direction, for an axis the shape gives unclearly) enclose the RV's
    cavity beside the LV's. Why: the test ran only where the shape gave the axis unclearly, so a
    biventricular mesh with given points, a slice normal or a clear shape was segmented whole, its
    RV free wall and septum counted as LV myocardium, exit 0."""
    if whole_mesh is not None:
        dataset, name, advice = whole_mesh
        check_one_ventricle(dataset, name, "the AHA segmentation", advice, across)


def _second_ventricle_advice(options: AhaOptions, n_nodes: int) -> str:
    """How to mend a mesh segmented whole that holds a second ventricle: mark its LV with
    ``--lv-mask``, or, where the one given marks every node, give one that marks the LV's alone.
    Why: such a mask (a myocardium mask, a region label both ventricles share) skipped the test,
    as any mask did, so a biventricular mesh was segmented whole with the RV's nodes as the LV's,
    exit 0, the refusal's own advice followed to the letter."""
    if options.lv_mask_field is None:
        return LV_MASK_ADVICE
    return (f", or give --lv-mask a field that marks the LV's nodes alone: '{options.lv_mask_field}' marks all "
            f"{n_nodes} of them (--lv-value picks a region label)")


def _long_axis(options: AhaOptions, points: np.ndarray, weights: np.ndarray,
               whole_mesh: Optional[tuple[vtk.vtkDataSet, str, str]] = None) -> LongAxis:
    """The axis the options give, else the shape's. ``whole_mesh`` (the LPS dataset, its name and the
    refusal's advice, :func:`_second_ventricle_advice`; the mesh is segmented whole, without an
    ``--lv-mask`` or with one that marks every node, and volumetric or a closed surface) is checked for a
    second ventricle: across the long axis, or across every direction when its shape gives the axis
    unclearly (:data:`ONE_VENTRICLE_CHECK_CONTRAST`)."""
    if (options.apex is None) != (options.base is None):
        raise CardioScarError("give both --apex and --base (or neither)")
    if options.apex is not None and options.slice_normal is not None:
        raise CardioScarError("give the long axis once: --apex/--base or --slice-normal-from, not both")
    if options.apex is not None:
        axis = axis_from_points(np.asarray(options.apex, dtype=float), np.asarray(options.base, dtype=float))
        # first: an RV's nodes shift the centre the next check measures the line from; the RV is the cause
        _refuse_a_second_ventricle(whole_mesh, axis.base_direction)
        refuse_axis_beside_the_lv(axis, points, weights)
        if orient_towards_base(axis.base_direction, points, weights) @ axis.base_direction < 0:
            # swapped, the levels run upside down: the basal ring numbered at the apex, silently
            logger.warning("the LV is wider at the end of --apex than at that of --base (the apex tapers): are --apex and "
                           "--base swapped? the basal segments would be cut at the apex; give the apex point as --apex "
                           "and the centre of the base as --base (an apical aneurysm can be wider: then ignore this)")
        return axis
    if options.slice_normal is not None:
        axis = axis_from_direction(np.asarray(options.slice_normal, dtype=float), points, weights,
                                   options.slice_normal_source)
        _refuse_a_second_ventricle(whole_mesh, axis.base_direction)
        return axis
    found = shape_axis(points, weights)
    clear = found.contrast >= ONE_VENTRICLE_CHECK_CONTRAST
    _refuse_a_second_ventricle(whole_mesh, found.direction if clear else None)
    return axis_from_shape(points, weights, found=found)


def _axis_offset(base_direction: np.ndarray, origin: np.ndarray, points: np.ndarray,
                 weights: np.ndarray) -> tuple[float, float]:
    """How far the line through ``origin`` along ``base_direction`` passes from the LV's (volume-
    weighted) centre, and the wall's median distance from the parallel line through that centre (mm)."""
    centre = (points * weights[:, None]).sum(axis=0) / weights.sum()
    across = (centre - origin) - ((centre - origin) @ base_direction) * base_direction
    relative = points - centre
    radial = relative - np.outer(relative @ base_direction, base_direction)
    return float(np.linalg.norm(across)), float(np.median(np.linalg.norm(radial, axis=1)))


def refuse_axis_beside_the_lv(axis: LongAxis, points: np.ndarray, weights: np.ndarray) -> None:
    """Refuse ``--apex``/``--base`` whose line passes beside the LV rather than through its cavity.

    Why: only the rv points were checked against the mesh; apex and base points read off a viewer
    in the other frame (3D Slicer shows RAS, the mesh file is LPS) gave an axis about 50 mm beside
    the phantom's cavity, and the segments cut about it put 60 % of the nodes in another segment
    (its LAD scar of 7, 8, 9, 13, 14 reported in 2, 7, 8, 9, 14; 8 segments "not covered"), exit 0."""
    offset, radius = _axis_offset(axis.base_direction, axis.origin, points, weights)
    if offset <= MAX_AXIS_OFFSET_SHARE * radius:
        return
    mirror = np.array([-1.0, -1.0, 1.0])
    mirrored_offset, _ = _axis_offset(axis.base_direction * mirror, axis.origin * mirror, points, weights)
    hint = ("; with their X and Y negated the line runs through the LV: they were read in the other frame (3D Slicer "
            "shows RAS; the mesh file's SPACE marker says which frame it uses, LPS without one): negate X and Y"
            if mirrored_offset <= MAX_AXIS_OFFSET_SHARE * radius else "")
    raise CardioScarError(f"the long axis from --apex to the base point passes {offset:.0f} mm from the LV's centre (its "
                          f"wall lies about {radius:.0f} mm from its own axis): give the apex and the centre of the "
                          f"base in the mesh file's own coordinates{hint}")


def _checked_point(point: Sequence[float], tree: cKDTree, flag: str) -> np.ndarray:
    value = np.asarray(point, dtype=float).reshape(-1)
    if value.shape != (3,) or not np.all(np.isfinite(value)):
        raise CardioScarError(f"{flag} must be three finite numbers X,Y,Z in the mesh's frame (got {list(value)})")
    distance, _ = tree.query(value)
    if distance > MAX_RV_DISTANCE_MM:
        raise CardioScarError(f"{flag} is {distance:.1f} mm from the nearest "
                              f"LV node (at most {MAX_RV_DISTANCE_MM:.0f} mm): give a point on the LV wall where the RV "
                              f"meets it, in the mesh file's own coordinates{_mirrored_hint(value, tree)}")
    return value


def _mirrored_hint(value: np.ndarray, tree: cKDTree) -> str:
    """Name the commonest slip: a point read in RAS (what 3D Slicer shows) for an LPS mesh, or the
    reverse. The two frames differ by the signs of X and Y, so such a point lies on the wall once
    both are negated; say so rather than leave the user to guess why it is far off."""
    mirrored_distance, _ = tree.query(value * np.array([-1.0, -1.0, 1.0]))
    if mirrored_distance > MAX_RV_DISTANCE_MM:
        return ""
    return ("; with its X and Y negated it lies on the wall: it was read in the other frame (3D Slicer shows RAS; "
            "the mesh file's SPACE marker says which frame it uses, LPS without one): negate X and Y")


def _insertions(options: AhaOptions, lv_points: np.ndarray, axis: LongAxis) -> tuple[np.ndarray, Optional[np.ndarray], str]:
    tree = cKDTree(lv_points)
    if options.rv_point is not None and options.labels is not None:
        raise CardioScarError("give the RV insertion once: --rv-point or --labels, not both")
    if options.rv_inferior_point is not None and options.rv_point is None:
        raise CardioScarError("--rv-inferior-point needs --rv-point (the anterior insertion) too")
    if options.rv_point is not None:
        anterior = _checked_point(options.rv_point, tree, "--rv-point")
        inferior = (None if options.rv_inferior_point is None
                    else _checked_point(options.rv_inferior_point, tree, "--rv-inferior-point"))
        return anterior, inferior, "given point" + ("s" if inferior is not None else "")
    if options.labels is not None:
        label_map = options.labels
        # a map resampled linearly holds 1.0 between 0 and 2 (the RV's label along the LV's outer
        # edge) and 2.4 beside 2, which the labels present read as 2: refused, as masks are
        labels = whole_labels(label_map.labels, f"The RV label map {label_map.source}")
        contacts = contact_points(labels, label_map.ijk_to_lps, label_map.rv_label, label_map.myocardium_label,
                                  label_map.source)
        refuse_cavity_as_rv(labels, label_map.ijk_to_lps, label_map.rv_label, axis, label_map.source)
        distance, _ = tree.query(contacts)
        if np.median(distance) > MAX_RV_DISTANCE_MM * 2:
            raise CardioScarError(f"{label_map.source}: its RV-myocardium contact lies {np.median(distance):.0f} mm "
                                  "(median) from the mesh; the label map and the mesh must show the same heart in the "
                                  "same frame")
        found = insertions_from_contacts(contacts, axis)
        return found.anterior, found.inferior, f"RV label {label_map.rv_label} of {label_map.source}"
    raise CardioScarError("no RV insertion: give --rv-point X,Y,Z (the anterior RV insertion, in the mesh's frame) "
                          "or --labels LABELMAP with its --rv-label")


def _cell_segments(dataset: vtk.vtkDataSet, lv_nodes: np.ndarray, frame: AhaFrame) -> np.ndarray:
    """Segment of each cell's centre; 0 for cells with less than half of their nodes in the LV."""
    copy = dataset.NewInstance()
    copy.ShallowCopy(dataset)
    mask = numpy_to_vtk(lv_nodes.astype(np.float64), deep=True)
    mask.SetName("aha_lv")
    copy.GetPointData().AddArray(mask)
    to_cells = vtk.vtkPointDataToCellData()
    to_cells.SetInputData(copy)
    to_cells.Update()
    lv_share = vtk_to_numpy(to_cells.GetOutput().GetCellData().GetArray("aha_lv"))
    return np.where(lv_share >= 0.5, frame.segments(cell_centres(dataset)), 0).astype(np.int64)


def _wall(mode: str, dataset: vtk.vtkDataSet, lv_nodes: np.ndarray, axis: LongAxis, where: str) -> Optional[WallFaces]:
    if mode not in ("auto", "required", "off"):
        raise CardioScarError(f"transmurality '{mode}': use auto, required or off")
    try:
        return wall_faces(dataset, lv_nodes, axis)
    except CardioScarError:
        if mode == "required":
            raise
        logger.warning("%s: endocardium and epicardium not found; no transmurality, apical cap estimated", where)
        return None


def _point_values(mesh: Mesh, name: str) -> np.ndarray:
    """A point field's first component as floats."""
    return mesh.point_array(name).reshape(mesh.n_points, -1)[:, 0].astype(float)


#: The apical cap (17) is not covered when the myocardium reaches less than this far (mm) beyond
#: the cavity's tip: the mesh of a stack whose most apical slice still holds cavity ends there.
MIN_CAP_MM = 1.0
CAP_NOT_COVERED = ("not covered by the slices: the cavity reaches the mesh's apical end (its most apical slice still "
                   "holds cavity)")


def _levels(axis: LongAxis, lv_points: np.ndarray, faces: Optional[WallFaces], points: np.ndarray, where: str
            ) -> tuple[float, float, str]:
    """(cavity tip height, base height, how the apical cap was found).

    Where the cavity reaches the mesh's apical end the cap was never imaged: the tip is put at the
    mesh's end, so segment 17 holds no node and is reported not covered (no figures, not 0 %),
    with a warning; no scar is made up there."""
    heights = axis.heights(lv_points)
    base_height = float(heights.max())
    if faces is not None:
        tip = float(axis.heights(points[faces.endo_ids]).min())
        if tip - heights.min() >= MIN_CAP_MM:
            return tip, base_height, "beyond the cavity's tip"
        logger.warning("%s: segment 17 (apex) is %s; it is reported without figures, not as scar-free: add a slice "
                       "beyond the cavity's tip for it", where, CAP_NOT_COVERED)
        return float(heights.min()), base_height, CAP_NOT_COVERED
    tip = float(heights.min() + CAP_SHARE_WITHOUT_CAVITY * (base_height - heights.min()))
    return tip, base_height, f"estimated: the apical {100 * CAP_SHARE_WITHOUT_CAVITY:.0f} % of the length (no endocardium found)"


def _numbering_sense(options: AhaOptions, frame: AhaFrame, anterior: np.ndarray,
                     inferior: Optional[np.ndarray]) -> dict:
    """``aha.json``'s word on the numbering direction, warned when it is the mirror of the anatomy's.

    Why: with two given points the direction is theirs, so points given inferior first numbered
    the whole table mirrored about the septum (1|4, 2|3, 5|6, 7|10, 8|9, 11|12, 13|15 swapped: the LAD
    phantom's anterior scar reported in the RCA's segments), exit 0. Warned, not refused:
    correct points on a mesh in a mirrored frame (voxel indices of an image whose direction matrix
    has a negative determinant) or on a mirrored heart (dextrocardia) give the same sense, and
    there the points' own direction numbers the segments right. A label map's arc ends and a
    single point are named in the anatomical direction (assumed); whether that numbering sits on
    the heart as in the patient's frame is ``frame_handedness``'s word (:mod:`.handedness`)."""
    if options.rv_point is None or inferior is None:
        return {"sense": "assumed", "warning": None}
    if frame.sense == ANATOMICAL_SENSE:
        return {"sense": "anatomical", "warning": None}
    front = float(anterior[1] - inferior[1])  # LPS y grows towards the back
    warning = ("the RV insertion points number the segments counter-clockwise seen from the base, the mirror of a "
               f"heart in the patient's frame: swapped? give the anterior insertion first {INSERTION_ORDER}; in the "
               "patient's frame it is the front one, and --rv-point lies "
               f"{abs(front):.0f} mm {'in front of' if front < 0 else 'behind'} the other (LPS y); with the points "
               "right, the mesh is in a mirrored frame (voxel indices, an axis flipped) or the heart is mirrored "
               "(dextrocardia), and the table follows the points")
    logger.warning(warning)
    return {"sense": "mirrored", "warning": warning}


def _summary(mesh: Mesh, options: AhaOptions, frame: AhaFrame, anterior: np.ndarray, inferior: Optional[np.ndarray],
             *, lv_nodes: int, method: str, cap_method: str, has_uncertainty: bool, has_tags: bool,
             has_error_risk: bool, tag_classes: Optional[dict] = None) -> dict:
    """How the table was made, for ``aha.json`` (``tag_classes``: :func:`tag_classes_of`)."""
    axis = frame.axis
    return {
        "mesh": str(mesh.path) if mesh.path else None, "field": options.field, "threshold": options.threshold,
        "uncertainty_field": options.uncertainty_field if has_uncertainty else None,
        "error_risk_field": ERROR_RISK_FIELD if has_error_risk else None,
        "tags_field": options.tags_field, "border_zone_tag": options.border_zone_tag if has_tags else None,
        "core_tag": options.core_tag if has_tags else None, **(tag_classes or {}),
        "lv_nodes": lv_nodes, "transmurality_method": method,
        "long_axis": {"source": axis.source, "origin_lps": axis.origin.tolist(),
                      "apex_to_base_lps": axis.base_direction.tolist()},
        "levels": {"cavity_tip_mm": frame.cavity_tip, "base_mm": frame.base_height, "apical_cap": cap_method},
        "rv_insertion": {"source": frame.insertion_source, "anterior_lps": np.asarray(anterior).tolist(),
                         "inferior_lps": None if inferior is None else np.asarray(inferior).tolist(),
                         "septum_deg": frame.septum_deg,
                         "numbering": ("clockwise" if frame.sense < 0 else "counter-clockwise") + " seen from the base",
                         **_numbering_sense(options, frame, anterior, inferior),
                         "frame_handedness": frame_handedness(frame)},
        "convention": "AHA 17 segments (Cerqueira 2002): thirds of the LV between cavity tip and base; anterior RV "
                      "insertion = boundary of segments 1|2, inferior = 3|4; see Documentation/aha.md",
    }


def with_border_zone_tag(options: AhaOptions) -> AhaOptions:
    """``options`` with the border-zone tag settled. ``cardioscar export`` writes its own tags field
    (healthy / border zone / core, 1 / 2 / 3 unless ``--tags`` changed them): read with this
    analysis's default border-zone tag 1, its healthy nodes would be counted as border zone, so
    there the tag must be given. Public so that a face that passes the tag on (the batch script)
    can refuse before its training rather than after it."""
    if options.tags_field is not None and options.border_zone_tag is None:
        if options.tags_field == TAG_ARRAY:
            raise CardioScarError(f"--tags-field {TAG_ARRAY} holds cardioscar export's tags (healthy, border zone, "
                                  "core: 1, 2, 3 unless export --tags changed them), whose border zone is not the "
                                  f"default tag {DEFAULT_BORDER_ZONE_TAG}: give --border-zone-tag (2 for the export's "
                                  "default tags)")
        options = dataclasses.replace(options, border_zone_tag=DEFAULT_BORDER_ZONE_TAG)
    if options.core_tag is not None and options.core_tag == options.border_zone_tag:
        raise CardioScarError(f"--core-tag {options.core_tag} is the border-zone tag (--border-zone-tag): give the "
                              "dense core's own tag (3 for cardioscar export's default tags)")
    return options


def with_recorded_tags(mesh: Mesh, options: AhaOptions) -> AhaOptions:
    """``options`` with the tags that ``cardioscar export`` noted on the mesh beside its
    ``tissue_tag`` (``CardioScarTissueTagValues``): an unset border-zone or core tag takes the noted
    value, a given one that names another class is refused. Why: the tag values are the export's
    ``--tags`` (1, 2, 3 unless changed); with ``--tags 0,1,2``, ``--border-zone-tag 2`` (the
    guide's advice then, now in Documentation/aha.md) counted the core as border zone and no core,
    exit 0."""
    if options.tags_field != TAG_ARRAY:
        return options
    noted = recorded_tag_values(mesh.dataset)
    if noted is None:
        return options
    for option, name in (("border_zone_tag", "border_zone"), ("core_tag", "core")):
        given = getattr(options, option)
        if given is not None and given != noted[name]:
            flag = "--" + option.replace("_", "-")
            raise CardioScarError(f"{_where(mesh)}: {flag} {given} is not its {name.replace('_', ' ')}: the export that "
                                  f"wrote {TAG_ARRAY} noted {', '.join(f'{k} {v}' for k, v in noted.items())} (export "
                                  f"--tags); give {flag} {noted[name]} or leave it out")
    return dataclasses.replace(options, border_zone_tag=noted["border_zone"], core_tag=noted["core"])


def tag_classes_of(mesh: Mesh, options: AhaOptions, where: str) -> dict:
    """What ``aha.json`` says of the tags' classes, from the note the export (or the Slicer *Tag*)
    wrote beside ``tissue_tag``: ``classes`` "tissue" (two fields) or "bands" (one field), and for
    bands their names; {} without the note. One field's bands are warned about once, in one line.

    Why: one scar field cut at two probabilities was counted per segment as ``border_zone_pct`` and
    ``core_pct``, so a reader of ``aha.csv`` took its confident part for dense core; a border zone
    and a core are two tissue classes, which two thresholds of the signal define (a scar model and
    a core model). Their columns are :data:`.table.BAND_COLUMNS` then."""
    if options.tags_field != TAG_ARRAY:
        return {}
    classes, bands = recorded_classes(mesh.dataset)
    if classes is None or (classes == "bands" and bands is None):
        return {}
    if classes == "tissue":
        return {"classes": classes}
    logger.warning("%s: its %s is one scar field cut at two probabilities (%s; %s), not border-zone and core tissue: "
                   f"counted as %s (tissue classes need a core model's field beside the scar's: {CORE_MESH_ADVICE})",
                   where, TAG_ARRAY, *bands, " and ".join(BAND_COLUMNS))
    return {"classes": classes, "bands": dict(zip(BAND_COLUMNS, bands))}


def refuse_unjoined_cells(mesh: Mesh, where: str, verb: str = "aha") -> None:
    """Refuse a mesh whose cells share no nodes (written without merging its points): every cell
    face is then a boundary, so the wall's inner and outer faces and its transmural columns are
    found on each cell, and volumes are spread over copies of each node (the segmented phantom's
    prediction unmerged: transmurality 15 % -> 0.9 % in segment 9, exit 0). ``verb``: what the user
    runs again (the channel search refuses such a mesh too: no path joins one cell to the next)."""
    extra, places, used = coincident_nodes(mesh)
    if extra > MAX_COINCIDENT_SHARE * used:
        raise CardioScarError(f"{where}: {extra} of its {used} nodes lie on another node ({places} places), so its "
                              "cells share no node and the wall's faces and thickness cannot be found (a mesh written "
                              f"without merging its points); {MERGE_ADVICE} and run {verb} again")


def analyse_mesh(mesh: Mesh, options: Optional[AhaOptions] = None, name: Optional[str] = None) -> AhaResult:
    """Segment ``mesh`` (its points in LPS) and measure ``options.field`` per segment. ``name``: what
    the messages call the mesh (default its file's name, or "the mesh"); Slicer names its model, as
    its *Tag* does, since its user never saw a file."""
    options = with_border_zone_tag(with_recorded_tags(mesh, options or AhaOptions()))
    where = name or _where(mesh)
    if not 0.0 < options.threshold < 1.0:
        raise CardioScarError(f"--threshold {options.threshold}: use a value between 0 and 1")
    check_scar_field_name(options.field, "--field")
    if options.uncertainty_field and options.uncertainty_field == options.field:
        raise CardioScarError(f"--uncertainty-field '{options.uncertainty_field}' is the scar field itself (--field): "
                              "give the MC-dropout spread (scar_uncertainty from cardioscar apply)")
    values = _point_values(mesh, options.field)
    lv_nodes = _lv_nodes(mesh, options, where)
    lv_ids = np.flatnonzero(lv_nodes)
    if not np.all(np.isfinite(values[lv_ids])):
        raise CardioScarError(f"{where}: field '{options.field}' has NaN or infinite values on the LV; give a "
                              "complete prediction")
    check_probability_field(values[lv_ids], f"{where}: field '{options.field}' (--field), cut at --threshold,")
    points = mesh.points_lps()
    # openCARP's micrometres (or metres) would pass as millimetres: volumes 10^9 off, the mm checks wrong
    check_millimetres(points, "before the AHA analysis (its volumes are ml, its distances mm)")
    warn_if_centimetres(points, where, "the AHA analysis (its volumes are ml, its distances mm)")
    refuse_unjoined_cells(mesh, where)
    dataset = mesh.dataset_lps(points)
    parts = refuse_debris(dataset, points, lv_nodes, where)
    if options.lv_mask_field is None:  # with a mask, the LV may be a piece of its own (an RV meshed apart)
        warn_about_pieces(mesh, PIECES_AHA, where, SEAM_AHA, parts)  # every node is the LV's: the same parts
    weights = node_volumes(dataset)
    if not np.any(weights[lv_ids] > 0):
        # points only (or vertex and line cells): the shape axis divided by a zero weight and
        # ended in an OverflowError traceback (round 18)
        raise CardioScarError(f"{where} has no cells with a volume or an area ({dataset.GetNumberOfCells()} cells on its "
                              f"{mesh.n_points} nodes): the segments' volumes and the wall are measured on the cells; "
                              "give the mesh with its cells (apply's output of the volumetric or surface mesh)")
    whole = bool(lv_nodes.all()) and has_cross_sections(dataset)  # no mask, or one that marks every node
    axis = _long_axis(options, points[lv_ids], weights[lv_ids],
                      (dataset, where, _second_ventricle_advice(options, mesh.n_points)) if whole else None)
    faces = _wall(options.transmurality, dataset, lv_nodes, axis, where)
    if faces is not None and not faces.volumetric and options.transmurality == "required":
        raise CardioScarError(f"{where} is a surface mesh: transmurality needs the wall's inside; give the volumetric "
                              "(tetrahedral) mesh, or leave --transmurality out for an estimate from the surfaces")
    cavity_tip, base_height, cap_method = _levels(axis, points[lv_ids], faces, points, where)
    anterior, inferior, insertion_source = _insertions(options, points[lv_ids], axis)
    frame = insertion_frame(axis, anterior, inferior, cavity_tip, base_height, insertion_source)

    point_segments = np.zeros(mesh.n_points, dtype=np.int64)
    point_segments[lv_ids] = frame.segments(points[lv_ids])
    if options.field == "scar_probability":
        warn_border_zone_off_the_call(mesh.dataset, values, options.threshold, where, "--threshold", "count")
    scar = np.where(lv_nodes, values >= options.threshold, False).astype(float)
    border = core = None
    tag_classes = tag_classes_of(mesh, options, where)
    if options.tags_field is not None:
        tag_values = np.rint(_point_values(mesh, options.tags_field))
        border = (tag_values == options.border_zone_tag).astype(float)
        if options.core_tag is not None:
            core = (tag_values == options.core_tag).astype(float)
    uncertainty = None
    if options.uncertainty_field and options.uncertainty_field in mesh.point_field_names():
        uncertainty = _point_values(mesh, options.uncertainty_field)
    elif options.uncertainty_field not in (None, "", AhaOptions.uncertainty_field):
        # the default may be absent (a field without one); a field named on purpose must exist, or a
        # typo gave a table without uncertainty as if the prediction had none (as evaluate refuses)
        raise CardioScarError(f"{where}: no point field '{options.uncertainty_field}' (--uncertainty-field); fields: "
                              f"{', '.join(mesh.point_field_names())}")
    # the risk that the call at 0.5 is wrong (cardioscar apply writes it beside the spread): the
    # segment's mean says where the map is unsure, between the slices too
    error_risk = _point_values(mesh, ERROR_RISK_FIELD) if ERROR_RISK_FIELD in mesh.point_field_names() else None
    columns, method = {}, "off"
    if faces is not None and options.transmurality != "off":
        column_values, column_centres = column_transmurality(points, lv_ids, scar, weights, faces)
        columns = {"column_segments": frame.segments(column_centres), "column_area": faces.endo_area,
                   "column_values": column_values}
        method = ("nearest-endocardium columns of the volumetric mesh" if faces.volumetric
                  else "ESTIMATED on a surface mesh from the endocardial and nearest epicardial node only")
    rows = segment_rows(point_segments, weights, scar, volumetric=is_volumetric(dataset),
                        border_zone=border, core=core, uncertainty=uncertainty, error_risk=error_risk,
                        tag_columns=BAND_COLUMNS if "bands" in tag_classes else TISSUE_COLUMNS, **columns)
    summary = {**_summary(mesh, options, frame, anterior, inferior, lv_nodes=int(lv_nodes.sum()), method=method,
                          cap_method=cap_method, has_uncertainty=uncertainty is not None, has_tags=border is not None,
                          has_error_risk=error_risk is not None, tag_classes=tag_classes),
               "lv": lv_total(rows)}
    return AhaResult(point_segments=point_segments, cell_segments=_cell_segments(dataset, lv_nodes, frame),
                     rows=rows, summary=summary, frame=frame)


def check_frame(mesh: Mesh, options: AhaOptions, name: Optional[str] = None) -> None:
    """Find ``mesh``'s AHA frame (long axis, levels, RV insertions) with ``options`` before there is
    a field to measure, so that every refusal that depends on the mesh and the options alone comes
    now: a point off the wall, a mesh of both ventricles, debris, an LV mask that marks no LV.

    Why: a face that trains and then segments (a cohort row, the Slicer batch script) found the
    frame only after the training, so such a mistake failed the run minutes after its cause could
    have been named. The analysis itself runs (:func:`analyse_mesh`, no second copy of its rules) on
    a copy of the mesh whose only fields are a scar-free ``options.field`` and the LV mask; what
    needs the prediction is left out: the uncertainty, the tags and, unless ``required`` asks for
    the wall's inside, transmurality. Its warnings are those of the mesh and the options (swapped
    points, a cap the slices missed); ``name`` as :func:`analyse_mesh`'s."""
    fields = {options.field: np.zeros(mesh.n_points)}
    if options.lv_mask_field is not None:  # a missing mask is named with the fields the mesh has
        fields[options.lv_mask_field] = mesh.point_array(options.lv_mask_field)
    dataset = mesh.dataset.NewInstance()
    dataset.ShallowCopy(mesh.dataset)
    dataset.GetPointData().Initialize()  # the copy's fields only: an earlier scar_binary is not this field's
    for field_name, values in fields.items():
        array = numpy_to_vtk(np.ascontiguousarray(values), deep=True)
        array.SetName(field_name)
        dataset.GetPointData().AddArray(array)
    frame_only = dataclasses.replace(options, uncertainty_field=None, tags_field=None, border_zone_tag=None,
                                     core_tag=None,
                                     transmurality="off" if options.transmurality == "auto" else options.transmurality)
    analyse_mesh(dataclasses.replace(mesh, dataset=dataset), frame_only, name)


def mesh_with_segments(mesh: Mesh, result: AhaResult) -> Mesh:
    """A copy of ``mesh`` whose cells carry ``aha_segment`` (the points get it when written)."""
    dataset = mesh.dataset.NewInstance()
    dataset.ShallowCopy(mesh.dataset)
    cell_array = numpy_to_vtk(result.cell_segments.astype(np.int32), deep=True)
    cell_array.SetName(SEGMENT_ARRAY)
    dataset.GetCellData().RemoveArray(SEGMENT_ARRAY)
    dataset.GetCellData().AddArray(cell_array)
    return Mesh(dataset=dataset, space=mesh.space, path=mesh.path)


def write_outputs(mesh: Mesh, result: AhaResult, output_dir: str | Path, mesh_name: Optional[str] = None,
                  subtitle: str = "", reference_rows: Optional[list[dict]] = None) -> dict[str, Path]:
    """Write ``aha.csv``, ``aha.json``, ``bullseye.png`` and (with ``mesh_name``) the mesh with
    ``aha_segment`` point and cell arrays into ``output_dir``, as one set (:func:`write_aha_set`).
    ``reference_rows`` (a known truth's table) adds its scar % as one more disc."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise CardioScarError(f"--output-dir {out} exists and is not a folder; give a folder")
    segmented = None
    if mesh_name:
        mesh_path = out / mesh_name
        if mesh.path is not None and mesh_path.resolve() == mesh.path.resolve():
            raise CardioScarError(f"the AHA mesh would overwrite the input {mesh.path}; choose another --output-dir")
        segmented = (mesh_path, mesh_with_segments(mesh, result), result.point_segments)
    return write_aha_set(out, result.rows, result.summary, subtitle or _subtitle(result), reference_rows,
                         mesh=segmented)


def write_aha_set(out: Path, rows: list[dict], summary: dict, subtitle: str,
                  reference_rows: Optional[list[dict]] = None, *,
                  mesh: Optional[tuple[Path, Mesh, np.ndarray]] = None,
                  segments_on: Optional[Path] = None) -> dict[str, Path]:
    """Write ``bullseye.png`` (titled ``subtitle``), ``aha.csv``, ``aha.json`` and, given ``mesh``
    (its path, the mesh with ``aha_segment`` cells and the point segments), the segmented mesh into
    ``out`` as one set (:func:`~cardioscar.io.atomic.atomic_write_set`): all of them placed, or the
    earlier ones kept. An earlier run's ``aha_mesh.<ext>`` goes with the placing, unless it is this
    set's mesh or ``segments_on`` (the batch script's ``--output``, which holds its segments):
    :func:`earlier_meshes`. Returns the paths, by kind (``FILES``' keys and ``mesh``).

    Why one set: each file was placed on its own, so a Ctrl-C, a kill or a full disk between two
    left a new ``bullseye.png`` beside an earlier run's table and mesh (another patient, axis or
    threshold) in a folder a user reads as one result."""
    paths = {key: out / name for key, name in FILES.items()}
    if mesh is not None:
        paths["mesh"] = mesh[0]
        check_mesh_target(mesh[1], mesh[0])
    earlier = earlier_meshes(out, paths.get("mesh", segments_on))
    with atomic_write_set(list(paths.values()), earlier) as temporaries:
        into = dict(zip(paths, temporaries))
        # the picture first: drawing is the step most likely to fail, before the mesh's seconds
        save_bullseye(rows, into["png"], subtitle, reference_rows)
        save_table(rows, summary, into["csv"], into["json"])
        said = None if mesh is None else save_mesh(mesh[1], into["mesh"], mesh[0],
                                                   {SEGMENT_ARRAY: mesh[2].astype(np.int32)})
    if said is not None:  # once it is in place
        logger.info(said)
    for removed in earlier:
        logger.warning("Removed %s from %s: an earlier run's segmented mesh, not this table's", removed.name, out)
    return paths


def earlier_meshes(out: Path, kept: Optional[Path]) -> list[Path]:
    """An earlier run's ``aha_mesh.<ext>`` in ``out`` but ``kept`` (the mesh this run writes or
    names there): another format (the input was a ``.vtu``, now a ``.vtk``), or any where this run
    writes none (the batch script's ``--aha-dir``, whose segments go on its ``--output``).

    Why: it stayed beside the new table and plot, so the folder held two segmented meshes, one of
    them another run's (another patient, axis or field) that a viewer opened as this result's,
    exit 0; as an openCARP export's earlier ``.lon`` goes with its set."""
    candidates = (out / f"{MESH_STEM}{suffix}" for suffix in MESH_SUFFIXES)
    return [earlier for earlier in candidates
            if earlier.is_file() and (kept is None or earlier.resolve() != kept.resolve())]


def _subtitle(result: AhaResult) -> str:
    summary = result.summary
    bands = "".join(f"; {column}: {name}" for column, name in summary.get("bands", {}).items())
    return (f"{summary['field']} >= {summary['threshold']:g}; axis: {summary['long_axis']['source']}; "
            f"RV insertion: {summary['rv_insertion']['source']}; transmurality: {summary['transmurality_method']}"
            + (f"{bands} (one field's bands, not tissue)" if bands else ""))


def run_aha(mesh: Mesh | str | Path, output_dir: str | Path, options: Optional[AhaOptions] = None) -> AhaResult:
    """Files out (and in, given a path): analyse the mesh, write the table, the plot and the
    segmented mesh ``aha_mesh.<ext>`` (the input's format; ``.vtk`` for a mesh made in memory)."""
    from cardioscar.io.meshio import read_mesh

    if not isinstance(mesh, Mesh):
        mesh = read_mesh(mesh)
    result = analyse_mesh(mesh, options)
    suffix = mesh.path.suffix.lower() if mesh.path is not None else ".vtk"
    write_outputs(mesh, result, output_dir, mesh_name=f"{MESH_STEM}{suffix}")
    return result
