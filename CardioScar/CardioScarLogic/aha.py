"""The AHA 17-segment analysis of a model node, for the panel, the console and batch mode.

Inputs are scene nodes: the model (with ``scar_probability`` from a run), a markups node whose
first control point is the anterior RV insertion (a second one, if placed, the inferior), or a
label map volume with an RV blood-pool label; optionally a markups node with the apex and the
base centre, or a short-axis volume whose slice normal gives the long axis. Everything is read
in world coordinates (parent transforms included) and converted to LPS for ``cardioscar.aha``.

Outputs are written only after the analysis succeeded: ``aha_segment`` point and cell arrays on
the model's mesh, and a second table node (referenced from the model, so a rerun updates it).
The bull's-eye PNG is written on request (the panel can show it; ``bullseye_png``).

``analyse_model`` is three steps, which the panel runs apart so that the middle one runs in its
worker process, with *Stop* (:meth:`CardioScarLogic.background.BackgroundRun.aha`): read and check
the inputs (:func:`read_aha_inputs`, scene only), analyse (no scene), and write the result on the
model (:func:`apply_segments`, which refuses a model edited meanwhile).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from cardioscar.aha import AhaOptions, LabelMap
from cardioscar.errors import CardioScarError

from . import results
from .geometry import RAS_TO_LPS, check_unchanged, model_points_lps, model_state, volume_ijk_to_lps, world_mesh_lps
from .worker import aha_of_world_mesh, check_frame_of_world_mesh

AHA_TABLE_REFERENCE = "CardioScarAhaTable"
SEGMENT_ARRAY = "aha_segment"


@dataclass
class AhaInputs:
    """What the panel's AHA section (or a console user) chooses: the nodes that place the
    segments (see the module docstring) and what to measure (``measure``: field, threshold,
    LV mask, tags, transmurality; its point and axis fields are filled from the nodes)."""

    rv_markups: Optional[object] = None
    labels_node: Optional[object] = None
    rv_label: int = 1
    myocardium_label: int = 2
    apex_base_markups: Optional[object] = None
    slice_normal_volume: Optional[object] = None
    measure: AhaOptions = field(default_factory=AhaOptions)


@dataclass
class AhaSceneResult:
    """The table rows, how they were computed, the table node and the segments written on the model."""

    rows: list
    summary: dict
    table_node: object
    point_segments: np.ndarray
    cell_segments: np.ndarray
    #: ``summary`` in the library's words, where the Logic's ``aha_segments`` words ``summary`` its own
    #: way (None: the same as ``summary``); the batch script words it in its options for its aha.json.
    library_summary: Optional[dict] = None


def _control_points_lps(markups, what: str, needed: int) -> list[np.ndarray]:
    count = markups.GetNumberOfControlPoints()
    if count < needed:
        raise CardioScarError(f"the markups '{markups.GetName()}' has {count} point(s); place {what}")
    points = []
    for index in range(count):
        ras = [0.0, 0.0, 0.0]
        markups.GetNthControlPointPositionWorld(index, ras)
        points.append(np.asarray(ras, dtype=float) * np.diag(RAS_TO_LPS)[:3])
    return points


def _labels(node) -> tuple[np.ndarray, np.ndarray]:
    image = node.GetImageData()
    if image is None:
        raise CardioScarError(f"the label map '{node.GetName()}' has no voxels; load a label map with an RV label")
    columns, rows, slices = image.GetDimensions()
    labels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(slices, rows, columns)
    return np.rint(labels).astype(np.int64), volume_ijk_to_lps(node)


def aha_options(inputs: AhaInputs) -> AhaOptions:
    """The library's options from scene nodes (world LPS)."""
    options = dataclasses.replace(inputs.measure)
    if inputs.rv_markups is not None:
        points = _control_points_lps(inputs.rv_markups, "the anterior RV insertion (and optionally the inferior)", 1)
        options.rv_point = points[0]
        options.rv_inferior_point = points[1] if len(points) > 1 else None
    elif inputs.labels_node is not None:
        labels, ijk_to_lps = _labels(inputs.labels_node)
        options.labels = LabelMap(labels, ijk_to_lps, inputs.labels_node.GetName(), rv_label=inputs.rv_label,
                                  myocardium_label=inputs.myocardium_label)
    if inputs.apex_base_markups is not None:
        options.apex, options.base = _control_points_lps(inputs.apex_base_markups, "the apex, then the base centre", 2)[:2]
    elif inputs.slice_normal_volume is not None:
        normal = volume_ijk_to_lps(inputs.slice_normal_volume)[:3, 2]
        options.slice_normal = normal / np.linalg.norm(normal)
        options.slice_normal_source = f"slice normal of {inputs.slice_normal_volume.GetName()}"
    return options


def _column(name: str, values: list):
    if all(isinstance(v, str) for v in values):
        column = vtk.vtkStringArray()
        for value in values:
            column.InsertNextValue(value)
    elif all(isinstance(v, int) for v in values):
        column = vtk.vtkIntArray()
        for value in values:
            column.InsertNextValue(value)
    else:
        column = vtk.vtkDoubleArray()
        for value in values:
            column.InsertNextValue(math.nan if value is None else float(value))
    column.SetName(name)
    return column


def update_aha_table(model_node, rows: list[dict]):
    """The model's AHA table node (created on first use): one row per segment, the CSV's columns."""
    table = results.referenced_or_new(model_node, AHA_TABLE_REFERENCE, "vtkMRMLTableNode",
                                      f"{model_node.GetName()} AHA segments")
    vtk_table = vtk.vtkTable()
    for key in rows[0]:
        vtk_table.AddColumn(_column(key, [row[key] for row in rows]))
    table.SetAndObserveTable(vtk_table)
    table.SetUseColumnTitleAsColumnHeader(True)
    table.SetLocked(True)
    return table


def _write_cell_array(model_node, values: np.ndarray) -> None:
    mesh = model_node.GetMesh()
    array = numpy_to_vtk(np.ascontiguousarray(values.astype(np.int32)), deep=True)
    array.SetName(SEGMENT_ARRAY)
    mesh.GetCellData().RemoveArray(SEGMENT_ARRAY)
    mesh.GetCellData().AddArray(array)
    mesh.GetCellData().Modified()


@dataclass
class AhaJob:
    """What an AHA analysis reads from the scene, checked: the model's mesh in world LPS (its arrays
    included), the library's options (points and label map in world LPS), the bull's-eye's title
    and ``state``, the checksums of the model's points, cells and the fields it reads (:func:`apply_segments`).
    Analysing it needs no scene (the panel does it in its worker)."""

    model_name: str
    world_mesh: vtk.vtkDataSet
    options: AhaOptions
    title: str
    state: dict


def bullseye_title(model_node, measure: AhaOptions) -> str:
    """The title of a model's bull's-eye: the model, and the field and threshold it counts. One
    function for the Logic's picture and the batch script's, which writes it with its table."""
    return f"{model_node.GetName()}: {measure.field} >= {measure.threshold:g}"


def read_aha_inputs(model_node, inputs: AhaInputs) -> AhaJob:
    """Read and check what :func:`analyse_model` needs from the scene; changes nothing."""
    if inputs.rv_markups is None and inputs.labels_node is None:
        raise CardioScarError("no RV insertion: place a markups point on the anterior RV insertion, or choose a "
                              "label map with an RV label")
    points = model_points_lps(model_node)  # once, for the mesh and its state
    world = world_mesh_lps(model_node, points)
    title = bullseye_title(model_node, inputs.measure)
    measure = inputs.measure  # every field of the model the analysis reads (the error risk's mean when it has one)
    state = model_state(model_node, [name for name in (measure.field, measure.uncertainty_field, measure.lv_mask_field,
                                                       measure.tags_field, results.ERROR_RISK) if name], points)
    return AhaJob(model_node.GetName(), world, aha_options(inputs), title, state)


def apply_segments(model_node, rows: list[dict], summary: dict, point_segments: np.ndarray,
                   cell_segments: np.ndarray, state: Optional[dict] = None) -> AhaSceneResult:
    """Write a finished analysis on the model: ``aha_segment`` point and cell arrays and the AHA
    table. Refused, with nothing written, when the model left the scene or (given the ``state`` of
    its :class:`AhaJob`) changed since its inputs were read."""
    mesh = model_node.GetMesh()
    if model_node.GetScene() is None or mesh is None:
        raise CardioScarError(f"The model '{model_node.GetName()}' was removed during the AHA analysis: nothing was "
                              "written")
    if (mesh.GetNumberOfPoints(), mesh.GetNumberOfCells()) != (len(point_segments), len(cell_segments)):
        raise CardioScarError(f"The model '{model_node.GetName()}' changed during the AHA analysis (now "
                              f"{mesh.GetNumberOfPoints()} nodes, analysed {len(point_segments)}): nothing was "
                              "written; run it again")
    if state:
        check_unchanged(model_node, state, "the AHA analysis")
    results.write_point_arrays(model_node, {SEGMENT_ARRAY: np.asarray(point_segments).astype(np.int32)})
    _write_cell_array(model_node, np.asarray(cell_segments))
    table = update_aha_table(model_node, rows)
    return AhaSceneResult(rows, summary, table, np.asarray(point_segments), np.asarray(cell_segments))


def check_model_frame(model_node, inputs: AhaInputs) -> None:
    """Find the AHA frame of the model with ``inputs`` before it has a result; changes nothing.

    Why: a run that reconstructs and then segments (the batch script's ``--aha-dir``) found a point
    off the wall, a model of both ventricles or debris only after its training, which was lost. The
    same inputs are read as :func:`analyse_model` reads them, and the library's own analysis finds
    the frame (:func:`cardioscar.aha.check_frame`): its refusals are those the model's AHA gives
    after the training, in the same words."""
    job = read_aha_inputs(model_node, inputs)
    check_frame_of_world_mesh(job.world_mesh, job.options, job.model_name)


def analyse_model(model_node, inputs: AhaInputs, bullseye_png: Optional[str | Path] = None) -> AhaSceneResult:
    """Segment the model as shown (world coordinates), then write the arrays, the table and, when
    asked, the bull's-eye PNG. A failure leaves the model and the scene as they were. The panel runs
    the same three steps with the middle one in its worker (:meth:`CardioScarLogic.background.BackgroundRun.aha`)."""
    job = read_aha_inputs(model_node, inputs)
    result = aha_of_world_mesh(job.world_mesh, job.options, bullseye_png, job.title, job.model_name)
    return apply_segments(model_node, result.rows, result.summary, result.point_segments, result.cell_segments)


__all__ = ["AhaInputs", "AhaJob", "AhaSceneResult", "analyse_model", "aha_options", "apply_segments", "check_model_frame",
           "read_aha_inputs", "update_aha_table", "AHA_TABLE_REFERENCE", "SEGMENT_ARRAY"]
