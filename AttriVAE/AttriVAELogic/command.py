"""One ``cardioscar attrivae`` command in a worker process, for the panel and the console.

As in the CardioScar panel (:mod:`CardioScarLogic.background`), the heavy work runs in another
process started with Slicer's Python, so Slicer stays responsive and *Stop* ends the work at
once. Here the worker *is* the library's command line (``cardioscar attrivae ...``, run as
``python -m cardioscar`` runs it, plus the CardioScar worker's rule of ending when its standard
input closes): the contract between this module and the library is that command line and
nothing else. Its
standard error (log lines, and the one-line ``error: ...`` of a refused input) is read line by
line into the panel's log; its standard output's JSON line is the result. The job folder (the
input files written by :mod:`AttriVAELogic.inputs`, and the command's outputs) is removed when
the run is stopped or finished; the scene is written only by :meth:`CommandRun.finish`, after
the command succeeded.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from cardioscar.errors import CardioScarError, TrainingCancelled
from CardioScarLogic.background import LIVE_RUNS, WorkerProcess, worker_environment, worker_python
from CardioScarLogic.headless import in_slicer_application

#: Seconds between checks while the console waits for a run.
WAIT_POLL_S = 0.05
#: What the worker Python runs: ``cardioscar attrivae ...`` exactly as ``python -m cardioscar``
#: would, after starting a thread that ends the process when its standard input closes, i.e.
#: when Slicer ends however it ends (the CardioScar worker does the same).
BOOTSTRAP = (
    "import os, sys, threading\n"
    "def _watch():\n"
    "    while os.read(0, 4096):\n"
    "        pass\n"
    "    os._exit(3)\n"
    "threading.Thread(target=_watch, daemon=True).start()\n"
    "from cardioscar.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def last_json_object(lines: list[str]) -> Optional[dict]:
    """The last line that is a JSON object (the command's result), or None."""
    for line in reversed(lines):
        text = line.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def error_line(lines: list[str]) -> Optional[str]:
    """The text of the command's last ``error: ...`` line (without the prefix), or None."""
    for line in reversed(lines):
        if "error: " in line:
            return line.split("error: ", 1)[1].strip()
    return None


class CommandRun(WorkerProcess):
    """``cardioscar attrivae <arguments>`` running on a job folder.

    ``finish(run)`` turns the finished run's JSON result (``run.result``) and files into scene
    nodes; it is called by :meth:`finish` only when the command succeeded. ``stop()`` (from
    :class:`CardioScarLogic.background.WorkerProcess`) ends the command and removes the folder.
    """

    def __init__(self, arguments: list[str], folder: Path, finish: Callable[["CommandRun"], object],
                 python: Optional[str] = None, names: Optional[dict[str, str]] = None) -> None:
        self.folder = Path(folder)
        self.names = dict(names or {})  # the written files as the command names them -> as the user does
        self.arguments = [str(a) for a in arguments]
        self._finish = finish
        self._log: "queue.Queue[str]" = queue.Queue()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self.result: Optional[dict] = None
        command = [python or worker_python(in_slicer_application()), "-c", BOOTSTRAP, "attrivae", *self.arguments]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=worker_environment(), encoding="utf-8",
                                         errors="replace", bufsize=1, cwd=str(self.folder))
        self._readers = [threading.Thread(target=self._read, args=(stream, lines, log), daemon=True,
                                          name="attrivae-command-reader")
                         for stream, lines, log in ((self._process.stdout, self._stdout, False),
                                                    (self._process.stderr, self._stderr, True))]
        for reader in self._readers:
            reader.start()
        LIVE_RUNS.add(self)  # ended when this Python ends

    @property
    def verb(self) -> str:
        return self.arguments[0] if self.arguments else ""

    def _read(self, stream, lines: list, log: bool) -> None:
        for line in stream:
            line = line.rstrip("\r\n")
            lines.append(line)
            if log and line.strip():
                self._log.put(self._in_users_words(line))
        stream.close()

    def _in_users_words(self, line: str) -> str:
        """The line with the written files named as the user knows them (a warning about
        ``--image /tmp/attrivae-run-.../lge.nii.gz`` names the LGE node)."""
        for written, user in self.names.items():
            line = line.replace(written, user)
        return line

    def messages(self) -> list[str]:
        """The command's log lines that arrived since the last call (call from one thread only)."""
        drained = []
        while True:
            try:
                drained.append(self._log.get_nowait())
            except queue.Empty:
                return drained

    @property
    def running(self) -> bool:
        """True until the command has ended and all of its output has been read."""
        return self._process.poll() is None or any(reader.is_alive() for reader in self._readers)

    @property
    def succeeded(self) -> bool:
        if self.running or self._process.returncode != 0:
            return False
        self.result = last_json_object(self._stdout)
        return self.result is not None

    def failure(self) -> str:
        """One line on why the command did not succeed (call once it has ended)."""
        found = error_line(self._stderr)
        if found:
            return self._in_users_words(found)
        if self._process.returncode == 0:
            return f"cardioscar attrivae {self.verb} printed no JSON result: is the installed library too old?"
        return (f"cardioscar attrivae {self.verb} ended with status {self._process.returncode}; its output is in "
                "the log.")

    def wait(self, should_cancel: Optional[Callable[[], bool]] = None, log: Optional[Callable[[str], None]] = None):
        """Block until the command ends (the console and batch mode), then :meth:`finish`.

        Raises:
            TrainingCancelled: ``should_cancel()`` returned True (the command was ended; nothing written).
        """
        while self.running:
            if should_cancel is not None and should_cancel():
                self.stop()
                raise TrainingCancelled(f"cardioscar attrivae {self.verb} was stopped; nothing was written.")
            for line in self.messages():
                if log is not None:
                    log(line)
            time.sleep(WAIT_POLL_S)
        for line in self.messages():
            if log is not None:
                log(line)
        return self.finish()

    def finish(self):
        """Put the result into the scene (the only step that touches it), then remove the job
        folder. Raises :class:`CardioScarError` when the command failed."""
        try:
            if not self.succeeded:
                raise CardioScarError(self.failure())
            return self._finish(self)
        finally:
            self._close()


__all__ = ["CommandRun", "last_json_object", "error_line"]
