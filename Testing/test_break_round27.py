"""Break-it review of the sessions after 563831d (the batch script's AHA checks before training, the
AHA's biventricular refusal whatever gives the axis, pictures on their own canvas, the umask read,
each face's words): the defects it found, each through the face a user meets it on.
`Documentation/bad-input.md` has the rows."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from cardioscar.aha import AhaOptions, analyse_mesh  # noqa: E402
from cardioscar.cli import main  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.io.meshio import read_mesh, write_mesh  # noqa: E402
from test_bad_inputs_round26 import halves  # noqa: E402,F401 (the phantom whole, with its AHA points)
from test_slicer_aha import _markups  # noqa: E402


def _point(values) -> str:
    return ",".join(f"{v:.3f}" for v in values)


def test_an_lv_mask_that_is_not_one_label_per_node_is_refused(halves, tmp_path, capsys):
    """``aha --lv-mask`` read a field of several components by its first (a fibre field's x, a 0/1
    pair whose first column is 1: the whole mesh segmented as the LV), counted a NaN as an LV node
    (NaN is not 0) and took a probability as the mask (non-zero almost everywhere), exit 0 with a
    table of the wrong nodes. Each is now one line naming the field and what a mask holds, on the
    command line (nothing written) and in the Logic's words (``inputs.measure.lv_mask_field``)."""
    mesh = read_mesh(halves["whole"])
    n = mesh.n_points
    with_nan = np.ones(n)
    with_nan[: n // 3] = np.nan
    fields = {"pair": np.column_stack([np.ones(n), np.zeros(n)]), "with_nan": with_nan,
              "probability": mesh.point_array("scar_probability")}
    write_mesh(mesh, tmp_path / "fields.vtk", fields)
    options = halves["options"]
    said = {}
    for name in fields:
        capsys.readouterr()
        out = tmp_path / f"aha_{name}"
        code = main(["aha", "--mesh", str(tmp_path / "fields.vtk"), "--output-dir", str(out),
                     "--rv-point", _point(options.rv_point), "--lv-mask", name])
        errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert code == 2 and len(errors) == 1 and not out.exists(), (name, code, errors)
        said[name] = errors[0]
    assert said["pair"].endswith("fields.vtk: --lv-mask 'pair' has 2 components per node; give a point field of one "
                                 "value per node that marks the LV (0/1, or a region label with --lv-value)"), said
    for name, example in (("with_nan", "nan"), ("probability", "")):
        assert f"fields.vtk: --lv-mask '{name}' holds values that are not labels (e.g. {example}" in said[name], said
        assert said[name].endswith("give the field that marks the LV nodes (0/1, or a region label with --lv-value), "
                                   "not a probability or a field interpolated between labels"), said

    context = csl.create_scene()
    node = csl.load_model(context.scene, tmp_path / "fields.vtk", name="heart")
    inputs = csl.AhaInputs(rv_markups=_markups(context.scene, [options.rv_point]),
                           measure=AhaOptions(lv_mask_field="pair"))
    with pytest.raises(CardioScarError) as refused:
        csl.CardioScarLogic.check_aha_inputs(node, inputs)
    assert str(refused.value).startswith("The model 'heart': inputs.measure.lv_mask_field 'pair' has 2 components"), \
        refused.value
    assert "--" not in str(refused.value), refused.value

    whole = read_mesh(tmp_path / "fields.vtk")  # a mask of whole numbers in a float field still reads
    write_mesh(whole, tmp_path / "masked.vtk", {"lv": np.ones(n)})
    masked = type(options)(**{**options.__dict__, "lv_mask_field": "lv"})
    assert analyse_mesh(read_mesh(tmp_path / "masked.vtk"), masked).summary["lv_nodes"] == n


def test_the_batch_script_stopped_by_ctrl_c_says_so_in_one_line(halves, tmp_path):
    """Ctrl-C during the batch script's training (with ``--aha-dir``) ended in a traceback through the
    training's code and Python's own exit (the shell's 130 by a signal), which read as a crash of
    the script; ``cardioscar`` says it in one line. Now ``cardioscar``'s line and exit 130, saying
    what was written (:func:`cardioscar.cli.written_since`): here nothing, the earlier ``--output`` as
    it was and no AHA folder."""
    import os
    import signal
    import subprocess

    from test_batch_script import SCRIPT

    earlier = tmp_path / "earlier.vtk"
    earlier.write_bytes(halves["whole"].read_bytes())
    out = halves["out"]
    options = halves["options"]
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "OMP_NUM_THREADS": "1"}
    run = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--volume", str(out / "phantom_lge.nii.gz"), "--mesh", str(out / "phantom_mesh.vtk"),
         "--output", str(earlier), "--aha-dir", str(tmp_path / "aha"), "--rv-point", _point(options.rv_point),
         "--preset", "fast", "--max-epochs", "100000", "--threads", "1", "--verbose"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's foreground job
    for line in run.stderr:  # until the training runs
        if line.startswith("epoch "):
            break
    run.send_signal(signal.SIGINT)
    out_text, rest = run.communicate(timeout=120)
    said = [line for line in rest.splitlines() if not line.startswith("epoch ")]  # a last progress line or two
    assert run.returncode == 130 and said == [
        "cardioscar_batch: interrupted (no output was written)"], (run.returncode, rest)
    assert out_text == "" and earlier.read_bytes() == halves["whole"].read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["earlier.vtk"]


def test_the_batch_scripts_aha_dir_drops_an_earlier_aha_mesh(halves, tmp_path, capsys, caplog):
    """``cardioscar aha`` writes ``aha_mesh.vtk`` beside its table and removes an earlier run's when it
    writes none of that format; the batch script's ``--aha-dir`` (its segments go on ``--output``)
    left the earlier run's mesh beside its new table, so the folder's segmented mesh was another
    run's (another model, axis or field), exit 0. It is now removed with ``aha``'s warning."""
    from test_batch_script import _load_script

    options = halves["options"]
    folder = tmp_path / "aha"
    assert main(["aha", "--mesh", str(halves["whole"]), "--output-dir", str(folder),
                 "--rv-point", _point(options.rv_point)]) == 0
    assert (folder / "aha_mesh.vtk").is_file()
    capsys.readouterr()
    out = halves["out"]
    argv = ["--volume", str(out / "phantom_lge.nii.gz"), "--mesh", str(out / "phantom_mesh.vtk"),
            "--output", str(tmp_path / "scar.vtk"), "--aha-dir", str(folder), "--rv-point", _point(options.rv_point),
            "--preset", "fast", "--max-epochs", "3", "--threads", "1", "--inference-mc-samples", "3", "--no-progress"]
    assert _load_script().run(argv) == 0, capsys.readouterr().err
    assert sorted(path.name for path in folder.iterdir()) == ["aha.csv", "aha.json", "bullseye.png"]
    assert f"Removed aha_mesh.vtk from {folder}: an earlier run's segmented mesh, not this table's" in \
        [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    caplog.clear()  # the script's own --output named aha_mesh.vtk in the folder is its result, kept unsaid
    argv[argv.index("--output") + 1] = str(folder / "aha_mesh.vtk")
    assert _load_script().run(argv) == 0, capsys.readouterr().err
    assert (folder / "aha_mesh.vtk").is_file() and not any("Removed" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("extra, expected", [
    (["--summary", "{tmp}/o.vtk"], "--summary and --output would both write {tmp}/o.vtk: give each output its own path"),
    (["--summary", "{tmp}/heart.pts", "--export-opencarp", "{tmp}/heart"],
     "--export-opencarp and --summary would both write {tmp}/heart.pts: give each output its own path"),
    (["--summary", "{tmp}/mesh.vtk"], "--summary {tmp}/mesh.vtk is also an input: choose another file name"),
    (["--aha-dir", "{tmp}/o.vtk", "--rv-point", "{rv}"],
     "--aha-dir {tmp}/o.vtk is the file --output writes: give a folder of its own"),
    (["--summary", "{tmp}/aha/aha.csv", "--aha-dir", "{tmp}/aha", "--rv-point", "{rv}"],
     "--aha-dir and --summary would both write {tmp}/aha/aha.csv: give each output its own path"),
])
def test_the_batch_scripts_outputs_on_one_path_are_refused_first(halves, tmp_path, capsys, extra, expected):
    """The batch script checked each output's path alone: ``--summary`` naming the ``--output`` mesh
    replaced the result with the summary's CSV after the run (exit 0, "Wrote o.vtk"), naming an
    ``--export-opencarp`` file replaced it, naming the ``--mesh`` replaced the user's mesh, and an
    ``--aha-dir`` naming a file output failed only after the model was applied and the result
    written. Each is now refused before any work, with the user's files as they were."""
    from test_batch_script import _load_script

    mesh = tmp_path / "mesh.vtk"
    mesh.write_bytes(halves["whole"].read_bytes())
    fill = {"tmp": tmp_path, "rv": _point(halves["options"].rv_point)}
    argv = ["--volume", str(halves["out"] / "phantom_lge.nii.gz"), "--mesh", str(mesh), "--output",
            str(tmp_path / "o.vtk"), "--preset", "fast", "--max-epochs", "3", "--threads", "1",
            "--inference-mc-samples", "3", "--no-progress", *(value.format(**fill) for value in extra)]
    assert _load_script().run(argv) == 2
    printed = capsys.readouterr()
    assert printed.err.strip().splitlines() == [f"cardioscar_batch: error: {expected.format(**fill)}"], printed.err
    assert printed.out == "" and sorted(path.name for path in tmp_path.iterdir()) == ["mesh.vtk"]
    assert mesh.read_bytes() == halves["whole"].read_bytes()


def test_cardioscar_stopped_after_writing_files_does_not_say_it_wrote_none(tmp_path):
    """``cardioscar demo`` stopped by Ctrl-C in its training said "interrupted (no output was
    written)" beside the five files its first steps had written (the phantom, its image and the
    training rows); a cancelled training said the same. The line now counts what the command's
    atomic writes placed: those files, each whole, and nothing of the step it stopped."""
    import os
    import signal
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "CardioScarLib")}
    run = subprocess.Popen([sys.executable, "-m", "cardioscar", "demo", "--output-dir", str(tmp_path / "demo"),
                            "--nodes", "1500", "--max-epochs", "100000", "--cpu"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in run.stdout:  # until the training runs
        if "epoch" in line:
            break
    run.send_signal(signal.SIGINT)
    said, _ = run.communicate(timeout=120)
    written = sorted(path.name for path in (tmp_path / "demo").iterdir())
    assert run.returncode == 130 and written == ["phantom.json", "phantom_lge.nii.gz", "phantom_mesh.vtk",
                                                 "phantom_surface.vtk", "training_data.npz"], (written, said)
    assert said.strip().splitlines()[-1] == ("cardioscar: interrupted (5 files written before it kept, each whole; "
                                             "the step it stopped wrote nothing)"), said


def test_a_biventricular_mesh_with_an_lv_mask_of_every_node_is_refused(tmp_path, capsys):
    """The AHA's test for a second ventricle was skipped whenever ``--lv-mask`` was given, so a mask
    that marks every node (a myocardium mask, a region label both ventricles share), the refusal's
    own advice followed to the letter, had the synthetic rings with an RV crescent segmented whole:
    38.3 ml of "LV" with the RV's wall, exit 0. Such a mask adds nothing: the mesh is tested as one
    without, and refused naming the mask (the Logic in its own words); an LV mask of the LV's part
    still runs."""
    from test_aha_biventricular_axis import APEX_BASE, BIVENTRICULAR, RV_POINTS
    from test_simulation_fibres import _ventricles_mesh

    biv = _ventricles_mesh(with_rv=True, rv_cavity_mm=8.0, rv_wall_mm=3.0, rv_centre_x=52.0, slices=24)
    n = biv.n_points
    points = biv.points_lps()
    lv = (np.hypot(points[:, 0] - 30.0, points[:, 1] - 40.0) <= 20.5).astype(float)
    write_mesh(biv, tmp_path / "biv.vtk", {"scar_probability": np.zeros(n), "myocardium": np.ones(n), "lv": lv})
    capsys.readouterr()
    out = tmp_path / "aha"
    code = main(["aha", "--mesh", str(tmp_path / "biv.vtk"), "--output-dir", str(out), *RV_POINTS, *APEX_BASE,
                 "--lv-mask", "myocardium"])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1 and not out.exists(), (code, errors)
    assert errors[0].endswith(
        f"biv.vtk looks biventricular: 15 of 15 {BIVENTRICULAR.split(', or mark')[0]}, or give --lv-mask a field "
        f"that marks the LV's nodes alone: 'myocardium' marks all {n} of them (--lv-value picks a region label)"), errors

    context = csl.create_scene()
    node = csl.load_model(context.scene, tmp_path / "biv.vtk", name="biv")
    rv = [float(v) for v in RV_POINTS[1].split(",")]
    inputs = csl.AhaInputs(rv_markups=_markups(context.scene, [rv]),
                           measure=AhaOptions(lv_mask_field="myocardium"))
    with pytest.raises(CardioScarError, match="give inputs.measure.lv_mask_field a field that marks the LV's nodes "
                                              "alone: 'myocardium' marks all"):
        csl.CardioScarLogic.check_aha_inputs(node, inputs)
    assert main(["aha", "--mesh", str(tmp_path / "biv.vtk"), "--output-dir", str(out), *RV_POINTS, *APEX_BASE,
                 "--lv-mask", "lv"]) == 0
