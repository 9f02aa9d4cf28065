"""The ``cardioscar`` command line, run as a user runs it (a subprocess on real files).

Covers the documented verbs and options, the full prepare -> train -> apply path recovering a
known scar, fine-tuning, and the one-line errors for the pitfalls users actually hit. Each verb
runs at least once as ``python -m cardioscar`` (the installed entry), and so do the refusals of
files VTK and ITK cannot read (what those libraries print themselves reaches only a process's own
stderr); the other refusals go through the same entry function in this process (``cli``,
conftest's ``run_cli_in_process``: the same parser, stderr and exit status, without a new
interpreter's 2-3 s of imports per call).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import vtk
from vtk.util import numpy_support

from cardioscar import __version__
from cardioscar.evaluate.metrics import dice
from conftest import run_cli, run_cli_in_process as cli


def _point_array(path, name: str) -> np.ndarray:
    reader = vtk.vtkGenericDataObjectReader() if str(path).endswith(".vtk") else vtk.vtkXMLGenericDataObjectReader()
    reader.SetFileName(str(path))
    reader.Update()
    array = reader.GetOutput().GetPointData().GetArray(name)
    assert array is not None, f"{name} missing from {path}"
    return numpy_support.vtk_to_numpy(array)


def _assert_user_error(proc, *fragments: str) -> None:
    """A user error: non-zero exit, one line on stderr naming the problem, no traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]


def test_version_and_help():
    proc = run_cli("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout
    for verb in ("prepare", "train", "fine-tune", "apply", "evaluate", "phantom", "demo"):
        proc = run_cli(verb, "--help")
        assert proc.returncode == 0, proc.stderr
        assert "usage: cardioscar " + verb in proc.stdout


def test_documented_defaults_in_help():
    text = " ".join(run_cli("prepare", "--help").stdout.split())
    assert "--slice-thickness-padding" in text and "default 5.0" in text and "ScalarValue" in text
    text = " ".join(run_cli("apply", "--help").stdout.split())
    assert "default 10" in text and "default 50000" in text


@pytest.fixture(scope="module")
def trained_case(small_phantom, tmp_path_factory):
    """prepare (with partial-volume correction) -> train (fast preset) -> apply on the small phantom, via the CLI."""
    phantom, paths = small_phantom
    out = tmp_path_factory.mktemp("cli")
    padding = str(phantom.slice_half_thickness_mm)
    proc = run_cli("prepare", "--mesh-vtk", paths["mesh"], "--image", paths["image"], "--partial-volume-correction",
                   "--slice-thickness-padding", padding, "--output", out / "data.npz")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("train", "--training-data", out / "data.npz", "--output", out / "model.pth",
                   "--preset", "fast", "--no-progress", "--cpu")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("apply", "--model", out / "model.pth", "--mesh", paths["mesh"],
                   "--output", out / "result.vtk", "--threshold", "0.5", "--cpu")
    assert proc.returncode == 0, proc.stderr
    return phantom, paths, out


def test_prepare_train_apply_recovers_known_scar(trained_case):
    phantom, paths, out = trained_case
    probability = _point_array(out / "result.vtk", "scar_probability")
    uncertainty = _point_array(out / "result.vtk", "scar_uncertainty")
    binary = _point_array(out / "result.vtk", "scar_binary")
    assert len(probability) == len(phantom.truth)
    assert probability.min() >= 0 and probability.max() <= 1
    assert uncertainty.min() >= 0 and uncertainty.max() > 0
    np.testing.assert_array_equal(binary, probability >= 0.5)
    assert dice(probability, phantom.truth) >= 0.8
    header = (out / "result.vtk").read_bytes()[:300]
    assert b"SPACE=LPS" in header


def test_train_logs_lines_not_a_bar_into_a_log_file(trained_case):
    """Trained with its stderr going to a pipe (a redirected run, a cluster job's log), as a user's
    ``cardioscar train ... 2> train.log``: the progress comes as separate lines, not tqdm's bar, whose
    carriage returns made the whole training one line of the log with the shape prior's message
    glued into it."""
    _, _, out = trained_case
    proc = run_cli("train", "--training-data", out / "data.npz", "--output", out / "logged.pth",
                   "--preset", "fast", "--max-epochs", "30", "--cpu")
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "epoch/s" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert "  epoch 30/30" in "\n".join(lines) and max(map(len, lines)) < 400
    assert any(line.startswith("shape prior (auto): ") for line in lines)


def test_training_data_has_documented_keys(trained_case):
    _, _, out = trained_case
    with np.load(out / "data.npz") as data:
        for key in ("coordinates", "intensities", "group_ids", "group_sizes", "scaler_min", "scaler_max"):
            assert key in data.files
        assert data["coordinates"].shape[1] == 3 and data["intensities"].shape[1] == 1
        assert data["group_sizes"].sum() == len(data["group_ids"])
        # The scaler covers every mesh node, so training rows lie inside the unit cube.
        assert data["coordinates"].min() >= 0 and data["coordinates"].max() <= 1


def test_checkpoint_layout_loads_weights_only(trained_case):
    _, _, out = trained_case
    checkpoint = torch.load(out / "model.pth", weights_only=True)
    for key in ("model_state_dict", "history", "hyperparameters", "dataset_info", "provenance"):
        assert key in checkpoint
    assert checkpoint["provenance"]["cardioscar_version"] == __version__
    assert len(checkpoint["dataset_info"]["scaler_min"]) == 3
    assert checkpoint["history"]["best_loss"] == pytest.approx(min(checkpoint["history"]["train_loss"]))


def test_fine_tune_freezes_first_layers(trained_case):
    _, _, out = trained_case
    # new data (halved targets): the converged model must move; on its own training data its
    # first fine-tuning epoch can stay the best one, and the best epoch's weights are kept
    with np.load(out / "data.npz") as data:
        arrays = {key: data[key] for key in data.files}
    arrays["intensities"] = arrays["intensities"] * 0.5
    np.savez(out / "new_data.npz", **arrays)
    proc = run_cli("fine-tune", "--model", out / "model.pth", "--training-data", out / "new_data.npz",
                   "--output", out / "tuned.pth", "--freeze-layers", "2", "--max-epochs", "20",
                   "--preset", "fast", "--no-progress", "--cpu")
    assert proc.returncode == 0, proc.stderr
    before = torch.load(out / "model.pth", weights_only=True)
    after = torch.load(out / "tuned.pth", weights_only=True)
    for key in ("hidden_dim", "n_layers", "dropout_rate"):  # the architecture survives fine-tuning
        assert after["hyperparameters"][key] == before["hyperparameters"][key]
    assert after["provenance"]["frozen_layers"] == 2
    weights = [k for k in before["model_state_dict"] if k.endswith("weight")]
    assert len(weights) == before["hyperparameters"]["n_layers"] + 1 >= 3
    for name in weights[:2]:
        torch.testing.assert_close(after["model_state_dict"][name], before["model_state_dict"][name])
    assert any(not torch.equal(after["model_state_dict"][n], before["model_state_dict"][n]) for n in weights[2:])
    assert after["history"]["best_epoch"] > 1


def test_evaluate_prints_metrics(trained_case, tmp_path):
    _, paths, out = trained_case
    proc = run_cli("evaluate", "--prediction", out / "result.vtk", "--truth", paths["mesh"], "--json", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    assert '"dice"' in proc.stdout and (tmp_path / "m.json").is_file()
    metrics = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert 0.0 < metrics["mean_uncertainty"] < 0.5  # from the prediction's scar_uncertainty field
    # how well the fields find the nodes wrong at 0.5: the risk apply wrote, scored beside the margin's
    from cardioscar.evaluate.metrics import wrong_node_auc
    from cardioscar.io.meshio import read_mesh

    predicted, truth = read_mesh(out / "result.vtk"), read_mesh(paths["mesh"]).point_array("scar_truth")
    p, risk = predicted.point_array("scar_probability"), predicted.point_array("scar_error_risk")
    assert metrics["error_risk_wrong_auc"] == pytest.approx(wrong_node_auc(risk, p, truth))
    assert metrics["margin_wrong_auc"] == pytest.approx(wrong_node_auc(-np.abs(p - 0.5), p, truth))
    assert 0.5 < metrics["error_risk_wrong_auc"] <= 1.0 and metrics["uncertainty_wrong_auc"] is not None


def test_apply_with_corrupted_model_is_a_user_error(trained_case, tmp_path):
    _, paths, out = trained_case
    broken = tmp_path / "broken.pth"
    broken.write_bytes((out / "model.pth").read_bytes()[:200])
    proc = cli("apply", "--model", broken, "--mesh", paths["mesh"], "--output", tmp_path / "o.vtk")
    _assert_user_error(proc, "broken.pth")
    assert not (tmp_path / "o.vtk").exists()


# ------------------------------------------------------------------ errors users hit


def test_no_overlap_prints_both_bounding_boxes(small_phantom, tmp_path):
    phantom, paths = small_phantom
    image = sitk.ReadImage(str(paths["image"]))
    image.SetOrigin(tuple(np.array(image.GetOrigin()) + 500.0))
    moved = tmp_path / "moved.nii.gz"
    sitk.WriteImage(image, str(moved))
    proc = cli("prepare", "--mesh-vtk", paths["mesh"], "--image", moved, "--output", tmp_path / "d.npz")
    _assert_user_error(proc, "bounds")
    assert proc.stderr.count("[") >= 2  # both boxes printed
    assert not (tmp_path / "d.npz").exists()


def test_slice_index_out_of_range_prints_valid_range(small_phantom, tmp_path):
    _, paths = small_phantom
    depth = sitk.ReadImage(str(paths["image"])).GetSize()[2]
    proc = cli("prepare", "--mesh-vtk", paths["mesh"], "--image", paths["image"],
               "--slice-indices", f"0,{depth}", "--output", tmp_path / "d.npz")
    _assert_user_error(proc, str(depth), f"0-{depth - 1}")


def test_memory_running_out_while_preparing_advises_what_helps_preparing(small_phantom, tmp_path, capsys,
                                                                          monkeypatch):
    """``prepare`` has no batches, yet memory running out in it advised ``--batch-size (or
    --mc-samples)``, options it does not take; now fewer slices or a coarser mesh (injected
    MemoryError, in process: a real one needs the machine's memory filled)."""
    import cardioscar.logic
    from cardioscar.cli import main

    def out_of_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(cardioscar.logic, "map_slices_to_nodes", out_of_memory)
    _, paths = small_phantom
    assert main(["prepare", "--mesh-vtk", str(paths["mesh"]), "--image", str(paths["image"]),
                 "--output", str(tmp_path / "d.npz")]) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert line.startswith("cardioscar prepare: error: out of memory") and "--batch-size" not in line
    assert "--slice-indices" in line and "coarser mesh" in line and not (tmp_path / "d.npz").exists()


def test_memory_running_out_elsewhere_names_no_batch_option():
    """``aha``, ``export`` and ``mesh-from-labels`` take no ``--batch-size``: running out of memory
    there advised it anyway; the batched commands keep that advice."""
    from cardioscar.cli import out_of_memory

    for verb in ("aha", "export", "mesh-from-labels", "demo"):
        assert "--batch-size" not in out_of_memory(verb) and "coarser mesh" in out_of_memory(verb)
    for verb in ("train", "fine-tune", "apply"):
        assert "--batch-size" in out_of_memory(verb)


def test_missing_scalar_field_lists_fields(small_phantom, tmp_path):
    from cardioscar.prepare.slices import slice_to_vtk_grid, slices_from_image

    _, paths = small_phantom
    layer = slices_from_image(sitk.ReadImage(str(paths["image"])), slice_indices=[3])[0]
    grid = tmp_path / "layer.vtk"
    slice_to_vtk_grid(layer, grid, scalar_field="Intensity")
    proc = cli("prepare", "--mesh-vtk", paths["mesh"], "--grid-layers", grid, "--output", tmp_path / "d.npz")
    _assert_user_error(proc, "ScalarValue", "Intensity")


def test_unreadable_inputs(small_phantom, tmp_path):
    _, paths = small_phantom
    bad_mesh = tmp_path / "bad.vtk"
    bad_mesh.write_text("# vtk DataFile Version 3.0\ngarbage\n")
    proc = run_cli("prepare", "--mesh-vtk", bad_mesh, "--image", paths["image"], "--output", tmp_path / "d.npz")
    _assert_user_error(proc, "bad.vtk")
    bad_image = tmp_path / "bad.nii.gz"
    bad_image.write_bytes(b"not an image at all")
    proc = run_cli("prepare", "--mesh-vtk", paths["mesh"], "--image", bad_image, "--output", tmp_path / "d.npz")
    _assert_user_error(proc, "bad.nii.gz")
    proc = run_cli("prepare", "--mesh-vtk", tmp_path / "absent.vtk", "--image", paths["image"], "--output", tmp_path / "d.npz")
    _assert_user_error(proc, "absent.vtk")


def test_empty_mesh_is_rejected(small_phantom, tmp_path):
    _, paths = small_phantom
    empty = tmp_path / "empty.vtk"
    writer = vtk.vtkPolyDataWriter()
    writer.SetInputData(vtk.vtkPolyData())
    writer.SetFileName(str(empty))
    writer.Write()
    proc = run_cli("prepare", "--mesh-vtk", empty, "--image", paths["image"], "--output", tmp_path / "d.npz")
    _assert_user_error(proc, "empty.vtk")


def test_two_dimensional_image_is_rejected(small_phantom, tmp_path):
    _, paths = small_phantom
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.Image(32, 32, sitk.sitkFloat32), str(flat))
    proc = cli("prepare", "--mesh-vtk", paths["mesh"], "--image", flat, "--output", tmp_path / "d.npz")
    _assert_user_error(proc, "flat.nii.gz", "3D")


def test_raw_intensities_need_an_explicit_choice(small_phantom, tmp_path):
    phantom, paths = small_phantom
    image = sitk.ReadImage(str(paths["image"])) * 400.0
    raw = tmp_path / "raw.nii.gz"
    sitk.WriteImage(image, str(raw))
    proc = cli("prepare", "--mesh-vtk", paths["mesh"], "--image", raw, "--output", tmp_path / "d.npz")
    _assert_user_error(proc, "--normalize-intensities", "--scar-labels")
    proc = cli("prepare", "--mesh-vtk", paths["mesh"], "--image", raw, "--normalize-intensities",
               "--slice-thickness-padding", str(phantom.slice_half_thickness_mm), "--output", tmp_path / "d.npz")
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "d.npz") as data:
        assert data["intensities"].min() >= 0 and data["intensities"].max() == pytest.approx(1.0)


def test_bad_training_option_names_the_option_typed_and_range(trained_case, tmp_path):
    """The option as typed (--mc-samples), not TrainingConfig's field (mc_samples) the API names."""
    _, _, out = trained_case
    proc = cli("train", "--training-data", out / "data.npz", "--output", tmp_path / "m.pth", "--mc-samples", "0")
    _assert_user_error(proc, "--mc-samples must be a positive integer, got 0")
    assert not (tmp_path / "m.pth").exists()


def test_phantom_long_axis_slice_pools_with_the_stack(tmp_path):
    """`phantom --long-axis` writes a long-axis slice beside the stack; `prepare --image` takes both
    (with the partial-volume correction on the volumetric mesh): the long-axis slice adds groups."""
    proc = run_cli("phantom", "--output-dir", tmp_path, "--nodes", "3000", "--seed", "4", "--long-axis")
    assert proc.returncode == 0, proc.stderr
    stack, long_axis = tmp_path / "phantom_lge.nii.gz", tmp_path / "phantom_lge_long_axis.nii.gz"
    assert sitk.ReadImage(str(long_axis)).GetSize()[2] == 1
    half = str(json.loads((tmp_path / "phantom.json").read_text(encoding="utf-8"))["slice_half_thickness_mm"])
    outputs = {}
    for name, images in (("stack", [stack]), ("both", [stack, long_axis])):
        outputs[name] = tmp_path / f"{name}.npz"
        proc = cli("prepare", "--mesh", tmp_path / "phantom_mesh.vtk", "--image", *images, "--partial-volume-correction",
                   "--slice-thickness-padding", half, "--output", outputs[name])
        assert proc.returncode == 0, proc.stderr
    only, both = np.load(outputs["stack"]), np.load(outputs["both"])
    n_stack = sitk.ReadImage(str(stack)).GetSize()[2]
    assert [str(label) for label in both["slice_labels"]][n_stack:] == ["phantom_lge_long_axis.nii.gz k=0"]
    from_long_axis = both["group_slice"] == n_stack
    assert from_long_axis.sum() > 0 and len(both["group_sizes"]) == len(only["group_sizes"]) + from_long_axis.sum()
    np.testing.assert_array_equal(both["group_coverage"][: len(only["group_coverage"])], only["group_coverage"])


def test_outputs_that_would_destroy_an_input_or_are_of_the_wrong_kind_are_refused(trained_case, tmp_path):
    """`prepare --output heart.vtk` turned the mesh into a zip archive, `train --output data.npz`
    replaced the training data by a checkpoint, and fine-tuning could overwrite its own start."""
    _, paths, out = trained_case
    mesh = tmp_path / "heart.vtk"
    mesh.write_bytes(paths["mesh"].read_bytes())
    before = mesh.read_bytes()
    _assert_user_error(cli("prepare", "--mesh-vtk", mesh, "--image", paths["image"], "--output", mesh),
                       "--output must end in .npz", "heart.vtk")
    assert mesh.read_bytes() == before
    data = tmp_path / "data.npz"
    data.write_bytes((out / "data.npz").read_bytes())
    _assert_user_error(cli("train", "--training-data", data, "--output", data), "--output must end in .pth")
    model = tmp_path / "model.pth"
    model.write_bytes((out / "model.pth").read_bytes())
    _assert_user_error(cli("fine-tune", "--model", model, "--training-data", data, "--output", model),
                       "is also an input")
    assert model.read_bytes() == (out / "model.pth").read_bytes() and data.read_bytes() == (out / "data.npz").read_bytes()


def test_options_that_would_be_ignored_are_refused(trained_case, tmp_path):
    _, paths, out = trained_case
    _assert_user_error(cli("fine-tune", "--model", out / "model.pth", "--training-data", out / "data.npz",
                           "--output", tmp_path / "t.pth", "--hidden-dim", "64", "--dropout-rate", "0.3"),
                       "unrecognized arguments: --hidden-dim 64 --dropout-rate 0.3")
    _assert_user_error(cli("prepare", "--mesh-vtk", paths["mesh"], "--grid-layers", tmp_path / "layer.vtk",
                           "--slice-indices", "1", "--output", tmp_path / "d.npz"),
                       "--slice-indices and --slice-axis choose slices of an --image")
    _assert_user_error(cli("evaluate", "--prediction", out / "result.vtk", "--truth", paths["mesh"],
                           "--threshold", "nan"), "outside the valid range 0 < threshold < 1")
    prediction = tmp_path / "result.vtk"
    prediction.write_bytes((out / "result.vtk").read_bytes())
    _assert_user_error(cli("evaluate", "--prediction", prediction, "--truth", paths["mesh"], "--json", prediction),
                       "--json must end in .json")
    assert prediction.read_bytes() == (out / "result.vtk").read_bytes()
    prediction.unlink()
    assert not list(tmp_path.iterdir())
