"""Round 16 of the bad-input review: the reconstruction path a new user takes first (prepare from a
scar map, the mesh, export to openCARP).

Each test is one input that ran to exit 0 with a wrong or misleading result, or was refused with a
message that sent the user to the wrong file, before this round; `Documentation/bad-input.md`'s table has a
row for each. Real parts: round 13's 1,500-node phantom (its mesh, its scar-fraction map
``phantom_lge.nii.gz``) written to disk, SimpleITK and VTK files, the real command line in process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import numpy_to_vtk

from cardioscar.errors import CardioScarError
from cardioscar.io.imageio import read_image
from cardioscar.io.meshio import read_mesh, write_mesh
from conftest import assert_refused_in_one_line
from test_bad_inputs_round13 import case  # noqa: F401 (the phantom, its raw LGE and label map on disk)


def _prepare(case, mesh, image, output: Path) -> list:
    return ["prepare", "--mesh", mesh, "--image", image, "--slice-thickness-padding", case["half"],
            "--output", output]


def _scar_map(case) -> sitk.Image:
    return sitk.ReadImage(str(case["out"] / "phantom_lge.nii.gz"))


def test_a_direction_matrix_holding_the_spacing_is_refused(case, capsys):
    """An MHA whose ``TransformMatrix`` is twice the unit directions (a converter that wrote direction
    times spacing): SimpleITK read it, the stack lay twice as far apart, and ``prepare`` was refused
    with "None of the 322 scar pixels ... reaches a mesh node", naming the mesh; a shear passed the
    same way. The phantom's own oblique (orthonormal) header is read."""
    out = case["out"]
    image = _scar_map(case)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    image.SetDirection(tuple((2.0 * direction).ravel()))
    sitk.WriteImage(image, str(out / "scaled_direction.mha"))
    assert_refused_in_one_line(_prepare(case, case["mesh"], out / "scaled_direction.mha", out / "out.npz"),
                               "scaled_direction.mha: its direction matrix's columns have lengths 2, 2, 2, not 1",
                               capsys, out)
    sheared = direction.copy()
    sheared[:, 1] = direction[:, 1] + 0.2 * direction[:, 0]
    sheared[:, 1] /= np.linalg.norm(sheared[:, 1])
    image.SetDirection(tuple(sheared.ravel()))
    sitk.WriteImage(image, str(out / "sheared.mha"))
    with pytest.raises(CardioScarError, match="sheared.mha: its direction matrix's columns are not at right angles"):
        read_image(out / "sheared.mha")
    assert read_image(out / "phantom_lge.nii.gz").GetSize() == (60, 60, 9)


def _fine_pixels(case) -> Path:
    """The phantom's scar map resampled to 0.7 mm pixels (a zero-filled reconstruction's)."""
    image = _scar_map(case)
    size = [int(round(n * s / 0.7)) for n, s in zip(image.GetSize()[:2], image.GetSpacing()[:2])]
    grid = sitk.Image(size + [image.GetSize()[2]], image.GetPixelID())
    grid.SetSpacing((0.7, 0.7, image.GetSpacing()[2]))
    grid.SetOrigin(image.GetOrigin())
    grid.SetDirection(image.GetDirection())
    path = case["out"] / "fine_pixels.nii.gz"
    sitk.WriteImage(sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear), str(path))
    return path


def test_a_mesh_in_centimetres_on_fine_pixels_is_refused(case, capsys):
    """The phantom's mesh in centimetres (9.8 units across) placed on its scar, with 0.7 mm pixels:
    14 pixels across, over the 10 the centimetre check asked for, so it trained (1,117 rows of a
    heart ten times too small), exit 0. Now it also spans under four slab half-widths (2.4 of 4 mm);
    the same mesh in millimetres on the same pixels goes through."""
    out = case["out"]
    fine = _fine_pixels(case)
    mesh = read_mesh(case["mesh"])
    points = mesh.points_lps()
    on_scar = points[mesh.point_array("scar_truth") > 0.5].mean(axis=0)
    dataset = mesh.dataset.NewInstance()
    dataset.DeepCopy(mesh.dataset)
    moved = vtk.vtkPoints()
    moved.SetData(numpy_to_vtk(np.ascontiguousarray((points - points.mean(axis=0)) / 10.0 + on_scar)))
    dataset.SetPoints(moved)
    writer = vtk.vtkUnstructuredGridWriter()
    writer.SetFileName(str(out / "mesh_cm.vtk"))
    writer.SetInputData(dataset)
    writer.Write()
    assert_refused_in_one_line(_prepare(case, out / "mesh_cm.vtk", fine, out / "out.npz"),
                               "13.9 pixels of 0.7 mm and 2.4 slab half-widths of 4 mm", capsys, out)
    from cardioscar.cli import main

    assert main([str(a) for a in _prepare(case, case["mesh"], fine, out / "fine.npz")]) == 0


@pytest.mark.parametrize("name, values, warned", [
    ("all_zero", lambda scar: np.zeros_like(scar), "No pixel of the chosen slices is scar"),
    ("inverted", lambda scar: 1.0 - scar, "of the pixels the mesh's nodes lie on are scar"),
    ("own", lambda scar: scar, None)])
def test_a_scar_map_without_scar_or_inverted_is_warned_about(case, capsys, name, values, warned):
    """A scar map with no value >= 0.5 on any chosen slice (another field exported, a probability
    scaled below 0.5) trained a scar-free heart; the map inverted (1 - scar) trained 95 % of the
    mesh's rows as scar: both exit 0 without a word. Now warned (either can be real); the
    phantom's own map is not."""
    from cardioscar.cli import main

    image = _scar_map(case)
    changed = sitk.GetImageFromArray(values(sitk.GetArrayFromImage(image)).astype(np.float32))
    changed.CopyInformation(image)
    path = case["out"] / f"{name}_map.nii.gz"
    sitk.WriteImage(changed, str(path))
    capsys.readouterr()
    assert main([str(a) for a in _prepare(case, case["mesh"], path, case["out"] / f"{name}.npz")]) == 0
    stderr = capsys.readouterr().err
    assert ("No pixel of the chosen slices is scar" in stderr) == (warned == "No pixel of the chosen slices is scar")
    assert ("of the pixels the mesh's nodes lie on are scar" in stderr) == (
        warned == "of the pixels the mesh's nodes lie on are scar"), stderr[-1500:]


def test_an_opencarp_export_in_millimetres_is_warned_about(case, capsys):
    """``export --units mm`` for openCARP: the ``.pts`` held millimetres, which openCARP reads as
    micrometres (a heart 1,000 times too small), exit 0 without a word. Now a warning names it; the
    default micrometres do not warn, and the sidecar still records the units written."""
    from cardioscar.cli import main

    out = case["out"]
    mesh = read_mesh(case["mesh"])
    prediction = out / "prediction_units.vtu"
    write_mesh(mesh, prediction, {"scar_probability": mesh.point_array("scar_truth").astype(np.float64)})
    for units, warned in (("mm", True), ("um", False)):
        capsys.readouterr()
        assert main(["export", "--mesh", str(prediction), "--fibres", "rule", "--units", units, "--output",
                     str(out / f"heart_{units}")]) == 0
        stderr = capsys.readouterr().err
        assert ("openCARP reads .pts as micrometres" in stderr) == warned, stderr[-1500:]
        assert json.loads((out / f"heart_{units}.json").read_text())["units"] == units


@pytest.mark.parametrize("indices, warned", [("7,8", True), ("0", True), ("2,4,6", False), ("0,8", False)])
def test_slices_all_at_one_end_of_the_mesh_are_warned_about(case, capsys, indices, warned):
    """``--slice-indices 7,8`` (the phantom's two apical slices of nine): 75 % of the mesh's nodes lie
    beyond them, and the model's answer there is the end slices' scar carried on, exit 0 without a
    word. Now warned; slices across the heart (every other one, the two ends) are not."""
    from cardioscar.cli import main

    capsys.readouterr()
    assert main([str(a) for a in _prepare(case, case["mesh"], case["out"] / "phantom_lge.nii.gz",
                                          case["out"] / "ends.npz") + ["--slice-indices", indices]]) == 0
    named = [line for line in capsys.readouterr().err.splitlines() if "lie at one end of the mesh" in line]
    assert len(named) == warned, named


def test_a_model_given_as_training_data_is_named_a_model(case, tmp_path, capsys):
    """``train --training-data model.pth`` (the two files of a run swapped): numpy opened the torch
    zip and the refusal listed a hundred ``archive/data/N`` entries as the keys present, telling
    the user to re-run ``prepare``. Now it names the file a trained model. A checkpoint written by
    torch.save is enough to show it (no training)."""
    import torch

    torch.save({"model_state_dict": {"layer.weight": torch.zeros(2, 2)}}, tmp_path / "model.pth")
    assert_refused_in_one_line(["train", "--training-data", tmp_path / "model.pth", "--output", tmp_path / "out.pth",
                                "--max-epochs", "1"],
                               "model.pth is a PyTorch checkpoint (a trained model), not training data", capsys,
                               tmp_path)
