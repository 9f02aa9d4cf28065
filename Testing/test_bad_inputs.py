"""One table of bad inputs, run through every face: the ``cardioscar`` command line, the Python
API, the batch script and the Slicer Logic (issue 21: "no silent wrong answers").

Each row is a bad input of the 211-case probe that used to end in a wrong result with exit 0 on
at least one face, or in a traceback. Every face must refuse it with one line naming the same
problem, and write nothing.

How each face runs:
* command line and batch script: one subprocess runs ``cardioscar.cli.main`` and the batch
  script's ``run`` for every row (a process per row would cost ~3 s each), with file
  descriptor 2 captured per row, so ITK's and VTK's own C++ output counts against "one line";
* Python API and Slicer Logic: in this process, with real MRML (slicer-core). The Logic's
  inputs are read by MRML storage nodes directly, as the Slicer application's ``loadVolume`` /
  ``loadModel`` do (a stand-in for the application, which cannot run here: it does not prove
  what the application's own dialogs show), so the Logic's own checks of a node's file are what
  is tested, not the batch script's loaders.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "CardioScar" / "Scripts" / "cardioscar_batch.py"
sys.path.insert(0, str(REPO / "CardioScar"))

import slicer  # noqa: E402  (slicer-core)

import CardioScarLogic as csl  # noqa: E402
from cardioscar.fit.checkpoint import MAX_CHECKPOINT_BYTES  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.logic import (PreprocessingRequest, TrainingConfig, apply_scar_model, prepare_training_data,  # noqa: E402
                              save_preprocessing_result, save_trained_model, train_scar_model)
from cardioscar.io.meshio import read_mesh, write_mesh  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom  # noqa: E402

SLICES = "0,1,2,3"


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A small phantom on disk, its training data and a model trained for a few epochs."""
    folder = tmp_path_factory.mktemp("good")
    phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=3))
    paths = write_phantom(phantom, folder)
    half = phantom.slice_half_thickness_mm
    prepared = prepare_training_data(PreprocessingRequest(
        mesh_path=paths["mesh"], image_path=paths["image"], slice_indices=[0, 1, 2, 3], slice_thickness_padding=half))
    save_preprocessing_result(prepared, folder / "data.npz")
    checkpoint = train_scar_model(prepared, TrainingConfig.fast(max_epochs=3, seed=1, num_threads=1), "cpu")
    save_trained_model(checkpoint, folder / "model.pth")
    return {"mesh": paths["mesh"], "image": paths["image"], "half": half, "data": folder / "data.npz",
            "model": folder / "model.pth", "dir": folder}


# --------------------------------------------------------------------------- bad inputs


def _nifti_bytes(path: Path) -> bytearray:
    with gzip.open(path, "rb") as stream:
        return bytearray(stream.read())


def _write_nifti(raw: bytes, path: Path) -> Path:
    with gzip.open(path, "wb") as stream:
        stream.write(raw)
    return path


def _pixdim(good, out: Path, value: float) -> dict:
    raw = _nifti_bytes(good["image"])
    struct.pack_into("<f", raw, 76 + 3 * 4, value)  # pixdim[3], the slice spacing
    return {"image": _write_nifti(raw, out / "pixdim.nii.gz")}


def _sheared_sform(good, out: Path) -> dict:
    """The image with its sform sheared (x moves 0.3 pixel per row) and its qform kept: ITK reads
    the qform, nibabel the sform (round 11)."""
    raw = _nifti_bytes(good["image"])
    rows = np.array(struct.unpack_from("<12f", raw, 280)).reshape(3, 4)
    rows[0, 1] += 0.3 * abs(rows[1, 1])
    struct.pack_into("<12f", raw, 280, *rows.ravel())
    return {"image": _write_nifti(raw, out / "sheared.nii.gz")}


def _with_nan(good, out: Path) -> dict:
    image = sitk.ReadImage(str(good["image"]))
    values = sitk.GetArrayFromImage(image)
    values[1, values.shape[1] // 2, :] = np.nan  # a row through the myocardium of slice 1
    bad = sitk.GetImageFromArray(values.astype(np.float32))
    bad.CopyInformation(image)
    sitk.WriteImage(bad, str(out / "nan.nii.gz"))
    return {"image": out / "nan.nii.gz"}


def _cut_gzip(good, out: Path) -> dict:
    data = good["image"].read_bytes()
    (out / "cut.nii.gz").write_bytes(data[: len(data) * 2 // 3])
    return {"image": out / "cut.nii.gz"}


def _short_voxels(good, out: Path) -> dict:
    raw = _nifti_bytes(good["image"])
    return {"image": _write_nifti(bytes(raw[: len(raw) - len(raw) // 4]), out / "short.nii.gz")}


def _cut_mha(good, out: Path) -> dict:
    sitk.WriteImage(sitk.ReadImage(str(good["image"])), str(out / "whole.mha"))
    data = (out / "whole.mha").read_bytes()
    (out / "cut.mha").write_bytes(data[: len(data) * 2 // 3])
    return {"image": out / "cut.mha"}


def _tiny_spacing(good, out: Path) -> dict:
    image = sitk.ReadImage(str(good["image"]))
    image.SetSpacing(image.GetSpacing()[:2] + (1e-9,))  # every slice on top of the others
    sitk.WriteImage(image, str(out / "tiny.nrrd"))
    return {"image": out / "tiny.nrrd"}


def _cut_mesh(good, out: Path) -> dict:
    data = good["mesh"].read_bytes()  # binary legacy .vtk: points, then cells
    (out / "cut.vtk").write_bytes(data[: int(len(data) * 0.6)])
    return {"mesh": out / "cut.vtk"}


def _label_map(good, out: Path) -> dict:
    image = sitk.ReadImage(str(good["image"]))
    labels = sitk.Cast(sitk.BinaryThreshold(image, 0.5, 10.0, 2, 1), sitk.sitkUInt8)  # 1 = rest, 2 = scar
    sitk.WriteImage(labels, str(out / "labels.nii.gz"))
    return {"image": out / "labels.nii.gz", "scar_labels": "9"}


def _metres(good, out: Path) -> dict:
    mesh = read_mesh(good["mesh"])
    points = mesh.dataset.GetPoints()
    for k in range(points.GetNumberOfPoints()):
        points.SetPoint(k, [c / 1000.0 for c in points.GetPoint(k)])
    write_mesh(mesh, out / "metres.vtk")
    return {"mesh": out / "metres.vtk"}


def _inflating_model(good, out: Path) -> dict:
    """The good model plus one unused entry of zeros, deflated ~1000:1 (the probe's 416 KB file
    that allocated hundreds of MB)."""
    target = out / "inflating.pth"
    with zipfile.ZipFile(good["model"]) as source, zipfile.ZipFile(target, "w") as archive:
        for entry in source.infolist():
            archive.writestr(entry, source.read(entry.filename))
        junk = zipfile.ZipInfo(f"{source.namelist()[0].split('/')[0]}/data/999")
        junk.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(junk, "w", force_zip64=True) as stream:
            block = bytes(1 << 24)
            for _ in range(MAX_CHECKPOINT_BYTES // len(block) + 1):
                stream.write(block)
    assert target.stat().st_size < 4 * 2**20
    return {"model": target}


def _under_a_file(good, out: Path) -> dict:
    (out / "plain_file").write_text("x")
    return {"output_dir": out / "plain_file" / "sub"}


def _existing_folder(good, out: Path) -> dict:
    (out / "result.vtk").mkdir()
    (out / "result.npz").mkdir()
    return {"output_dir": out, "output_is_folder": True}


def _mesh_folder(good, out: Path) -> dict:
    (out / "heart.vtk").mkdir()
    return {"mesh": out / "heart.vtk"}


#: (row id, step, make the bad input, the words of the refusal every face must show).
#: step "prepare": training input (prepare, batch training, Logic train_and_apply);
#: "apply": inference input (apply, batch --model, Logic apply_model); "train": a training option;
#: "output": where the result goes.
ROWS = [
    ("nifti-gzip-cut", "prepare", _cut_gzip, r"truncated"),
    ("nifti-voxels-short", "prepare", _short_voxels, r"truncated \(\d+ of the \d+ bytes"),
    ("nifti-nan-voxels", "prepare", _with_nan, r"NaN or infinite voxel values"),
    ("nifti-pixdim-zero", "prepare", lambda g, o: _pixdim(g, o, 0.0), r"pixdim\[3\] = 0 "),
    ("nifti-pixdim-nan", "prepare", lambda g, o: _pixdim(g, o, float("nan")), r"pixdim\[3\] = nan"),
    ("nifti-pixdim-negative", "prepare", lambda g, o: _pixdim(g, o, -8.0), r"pixdim\[3\] = -8"),
    ("nifti-sform-sheared", "prepare", _sheared_sform, r"sform and qform place it up to [\d.]+ mm apart"),
    ("mha-cut", "prepare", _cut_mha, r"truncated or corrupted file"),
    ("spacing-1e-9-mm", "prepare", _tiny_spacing, r"voxel spacing along k is 1e-09 mm"),
    ("vtk-binary-cut", "prepare", _cut_mesh, r"corrupted or truncated"),
    ("mesh-is-a-folder", "prepare", _mesh_folder, r"is a folder"),
    ("scar-labels-absent", "prepare", _label_map, r"match no pixel .*labels present: 1, 2"),
    ("scar-labels-on-probabilities", "prepare", lambda g, o: {"scar_labels": "1"}, r"non-integer values"),
    ("seed-2**64", "train", lambda g, o: {"seed": 2**64}, r"0\.\.2\*\*63-1"),
    ("apply-cut-mesh", "apply", _cut_mesh, r"corrupted or truncated"),
    ("apply-mesh-in-metres", "apply", _metres, r"0\.001 times\): if the mesh is in metres"),
    ("apply-inflating-checkpoint", "apply", _inflating_model, r"would unpack to \d+ MB"),
    ("apply-seed-2**64", "apply", lambda g, o: {"seed": 2**64}, r"0\.\.2\*\*63-1"),
    ("output-under-a-file", "output", _under_a_file, r"is a file, not a folder"),
    ("output-is-a-folder", "output", _existing_folder, r"is a folder"),
]

#: Steps a face does not have: the Logic writes into scene nodes, not files (the batch rows cover
#: Slicer's writer).
NOT_ON = {("logic", "output")}


def _inputs(good, bad: dict, folder: Path) -> dict:
    out = bad.get("output_dir", folder)
    return {"mesh": str(bad.get("mesh", good["mesh"])), "image": str(bad.get("image", good["image"])),
            "model": str(bad.get("model", good["model"])), "seed": bad.get("seed", 7),
            "labels": bad.get("scar_labels"), "npz": str(out / "result.npz"), "pth": str(out / "result.pth"),
            "vtk": str(out / "result.vtk"), "half": str(good["half"])}


def _cli_argv(step: str, i: dict, data: Path) -> list[str]:
    if step == "apply":
        return ["apply", "--model", i["model"], "--mesh", i["mesh"], "--output", i["vtk"], "--seed", str(i["seed"]),
                "--mc-samples", "2"]
    if step == "train":
        return ["train", "--training-data", str(data), "--output", i["pth"], "--seed", str(i["seed"]),
                "--preset", "fast", "--max-epochs", "2", "--no-progress"]
    argv = ["prepare", "--mesh", i["mesh"], "--image", i["image"], "--slice-indices", SLICES,
            "--slice-thickness-padding", i["half"], "--output", i["npz"]]
    return argv + (["--scar-labels", i["labels"]] if i["labels"] else [])


def _batch_argv(step: str, i: dict) -> list[str]:
    if step == "apply":
        return ["--model", i["model"], "--mesh", i["mesh"], "--output", i["vtk"], "--seed", str(i["seed"]),
                "--inference-mc-samples", "2"]
    argv = ["--volume", i["image"], "--mesh", i["mesh"], "--slices", SLICES, "--slice-thickness-padding", i["half"],
            "--preset", "fast", "--max-epochs", "2", "--threads", "1", "--no-progress", "--seed", str(i["seed"]),
            "--output", i["vtk"], "--inference-mc-samples", "2"]
    return argv + (["--scar-labels", i["labels"]] if i["labels"] else [])


_DRIVER = r'''
import contextlib, importlib.util, json, os, sys, tempfile
spec = importlib.util.spec_from_file_location("cardioscar_batch", sys.argv[2])
batch = importlib.util.module_from_spec(spec); spec.loader.exec_module(batch)
from cardioscar import cli
import logging
results = []
for face, argv in json.load(open(sys.argv[1])):
    logging.getLogger("cardioscar").handlers[:] = []  # the CLI's handler would show the batch's info lines
    logging.getLogger("cardioscar").propagate = True
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush(); saved = os.dup(2); os.dup2(captured.fileno(), 2)
        try:
            status = (cli.main if face == "cli" else batch.run)(argv)
        except SystemExit as exit_request:
            status = exit_request.code
        except BaseException as error:  # a traceback is a finding, reported as such
            import traceback; traceback.print_exc(); status = "crash"
        finally:
            sys.stderr.flush(); os.dup2(saved, 2); os.close(saved)
        captured.seek(0)
        results.append([status, captured.read().decode("utf-8", "replace")])
json.dump(results, open(sys.argv[1] + ".out", "w"))
'''


@pytest.fixture(scope="module")
def rows(good, tmp_path_factory):
    """Every row's bad input, and the command line's and batch script's answers to it."""
    made, jobs = {}, []
    for row_id, step, make, expected in ROWS:
        folder = tmp_path_factory.mktemp(row_id.replace("*", "x"))
        bad = make(good, folder)
        inputs = _inputs(good, bad, folder)
        made[row_id] = (step, bad, inputs, expected, folder)
        jobs.append(["cli", _cli_argv(step if step != "output" else "prepare", inputs, good["data"])])
        jobs.append(["batch", _batch_argv(step if step != "output" else "prepare", inputs)])
    plan = good["dir"] / "jobs.json"
    plan.write_text(json.dumps(jobs))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "CardioScarLib")}
    driver = good["dir"] / "driver.py"
    driver.write_text(_DRIVER)
    completed = subprocess.run([sys.executable, str(driver), str(plan), str(SCRIPT)], capture_output=True, text=True,
                               env=env, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    answers = json.loads(Path(str(plan) + ".out").read_text(encoding="utf-8"))
    return {row_id: (*made[row_id], answers[2 * n], answers[2 * n + 1]) for n, (row_id, *_) in enumerate(ROWS)}


#: What other programs print that must not reach the user: ITK's WARNING blocks, VTK's ERR lines,
#: Python's warnings and tracebacks.
FOREIGN = re.compile(r"Traceback|WARNING:|ERR\||ERROR: In|Warning:|warn\(")


def _assert_refused(answer, expected: str, face: str) -> None:
    """Exit status 2 and one error line that names the problem; no foreign output (progress and
    info lines of our own logging may precede it)."""
    status, stderr = answer
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert status == 2, f"{face}: exit {status}, stderr: {stderr[-2000:]}"
    assert len(errors) == 1 and not FOREIGN.search(stderr), f"{face}: {stderr[-2000:]}"
    assert re.search(expected, errors[0]), f"{face}: {errors[0]}"


def _written(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("result*") if p.is_file())


@pytest.mark.parametrize("row_id", [row[0] for row in ROWS])
def test_the_command_line_refuses(rows, row_id):
    step, bad, inputs, expected, folder, cli, _ = rows[row_id]
    _assert_refused(cli, expected, "cardioscar")
    assert not _written(folder)


@pytest.mark.parametrize("row_id", [row[0] for row in ROWS])
def test_the_batch_script_refuses(rows, row_id):
    step, bad, inputs, expected, folder, _, batch = rows[row_id]
    _assert_refused(batch, expected, "cardioscar_batch.py")
    assert not _written(folder)


@pytest.mark.parametrize("row_id", [row[0] for row in ROWS])
def test_the_python_api_refuses(rows, good, row_id):
    step, bad, i, expected, folder, *_ = rows[row_id]
    with pytest.raises(CardioScarError, match=expected):
        if step == "apply":
            apply_scar_model(Path(i["model"]), Path(i["mesh"]), mc_samples=2, seed=i["seed"])
        elif step == "train":
            TrainingConfig(seed=i["seed"])
        elif step == "output":
            prepared = prepare_training_data(PreprocessingRequest(
                mesh_path=good["mesh"], image_path=good["image"], slice_indices=[0, 1, 2, 3],
                slice_thickness_padding=good["half"]))
            save_preprocessing_result(prepared, Path(i["npz"]))
        else:
            labels = [int(v) for v in i["labels"].split(",")] if i["labels"] else None
            prepare_training_data(PreprocessingRequest(
                mesh_path=Path(i["mesh"]), image_path=Path(i["image"]), slice_indices=[0, 1, 2, 3],
                slice_thickness_padding=good["half"], scar_labels=labels))
    assert not _written(folder)


def _read_as_slicer_does(scene, path: str, node_class: str, storage_class: str):
    """Stand-in for the application's loadVolume / loadModel: the MRML storage node reads the
    file (no CardioScar check runs here). None when MRML itself refuses the file."""
    node = scene.AddNewNodeByClass(node_class)
    storage = scene.AddNewNodeByClass(storage_class)
    storage.SetFileName(path)
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node if Path(path).is_file() and storage.ReadData(node) else None


@pytest.mark.parametrize("row_id", [row[0] for row in ROWS if ("logic", row[1]) not in NOT_ON])
def test_the_slicer_logic_refuses(rows, good, row_id):
    step, bad, i, expected, folder, *_ = rows[row_id]
    context = csl.create_scene()
    volume = _read_as_slicer_does(context.scene, i["image"], "vtkMRMLScalarVolumeNode",
                                  "vtkMRMLVolumeArchetypeStorageNode")
    model = _read_as_slicer_does(context.scene, i["mesh"], "vtkMRMLModelNode", "vtkMRMLModelStorageNode")
    if model is None or (step == "prepare" and volume is None):
        assert row_id in ("mesh-is-a-folder", "mha-cut"), f"{row_id}: Slicer's own reader refused the file"
        return  # Slicer itself shows a load error: no node, nothing to run on
    values = model.GetMesh().GetNumberOfPoints()
    before = [model.GetMesh().GetPointData().GetArrayName(k) for k in range(model.GetMesh().GetPointData().GetNumberOfArrays())]
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    with pytest.raises(CardioScarError, match=expected):
        options = csl.ReconstructionOptions(preset="fast", max_epochs=2, half_thickness=good["half"], seed=i["seed"],
                                            num_threads=1, slice_indices=SLICES, scar_labels=i["labels"],
                                            inference_mc_samples=2)
        if step == "apply":
            logic.apply_model(Path(i["model"]), model, options)
        else:
            logic.train_and_apply(volume, model, options)
    after = [model.GetMesh().GetPointData().GetArrayName(k) for k in range(model.GetMesh().GetPointData().GetNumberOfArrays())]
    assert after == before and model.GetMesh().GetNumberOfPoints() == values, "a refused run changed the model node"
