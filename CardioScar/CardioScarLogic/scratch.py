"""The temporary folders the extension's panels make, and when each one goes.

A day of clicks must not fill the disk, and a folder must not go while something still reads
from it. The rules:

* a worker's job folder (:func:`start_in_job_folder`) lives as long as its run: the run removes
  it when it is finished or stopped, and it is removed here when the run never started (a bad
  input, a missing Python, a process that could not be started);
* a file the panel keeps for the user to save later (:class:`KeptFile`, the AHA bull's-eye PNG)
  lives until the next one replaces it or the panel is closed; an attempt that fails removes
  its own folder at once.

Results loaded into the scene hold their data in memory (no storage node points into these
folders), so nothing in the scene reads from them.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, TypeVar

Run = TypeVar("Run")


def start_in_job_folder(prefix: str, start: Callable[[Path], Run]) -> Run:
    """Make a new temporary folder and call ``start(folder)`` (write the job, start the worker on
    it); if that raises, the folder is removed before the error goes on."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return start(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


class KeptFile:
    """The latest version of a file made on each click and kept for the user (shown by its path,
    saved elsewhere on request), each in its own temporary folder."""

    def __init__(self, prefix: str, name: str) -> None:
        self.prefix, self.name = prefix, name
        self.path: Optional[Path] = None

    @contextmanager
    def attempt(self) -> Iterator[Path]:
        """A path in a new folder to write the next version to. When the block succeeds it becomes
        :attr:`path` and the previous version's folder is removed; when it raises, the new folder
        is removed and the previous version stays."""
        folder = Path(tempfile.mkdtemp(prefix=self.prefix))
        try:
            yield folder / self.name
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.discard()
        self.path = folder / self.name

    def discard(self) -> None:
        """Remove the kept version (the panel is closing); safe to call more than once."""
        if self.path is not None:
            shutil.rmtree(self.path.parent, ignore_errors=True)
            self.path = None


__all__ = ["start_in_job_folder", "KeptFile"]
