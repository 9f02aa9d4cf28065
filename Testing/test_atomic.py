"""Atomic writing: a failure mid-write leaves the previous file intact and no temporary behind."""

from __future__ import annotations

import os

import pytest

from cardioscar.io.atomic import atomic_write
from conftest import fail_renames_onto


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


def _previous_set(folder, names=("heart.pts", "heart.elem", "heart.json")) -> dict:
    for name in names:
        (folder / name).write_text(f"previous {name}")
    return {name: f"previous {name}" for name in names}


def _contents(folder) -> dict:
    return {path.name: path.read_text(encoding="utf-8") for path in folder.iterdir() if path.is_file()}


def test_a_set_that_fails_on_its_second_file_changes_none_of_them(tmp_path):
    """A full disk while the second file of a set is written: every previous file stays, none new."""
    import errno

    from cardioscar.errors import CardioScarError
    from cardioscar.io.atomic import atomic_write_set

    before = _previous_set(tmp_path)
    targets = [tmp_path / name for name in before]
    with pytest.raises(CardioScarError, match="No space left on device"):
        with atomic_write_set(targets) as temporaries:
            temporaries[0].write_text("new points")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(temporaries[1]))
    assert _contents(tmp_path) == before


def test_a_set_whose_second_rename_fails_puts_the_first_file_back(tmp_path, monkeypatch):
    """The renames themselves: the first file is placed, the second's rename fails (injected: a
    real one fails only on a broken file system), and the first file's previous version returns."""
    from cardioscar.errors import CardioScarError
    from cardioscar.io.atomic import atomic_write_set

    before = _previous_set(tmp_path)
    fail_renames_onto(monkeypatch, "heart.elem")
    with pytest.raises(CardioScarError) as info:
        with atomic_write_set([tmp_path / name for name in before]) as temporaries:
            for tmp in temporaries:
                tmp.write_text("new")
    assert str(tmp_path / "heart.elem") in str(info.value) and "Input/output error" in str(info.value)
    assert _contents(tmp_path) == before  # heart.pts its old self again, and no temporary or second name left
    # a set into a folder with no previous files: the first new file goes again, and nothing is left
    empty = tmp_path / "fresh"
    empty.mkdir()
    with pytest.raises(CardioScarError):
        with atomic_write_set([empty / name for name in before]) as temporaries:
            for tmp in temporaries:
                tmp.write_text("new")
    assert list(empty.iterdir()) == []
    monkeypatch.undo()
    with atomic_write_set([tmp_path / name for name in before]) as temporaries:  # and a set that succeeds
        for tmp, name in zip(temporaries, before):
            tmp.write_text(f"new {name}")
    assert _contents(tmp_path) == {name: f"new {name}" for name in before}


def test_a_second_name_whose_copy_fails_leaves_no_partial_file(tmp_path, monkeypatch):
    """Where the file system has no hard links the previous file's second name is a copy; a copy that
    fails (a full disk) refuses the set without leaving the half copy beside the user's files."""
    import errno
    import shutil

    from cardioscar.errors import CardioScarError
    from cardioscar.io import atomic
    from cardioscar.io.atomic import atomic_write_set

    before = _previous_set(tmp_path)

    def no_hard_links(source, target, **kwargs):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    def full_disk(source, target, **kwargs):
        shutil.copyfile(source, target, **kwargs)  # written, then the disk fills before the metadata
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "link", no_hard_links)
    monkeypatch.setattr(atomic.shutil, "copy2", full_disk)
    with pytest.raises(CardioScarError, match="No space left on device"):
        with atomic_write_set([tmp_path / name for name in before]) as temporaries:
            for tmp in temporaries:
                tmp.write_text("new")
    assert sorted(os.listdir(tmp_path)) == sorted(before) and _contents(tmp_path) == before


def test_a_previous_file_the_new_set_has_not_goes_with_the_placing_or_stays(tmp_path, monkeypatch):
    """``remove``: an earlier set's file that the new set does not write (an export's ``.lon``) is
    removed once the new set is placed; interrupted while placing (Ctrl-C on the last rename), the
    previous set returns whole, the removed file included, with no temporary left."""
    from cardioscar.io import atomic
    from cardioscar.io.atomic import atomic_write_set

    before = _previous_set(tmp_path, ("heart.pts", "heart.elem", "heart.lon", "heart.json"))
    targets = [tmp_path / name for name in ("heart.pts", "heart.elem", "heart.json")]
    real_replace = os.replace

    def interrupted(source, target):
        if str(target).endswith("heart.json"):
            raise KeyboardInterrupt
        real_replace(source, target)

    with monkeypatch.context() as patched:
        patched.setattr(atomic.os, "replace", interrupted)
        with pytest.raises(KeyboardInterrupt):
            with atomic_write_set(targets, remove=[tmp_path / "heart.lon"]) as temporaries:
                for tmp in temporaries:
                    tmp.write_text("new")
    assert _contents(tmp_path) == before
    with atomic_write_set(targets, remove=[tmp_path / "heart.lon", tmp_path / "absent.lon"]) as temporaries:
        for tmp in temporaries:
            tmp.write_text("new")
    assert _contents(tmp_path) == {target.name: "new" for target in targets}
