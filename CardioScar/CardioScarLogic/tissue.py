"""Border zone / core tags and simulator export for a model node in the scene (Qt-free).

``tag_model_node`` tags a reconstructed model (point field ``scar_probability``, optionally a core
field) with the library's rule (:mod:`cardioscar.simulation.tags`), stores ``tissue_tag`` as point
and cell arrays on the node's mesh, colours the model with a 3-colour table plus legend, and adds
volume rows to the model's summary table. ``export_model_node`` writes the node (world LPS
coordinates, any parent transform applied) as openCARP files or a ``.vtu``.

``tag_model_node`` is three steps, which the panel runs apart so that the slow middle one runs in
its worker process (:meth:`CardioScarLogic.background.BackgroundRun.tissue`): read and check the
inputs (:func:`read_tagging_inputs`, scene only), compute the tags (no scene), and write them on
the node (:func:`apply_tags`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import slicer
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from cardioscar.errors import CardioScarError
from cardioscar.simulation.channels import CHANNEL_FIELD
from cardioscar.simulation.hidden_channels import MARGINAL_CORE_FIELD
from cardioscar.simulation.export import CORE_MESH_TOLERANCE_MM, check_core_labels, refuse_scar_as_core
from cardioscar.simulation.opencarp import TAG_ARRAY, check_millimetres, note_tag_values, warn_if_centimetres
from cardioscar.io.checks import check_scar_field_name
from cardioscar.simulation.tags import TissueTags, check_tag_inputs

from .geometry import check_unchanged, model_points_lps, model_state, world_mesh_lps
from .results import (PROBABILITY, SCAR_RULE_ATTRIBUTE, SUMMARY_REFERENCE, learned_target, recorded_scar_rule,
                      update_summary_table, write_point_arrays)
from .wording import LOGIC_FIBRE_ADVICE, TISSUE_NAMES, speaks_logic_words
from .worker import SLICER_CORE_MODEL_ADVICE, tag_world_mesh, write_export

logger = logging.getLogger(__name__)

TAG_COLOR_TAG = "CardioScarTissueTags"
TAG_COLOR_ID = "vtkMRMLColorTableNode" + TAG_COLOR_TAG
#: healthy grey-blue, border zone amber, core dark red
TAG_COLORS = ((0.55, 0.62, 0.75), (0.98, 0.70, 0.15), (0.62, 0.05, 0.10))
ROW_PREFIX = "Tissue "


def _point_field(model_node, name: str) -> np.ndarray:
    mesh = model_node.GetMesh()
    array = None if mesh is None else mesh.GetPointData().GetArray(name)
    if array is None:
        raise CardioScarError(f"The model '{model_node.GetName()}' has no point field '{name}': reconstruct the scar "
                              "first (Apply), or choose the field holding it")
    return vtk_to_numpy(array).astype(np.float64)


def singleton_color_table(scene, singleton_tag: str, name: str):
    """The scene's one user colour table of ``singleton_tag`` (made on first use, CardioScar's
    category), named ``name``: the tissue tags' and the channels' tables, refilled on each use."""
    node_id = "vtkMRMLColorTableNode" + singleton_tag
    node = scene.GetNodeByID(node_id)
    if node is None:
        node = slicer.vtkMRMLColorTableNode()
        node.SetSingletonTag(singleton_tag)
        node.SetTypeToUser()
        node.SetAttribute("Category", "CardioScar")
        scene.AddNode(node)
        node = scene.GetNodeByID(node_id)
    node.SetName(name)
    return node


def show_by_table(model_node, field: str, association: int, color_node, top: int) -> None:
    """Colour ``model_node`` by the integer ``field`` (point or cell data, ``association``) through
    ``color_node``, one entry per value 0..``top`` (a manual range: the table's entries are the
    values; the tissue tags', the channels')."""
    if model_node.GetDisplayNode() is None:
        model_node.CreateDefaultDisplayNodes()
    display = model_node.GetDisplayNode()
    with slicer.util.NodeModify(display):
        display.SetActiveScalar(field, association)
        display.SetAndObserveColorNodeID(color_node.GetID())
        display.SetScalarRangeFlag(slicer.vtkMRMLDisplayNode.UseManualScalarRange)
        display.SetScalarRange(0.0, float(top))
        display.SetScalarVisibility(True)


def tag_color_node(scene, tags: TissueTags):
    """A colour table whose entries at the tag numbers are the three class colours (others clear),
    named as :meth:`TissueTags.class_labels` names them (one field's bands as probability bands)."""
    tag_values = tags.tag_values
    node = singleton_color_table(scene, TAG_COLOR_TAG, "CardioScar tissue tags")
    node.SetNumberOfColors(max(tag_values) + 1)
    for index in range(max(tag_values) + 1):  # unused numbers opaque too: a translucent entry makes VTK draw
        node.SetColor(index, "", 0.0, 0.0, 0.0, 1.0)  # the whole model as translucent
        node.SetColorDefined(index, False)
    for tag, name, (r, g, b) in zip(tag_values, tags.class_labels(), TAG_COLORS):
        node.SetColor(tag, name, r, g, b, 1.0)
    return node


def tissue_rows(tags: TissueTags) -> list[tuple[str, str, str]]:
    """Summary-table rows: volume (ml) and percentage per class, named as
    :meth:`TissueTags.class_labels` names them."""
    rows = []
    for name, row in zip(tags.class_labels(), tags.summary().values()):
        label = f"{ROW_PREFIX}{name} (tag {row['tag']})"
        rows += [(f"{label} volume", f"{row['volume_ml']:.2f}", "ml"), (f"{label} share", f"{row['percent']:.1f}", "%")]
    return rows


def _existing_rows(model_node) -> list[tuple[str, str, str]]:
    table_node = model_node.GetNodeReference(SUMMARY_REFERENCE)
    if table_node is None or table_node.GetTable() is None:
        return []
    table = table_node.GetTable()
    rows = [tuple(table.GetValue(r, c).ToString() for c in range(3)) for r in range(table.GetNumberOfRows())]
    return [row for row in rows if not row[0].startswith(ROW_PREFIX)]


def core_values(model_node, core_field: Optional[str] = None, core_model=None,
                model_points: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """The core field of a two-field tagging, checked before anything changes: ``core_field`` of
    ``core_model`` (a core model's result on the same mesh; default ``scar_probability``, as
    ``cardioscar export --core-mesh``), else ``core_field`` of the model itself (``--core-field``),
    else None (one field). A result whose recorded scar rule says it learned the other target is
    refused, since swapping the two would tag every scar node core. ``model_points``: the model's
    world LPS points when the caller has read them already (:func:`model_points_lps`)."""
    check_scar_field_name(core_field, "The core field")
    if core_model is None:
        refuse_scar_as_core(PROBABILITY, core_field, same_mesh=True)
        return None if not core_field else _point_field(model_node, core_field)
    name, core_name = model_node.GetName(), core_model.GetName()
    if core_model is model_node:
        raise CardioScarError(f"The core model '{core_name}' is the model to tag itself: choose the result of a run "
                              "that learned the core (scar target core), or none for one field")
    nodes = model_node.GetMesh().GetNumberOfPoints()
    core_nodes = 0 if core_model.GetMesh() is None else core_model.GetMesh().GetNumberOfPoints()
    if core_nodes != nodes:
        raise CardioScarError(f"The core model '{core_name}' has {core_nodes} nodes but '{name}' has {nodes}: apply "
                              "the core model to the same mesh, or choose its result on this mesh")
    if learned_target(core_model) == "scar":
        raise CardioScarError(f"The core model '{core_name}' learned the scar (border zone + core), not the core: "
                              "choose the result of a run with scar target core")
    if learned_target(model_node) == "core":
        raise CardioScarError(f"The model to tag '{name}' learned the core: choose the scar result (scar target "
                              f"scar) to tag, and '{name}' as its core model")
    points = model_points_lps(model_node) if model_points is None else model_points
    offset = float(np.abs(model_points_lps(core_model) - points).max())
    if offset > CORE_MESH_TOLERANCE_MM:  # as export --core-mesh: the same count of other nodes
        raise CardioScarError(f"The core model '{core_name}' has as many nodes as '{name}', but not at the same places "
                              f"(up to {offset:.3g} mm apart): choose the core model's result on this mesh")
    rules = [_rule_definition(node) for node in (model_node, core_model)]
    if None not in rules and rules[0] != rules[1]:
        raise CardioScarError(f"'{name}' and its core model '{core_name}' were trained on different scar rules "
                              f"({rules[0]} vs {rules[1]}): the border zone and the core must come from one rule; "
                              "train both with the same rule, thresholds, offset and expert labels")
    rule = recorded_scar_rule(model_node)
    check_core_labels(model_node.GetMesh(), json.loads(rule) if rule else None, core_model.GetMesh(),
                      f"The core model '{core_name}'")
    return _point_field(core_model, core_field or PROBABILITY)


def _rule_definition(model_node) -> Optional[tuple]:
    """:func:`cardioscar.lge.rules.rule_definition` of the scar rule recorded on a result (the node's
    attribute, else its mesh's note), or None."""
    import json

    from cardioscar.lge.rules import rule_definition

    text = recorded_scar_rule(model_node)
    return rule_definition(json.loads(text)) if text else None


@dataclass
class TaggingInputs:
    """What a tagging reads from the scene, checked: the model's mesh in world LPS (any parent
    transform applied, its arrays included), its scar field and the core field (two fields) or
    None, and the thresholds and tag numbers. Computing the tags from it needs no scene.
    ``state``: the checksums of the points, the cells and the model's fields read (:func:`check_tags_fit`);
    ``core_model`` and ``core_state``: the core model read for the core field (two fields) and the
    same checksums of it, since a core model rerun or moved meanwhile changes the tags as much."""

    model_name: str
    world_mesh: vtk.vtkDataSet
    scar: np.ndarray
    core: Optional[np.ndarray]
    border_zone: float
    core_threshold: float
    tag_values: tuple[int, int, int]
    state: dict = field(default_factory=dict)
    core_model: object = None
    core_state: dict = field(default_factory=dict)

    def tags(self, core_advice: str = SLICER_CORE_MODEL_ADVICE) -> TissueTags:
        """The library's tags (in this process; the panel computes them in its worker instead)."""
        return tag_world_mesh(self.world_mesh, self.scar, self.core, self.border_zone, self.core_threshold,
                              self.tag_values, self.model_name, core_advice)


def read_tagging_inputs(model_node, border_zone: Optional[float] = None, core: Optional[float] = None,
                        core_field: Optional[str] = None, tag_values: tuple[int, int, int] = (1, 2, 3),
                        core_model=None) -> TaggingInputs:
    """Read and check what :func:`tag_model_node` needs (see :func:`core_values`, and every check of
    the library's ``tag_mesh``, so that a worker computing the tags gets good input); changes nothing."""
    scar = _point_field(model_node, PROBABILITY)
    points = model_points_lps(model_node)  # once: the mesh, the core model's check and the state use them
    core_array = core_values(model_node, core_field, core_model, points)
    world = world_mesh_lps(model_node, points)
    # the summary's ml (the command line's export refuses such a mesh before it tags)
    check_millimetres(points, "before tagging (its classes' volumes are ml)")
    warn_if_centimetres(points, f"The model '{model_node.GetName()}'", "tagging (its classes' volumes are ml)")
    border_zone, core = check_tag_inputs(world, scar, core_array, border_zone, core, tuple(tag_values))
    fields = [PROBABILITY] + ([core_field] if core_field and core_model is None else [])  # the model's, read
    core_state = {} if core_model is None else model_state(core_model, [core_field or PROBABILITY])
    return TaggingInputs(model_node.GetName(), world, scar, core_array, border_zone, core, tuple(tag_values),
                         model_state(model_node, fields, points), core_model, core_state)


@speaks_logic_words(TISSUE_NAMES)
def tag_model_node(model_node, border_zone: Optional[float] = None, core: Optional[float] = None,
                   core_field: Optional[str] = None, tag_values: tuple[int, int, int] = (1, 2, 3),
                   color_logic=None, core_model=None, core_advice: str = SLICER_CORE_MODEL_ADVICE) -> TissueTags:
    """Tag the model's nodes and cells, colour it by tag with a legend, and add summary rows.

    With ``core_model`` (a core model's result on the same mesh) or ``core_field`` the tags come
    from two fields (see :func:`core_values`). All checks run before the node changes, so a bad
    threshold or core model leaves the model as it was. ``core_advice``: how the caller's user
    gives a core model, in the warning that a 0/1 model's one-field border zone is its edge.
    """
    tags = read_tagging_inputs(model_node, border_zone, core, core_field, tag_values, core_model).tags(core_advice)
    apply_tags(model_node, tags, color_logic)
    return tags


def apply_tags(model_node, tags: TissueTags, color_logic=None) -> None:
    """Write computed tags on the model: ``tissue_tag`` point and cell arrays, the tag colours and
    legend, and the volume rows of its summary table (after :func:`check_tags_fit`)."""
    check_tags_fit(model_node, tags)
    mesh = model_node.GetMesh()
    if mesh.GetPointData().HasArray(CHANNEL_FIELD):  # where the earlier tags' channels ran, not the new ones'
        mesh.GetPointData().RemoveArray(CHANNEL_FIELD)
        logger.warning("CardioScar: the model '%s' had the %s channels of its earlier tags; they are removed (find "
                       "channels again on the new tags)", model_node.GetName(), CHANNEL_FIELD)
    if mesh.GetPointData().HasArray(MARGINAL_CORE_FIELD):  # the earlier search's core, cut at its own threshold
        mesh.GetPointData().RemoveArray(MARGINAL_CORE_FIELD)
        logger.warning("CardioScar: the model '%s' had the %s of an earlier channel search; it is removed (find "
                       "channels again on the new tags)", model_node.GetName(), MARGINAL_CORE_FIELD)
    write_point_arrays(model_node, {TAG_ARRAY: tags.node_tags})
    cell_array = numpy_to_vtk(np.ascontiguousarray(tags.element_tags, np.int32), deep=True)
    cell_array.SetName(TAG_ARRAY)
    mesh.GetCellData().AddArray(cell_array)
    mesh.GetCellData().Modified()
    note_tag_values(mesh, tags.tag_values)  # the AHA reads which value is which class (as on export's .vtu)
    color_node = tag_color_node(model_node.GetScene(), tags)
    show_by_table(model_node, TAG_ARRAY, vtk.vtkAssignAttribute.CELL_DATA, color_node, max(tags.tag_values))
    if color_logic is not None:
        legend = (color_logic.GetColorLegendDisplayNode(model_node)
                  or color_logic.AddDefaultColorLegendDisplayNode(model_node))
        if legend is not None:  # class names on a bar of the table's colours, as Slicer's default legend
            with slicer.util.NodeModify(legend):  # of a discrete table (vtkSlicerColorLogic.cxx)
                legend.SetTitleText("Tissue")
                legend.SetUseColorNamesForLabels(True)
                legend.SetLabelFormat(legend.GetDefaultTextLabelFormat())  # a number format prints no name
                legend.SetMaxNumberOfColors(color_node.GetNumberOfColors())
    update_summary_table(model_node, _existing_rows(model_node) + tissue_rows(tags))


def check_tags_fit(model_node, tags: TissueTags, state: Optional[dict] = None, core_model=None,
                   core_state: Optional[dict] = None) -> None:
    """Refuse a model that left the scene, or whose mesh no longer has the node and cell counts of
    ``tags``, or (given the ``state`` of :class:`TaggingInputs`) whose points, cells or fields changed
    with the same counts (the user edited it while a worker computed them): nothing may be written
    then. The same for the ``core_model`` the core field came from (given its ``core_state``): removed,
    moved, or its core field rewritten (a core run again) meanwhile."""
    mesh = model_node.GetMesh()
    if model_node.GetScene() is None or mesh is None:
        raise CardioScarError(f"The model '{model_node.GetName()}' was removed during the tagging: nothing was written")
    if (mesh.GetNumberOfPoints(), mesh.GetNumberOfCells()) != (len(tags.node_tags), len(tags.element_tags)):
        raise CardioScarError(f"The model '{model_node.GetName()}' changed during the tagging (now {mesh.GetNumberOfPoints()} "
                              f"nodes, tagged {len(tags.node_tags)}): nothing was written; tag it again")
    if state:
        check_unchanged(model_node, state, "the tagging")
    if core_model is not None and core_state:
        if core_model.GetScene() is None or core_model.GetMesh() is None:
            raise CardioScarError(f"The core model '{core_model.GetName()}' was removed during the tagging: nothing "
                                  "was written")
        check_unchanged(core_model, core_state, "the tagging", "core model")


def check_export_prefix(prefix: str, fmt: str = "opencarp") -> Path:
    """The output prefix as a path whose folder exists; refused before anything is tagged or written
    (for openCARP files, also a prefix that names one of them: heart.pts wrote heart.pts.pts, ...)."""
    from cardioscar.io.checks import check_prefix

    text = prefix.strip()
    target = Path(text).expanduser()
    if not text or not target.name or target.name in (".", ".."):
        raise CardioScarError(f"Output prefix '{prefix}' needs a file name, e.g. /data/heart (writes heart.pts, ...)")
    if fmt == "opencarp":
        check_prefix(target, "Output prefix", "Export format: vtu")
    if not target.parent.is_dir():
        raise CardioScarError(f"Output prefix '{prefix}': the folder {target.parent} does not exist; create it or "
                              "choose another")
    return target


@speaks_logic_words(TISSUE_NAMES, LOGIC_FIBRE_ADVICE)
def export_model_node(model_node, tags: TissueTags, prefix: str | Path, fmt: str = "opencarp", units: str = "um",
                      space: str = "LPS", fibres: "Optional[np.ndarray | str]" = None,
                      scar_rule: Optional[dict] = None, helix_deg: Optional[tuple[float, float]] = None
                      ) -> list[Path]:
    """Write the model tagged by :func:`tag_model_node` (its returned ``tags``) for a simulator, in
    world coordinates (any parent transform applied); ``fibres="rule"``: the LV fibre rule's
    (:mod:`cardioscar.simulation.fibres`, helix angles ``helix_deg``, default 60, -60; in the
    ``.lon``, or the ``.vtu``'s ``fibre`` and ``sheet`` cell vectors). ``scar_rule`` defaults to the rule the
    model's result was trained on (recorded on the node by the run), for the .json sidecar."""
    return write_export(world_mesh_lps(model_node, model_points_lps(model_node)), tags, prefix, fmt, units, space,
                        fibres, export_scar_rule(model_node) if scar_rule is None else scar_rule, helix_deg)


def export_scar_rule(model_node) -> Optional[dict]:
    """The scar rule the model's result was trained on (recorded on the node by the run), for the
    export's .json sidecar; None when none is recorded."""
    import json

    text = model_node.GetAttribute(SCAR_RULE_ATTRIBUTE)
    return json.loads(text) if text else None  # as export --rule-from writes it
