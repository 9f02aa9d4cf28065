"""Bad inputs to the core reconstruction (prepare / train / apply / evaluate) that gave a wrong
field or score with exit 0, found by a new user following the README. Each must now be refused
by the real command line (``cardioscar.cli.main``, in this process for speed) with one
``error:`` line naming the file or option and what to give, and write nothing.

Real files throughout: a small LV phantom (mesh with its true scar, LGE stack), its real
training data from ``prepare``, a real model trained for a few epochs, and copies of them
edited the way a user's files go wrong (a RAS mesh without its marker, a percent truth, a
renumbered mesh, a hand-made ``.npz`` in millimetres). The checks live in the library, so the
Python API and the Slicer Logic meet them too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vtk
from vtk.util.numpy_support import numpy_to_vtk

from cardioscar.cli import main
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh
from conftest import assert_refused_in_one_line, trained_small_phantom


def _mesh_with(mesh: Mesh, path: Path, points: np.ndarray | None = None, space: str = "LPS",
               **fields: np.ndarray) -> Path:
    """A copy of ``mesh`` with other point coordinates (as stored in the file) and frame marker."""
    dataset = vtk.vtkUnstructuredGrid()
    dataset.DeepCopy(mesh.dataset)
    if points is not None:
        dataset.GetPoints().SetData(numpy_to_vtk(np.ascontiguousarray(points), deep=True))
    write_mesh(Mesh(dataset=dataset, space=space, path=None), path, fields)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("core_bad")
    phantom, paths = trained_small_phantom(out, max_epochs=5)
    mesh = read_mesh(paths["mesh"])
    points = mesh.points_lps()
    truth = phantom.truth.astype(np.float64)
    data = dict(np.load(out / "data.npz", allow_pickle=False))
    millimetres = data["scaler_min"] + data["coordinates"] * (data["scaler_max"] - data["scaler_min"])
    np.savez(out / "data_in_mm.npz", **{**data, "coordinates": millimetres.astype(np.float32)})
    return {
        "out": out, "mesh": paths["mesh"], "image": paths["image"], "half": phantom.slice_half_thickness_mm,
        "model": out / "model.pth",
        # the LPS file relabelled RAS: what a RAS mesh read as LPS (marker lost) looks like to the model
        "mirrored": _mesh_with(mesh, out / "mirrored.vtk", points, space="RAS"),
        "prediction": _mesh_with(mesh, out / "prediction.vtk", scar_probability=truth),
        "percent_truth": _mesh_with(mesh, out / "percent.vtk", scar_truth=100.0 * truth),
        "renumbered": _mesh_with(mesh, out / "renumbered.vtk", points[::-1].copy(), scar_probability=truth[::-1]),
        "data_in_mm": out / "data_in_mm.npz",
    }


CASES = {
    "apply to a mesh in another frame (RAS read as LPS)": (
        lambda f: ["apply", "--model", f["model"], "--mesh", f["mirrored"], "--output", f["out"] / "out.vtk"],
        "lie outside the box of the mesh the model was trained on"),
    "evaluate a truth in percent": (
        lambda f: ["evaluate", "--prediction", f["prediction"], "--truth", f["percent_truth"], "--json",
                   f["out"] / "out.json"],
        "evaluate needs scar fractions or probabilities in [0, 1]"),
    "evaluate a probability field that is not one": (
        lambda f: ["evaluate", "--prediction", f["percent_truth"], "--probability-field", "scar_truth", "--truth",
                   f["mesh"], "--json", f["out"] / "out.json"],
        "in [0, 1]"),
    "evaluate a prediction on the same nodes renumbered": (
        lambda f: ["evaluate", "--prediction", f["renumbered"], "--truth", f["mesh"], "--json", f["out"] / "out.json"],
        "not at the same places"),
    "evaluate with a misspelt --uncertainty-field": (
        lambda f: ["evaluate", "--prediction", f["prediction"], "--truth", f["mesh"], "--uncertainty-field",
                   "scar_uncertainy", "--json", f["out"] / "out.json"],
        "has no point field 'scar_uncertainy'"),
    "train on a .npz whose coordinates are millimetres": (
        lambda f: ["train", "--training-data", f["data_in_mm"], "--output", f["out"] / "out.pth", "--preset", "fast",
                   "--max-epochs", "2"],
        "coordinates must be normalised to [0, 1]"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_command_line_refuses_in_one_line_and_writes_nothing(files, case, capsys):
    arguments, fragment = CASES[case]
    assert_refused_in_one_line(arguments(files), fragment, capsys, files["out"])


def test_the_good_inputs_still_pass(files, capsys):
    """The checks refuse the edited copies only: the phantom's own mesh, truth and data pass."""
    assert main(["apply", "--model", str(files["model"]), "--mesh", str(files["mesh"]), "--output",
                 str(files["out"] / "good.vtk")]) == 0
    assert main(["evaluate", "--prediction", str(files["prediction"]), "--truth", str(files["mesh"])]) == 0
    assert '"dice": 1.0' in capsys.readouterr().out


@pytest.mark.parametrize("edit, fragment", [
    (lambda r: {"intensities": r.intensities * 100.0}, "intensities must lie in [0, 1]"),
    (lambda r: {"coordinates": r.scaler_min + r.coordinates * (r.scaler_max - r.scaler_min)},
     "coordinates must be normalised to [0, 1]"),
])
def test_the_python_api_checks_an_in_memory_result_as_a_file(files, edit, fragment):
    """``train_scar_model`` / ``fine_tune_scar_model`` on a PreprocessingResult built in Python:
    on main a percent target or millimetre coordinates trained a model (loss 853) with warnings only."""
    from dataclasses import replace

    from cardioscar.errors import CardioScarError
    from cardioscar.logic import TrainingConfig, fine_tune_scar_model, load_preprocessing_result, train_scar_model

    result = load_preprocessing_result(files["out"] / "data.npz")
    bad = replace(result, **edit(result))
    config = TrainingConfig.fast()
    config.max_epochs = 2
    with pytest.raises(CardioScarError, match=r"The PreprocessingResult: " + fragment.replace("[", r"\[")):
        train_scar_model(bad, config)
    with pytest.raises(CardioScarError, match=fragment.replace("[", r"\[")):
        fine_tune_scar_model(files["model"], bad, config, 0)


def test_overlapping_parallel_slabs_are_named_in_a_warning(files, tmp_path, capsys):
    """A slab half-width of a whole slice spacing (the phantom: 10 mm apart, 8 mm thick, so 4 mm
    is right): every node between two slices fitted to both. On main silent (demo phantom, 300
    fast epochs: Dice 0.89 -> 0.51); a warning now, since overlapping acquisitions exist."""
    base = ["prepare", "--mesh", str(files["mesh"]), "--image", str(files["image"]), "--output"]
    capsys.readouterr()
    assert main(base + [str(tmp_path / "wide.npz"), "--slice-thickness-padding", "10"]) == 0
    stderr = capsys.readouterr().err
    assert "parallel slices have overlapping slabs" in stderr and "10 mm apart but slab half-widths 10 + 10 mm" in stderr
    assert main(base + [str(tmp_path / "right.npz"), "--slice-thickness-padding", str(files["half"])]) == 0
    assert "overlapping slabs" not in capsys.readouterr().err


def test_crossing_planes_overlap_without_a_warning(caplog):
    """Short- and long-axis planes share nodes by nature: only parallel slabs are suspect."""
    from cardioscar.prepare.mapping import warn_overlapping_parallel_slabs
    from cardioscar.prepare.slices import SliceLayer

    def plane(origin, axis_i, axis_j, half=5.0, label="s"):
        return SliceLayer(values=np.zeros((4, 4)), origin=np.asarray(origin, float), axis_i=axis_i, axis_j=axis_j,
                          spacing=(1.5, 1.5), half_thickness=half, label=label)

    short = [plane((0, 0, z), (1, 0, 0), (0, 1, 0), label=f"sa{z}") for z in (0.0, 10.0, 20.0)]
    long_axis = plane((0, 0, 0), (1, 0, 0), (0, 0, 1), half=4.0, label="la")
    with caplog.at_level("WARNING", logger="cardioscar"):
        warn_overlapping_parallel_slabs(short + [long_axis])  # touching slabs, one crossing plane
    assert not caplog.records
    with caplog.at_level("WARNING", logger="cardioscar"):
        warn_overlapping_parallel_slabs(short + [plane((0, 0, 4.0), (0, 1, 0), (1, 0, 0), label="flipped")])
    assert "2 pair(s)" in caplog.text and "'sa0.0' and 'flipped': 4 mm apart" in caplog.text


def test_a_reference_tool_training_file_keeps_the_outside_warning(files, tmp_path, capsys):
    """The reference tool fits its scaler on the slices' nodes only, so its apex and base lie
    outside the box by design: a model trained on such a file (no ``format_version``) is applied
    with the warning, not refused."""
    data = dict(np.load(files["out"] / "data.npz", allow_pickle=False))
    reference = {key: data[key] for key in ("coordinates", "intensities", "group_ids", "group_sizes", "scaler_min",
                                            "scaler_max")}
    np.savez(tmp_path / "reference.npz", **reference)
    assert main(["train", "--training-data", str(tmp_path / "reference.npz"), "--output", str(tmp_path / "ref.pth"),
                 "--preset", "fast", "--max-epochs", "2"]) == 0
    capsys.readouterr()
    assert main(["apply", "--model", str(tmp_path / "ref.pth"), "--mesh", str(files["mirrored"]), "--output",
                 str(tmp_path / "ref.vtk")]) == 0
    assert "of the nodes lie outside the region the model was trained on" in capsys.readouterr().err


def test_the_python_scores_refuse_a_percent_truth_too():
    """``evaluate_fields`` (the API behind ``evaluate``, the demo and the benchmarks) on arrays."""
    from cardioscar.errors import CardioScarError
    from cardioscar.evaluate.metrics import evaluate_fields

    probability, truth = np.array([0.9, 0.2, 0.7, 0.1]), np.array([1.0, 0.0, 0.4, 0.0])
    assert evaluate_fields(probability, truth)["dice"] == pytest.approx(2 / 3)  # 0.4 is not scar, 0.7 is called
    with pytest.raises(CardioScarError, match=r"the truth ranges 0\.\.100; evaluate needs"):
        evaluate_fields(probability, truth * 100)
    with pytest.raises(CardioScarError, match=r"the probability ranges 10\.\.90; evaluate needs"):
        evaluate_fields(probability * 100, truth)


def test_a_mesh_in_another_frame_is_named_in_a_warning_by_prepare(files, tmp_path, capsys):
    """The phantom mesh relabelled RAS (x and y mirrored in LPS) still meets some pixels: on main
    it trained silently on a third of the nodes at the wrong pixels (973 of 3039 on the 3k phantom).
    A warning, not an error: a scar map cropped around the LV may leave part of a larger mesh out.
    Since round 6 this mesh is refused as well, after the warning: none of the scar map's scar
    pixels reaches one of its nodes (``Testing/test_bad_inputs_round6.py``)."""
    base = ["prepare", "--image", str(files["image"]), "--slice-thickness-padding", str(files["half"]), "--output"]
    capsys.readouterr()
    assert main(base + [str(tmp_path / "mirrored.npz"), "--mesh", str(files["mirrored"])]) != 0
    err = capsys.readouterr().err
    assert "field of view" in err and "scar pixels of the chosen slices reaches a mesh node" in err
    assert main(base + [str(tmp_path / "right.npz"), "--mesh", str(files["mesh"])]) == 0
    assert "field of view" not in capsys.readouterr().err


def test_one_mc_sample_is_named_in_a_warning(files, tmp_path, capsys):
    """``apply --mc-samples 1`` wrote ``scar_uncertainty`` = 0 on every node without a word: read
    as certainty. Allowed (a quick look), but named."""
    capsys.readouterr()
    assert main(["apply", "--model", str(files["model"]), "--mesh", str(files["mesh"]), "--output",
                 str(tmp_path / "one.vtk"), "--mc-samples", "1"]) == 0
    assert "mc_samples 1: scar_uncertainty is 0 on every node" in capsys.readouterr().err
    assert np.all(read_mesh(tmp_path / "one.vtk").point_array("scar_uncertainty") == 0.0)


@pytest.mark.parametrize("indices, fragment", [
    ("0,2", "got the text '0,2'"),  # on main: ValueError "invalid literal for int()" (a traceback)
    ([0.7, 2], "got 0.7 in"),  # on main: slice 0, silently
    ([True, 2], "got True in"),  # on main: slice 1, silently
])
def test_the_python_api_refuses_slice_indices_that_are_not_whole_numbers(files, indices, fragment):
    from cardioscar.errors import CardioScarError
    from cardioscar.logic import PreprocessingRequest, prepare_training_data

    request = PreprocessingRequest(mesh_path=files["mesh"], image_path=files["image"], slice_indices=indices,
                                   slice_thickness_padding=files["half"])
    with pytest.raises(CardioScarError, match=fragment.replace(".", r"\.")):
        prepare_training_data(request)
    same = PreprocessingRequest(mesh_path=files["mesh"], image_path=files["image"], slice_indices=np.array([0.0, 2.0]),
                                slice_thickness_padding=files["half"])
    assert [label.split("=")[-1] for label in prepare_training_data(same).slice_labels] == ["0", "2"]
