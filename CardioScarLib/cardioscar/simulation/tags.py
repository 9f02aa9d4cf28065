"""Healthy / border zone / core tags on mesh nodes and elements, with class volumes.

Rule (documented in Documentation/lge-to-opencarp.md#from-lge-to-an-opencarp-model):
* one field (``scar_probability``): a node is core where p >= ``core``, border zone where
  ``border_zone`` <= p < ``core``, healthy below; defaults 0.5 and 0.8;
* two fields (scar and core probability, from a scar model and a core model): core where the core
  field >= ``core``, else border zone where the scar field >= ``border_zone``; defaults 0.5 and 0.5.
* an element takes the tag of the mean of its nodes' field values (the same thresholds), so an
  element is core only when its nodes are core on average, not when one corner is.
Tag numbers default to 1 (healthy), 2 (border zone), 3 (core): openCARP region tags, 0 left free.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from ..errors import CardioScarError
from ..io.meshio import (BINARY_TARGETS, CORE_TARGET, GRADED_TARGETS, SCAR_RULE_ARRAY, TRAINING_TARGETS_ARRAY,
                         rule_record_target, text_field)

logger = logging.getLogger(__name__)

DEFAULT_TAGS = (1, 2, 3)
#: the largest tag number: the writers store tags as 32-bit integers
TAG_MAX = 2**31 - 1
CLASS_NAMES = ("healthy", "border_zone", "core")
#: default thresholds: border zone on the scar field; core on the scar field (one field) or on the
#: core field (two fields)
DEFAULT_BORDER_ZONE = 0.5
DEFAULT_CORE_ONE_FIELD = 0.8
DEFAULT_CORE_TWO_FIELDS = 0.5


def band_labels(border_zone: float, core: float) -> tuple[str, str]:
    """The names of one field's two bands, cut at ``border_zone`` and ``core`` (:meth:`TissueTags.class_labels`)."""
    return f"probability band {border_zone:g}-{core:g}", f"probability >= {core:g}"


@dataclass
class TissueTags:
    """Per-node and per-element tags plus what produced them."""

    node_tags: np.ndarray
    element_tags: np.ndarray
    element_volumes_mm3: np.ndarray
    border_zone: float
    core: float
    tag_values: tuple[int, int, int]
    two_fields: bool
    #: Area (mm^2) of each element of a mesh without volume cells (a surface), else None.
    element_areas_mm2: np.ndarray | None = None
    #: The targets the scar model was trained on, as ``apply`` noted them on the mesh ("0/1",
    #: "graded"; None when not noted): what a one-field border zone is (:meth:`border_zone_meaning`).
    scar_targets: str | None = None
    #: The field the model learned by its scar rule, as ``apply`` noted it ("core", "scar"; None
    #: when not noted or trained without a rule): a core model's field alone is no scar field.
    model_target: str | None = None

    def border_zone_meaning(self) -> str:
        """What the border-zone tag stands for, for the sidecar: with one field it is graded tissue
        only when the scar model learned graded targets; trained on 0/1 it is the field's edge."""
        if self.two_fields:
            return "the scar model's scar outside the core model's core"
        if self.model_target == CORE_TARGET:
            return ("the core model's field between the thresholds: its core's blurred edge (the scar outside the "
                    "core is tagged healthy)")
        if self.scar_targets == BINARY_TARGETS:
            return ("the scar field's blurred edge: its model was trained on 0/1 targets, so the band between the "
                    "thresholds is not graded border-zone tissue")
        if self.scar_targets == GRADED_TARGETS:
            return "the scar field between the thresholds, its model trained on graded targets"
        return "the scar field between the thresholds (the targets its model learned are not recorded)"

    def class_labels(self) -> tuple[str, str, str]:
        """The three tags' names for a reader (a log line, a legend, a table row), in tag order.

        Why: a border zone and a core are two tissue classes, which two thresholds of the signal
        define (FWHM, 2-SD/3-SD, 3-SD/5-SD): two fields here, a scar model's and a core model's. One
        field cut at two probabilities is two bands of one quantity (a label map's scar: its edge
        and its confident part), which a table or legend that said "border zone" and "core" passed
        off as tissue. The machine-read names (:data:`CLASS_NAMES`) stay as they are."""
        if self.two_fields:
            return ("healthy", "border zone", "core")
        return ("healthy", *band_labels(self.border_zone, self.core))

    def summary(self) -> dict:
        """Volume (ml) and percentage of the tagged volume per class, and node counts. On a surface
        mesh (no volume) the percentage is of the tagged area, given as ``area_cm2`` too: of the
        volume, every class was 0 % of nothing, a scar-free heart in the sidecar."""
        sizes = self.element_volumes_mm3 if self.element_areas_mm2 is None else self.element_areas_mm2
        total = float(sizes.sum())
        rows = {}
        for name, tag in zip(CLASS_NAMES, self.tag_values):
            mine = self.element_tags == tag
            rows[name] = {"tag": tag, "nodes": int((self.node_tags == tag).sum()), "elements": int(mine.sum()),
                          "volume_ml": float(self.element_volumes_mm3[mine].sum()) / 1000.0,
                          "percent": 100.0 * float(sizes[mine].sum()) / total if total > 0 else 0.0}
            if self.element_areas_mm2 is not None:
                rows[name]["area_cm2"] = float(self.element_areas_mm2[mine].sum()) / 100.0
        return rows


def check_thresholds(border_zone: float, core: float, two_fields: bool) -> None:
    """Both thresholds in (0, 1); with one field the border zone must lie below the core."""
    for name, value in (("--border-zone", border_zone), ("--core", core)):
        if not 0.0 < value < 1.0:
            raise CardioScarError(f"{name} {value:g} is outside the valid range 0 < P < 1")
    if not two_fields and border_zone >= core:
        raise CardioScarError(f"--border-zone {border_zone:g} must be below --core {core:g} when both apply to one field")


def resolved_thresholds(border_zone: float | None, core: float | None, two_fields: bool) -> tuple[float, float]:
    """The thresholds with the defaults filled in (the core's depends on ``two_fields``), checked:
    a face that tags only after a long run (the batch script) refuses a bad one before it."""
    border_zone = DEFAULT_BORDER_ZONE if border_zone is None else border_zone
    core = (DEFAULT_CORE_TWO_FIELDS if two_fields else DEFAULT_CORE_ONE_FIELD) if core is None else core
    check_thresholds(border_zone, core, two_fields)
    return border_zone, core


def check_probability_field(values: np.ndarray, described: str) -> None:
    """Thresholds in (0, 1) are probabilities: a field with NaN (below every threshold) or values
    outside [0, 1] (another quantity: raw intensities, tags, a percentage) would be cut silently
    wrong. ``described`` names the field and its option, e.g. "The scar field (--scar-field)"."""
    values = np.asarray(values, np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise CardioScarError(f"{described} has {int(bad.sum())} node(s) with NaN or infinite values: it must be a "
                              "probability on every node (scar_probability from cardioscar apply)")
    if values.size and (values.min() < -1e-6 or values.max() > 1.0 + 1e-6):
        raise CardioScarError(f"{described} ranges {values.min():g}..{values.max():g}, outside [0, 1]: it must be a "
                              "probability (scar_probability from cardioscar apply), not another quantity")


#: The share of core nodes (at least MIN_CORE_OUTSIDE_NODES) that may lie where the scar field is
#: below the border-zone threshold. The core is part of the scar, so a scar and a core model of
#: one patient agree but for noise (1 % on the raw-LGE demo); given the other way round, the
#: scar field's border zone became core and the border zone vanished (20 % there).
MAX_CORE_OUTSIDE_SCAR = 0.10
MIN_CORE_OUTSIDE_NODES = 10
#: The share by which the core may outnumber the scar (nodes). Swapped fields with a thin border
#: zone (under MAX_CORE_OUTSIDE_SCAR of the scar) pass the check above, but then the "core" is
#: the whole scar and outnumbers the "scar" (the true core) by the border zone; fields in the
#: right order have a core no larger than the scar but for the same noise (1 %).
MAX_CORE_EXCESS = 0.03
#: What both refusals below conclude, and the fix.
_SWAPPED = ("the scar and core fields look swapped (--mesh/--scar-field must be the scar model's result, "
            "--core-mesh/--core-field the core model's) or come from different patients")


def check_core_inside_scar(scar: np.ndarray, core_field: np.ndarray, border_zone: float, core: float) -> None:
    """Refuse a core field whose core lies largely outside the scar field's scar, or outnumbers it:
    the two fields swapped (the core model's result given as the scar), or of two patients."""
    core_nodes = np.asarray(core_field) >= core
    scar_nodes = np.asarray(scar) >= border_zone
    n_core, n_scar = int(core_nodes.sum()), int(scar_nodes.sum())
    outside = int((core_nodes & ~scar_nodes).sum())
    if outside >= MIN_CORE_OUTSIDE_NODES and outside > MAX_CORE_OUTSIDE_SCAR * n_core:
        raise CardioScarError(
            f"{outside} of the {n_core} core nodes (core field >= {core:g}) have a scar field below "
            f"--border-zone {border_zone:g}, but the core is part of the scar: {_SWAPPED}")
    if n_core - n_scar >= MIN_CORE_OUTSIDE_NODES and n_core - n_scar > MAX_CORE_EXCESS * n_core:
        raise CardioScarError(
            f"The core field has {n_core} core nodes (>= {core:g}) but the scar field only {n_scar} scar nodes "
            f"(>= --border-zone {border_zone:g}), and the core is part of the scar: {_SWAPPED}")


def _grade(scar: np.ndarray, core_field: np.ndarray | None, border_zone: float, core: float,
           tags: tuple[int, int, int]) -> np.ndarray:
    core_values = scar if core_field is None else core_field
    return np.where(core_values >= core, tags[2], np.where(scar >= border_zone, tags[1], tags[0])).astype(np.int32)


def cell_node_lists(dataset: vtk.vtkDataSet) -> list[np.ndarray]:
    """The node indices of every cell, in VTK order."""
    ids = vtk.vtkIdList()
    nodes = []
    for c in range(dataset.GetNumberOfCells()):
        dataset.GetCellPoints(c, ids)
        nodes.append(np.array([ids.GetId(i) for i in range(ids.GetNumberOfIds())], np.int64))
    return nodes


def element_sizes(dataset: vtk.vtkDataSet, measure: str = "Volume") -> np.ndarray:
    """``Volume`` (mm^3, 0 for surface cells) or ``Area`` (mm^2, 0 for volume cells) of each cell."""
    sizes = vtk.vtkCellSizeFilter()
    sizes.SetInputData(dataset)
    sizes.ComputeVertexCountOff()
    sizes.ComputeLengthOff()
    sizes.SetComputeArea(measure == "Area")
    sizes.SetComputeVolume(measure == "Volume")
    sizes.Update()
    return np.abs(vtk_to_numpy(sizes.GetOutput().GetCellData().GetArray(measure)).astype(np.float64))


#: How the command line tags from a core model's field beside the scar's, the advice where one field's
#: bands are read as tissue (a face that gives the core model otherwise words it its own way: the
#: Slicer Logic's ``core_model``).
CORE_MESH_ADVICE = "export --core-mesh"
#: The same advice as ``channels.json`` writes it, in no face's options: the file is the same whichever
#: face wrote it, and the panel, which reads it back, words it as its own (its *Core model*).
FILE_CORE_MODEL_ADVICE = "tag again with a core model's field as the core"
#: The advice of :func:`warn_border_zone_off_the_call`: a face that sets the cut otherwise (the Slicer
#: panel's AHA, which has no threshold box) finds it by this text and words it as its own.
CALL_ADVICE = "give {option} {cut} (the same setting in Slicer) to {use} the scar apply called"


def warn_border_zone_off_the_call(dataset: vtk.vtkDataSet, scar: np.ndarray, border_zone: float, name: str,
                                  option: str = "--border-zone", use: str = "tag") -> None:
    """Warn when the mesh's ``scar_binary`` (the call ``apply --threshold T`` wrote beside the
    probability) and the border-zone cut being tagged disagree on some nodes.

    Why: a modeller who chose T in ``apply`` and exported with the default ``--border-zone`` 0.5
    simulated another scar than the one the thresholded map shows, without a word (the 1,500-node
    phantom applied at 0.3: the export's scar 79 nodes, the map's 163). Grading at another cut
    can be meant, so a warning with the threshold to give, not an error. Only for the field
    ``scar_binary`` was cut from (``scar_probability``); ``aha`` asks the same of its
    ``--threshold`` (``option``), to ``use`` ("count") the scar."""
    array = dataset.GetPointData().GetArray("scar_binary")
    if array is None or array.GetNumberOfTuples() != len(scar):
        return
    called = vtk_to_numpy(array).ravel() > 0.5
    tagged = np.asarray(scar, np.float64) >= border_zone
    differ = int(np.count_nonzero(called != tagged))
    if differ:
        cut = _shortest_cut(float(np.max(scar[~called], initial=0.0)), float(np.min(scar[called], initial=1.0)))
        # the option is part of the message's words, not a value filled in: the batch script names it its own way
        logger.warning("%s: its scar_binary (the call of cardioscar apply --threshold %s) marks %d nodes scar, the cut at "
                       "%g marks %d (%d differ); " + CALL_ADVICE.format(option=option, cut="%s", use=use), name, cut,
                       int(called.sum()), border_zone, int(tagged.sum()), differ, cut)


def _shortest_cut(below: float, top: float) -> str:
    """The decimal with the fewest digits in ``(below, top]``: a threshold that makes the same call
    as the one ``scar_binary`` holds (every scar node at or above it, every other below)."""
    for digits in range(1, 9):
        candidate = math.floor(below * 10 ** digits + 1) / 10 ** digits
        if candidate <= top:
            return f"{candidate:.{digits}f}"
    return f"{top:.9g}"


def check_tag_values(tag_values: tuple[int, int, int]) -> None:
    """Refuse tag numbers the tagged files cannot hold as given.

    Why: the tags are stored as 32-bit integers (the ``.elem``'s last column, the ``.vtu``'s
    ``tissue_tag``), so a core tag of 300000000000 was written as -647710720 and the class summary,
    which counts the stored tags equal to the given numbers, reported the core as 0 elements and
    0.00 ml, exit 0 (a fraction such as 3.5 from the Python API was stored as 3, with the same
    summary); and the Slicer colour table numbers its entries from 0, so a negative tag's class had
    no colour."""
    whole = all(isinstance(tag, (int, np.integer)) and not isinstance(tag, bool) for tag in tag_values)
    if len(tag_values) != 3 or not whole or not all(0 <= tag <= TAG_MAX for tag in tag_values):
        raise CardioScarError(f"--tags {tuple(tag_values)} must be three whole numbers from 0 to {TAG_MAX} (healthy, "
                              "border zone, core; openCARP region tags, stored as 32-bit integers), e.g. 1,2,3")
    if len(set(tag_values)) != 3:
        raise CardioScarError(f"--tags {tuple(tag_values)} must be three different numbers (healthy, border zone, core)")


def check_tag_inputs(dataset: vtk.vtkDataSet, scar: np.ndarray, core_field: np.ndarray | None = None,
                     border_zone: float | None = None, core: float | None = None,
                     tag_values: tuple[int, int, int] = DEFAULT_TAGS) -> tuple[float, float]:
    """Every check of :func:`tag_mesh` (all cheap), and its thresholds with the defaults filled in:
    a caller that tags elsewhere (the Slicer panel's worker) refuses bad input at once with them."""
    two_fields = core_field is not None
    border_zone, core = resolved_thresholds(border_zone, core, two_fields)
    check_tag_values(tag_values)
    if dataset.GetNumberOfCells() == 0:
        raise CardioScarError("The mesh has no cells: elements cannot be tagged; give a mesh with volume or surface cells")
    check_probability_field(scar, "The scar field (--scar-field)")
    if core_field is not None:
        check_probability_field(core_field, "The core field (--core-field)")
        check_core_inside_scar(scar, core_field, border_zone, core)
    return border_zone, core


def tag_nodes(dataset: vtk.vtkDataSet, scar: np.ndarray, border_zone: float | None = None, core: float | None = None
              ) -> tuple[np.ndarray, tuple[float, float]]:
    """The nodes' tags (:data:`DEFAULT_TAGS`) of one scar field by :func:`tag_mesh`'s rule and
    checks, and the thresholds used: for a search over nodes (the channels), which needs no
    element tags or volumes."""
    border_zone, core = check_tag_inputs(dataset, scar, None, border_zone, core)
    return _grade(np.asarray(scar, np.float64), None, border_zone, core, DEFAULT_TAGS), (border_zone, core)


def tag_mesh(dataset: vtk.vtkDataSet, scar: np.ndarray, core_field: np.ndarray | None = None,
             border_zone: float | None = None, core: float | None = None,
             tag_values: tuple[int, int, int] = DEFAULT_TAGS) -> TissueTags:
    """Tag nodes and elements of ``dataset`` from the scar field (and optional core field)."""
    two_fields = core_field is not None
    border_zone, core = check_tag_inputs(dataset, scar, core_field, border_zone, core, tag_values)
    nodes = cell_node_lists(dataset)
    scar = np.asarray(scar, np.float64)
    mean_scar = np.array([scar[n].mean() for n in nodes])
    mean_core = None if core_field is None else np.array([np.asarray(core_field)[n].mean() for n in nodes])
    volumes = element_sizes(dataset)
    return TissueTags(node_tags=_grade(scar, core_field, border_zone, core, tag_values),
                      element_tags=_grade(mean_scar, mean_core, border_zone, core, tag_values),
                      element_volumes_mm3=volumes, border_zone=border_zone, core=core,
                      tag_values=tuple(tag_values), two_fields=two_fields,
                      element_areas_mm2=element_sizes(dataset, "Area") if volumes.sum() <= 0 else None,
                      scar_targets=text_field(dataset, TRAINING_TARGETS_ARRAY),
                      model_target=rule_record_target(text_field(dataset, SCAR_RULE_ARRAY)))


#: What :func:`warn_edge_as_border_zone` tells a command-line user to do.
CORE_MODEL_ADVICE = ("train a core model (prepare --scar-target core, or --scar-labels of the core) and give its "
                     "prediction as --core-mesh (or --core-field)")


def warn_edge_as_border_zone(tags: TissueTags, name: str, advice: str = CORE_MODEL_ADVICE) -> None:
    """Warn when one field's border zone is the edge of a scar model trained on 0/1 targets.

    Why: the one-field rule tags border zone where border_zone <= p < core. A model that learned
    0/1 targets (``--scar-labels``, a scar rule's scar target) has no graded tissue to learn; its
    values between the thresholds are the learned scar's blurred edge, yet a simulator gives that
    band border-zone conductivity. A warning, not an error: the band may be wanted as a
    transition; the sidecar says what it is (:meth:`TissueTags.border_zone_meaning`). Nothing tagged
    border zone (a scar-free heart's labels: a field near 0 everywhere), nothing to warn about."""
    if not tags.two_fields and tags.model_target == CORE_TARGET:
        logger.warning("%s is a core model's prediction (its scar rule's --scar-target core): tagged alone, the scar "
                       "outside the core is tagged healthy and the core's edge border zone; give the scar model's "
                       "prediction as the scar field and this one as the core (--core-mesh; in Slicer the *Core "
                       "model*)", name)
        return
    if tags.two_fields or tags.scar_targets != BINARY_TARGETS:
        return
    band = tags.summary()["border_zone"]
    if not band["nodes"] and not band["elements"]:
        return
    share = band["percent"]
    logger.warning("%s: its scar model was trained on 0/1 targets, so the border zone tagged from the scar field alone "
                   "(%g <= scar_probability < %g, %.1f %% of the tissue) is the learned scar's blurred edge, not "
                   "border-zone tissue, yet a simulator gives it border-zone conductivity; for a border zone of "
                   "tissue %s", name, tags.border_zone, tags.core, share, advice)
