"""The suite runs most commands through ``cardioscar``'s entry function in its own process
(:func:`conftest.run_cli_in_process`); a user runs each in a new interpreter. These check that the
two say and write the same, and that an earlier in-process command leaves nothing behind that
changes a later one: a note or warning said once per process (a second command in the process,
Slicer's console or a script calling ``main`` per patient, never said it), a ``--verbose`` level
that sticks, the exit status, stdout and the files written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from conftest import run_cli, run_cli_in_process

SFORM_NOTE = "Image Case_P001.nii.gz: its NIfTI sform gives 1 x 1 x 1 mm voxels"


def _said(stderr: str, folder: Path) -> list[str]:
    """The command's log lines with its output folder named OUT (each run writes into its own)."""
    return [line.replace(str(folder), "OUT") for line in stderr.splitlines()]


def _prepare(labels: Path, mesh: Path, folder: Path) -> list[str]:
    folder.mkdir()
    return ["prepare", "--mesh", str(mesh), "--image", str(labels), "--scar-labels", "3,4", "--myocardium-labels",
            "2,3,4", "--output", str(folder / "data.npz")]


def test_prepare_in_process_says_and_writes_what_a_new_interpreter_does(shared_data, tmp_path):
    """EMIDEC P001's label map on a 4 mm mesh: run in a new interpreter, then three times in this
    process (the first with --verbose). Each in-process run says the same lines as the new
    interpreter (the file's sform note was said by the first only: it was remembered per process),
    the --verbose run says them and more, and every run writes the same training data."""
    labels = shared_data / "emidec" / "Case_P001" / "Contours" / "Case_P001.nii.gz"
    mesh = tmp_path / "heart.vtk"
    made = run_cli_in_process("mesh-from-labels", "--labels", labels, "--spacing", "4", "--output", mesh)
    assert made.returncode == 0 and SFORM_NOTE in made.stderr, made.stderr

    alone = run_cli(*_prepare(labels, mesh, tmp_path / "subprocess"))
    assert alone.returncode == 0, alone.stderr
    expected = _said(alone.stderr, tmp_path / "subprocess")
    assert [line for line in expected if line.startswith(SFORM_NOTE)], expected
    with np.load(tmp_path / "subprocess" / "data.npz") as data:
        written = {name: data[name] for name in data.files}

    verbose = run_cli_in_process("--verbose", *_prepare(labels, mesh, tmp_path / "verbose"))
    assert verbose.returncode == 0 and verbose.stdout == alone.stdout == ""
    assert _said(verbose.stderr, tmp_path / "verbose") == expected  # prepare has nothing more to say
    for run in ("first", "second"):
        done = run_cli_in_process(*_prepare(labels, mesh, tmp_path / run))
        assert (done.returncode, done.stdout) == (0, ""), done.stderr
        assert _said(done.stderr, tmp_path / run) == expected, run
        with np.load(tmp_path / run / "data.npz") as data:
            assert sorted(data.files) == sorted(written)
            for name in data.files:
                np.testing.assert_array_equal(data[name], written[name], err_msg=f"{run}: {name}")
    assert sorted(p.name for p in (tmp_path / "second").iterdir()) == ["data.npz"]  # no temporary left


def test_a_verbose_command_in_process_leaves_the_next_at_the_default_level(tmp_path):
    """train --verbose says each attempt's best loss (DEBUG); a plain train after it in the same
    process does not, and its one model line is the same."""
    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom

    phantom = make_phantom(PhantomConfig(target_nodes=1000, seed=3))
    paths = write_phantom(phantom, tmp_path)
    assert run_cli_in_process("prepare", "--mesh", paths["mesh"], "--image", paths["image"], "--output",
                              tmp_path / "data.npz").returncode == 0
    train = ("train", "--training-data", tmp_path / "data.npz", "--preset", "fast", "--max-epochs", "2",
             "--no-progress", "--seed", "1", "--output")
    loud = run_cli_in_process("--verbose", *train, tmp_path / "loud.pth")
    plain = run_cli_in_process(*train, tmp_path / "plain.pth")
    assert loud.returncode == plain.returncode == 0, plain.stderr
    best = [line for line in loud.stderr.splitlines() if line.startswith("best loss ")]
    assert best and "longest rise above the best" in best[0], loud.stderr
    assert not [line for line in plain.stderr.splitlines() if line.startswith("best loss ")], plain.stderr
    model_lines = [[re.sub(r"^Wrote model \S+: (.*) \(\d+\.\d s, ", r"\1 (", line) for line in run.stderr.splitlines()
                    if line.startswith("Wrote model")] for run in (loud, plain)]
    assert len(model_lines[1]) == 1 and model_lines[0] == model_lines[1], model_lines


def test_an_in_process_refusal_matches_a_new_interpreter(tmp_path):
    """A refused command (its output is its input): the same status, the one error line, no output,
    and nothing written, in both runs."""
    mesh = tmp_path / "in.vtk"
    mesh.write_text("# vtk DataFile Version 3.0\n")
    args = ("prepare", "--mesh", mesh, "--image", mesh, "--output", tmp_path / "in.npz", "--grid-layers", mesh,
            "--slice-indices", "1")
    alone, inside = run_cli(*args), run_cli_in_process(*args)
    assert (inside.returncode, inside.stdout, inside.stderr) == (alone.returncode, alone.stdout, alone.stderr)
    assert alone.returncode == 2 and re.fullmatch(r"cardioscar prepare: error: .+\n", alone.stderr), alone.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.vtk"]
