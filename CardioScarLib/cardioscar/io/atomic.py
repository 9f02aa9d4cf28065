"""Atomic file writing.

A crash, a full disk or a cancelled run must never leave a half-written file where the user
expects a result, nor destroy a previous good file. Every writer in the package writes to a
temporary file in the destination folder and renames it into place only once it is complete.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from cardioscar.io.checks import check_output_place
from cardioscar.errors import CardioScarError

logger = logging.getLogger(__name__)


def write_failed(target: str | os.PathLike, reason: str | None = None) -> CardioScarError:
    """The one error for an output that could not be written, whoever noticed (the operating
    system, a VTK writer's error code, torch's writer): it names the file the user asked for."""
    because = f": {reason}" if reason else ""
    return CardioScarError(f"Could not write {target}{because}; check that the folder is writable and has space.")


#: Age after which a temporary file of the older naming (without the writer's process id) is
#: taken as left behind by a killed writer.
STALE_AFTER_S = 3600.0


def _remove_stale_parts(target: Path, suffix: str) -> None:
    """Delete temporary files that an earlier write to ``target`` left behind when it was killed
    (kill -9, a power cut): ours only, ``.<stem>.<pid>-<random>.part<suffix>``, and only when no
    process of that id runs here any more (a concurrent writer keeps its file)."""
    pattern = re.compile(rf"\.{re.escape(target.stem)}\.(?:(\d+)-)?[A-Za-z0-9_]{{8}}\.part{re.escape(suffix)}")
    for candidate in target.parent.glob(f".{glob.escape(target.stem)}.*.part{glob.escape(suffix)}"):
        match = pattern.fullmatch(candidate.name)
        if match is None:
            continue
        try:
            stale = (not _process_alive(int(match.group(1))) if match.group(1)
                     else time.time() - candidate.stat().st_mtime > STALE_AFTER_S)
            if stale:
                candidate.unlink()
                logger.info("Removed %s, left by an interrupted write of %s", candidate.name, target.name)
        except OSError:
            continue  # gone already, or not ours to remove


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
    check_output_place(target)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        suffix = "".join(target.suffixes)
        _remove_stale_parts(target, suffix)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.{os.getpid()}-", suffix=f".part{suffix}",
                                        dir=target.parent)
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
