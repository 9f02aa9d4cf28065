"""The default (INFO) log says each thing once: one line per file written, naming what and where
with its counts; a bulk job's per-file reads at DEBUG under one summary line; prepare's dropped
pixels named per slice with why. Real files, the real command line, the real loggers."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from cardioscar.cli import main


def _info_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("cardioscar") and r.levelno == logging.INFO]


def _naming(lines: list[str], path: Path) -> list[str]:
    """The lines that name ``path`` (as given on the command line)."""
    return [line for line in lines if str(path) in line]


def _log_of(capsys) -> list[str]:
    """The command's log as a user sees it (stderr, INFO and above), line by line."""
    return capsys.readouterr().err.splitlines()


def test_mesh_from_labels_says_its_file_once_with_counts(segmented, tmp_path, capsys):
    out = tmp_path / "mesh.vtu"
    assert main(["mesh-from-labels", "--labels", str(segmented["label_map"]), "--myocardium-labels", "2,3",
                 "--spacing", "3", "--output", str(out)]) == 0
    from cardioscar.io.meshio import read_mesh

    mesh = read_mesh(out)
    assert _naming(_log_of(capsys), out) == [f"Wrote {out} ({mesh.n_points} nodes, {mesh.dataset.GetNumberOfCells()} cells, "
                                    "frame LPS, fields: none)"]


def test_prepare_train_apply_say_each_file_once_and_name_dropped_pixels_per_slice(segmented, tmp_path, capsys):
    data, model, pred = tmp_path / "data.npz", tmp_path / "model.pth", tmp_path / "pred.vtk"
    assert main(["prepare", "--mesh", str(segmented["mesh"]), "--image", str(segmented["label_map"]),
                 "--scar-labels", "3", "--myocardium-labels", "2,3", "--output", str(data)]) == 0
    written = np.load(data)
    n_groups, n_rows = int(written["group_sizes"].size), int(written["group_ids"].size)
    lines = _log_of(capsys)
    assert _naming(lines, data) == [f"Wrote training data {data}: {n_rows} rows in {n_groups} groups, box slice "
                                     "profile"]
    [myocardium] = [line for line in lines if line.startswith("Myocardium (labels 2,3)")]
    [pixels] = [line for line in lines if line.startswith("Pixels with a target:")]
    # each slice named (the file once, then k=...), with kept/dropped outside the myocardium
    kept_dropped = re.findall(r"k=(\d+): (\d+)/(\d+)", myocardium)
    used_dropped = re.findall(r"k=(\d+): (\d+)/(\d+)", pixels)
    assert "phantom_labels.nii.gz k=" in myocardium and len(kept_dropped) == len(used_dropped) > 1
    assert [k for k, _, _ in kept_dropped] == [k for k, _, _ in used_dropped]
    assert int(written["dropped_outside_myocardium"].sum()) == sum(int(d) for _, _, d in kept_dropped)
    # a pixel kept in the myocardium is either used (one group) or dropped for want of a mesh node
    for (_, kept, _), (_, used, no_node) in zip(kept_dropped, used_dropped):
        assert int(kept) == int(used) + int(no_node)
    assert sum(int(u) for _, u, _ in used_dropped) == n_groups
    assert f"{n_groups} used (a mesh node in their slab)" in pixels
    assert not any(line.startswith("Mapped ") or line.startswith("Prepared ") for line in lines)

    assert main(["train", "--training-data", str(data), "--output", str(model), "--preset", "fast",
                 "--max-epochs", "3", "--seed", "1", "--no-progress"]) == 0
    [line] = _naming(_log_of(capsys), model)
    assert re.fullmatch(rf"Wrote model {re.escape(str(model))}: best loss \S+ at epoch \d+ of \d+ \(\S+ s, .*converged.*\)", line)

    assert main(["apply", "--model", str(model), "--mesh", str(segmented["mesh"]), "--output", str(pred),
                 "--mc-samples", "2"]) == 0
    [line] = _naming(_log_of(capsys), pred)
    assert line.startswith(f"Wrote {pred} (") and " cells, frame LPS, fields: " in line and "scar_probability, scar_uncertainty" in line

    tagged, prefix = tmp_path / "tagged.vtu", tmp_path / "heart"
    assert main(["export", "--mesh", str(pred), "--format", "vtu", "--output", str(tagged)]) == 0
    assert [line.split(" (")[0] for line in _naming(_log_of(capsys), tagged)] == [f"Wrote {tagged}"]
    assert main(["export", "--mesh", str(pred), "--output", str(prefix)]) == 0
    assert [line.split(":")[0] for line in _naming(_log_of(capsys), prefix)] == [
        f"Wrote openCARP model {prefix}.{{pts,elem,json}}"]

    from cardioscar.io.meshio import read_mesh

    points = read_mesh(pred).points_lps()
    rv_point = ",".join(f"{v:.4f}" for v in points[np.argmax(points[:, 0])])  # a wall node: the command runs
    assert main(["aha", "--mesh", str(pred), f"--rv-point={rv_point}", "--output-dir", str(tmp_path / "aha")]) == 0
    assert len([line for line in _log_of(capsys) if "aha_mesh.vtk" in line]) == 1


def test_a_bulk_job_reads_its_files_at_debug_under_one_summary(tmp_path, caplog):
    from cardioscar.attrivae.dataset import load_cases
    from cardioscar.attrivae.preprocess import LabelConvention, PreprocessConfig
    from cardioscar.attrivae.synthetic import write_synthetic_set

    folder = write_synthetic_set(tmp_path, n_mi=1, n_normal=1, seed=3)
    caplog.set_level(logging.DEBUG, logger="cardioscar")
    load_cases(folder, folder / "clinical.csv", LabelConvention(), PreprocessConfig(cube=16))
    reads = [r for r in caplog.records if r.getMessage().startswith("Read image ")]
    assert len(reads) == 4 and {r.levelno for r in reads} == {logging.DEBUG}
    assert [line for line in _info_lines(caplog) if line.startswith("Loaded ")] == [
        f"Loaded 2 cases (1 MI) from {folder}: 2 images and their label maps read (each named with --verbose)"]
    # outside a bulk job a read keeps its INFO line
    from cardioscar.io.imageio import read_image

    caplog.clear()
    read_image(folder / "Case_P001" / "Images" / "Case_P001.nii.gz")
    assert [r.levelno for r in caplog.records if r.getMessage().startswith("Read image ")] == [logging.INFO]


def _unit_scale_sform(path: Path) -> None:
    """Rewrite the NIfTI at ``path`` as EMIDEC's files are: a unit-scale sform (code 1, the same
    orientation and origin) over its pixdim voxels, and no qform."""
    import gzip
    import struct

    raw = bytearray(gzip.decompress(path.read_bytes()))
    struct.pack_into("<h", raw, 252, 0)  # qform_code
    for row in range(3):  # srow_x, srow_y, srow_z: each axis's sign, unit length, the origin kept
        values = list(struct.unpack_from("<4f", raw, 280 + 16 * row))
        values[row] = float(np.sign(values[row]))
        struct.pack_into("<4f", raw, 280 + 16 * row, *values)
    path.write_bytes(gzip.compress(bytes(raw)))


def test_a_bulk_job_says_its_files_sform_note_once_with_a_count(tmp_path, caplog):
    """Attri-VAE reading a folder of EMIDEC-like files (a unit-scale sform over 1.6 x 1.6 x 10 mm voxels)
    said the same sform note once per file, two per case; now each file's at DEBUG and one line at INFO
    with their count and the first file's note."""
    from cardioscar.attrivae.dataset import load_cases
    from cardioscar.attrivae.preprocess import LabelConvention, PreprocessConfig
    from cardioscar.attrivae.synthetic import write_synthetic_set

    folder = write_synthetic_set(tmp_path, n_mi=1, n_normal=1, seed=3)
    for path in folder.rglob("*.nii.gz"):
        _unit_scale_sform(path)
    caplog.set_level(logging.DEBUG, logger="cardioscar")
    load_cases(folder, folder / "clinical.csv", LabelConvention(), PreprocessConfig(cube=16))
    notes = [r for r in caplog.records if "NIfTI sform" in r.getMessage()]
    assert [r.levelno for r in notes] == [logging.DEBUG] * 4 + [logging.INFO], [r.getMessage() for r in notes]
    assert notes[-1].getMessage().startswith("4 image(s) read have a NIfTI sform whose voxel size is not pixdim's, "
                                             "each read as ITK and Slicer read it (each named with --verbose); the "
                                             "first: Image Case_N002.nii.gz: its NIfTI sform gives 1 x 1 x 1 mm "
                                             "voxels, pixdim 1.6 x 1.6 x 10 mm"), notes[-1].getMessage()


def test_the_partial_volume_correction_says_one_line(segmented, tmp_path, capsys):
    """`prepare --partial-volume-correction` said two lines, the coverage's samples and median, then the
    groups it dropped; one now, with the median coverage and what it dropped and clipped."""
    assert main(["prepare", "--mesh", str(segmented["mesh"]), "--image", str(segmented["image"]),
                 "--partial-volume-correction", "--output", str(tmp_path / "data.npz")]) == 0
    said = [line for line in _log_of(capsys) if line.startswith("Partial volume")]
    assert len(said) == 1 and re.fullmatch(r"Partial volume: median myocardial coverage \d\.\d\d; dropped \d+ of \d+ "
                                           r"groups \(\d+ rows\) with coverage < 0\.\d\d; \d+ targets clipped to 1",
                                           said[0]), said


def test_the_option_the_bulk_summary_names_shows_each_file(tmp_path):
    """The summary line said each file was named "with --debug", which shows tracebacks and left
    the log at INFO: a user who added it saw no file. The option it names now shows them."""
    import re

    from cardioscar.attrivae.synthetic import write_synthetic_set
    from conftest import run_cli_in_process

    folder = write_synthetic_set(tmp_path, n_mi=1, n_normal=1, seed=3)
    train = ("attrivae", "train", "--data", folder, "--clinical", folder / "clinical.csv", "--cube", "8", "--epochs",
             "1", "--folds", "0", "--device", "cpu", "--output")
    plain = run_cli_in_process(*train, tmp_path / "plain.pth")
    assert plain.returncode == 0, plain.stderr
    option = re.search(r"read \(each named with (\S+)\)", plain.stderr).group(1)
    named = run_cli_in_process(option, *train, tmp_path / "named.pth")
    assert named.returncode == 0, named.stderr
    assert len([line for line in named.stderr.splitlines() if line.startswith("Read image ")]) == 4, named.stderr


def test_progress_lines_go_on_through_a_training_attempt_after_the_first(caplog):
    """A training the quality checks run again (a stalled fit from another seed, a lower peak rate)
    restarts its clock; the logged progress (train into a file or pipe, the demo) kept the first
    run's last time, so a second 30 s run said nothing until its last epoch. Each run now has its
    line every 5 s, from its first epoch."""
    from cardioscar.fit.training import TrainingProgress, progress_log_lines

    report = progress_log_lines()
    caplog.set_level(logging.INFO, logger="cardioscar")
    for attempt in (1, 2):
        caplog.clear()
        for second in range(31):
            report(TrainingProgress(epoch=10 * second + 1, max_epochs=301, loss=0.1, best_loss=0.1,
                                    learning_rate=1e-3, elapsed_s=float(second), eta_s=None))
        times = [re.search(r"\((\d+) s\)$", line).group(1) for line in _info_lines(caplog) if "  epoch " in line]
        assert times == ["0", "5", "10", "15", "20", "25", "30"], (attempt, times)
