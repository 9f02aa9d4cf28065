"""The CardioScar worker process: train and predict from files, report on stdout.

The panel runs training and prediction here, in a separate Python process (Slicer's own
``PythonSlicer``), so that Slicer never freezes and *Stop* can end the work at once by ending
the process. This file is run as a script (``python worker.py JOB_FOLDER``), not imported as
part of the ``CardioScarLogic`` package: it needs only the ``cardioscar`` library and the
standard library, not MRML.

The job folder (written by :mod:`CardioScarLogic.background`) holds ``job.json`` (what to do,
the training configuration and the prediction options), ``points.npy`` (the mesh's world LPS
points) and, for training, ``training_data.npz`` (the training rows in the library's format).
The worker writes ``model.pth`` (training) and ``prediction.npz`` into the same folder, each
atomically, and says ``done`` last. Nothing else is written.

A tissue job (the panel's *Tag tissue* and *Export*) holds ``mesh.vtk`` (the model's mesh in world
LPS, its point arrays included), ``scar.npy`` and optionally ``core.npy``; the worker writes
``tags.npz`` and, for an export, the simulator files under ``export/`` in the same folder. The
panel copies them to the user's folder only after ``done``, so a stopped export leaves nothing
there (the folder goes with the run).

An AHA job (the panel's *Compute AHA segments*) holds ``mesh.vtk`` and, when the RV insertions come
from a label map, ``labels.npy`` (the rest of the options in its JSON); the worker writes the
segments (``aha.npz``), the table and how it was made (``aha.json``) and the bull's-eye PNG.

A channel job (the panel's *Find channels*) holds ``mesh.vtk``; the worker writes the per-node
fields (``channels.npz``) and ``channels.csv`` and ``channels.json`` under ``export/``, which the
panel reads for its table and copies to the user's folder when one was given.

Every report is one line: ``MESSAGE_PREFIX`` followed by a JSON object with a ``kind``
(``progress``, ``log``, ``warning``, ``done``, ``error``); other lines (a library's print, a
traceback) are passed on as they are. The worker ends itself when its standard input closes,
which happens when the process that started it ends, however it ends.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotations only: the worker imports them where it needs them
    import numpy as np
    import vtk

    from cardioscar.simulation.tags import TissueTags

#: Start of every structured line on stdout; the rest of the line is a JSON object.
MESSAGE_PREFIX = "CARDIOSCAR-WORKER "
JOB_FILE = "job.json"
POINTS_FILE = "points.npy"
TRAINING_DATA_FILE = "training_data.npz"
MODEL_FILE = "model.pth"
PREDICTION_FILE = "prediction.npz"
MESH_FILE = "mesh.vtk"
SCAR_FILE = "scar.npy"
CORE_FILE = "core.npy"
TAGS_FILE = "tags.npz"
EXPORT_FOLDER = "export"
LABELS_FILE = "labels.npy"
AHA_ARRAYS_FILE = "aha.npz"
AHA_TABLE_FILE = "aha.json"
BULLSEYE_FILE = "aha_bullseye.png"
CHANNEL_ARRAYS_FILE = "channels.npz"
#: Exit status of a job that failed on bad input (the message says what to fix).
EXIT_USER_ERROR = 2


def emit(kind: str, **fields) -> None:
    """Write one structured report line (flushed, so the panel sees it at once)."""
    sys.stdout.write(MESSAGE_PREFIX + json.dumps({"kind": kind, **fields}) + "\n")
    sys.stdout.flush()


#: Loggers whose information lines the user reads (the training's course); from the others,
#: only warnings and errors (their information lines name the job's temporary files).
INFORMATIVE_LOGGERS = ("cardioscar.fit.training",)


class _ReportHandler(logging.Handler):
    """Library log records as report lines: warnings stay warnings in the panel's log."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            emit("warning", message=record.getMessage())
        elif record.name in INFORMATIVE_LOGGERS:
            emit("log", message=record.getMessage())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    emit("warning", message=f"{category.__name__}: {message}")


def _end_when_parent_ends() -> None:
    """Exit as soon as stdin closes: the parent closed it, or ended (even killed)."""
    descriptor = sys.stdin.fileno()

    def watch() -> None:
        # os.read, not sys.stdin: a daemon thread blocked in a buffered reader aborts Python's exit
        while os.read(descriptor, 4096):
            pass
        os._exit(3)

    threading.Thread(target=watch, name="cardioscar-parent-watch", daemon=True).start()


def _report_progress(progress) -> None:
    emit("progress", **asdict(progress))


def _write_prediction(folder: Path, inference) -> None:
    import numpy as np

    from cardioscar.io.atomic import atomic_write

    arrays = {"mean": inference.mean_predictions, "std": inference.std_predictions}
    if inference.binary_predictions is not None:
        arrays["binary"] = inference.binary_predictions
    if inference.error_risk is not None:
        arrays["error_risk"] = inference.error_risk
    with atomic_write(folder / PREDICTION_FILE) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


#: The Slicer words for the advice of :func:`cardioscar.simulation.tags.warn_edge_as_border_zone`.
SLICER_CORE_MODEL_ADVICE = ("train a core model (Network learns: core, or Scar labels of the core) on the same mesh "
                            "and choose it as the Core model (core_model)")


def tag_world_mesh(dataset: "vtk.vtkDataSet", scar: "np.ndarray", core: "np.ndarray | None", border_zone: float,
                   core_threshold: float, tag_values: tuple[int, int, int], name: str,
                   core_advice: str = SLICER_CORE_MODEL_ADVICE) -> "TissueTags":
    """The library's tags of a mesh in world LPS (the panel's worker and the console's
    ``tag_model_node`` both call this), with the warning when the border zone is not the cut the
    mesh's ``scar_binary`` was made with, and the one when it is a 0/1 model's edge (``core_advice``:
    how this face gives a core model; the batch script has its own options)."""
    from cardioscar.simulation.tags import tag_mesh, warn_border_zone_off_the_call, warn_edge_as_border_zone

    tags = tag_mesh(dataset, scar, core, border_zone, core_threshold, tuple(tag_values))
    warn_border_zone_off_the_call(dataset, scar, tags.border_zone, f"The model '{name}'")
    warn_edge_as_border_zone(tags, f"The model '{name}'", core_advice)
    return tags


def write_export(dataset: "vtk.vtkDataSet", tags: "TissueTags", prefix: str | Path, fmt: str = "opencarp",
                 units: str = "um", space: str = "LPS", fibres: "np.ndarray | str | None" = None,
                 scar_rule: dict | None = None, helix_deg: tuple[float, float] | None = None) -> list[Path]:
    """Write a tagged mesh in world LPS for a simulator (the set atomically, as the command line's
    ``export`` writes: :func:`cardioscar.simulation.export.write_simulator_files`; ``helix_deg``: the
    fibre rule's angles with ``fibres="rule"``); the files written."""
    from cardioscar.io.meshio import Mesh
    from cardioscar.simulation.export import write_simulator_files

    return list(write_simulator_files(Mesh(dataset=dataset, space="LPS"), tags, prefix, fmt, units, space, fibres,
                                      scar_rule, helix_deg).values())


#: The arrays of :class:`cardioscar.simulation.tags.TissueTags` in ``tags.npz`` (the rest in its JSON).
_TAG_ARRAYS = ("node_tags", "element_tags", "element_volumes_mm3", "element_areas_mm2")


def save_tags(path: Path, tags: "TissueTags") -> None:
    """``tags`` as arrays and a JSON record of its numbers, atomically (no pickle: :func:`load_tags`
    reads it with ``allow_pickle=False``)."""
    import numpy as np

    from cardioscar.io.atomic import atomic_write

    arrays = {name: getattr(tags, name) for name in _TAG_ARRAYS if getattr(tags, name) is not None}
    record = {"border_zone": tags.border_zone, "core": tags.core, "tag_values": list(tags.tag_values),
              "two_fields": tags.two_fields, "scar_targets": tags.scar_targets}
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, record=np.array(json.dumps(record)), **arrays)


def load_tags(path: Path) -> "TissueTags":
    """The :class:`TissueTags` :func:`save_tags` wrote."""
    import numpy as np

    from cardioscar.simulation.tags import TissueTags

    with np.load(path, allow_pickle=False) as data:
        record = json.loads(str(data["record"]))
        arrays = {name: data[name] if name in data.files else None for name in _TAG_ARRAYS}
    return TissueTags(**arrays, border_zone=float(record["border_zone"]), core=float(record["core"]),
                      tag_values=tuple(record["tag_values"]), two_fields=bool(record["two_fields"]),
                      scar_targets=record.get("scar_targets"))


def read_job_mesh(folder: Path) -> "vtk.vtkDataSet":
    """The job's ``mesh.vtk`` (the model's mesh in world LPS) with every array it holds."""
    import vtk

    reader = vtk.vtkDataSetReader()
    reader.SetFileName(str(folder / MESH_FILE))
    for read_all in (reader.ReadAllScalarsOn, reader.ReadAllVectorsOn, reader.ReadAllNormalsOn, reader.ReadAllTensorsOn,
                     reader.ReadAllColorScalarsOn, reader.ReadAllTCoordsOn, reader.ReadAllFieldsOn):
        read_all()  # every array the node's mesh holds, not only the active ones (the legacy reader's default)
    reader.Update()
    return reader.GetOutput()


def run_tissue_job(folder: Path, job: dict) -> None:
    """Tag the job's mesh, save the tags and, for an export, write the files under ``export/``."""
    import numpy as np

    dataset = read_job_mesh(folder)
    core = np.load(folder / CORE_FILE) if (folder / CORE_FILE).is_file() else None
    tags = tag_world_mesh(dataset, np.load(folder / SCAR_FILE), core, job["border_zone"], job["core"],
                          job["tag_values"], job["model_name"])
    save_tags(folder / TAGS_FILE, tags)
    export = job.get("export")
    files = []
    if export:
        emit("log", message=f"Writing {export['format']} files")
        (folder / EXPORT_FOLDER).mkdir()
        helix_deg = export.get("helix_deg")
        written = write_export(dataset, tags, folder / EXPORT_FOLDER / export["name"], fmt=export["format"],
                               units=export["units"], fibres=export.get("fibres"), scar_rule=export.get("scar_rule"),
                               helix_deg=None if helix_deg is None else tuple(helix_deg))
        files = [path.name for path in written]
    emit("done", device="CPU", files=files)


#: AhaOptions fields that hold a point or a direction (lists in the job's JSON).
_AHA_VECTORS = ("rv_point", "rv_inferior_point", "apex", "base", "slice_normal")


def save_aha_options(folder: Path, options) -> dict:
    """An :class:`cardioscar.aha.AhaOptions` as the JSON record of an AHA job, its label map's
    labels in ``labels.npy`` (no pickle: :func:`load_aha_options` reads it back)."""
    import dataclasses

    import numpy as np

    record = {each.name: getattr(options, each.name) for each in dataclasses.fields(options)}
    labels = record.pop("labels")
    for name in _AHA_VECTORS:
        record[name] = None if record[name] is None else np.asarray(record[name], dtype=float).tolist()
    if labels is not None:
        np.save(folder / LABELS_FILE, labels.labels)
        record["labels"] = {"ijk_to_lps": np.asarray(labels.ijk_to_lps).tolist(), "source": labels.source,
                            "rv_label": int(labels.rv_label), "myocardium_label": int(labels.myocardium_label)}
    else:
        record["labels"] = None
    return record


def load_aha_options(folder: Path, record: dict):
    """The :class:`cardioscar.aha.AhaOptions` that :func:`save_aha_options` recorded."""
    import numpy as np

    from cardioscar.aha import AhaOptions, LabelMap

    record = dict(record)
    for name in _AHA_VECTORS:
        record[name] = None if record[name] is None else np.asarray(record[name], dtype=float)
    labels = record.pop("labels")
    if labels is not None:
        record["labels"] = LabelMap(np.load(folder / LABELS_FILE, allow_pickle=False), np.asarray(labels["ijk_to_lps"]),
                                    labels["source"], rv_label=labels["rv_label"],
                                    myocardium_label=labels["myocardium_label"])
    return AhaOptions(**record)


def _model_mesh(dataset: "vtk.vtkDataSet", model_name: str):
    """A model's mesh in world LPS as the library's AHA reads it, and what its messages call it: the
    model ``model_name`` (as *Tag*'s do), not "the mesh"."""
    from cardioscar.io.meshio import Mesh

    return Mesh(dataset=dataset, space="LPS", path=None), f"The model '{model_name}'"


def aha_of_world_mesh(dataset: "vtk.vtkDataSet", options, bullseye_png: "Path | None", title: str, model_name: str):
    """The library's AHA analysis of a mesh in world LPS and, when asked, its bull's-eye (the panel's
    worker and the console's ``analyse_model`` both call this); the library's ``AhaResult``."""
    from cardioscar.aha import analyse_mesh
    from cardioscar.aha.bullseye import write_bullseye

    mesh, name = _model_mesh(dataset, model_name)
    result = analyse_mesh(mesh, options, name)
    if bullseye_png is not None:
        write_bullseye(result.rows, Path(bullseye_png), title)
    return result


def check_frame_of_world_mesh(dataset: "vtk.vtkDataSet", options, model_name: str) -> None:
    """The AHA frame of a model's mesh in world LPS before the model has a result
    (:func:`cardioscar.aha.check_frame`): the refusals and warnings :func:`aha_of_world_mesh` would
    give after the training, in its words."""
    from cardioscar.aha import check_frame

    mesh, name = _model_mesh(dataset, model_name)
    check_frame(mesh, options, name)


def run_aha_job(folder: Path, job: dict) -> None:
    """Analyse the job's mesh; write the segments, the table and the bull's-eye into the folder."""
    import numpy as np

    from cardioscar.io.atomic import atomic_write

    result = aha_of_world_mesh(read_job_mesh(folder), load_aha_options(folder, job["options"]), folder / BULLSEYE_FILE,
                               job["title"], job["model_name"])
    with atomic_write(folder / AHA_ARRAYS_FILE) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, point_segments=result.point_segments, cell_segments=result.cell_segments)
    with atomic_write(folder / AHA_TABLE_FILE) as tmp:
        tmp.write_text(json.dumps({"rows": result.rows, "summary": result.summary}), encoding="utf-8")
    emit("done", device="CPU", files=[])


def run_channels_job(folder: Path, job: dict) -> None:
    """Search the job's mesh for channels; write the per-node fields and, under ``export/``, the
    channel table and record as ``cardioscar channels`` writes them."""
    import numpy as np

    from cardioscar.io.atomic import atomic_write
    from cardioscar.io.meshio import Mesh
    from cardioscar.simulation.channels import ChannelOptions, channels_of_mesh, write_channel_tables
    from cardioscar.simulation.hidden_channels import MARGINAL_CORE_FIELD, marginal_core_fields

    options = ChannelOptions(**{**job["options"], "layers": tuple(job["options"]["layers"])})
    tissue = dict(job["tissue"])
    if tissue.get("tag_values") is not None:
        tissue["tag_values"] = tuple(tissue["tag_values"])
    result, found_in = channels_of_mesh(Mesh(dataset=read_job_mesh(folder), space="LPS", path=None), options, **tissue)
    with atomic_write(folder / CHANNEL_ARRAYS_FILE) as tmp:
        with open(tmp, "wb") as handle:
            marginal = marginal_core_fields(result.hidden)[MARGINAL_CORE_FIELD]
            np.savez(handle, node_channel=result.node_channel, depth=result.depth,
                     **({} if marginal is None else {"marginal_core": marginal}))
    written = write_channel_tables(result, found_in, options, folder / EXPORT_FOLDER)
    emit("done", device="CPU", files=[path.name for path in written.values()])


#: The jobs that need no torch (numpy, VTK, SciPy and matplotlib only), by kind.
_PLAIN_JOBS = {"tissue": run_tissue_job, "aha": run_aha_job, "channels": run_channels_job}


def run_job(folder: Path) -> None:
    """Do the job described in ``folder/job.json`` and write its results into ``folder``."""
    import numpy as np

    job = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    if job["kind"] in _PLAIN_JOBS:
        _PLAIN_JOBS[job["kind"]](folder, job)
        return

    from cardioscar.fit.devices import describe_device, resolve_device
    from cardioscar.logic import (load_trained_model, predict_on_points, save_trained_model, train_scar_model)
    from cardioscar.fit.training import TrainingConfig

    device = resolve_device(bool(job["force_cpu"]))
    emit("log", message=f"Running on {describe_device(device)}")
    points = np.load(folder / POINTS_FILE)
    if job["kind"] == "train":
        checkpoint = train_scar_model(folder / TRAINING_DATA_FILE, TrainingConfig(**job["training"]), device,
                                      progress_callback=_report_progress)
        save_trained_model(checkpoint, folder / MODEL_FILE)
    else:
        checkpoint = load_trained_model(Path(job["model"]))
    emit("log", message=f"Predicting on {len(points)} nodes")
    inference = predict_on_points(checkpoint, points, device=device, **job["inference"])
    _write_prediction(folder, inference)
    emit("done", device=describe_device(device))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not (Path(argv[0]) / JOB_FILE).is_file():
        emit("error", message=f"usage: worker.py JOB_FOLDER (a folder with {JOB_FILE})")
        return EXIT_USER_ERROR
    _end_when_parent_ends()
    handler = _ReportHandler()
    logging.getLogger("cardioscar").addHandler(handler)
    logging.getLogger("cardioscar").setLevel(logging.INFO)
    warnings.showwarning = _show_warning

    from cardioscar.errors import CardioScarError

    try:
        run_job(Path(argv[0]))
    except CardioScarError as error:
        emit("error", message=str(error))
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
