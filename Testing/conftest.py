"""Shared fixtures: repository paths, the real data beside the checkout, and a small phantom case.

The phantom is generated once per test session (it is deterministic for a seed) so that the CLI,
Slicer and accuracy tests all run on the same real files without paying for it repeatedly.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from xdist.scheduler import LoadFileScheduling

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
BIVME = SHARED_DATA / "bivme_patient1"

# One torch thread: the tests' networks are small, and two threads on a 2-core machine that is
# doing anything else spin against each other (measured here: 10x slower epochs under load).
# Set before any test module imports torch; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

#: The test files that take longest, longest first (CPU seconds of a serial run on the 2-core AMD
#: EPYC, 2026-12-07 morning: test_accuracy with test_demo 90, test_slicer_panel_walk 55, ...
#: test_slicer_panel_state 25; the files made cheaper that afternoon at the morning's figure times
#: their paired after/before ratio on the loaded machine, Testing/benchmarks/suite_file_cpu.py:
#: test_cohort 71 -> 57 (68 in an earlier paired run), test_cli 74 -> 52, test_batch_script 64 -> 50,
#: test_attrivae_slicer_logic 52 -> 44, test_documented_examples 42 -> 35, test_aha 35 -> 28,
#: test_real_geometry 49 -> 16, off the list). The workers start them first: with whole files per
#: worker, a long file started last runs alone while the other worker idles.
LONG_FILES = (
    "test_accuracy.py", "test_demo.py", "test_cohort.py", "test_slicer_panel_walk.py", "test_cli.py",
    "test_batch_script.py", "test_slicer_panel_tissue.py", "test_slicer_panel.py", "test_attrivae_slicer_logic.py",
    "test_accuracy_segmented.py", "test_documented_examples.py", "test_aha.py", "test_attrivae_cli.py",
    "test_slicer_panel_state.py",
)

#: Files that read one run kept in a module (``test_demo.demo_run``, about 80 CPU seconds): one
#: worker runs them both, so the run is paid once; on two workers it was paid twice.
SHARED_RUN = {"test_accuracy.py": "test_demo.py"}


class FilesSharingARun(LoadFileScheduling):
    """``--dist loadfile`` (each file whole on one worker), with the files of :data:`SHARED_RUN` as
    one unit, handed out in collection order (see ``pytest_collection_modifyitems``)."""

    def _split_scope(self, nodeid: str) -> str:
        file = super()._split_scope(nodeid)
        folder, _, name = file.rpartition("/")
        return f"{folder}/{SHARED_RUN[name]}" if name in SHARED_RUN else file


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile" or not hasattr(LoadFileScheduling, "_split_scope"):
        return None  # another mode, or an xdist whose file scheduling this class no longer fits: xdist's own
    # xdist otherwise hands out the files with the most tests first, which put the long files with
    # few tests (test_accuracy's 5) last
    config.option.loadscopereorder = False
    return FilesSharingARun(config, log)


def pytest_collection_modifyitems(config, items):
    """On an xdist worker, the :data:`LONG_FILES` first, in that order (a stable sort: the tests of
    a file keep their order; a serial run keeps pytest's own order)."""
    if not hasattr(config, "workerinput"):
        return
    missing = [name for name in LONG_FILES if not (Path(__file__).parent / name).is_file()]
    if missing:
        raise pytest.UsageError(f"conftest.py LONG_FILES names {missing}, not in Testing/: update the list")
    rank = {name: index for index, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(f"The shared data folder {SHARED_DATA} is missing; tests read real data from there.")
    return SHARED_DATA


class _WarningRecords(logging.Handler):
    """The ``cardioscar`` logger's warnings, whatever another test did to its propagation (caplog
    sees only what propagates to the root logger)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture()
def warnings_of_cardioscar():
    """The warnings the ``cardioscar`` loggers emit during the test, as messages."""
    handler, logger = _WarningRecords(), logging.getLogger("cardioscar")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


@pytest.fixture(scope="session")
def small_phantom(tmp_path_factory):
    """A small oblique LV phantom (mesh, truth, LGE stack) written to disk, with its object."""
    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom

    phantom = make_phantom(PhantomConfig(target_nodes=8000, seed=3))
    paths = write_phantom(phantom, tmp_path_factory.mktemp("phantom"))
    return phantom, paths


@pytest.fixture(scope="session")
def segmented(tmp_path_factory):
    """A small segmented-family phantom (seed 2, about 4,000 nodes) on disk: an LGE-like fraction map,
    its myocardium mask and its EMIDEC-style label map (0-3). Shared: the tests only read it."""
    from cardioscar.phantoms.phantom import make_phantom, write_phantom
    from cardioscar.phantoms.phantom_segmented import SegmentedConfig

    return write_phantom(make_phantom(SegmentedConfig(seed=2, target_nodes=4000)), tmp_path_factory.mktemp("segmented"))


def scar_free_label_map(label_map: Path, folder: Path) -> Path:
    """``label_map`` with its scar drawn as healthy myocardium (3 -> 2): an expert's map of a patient
    without infarct (as EMIDEC's normal cases, labels 0-2), written into ``folder``."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(label_map))
    array = sitk.GetArrayFromImage(image)
    array[array == 3] = 2
    healthy = sitk.GetImageFromArray(array)
    healthy.CopyInformation(image)
    path = folder / "no_scar_labels.nii.gz"
    sitk.WriteImage(healthy, str(path))
    return path


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real ``cardioscar`` command line in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "cardioscar", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli_in_process(*args: str) -> subprocess.CompletedProcess:
    """The ``cardioscar`` command line run through its entry function in this process, reported as
    :func:`run_cli` reports a subprocess (exit status, stdout, stderr): the same parser, handlers and
    one-line errors without a new interpreter's imports of torch and VTK (2-3 CPU s a call). An
    argparse refusal's exit is its status; an unexpected exception propagates and fails the test,
    as a traceback would. Output of C++ code (VTK's, ITK's own messages) is not caught: a test of
    what such a library prints runs :func:`run_cli`."""
    from cardioscar.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exit_request:
            status = exit_request.code
    return subprocess.CompletedProcess(["cardioscar", *argv], status, out.getvalue(), err.getvalue())


def assert_refused_in_one_line(args: list, fragment: str, capsys, out: Path) -> None:
    """``cardioscar ARGS`` fails with exactly one error line holding ``fragment`` and writes no
    ``out*`` file into ``out`` (the bad-input suites' contract)."""
    from cardioscar.cli import main

    capsys.readouterr()
    assert main([str(a) for a in args]) != 0
    stderr = capsys.readouterr().err
    errors = error_lines(stderr)
    assert len(errors) == 1 and fragment in errors[0], stderr[-2000:]
    assert [p.name for p in out.iterdir() if p.name.startswith("out")] == []


def trained_small_phantom(out: Path, max_epochs: int):
    """The bad-input suites' common start: a 1,500-node phantom written to ``out``, prepared and
    trained for a few fast-preset epochs (``out/data.npz``, ``out/model.pth``), by the real CLI."""
    from cardioscar.cli import main
    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom

    phantom = make_phantom(PhantomConfig(target_nodes=1500, seed=3))
    paths = write_phantom(phantom, out)
    assert main(["prepare", "--mesh", str(paths["mesh"]), "--image", str(paths["image"]),
                 "--slice-thickness-padding", str(phantom.slice_half_thickness_mm), "--output",
                 str(out / "data.npz")]) == 0
    assert main(["train", "--training-data", str(out / "data.npz"), "--output", str(out / "model.pth"),
                 "--preset", "fast", "--max-epochs", str(max_epochs), "--seed", "1"]) == 0
    return phantom, paths


def fail_renames_onto(monkeypatch, suffix: str) -> None:
    """Make every rename onto a path ending in ``suffix`` fail with an I/O error, as only a broken
    file system would (cardioscar.io.atomic's placing of a file set); ``monkeypatch.undo()`` heals it."""
    from cardioscar.io import atomic

    real_replace = os.replace

    def replace(source, target):
        if str(target).endswith(suffix):
            raise OSError(5, "Input/output error")
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", replace)


def error_lines(stderr: str) -> list[str]:
    """The lines of a command's stderr that report an error or a traceback.

    A refusal must produce exactly one of them (the one-line error the user reads); the bad-input
    suites check that count and the fragment it holds.
    """
    return [line for line in stderr.splitlines() if "error:" in line or "Traceback" in line]


def bivme_dicom(series: str) -> Path:
    """The one DICOM file of a biv-me series folder (``Se1`` ... ``Se11``)."""
    (path,) = (BIVME / "dicom_ED" / series).iterdir()
    return path


def bivme_lv_mesh(path: Path, mirror_normal=None):
    """The real biv-me LV endocardium (in its scanner's LPS frame) written to ``path`` with a
    scar-free ``scar_probability``, and its RV insertions (the ends of the fitted RV's contact arc,
    named anterior and inferior by the anatomical direction, on the LV's nodes): ``(path, anterior,
    inferior)``. With ``mirror_normal`` the heart and points are mirrored across the plane through
    the LV's centre with that normal: an image flipped along that axis with its header kept."""
    import numpy as np
    import vtk
    from scipy.spatial import cKDTree
    from vtk.util.numpy_support import numpy_to_vtk

    from cardioscar.aha.insertion import insertions_from_contacts
    from cardioscar.aha.segments import axis_from_shape
    from cardioscar.io.meshio import Mesh, read_mesh, write_mesh

    fitted = BIVME / "fitted_model_frame000"
    mesh = read_mesh(fitted / "patient1_LV_ENDOCARDIAL_000.vtk")
    lv, rv = mesh.points_lps(), read_mesh(fitted / "patient1_RV_ENDOCARDIAL_000.vtk").points_lps()
    tree = cKDTree(lv)
    found = insertions_from_contacts(rv[tree.query(rv)[0] < 12.0], axis_from_shape(lv, np.ones(len(lv))))
    ends = lv[tree.query(np.array([found.anterior, found.inferior]))[1]]
    if mirror_normal is not None:
        normal, centre = np.asarray(mirror_normal, dtype=float) / np.linalg.norm(mirror_normal), lv.mean(axis=0)
        lv, ends = (p - 2.0 * np.outer((p - centre) @ normal, normal) for p in (lv, ends))
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(lv), deep=True))
    mesh.dataset.SetPoints(points)
    write_mesh(Mesh(dataset=mesh.dataset, space="LPS"), path, {"scar_probability": np.zeros(len(lv))})
    return path, ends[0], ends[1]


def bivme_dicom_with_thickness(series: str, thickness_mm: str, folder: Path, instance_uid: str | None = None) -> Path:
    """The real biv-me file of ``series`` rewritten into ``folder`` with another recorded slice
    thickness (DICOM 0018,0050; "" for none), and with ``instance_uid`` as its SOP instance UID
    when given (a file of its own beside the original, e.g. for a DICOM database)."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(bivme_dicom(series)))
    folder.mkdir(parents=True, exist_ok=True)
    image.SetMetaData("0018|0050", thickness_mm)
    if instance_uid is not None:
        image.SetMetaData("0008|0018", instance_uid)
    write_dicom_series([image], [series], folder, image.GetMetaData("0020|000e"))
    return folder / f"{series}.dcm"


def write_dicom_series(images, names, folder: Path, series_uid: str) -> None:
    """Write ``images`` (SimpleITK images carrying their DICOM metadata) into ``folder`` as one
    series, as a scanner exports a stack: a shared series UID, each file's own position,
    orientation and pixels unchanged, one file per image named ``<name>.dcm``."""
    import SimpleITK as sitk

    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for image, name in zip(images, names):
        image.SetMetaData("0020|000e", series_uid)
        writer.SetFileName(str(folder / f"{name}.dcm"))
        writer.Execute(image)


#: EMIDEC cases of the tiny Attri-VAE model the Slicer module's tests use (one MI, two normal).
ATTRIVAE_CASES = ("Case_P003", "Case_N020", "Case_N023")


@pytest.fixture(scope="session")
def attrivae_model(tmp_path_factory, shared_data) -> Path:
    """A tiny Attri-VAE checkpoint (16^3 cube, 2 epochs, no cross-validation) trained once per
    session by the real ``cardioscar attrivae train`` (its entry function in this process; the
    command's own run is test_attrivae_cli's) on three EMIDEC cases (about 7 s): enough to exercise
    every file and node the Slicer module handles, not a model to judge."""
    folder = tmp_path_factory.mktemp("attrivae")
    data = folder / "data"
    data.mkdir()
    for case in ATTRIVAE_CASES:
        (data / case).symlink_to(shared_data / "emidec" / case)
    model = folder / "model.pth"
    completed = run_cli_in_process("attrivae", "train", "--data", data, "--clinical",
                                   shared_data / "emidec" / "clinical.csv", "--output", model, "--cube", "16",
                                   "--epochs", "2", "--folds", "0", "--device", "cpu")
    assert completed.returncode == 0, completed.stderr[-2000:]
    return model
