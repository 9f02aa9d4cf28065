"""The AHA's files as one set: ``bullseye.png``, ``aha.csv``, ``aha.json`` and ``aha_mesh.<ext>`` are read
together, so a run stopped while writing them (a Ctrl-C, a kill, a full disk) must leave the earlier
run's set whole, not a new picture beside an earlier table and mesh; the batch script's ``--aha-dir``
the same for its three. A run that ends writes the files it wrote before they were a set."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from vtk.util.numpy_support import vtk_to_numpy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

from cardioscar.aha import AhaOptions, analyse_mesh  # noqa: E402
from cardioscar.aha.analysis import _subtitle  # noqa: E402
from cardioscar.aha.bullseye import write_bullseye  # noqa: E402
from cardioscar.aha.table import rows_to_csv  # noqa: E402
from cardioscar.cli import main  # noqa: E402
from cardioscar.io.atomic import placed_files  # noqa: E402
from cardioscar.io.meshio import read_mesh, write_mesh  # noqa: E402
from test_bad_inputs_round26 import halves  # noqa: E402,F401 (the phantom whole, with its AHA points)

FOUR = ["aha.csv", "aha.json", "aha_mesh.vtu", "bullseye.png"]


def _point(values) -> str:
    return ",".join(f"{v:.3f}" for v in values)


def _contents(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` (temporaries included) and its bytes."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def _aha(mesh: Path, folder: Path, halves, *extra: str) -> int:
    return main(["aha", "--mesh", str(mesh), "--output-dir", str(folder), "--rv-point",
                 _point(halves["options"].rv_point), *extra])


@pytest.fixture
def earlier(halves, tmp_path, capsys) -> tuple[Path, dict[str, bytes]]:
    """A folder holding an earlier ``cardioscar aha`` run's four files (a ``.vtu`` input, scar at
    0.3): the folder and its bytes."""
    source = tmp_path / "earlier.vtu"
    write_mesh(read_mesh(halves["whole"]), source)
    folder = tmp_path / "aha"
    assert _aha(source, folder, halves, "--threshold", "0.3") == 0
    capsys.readouterr()
    assert sorted(path.name for path in folder.iterdir()) == FOUR
    return folder, _contents(folder)


def _refusing_rename_onto(monkeypatch, target: Path, error: BaseException) -> None:
    """A stand-in for a rename the system refuses (or a Ctrl-C that lands on it): ``os.replace`` raises
    ``error`` the first time a file is renamed onto ``target``, and renames as the real one otherwise
    (the putting back of the earlier files included)."""
    real_replace = os.replace
    raised = []

    def replace(source, destination):
        if Path(destination) == target and not raised:
            raised.append(destination)
            raise error
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("name, error, status, said", [
    ("aha.json", OSError(errno.EIO, "Input/output error"), 2,
     "cardioscar aha: error: Could not write {folder}/aha.json: Input/output error; check that the folder is writable "
     "and has space."),
    ("aha_mesh.vtk", KeyboardInterrupt(), 130, "cardioscar: interrupted (no output was written)"),
])
def test_a_run_stopped_while_its_set_is_placed_leaves_the_earlier_set_whole(halves, earlier, capsys, monkeypatch,
                                                                            name, error, status, said):
    """Each file was placed on its own, the picture first: a failure at the table's json (or a Ctrl-C
    at the mesh, the last) left the new ``bullseye.png`` (and ``aha.csv``) beside the earlier run's
    json and mesh, another threshold's, exit 2 (130). Now the earlier four stay byte for byte, its
    ``aha_mesh.vtu`` (which this run's ``.vtk`` would replace) included, and the run says it wrote
    nothing."""
    folder, before = earlier
    _refusing_rename_onto(monkeypatch, folder / name, error)
    assert _aha(halves["whole"], folder, halves) == status
    assert capsys.readouterr().err.strip().splitlines()[-1] == said.format(folder=folder)
    assert _contents(folder) == before


def test_a_folder_in_the_way_of_the_mesh_leaves_the_earlier_set_whole(halves, earlier, capsys):
    """A folder named ``aha_mesh.vtk`` (a real refusal, met at the mesh, the last file) was found after
    the picture and the table had replaced the earlier run's, which then stood beside its mesh. Now the
    set's every path is checked before a file is written."""
    folder, before = earlier
    (folder / "aha_mesh.vtk").mkdir()
    assert _aha(halves["whole"], folder, halves) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"cardioscar aha: error: output {folder}/aha_mesh.vtk is a folder; give a file name inside it")
    assert _contents(folder) == before


def test_a_run_writes_the_files_it_wrote_before_they_were_a_set(halves, earlier, capsys):
    """The set changes when the files are placed, not what they hold: the table and json as the rows
    and summary give them, the picture as :func:`write_bullseye` draws it alone, the mesh with its
    input's fields and ``aha_segment`` on nodes and cells; each counted once as placed (the "what a
    stopped run wrote" count), the mesh's log line naming it, and the earlier run's ``aha_mesh.vtu``
    removed with a warning."""
    folder, _ = earlier
    mesh = read_mesh(halves["whole"])
    placed = placed_files()
    assert _aha(halves["whole"], folder, halves) == 0
    assert placed_files() - placed == 4
    assert sorted(path.name for path in folder.iterdir()) == ["aha.csv", "aha.json", "aha_mesh.vtk", "bullseye.png"]
    said = capsys.readouterr().err.splitlines()
    fields = ", ".join([*mesh.point_field_names(), "aha_segment"])
    assert [line for line in said if line.startswith("Wrote ") and "aha_mesh" in line] == [
        f"Wrote {folder}/aha_mesh.vtk ({mesh.n_points} nodes, {mesh.dataset.GetNumberOfCells()} cells, frame "
        f"{mesh.space}, fields: {fields})"], said
    assert f"Removed aha_mesh.vtu from {folder}: an earlier run's segmented mesh, not this table's" in said, said

    given = [float(value) for value in _point(halves["options"].rv_point).split(",")]  # as the command line read it
    result = analyse_mesh(mesh, AhaOptions(rv_point=given))
    assert (folder / "aha.csv").read_text(encoding="utf-8") == rows_to_csv(result.rows)
    assert (folder / "aha.json").read_text(encoding="utf-8") == json.dumps(
        {**result.summary, "segments": result.rows}, indent=2)
    write_bullseye(result.rows, folder.parent / "alone.png", _subtitle(result))
    assert (folder / "bullseye.png").read_bytes() == (folder.parent / "alone.png").read_bytes()
    segmented = read_mesh(folder / "aha_mesh.vtk")
    assert segmented.space == mesh.space
    np.testing.assert_array_equal(segmented.point_array("aha_segment"), result.point_segments)
    np.testing.assert_array_equal(vtk_to_numpy(segmented.dataset.GetCellData().GetArray("aha_segment")),
                                  result.cell_segments)
    for name in mesh.point_field_names():
        np.testing.assert_array_equal(segmented.point_array(name), mesh.point_array(name))


def test_the_batch_scripts_aha_dir_is_one_set_too(halves, tmp_path, capsys, monkeypatch):
    """The batch script's ``--aha-dir``: the Logic placed ``bullseye.png``, then the script ``aha.csv`` and
    ``aha.json`` each on its own, so a failure at the json (a stand-in's refused rename) left this model's
    picture and csv beside an earlier run's json and ``aha_mesh.vtk`` (another threshold), exit 2. Now
    the earlier files stay byte for byte; run again, the three are placed with the picture the Logic
    drew (the model's name, field and threshold as its title) and the earlier mesh removed."""
    from test_batch_script import _load_script

    folder = tmp_path / "aha"
    assert _aha(halves["whole"], folder, halves, "--threshold", "0.3") == 0
    before = _contents(folder)
    out = halves["out"]
    argv = ["--volume", str(out / "phantom_lge.nii.gz"), "--mesh", str(out / "phantom_mesh.vtk"),
            "--output", str(tmp_path / "scar.vtk"), "--aha-dir", str(folder), "--rv-point",
            _point(halves["options"].rv_point), "--preset", "fast", "--max-epochs", "3", "--threads", "1",
            "--inference-mc-samples", "3", "--no-progress"]
    with monkeypatch.context() as patched:
        _refusing_rename_onto(patched, folder / "aha.json", OSError(errno.EIO, "Input/output error"))
        assert _load_script().run(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"cardioscar_batch: error: Could not write {folder}/aha.json: Input/output error; check that the folder is "
        "writable and has space.")
    assert _contents(folder) == before

    assert _load_script().run(argv) == 0, capsys.readouterr().err
    assert sorted(path.name for path in folder.iterdir()) == ["aha.csv", "aha.json", "bullseye.png"]
    rows = json.loads((folder / "aha.json").read_text(encoding="utf-8"))["segments"]
    write_bullseye(rows, tmp_path / "alone.png", "phantom_mesh: scar_probability >= 0.5")
    assert (folder / "bullseye.png").read_bytes() == (tmp_path / "alone.png").read_bytes()
