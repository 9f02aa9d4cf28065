"""End to end on real scanner geometry, through the command line (its entry function, in this
process: the same parser, log and exit status; ``test_cli.py`` runs each verb as a new interpreter).

The biv-me case's real short-axis DICOM planes (oblique, 17.7 mm apart) with one plane left out,
so the stack is unevenly spaced as clinical stacks can be, and its fitted LV endocardial and
epicardial surfaces (4k nodes). A scar is painted as a 12 mm ball at the wall where the third
remaining plane cuts it; each plane's pixels get the ball's indicator at their centres, written
back into the real files (position and orientation unchanged). The scar is small (1.3 % of the
nodes, 20 scar pixels among 1,054 groups), the case on which the fast preset's high peak rate
used to kill the network for some seeds (Dice 0).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import vtk

from cardioscar.fit.checkpoint import load_checkpoint
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh
from cardioscar.fit.training import TrainingConfig
from conftest import BIVME, bivme_dicom, run_cli_in_process, write_dicom_series

PLANES = ("Se11", "Se1", "Se3", "Se4", "Se5")  # Se2 left out
RADIUS_MM = 12.0


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("real_geometry")
    surfaces = vtk.vtkAppendPolyData()
    for name in ("LV_ENDOCARDIAL", "EPICARDIAL"):
        surfaces.AddInputData(read_mesh(BIVME / "fitted_model_frame000" / f"patient1_{name}_000.vtk").dataset)
    surfaces.Update()
    mesh = Mesh(surfaces.GetOutput(), "LPS")
    points = mesh.points_lps()
    endocardium = read_mesh(BIVME / "fitted_model_frame000" / "patient1_LV_ENDOCARDIAL_000.vtk").points_lps()
    plane = sitk.ReadImage(str(bivme_dicom("Se3")))
    normal = np.asarray(plane.GetDirection()).reshape(3, 3)[:, 2]
    on_plane = endocardium[np.abs((endocardium - plane.GetOrigin()) @ normal) < 2.0]
    centre = on_plane[np.argmax(on_plane[:, 0])]
    truth = (np.linalg.norm(points - centre, axis=1) <= RADIUS_MM).astype(np.float32)
    write_mesh(mesh, folder / "lv.vtk")
    write_mesh(mesh, folder / "truth.vtk", {"scar_truth": truth})

    series = folder / "lge"
    series.mkdir()
    painted_planes = [_painted(name, centre) for name in PLANES]
    write_dicom_series(painted_planes, PLANES, series, "1.2.826.0.1.3680043.2.1125.91")
    return {"folder": folder, "series": series, "n_nodes": len(points), "n_scar": int(truth.sum()), "centre": centre}


def _painted(name: str, centre: np.ndarray) -> sitk.Image:
    """The real plane of biv-me series ``name`` (position, orientation, metadata) with the ball's
    indicator at its pixel centres as pixel values (1000 inside)."""
    original = sitk.ReadImage(str(bivme_dicom(name)))
    columns, rows, _ = original.GetSize()
    j, i = np.mgrid[0:rows, 0:columns]
    ijk = np.column_stack([i.ravel(), j.ravel(), np.zeros(i.size)])
    to_lps = np.asarray(original.GetDirection()).reshape(3, 3) @ np.diag(original.GetSpacing())
    centres = ijk @ to_lps.T + np.asarray(original.GetOrigin())
    scar = np.linalg.norm(centres - centre, axis=1) <= RADIUS_MM
    painted = sitk.GetImageFromArray((1000 * scar).reshape(1, rows, columns).astype(np.int16))
    painted.CopyInformation(original)
    for key in original.GetMetaDataKeys():
        painted.SetMetaData(key, original.GetMetaData(key))
    return painted


@pytest.fixture(scope="module")
def prepared(case) -> tuple[Path, str]:
    """``cardioscar prepare`` on the DICOM folder: (training data, its stderr)."""
    out = case["folder"] / "prepared.npz"
    proc = run_cli_in_process("prepare", "--image", case["series"], "--mesh", case["folder"] / "lv.vtk",
                              "--normalize-intensities", "--slice-thickness-padding", "3", "--output", out)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stderr


def test_prepare_keeps_each_real_plane_where_it_was_acquired(prepared):
    out, log = prepared
    assert "cannot be one volume (it is not evenly spaced: slice k=2 would sit 8.85 mm" in log
    targets = np.load(out)["intensities"].reshape(-1)
    assert 0 < (targets > 0.5).mean() < 0.05 and set(np.unique(targets)) <= {0.0, 1.0}


def test_fast_preset_recovers_a_small_scar_from_the_real_planes(case, prepared):
    """Seeds 0 and 1 both ended at Dice 0 before the fast preset retried failed fits; seed 0 is
    kept here (seed 1 was dropped to keep the suite within its time; the retry itself is held by
    ``test_training.py``'s dying-run test). The network
    alone (``--shape-prior off``): this is the retry's test, and here, a 12 mm scar on one plane
    of a surface mesh between planes 17.7-35 mm apart, the fast preset's ``auto`` prior (on: the
    targets are 0/1) over-calls it (Dice 0.60 against 0.70 off over seeds 0-3; Testing/benchmarks/ROBUSTNESS.md,
    *The fast preset's auto*)."""
    folder, seed = case["folder"], 0
    data, model, result = prepared[0], folder / f"m{seed}.pth", folder / f"p{seed}.vtk"
    steps = [
        ("train", "--training-data", data, "--output", model, "--preset", "fast", "--seed", str(seed), "--no-progress",
         "--shape-prior", "off"),
        ("apply", "--model", model, "--mesh", folder / "lv.vtk", "--output", result),
        ("evaluate", "--prediction", result, "--truth", folder / "truth.vtk"),
    ]
    for step in steps:
        proc = run_cli_in_process(*step)
        assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["n_nodes"] == case["n_nodes"]
    assert metrics["dice"] >= 0.6, metrics
    # the checkpoint names the peak rate its weights were trained with
    checkpoint = load_checkpoint(model)
    history, used = checkpoint["history"], checkpoint["hyperparameters"]["max_lr"]
    peak = TrainingConfig.fast().max_lr
    assert used == pytest.approx(history["max_lr"]) and (used != peak) == history["retry_kept"]
    assert min(abs(used - peak / 3 ** k) for k in range(3)) < 1e-12


LONG_AXIS = ("Se6", "Se7", "Se8", "Se9", "Se10")  # 4-chamber, 2-chamber, RV outflow


@pytest.fixture(scope="module")
def own_series(case) -> dict[str, Path]:
    """Every painted plane, short- and long-axis, as a series of its own in a folder of its own:
    the layout of the real biv-me export (one breath-hold, one series)."""
    folders = {}
    for name in PLANES + LONG_AXIS:
        folder = folders[name] = case["folder"] / "own" / name
        folder.mkdir(parents=True)
        original = sitk.ReadImage(str(bivme_dicom(name)))
        write_dicom_series([_painted(name, case["centre"])], [name], folder, original.GetMetaData("0020|000e"))
    return folders


def _prepare(case, images: list[Path], out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cli_in_process("prepare", "--image", *images, "--mesh", case["folder"] / "lv.vtk",
                              "--normalize-intensities", "--slice-thickness-padding", "3", "--output", out, *extra)


def test_one_series_per_plane_gives_the_rows_of_one_stack(case, prepared, own_series):
    out = case["folder"] / "own_short_axis.npz"
    along_the_normal = PLANES[::-1]  # the order in which a series' files are read
    proc = _prepare(case, [own_series[name] for name in along_the_normal], out)
    assert proc.returncode == 0, proc.stderr
    stack, separate = np.load(prepared[0]), np.load(out)
    for key in ("coordinates", "intensities", "group_ids", "node_ids", "group_slice", "group_pixel"):
        np.testing.assert_array_equal(separate[key], stack[key], err_msg=key)
    assert [str(label) for label in separate["slice_labels"]] == [f"{name} k=0" for name in along_the_normal]


@pytest.fixture(scope="module")
def with_long_axis(case, own_series) -> tuple[Path, str]:
    """``cardioscar prepare`` on every short- and long-axis series: (training data, its stderr)."""
    out = case["folder"] / "with_long_axis.npz"
    proc = _prepare(case, [own_series[name] for name in PLANES + LONG_AXIS], out)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stderr


def test_long_axis_series_add_groups_on_their_own_planes(case, own_series, with_long_axis):
    names = PLANES + LONG_AXIS
    out, log = with_long_axis
    assert f"{len(names)} of the {len(names)} slices of {len(names)} images chosen" in log
    data = np.load(out)
    points = read_mesh(case["folder"] / "lv.vtk").points_lps()
    row_slice = data["group_slice"][data["group_ids"]]
    for k, name in enumerate(names):  # every row's node lies in the 3 mm slab of its own file's plane
        plane = sitk.ReadImage(str(bivme_dicom(name)))
        normal = np.asarray(plane.GetDirection()).reshape(3, 3)[:, 2]
        distance = (points[data["node_ids"][row_slice == k]] - plane.GetOrigin()) @ normal
        assert distance.size > 0 and np.abs(distance).max() <= 3.0 + 1e-6, name
    short_axis = np.unique(data["node_ids"][row_slice < len(PLANES)])
    assert np.unique(data["node_ids"]).size > 1.5 * short_axis.size
    scar_pixels = data["intensities"][:, 0] > 0.5
    assert set(row_slice[scar_pixels]) - set(range(len(PLANES))), "no long-axis plane cuts the painted scar"
    # every biv-me file records a 6 mm slice thickness: "auto" gives the same 3 mm slabs
    recorded = case["folder"] / "with_long_axis_auto.npz"
    proc = run_cli_in_process("prepare", "--image", *[own_series[name] for name in names], "--mesh",
                              case["folder"] / "lv.vtk", "--normalize-intensities", "--slice-thickness-padding", "auto",
                              "--output", recorded)
    assert proc.returncode == 0, proc.stderr
    for key in ("coordinates", "intensities", "group_ids", "node_ids", "group_pixel"):
        np.testing.assert_array_equal(np.load(recorded)[key], data[key], err_msg=key)


def test_slice_indices_count_across_the_images(case, own_series):
    images = [own_series[name] for name in PLANES + LONG_AXIS]
    out = case["folder"] / "picked.npz"
    proc = _prepare(case, images, out, "--slice-indices", "1,5")
    assert proc.returncode == 0, proc.stderr
    assert [str(label) for label in np.load(out)["slice_labels"]] == ["Se1 k=0", "Se6 k=0"]
    proc = _prepare(case, images, case["folder"] / "bad.npz", "--slice-indices", "1,10")
    assert proc.returncode != 0 and not (case["folder"] / "bad.npz").exists()
    assert proc.stderr.strip().splitlines()[-1] == (
        "cardioscar prepare: error: slice index 10 is out of range for axis z of the 10 images together: valid 0-9")


def test_fast_preset_with_long_axis_planes(case, with_long_axis):
    folder = case["folder"]
    data, model, result = with_long_axis[0], folder / "lax.pth", folder / "lax.vtk"
    for step in [("train", "--training-data", data, "--output", model, "--preset", "fast", "--no-progress"),
                 ("apply", "--model", model, "--mesh", folder / "lv.vtk", "--output", result),
                 ("evaluate", "--prediction", result, "--truth", folder / "truth.vtk")]:
        proc = run_cli_in_process(*step)
        assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["dice"] >= 0.6
