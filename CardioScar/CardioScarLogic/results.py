"""Putting a finished reconstruction into the scene: arrays, colours, legend, table, plot.

Everything here runs only after training and inference have succeeded, so a failed or
cancelled run never touches the user's model node. Output nodes (summary table, loss plot) are
found again through node references on the model, so re-running updates them instead of
piling up copies.
"""

from __future__ import annotations

import logging
from typing import Iterable, Optional

import numpy as np
import slicer
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import (SCAR_LABELS_ARRAY, SCAR_RULE_ARRAY, TRAINING_TARGETS_ARRAY, rule_record_target,
                                  set_text_field, text_field)

logger = logging.getLogger(__name__)

PROBABILITY = "scar_probability"
UNCERTAINTY = "scar_uncertainty"
BINARY = "scar_binary"
#: cardioscar.logic.ERROR_RISK_FIELD (see cardioscar.predict.error_risk)
ERROR_RISK = "scar_error_risk"

#: Singleton tag of the probability colour table; its node ID is
#: ``vtkMRMLColorTableNode`` + this tag in every scene (application or headless).
COLOR_TABLE_TAG = "CardioScarProbability"
COLOR_TABLE_ID = "vtkMRMLColorTableNode" + COLOR_TABLE_TAG
#: Anchor colours of the probability table: healthy blue, uncertain pale yellow, scar red.
COLOR_ANCHORS = np.array([[0.0, 0.19, 0.33, 0.76], [0.5, 0.96, 0.92, 0.62], [1.0, 0.74, 0.05, 0.12]])
#: The error risk's own table: a sequential palette (one hue growing darker with the risk, the
#: anchors of ColorBrewer's 9-class "Purples"), so that a risk map is never read as a scar map: the
#: probability's diverging blue-yellow-red puts its middle at the 0.5 call, which a risk does not have.
RISK_COLOR_TABLE_TAG = "CardioScarErrorRisk"
RISK_COLOR_TABLE_ID = "vtkMRMLColorTableNode" + RISK_COLOR_TABLE_TAG
RISK_COLOR_ANCHORS = np.array([[0.0, 0.988, 0.984, 0.992], [0.5, 0.620, 0.604, 0.784], [1.0, 0.247, 0.0, 0.490]])
#: The uncertainty's own table, sequential for the same reason (a spread has no middle to read as a
#: call) in another hue (the anchors of ColorBrewer's 9-class "Greens"), so that the two maps a user
#: distrusts a result by are not mistaken for each other either.
UNCERTAINTY_COLOR_TABLE_TAG = "CardioScarUncertainty"
UNCERTAINTY_COLOR_TABLE_ID = "vtkMRMLColorTableNode" + UNCERTAINTY_COLOR_TABLE_TAG
UNCERTAINTY_COLOR_ANCHORS = np.array([[0.0, 0.969, 0.988, 0.961], [0.5, 0.455, 0.769, 0.463],
                                      [1.0, 0.0, 0.267, 0.106]])
N_COLORS = 256

SUMMARY_REFERENCE = "CardioScarSummaryTable"
#: Model-node attribute holding the JSON record of the scar rule the result was trained on (saved with the scene)
SCAR_RULE_ATTRIBUTE = "CardioScar.ScarRule"
LOSS_TABLE_REFERENCE = "CardioScarLossTable"
LOSS_CHART_REFERENCE = "CardioScarLossChart"


def probability_colors(n_colors: int = N_COLORS, anchors: np.ndarray = COLOR_ANCHORS) -> np.ndarray:
    """(n, 3) RGB of a table, linear between its anchors (default: the probability table's)."""
    positions = np.linspace(0.0, 1.0, n_colors)
    return np.stack([np.interp(positions, anchors[:, 0], anchors[:, c]) for c in (1, 2, 3)], axis=1)


def _color_table_node(scene, tag: str, name: str, anchors: np.ndarray):
    """The scene's colour table with singleton ``tag``, created once per scene from ``anchors``."""
    node_id = "vtkMRMLColorTableNode" + tag
    node = scene.GetNodeByID(node_id)
    if node is not None:
        return node
    node = slicer.vtkMRMLColorTableNode()
    node.SetSingletonTag(tag)
    node.SetName(name)
    node.SetTypeToUser()
    node.SetNumberOfColors(N_COLORS)
    for index, (r, g, b) in enumerate(probability_colors(anchors=anchors)):
        node.SetColor(index, f"{index / (N_COLORS - 1):.3f}", r, g, b, 1.0)
    node.SetAttribute("Category", "CardioScar")
    scene.AddNode(node)
    return scene.GetNodeByID(node_id)


def probability_color_node(scene):
    """The scene's probability colour table (also the uncertainty's), created once per scene."""
    return _color_table_node(scene, COLOR_TABLE_TAG, "CardioScar scar probability", COLOR_ANCHORS)


def risk_color_node(scene):
    """The scene's error-risk colour table (:data:`RISK_COLOR_ANCHORS`), created once per scene."""
    return _color_table_node(scene, RISK_COLOR_TABLE_TAG, "CardioScar scar error risk", RISK_COLOR_ANCHORS)


def uncertainty_color_node(scene):
    """The scene's uncertainty colour table (:data:`UNCERTAINTY_COLOR_ANCHORS`), created once per scene."""
    return _color_table_node(scene, UNCERTAINTY_COLOR_TABLE_TAG, "CardioScar scar uncertainty",
                             UNCERTAINTY_COLOR_ANCHORS)


def keep_scar_rule(model_node, checkpoint: dict) -> None:
    """Record on the model the scar rule its result came from (none: the attribute is removed), so
    that an export of the model can say how its scar was defined; and on its mesh, as ``cardioscar
    apply`` notes it on its output, so that a model saved to a file and loaded again (the batch
    script's core run, read back as --core-mesh) still tells which rule it learned."""
    rule = (checkpoint.get("provenance") or {}).get("scar_rule", "")
    if rule:
        model_node.SetAttribute(SCAR_RULE_ATTRIBUTE, str(rule))
    else:
        model_node.RemoveAttribute(SCAR_RULE_ATTRIBUTE)
    set_text_field(model_node.GetMesh(), SCAR_RULE_ARRAY, str(rule) if rule else None)


def recorded_scar_rule(model_node) -> str:
    """The scar-rule record (JSON) of a result: the node's attribute, else its mesh's note (a model
    file written by ``cardioscar apply`` or saved from a run); "" when neither says."""
    mesh = model_node.GetMesh()
    return model_node.GetAttribute(SCAR_RULE_ATTRIBUTE) or (mesh is not None and text_field(mesh, SCAR_RULE_ARRAY)) or ""


def keep_training_targets(model_node, checkpoint: dict) -> None:
    """Note on the model's mesh (field data, saved with it) which targets its result's network was
    trained on, as ``cardioscar apply`` notes them on its output, so that *Tag* can tell a one-field
    border zone of graded tissue from the edge of a 0/1-trained scar; an older checkpoint that does
    not say removes an earlier result's note. (The field its rule made it learn, core or scar, is in
    the rule record the result keeps beside it.)"""
    from cardioscar.logic import recorded_training_targets  # imported when written: the module loads vtk and scipy

    set_text_field(model_node.GetMesh(), TRAINING_TARGETS_ARRAY, recorded_training_targets(checkpoint))
    # the labels a label-map run learned, as apply notes them: *Tag* refuses them as the core of their own scar
    set_text_field(model_node.GetMesh(), SCAR_LABELS_ARRAY, (checkpoint.get("provenance") or {}).get("scar_labels")
                   or None)


def learned_target(model_node=None, checkpoint: Optional[dict] = None) -> str:
    """What a result's network learned by its scar rule: "core" (a core model), "scar" (border zone
    + core), or "" (no rule recorded), read from the checkpoint or from the record on the model."""
    text = ((checkpoint.get("provenance") or {}).get("scar_rule", "") if checkpoint is not None
            else recorded_scar_rule(model_node))
    return rule_record_target(text) or ""


def write_point_arrays(model_node, arrays: dict) -> None:
    """Add (or replace) named point arrays on the model's mesh and notify the views; a value of
    ``None`` removes that array."""
    mesh = model_node.GetMesh()
    point_data = mesh.GetPointData()
    for name, values in arrays.items():
        if values is None:
            point_data.RemoveArray(name)
            continue
        values = np.ascontiguousarray(values)
        if len(values) != mesh.GetNumberOfPoints():
            raise ValueError(f"{name} has {len(values)} values for {mesh.GetNumberOfPoints()} points")
        array = numpy_to_vtk(values, deep=True)
        array.SetName(name)
        point_data.AddArray(array)
    point_data.Modified()
    mesh.Modified()
    model_node.Modified()


def new_output_model(model_node, label: str = "CardioScar"):
    """A new model node with a copy of ``model_node``'s mesh (its arrays included), under the
    same parent transform: where a run's result goes when it must not replace an earlier one.
    Names count up ("heart CardioScar", "heart CardioScar_1", ...; a core model's ``label`` is
    "CardioScar core") so that results can be told apart."""
    scene = model_node.GetScene()
    if scene is None or model_node.GetMesh() is None:
        raise CardioScarError(f"The model '{model_node.GetName()}' was removed during the run: nothing was written; "
                              "choose a heart mesh and run again.")
    mesh = model_node.GetMesh().NewInstance()
    mesh.DeepCopy(model_node.GetMesh())
    node = scene.AddNewNodeByClass("vtkMRMLModelNode", scene.GenerateUniqueName(f"{model_node.GetName()} {label}"))
    node.SetAndObserveMesh(mesh)
    node.SetAndObserveTransformNodeID(model_node.GetTransformNodeID())
    node.CreateDefaultDisplayNodes()
    return node


#: What the model can be coloured by after a run (the panel's *Colour by*): field -> legend title.
#: The probability and the risk are chances on a fixed 0-1 range; the MC-dropout spread is not,
#: and is shown from 0 to its largest value on the mesh.
SHOWN_FIELDS = {PROBABILITY: "Scar probability", ERROR_RISK: "Error risk (relative)",
                UNCERTAINTY: "Scar uncertainty (MC-dropout std)"}


def show_field(model_node, field: str = PROBABILITY, color_logic=None):
    """Colour the model by one of :data:`SHOWN_FIELDS` and title its colour legend.

    Returns the legend display node, or None when no Colors logic is available. A field the
    mesh does not hold (a result of an older version has no ``scar_error_risk``) is refused in
    one line and the display is left as it was."""
    if field not in SHOWN_FIELDS:
        raise CardioScarError(f"CardioScar colours a result by {', '.join(SHOWN_FIELDS)}, not '{field}'.")
    mesh = model_node.GetMesh()
    array = None if mesh is None else mesh.GetPointData().GetArray(field)
    if array is None:
        raise CardioScarError(f"The model '{model_node.GetName()}' has no {field}: train or apply a model on it "
                              "with this version of CardioScar first.")
    top = 1.0 if field != UNCERTAINTY else max(float(np.nanmax(vtk_to_numpy(array))), 1e-6)
    scene = model_node.GetScene()
    if model_node.GetDisplayNode() is None:
        model_node.CreateDefaultDisplayNodes()
    display = model_node.GetDisplayNode()
    table = {ERROR_RISK: risk_color_node, UNCERTAINTY: uncertainty_color_node}.get(field, probability_color_node)
    color_node = table(scene)
    with slicer.util.NodeModify(display):
        display.SetActiveScalar(field, vtk.vtkAssignAttribute.POINT_DATA)
        display.SetAndObserveColorNodeID(color_node.GetID())
        display.SetScalarRangeFlag(slicer.vtkMRMLDisplayNode.UseManualScalarRange)
        display.SetScalarRange(0.0, top)
        display.SetScalarVisibility(True)
    if color_logic is None:
        return None
    legend = color_logic.GetColorLegendDisplayNode(model_node) or color_logic.AddDefaultColorLegendDisplayNode(model_node)
    if legend is not None:
        # values, not colour names, on a bar of the whole table: the model's one legend may come from
        # Tag tissue, which turns names on (this table's 256 names would each become a label) and, when
        # the legend was made on the tag table, limits the bar to its few colours; set all three, as
        # Slicer's own legend widget does when it switches (qMRMLColorLegendDisplayNodeWidget.cxx)
        with slicer.util.NodeModify(legend):
            legend.SetTitleText(SHOWN_FIELDS[field])
            legend.SetUseColorNamesForLabels(False)
            legend.SetMaxNumberOfColors(N_COLORS)
            legend.SetLabelFormat("%.1f" if top == 1.0 else "%.3f")
            legend.SetNumberOfLabels(6)
    return legend


def mesh_measure_kind(mesh) -> str:
    """"volume" when the mesh has 3D cells of non-zero volume (a tetrahedral myocardium), else
    "area" (a surface): the same rule as :func:`cardioscar.evaluate.metrics.node_volumes`."""
    sizes = vtk.vtkCellSizeFilter()
    sizes.SetInputData(mesh)
    sizes.ComputeVertexCountOff()
    sizes.ComputeLengthOff()
    sizes.ComputeAreaOff()
    sizes.Update()
    volume = sizes.GetOutput().GetCellData().GetArray("Volume")
    return "volume" if volume is not None and np.abs(vtk_to_numpy(volume)).sum() > 0 else "area"


def summary_rows(mesh, probability: np.ndarray, uncertainty: np.ndarray, threshold: Optional[float],
                 history: Optional[dict], device: str, seconds: float,
                 slab: Optional[tuple[list[float], bool]] = None, myocardium=None,
                 shape_prior: Optional[bool] = None) -> list[tuple[str, str, str]]:
    """(measure, value, unit) rows of the summary table. ``slab``: the distinct slab half-widths
    the slices were cut with and whether they were read from DICOM (training runs), so that the
    geometry a result rests on is recorded next to it; ``myocardium``: the
    :class:`cardioscar.prepare.myocardium.MyocardiumReport` of a training run (what said where the
    myocardium is, and how many chosen pixels outside it carried no constraint); ``shape_prior``:
    whether the model learnt a residual on the shape prior, the outcome of the fast preset's
    ``auto`` that the panel shows nowhere else."""
    from cardioscar.evaluate.metrics import node_volumes

    weights, kind = node_volumes(mesh), mesh_measure_kind(mesh)
    total = float(weights.sum())
    expected = float(np.dot(weights, probability))
    # 1 ml = 1000 mm^3; a surface mesh reports an area in cm^2 (100 mm^2).
    scale, unit = (1000.0, "ml") if kind == "volume" else (100.0, "cm2")
    rows = [
        (f"Scar {kind} (probability-weighted)", f"{expected / scale:.3f}", unit),
        (f"Scar fraction of the mesh {kind}", f"{100.0 * expected / total if total > 0 else 0.0:.2f}", "%"),
    ]
    if threshold is not None:
        above = float(weights[probability >= threshold].sum())
        rows.append((f"Scar {kind} (probability >= {threshold:g})", f"{above / scale:.3f}", unit))
    rows += [
        ("Mean scar probability", f"{float(np.mean(probability)):.4f}", ""),
        ("Mean uncertainty (std)", f"{float(np.mean(uncertainty)):.4f}", ""),
        ("Mesh nodes", str(len(probability)), ""),
    ]
    if slab is not None:
        widths, recorded = slab
        rows.append(("Slab half-width" + (" (from DICOM)" if recorded else ""), ", ".join(f"{w:g}" for w in widths),
                     "mm"))
    if myocardium is not None:
        rows += [("Myocardium", myocardium.source or "not given (every pixel constrains)", ""),
                 ("Pixels outside the myocardium (no constraint)", str(int(myocardium.dropped_pixels.sum())), "")]
    if history is not None:
        from cardioscar.fit.training import describe_stop, variance_explained  # torch: only once trained

        rows += [
            ("Epochs run", str(int(history.get("epochs_run", len(history.get("train_loss", []))))), ""),
            ("Best epoch", str(int(history.get("converged_epoch", 0))), ""),
            ("Best loss", f"{float(history.get('best_loss', float('nan'))):.6g}", ""),
            ("Training ended", describe_stop(history), ""),
        ]
        variance = float(history.get("target_variance") or 0.0)
        if variance > 0:  # a fit quality check: under ~50 % the network collapsed towards a constant
            explained = 100.0 * variance_explained(float(history["best_loss"]), variance)
            rows.append(("Pixel variance explained", f"{explained:.1f}", "%"))
    if shape_prior is not None:
        rows.append(("Shape prior", "on" if shape_prior else "off", ""))
    rows += [("Time", f"{seconds:.1f}", "s"), ("Device", device, "")]
    return rows


def _figure(value: Optional[float], form: str = ".3f") -> str:
    """A score as shown, or "n/a" where it is undefined (an AUC without scar or without healthy nodes)."""
    return "n/a" if value is None else format(value, form)


def score_summary(scores: dict) -> str:
    """One line of a scoring's figures (``score_on_slices``'s dict), for the status line and the log;
    on a scar-free truth, where Dice is undefined, the share of the volume wrongly called scar."""
    if scores.get("scar_free_truth"):
        return (f"No scar in the truth: Dice n/a; {100.0 * scores['false_positive_share']:.1f} % of the scored volume "
                f"called scar at {scores['threshold']:g}; {scores['n_nodes']} of {scores['mesh_nodes']} nodes scored "
                f"on {len(scores['slices'])} slice(s)")
    return (f"Dice {_figure(scores['dice'])} at {scores['threshold']:g}, best {_figure(scores['best_dice'])} at "
            f"{_figure(scores['best_threshold'], 'g')}, AUC {_figure(scores['auc'])}; {scores['n_nodes']} of "
            f"{scores['mesh_nodes']} nodes scored on {len(scores['slices'])} slice(s)")


def score_slice_rows(scores: dict) -> list[tuple[str, str, str]]:
    """Per scored slice: its name, its nodes scored (of them scar) and the nodes in its slab not
    scored, by reason, for the panel's table of the scoring."""
    rows = []
    for line in scores["slices"]:
        skipped = ", ".join(f"{line[key]} {words}" for key, words in (
            ("outside_the_image", "outside the image"), ("outside_the_myocardium", "outside the myocardium"),
            ("on_a_nearer_slice", "on a nearer slice")) if line[key])
        rows.append((line["slice"], f"{line['scored_nodes']} ({line['scar_nodes']} scar)", skipped or "-"))
    return rows


def referenced_or_new(model_node, reference: str, node_class: str, name: str):
    scene = model_node.GetScene()
    node = model_node.GetNodeReference(reference)
    if node is None or not node.IsA(node_class):
        node = scene.AddNewNodeByClass(node_class, scene.GenerateUniqueName(name))
        model_node.SetNodeReferenceID(reference, node.GetID())
    return node


def drop_referenced_nodes(model_node, references: Iterable[str]) -> list[str]:
    """Remove from the scene the nodes ``model_node`` references under ``references`` (and the
    references); the names of those removed. Why: a table a later step made from a result (the AHA
    segments' scar per segment, the conducting channels) describes that result's scar; once a new
    result replaces it on the same model, the table kept showing the old scar beside the new field."""
    scene, removed = model_node.GetScene(), []
    for reference in references:
        node = model_node.GetNodeReference(reference)
        model_node.RemoveNodeReferenceIDs(reference)
        if node is not None and scene is not None:
            removed.append(node.GetName())
            scene.RemoveNode(node)
    return removed


def drop_loss_plot(model_node) -> list[str]:
    """Remove the model's loss table, chart and series (the names of those removed). Why: a saved
    model's prediction draws no loss curve; the one left from the training that made the model's
    earlier result stayed in the plot view beside a field another network made."""
    chart = model_node.GetNodeReference(LOSS_CHART_REFERENCE)
    series = chart.GetPlotSeriesNode() if chart is not None else None
    removed = drop_referenced_nodes(model_node, (LOSS_CHART_REFERENCE, LOSS_TABLE_REFERENCE))
    if series is not None and series.GetScene() is not None:
        series.GetScene().RemoveNode(series)
    return removed


def update_summary_table(model_node, rows: Iterable[tuple[str, str, str]]):
    """Write the summary rows into the model's summary table node (created on first use)."""
    table = referenced_or_new(model_node, SUMMARY_REFERENCE, "vtkMRMLTableNode",
                               f"{model_node.GetName()} CardioScar summary")
    return fill_string_table(table, ("Measure", "Value", "Unit"), rows)


def fill_string_table(table, titles: Iterable[str], rows: Iterable[Iterable[str]]):
    """Replace ``table``'s content with string columns ``titles`` and ``rows``, locked (a result,
    not an input to edit)."""
    columns = []
    for title in titles:
        column = vtk.vtkStringArray()
        column.SetName(title)
        columns.append(column)
    for row in rows:
        for column, value in zip(columns, row):
            column.InsertNextValue(value)
    with slicer.util.NodeModify(table):
        vtk_table = vtk.vtkTable()
        for column in columns:
            vtk_table.AddColumn(column)
        table.SetAndObserveTable(vtk_table)
        table.SetUseColumnTitleAsColumnHeader(True)
        table.SetLocked(True)
    return table


def update_loss_plot(model_node, losses: list[float]):
    """Loss per epoch in a table, drawn by a plot series in a chart (log y axis)."""
    table = referenced_or_new(model_node, LOSS_TABLE_REFERENCE, "vtkMRMLTableNode",
                               f"{model_node.GetName()} CardioScar loss")
    epochs = vtk.vtkDoubleArray()
    epochs.SetName("epoch")
    loss = vtk.vtkDoubleArray()
    loss.SetName("loss")
    for index, value in enumerate(losses, start=1):
        epochs.InsertNextValue(index)
        loss.InsertNextValue(float(value))
    vtk_table = vtk.vtkTable()
    vtk_table.AddColumn(epochs)
    vtk_table.AddColumn(loss)
    table.SetAndObserveTable(vtk_table)

    chart = referenced_or_new(model_node, LOSS_CHART_REFERENCE, "vtkMRMLPlotChartNode",
                               f"{model_node.GetName()} CardioScar training")
    series = chart.GetPlotSeriesNode()
    if series is None:
        series = model_node.GetScene().AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{model_node.GetName()} loss")
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    series.SetAndObserveTableNodeID(table.GetID())
    series.SetXColumnName("epoch")
    series.SetYColumnName("loss")
    series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
    series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
    chart.SetTitle("CardioScar training loss")
    chart.SetXAxisTitle("epoch")
    chart.SetYAxisTitle("group loss (MSE)")
    chart.SetYAxisLogScale(True)
    return chart


__all__ = ["PROBABILITY", "UNCERTAINTY", "BINARY", "ERROR_RISK", "COLOR_TABLE_ID", "RISK_COLOR_TABLE_ID",
           "UNCERTAINTY_COLOR_TABLE_ID", "probability_colors", "probability_color_node", "risk_color_node",
           "uncertainty_color_node", "write_point_arrays", "new_output_model", "show_field", "SHOWN_FIELDS",
           "mesh_measure_kind", "summary_rows",
           "drop_referenced_nodes", "drop_loss_plot", "update_summary_table", "fill_string_table", "update_loss_plot", "referenced_or_new"]
