"""Atomic writing: a failure mid-write leaves the previous file intact and no temporary behind."""

from __future__ import annotations

import os

import pytest

from cardioscar.io.atomic import atomic_write


def test_success_replaces_file_with_normal_permissions(tmp_path):
    target = tmp_path / "out" / "model.pth"
    with atomic_write(target) as tmp:
        assert tmp.name.endswith(".pth") and tmp.parent == target.parent
        tmp.write_text("new")
    assert target.read_text(encoding="utf-8") == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(target.parent) == ["model.pth"]


def test_failure_keeps_previous_file(tmp_path):
    target = tmp_path / "result.vtk"
    target.write_text("previous good result")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text(encoding="utf-8") == "previous good result"
    assert os.listdir(tmp_path) == ["result.vtk"]


def test_an_operating_system_error_names_the_target_not_the_temporary_file(tmp_path):
    """A full disk (ENOSPC) while writing: one line naming the file the user asked for, the
    previous file intact, no temporary left."""
    import errno

    from cardioscar.errors import CardioScarError

    target = tmp_path / "result.vtk"
    target.write_text("previous good result")
    with pytest.raises(CardioScarError) as info:
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
    message = str(info.value)
    assert str(target) in message and "No space left on device" in message and ".part" not in message
    assert target.read_text(encoding="utf-8") == "previous good result"
    assert os.listdir(tmp_path) == ["result.vtk"]
    with pytest.raises(CardioScarError, match="No output file name given"):
        with atomic_write(""):
            pass
