"""What the library says once per file or model, remembered for one run, not one process.

A command says a note about a file (an EMIDEC NIfTI's sform) or a warning about a model (an
Attri-VAE model without calibration) once, however often it reads them. Remembered for the whole
process, a second ``cardioscar`` command run in that process (Slicer's Python console, a script
that calls :func:`cardioscar.cli.main` per patient, the test suite's in-process runs) never said
it again, where the same command in a new shell did: :func:`cardioscar.cli.main` starts each
command with :func:`new_run`. A long-lived caller (the Slicer module) keeps saying it once per
session.
"""

from __future__ import annotations

from typing import Hashable

_MEMORIES: list[set[Hashable]] = []


def said_once_memory() -> set[Hashable]:
    """A new, empty set of what has been said (files, model keys), emptied by :func:`new_run`."""
    memory: set[Hashable] = set()
    _MEMORIES.append(memory)
    return memory


def new_run() -> None:
    """Forget everything said so far: the next command says its notes and warnings again."""
    for memory in _MEMORIES:
        memory.clear()
