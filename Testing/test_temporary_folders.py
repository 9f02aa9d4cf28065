"""The temporary folders the Slicer modules make go when nothing needs them any more
(CardioScarLogic.scratch), and the scene keeps its data (the Attri-VAE module's: in
Testing/test_attrivae_slicer_logic.py, beside its reference run).

Real MRML (slicer-core), real worker processes and files; the system's temporary folder is
redirected to a fresh folder per test (``tempfile.tempdir``), so what is left there is exactly
what these runs left. The CardioScar panel runs on the Qt stand-in of
Testing/slicer_widget_harness.py (what it cannot prove is written there).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import slicer  # noqa: E402  (slicer-core)

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.background import BackgroundRun  # noqa: E402
import slicer_widget_harness as harness  # noqa: E402
from test_slicer_panel import _rv_insertions_ras, _with_scar_probability, case, panel, phantom  # noqa: E402,F401

NO_PYTHON = "/nonexistent/python3"  # a Python that cannot be started


@pytest.fixture()
def temporary(tmp_path, monkeypatch) -> Path:
    """The system's temporary folder for this test: empty at the start."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("panel", ["5.10"], indirect=True)
def test_a_cardioscar_worker_that_cannot_start_leaves_no_job_folder(panel, case, temporary):
    """The job is written, then starting the process fails (no such Python): the folder goes."""
    options = csl.ReconstructionOptions(preset="fast", max_epochs=2, half_thickness=case[1], slice_indices="0,2")
    with pytest.raises(FileNotFoundError):
        BackgroundRun.training(panel["widget"].logic, panel["volume"], panel["model"], options, python=NO_PYTHON)
    assert _left(temporary) == []


@pytest.mark.parametrize("panel", ["5.10"], indirect=True)
def test_the_aha_bullseye_folder_goes_on_failure_replacement_and_close(panel, phantom, temporary):
    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    _with_scar_probability(model, phantom)
    ui.ahaModelSelector.setCurrentNode(model)
    empty = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "nothing placed")
    ui.ahaRvMarkupsSelector.setCurrentNode(empty)
    ui.computeAhaButton.click()
    assert "'nothing placed' has 0 point" in ui.statusLabel.text
    assert _left(temporary) == [], "a failed click leaves no folder"
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "RV insertions")
    for point in _rv_insertions_ras(phantom):
        markups.AddControlPointWorld(point)
    ui.ahaRvMarkupsSelector.setCurrentNode(markups)
    shown = []
    for _ in range(2):
        harness.click_to_end(widget, ui.computeAhaButton)  # AHA runs in the worker; its job folder goes too
        shown.append(Path(ui.ahaBullseyeLabel.text.split(": ", 1)[1]))
        assert shown[-1].read_bytes()[:4] == b"\x89PNG" and _left(temporary) == [shown[-1].parent.name]
    assert shown[0] != shown[1] and not shown[0].parent.exists(), "the next bull's-eye replaces the last"
    ui.ahaRvMarkupsSelector.setCurrentNode(empty)
    ui.computeAhaButton.click()  # a failure keeps the last good bull's-eye for Save
    assert shown[1].is_file() and _left(temporary) == [shown[1].parent.name]
    widget.cleanup()
    assert _left(temporary) == [], "closing the panel removes the last one"
    slicer.app.connect("aboutToQuit()", widget._stopRun)  # the fixture cleans up once more


def test_the_widget_harness_removes_its_launcher_folder(temporary):
    """Each panel test installs the harness, whose PythonSlicer stand-in lives in a folder of its
    own; uninstall removes it (it once stayed: thousands of cardioscar-launcher-* in /tmp)."""
    context = csl.ensure_scene()  # a new headless scene has a folder of its own (removed at exit)
    before = _left(temporary)
    saved = harness.install(context.application_logic)
    try:
        added = sorted(set(_left(temporary)) - set(before))
        assert [name.startswith("cardioscar-launcher-") for name in added] == [True]
    finally:
        harness.uninstall(saved)
    assert _left(temporary) == before


def _scene_process(folder: Path, scenes: int, wait: bool) -> subprocess.Popen:
    """A Python process that makes ``scenes`` headless scenes with ``folder`` as its system
    temporary folder, prints how many entries the folder then holds, and (``wait``) waits for its
    stdin to close before it ends normally."""
    code = ("import os, sys, tempfile, CardioScarLogic as csl\n"
            f"contexts = [csl.create_scene() for _ in range({scenes})]\n"
            "print(len(os.listdir(tempfile.gettempdir())), flush=True)\n"
            + ("sys.stdin.read()\n" if wait else ""))
    env = {**os.environ, "TMPDIR": str(folder),
           "PYTHONPATH": os.pathsep.join([str(REPO / "CardioScarLib"), str(REPO / "CardioScar")])}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def test_headless_scenes_share_one_home_that_goes_with_the_process(tmp_path, monkeypatch):
    """Every headless scene of a process shares one private Colors home (``cardioscar-mrml-<pid>-*``),
    removed when the process ends; a process killed before its exit handlers leaves its one home,
    and the next process's first scene removes it, leaving a running process's home alone. Before,
    each scene made its own folder and a process that did not end normally (a killed batch, an
    xdist worker ended by ``os._exit``) left them all (~90 in /tmp after one test run)."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    running, killed = _scene_process(folder, 2, wait=True), _scene_process(folder, 3, wait=True)
    try:
        assert int(running.stdout.readline()) >= 1 and int(killed.stdout.readline()) >= 1
        homes = {int(name.split("-")[2]) for name in _left(folder)}
        assert homes == {running.pid, killed.pid}, "one home per process, whatever its number of scenes"
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert len(_left(folder)) == 2, "a killed process runs no exit handler"
        # this process's first scene from now on, as a later batch's would be
        monkeypatch.setattr(tempfile, "tempdir", str(folder))
        monkeypatch.setattr(csl.headless, "_HOME", None)
        csl.create_scene()
        assert {int(name.split("-")[2]) for name in _left(folder)} == {running.pid, os.getpid()}, \
            "the killed one's home went, the running one's stayed"
        shutil.rmtree(csl.headless._HOME)
    finally:
        for process in (running, killed):
            if process.poll() is None:
                process.communicate(timeout=60)  # closing stdin ends it normally
    assert running.returncode == 0 and _left(folder) == []

