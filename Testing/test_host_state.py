"""The library runs in other programs' processes (3D Slicer, Jupyter, Dask worker threads): it must
leave their process-wide state alone. Drawing a picture switched the user's matplotlib backend
(``matplotlib.use("Agg")``), and reading the umask set it to 0 for an instant, so a file another
thread created then was world-writable."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cardioscar.io import atomic
from cardioscar.io.atomic import atomic_write


def _draw_every_picture(folder) -> None:
    """Each of the library's PNG writers once, on small real inputs."""
    from cardioscar.aha.bullseye import write_bullseye
    from cardioscar.attrivae.explain import write_explain_png, write_traversal_png
    from cardioscar.attrivae.predict import Prediction
    from cardioscar.attrivae.preprocess import LabelConvention
    from cardioscar.attrivae.synthetic import ring_labels
    from cardioscar.cohort.summary import write_bullseye_sheet, write_picture
    from cardioscar.io.imageio import read_image
    from cardioscar.io.meshio import read_mesh
    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom
    from cardioscar.phantoms.report import render_report_png
    from cardioscar.prepare.slices import slices_from_image
    from test_attrivae import _prepared_from_files

    rows = [{"segment": s, "scar_pct": 5.0 * s, "covered": True} for s in range(1, 18)]
    write_bullseye(rows, folder / "bullseye.png")
    cohort = [{"id": "P1", "status": "done", "scar_percent": 12.0,
               "aha": {"scar_pct_by_segment": {str(s): 5.0 * s for s in range(1, 18)}}}]
    write_picture(folder, cohort)
    write_bullseye_sheet(folder, cohort)
    labels = ring_labels(14.0, 7.0, 0.5)
    prepared = _prepared_from_files(folder, 100.0 + 500.0 * (labels == 1), labels, LabelConvention())
    write_explain_png(folder / "explain.png", Prediction({"mi_probability": 0.9}, prepared, None, None, None),
                      {"infarct_size": np.where(prepared.lv, 0.8, 0.0)})
    write_traversal_png(folder / "traversal.png", "lv_volume_ml", np.zeros((3, 4, 4, 4)), np.arange(3.0), "ml")
    phantom = make_phantom(PhantomConfig(target_nodes=1000))
    files = write_phantom(phantom, folder / "phantom")
    mesh = read_mesh(files["mesh"])
    truth = mesh.point_array("scar_truth")
    render_report_png(folder / "report.png", mesh=mesh.dataset, truth=truth, probability=truth,
                      uncertainty=np.zeros(len(truth)), slices=slices_from_image(read_image(files["image"])),
                      history={"train_loss": [1.0, 0.5]}, report={})


def test_pictures_leave_the_plotting_backend_and_pyplot_alone(tmp_path):
    """With another backend chosen (as Slicer's or a notebook's is), every PNG writer leaves it and
    leaves no figure open in pyplot (memory a long session never got back)."""
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        open_before = plt.get_fignums()
        _draw_every_picture(tmp_path)
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == open_before
    finally:
        matplotlib.use(before)
    assert {"bullseye.png", "cohort_summary.png", "cohort_bullseyes.png", "explain.png", "traversal.png",
            "report.png"} <= {path.name for path in tmp_path.iterdir()}


@pytest.fixture
def umask_027():
    """The process umask set to 027 (group: read, others: nothing) for the test."""
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_written_files_follow_the_umask(tmp_path, umask_027):
    with atomic_write(tmp_path / "scar.vtk") as tmp:
        tmp.write_text("mesh")
    assert (tmp_path / "scar.vtk").stat().st_mode & 0o777 == 0o640
    assert atomic.process_umask() == 0o027


@pytest.fixture
def umask_calls(monkeypatch) -> list[int]:
    """Every value ``os.umask`` is called with from now on (the real call still happens)."""
    calls: list[int] = []
    real = os.umask

    def recorded(mask: int) -> int:
        calls.append(mask)
        return real(mask)

    monkeypatch.setattr(os, "umask", recorded)
    return calls


def test_the_umask_is_never_0_while_the_writers_read_it(tmp_path, umask_calls):
    """The atomic writer and a cohort patient's folder read the umask to give their files the
    permissions a plain open() would; they set it to 0 to read it, for every thread of the process."""
    from cardioscar.cohort.manifest import PatientSpec
    from cardioscar.cohort.tasks import run_patient

    with atomic_write(tmp_path / "model.pth") as tmp:
        tmp.write_text("weights")
    record = run_patient(PatientSpec("P1", 1, tmp_path / "absent.vtk", (tmp_path / "absent.nii.gz",)),
                         str(tmp_path / "cohort"), "digest")
    assert record["status"] == "failed"
    assert 0 not in umask_calls
    if atomic._umask_from_proc() is not None:  # Linux: read from /proc, never set
        assert umask_calls == []


def test_without_proc_the_umask_read_at_import_is_used_and_never_set_to_0(monkeypatch, umask_calls):
    """macOS and Windows have no /proc: the umask read when the module was imported answers, and
    reading it there sets 0o077 for the instant (a file made then is private, not world-writable)."""
    monkeypatch.setattr(atomic, "_umask_from_proc", lambda: None)
    assert atomic.process_umask() == atomic._UMASK_AT_IMPORT
    assert umask_calls == []
    umask = atomic._umask_by_setting()
    assert umask_calls == [0o077, umask]
