"""Atomic file writing.

A crash, a full disk or a cancelled run must never leave a half-written file where the user
expects a result, nor destroy a previous good file. Every writer in the package writes to a
temporary file in the destination folder and renames it into place only once it is complete.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from cardioscar.errors import CardioScarError


def write_failed(target: str | os.PathLike, reason: str | None = None) -> CardioScarError:
    """The one error for an output that could not be written, whoever noticed (the operating
    system, a VTK writer's error code, torch's writer): it names the file the user asked for."""
    because = f": {reason}" if reason else ""
    return CardioScarError(f"Could not write {target}{because}; check that the folder is writable and has space.")


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the destination's suffixes (``.vtk``, ``.nii.gz``) so that writers
    which choose their format from the file name (VTK, SimpleITK, numpy) behave as for ``path``.
    An operating-system error (a full disk, no permission, a folder in the way) becomes a
    one-line :class:`CardioScarError` that names ``path``, not the temporary file.
    """
    target = Path(path)
    if not target.name:
        raise CardioScarError(f"No output file name given (got '{path}'): name the file to write.")
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        suffix = "".join(target.suffixes)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{suffix}", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        yield tmp
        os.replace(tmp, target)
    except OSError as error:
        raise write_failed(target, error.strerror or str(error)) from error
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()
