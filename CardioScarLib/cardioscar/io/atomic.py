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
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

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
    with atomic_write_set([path]) as (tmp,):
        yield tmp


@contextmanager
def atomic_write_set(paths: Sequence[str | os.PathLike],
                     remove: Sequence[str | os.PathLike] = ()) -> Iterator[list[Path]]:
    """Yield one temporary path next to each of ``paths``; once the block has written them all, put
    every one in place, or none.

    Why: files that are read together (openCARP's ``.pts``, ``.elem`` and ``.json`` of one mesh)
    must not be left half replaced: a new ``.pts`` beside the previous ``.elem`` is a mesh that
    never existed. Nothing at ``paths`` changes while the block runs, so a failure there (a full
    disk on the second file) leaves every previous file as it was. Then each temporary is renamed
    onto its target; before that, each previous file but the last one's gets a second name (a
    hard link, else a copy), so that if a later rename fails, the ones already placed are put back.
    ``remove``: files of the previous set that the new one has not (an earlier export's ``.lon``
    where this one writes no fibres), which would otherwise be read with the new files; they go
    with the placing, and come back if it fails. A process killed while the files are renamed
    (a few system calls) can still leave a mixed set; what it left under temporary names is cleared
    by the next write there. Errors are reported as :func:`atomic_write` reports them.
    """
    targets = [Path(path) for path in paths]
    for path, target in zip(paths, targets):
        if not target.name:
            raise CardioScarError(f"No output file name given (got '{path}'): name the file to write.")
        check_output_place(target)
    temporaries: list[Path] = []
    current = targets
    try:
        for target in targets:
            current = [target]
            temporaries.append(_temporary_beside(target))
        current = targets  # the block writes them all: the error may concern any of them
        yield temporaries
        _place_all(temporaries, targets, [Path(path) for path in remove])
    except OSError as error:
        raise write_failed(", ".join(str(target) for target in current), error.strerror or str(error)) from error
    finally:
        for tmp in temporaries:
            if tmp.exists():
                tmp.unlink()


def _umask_from_proc() -> Optional[int]:
    """The umask as Linux (4.7 and later) shows it in ``/proc/self/status``; None where it does not."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_by_setting() -> int:
    """The umask read the only portable way, by setting it and setting it back. For that instant it
    is 0o077, not 0: a file another thread creates then is private rather than world-writable."""
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


#: The umask as this module is imported, in case /proc has no umask line (macOS, Windows, an older
#: Linux). Read then because the import runs once, under the import lock, almost always before any
#: worker thread writes (the umask cannot be read without setting it there); on Linux it is read
#: from /proc and the umask is never set.
_UMASK_AT_IMPORT = _umask_from_proc()
if _UMASK_AT_IMPORT is None:
    _UMASK_AT_IMPORT = _umask_by_setting()


def process_umask() -> int:
    """The process's umask, read without changing it where the system allows.

    Why not ``os.umask(0)`` then ``os.umask(old)``: the umask is the whole process's, so for that
    instant any other thread (a Dask worker writing another patient's files, Slicer's own threads)
    made its files world-writable. Where /proc cannot say, the umask at import is the answer: a
    umask the host changes later is then not followed.
    """
    umask = _umask_from_proc()
    return _UMASK_AT_IMPORT if umask is None else umask


def _temporary_beside(target: Path) -> Path:
    """An empty temporary file in the folder of ``target`` (made if missing), named after it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes)
    _remove_stale_parts(target, suffix)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.{os.getpid()}-", suffix=f".part{suffix}",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~process_umask())
    return tmp


#: How many files the atomic writers have placed in this process, and its lock (worker threads write
#: too): what :func:`placed_files` reads.
_placed = [0]
_placed_lock = threading.Lock()


def placed_files() -> int:
    """How many files this process's atomic writes have placed so far. Why: a command stopped
    part-way (Ctrl-C, a cancelled training) said "no output was written" whatever its earlier steps had written
    (``cardioscar demo``'s phantom and training files before its training); the count before the
    command and at its end tells the two apart."""
    with _placed_lock:
        return _placed[0]


def _place_all(temporaries: list[Path], targets: list[Path], removals: list[Path]) -> None:
    """Move each of ``removals`` aside, then rename each temporary onto its target; if one step
    fails (or is interrupted), put back what the earlier steps replaced or moved (and remove the
    new files that had no previous one) before raising."""
    done: list[tuple[Path, Optional[Path]]] = []  # each changed path and its previous file's second name
    current: Optional[Path] = None
    try:
        for stale in removals:
            current = stale
            if os.path.lexists(stale):
                done.append((stale, _moved_aside(stale)))
        for index, (tmp, target) in enumerate(zip(temporaries, targets)):
            current = target
            # the last target needs no second name: when its own rename fails it is unchanged
            kept = _second_name(target) if index < len(targets) - 1 else None
            try:
                os.replace(tmp, target)
            except BaseException:
                if kept is not None:
                    kept.unlink(missing_ok=True)
                raise
            done.append((target, kept))
    except BaseException as error:
        for changed, its_previous in reversed(done):
            _put_back(changed, its_previous)
        if isinstance(error, OSError):
            raise write_failed(current, error.strerror or str(error)) from error
        raise
    with _placed_lock:
        _placed[0] += len(targets)
    for changed, kept in done:
        if kept is not None:
            kept.unlink(missing_ok=True)
        if changed in removals:
            logger.info("Removed %s: the previous set's, not written this time", changed)


def _moved_aside(stale: Path) -> Path:
    """Rename ``stale`` to a temporary name beside it (what :func:`_put_back` undoes); that name."""
    aside = _temporary_beside(stale)
    os.replace(stale, aside)
    return aside


def _second_name(target: Path) -> Optional[Path]:
    """A hard link to the file at ``target`` (a copy where the file system has no hard links), named
    as a temporary so that one left by a killed writer is cleared; None when no file is there. A
    copy that fails (a full disk) leaves no partial second name behind."""
    if not target.is_file():
        return None
    kept = _temporary_beside(target)
    kept.unlink()
    try:
        os.link(target, kept)
    except OSError:
        try:
            shutil.copy2(target, kept)
        except BaseException:
            kept.unlink(missing_ok=True)
            raise
    return kept


def _put_back(target: Path, kept: Optional[Path]) -> None:
    """Undo the placing (or the removal) of ``target``: its previous file back, or no file when it had none."""
    try:
        if kept is None:
            target.unlink(missing_ok=True)
        else:
            os.replace(kept, target)
    except OSError as error:  # the error being raised says what failed; this says what is left
        logger.error("Could not put back the previous %s (%s)%s", target, error.strerror or error,
                     "" if kept is None else f"; it is in {kept}")
