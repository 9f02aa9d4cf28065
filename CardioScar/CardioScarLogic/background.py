"""Training and prediction in a worker process, for the panel (Qt-free, testable without Slicer).

Why a process and not a thread: MRML and VTK objects are not thread-safe, torch holds the GIL
for long stretches on the CPU, and only a process can be stopped at once, wherever it is. The
panel therefore reads its inputs from the scene (fast), writes them to a temporary folder in
the library's own formats, and starts :mod:`CardioScarLogic.worker` with Slicer's Python. Its
report lines are read by a thread into a queue, which the panel drains from a timer on the
main thread. The scene is written only by :meth:`BackgroundRun.finish`, after the worker
ended successfully; :meth:`BackgroundRun.stop` ends the worker and removes the folder, so a
stopped run leaves the scene and the user's files as they were.

The console and batch mode keep calling :meth:`CardioScarLogic.train_and_apply`, which does
the same three steps in one process; for the same seed both give the same result.

The panel's *Compute AHA segments* runs the same way (:meth:`BackgroundRun.aha`), with Stop: it
takes seconds, during which a step on the main thread blocked Slicer's event loop (the busy bar
stood still). The panel's *Tag tissue* and *Export* run the same way (:meth:`BackgroundRun.tissue`): on a mesh
of a million elements tagging and writing openCARP text take about ten seconds each, which
Slicer must not spend frozen and the user must be able to stop. An export's files are written in
the job folder and copied next to the user's prefix only once the worker finished (all copies
staged, then each renamed into place, the previous ones put back if a rename fails), so a stopped
or failed export leaves the user's files as they were. *Find channels* runs the same way
(:meth:`BackgroundRun.channels`): the search takes seconds on a real reconstruction (5-7 s on
24,000-69,000 nodes), and its table files are placed as one set only once it finished.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import vtk

from cardioscar.errors import CardioScarError

from . import worker
from .logic import PreparedRun, ReconstructionResult, _check_model_node
from .options import ReconstructionOptions
from .scratch import start_in_job_folder

logger = logging.getLogger(__name__)

#: Workers still running (anything with ``stop()``: the Attri-VAE module's command runs join),
#: ended when this Python ends (Slicer quitting, a test session).
LIVE_RUNS: "weakref.WeakSet" = weakref.WeakSet()
#: Name prefix of the job folders (in the system's temporary folder; removed with their run).
JOB_FOLDER_PREFIX = "cardioscar-run-"


@dataclass
class WorkerMessage:
    """One report of the worker: ``kind`` is progress, log, warning, done, error or output
    (a line that was not a structured report)."""

    kind: str
    fields: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The line the panel's log shows for this report."""
        if self.kind == "progress":
            f = self.fields
            left = "?" if f.get("eta_s") is None else f"{f['eta_s']:.0f} s"
            return f"epoch {f['epoch']}/{f['max_epochs']}  loss {f['loss']:.4g}  best {f['best_loss']:.4g}  {left} left"
        if self.kind == "done":  # a tissue job (its files listed) ran no network: no device to name
            return "Finished" if "files" in self.fields else f"Finished on {self.fields.get('device', '?')}"
        message = self.fields.get("message", "")
        return f"Warning: {message}" if self.kind == "warning" else message


def parse_line(line: str) -> WorkerMessage:
    """A line of the worker's output as a message (free text becomes an ``output`` message)."""
    line = line.rstrip("\r\n")
    if line.startswith(worker.MESSAGE_PREFIX):
        try:
            fields = json.loads(line[len(worker.MESSAGE_PREFIX):])
            return WorkerMessage(str(fields.pop("kind")), fields)
        except (ValueError, KeyError, AttributeError):
            pass
    return WorkerMessage("output", {"message": line})


def worker_python(in_application: bool) -> str:
    """The Python that runs the worker: Slicer's ``PythonSlicer`` inside the application (the
    launcher puts it on PATH, and it sets up the same environment as Slicer's own Python;
    ``sys.executable`` there is the Slicer application itself), else this Python."""
    if not in_application:
        return sys.executable
    found = shutil.which("PythonSlicer")
    if found is None:
        raise CardioScarError("Cannot find Slicer's Python (PythonSlicer) on PATH to run the training: "
                              "start Slicer through its launcher.")
    return found


def _library_path() -> str:
    """The folder holding the ``cardioscar`` package, for the worker's PYTHONPATH."""
    import cardioscar

    return str(Path(cardioscar.__file__).resolve().parent.parent)


def worker_environment() -> dict:
    """This process's environment for a worker: ``cardioscar`` importable (in an installed
    extension it sits beside the modules, not on Python's path), output unbuffered and UTF-8 (the
    panel reads it line by line as it comes)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_library_path(), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _inference_options(options: ReconstructionOptions) -> dict:
    return {"mc_samples": int(options.inference_mc_samples), "batch_size": int(options.inference_batch_size),
            "threshold": options.threshold, "seed": int(options.seed)}


def write_training_job(folder: Path, run: PreparedRun) -> None:
    """Export a prepared training run: rows (``.npz``), points (``.npy``), configuration (JSON)."""
    from cardioscar.logic import save_preprocessing_result

    save_preprocessing_result(run.prepared, folder / worker.TRAINING_DATA_FILE)
    np.save(folder / worker.POINTS_FILE, run.points)
    job = {"kind": "train", "force_cpu": bool(run.options.force_cpu),
           "training": asdict(run.options.training_config()), "inference": _inference_options(run.options)}
    (folder / worker.JOB_FILE).write_text(json.dumps(job))


def _write_job_mesh(folder: Path, dataset: vtk.vtkDataSet, model_name: str) -> None:
    """The model's world mesh with its arrays, as binary legacy VTK (which keeps a surface or a
    volume mesh as it is; the worker reads it with :func:`CardioScarLogic.worker.read_job_mesh`)."""
    writer = vtk.vtkDataSetWriter()
    writer.SetFileName(str(folder / worker.MESH_FILE))
    writer.SetInputData(dataset)
    writer.SetFileTypeToBinary()
    if not writer.Write():
        raise CardioScarError(f"Could not write the mesh of '{model_name}' to the temporary folder {folder}; "
                              "check that it has space.")


def write_tissue_job(folder: Path, inputs, export: Optional[dict]) -> None:
    """Export a tagging (:class:`CardioScarLogic.tissue.TaggingInputs`): the world mesh with its
    arrays, the fields, and what to write (``export``: format, units, the prefix's file name, the
    scar rule; or None)."""
    _write_job_mesh(folder, inputs.world_mesh, inputs.model_name)
    np.save(folder / worker.SCAR_FILE, inputs.scar)
    if inputs.core is not None:
        np.save(folder / worker.CORE_FILE, inputs.core)
    job = {"kind": "tissue", "model_name": inputs.model_name, "border_zone": inputs.border_zone,
           "core": inputs.core_threshold, "tag_values": list(inputs.tag_values), "export": export}
    (folder / worker.JOB_FILE).write_text(json.dumps(job))


def _left_over(prefix: Path, fmt: str, names: Sequence[str]) -> list[Path]:
    """An earlier openCARP export's files at ``prefix`` that the worker's files ``names`` do not
    replace (:func:`cardioscar.simulation.opencarp.left_over`); none for another format."""
    from cardioscar.simulation.opencarp import left_over

    return left_over(prefix, [name[len(prefix.name):] for name in names]) if fmt == "opencarp" else []


def write_aha_job(folder: Path, job) -> None:
    """Export an AHA analysis (:class:`CardioScarLogic.aha.AhaJob`): the world mesh with its arrays,
    and the options (a label map's labels as ``.npy``, the rest as JSON)."""
    _write_job_mesh(folder, job.world_mesh, job.model_name)
    record = {"kind": "aha", "model_name": job.model_name, "title": job.title,
              "options": worker.save_aha_options(folder, job.options)}
    (folder / worker.JOB_FILE).write_text(json.dumps(record))


def write_channels_job(folder: Path, job) -> None:
    """Export a channel search (:class:`CardioScarLogic.channels.ChannelJob`): the world mesh with
    its arrays, the options and the tissue keywords (JSON)."""
    _write_job_mesh(folder, job.world_mesh, job.model_name)
    options = {"layers": [float(v) for v in job.options.layers], "layer_width": float(job.options.layer_width),
               "max_width_mm": float(job.options.max_width_mm), "min_length_mm": float(job.options.min_length_mm)}
    record = {"kind": "channels", "model_name": job.model_name, "options": options, "tissue": job.tissue}
    (folder / worker.JOB_FILE).write_text(json.dumps(record))


def place_files(sources: list[Path], folder: Path, remove: Sequence[Path] = ()) -> list[Path]:
    """Copy ``sources`` into ``folder`` under their names, as one set (:func:`atomic_write_set`): all
    copies are written as temporary files there first, then renamed into place, and a failure at
    any step leaves the folder's previous files as they were. ``remove``: the previous set's files
    that this one has not (an openCARP export's ``.lon``), removed with the placing."""
    from cardioscar.io.atomic import atomic_write_set

    targets = [folder / source.name for source in sources]
    with atomic_write_set(targets, remove) as temporaries:
        for source, temporary in zip(sources, temporaries):
            shutil.copyfile(source, temporary)
    return targets


@dataclass
class ChannelSceneResult:
    """A finished channel search: its record (``channels.json``'s content), the table node written
    on the model and the files placed in the output folder (none without one)."""

    record: dict
    table_node: object
    files: list


@dataclass
class TissueResult:
    """A finished tagging: the tags written on the model and the files an export placed."""

    tags: object
    files: list


def write_prediction_job(folder: Path, model_path: Path, points: np.ndarray, options: ReconstructionOptions) -> None:
    """Export a prediction with a saved model (read by the worker where it is, never changed)."""
    np.save(folder / worker.POINTS_FILE, points)
    job = {"kind": "apply", "force_cpu": bool(options.force_cpu), "model": str(Path(model_path).resolve()),
           "inference": _inference_options(options)}
    (folder / worker.JOB_FILE).write_text(json.dumps(job))


class WorkerProcess:
    """What every run in a worker process shares (this module's and the Attri-VAE module's
    command runs): ``self._process`` (started with its stdin a pipe) works in ``self.folder``."""

    folder: Path
    _process: subprocess.Popen

    def stop(self) -> None:
        """End the worker now and remove its folder. Safe to call at any time, more than once."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._close()

    def _close(self) -> None:
        """Close the worker's stdin (a worker still running ends on that) and remove the folder."""
        try:
            self._process.stdin.close()
        except OSError:  # the pipe broke when the worker ended
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
        LIVE_RUNS.discard(self)


class BackgroundRun(WorkerProcess):
    """A worker process on one job folder: start, read its reports, stop, collect the result.

    Use :meth:`training` or :meth:`prediction` to make one from the Logic's inputs.
    """

    def __init__(self, folder: Path, python: str, finish) -> None:
        self.folder = Path(folder)
        self._finish = finish
        self._messages: "queue.Queue[WorkerMessage]" = queue.Queue()
        self.device = ""
        #: the names of the files a tissue job wrote under its export folder
        self.files: list[str] = []
        self.error: Optional[str] = None
        #: the saved model a prediction applies (read before the worker starts); None for training
        self.checkpoint: Optional[dict] = None
        self._process = subprocess.Popen(
            [python, str(Path(worker.__file__).resolve()), str(self.folder)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=worker_environment(), encoding="utf-8",
            errors="replace", bufsize=1)
        self._reader = threading.Thread(target=self._read, name="cardioscar-worker-reader", daemon=True)
        self._reader.start()
        LIVE_RUNS.add(self)

    # ------------------------------------------------------------------ making runs

    @classmethod
    def training(cls, logic, scar_nodes, model_node, options: ReconstructionOptions,
                 python: Optional[str] = None, myocardium_mask=None, blood_pool_node=None,
                 remote_node=None) -> "BackgroundRun":
        """Read the inputs through the Logic (errors raise here, before any process starts) and
        start training + prediction in a worker. The masks: as for
        :meth:`CardioScarLogic.train_and_apply`."""
        run = logic.prepare_training(scar_nodes, model_node, options, myocardium_mask, blood_pool_node=blood_pool_node,
                                     remote_node=remote_node)

        def finish(background: "BackgroundRun", output_node) -> ReconstructionResult:
            from cardioscar.logic import load_trained_model

            checkpoint = load_trained_model(background.folder / worker.MODEL_FILE)
            return logic.finish_training(run, output_node, checkpoint, background._prediction(), background.device)

        def start(folder: Path) -> "BackgroundRun":
            write_training_job(folder, run)
            return cls(folder, python or worker_python(_in_application()), finish)

        return start_in_job_folder(JOB_FOLDER_PREFIX, start)

    @classmethod
    def prediction(cls, logic, model_path, model_node, options: ReconstructionOptions,
                   python: Optional[str] = None) -> "BackgroundRun":
        """Check the saved model and the mesh here (as :meth:`CardioScarLogic.apply_model` does), then
        predict in a worker."""
        from cardioscar.logic import check_mesh_for_checkpoint, load_trained_model

        from .geometry import model_points_lps

        started = time.perf_counter()
        _check_model_node(model_node)
        checkpoint = load_trained_model(Path(model_path))
        points = model_points_lps(model_node)
        check_mesh_for_checkpoint(checkpoint, points, f"The model '{model_node.GetName()}'")

        def finish(background: "BackgroundRun", output_node) -> ReconstructionResult:
            return logic.finish_prediction(output_node, points, checkpoint, background._prediction(), options,
                                           background.device, started)

        def start(folder: Path) -> "BackgroundRun":
            write_prediction_job(folder, Path(model_path), points, options)
            run = cls(folder, python or worker_python(_in_application()), finish)
            run.checkpoint = checkpoint  # what it learned decides where the panel writes the result
            return run

        return start_in_job_folder(JOB_FOLDER_PREFIX, start)

    @classmethod
    def tissue(cls, model_node, tag_options: dict, color_logic=None, export: Optional[dict] = None,
               python: Optional[str] = None) -> "BackgroundRun":
        """Read and check the tagging's inputs here (errors raise before any process starts), then
        tag, and with ``export`` (``prefix``, ``format``, ``units``; ``fibres``, ``helix_deg`` as
        :func:`CardioScarLogic.tissue.export_model_node`'s) write the simulator files, in a
        worker. Its ``finish(model_node)`` places the files, then writes the tags on the model
        (:func:`CardioScarLogic.tissue.apply_tags`) and returns a :class:`TissueResult`."""
        from .tissue import apply_tags, check_export_prefix, check_tags_fit, export_scar_rule, read_tagging_inputs

        prefix = check_export_prefix(export["prefix"], export["format"]) if export is not None else None
        inputs = read_tagging_inputs(model_node, **tag_options)
        job_export = None if export is None else {"name": prefix.name, "format": export["format"],
                                                  "units": export["units"], "scar_rule": export_scar_rule(model_node),
                                                  "fibres": export.get("fibres"), "helix_deg": export.get("helix_deg")}

        def finish(background: "BackgroundRun", output_node) -> TissueResult:
            tags = worker.load_tags(background.folder / worker.TAGS_FILE)
            # before a file is placed: a refused model leaves no file either
            check_tags_fit(output_node, tags, inputs.state, inputs.core_model, inputs.core_state)
            files = [] if prefix is None else place_files(
                [background.folder / worker.EXPORT_FOLDER / name for name in background.files], prefix.parent,
                _left_over(prefix, export["format"], background.files))
            apply_tags(output_node, tags, color_logic)
            return TissueResult(tags, files)

        def start(folder: Path) -> "BackgroundRun":
            write_tissue_job(folder, inputs, job_export)
            return cls(folder, python or worker_python(_in_application()), finish)

        return start_in_job_folder(JOB_FOLDER_PREFIX, start)

    @classmethod
    def aha(cls, model_node, inputs, bullseye=None, python: Optional[str] = None) -> "BackgroundRun":
        """Read and check the AHA inputs here (:class:`CardioScarLogic.aha.AhaInputs`; errors raise
        before any process starts), then analyse and draw the bull's-eye in a worker. Its
        ``finish(model_node)`` writes the segments and the table on the model
        (:func:`CardioScarLogic.aha.apply_segments`: refused if the model changed meanwhile) and,
        given ``bullseye`` (a :class:`CardioScarLogic.scratch.KeptFile`), keeps the bull's-eye
        there; it returns the :class:`CardioScarLogic.aha.AhaSceneResult`."""
        from .aha import apply_segments, read_aha_inputs

        job = read_aha_inputs(model_node, inputs)

        def finish(background: "BackgroundRun", output_node):
            folder = background.folder
            with np.load(folder / worker.AHA_ARRAYS_FILE, allow_pickle=False) as arrays:
                point_segments, cell_segments = arrays["point_segments"], arrays["cell_segments"]
            table = json.loads((folder / worker.AHA_TABLE_FILE).read_text(encoding="utf-8"))

            def write():
                return apply_segments(output_node, table["rows"], table["summary"], point_segments, cell_segments,
                                      job.state)

            if bullseye is None:
                return write()
            with bullseye.attempt() as png:  # kept only when the model took the segments
                shutil.copyfile(folder / worker.BULLSEYE_FILE, png)
                return write()

        def start(folder: Path) -> "BackgroundRun":
            write_aha_job(folder, job)
            return cls(folder, python or worker_python(_in_application()), finish)

        return start_in_job_folder(JOB_FOLDER_PREFIX, start)

    @classmethod
    def channels(cls, model_node, options, tissue: dict, output_dir: Optional[str] = None,
                 python: Optional[str] = None) -> "BackgroundRun":
        """Read and check the search's inputs here (:func:`CardioScarLogic.channels.read_channel_inputs`
        and the output folder; errors raise before any process starts), then search in a worker.
        Its ``finish(model_node)`` places ``channels.csv`` and ``channels.json`` in ``output_dir``
        (as one set; when given), then writes the fields, table and colours on the model
        (:func:`CardioScarLogic.channels.apply_channels`: refused if the model changed meanwhile) and
        returns a :class:`ChannelSceneResult`."""
        from cardioscar.io.checks import check_output_dir

        from .channels import apply_channels, check_channels_fit, read_channel_inputs

        folder_out = check_output_dir(output_dir, "'Channel files to'") if output_dir else None
        job = read_channel_inputs(model_node, options, **tissue)

        def finish(background: "BackgroundRun", output_node) -> ChannelSceneResult:
            files = background.folder / worker.EXPORT_FOLDER
            with np.load(background.folder / worker.CHANNEL_ARRAYS_FILE, allow_pickle=False) as arrays:
                node_channel, depth = arrays["node_channel"], arrays["depth"]
                marginal = arrays["marginal_core"] if "marginal_core" in arrays.files else None
            record = json.loads((files / "channels.json").read_text(encoding="utf-8"))
            csv_text = (files / "channels.csv").read_text(encoding="utf-8")
            check_channels_fit(output_node, len(node_channel), job.state)  # before a file is placed
            placed = []
            if folder_out is not None:
                folder_out.mkdir(parents=True, exist_ok=True)
                placed = place_files([files / name for name in background.files], folder_out)
            table = apply_channels(output_node, node_channel, depth, csv_text, job.state, marginal)
            return ChannelSceneResult(record, table, placed)

        def start(folder: Path) -> "BackgroundRun":
            write_channels_job(folder, job)
            return cls(folder, python or worker_python(_in_application()), finish)

        return start_in_job_folder(JOB_FOLDER_PREFIX, start)

    # ------------------------------------------------------------------ while it runs

    def _read(self) -> None:
        for line in self._process.stdout:
            self._messages.put(parse_line(line))
        self._process.stdout.close()

    def messages(self) -> list[WorkerMessage]:
        """The reports that arrived since the last call (call from one thread only)."""
        drained = []
        while True:
            try:
                message = self._messages.get_nowait()
            except queue.Empty:
                break
            if message.kind == "done":
                self.device = message.fields.get("device", "")
                self.files = list(message.fields.get("files", []))
            elif message.kind == "error":
                self.error = message.fields.get("message", "")
            drained.append(message)
        return drained

    @property
    def running(self) -> bool:
        """True until the worker has ended and all of its output has been read."""
        return self._process.poll() is None or self._reader.is_alive()

    @property
    def succeeded(self) -> bool:
        return not self.running and self._process.returncode == 0 and self.device != "" and self.error is None

    # ------------------------------------------------------------------ the result

    def failure(self) -> str:
        """One line on why the worker did not finish (call once it has ended)."""
        if self.error:
            return self.error
        return f"The worker process ended with status {self._process.returncode}; its output is in the log."

    def finish(self, output_node) -> ReconstructionResult:
        """Write the finished result on ``output_node`` (the only step that touches the scene),
        then remove the job folder. Raises :class:`CardioScarError` when the worker failed."""
        try:
            self.messages()
            if not self.succeeded:
                raise CardioScarError(self.failure())
            return self._finish(self, output_node)
        finally:
            self._close()

    def _prediction(self):
        from cardioscar.logic import InferenceResult

        with np.load(self.folder / worker.PREDICTION_FILE) as data:
            mean, std = data["mean"], data["std"]
            binary = data["binary"] if "binary" in data.files else None
            error_risk = data["error_risk"] if "error_risk" in data.files else None
        return InferenceResult(mean, std, binary, int(len(mean)), float(np.mean(mean)), float(np.mean(std)),
                               error_risk=error_risk)


def _in_application() -> bool:
    from .headless import in_slicer_application

    return in_slicer_application()


@atexit.register
def _stop_all() -> None:
    """Slicer (or any Python that started workers) is ending: end them too."""
    for run in list(LIVE_RUNS):
        run.stop()


__all__ = ["BackgroundRun", "WorkerProcess", "LIVE_RUNS", "WorkerMessage", "TissueResult", "parse_line", "worker_python",
           "worker_environment", "write_training_job", "write_prediction_job", "write_tissue_job", "write_aha_job",
           "write_channels_job", "ChannelSceneResult",
           "place_files"]
