"""Issue 21, item by item where the table of Testing/test_bad_inputs.py does not reach: stale
outputs kept, leftovers of killed writes, one-line messages (argparse, torch, VTK on a full disk),
misleading hints, and what new checkpoints record for apply's unit check."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cardioscar import cli
from cardioscar.io.atomic import STALE_AFTER_S, atomic_write
from cardioscar.fit.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from cardioscar.errors import CardioScarError
from cardioscar.logic import (PreprocessingRequest, TrainingConfig, apply_scar_model, load_preprocessing_result,
                              predict_on_points, prepare_training_data, save_inference_result, save_trained_model,
                              train_scar_model)
from cardioscar.io.meshio import read_mesh, write_mesh
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=3))
    paths = write_phantom(phantom, folder)
    prepared = prepare_training_data(PreprocessingRequest(
        mesh_path=paths["mesh"], image_path=paths["image"], slice_thickness_padding=phantom.slice_half_thickness_mm))
    checkpoint = train_scar_model(prepared, TrainingConfig.fast(max_epochs=3, seed=1, num_threads=1), "cpu")
    save_trained_model(checkpoint, folder / "model.pth")
    return {"dir": folder, "mesh": paths["mesh"], "image": paths["image"], "checkpoint": checkpoint,
            "model": folder / "model.pth", "points": phantom.points_lps}


def test_apply_without_a_threshold_drops_an_earlier_scar_binary(trained, tmp_path, caplog):
    """It was kept: 0 nodes marked beside 393 with p >= 0.5."""
    mesh = read_mesh(trained["mesh"])
    stale = tmp_path / "with_binary.vtk"
    write_mesh(mesh, stale, {"scar_binary": np.zeros(mesh.n_points, dtype=np.uint8)})
    result = apply_scar_model(trained["model"], stale, mc_samples=2, seed=1)
    with caplog.at_level(logging.WARNING):
        save_inference_result(result, stale, tmp_path / "out.vtk")
    assert "scar_binary" not in read_mesh(tmp_path / "out.vtk").point_field_names()
    assert "scar_binary field from an earlier run" in caplog.text
    # the advice in the record's format, not a value filled in: a face that rewords the format names its own option
    assert any("give --threshold" in str(r.msg) for r in caplog.records), [r.msg for r in caplog.records]


def test_a_result_without_an_error_risk_drops_an_earlier_one(trained, tmp_path, caplog):
    """An InferenceResult built with error_risk=None carried the input mesh's scar_error_risk over,
    beside a probability it was not computed from (zstalefibre's note)."""
    import dataclasses

    mesh = read_mesh(trained["mesh"])
    stale = tmp_path / "with_risk.vtk"
    write_mesh(mesh, stale, {"scar_error_risk": np.full(mesh.n_points, 0.9)})
    result = dataclasses.replace(apply_scar_model(trained["model"], stale, mc_samples=2, seed=1), error_risk=None)
    with caplog.at_level(logging.WARNING):
        save_inference_result(result, stale, tmp_path / "out.vtk")
    assert "scar_error_risk" not in read_mesh(tmp_path / "out.vtk").point_field_names()
    assert "had a scar_error_risk field from an earlier run; it is not copied to" in caplog.text


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_a_killed_writers_part_file_is_removed_on_the_next_write(tmp_path):
    """kill -9 during a save left a 0-byte hidden .model.<random>.part.pth for ever."""
    dead = tmp_path / f".model.{_dead_pid()}-abcdefgh.part.pth"
    alive = tmp_path / f".model.{os.getpid()}-ijklmnop.part.pth"  # a concurrent writer's: kept
    old_style = tmp_path / ".model.qrstuvwx.part.pth"
    recent_old_style = tmp_path / ".model.yz012345.part.pth"
    foreign = tmp_path / ".model.notours.part.pth"
    for path in (dead, alive, old_style, recent_old_style, foreign):
        path.write_bytes(b"")
    os.utime(old_style, (time.time() - 2 * STALE_AFTER_S,) * 2)
    with atomic_write(tmp_path / "model.pth") as tmp:
        tmp.write_bytes(b"new")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([alive.name, recent_old_style.name, foreign.name, "model.pth"])


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_request:
        cli.main(["train", "--training-data", "x.npz"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_request.value.code == 2
    assert lines == ["cardioscar train: error: the following arguments are required: --output "
                     "(see cardioscar train --help)"]


def test_phantom_refuses_an_existing_file_as_folder_before_building(tmp_path, capsys):
    existing = tmp_path / "taken"
    existing.write_text("x")
    started = time.perf_counter()
    assert cli.main(["phantom", "--output-dir", str(existing)]) == 2
    assert time.perf_counter() - started < 5  # building the phantom alone takes longer
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_plain_pickle_checkpoint_loads_without_torchs_warning(trained, tmp_path):
    old = tmp_path / "old_format.pth"
    torch.save(trained["checkpoint"], old, _use_new_zipfile_serialization=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "model_state_dict" in load_checkpoint(old)


def test_the_archive_folder_is_not_named_after_the_temporary_file(trained, tmp_path):
    save_checkpoint(trained["checkpoint"], tmp_path / "model.pth")
    with zipfile.ZipFile(tmp_path / "model.pth") as archive:
        assert {name.split("/")[0] for name in archive.namelist()} == {"archive"}


def test_a_foreign_state_dict_gives_its_advice_once(trained):
    foreign = {"model_state_dict": {"network.0.weight": torch.zeros(8, 3), "network.0.bias": torch.zeros(8)}}
    with pytest.raises(CardioScarError) as error:
        model_from_checkpoint(foreign)
    assert str(error.value).count("retrain or restore a backup") == 1


_FULL_DISK = r'''
import resource, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from cardioscar import cli
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
sys.exit(cli.main(sys.argv[2:]))
'''


@pytest.mark.parametrize("verb", ["train", "apply"])
def test_a_full_disk_is_one_line_naming_the_file(trained, tmp_path, verb):
    """torch reported 'enforce fail at inline_container.cc', VTK added its ERR lines."""
    from cardioscar.logic import save_preprocessing_result

    data = tmp_path / "data.npz"
    save_preprocessing_result(prepare_training_data(PreprocessingRequest(
        mesh_path=trained["mesh"], image_path=trained["image"], slice_thickness_padding=4.0)), data)
    target = tmp_path / ("out.pth" if verb == "train" else "out.vtk")
    args = (["train", "--training-data", str(data), "--preset", "fast", "--max-epochs", "1", "--no-progress"]
            if verb == "train" else ["apply", "--model", str(trained["model"]), "--mesh", str(trained["mesh"]),
                                      "--mc-samples", "2"])
    script = tmp_path / "full_disk.py"
    script.write_text(_FULL_DISK)
    completed = subprocess.run([sys.executable, str(script), str(Path(cli.__file__).parents[1]), *args, "--output",
                                str(target)], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    errors = [line for line in completed.stderr.splitlines() if "error" in line.lower() or "ERR" in line]
    assert completed.returncode == 2, completed.stderr
    # Python names EFBIG "File too large"; VTK's writers report any failed write as out of disk space
    assert len(errors) == 1 and re.fullmatch(rf"cardioscar {verb}: error: Could not write {re.escape(str(target))}: "
                                             r"(File too large|No space left on device); check that the folder is "
                                             r"writable and has space\.", errors[0]), completed.stderr
    assert not target.exists() and not list(tmp_path.glob(".out.*"))


def test_new_checkpoints_record_the_node_spacing_and_old_ones_are_checked_on_extent(trained, caplog):
    spacing = trained["checkpoint"]["dataset_info"]["node_spacing_mm"]
    assert 0.5 < spacing < 10  # mm, a 2k-node LV phantom
    old = {**trained["checkpoint"], "dataset_info": {key: value for key, value in
                                                     trained["checkpoint"]["dataset_info"].items()
                                                     if key != "node_spacing_mm"}}
    from cardioscar.logic import check_mesh_for_checkpoint

    with caplog.at_level(logging.WARNING):
        check_mesh_for_checkpoint(old, trained["points"], "the mesh")
    assert "records no node spacing" in caplog.text
    with pytest.raises(CardioScarError, match="1000 times\\): if the mesh is in micrometres"):
        check_mesh_for_checkpoint(old, trained["points"] * 1000, "the mesh")
    with pytest.raises(CardioScarError, match="median node spacing"):  # same extent, 50x denser nodes
        dense = np.concatenate([trained["points"]] + [trained["points"] + 0.01 * k for k in range(1, 3)])
        check_mesh_for_checkpoint(trained["checkpoint"], dense, "the mesh")


@pytest.mark.parametrize("seed", [-1, 2**63, 2**64, 1.5])
def test_seeds_out_of_range_are_refused_everywhere(trained, seed):
    for make in (lambda: TrainingConfig(seed=seed), lambda: PhantomConfig(seed=seed).validate(),
                 lambda: predict_on_points(trained["checkpoint"], trained["points"], mc_samples=1, seed=seed)):
        with pytest.raises(CardioScarError, match=r"0\.\.2\*\*63-1"):
            make()


def test_misleading_hints_name_the_real_cause(trained, tmp_path):
    mesh = read_mesh(trained["mesh"])
    mesh.dataset.GetPoints().SetPoint(5, (1e30, 0.0, 0.0))
    write_mesh(mesh, tmp_path / "outlier.vtk")
    with pytest.raises(CardioScarError, match=r"node 5 at \(1e\+30, 0, 0\) lies far from all others"):
        prepare_training_data(PreprocessingRequest(mesh_path=tmp_path / "outlier.vtk", image_path=trained["image"],
                                                   slice_thickness_padding=4.0))
    with pytest.raises(CardioScarError, match="slab half-width 1e\\+09 mm .* check --slice-thickness-padding"):
        prepare_training_data(PreprocessingRequest(mesh_path=trained["mesh"], image_path=trained["image"],
                                                   slice_thickness_padding=1e9))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, coordinates=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CardioScarError, match="holds pickled Python objects, which are refused"):
        load_preprocessing_result(pickled)
