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

#: Start of every structured line on stdout; the rest of the line is a JSON object.
MESSAGE_PREFIX = "CARDIOSCAR-WORKER "
JOB_FILE = "job.json"
POINTS_FILE = "points.npy"
TRAINING_DATA_FILE = "training_data.npz"
MODEL_FILE = "model.pth"
PREDICTION_FILE = "prediction.npz"
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


def run_job(folder: Path) -> None:
    """Do the job described in ``folder/job.json`` and write its results into ``folder``."""
    import numpy as np

    from cardioscar.fit.devices import describe_device, resolve_device
    from cardioscar.logic import (load_trained_model, predict_on_points, save_trained_model, train_scar_model)
    from cardioscar.fit.training import TrainingConfig

    job = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
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
