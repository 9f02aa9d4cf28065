"""Round 26 of the bad-input review: last session's leftovers that a user trips on (an LV mesh in two
unjoined halves through `aha` and `channels`, a training file's mixed groups warned twice, a cohort
seed beyond 64 bits, the training data's own `format_version` check). `Documentation/bad-input.md`
has a row for each (`Testing/test_slicer_bad_inputs_round26.py` for the Slicer Logic and panel).
Real parts: the 1,500-node phantom written to real VTK files, the real command line in process, the
cohort's own manifest reader and row runner.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from cardioscar.aha import analyse_mesh
from cardioscar.aha.demo_report import phantom_options
from cardioscar.cli import main
from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom

#: The piece warning's words (:func:`cardioscar.simulation.opencarp.warn_about_pieces`) up to its gap.
APART = (r"(\S+|The model '[^']+') falls apart: \d+ of its \d+ nodes lie in 1 piece\(s\) that no element joins to the "
         r"largest, 2\.0 mm or more from it: ")


def split_across(mesh: Mesh, direction: np.ndarray, gap_mm: float) -> Mesh:
    """``mesh`` cut into two halves at the middle of ``direction`` (the cells whose centres lie beyond
    it moved ``gap_mm`` along it, on copies of their nodes): an LV whose halves no element joins, as a
    mesher that lost a layer of elements writes it. Point fields are kept on both halves."""
    centres = vtk.vtkCellCenters()
    centres.SetInputData(mesh.dataset)
    centres.Update()
    along = vtk_to_numpy(centres.GetOutput().GetPoints().GetData()) @ direction
    halves = vtk.vtkAppendFilter()
    for beyond in (False, True):
        ids = vtk.vtkIdList()
        for cell in np.flatnonzero((along > np.median(along)) == beyond):
            ids.InsertNextId(int(cell))
        cells = vtk.vtkExtractCells()
        cells.SetInputData(mesh.dataset)
        cells.SetCellList(ids)
        moved = vtk.vtkTransformFilter()
        shift = vtk.vtkTransform()
        shift.Translate(*(direction * gap_mm * beyond))
        moved.SetTransform(shift)
        moved.SetInputConnection(cells.GetOutputPort())
        halves.AddInputConnection(moved.GetOutputPort())
    halves.MergePointsOff()
    halves.Update()
    grid = vtk.vtkUnstructuredGrid()
    grid.DeepCopy(halves.GetOutput())
    for name in ("vtkOriginalCellIds", "vtkOriginalPointIds"):
        grid.GetCellData().RemoveArray(name)
        grid.GetPointData().RemoveArray(name)
    return Mesh(dataset=grid, space="LPS")


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    """The 1,500-node phantom (its truth as the scar probability) whole, and cut across its long axis
    into two halves 2 mm apart; its AHA options (apex, base, RV insertions) and files."""
    out = tmp_path_factory.mktemp("round26")
    made = make_phantom(PhantomConfig(target_nodes=1500, seed=3))
    mesh = read_mesh(write_phantom(made, out)["mesh"])
    write_mesh(mesh, out / "whole.vtk", {"scar_probability": mesh.point_array("scar_truth")})
    options = phantom_options(made, "scar_probability")
    axis = np.asarray(options.base) - np.asarray(options.apex)
    write_mesh(split_across(read_mesh(out / "whole.vtk"), axis / np.linalg.norm(axis), 2.0), out / "halves.vtk")
    return {"out": out, "options": options, "whole": out / "whole.vtk", "halves": out / "halves.vtk"}


def test_aha_and_channels_of_an_lv_in_two_halves_are_warned(halves, tmp_path, capsys, warnings_of_cardioscar):
    """An LV mesh in two halves that no element joins (2 mm apart) was segmented and searched without
    a word; only `export` said it fell apart. Cut across its axis, the phantom's segment 7 read 4 % scar
    for the whole mesh's 13 % and segment 12 2 % for 5 %; the channel search finds no path across the
    gap. Now `aha` (the API it runs, :func:`analyse_mesh`: the command line's bull's-eye alone takes
    seconds) and `channels` (the command line) warn, each with what the gap does to it, through the
    export's own piece count; the whole phantom is warned about by neither."""
    for name in ("halves", "whole"):
        warnings_of_cardioscar.clear()
        analyse_mesh(read_mesh(halves[name]), halves["options"])
        capsys.readouterr()
        assert main(["channels", "--mesh", str(halves[name]), "--output-dir", str(tmp_path / name), "--layers",
                     "0.5"]) == 0
        said = [m for m in warnings_of_cardioscar if "falls apart" in m]
        said += [line for line in capsys.readouterr().err.splitlines() if "falls apart" in line]
        if name == "whole":
            assert said == [], said
            continue
        assert len(said) == 2, said
        assert re.fullmatch(APART + "the AHA analysis reads their cut faces as wall faces and the gap moves the "
                            "levels, so segments and transmurality near it are off; remove them, or remesh the heart "
                            "in one piece", said[0]) and said[0].startswith("halves.vtk"), said[0]
        assert re.fullmatch(APART + "the channel search finds no path across the gap, so a corridor through it is cut "
                            "or missed; remove them, or remesh the heart in one piece", said[1]), said[1]


def test_a_cohort_row_with_aha_on_an_lv_in_two_halves_is_warned_before_its_fit(halves, tmp_path, monkeypatch):
    """A cohort row's `aha` on an LV in two halves was measured without a word (its AHA frame is found
    on the input mesh before the fit, where the warning now comes from too): the row's warnings name
    the mesh and the gap before any training."""
    import SimpleITK as sitk

    import cardioscar.logic
    from cardioscar.cohort.manifest import read_manifest
    from cardioscar.cohort.tasks import run_patient

    def stop(*args, **kwargs):
        raise CardioScarError("stopped before the training (the test reads the row's checks only)")

    monkeypatch.setattr(cardioscar.logic, "train_scar_model", stop)
    stack = sitk.Image(16, 16, 4, sitk.sitkFloat32)
    sitk.WriteImage(stack, str(tmp_path / "lge.nii.gz"))
    rv = ",".join(f"{c:g}" for c in halves["options"].rv_point)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f'id,mesh,image,aha\nlv,{halves["halves"]},{tmp_path / "lge.nii.gz"},"{rv}"\n')
    [spec] = read_manifest(manifest)
    result = run_patient(spec, str(tmp_path / "out"), "hash")
    assert result["error"].startswith("stopped before the training"), result
    warned = [w for w in result["warnings"] if "falls apart" in w]
    assert len(warned) == 1 and re.fullmatch(APART + "the AHA analysis reads .*", warned[0]), result["warnings"]


def test_training_data_read_in_a_script_and_trained_is_warned_of_its_mixed_groups_once(tmp_path, caplog):
    """The reference tool's training data (groups of mixed targets, no ``format_version``) loaded by a
    script (:func:`load_preprocessing_result`) and then trained in memory (:func:`train_scar_model`)
    was warned about twice, by the loader and again by the training's check of the rows in memory.
    Now once; each entry taken alone still warns (the loader, and training rows made in memory)."""
    from dataclasses import replace

    from cardioscar.fit.config import TrainingConfig
    from cardioscar.logic import load_preprocessing_result, train_scar_model
    from test_bad_inputs_round22 import _reference_tool_rows

    np.savez(tmp_path / "reference.npz", **_reference_tool_rows(n_nodes=600))
    mixed = "groups hold rows with different targets"
    one_epoch = TrainingConfig.fast(max_epochs=1, retry_failed_fit=False)
    with caplog.at_level("WARNING", logger="cardioscar.logic"):
        result = load_preprocessing_result(tmp_path / "reference.npz")
        assert caplog.text.count(mixed) == 1
        train_scar_model(result, one_epoch)
        assert caplog.text.count(mixed) == 1, caplog.text
        caplog.clear()
        train_scar_model(replace(result, intensities=result.intensities.copy()), one_epoch)
    assert caplog.text.count("The PreprocessingResult: ") == 1 and caplog.text.count(mixed) == 1, caplog.text


def test_a_cohort_seed_beyond_64_bits_is_refused_by_the_manifest_check(tmp_path):
    """A manifest ``seed`` above 2**63-1 (the training's range: seeds are stored as 64-bit integers in
    the checkpoints, and a retry's next seed wraps within it) passed the manifest check and failed its
    patient only when it trained, after the cohort had started. Now the check refuses it in one line
    naming the row, the column and the range; 2**63-1 itself passes."""
    import SimpleITK as sitk

    from cardioscar.cohort.manifest import read_manifest
    from cardioscar.io.checks import MAX_SEED

    (tmp_path / "m.vtk").touch()
    sitk.WriteImage(sitk.Image(4, 4, 2, sitk.sitkFloat32), str(tmp_path / "i.nii.gz"))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"id,mesh,image,seed\na,m.vtk,i.nii.gz,{MAX_SEED + 1}\nb,m.vtk,i.nii.gz,{MAX_SEED}\n")
    with pytest.raises(CardioScarError) as refused:
        read_manifest(manifest)
    assert str(refused.value).splitlines()[1:] == [
        "  row 1 (id a): column 'seed' must be an integer from 0 to 2**63-1 (9223372036854775807; seeds are stored "
        "as 64-bit integers), got '9223372036854775808'"], str(refused.value)
    manifest.write_text(f"id,mesh,image,seed\nb,m.vtk,i.nii.gz,{MAX_SEED}\n")
    assert read_manifest(manifest)[0].options["seed"] == MAX_SEED


@pytest.mark.parametrize("value, fragment", [
    (np.int64(0), "has format_version 0, not a whole number >= 1 (a damaged or hand-edited file): re-run "
                  "`cardioscar prepare`."),
    (np.int64(-2), "has format_version -2, not a whole number >= 1 (a damaged or hand-edited file): re-run "
                   "`cardioscar prepare`."),
    (np.int64(3), "has format_version 3, newer than this CardioScar reads (2): upgrade cardioscar, or re-run "
                  "`cardioscar prepare` with this one."),
])
def test_training_data_format_version_is_checked_as_the_models_is(tmp_path, value, fragment):
    """The training data's reader checked ``format_version`` with its own code, which passed 0 and
    negative versions (a damaged file: the models' loaders refuse them) where the models' check
    (:func:`cardioscar.io.checks.check_format_version`) refuses them. Now one check: each message names
    the file, the version found, the newest read (when newer) and what to do; a version stored as a
    one-element array reads as its value."""
    from cardioscar.logic import TRAINING_DATA_FORMAT, load_preprocessing_result
    from test_bad_inputs_round22 import _reference_tool_rows

    rows = _reference_tool_rows(n_nodes=200)
    rows.update(group_ids=np.arange(200), group_sizes=np.ones(200, dtype=np.int64))  # a pixel per row: no mixing
    assert TRAINING_DATA_FORMAT == 2
    np.savez(tmp_path / "edited.npz", **rows, format_version=value)
    with pytest.raises(CardioScarError) as refused:
        load_preprocessing_result(tmp_path / "edited.npz")
    assert str(refused.value) == f"Training data {tmp_path / 'edited.npz'} {fragment}"
    np.savez(tmp_path / "listed.npz", **rows, format_version=np.asarray([TRAINING_DATA_FORMAT]))
    assert load_preprocessing_result(tmp_path / "listed.npz").n_groups == 200
