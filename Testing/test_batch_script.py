"""CardioScar/Scripts/cardioscar_batch.py under plain Python with slicer-core.

The same script runs inside Slicer (``Slicer --no-main-window --python-script ...``); the
application is not available here, so that path is exercised only through the shared code
(the script switches to the application's scene when ``slicer.app`` exists).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "CardioScar" / "Scripts" / "cardioscar_batch.py"
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from cardioscar.io.meshio import read_mesh  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom  # noqa: E402

EPOCHS = "20"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=3))
    folder = tmp_path_factory.mktemp("batch")
    return {"paths": write_phantom(phantom, folder), "half": phantom.slice_half_thickness_mm, "dir": folder,
            "n_slices": phantom.image.GetSize()[2]}


def _run(args, cwd, script=SCRIPT):
    """Run the script as a user would: its own folder is all it knows (no PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env)


def _common(case):
    paths = case["paths"]
    return ["--volume", paths["image"], "--mesh", paths["mesh"], "--slices", "0,1,2,3",
            "--slice-thickness-padding", case["half"], "--preset", "fast", "--max-epochs", EPOCHS, "--seed", "7",
            "--threads", "1", "--threshold", "0.5"]


@pytest.fixture(scope="module")
def trained(case):
    out = case["dir"]
    args = _common(case) + ["--output", out / "scar.vtk", "--save-model", out / "model.pth",
                            "--summary", out / "summary.csv", "--snapshot", out / "snapshot.png"]
    completed = _run(args, cwd=out)
    assert completed.returncode == 0, completed.stderr
    return completed


def test_batch_output_equals_the_logic_in_process(case, trained):
    out = case["dir"]
    assert "SPACE=LPS" in (out / "scar.vtk").read_bytes()[:200].decode("ascii", "replace")
    result_mesh = read_mesh(out / "scar.vtk")
    input_mesh = read_mesh(case["paths"]["mesh"])
    np.testing.assert_allclose(result_mesh.points_lps(), input_mesh.points_lps(), atol=1e-6)
    np.testing.assert_allclose(result_mesh.point_array("scar_truth"), input_mesh.point_array("scar_truth"))

    context = csl.create_scene()
    volume = csl.load_volume(context.scene, case["paths"]["image"])
    model = csl.load_model(context.scene, case["paths"]["mesh"])
    options = csl.ReconstructionOptions(slice_indices="0,1,2,3", half_thickness=case["half"], preset="fast",
                                        max_epochs=int(EPOCHS), seed=7, num_threads=1, threshold=0.5)
    logic = csl.CardioScarLogic(context.scene, context.color_logic).train_and_apply(volume, model, options)
    np.testing.assert_allclose(result_mesh.point_array("scar_probability"), logic.probability, atol=1e-5)
    np.testing.assert_allclose(result_mesh.point_array("scar_uncertainty"), logic.uncertainty, atol=1e-5)
    np.testing.assert_array_equal(result_mesh.point_array("scar_binary"), logic.binary)

    with open(out / "summary.csv", newline="") as handle:
        rows = {row["Measure"]: row for row in csv.DictReader(handle)}
    assert rows["Mesh nodes"]["Value"] == str(input_mesh.n_points)
    assert rows["Scar volume (probability-weighted)"]["Unit"] == "ml"
    assert f"Wrote {out / 'scar.vtk'}" in trained.stdout

    from PIL import Image

    with Image.open(out / "snapshot.png") as snapshot:
        assert snapshot.size == (800, 800)
        assert len(snapshot.convert("RGB").getcolors(maxcolors=1 << 20)) > 50


def _load_script():
    spec = importlib.util.spec_from_file_location("cardioscar_batch_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_saved_model_applied_with_model_option_reproduces_the_arrays(case, trained):
    out = case["dir"]
    status = _load_script().run(["--model", str(out / "model.pth"), "--mesh", str(case["paths"]["mesh"]),
                                 "--output", str(out / "again.vtu"), "--seed", "7", "--threshold", "0.5"])
    assert status == 0
    first, again = read_mesh(out / "scar.vtk"), read_mesh(out / "again.vtu")
    assert again.dataset.GetNumberOfCells() == first.dataset.GetNumberOfCells() > 0  # the tetrahedra are kept
    for name in ("scar_probability", "scar_uncertainty"):  # same seed, same dropout masks (threads may differ)
        np.testing.assert_allclose(again.point_array(name), first.point_array(name), atol=1e-6)
    np.testing.assert_array_equal(again.point_array("scar_binary"), first.point_array("scar_binary"))


def test_bad_input_exits_2_with_one_line(case, tmp_path):
    completed = _run(["--volume", tmp_path / "missing.nii.gz", "--mesh", case["paths"]["mesh"],
                      "--output", tmp_path / "o.vtk"], cwd=tmp_path)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cardioscar_batch: error:") and "missing.nii.gz" in lines[0]
    assert not (tmp_path / "o.vtk").exists()


@pytest.mark.parametrize("extra, expected", [
    (["--slices", "1,99"], "valid 0-{last}"),
    (["--model", "m.pth", "--max-epochs", "5"], "--max-epochs only apply to training"),
    (["--output-suffix"], "--output must end in .vtk"),
    (["--no-volume"], "Give --volume"),
    (["--scar-labels", "x"], "comma-separated integers"),
    # trained on the rule's grades with the labels unused (prepare refuses the two together)
    (["--scar-rule", "psi", "--scar-labels", "3"], "--scar-labels has no effect with --scar-rule psi"),
    # psi is offset-free: the offset was ignored without a word (refused where every face builds the rule)
    (["--scar-rule", "psi", "--intensity-offset", "2048"], "--intensity-offset 2048 applies to the ratio rules "
                                                           "(fwhm, iir); --scar-rule psi is offset-free"),
    (["--slice-thickness-padding", "thin"], "slab half-width must be > 0 mm or 'auto'"),
    (["--slice-thickness-padding", "auto"], "records no slice thickness (DICOM 0018,0050; other formats have none)"),
    (["--slices=-1,2"], "--slices must be >= 0, got '-1,2'"),  # the library's --slice-indices, named as here
    # refused before training, not by the AHA step after the run was trained and written
    (["--aha-dir", "aha", "--rv-point", "1,2,3", "--aha-threshold", "nan"], "--aha-threshold nan: use a value between"),
    (["--export-opencarp", "heart.pts"], "--export-opencarp {tmp}/heart.pts names a file, but the openCARP files "
                                         "take a prefix: give {tmp}/heart"),  # it wrote heart.pts.pts, ... after training
])
def test_user_errors_are_one_actionable_line(case, tmp_path, capsys, extra, expected):
    paths = case["paths"]
    argv = ["--volume", str(paths["image"]), "--mesh", str(paths["mesh"]), "--output", str(tmp_path / "o.vtk"),
            "--slice-thickness-padding", str(case["half"]), "--max-epochs", "2"]
    if extra == ["--output-suffix"]:
        argv[5] = str(tmp_path / "o.txt")
    elif extra == ["--no-volume"]:
        argv = argv[2:]
    elif extra[0] == "--model":
        argv = [a for a in argv if a not in ("--max-epochs", "2")] + extra
    elif extra[0] == "--export-opencarp":  # in the test's folder, whatever the script would write
        argv += [extra[0], str(tmp_path / extra[1])]
    else:
        argv += extra
    status = _load_script().run(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and expected.format(last=case["n_slices"] - 1, tmp=tmp_path) in err[0], err
    assert not (tmp_path / "o.vtk").exists()


def test_script_finds_its_packages_in_the_installed_extension_layout(case, tmp_path):
    """Installed: <qt-scripted-modules>/{Scripts/cardioscar_batch.py, CardioScarLogic, cardioscar}."""
    modules = tmp_path / "qt-scripted-modules"
    shutil.copytree(REPO / "CardioScar" / "CardioScarLogic", modules / "CardioScarLogic")
    shutil.copytree(REPO / "CardioScarLib" / "cardioscar", modules / "cardioscar")
    (modules / "Scripts").mkdir()
    shutil.copy(SCRIPT, modules / "Scripts" / SCRIPT.name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    completed = subprocess.run([sys.executable, "-S", "-c", "import site, sys, runpy; site.main(); "
                                "sys.path = [p for p in sys.path if 'CardioScarLib' not in p]; "
                                f"sys.argv = [{str(modules / 'Scripts' / SCRIPT.name)!r}]; "
                                f"g = runpy.run_path(sys.argv[0], run_name='loaded'); g['_add_package_paths'](); "
                                "import CardioScarLogic, cardioscar; print(CardioScarLogic.__file__); print(cardioscar.__file__)"],
                               cwd=tmp_path, capture_output=True, text=True, env=env)
    assert completed.returncode == 0, completed.stderr
    found = completed.stdout.split()
    assert found[0].startswith(str(modules)) and found[1].startswith(str(modules)), found


def test_batch_accepts_the_options_of_cardioscar_prepare_train_and_apply_by_name():
    """Same names as the command line; apply's --mc-samples / --batch-size become
    --inference-mc-samples / --inference-batch-size because train's options keep those names."""
    from cardioscar.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    cli = {verb: {o for a in sub.choices[verb]._actions for o in a.option_strings} for verb in ("prepare", "train", "apply")}
    batch = {o for a in _load_script().build_parser()._actions for o in a.option_strings}
    renamed = {"--mc-samples": "--inference-mc-samples", "--batch-size": "--inference-batch-size"}
    not_applicable = {"--training-data", "--grid-layers", "--vtk-scalar-field"}  # files in between / grid input
    expected = (cli["train"] | cli["prepare"] | {renamed.get(o, o) for o in cli["apply"]}) - not_applicable
    assert expected <= batch, sorted(expected - batch)
    assert {"--volume", "--slices", "--save-model"} <= batch


def test_library_options_the_script_names_otherwise_are_in_its_table():
    """BATCH_NAMES against both real parsers: each entry an option of its verb and of the script,
    and every option of the verbs the script runs is the script's option by the same name, an alias
    of one (--image), in the table, or one the script does not have."""
    from CardioScarLogic.wording import BATCH_NAMES

    from cardioscar.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    cli = {verb: {o for a in sub.choices[verb]._actions for o in a.option_strings}
           for verb in ("prepare", "train", "apply", "export", "aha", "channels")}
    script = _load_script()
    parser = script.build_parser()
    batch = {o for a in parser._actions for o in a.option_strings}
    for verb, names in BATCH_NAMES.items():
        assert set(names) <= cli[verb] and set(names.values()) <= batch, verb
    assert script._aliases(parser) == {"--image": "--volume", "--mesh-vtk": "--mesh", "--slice-indices": "--slices"}
    # --output-dir: aha's folder is --aha-dir here, which the script checks itself before any step
    absent = {"--grid-layers", "--vtk-scalar-field", "--training-data", "--format", "--space", "--fibres", "--tags",
              "--helix-angles",
              "--rule-from", "--scar-field", "--field", "--uncertainty-field", "--output-dir"}
    for verb, options in cli.items():
        assert options - batch - set(BATCH_NAMES.get(verb, {})) - absent == set(), verb


def _rv_insertions():
    """The phantom's anterior and inferior RV insertions (LPS, the mesh file's frame), off its node
    rings (nodes lying exactly on a sector boundary go either way), and as the script's X,Y,Z text."""
    import math

    geometry = make_phantom(PhantomConfig(target_nodes=2000, seed=3)).geometry
    points = [geometry.to_lps(geometry.wall_to_local(np.array([0.5]), np.array([1.2]), np.array([math.radians(a)])))[0]
              for a in (33.0, 153.0)]
    return points, [",".join(f"{v:.12g}" for v in p) for p in points]


def test_memory_running_out_while_applying_names_the_script_s_inference_options(case, trained, tmp_path, capsys,
                                                                                monkeypatch):
    """Memory runs out while a saved model predicts (injected: a real MemoryError needs the machine's
    memory filled): one line with the command line's advice in the script's names (apply's
    --batch-size is --inference-batch-size here), exit 2 and no output; it was a traceback (exit 1)."""
    import cardioscar.logic

    def out_of_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(cardioscar.logic, "mc_dropout_predict", out_of_memory)
    argv = ["--model", str(case["dir"] / "model.pth"), "--mesh", str(case["paths"]["mesh"]),
            "--output", str(tmp_path / "o.vtk")]
    assert _load_script().run(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cardioscar_batch: error: out of memory; lower --inference-batch-size (or --inference-mc-samples)"]
    assert not (tmp_path / "o.vtk").exists()


@pytest.mark.parametrize("step, patched, advice", [
    ("preparing", "prepare_from_slices", "choose fewer slices (--slices) or a coarser mesh, or use --slice-profile box"),
    ("training", "fit_scar_field", "lower --batch-size (or --mc-samples)"),
    ("prediction", "mc_dropout_predict", "lower --inference-batch-size (or --inference-mc-samples)")])
def test_memory_running_out_in_the_training_route_names_the_step_s_options(case, tmp_path, capsys, monkeypatch,
                                                                           step, patched, advice):
    """Training and then predicting (no --model): the advice named train's --batch-size/--mc-samples
    whichever step ran out, also the preparation, which has no batches; now what helps the step
    (injected MemoryError, as above)."""
    import cardioscar.logic

    def out_of_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(cardioscar.logic, patched, out_of_memory)
    argv = [str(a) for a in _common(case)] + ["--max-epochs", "2", "--output", str(tmp_path / "o.vtk")]
    assert _load_script().run(argv) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "error:" in line]
    assert len(err) == 1 and err[0].startswith("cardioscar_batch: error: out of memory") and advice in err[0], step
    assert ("batch-size" in err[0]) == (step != "preparing") and "--slice-indices" not in err[0]
    assert not (tmp_path / "o.vtk").exists()


def test_batch_pools_several_volumes(tmp_path, capsys):
    """`--volume stack long_axis`: both loaded as nodes and pooled by the Logic, `--slices`
    counting across them; the result equals the Logic given the two nodes in-process. The script's
    ``run`` in this process (its own interpreter: the ``trained`` fixture)."""
    phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=3, long_axis=True))
    paths = write_phantom(phantom, tmp_path)
    n_stack, half = phantom.image.GetSize()[2], phantom.slice_half_thickness_mm
    args = ["--volume", paths["image"], paths["long_axis_image"], "--mesh", paths["mesh"], "--slices", f"1,{n_stack}",
            "--slice-thickness-padding", half, "--preset", "fast", "--max-epochs", "10", "--seed", "7",
            "--threads", "1", "--output", tmp_path / "scar.vtk"]
    assert _load_script().run([str(a) for a in args]) == 0, capsys.readouterr().err

    context = csl.create_scene()
    nodes = [csl.load_volume(context.scene, paths[key]) for key in ("image", "long_axis_image")]
    model = csl.load_model(context.scene, paths["mesh"])
    options = csl.ReconstructionOptions(preset="fast", max_epochs=10, half_thickness=half, seed=7, num_threads=1,
                                        slice_indices=f"1,{n_stack}")
    result = csl.CardioScarLogic(context.scene, context.color_logic).train_and_apply(nodes, model, options)
    assert len(result.prepared.slice_labels) == 2
    written = read_mesh(tmp_path / "scar.vtk").point_array("scar_probability")
    np.testing.assert_allclose(written, result.probability, atol=1e-5)


def test_batch_auto_slab_reads_the_dicom_files_it_loads(tmp_path):
    """`--slice-thickness-padding auto` on the real biv-me DICOM files (6 mm): the same result as
    the Logic given 3 mm in process."""
    from conftest import BIVME, bivme_dicom

    files = [bivme_dicom(name) for name in ("Se1", "Se6")]
    mesh = BIVME / "fitted_model_frame000" / "patient1_LV_ENDOCARDIAL_000.vtk"
    status = _load_script().run(["--volume", *map(str, files), "--mesh", str(mesh), "--slice-thickness-padding", "auto",
                                 "--normalize-intensities", "--preset", "fast", "--max-epochs", "3", "--seed", "7",
                                 "--threads", "1", "--output", str(tmp_path / "scar.vtk")])
    assert status == 0
    context = csl.create_scene()
    nodes = [csl.load_volume(context.scene, path) for path in files]
    options = csl.ReconstructionOptions(preset="fast", max_epochs=3, half_thickness=3.0, seed=7, num_threads=1,
                                        normalize_intensities=True)
    result = csl.CardioScarLogic(context.scene, context.color_logic).train_and_apply(
        nodes, csl.load_model(context.scene, mesh), options)
    written = read_mesh(tmp_path / "scar.vtk").point_array("scar_probability")
    np.testing.assert_allclose(written, result.probability, atol=1e-5)


def test_batch_reads_an_emidec_label_map_with_its_myocardium_labels(tmp_path, shared_data, capsys):
    """The README's label-map path (EMIDEC: --scar-labels 3,4 --myocardium-labels 2,3,4 on the label
    map itself) in batch mode, as its --help describes it: the volume was loaded as a scalar volume,
    so the myocardium labels were refused as naming 'labels of a label-map input'. The training
    pixels are the myocardium's alone, as `cardioscar prepare` maps them."""
    import SimpleITK as sitk

    from cardioscar.io.meshio import write_mesh
    from cardioscar.logic import PreprocessingRequest, prepare_training_data
    from cardioscar.prepare.mesh_from_labels import myocardium_mesh_from_labels

    labels = shared_data / "emidec" / "Case_P051" / "Contours" / "Case_P051.nii.gz"
    mesh = tmp_path / "heart.vtk"
    write_mesh(myocardium_mesh_from_labels(sitk.ReadImage(str(labels)), spacing_mm=3.0), mesh, {})
    status = _load_script().run(["--volume", str(labels), "--mesh", str(mesh), "--scar-labels", "3,4",
                                 "--myocardium-labels", "2,3,4", "--preset", "fast", "--max-epochs", "2",
                                 "--threads", "1", "--no-progress", "--output", str(tmp_path / "scar.vtk")])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    prepared = prepare_training_data(PreprocessingRequest(mesh_path=mesh, image_path=labels, scar_labels=[3, 4],
                                                          myocardium_labels=[2, 3, 4]))
    assert "Myocardium: labels 2,3,4\n" in printed.out
    assert f"Pixels outside the myocardium (no constraint): {prepared.dropped_outside_myocardium.sum()}\n" in printed.out
    assert len(read_mesh(tmp_path / "scar.vtk").point_array("scar_probability")) == prepared.n_mesh_nodes


def test_argument_mistakes_are_refused_before_any_image_is_read(case, tmp_path, capsys):
    """Found after a long training, these used to lose it (a wrong --save-model name), ignore the
    user's inputs silently (training options beside --model) or write a mesh without its cells
    (a tetrahedral mesh as .vtp, exit 0). The volume here does not exist: the check must come first."""
    mesh, missing, out = str(case["paths"]["mesh"]), str(tmp_path / "missing.nii.gz"), str(tmp_path / "o.vtk")
    cases = [
        (["--volume", missing, "--save-model", str(tmp_path / "m.pt")], "--save-model must end in .pth, got 'm.pt'"),
        (["--model", str(tmp_path / "m.pth"), "--volume", missing, "--scar-labels", "4", "--normalize-intensities",
          "--partial-volume-correction", "--preset", "fast", "--threads", "1", "--no-progress"],
         "--volume, --scar-labels, --normalize-intensities, --partial-volume-correction, --preset, --threads, "
         "--no-progress only apply to training; --model applies a saved model without training"),
        (["--volume", missing, "--output", str(tmp_path / "o.vtp")], "Cannot write the volumetric mesh"),
        (["--volume", missing, "--output", mesh], f"--output {mesh} is also an input: choose another file name"),
        (["--volume", missing, "--expert-scar-labels", "3,4", "--expert-core-labels", "4"],
         "--expert-scar-labels, --expert-core-labels need --scar-rule"),
        (["--volume", missing, "--fibre-rule"], "--fibre-rule writes the LV fibre rule's PREFIX.lon with "
                                                "--export-opencarp PREFIX"),  # it was parsed and silently unused
        (["--volume", missing, "--helix-angles", "50,-40"], "--helix-angles is for --fibre-rule"),
        (["--volume", missing, "--fibre-rule", "--export-opencarp", str(tmp_path / "heart"), "--helix-angles", "95,-60"],
         "--helix-angles (95.0, -60.0): give two angles ENDO,EPI in degrees within [-90, 90]"),
        (["--volume", missing, "--fibre-rule", "--export-opencarp", str(tmp_path / "heart"), "--helix-angles", "60"],
         "--helix-angles '60' must be two numbers ENDO,EPI"),
        # a rule between an option and the preset's values: it was refused when training began, after prepare;
        # named as typed here (it said the API's "training option base_lr ... must be <= max_lr")
        (["--volume", missing, "--base-lr", "0.05"], "--base-lr (0.05) must be <= --max-lr (0.01)"),
        (["--volume", missing, "--convergence-tolerance", "0.02"],
         "--convergence-tolerance needs schedule 'onecycle' (the cyclical schedule ends on its patience); leave it out "
         "(or set it to 0), or give --preset fast"),
        (["--volume", missing, "--max-epochs", "0"], "--max-epochs must be a positive integer, got 0"),
        (["--volume", missing, "--threads", "0"], "--threads must be a positive integer"),
    ]
    script = _load_script()
    for extra, expected in cases:
        argv = ["--mesh", mesh, "--output", out] + extra
        status = script.run(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2
        assert len(err) == 1 and expected in err[0], err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("corrupt", ["mesh", "volume"])
def test_a_file_the_readers_cannot_read_is_one_line_too(case, tmp_path, corrupt):
    """VTK's readers print several lines of their own for a corrupt file; only ours is shown."""
    bad = tmp_path / ("bad.vtk" if corrupt == "mesh" else "bad.nii.gz")
    bad.write_bytes(b"not an image or mesh")
    paths = case["paths"]
    completed = _run(["--volume", bad if corrupt == "volume" else paths["image"],
                      "--mesh", bad if corrupt == "mesh" else paths["mesh"], "--output", tmp_path / "o.vtk"], cwd=tmp_path)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    # the same refusal as `cardioscar prepare` gives (the batch script runs the library's file checks)
    assert len(lines) == 1 and "Cannot read" in lines[0] and str(bad) in lines[0], lines


def test_a_torch_older_than_the_librarys_floor_is_one_line(case, tmp_path, capsys, monkeypatch):
    """The batch script trains through the Logic's ``train_and_apply``, which refuses a torch older
    than 2.4 (as the panel does) before it reads the slices: one line, exit 2, no output. The
    installed version is a stand-in string in torch's package metadata, not a real old torch; the
    script's ``main`` runs in this process, as ``python cardioscar_batch.py`` calls it."""
    import importlib.metadata

    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "2.3.1+cu121" if name == "torch" else real_version(name))
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *map(str, _common(case)), "--output", str(tmp_path / "o.vtk")])
    with pytest.raises(SystemExit) as exit_request:
        _load_script().main()
    assert exit_request.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "PyTorch 2.3.1+cu121 is older than the >=2.4 CardioScar needs" in lines[0], lines
    assert not (tmp_path / "o.vtk").exists()


def test_a_torch_older_than_the_floor_is_refused_when_applying_a_saved_model(case, tmp_path, capsys, monkeypatch):
    """``--model`` (a saved model applied, no training) reaches the Logic's ``apply_model``, which
    did not check the torch version: it now refuses a torch older than 2.4 as ``train_and_apply``
    and the panel do, in one line, before the model is read. Stand-in version string, as above."""
    import importlib.metadata

    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.3.1" if name == "torch" else real_version(name))
    model = tmp_path / "model.pth"
    model.write_bytes(b"never read: the version is refused first")
    status = _load_script().run(["--model", str(model), "--mesh", str(case["paths"]["mesh"]),
                                 "--output", str(tmp_path / "o.vtu")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "PyTorch 2.3.1 is older than the >=2.4 CardioScar needs" in lines[0], lines
    assert not (tmp_path / "o.vtu").exists()


def test_batch_writes_the_aha_table_and_segments_after_the_run(case, trained, tmp_path):
    """--aha-dir with the RV insertion given as points in the mesh file's frame: the table, the
    bull's-eye and the arrays on the output mesh equal the library's on the same prediction.
    --threshold 0.3 writes scar_binary (apply's call) while the AHA counts at --aha-threshold 0.5: the
    library warns and gives the threshold that counts the called scar (`cardioscar aha --threshold`);
    here --threshold is apply's, so the advice names --aha-threshold (it said --threshold, which
    would only move scar_binary), and the call it quotes stays apply's."""
    import csv
    import re

    from vtk.util.numpy_support import vtk_to_numpy

    from cardioscar.aha import AhaOptions, analyse_mesh
    from cardioscar.aha.table import scar_per_segment

    points, text = _rv_insertions()
    out = tmp_path / "scar.vtk"
    completed = _run(["--model", case["dir"] / "model.pth", "--mesh", case["paths"]["mesh"], "--output", out,
                      "--aha-dir", tmp_path / "aha", "--rv-point", text[0], "--rv-inferior-point", text[1],
                      "--threshold", "0.3"], cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    warned = [line for line in completed.stderr.splitlines() if "its scar_binary" in line]
    assert len(warned) == 1 and re.search(r"\(the call of cardioscar apply --threshold ([0-9.]+)\).*; give "
                                          r"--aha-threshold \1 \(the same setting in Slicer\) to count", warned[0]), \
        completed.stderr
    mesh = read_mesh(out)
    expected = analyse_mesh(mesh, AhaOptions(rv_point=points[0], rv_inferior_point=points[1]))
    np.testing.assert_array_equal(mesh.point_array("aha_segment"), expected.point_segments)
    cells = vtk_to_numpy(mesh.dataset.GetCellData().GetArray("aha_segment"))
    np.testing.assert_array_equal(cells, expected.cell_segments)
    with open(tmp_path / "aha" / "aha.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [int(r["segment"]) for r in table] == list(range(1, 18))
    for row, reference in zip(table, expected.rows):
        assert float(row["scar_pct"]) == pytest.approx(reference["scar_pct"], abs=0.005)  # aha.csv: 0.01 points
    assert (tmp_path / "aha" / "bullseye.png").read_bytes()[:4] == b"\x89PNG"
    # and it says so, as cardioscar aha does (it wrote them silently)
    assert f"AHA scar per segment: {scar_per_segment(expected.rows)}\n" in completed.stdout  # as cardioscar aha's
    assert f"Wrote aha.csv, aha.json and bullseye.png into {tmp_path / 'aha'}" in completed.stdout


def test_batch_aha_json_says_its_warnings_in_the_script_s_options(case, trained, tmp_path, capsys):
    """The RV insertions given in the wrong order: aha.json's warning names the script's options
    (--rv-point, which it takes as cardioscar aha does), not the Logic's parameters that the Logic's
    result now says (inputs.rv_markups: no option of this script)."""
    _, text = _rv_insertions()
    status = _load_script().run(["--model", str(case["dir"] / "model.pth"), "--mesh", str(case["paths"]["mesh"]),
                                 "--output", str(tmp_path / "scar.vtk"), "--aha-dir", str(tmp_path / "aha"),
                                 "--rv-point", text[1], "--rv-inferior-point", text[0], "--transmurality", "off",
                                 "--inference-mc-samples", "2"])
    assert status == 0, capsys.readouterr().err
    insertion = json.loads((tmp_path / "aha" / "aha.json").read_text(encoding="utf-8"))["rv_insertion"]
    assert insertion["sense"] == "mirrored"
    assert "the anterior insertion first (--rv-point, then --rv-inferior-point)" in insertion["warning"], insertion
    assert "inputs." not in json.dumps(insertion)


def test_batch_aha_reads_its_own_tissue_tags_with_the_tag_given(case, trained, tmp_path, capsys):
    """--tags-field tissue_tag --border-zone-tag 2 after the script's own tagging: the table's
    band % is the share of the nodes tagged 2, as the library counts it on the written mesh, and
    not the healthy share (tag 1) that the script's old default counted. The script's tagging of one
    field gives probability bands, so the columns are band_pct/top_band_pct, not tissue's."""
    import csv

    from cardioscar.aha import AhaOptions, analyse_mesh
    from cardioscar.io.meshio import set_text_field
    from cardioscar.simulation.opencarp import TAG_VALUES_ARRAY

    points, text = _rv_insertions()
    out = tmp_path / "scar.vtk"
    status = _load_script().run(["--model", str(case["dir"] / "model.pth"), "--mesh", str(case["paths"]["mesh"]),
                                 "--output", str(out), "--border-zone", "0.2", "--core", "0.3",
                                 "--aha-dir", str(tmp_path / "aha"), "--rv-point", text[0], "--rv-inferior-point",
                                 text[1], "--tags-field", "tissue_tag", "--border-zone-tag", "2", "--core-tag", "3"])
    assert status == 0, capsys.readouterr().err
    mesh = read_mesh(out)
    tags = mesh.point_array("tissue_tag")
    assert (tags == 2).any() and (tags == 1).any()
    expected = analyse_mesh(mesh, AhaOptions(rv_point=points[0], rv_inferior_point=points[1],
                                             tags_field="tissue_tag", border_zone_tag=2, core_tag=3))
    set_text_field(mesh.dataset, TAG_VALUES_ARRAY, None)  # the note of the tags would refuse tag 1
    healthy = analyse_mesh(mesh, AhaOptions(rv_point=points[0], rv_inferior_point=points[1],
                                            tags_field="tissue_tag", border_zone_tag=1))
    with open(tmp_path / "aha" / "aha.csv") as handle:
        table = list(csv.DictReader(handle))
    assert "border_zone_pct" not in table[0] and "core_pct" not in table[0]  # one field's bands, not tissue
    for row, reference in zip(table, expected.rows):
        assert float(row["band_pct"]) == pytest.approx(reference["band_pct"], abs=0.005)  # aha.csv: 0.01 points
        assert float(row["top_band_pct"]) == pytest.approx(reference["top_band_pct"], abs=0.005)
    assert json.loads((tmp_path / "aha" / "aha.json").read_text())["bands"]["top_band_pct"] == "probability >= 0.3"
    assert (tags == 3).any() and max(r["top_band_pct"] for r in expected.rows) > 0.0
    assert sum(r["border_zone_pct"] for r in healthy.rows) > sum(r["band_pct"] for r in expected.rows)


@pytest.mark.parametrize("extra, expected", [
    (["--rv-point=1,2,3"], "--rv-point only apply to the AHA segments: add --aha-dir D"),
    (["--aha-dir", "aha"], "--aha-dir needs the RV insertion"),
    (["--aha-dir", "aha", "--rv-point=1,2,3", "--apex=1,2,3"], "give both --apex and --base"),
    # the script's own tissue_tag (healthy 1): read with the border-zone tag 1 it counted healthy as
    # border zone, exit 0, after the whole run (the default was 1, so the library's refusal never fired)
    (["--border-zone", "0.5", "--aha-dir", "aha", "--rv-point=1,2,3", "--tags-field", "tissue_tag"],
     "give --border-zone-tag (2 for the export's default tags)"),
    (["--aha-dir", "aha", "--rv-point=1,2,3", "--border-zone-tag", "2"], "--border-zone-tag needs --tags-field"),
    (["--border-zone-tag", "2"], "--border-zone-tag only apply to the AHA segments"),
    (["--aha-dir", "aha", "--rv-point=1,2,3", "--core-tag", "3"], "--core-tag needs --tags-field"),
])
def test_aha_argument_mistakes_are_refused_before_the_run(case, tmp_path, capsys, extra, expected):
    argv = ["--model", str(case["dir"] / "model.pth"), "--mesh", str(case["paths"]["mesh"]),
            "--output", str(tmp_path / "o.vtk"), *extra]
    status = _load_script().run(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "o.vtk").exists()



def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


def test_an_rv_point_off_the_wall_is_refused_before_the_training(case, trained, tmp_path):
    """--rv-point read in the other frame (RAS for the LPS mesh: X and Y negated): the AHA step
    refused it only after the training, which was lost, and the result had overwritten --output
    already. Now the script finds the AHA frame on the user's mesh first: the same one line as the
    AHA of the trained result gives (the library's, on ``trained``'s prediction), no epoch run, and
    the user's files as they were (an earlier --output kept, no --aha-dir made)."""
    from cardioscar.aha import AhaOptions, analyse_mesh
    from cardioscar.errors import CardioScarError

    points, _ = _rv_insertions()
    in_ras = points[0] * np.array([-1.0, -1.0, 1.0])
    with pytest.raises(CardioScarError) as after_training:
        analyse_mesh(read_mesh(case["dir"] / "scar.vtk"), AhaOptions(rv_point=in_ras))
    shutil.copy(case["paths"]["mesh"], tmp_path / "earlier.vtk")
    before = _files(tmp_path)
    completed = _run([*_common(case), "--output", tmp_path / "earlier.vtk", "--aha-dir", tmp_path / "aha",
                      "--rv-point", ",".join(f"{v:.12g}" for v in in_ras)], cwd=tmp_path)
    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [f"cardioscar_batch: error: {after_training.value}"]  # no epoch line
    assert "negate X and Y" in completed.stderr and completed.stdout == ""
    assert _files(tmp_path) == before and not (tmp_path / "aha").exists()


def test_swapped_rv_points_are_warned_before_the_training_and_once(case, tmp_path):
    """--rv-point and --rv-inferior-point swapped: the AHA's warning that the numbering is the
    mirror of the anatomy's came after the training; now before its first epoch, while the run can
    still be stopped, and not again of the result (the same frame); the table is still written."""
    _, text = _rv_insertions()
    completed = _run([*_common(case), "--output", tmp_path / "scar.vtk", "--aha-dir", tmp_path / "aha",
                      "--rv-point", text[1], "--rv-inferior-point", text[0]], cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stderr.splitlines()
    swapped = [i for i, line in enumerate(lines) if "swapped? give the anterior insertion first" in line]
    epochs = [i for i, line in enumerate(lines) if line.startswith("epoch ")]
    assert len(swapped) == 1 and epochs and swapped[0] < epochs[0], lines
    assert "(--rv-point, then --rv-inferior-point)" in lines[swapped[0]]
    assert json.loads((tmp_path / "aha" / "aha.json").read_text())["rv_insertion"]["sense"] == "mirrored"


def _biventricular(folder: Path) -> Path:
    """Round 19's mesh of both ventricles (its ``lv`` field marks the LV's nodes), moved into the box
    of the phantom's mesh so that the phantom's model applies to it."""
    from vtk.util.numpy_support import numpy_to_vtk

    from cardioscar.io.meshio import write_mesh
    from test_simulation_fibres import _ventricles_mesh

    biv = _ventricles_mesh(with_rv=True, rv_cavity_mm=8.0, rv_wall_mm=3.0, rv_centre_x=52.0, slices=24)
    points = biv.points_lps()
    lv = (np.hypot(points[:, 0] - 30.0, points[:, 1] - 40.0) <= 20.5).astype(float)
    biv.dataset.GetPoints().SetData(numpy_to_vtk(points + BIV_SHIFT, deep=True))
    write_mesh(biv, folder / "biv.vtk", {"lv": lv})
    return folder / "biv.vtk"


#: Where :func:`_biventricular` moves its mesh, and its RV insertions there (round 19's 48,32,24 and 48,48,24).
BIV_SHIFT = np.array([-20.0, -60.0, -20.0])
BIV_RV = ["--rv-point", "28,-28,4", "--rv-inferior-point", "28,-12,4"]


def test_a_biventricular_mesh_without_an_lv_mask_is_refused_before_the_model_is_applied(case, trained, tmp_path,
                                                                                       capsys):
    """--model on a mesh of both ventricles with --aha-dir and no --lv-mask: the AHA's refusal came
    after the saved model was applied and its result written to --output; now first, in the same
    words ("The model 'biv' ..."), with nothing written. With --lv-mask the AHA reads the LV's part
    alone: the same run passes the check and segments it."""
    biv = _biventricular(tmp_path)
    script = _load_script()
    argv = ["--model", str(case["dir"] / "model.pth"), "--mesh", str(biv), "--output", str(tmp_path / "o.vtk"),
            "--aha-dir", str(tmp_path / "aha"), *BIV_RV]
    assert script.run(argv) == 2
    printed = capsys.readouterr()
    assert printed.err.strip().splitlines()[-1] == (
        "cardioscar_batch: error: The model 'biv' looks biventricular: 15 of 15 cross-sections across one direction "
        "enclose two cavities (an LV's enclose one); the AHA segmentation is the LV's: give an LV-only mesh, or mark "
        "its LV nodes with --lv-mask FIELD (and --lv-value for a region label)")
    assert printed.out == "" and sorted(path.name for path in tmp_path.iterdir()) == ["biv.vtk"]
    assert script.run(argv + ["--lv-mask", "lv"]) == 0, capsys.readouterr().err
    segments = read_mesh(tmp_path / "o.vtk").point_array("aha_segment")
    lv = read_mesh(biv).point_array("lv") > 0
    assert np.all(segments[lv] > 0) and np.all(segments[~lv] == 0)


def test_an_lv_mask_the_mesh_lacks_is_refused_before_the_model_is_applied(case, trained, tmp_path, capsys):
    """--lv-mask naming a field the mesh does not have: refused after the model was applied (the
    result written); now first, naming the mesh's fields, with nothing written."""
    argv = ["--model", str(case["dir"] / "model.pth"), "--mesh", str(_biventricular(tmp_path)),
            "--output", str(tmp_path / "o.vtk"), "--aha-dir", str(tmp_path / "aha"), *BIV_RV, "--lv-mask", "LV"]
    assert _load_script().run(argv) == 2
    printed = capsys.readouterr()
    assert printed.err.strip().splitlines() == [
        "cardioscar_batch: error: mesh has no point field 'LV'; point fields present: lv"]
    assert printed.out == "" and sorted(path.name for path in tmp_path.iterdir()) == ["biv.vtk"]


def test_transmurality_required_of_a_surface_is_refused_before_the_model_is_applied(case, trained, tmp_path, capsys):
    """--transmurality required on the phantom's surface mesh: the AHA refuses it whatever the scar
    (a surface has no wall inside), so before the saved model is applied, with nothing written."""
    _, text = _rv_insertions()
    argv = ["--model", str(case["dir"] / "model.pth"), "--mesh", str(case["paths"]["surface"]),
            "--output", str(tmp_path / "o.vtk"), "--aha-dir", str(tmp_path / "aha"), "--rv-point", text[0],
            "--transmurality", "required"]
    assert _load_script().run(argv) == 2
    printed = capsys.readouterr()
    assert printed.err.strip().splitlines() == [
        "cardioscar_batch: error: The model 'phantom_surface' is a surface mesh: transmurality needs the wall's "
        "inside; give the volumetric (tetrahedral) mesh, or leave --transmurality out for an estimate from the surfaces"]
    assert printed.out == "" and not list(tmp_path.iterdir())

def test_batch_restricts_targets_to_the_myocardium_mask_file(segmented, tmp_path, capsys):
    """`--myocardium-mask FILE` on the segmented phantom's fraction map: the same field as the
    Logic given the mask node in process, the summary records the mask and the dropped pixels
    (the count `cardioscar prepare --myocardium-mask` records for the same files)."""
    from cardioscar.logic import PreprocessingRequest, prepare_training_data

    paths = segmented
    args = ["--volume", paths["image"], "--mesh", paths["mesh"], "--myocardium-mask", paths["myocardium_mask"],
            "--preset", "fast", "--max-epochs", "3", "--seed", "7", "--threads", "1", "--inference-mc-samples", "3",
            "--output", tmp_path / "scar.vtk", "--summary", tmp_path / "summary.csv"]
    script = _load_script()  # in this process (its own interpreter: the ``trained`` fixture)
    assert script.run([str(a) for a in args]) == 0, capsys.readouterr().err
    capsys.readouterr()

    context = csl.create_scene()
    image = csl.load_volume(context.scene, paths["image"])
    mask = csl.load_volume(context.scene, paths["myocardium_mask"], labelmap=True)
    model = csl.load_model(context.scene, paths["mesh"])
    options = csl.ReconstructionOptions(preset="fast", max_epochs=3, seed=7, num_threads=1, inference_mc_samples=3)
    result = csl.CardioScarLogic(context.scene, context.color_logic).train_and_apply(image, model, options,
                                                                                     myocardium_mask=mask)
    written = read_mesh(tmp_path / "scar.vtk").point_array("scar_probability")
    np.testing.assert_allclose(written, result.probability, atol=1e-5)
    core = prepare_training_data(PreprocessingRequest(mesh_path=paths["mesh"], image_path=paths["image"],
                                                      myocardium_mask=paths["myocardium_mask"]))
    with open(tmp_path / "summary.csv", newline="") as handle:
        rows = {row["Measure"]: row["Value"] for row in csv.DictReader(handle)}
    assert rows["Myocardium"] == "mask phantom_myocardium"
    assert rows["Pixels outside the myocardium (no constraint)"] == str(int(core.dropped_outside_myocardium.sum()))
    assert core.dropped_outside_myocardium.sum() > 0

    for extra, expected in ((["--myocardium-labels", "2,3"], "name labels of a label-map input"),
                            (["--model", "m.pth", "--myocardium-mask", "m.nii.gz"], "--myocardium-mask only apply to training")):
        argv = ["--mesh", str(paths["mesh"]), "--output", str(tmp_path / "o.vtk")] + (
            extra if extra[0] == "--model" else ["--volume", str(paths["image"])] + extra)
        assert script.run(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "o.vtk").exists()
def test_batch_tags_and_exports_opencarp(case, trained, tmp_path, capsys):
    """--border-zone/--core tag the written mesh; --export-opencarp writes the simulator files (and
    names them: it wrote them silently)."""
    out = case["dir"]
    status = _load_script().run(["--model", str(out / "model.pth"), "--mesh", str(case["paths"]["mesh"]),
                                 "--output", str(tmp_path / "tagged.vtu"), "--seed", "7", "--border-zone", "0.3",
                                 "--core", "0.6", "--export-opencarp", str(tmp_path / "heart"), "--fibre-rule",
                                 "--helix-angles", "50,-40", "--summary", str(tmp_path / "summary.csv")])
    assert status == 0
    tagged = read_mesh(tmp_path / "tagged.vtu")
    lon = (tmp_path / "heart.lon").read_text(encoding="utf-8").split("\n")  # the LV rule's fibre + sheet
    assert lon[0] == "2" and len([line for line in lon[1:] if line]) == tagged.dataset.GetNumberOfCells()
    rule = json.loads((tmp_path / "heart.json").read_text(encoding="utf-8"))["fibre_rule"]  # --helix-angles reached it
    assert (rule["helix_endo_deg"], rule["helix_epi_deg"]) == (50.0, -40.0)
    p = tagged.point_array("scar_probability")
    np.testing.assert_array_equal(tagged.point_array("tissue_tag"), np.where(p >= 0.6, 3, np.where(p >= 0.3, 2, 1)))
    elem = (tmp_path / "heart.elem").read_text(encoding="utf-8").split("\n")
    assert int(elem[0]) == tagged.dataset.GetNumberOfCells() and elem[1].startswith("Tt ")
    assert int((tmp_path / "heart.pts").read_text(encoding="utf-8").split("\n")[0]) == tagged.n_points
    with open(tmp_path / "summary.csv", newline="") as handle:
        measures = [row["Measure"] for row in csv.DictReader(handle)]
    assert "Tissue probability >= 0.6 (tag 3) volume" in measures  # one field: its bands, not tissue classes
    prefix = tmp_path / "heart"
    out = capsys.readouterr().out
    assert f"Wrote {prefix}.pts, {prefix}.elem, {prefix}.lon, {prefix}.json\n" in out
    assert "probability band 0.3-0.6 tag 2:" in out and "not border-zone and core tissue" in out
    assert json.loads((tmp_path / "heart.json").read_text(encoding="utf-8"))["region_legend"]["3"].startswith(
        "probability >= 0.6 of one scar field")



def test_batch_finds_channels_after_tagging_and_refuses_their_mistakes_first(case, trained, tmp_path, capsys):
    """--channels-dir tags (at the thresholds given), searches the tagged result and writes the
    channel files beside the other outputs, the fields on --output; its mistakes are one line before
    any work, in the script's option names."""
    argv = ["--model", str(case["dir"] / "model.pth"), "--mesh", str(case["paths"]["mesh"]),
            "--output", str(tmp_path / "scar.vtu"), "--border-zone", "0.2", "--core", "0.3"]
    for extra, expected in ((["--channel-layers", "0.1"], "--channel-layers only apply to the channel search: add "
                                                          "--channels-dir D"),
                            (["--channels-dir", str(tmp_path / "c"), "--channel-max-width", "0"],
                             "--channel-max-width 0 must be a positive width in mm"),
                            (["--channels-dir", str(tmp_path / "c"), "--channel-max-width", "500"],
                             "--channel-max-width 500: give a width in (0, 30] mm"),
                            (["--channels-dir", str(tmp_path / "c"), "--channel-min-length", "-1"],
                             "--channel-min-length -1 must be a length in mm >= 0"),
                            (["--channel-min-length", "0"], "--channel-min-length only apply to the channel search"),
                            (["--channels-dir", str(case["paths"]["image"])], "--channels-dir "),
                            (["--channels-dir", str(tmp_path / "c"), "--channel-layers", "0.1,2"], "--channel-layers "),
                            (["--channels-dir", str(tmp_path / "c"), "--channel-layers", "0.1,0.1"],
                             "--channel-layers 0.1,0.1: depth 0.1 is given twice; give each depth once")):
        assert _load_script().run(argv + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
        assert not (tmp_path / "scar.vtu").exists() and not (tmp_path / "c").exists()
    assert _load_script().run(argv + ["--channels-dir", str(tmp_path / "channels"), "--channel-layers", "0.1,0.5",
                                      "--channel-min-length", "0"]) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "channels" / "channels.json").read_text(encoding="utf-8"))
    assert record["layers"] == [0.1, 0.5] and "tissue_tag" in record["tissue"] and record["min_length_mm"] == 0.0
    assert f"Wrote {tmp_path / 'channels' / 'channels.csv'}, {tmp_path / 'channels' / 'channels.json'}" in out
    assert out.count("Channels: ") == 1 and (tmp_path / "channels" / "channels.csv").read_text().startswith("channel,")
    # each channel's line names a flag near the mesh's open cut, as channels.json does
    assert out.count("near the mesh's open cut (an entrance") == record["n_near_open_cut"] == sum(
        row["near_open_cut"] for row in record["channels"])
    # the caveat that a narrow corridor may be hidden in the core, in the log and in channels.json, in the
    # words of one field's bands (the script tags one field without --core-mesh)
    assert out.count("Channels, note: a corridor of the lower probability band narrower than about 8 mm may have "
                     "been raised into the top band") == 1, out
    assert "border-zone corridor" not in out
    # one field's bands: what its channels are not, once in the log and in channels.json
    assert out.count("Channels, note: its tags are one scar field cut at two probabilities") == 1, out
    assert record["classes"] == "bands" and "not conducting tissue" in record["bands_note"]
    assert "not evidence of none" in record["hidden_corridors"]["note"]
    written = read_mesh(tmp_path / "scar.vtu")
    assert len(np.unique(written.point_array("bz_channel"))) == record["n_channels"] + 1  # 0 and each channel's id
    depth = written.point_array("wall_depth")
    assert depth.min() == pytest.approx(0.0, abs=1e-6) and depth.max() == pytest.approx(1.0, abs=1e-6)
    p = written.point_array("scar_probability")
    np.testing.assert_array_equal(written.point_array("tissue_tag"), np.where(p >= 0.3, 3, np.where(p >= 0.2, 2, 1)))
    # a result with no core has no channel: exit 0 and 0 channels, as cardioscar channels and the cohort say it
    # (exit 2 after writing --output, where the cohort recorded 0; zstalefibre)
    no_core = argv[:-1] + ["0.9999", "--channels-dir", str(tmp_path / "none"), "--channel-layers", "0.5",
                           "--inference-mc-samples", "2"]
    assert _load_script().run(no_core) == 0
    assert "Channels: no conducting channel: no node of the searched layers is in the top band" in \
        capsys.readouterr().out
    # channels shorter than the minimum are dropped, and the summary names this script's option for it
    # (it named cardioscar channels' --min-length)
    assert _load_script().run(argv + ["--channels-dir", str(tmp_path / "long"), "--channel-layers", "0.1,0.5",
                                      "--channel-min-length", "500", "--inference-mc-samples", "2"]) == 0
    out = capsys.readouterr().out
    assert json.loads((tmp_path / "long" / "channels.json").read_text(encoding="utf-8"))["n_dropped_short"] > 0
    assert " shorter than --channel-min-length dropped" in out and "--min-length" not in out, out
    assert json.loads((tmp_path / "none" / "channels.json").read_text(encoding="utf-8"))["n_channels"] == 0
    assert not read_mesh(tmp_path / "scar.vtu").point_array("bz_channel").any()


def test_batch_tags_with_a_core_mesh_by_the_two_field_rule(case, trained, tmp_path, capsys):
    """--core-mesh (a core model's result on the same mesh) tags from two fields, as export
    --core-mesh; one on another mesh, or beside --scar-target core, is one line before any work."""
    import vtk

    from cardioscar.io.meshio import Mesh, write_mesh
    from cardioscar.simulation.tags import tag_mesh

    mesh = read_mesh(case["paths"]["mesh"])
    base = ["--model", str(case["dir"] / "model.pth"), "--mesh", str(case["paths"]["mesh"]), "--seed", "7",
            "--border-zone", "0.3", "--export-opencarp", str(tmp_path / "heart")]
    script = _load_script()
    # a core inside the scar (as a core model's is; one outside it is refused as swapped fields):
    # the scar field of the same seeded run, scaled down by 0.5-1 along the node order
    assert script.run(base[:6] + ["--output", str(tmp_path / "scar_only.vtk")]) == 0
    core = read_mesh(tmp_path / "scar_only.vtk").point_array("scar_probability") * np.linspace(0.5, 1.0, mesh.n_points)
    write_mesh(mesh, tmp_path / "core_pred.vtk", {"scar_probability": core})
    assert script.run(base + ["--output", str(tmp_path / "tagged.vtk"), "--core-mesh", str(tmp_path / "core_pred.vtk")]) == 0
    tagged = read_mesh(tmp_path / "tagged.vtk")
    expected = tag_mesh(tagged.dataset, tagged.point_array("scar_probability"), core, 0.3, None)  # core 0.5
    np.testing.assert_array_equal(tagged.point_array("tissue_tag"), expected.node_tags)
    elem = (tmp_path / "heart.elem").read_text(encoding="utf-8").split("\n")[1:1 + len(expected.element_tags)]
    np.testing.assert_array_equal([int(line.split()[-1]) for line in elem], expected.element_tags)
    core_row = expected.summary()["core"]
    assert f"core         tag 3: {core_row['nodes']} nodes, {core_row['elements']} elements" in capsys.readouterr().out
    sphere = vtk.vtkSphereSource()  # a core result on another mesh: 50 nodes
    sphere.Update()
    other = tmp_path / "other" / "core_pred.vtp"
    other.parent.mkdir()
    write_mesh(Mesh(dataset=sphere.GetOutput(), space="LPS", path=None), other, {"scar_probability": np.zeros(50)})
    for extra, expected_line in (
            (["--core-mesh", str(other)], f"The core model 'core_pred.vtp' has 50 nodes but 'phantom_mesh' has "
                                          f"{mesh.n_points}: apply the core model to the same mesh"),
            (["--volume", str(tmp_path / "missing.nii.gz"), "--scar-rule", "psi", "--scar-target", "core",
              "--core-mesh", str(tmp_path / "core_pred.vtk")], "this run learns the core (--scar-target core)")):
        argv = [a for a in base if a not in ("--model", str(case["dir"] / "model.pth"))] if "--volume" in extra else base
        status = script.run(argv + ["--output", str(tmp_path / "o.vtk")] + extra)
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1 and expected_line in err[0], err
    assert not (tmp_path / "o.vtk").exists()


def test_batch_takes_the_core_runs_output_as_its_mesh(case, trained, tmp_path):
    """The core run's output given as --mesh of the scar run (the same mesh): its note of the core run's
    rule (target core) is an earlier run's, which this run replaces; the check of --core-mesh before the
    training must not read it as 'the model to tag learned the core'."""
    import json

    from cardioscar.io.meshio import SCAR_RULE_ARRAY, set_text_field, text_field, write_mesh

    mesh = read_mesh(case["paths"]["mesh"])
    set_text_field(mesh.dataset, SCAR_RULE_ARRAY, json.dumps({"rule": "nsd", "border": 2.0, "core": 3.0,
                                                              "target": "core"}))
    for name in ("core_pred.vtk", "core_copy.vtk"):
        write_mesh(mesh, tmp_path / name, {"scar_probability": np.zeros(mesh.n_points)})
    assert _load_script().run(["--model", str(case["dir"] / "model.pth"), "--mesh", str(tmp_path / "core_pred.vtk"),
                               "--core-mesh", str(tmp_path / "core_copy.vtk"), "--seed", "7", "--output",
                               str(tmp_path / "tagged.vtk")]) == 0
    assert text_field(read_mesh(tmp_path / "tagged.vtk").dataset, SCAR_RULE_ARRAY) is None  # a labels model's

def test_batch_rule_masks_from_label_maps_and_a_segmentation_file_agree(tmp_path, capsys):
    """n-SD with a user-drawn remote region, from label-map files and from one Slicer segmentation
    file (.seg.nrrd, written by Slicer's storage node) with named segments: the same field. The
    remote region moves the levels: without it (darkest sector) the field differs."""
    import SimpleITK as sitk
    import slicer
    import vtk

    from cardioscar.phantoms.phantom import raw_lge_acquisition

    phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=3))
    paths = write_phantom(phantom, tmp_path)
    lge, labels = raw_lge_acquisition(phantom)
    sitk.WriteImage(lge, str(tmp_path / "lge.nii.gz"))
    sitk.WriteImage(labels, str(tmp_path / "labels.nii.gz"))
    values, image = sitk.GetArrayFromImage(labels), sitk.GetArrayFromImage(lge)
    bright = (values == 2) & (image > np.percentile(image[values == 2], 80))
    remote = sitk.GetImageFromArray(bright.astype(np.uint8))
    remote.CopyInformation(labels)
    sitk.WriteImage(remote, str(tmp_path / "remote.nii.gz"))
    blood = sitk.GetImageFromArray((values == 1).astype(np.uint8))
    blood.CopyInformation(labels)
    sitk.WriteImage(blood, str(tmp_path / "blood.nii.gz"))
    # the segmentation: Slicer's import of the label maps, segments renamed, saved as .seg.nrrd
    context = csl.create_scene()
    segmentation = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    label_node = csl.load_volume(context.scene, tmp_path / "labels.nii.gz", labelmap=True)
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(label_node)
    for path in (tmp_path / "labels.nii.gz", tmp_path / "remote.nii.gz"):
        node = csl.load_volume(context.scene, path, labelmap=True)
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(node, segmentation)
    ids = vtk.vtkStringArray()
    segmentation.GetSegmentation().GetSegmentIDs(ids)
    for index, name in enumerate(["Blood", "Myocardium", "Remote"]):
        segmentation.GetSegmentation().GetSegment(ids.GetValue(index)).SetName(name)
    storage = context.scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(tmp_path / "heart.seg.nrrd"))
    assert storage.WriteData(segmentation)

    common = ["--volume", str(tmp_path / "lge.nii.gz"), "--mesh", str(paths["mesh"]), "--scar-rule", "nsd",
              "--slice-thickness-padding", str(phantom.slice_half_thickness_mm), "--preset", "fast", "--max-epochs", "3",
              "--seed", "7", "--threads", "1", "--inference-mc-samples", "3", "--no-progress"]
    script = _load_script()
    runs = {"labels": ["--myocardium-mask", str(tmp_path / "labels.nii.gz"), "--myocardium-labels", "2",
                       "--remote-mask", str(tmp_path / "remote.nii.gz")],
            "segments": ["--myocardium-mask", str(tmp_path / "heart.seg.nrrd"), "--myocardium-segment", "Myocardium",
                         "--remote-segment", "Remote"],
            "darkest": ["--myocardium-mask", str(tmp_path / "labels.nii.gz"), "--myocardium-labels", "2"]}
    fields = {}
    for name, extra in runs.items():
        assert script.run(common + extra + ["--output", str(tmp_path / f"{name}.vtk")]) == 0, capsys.readouterr().err
        fields[name] = read_mesh(tmp_path / f"{name}.vtk").point_array("scar_probability")
    np.testing.assert_allclose(fields["segments"], fields["labels"], atol=1e-6)
    assert np.abs(fields["darkest"] - fields["labels"]).max() > 0.05
    # mistakes: one line each, nothing written
    for extra, expected in (
            (["--myocardium-mask", str(tmp_path / "heart.seg.nrrd"), "--myocardium-segment", "Wall"],
             "has no segment named 'Wall'"),
            (["--myocardium-mask", str(tmp_path / "labels.nii.gz"), "--myocardium-labels", "2", "--remote-mask",
              str(tmp_path / "blood.nii.gz")], "remote region 'blood' has no pixel inside the myocardium")):
        assert script.run(common + extra + ["--output", str(tmp_path / "bad.vtk")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected.lower() in err[0].lower(), err
    assert not (tmp_path / "bad.vtk").exists()
    argv = ["--volume", str(tmp_path / "lge.nii.gz"), "--mesh", str(paths["mesh"]), "--output", str(tmp_path / "x.vtk"),
            "--remote-segment", "Remote"]
    assert script.run(argv) == 2 and "--remote-segment need --scar-rule" in capsys.readouterr().err


def test_a_mesh_the_opencarp_export_refuses_is_refused_before_the_run(case, tmp_path, capsys):
    """--export-opencarp with a tetrahedral mesh that also holds its boundary triangles as cells (as
    gmsh writes it): the export refuses it (openCARP would simulate the faces as tissue), and the
    batch script now says so before training instead of after it."""
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    from cardioscar.io.meshio import Mesh, write_mesh

    mesh = read_mesh(case["paths"]["mesh"])
    surface = vtk.vtkDataSetSurfaceFilter()
    surface.SetInputData(mesh.dataset)
    surface.PassThroughPointIdsOn()
    surface.Update()
    original = vtk_to_numpy(surface.GetOutput().GetPointData().GetArray("vtkOriginalPointIds"))
    with_faces = vtk.vtkUnstructuredGrid()
    with_faces.DeepCopy(mesh.dataset)
    ids = vtk.vtkIdList()
    for c in range(surface.GetOutput().GetNumberOfCells()):
        surface.GetOutput().GetCellPoints(c, ids)
        with_faces.InsertNextCell(vtk.VTK_TRIANGLE, 3, [int(original[ids.GetId(k)]) for k in range(3)])
    write_mesh(Mesh(dataset=with_faces, space="LPS", path=None), tmp_path / "with_faces.vtk")
    argv = [str(a) for a in _common(case)] + ["--mesh", str(tmp_path / "with_faces.vtk"), "--output",
                                               str(tmp_path / "o.vtk"), "--export-opencarp", str(tmp_path / "heart")]
    status = _load_script().run(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "a simulator would take them as tissue" in err[0], err
    assert not (tmp_path / "o.vtk").exists() and not list(tmp_path.glob("heart.*"))


def test_a_biventricular_mesh_with_the_fibre_rule_is_refused_before_the_run(case, tmp_path, capsys):
    """--fibre-rule on a mesh of both ventricles: the LV rule refuses it, and the batch script says
    so before training instead of after it, with its own advice: it advised "export without
    --fibre-rule rule (or with --fibre-rule CELLFIELD)", where --fibre-rule takes no value and no
    cell field can be given (zstalefibre)."""
    from cardioscar.io.meshio import write_mesh
    from test_simulation_fibres import _ventricles_mesh

    write_mesh(_ventricles_mesh(with_rv=True), tmp_path / "biv.vtk")
    argv = [str(a) for a in _common(case)] + ["--mesh", str(tmp_path / "biv.vtk"), "--output", str(tmp_path / "o.vtk"),
                                               "--export-opencarp", str(tmp_path / "heart"), "--fibre-rule"]
    status = _load_script().run(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "biv.vtk looks biventricular" in err[0], err
    assert err[0].endswith("give an LV-only mesh, or leave --fibre-rule out (no fibres)"), err
    assert not (tmp_path / "o.vtk").exists() and not list(tmp_path.glob("heart.*"))


def test_a_step_inside_a_step_speaks_the_inner_step_s_words():
    """_doing's steps nested: the outer step overwrote the inner's mark on an error and reworded its
    warnings first, so an AHA step's error inside an export step named export's options
    (--threshold, where the script's is --aha-threshold), a warning's --output became
    --export-opencarp (the AHA step's --output is the script's own)."""
    import logging

    from cardioscar.errors import CardioScarError

    script = _load_script()
    parser = script.build_parser()
    heard: list[str] = []

    class Heard(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            heard.append(record.getMessage())

    handler = Heard(logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        with pytest.raises(CardioScarError) as raised:
            with script._doing("export", parser):
                logging.getLogger("cardioscar").warning("the export writes --output")
                with script._doing("aha", parser):
                    logging.getLogger("cardioscar").warning("the AHA arrays go on --output")
                    raise CardioScarError("--threshold 2: use a value between 0 and 1")
        logging.getLogger("cardioscar").warning("after the steps: --output")
    finally:
        logging.getLogger().removeHandler(handler)
    assert raised.value.batch_verb == "aha"
    assert script._in_script_words(raised.value, parser) == "--aha-threshold 2: use a value between 0 and 1"
    assert heard == ["the export writes --export-opencarp", "the AHA arrays go on --output", "after the steps: --output"]
    assert not any(isinstance(f, script._ScriptWords) for f in handler.filters)
