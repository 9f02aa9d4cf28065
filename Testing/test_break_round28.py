"""Break-it review of the scanner-to-simulation path and cohorts (round 28): the defects it found,
each through the face a user meets it on. `Documentation/bad-input.md` has the rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardioscar.errors import CardioScarError
from cardioscar.simulation.export import export_model
from conftest import error_lines, run_cli_in_process
from test_simulation_export import _write_prediction

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("tags", ["1,2,300000000000", "-1,2,3"])
def test_export_refuses_tag_numbers_the_files_cannot_hold(tmp_path, tags):
    """``export --tags 1,2,300000000000`` wrote the core elements' tag as -647710720 (the ``.elem``
    stores 32-bit integers) and its summary and sidecar said the core was 0 elements, 0.00 ml, exit
    0; a negative tag has no entry in the Slicer colour table. Both are refused before any file."""
    prediction, _ = _write_prediction(tmp_path)
    result = run_cli_in_process("export", "--mesh", prediction, "--output", tmp_path / "heart", "--tags", tags)
    errors = error_lines(result.stderr)
    assert result.returncode != 0 and len(errors) == 1 and "0 to 2147483647" in errors[0], result.stderr
    assert not list(tmp_path.glob("heart*"))


def test_the_api_refuses_a_fractional_tag(tmp_path):
    """``export_model(..., tag_values=(1, 2, 3.5))`` stored the core as 3 and counted it as 0 ml
    (the summary looks for 3.5): refused as the command line refuses a bad ``--tags``."""
    prediction, _ = _write_prediction(tmp_path)
    with pytest.raises(CardioScarError, match="whole numbers"):
        export_model(prediction, tmp_path / "heart", tag_values=(1, 2, 3.5))
    assert not list(tmp_path.glob("heart*"))


def test_cohort_rows_reading_copies_of_one_patients_files_are_named(tmp_path, caplog):
    """A patient's folder copied as the template of the next (``P002/`` from ``P001/``) and not
    filled with P002's files ran as two patients, both done, one heart counted twice in the
    cohort's table, without a word: the shared-input check compared paths. ``read_manifest``
    (what ``cohort run`` does first) now names the rows; P002's own files (an image of the same
    size one voxel apart, a mesh with another field) say nothing."""
    import shutil

    import numpy as np
    import SimpleITK as sitk

    from cardioscar.cohort.manifest import read_manifest
    from cardioscar.io.meshio import read_mesh, write_mesh

    first, second = tmp_path / "P001", tmp_path / "P002"
    first.mkdir()
    mesh, scar = _write_prediction(first)
    voxels = np.zeros((3, 8, 8), np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(voxels), str(first / "lge.nii"))
    shutil.copytree(first, second)
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("id,mesh,image\nP001,P001/pred.vtk,P001/lge.nii\nP002,P002/pred.vtk,P002/lge.nii\n")
    caplog.set_level("WARNING")
    read_manifest(manifest)
    assert "rows 1, 2 (ids P001, P002) read byte-identical copies of pred.vtk, lge.nii" in caplog.text
    voxels[1, 4, 4] = 1.0  # P002's own image and mesh: the same sizes, other bytes
    sitk.WriteImage(sitk.GetImageFromArray(voxels), str(second / "lge.nii"))
    write_mesh(read_mesh(mesh), second / "pred.vtk", {"scar_probability": 1.0 - scar})
    caplog.clear()
    read_manifest(manifest)
    assert "byte-identical" not in caplog.text


@pytest.mark.parametrize("fmt", ["opencarp", "vtu"])
def test_helix_angles_without_the_fibre_rule_are_refused_on_every_face(tmp_path, fmt):
    """The command line refused ``--helix-angles`` without ``--fibres rule``, but the Python API's
    ``export_model(..., helix_deg=(50, -50))`` and the Slicer Logic's ``export_model_node`` took the
    angles with no fibres and wrote no rule fibres, exit 0 (the ``.vtu`` without a word): the angles
    the user chose shaped nothing. Each face now refuses them, in its own words, before any file."""
    import sys

    sys.path.insert(0, str(REPO / "CardioScar"))
    import CardioScarLogic as csl
    from CardioScarLogic.tissue import export_model_node, tag_model_node

    prediction, _ = _write_prediction(tmp_path)
    with pytest.raises(CardioScarError, match="^--helix-angles is for --fibres rule"):
        export_model(prediction, tmp_path / "heart", fmt=fmt, helix_deg=(50.0, -50.0))
    node = csl.load_model(csl.create_scene().scene, prediction)
    with pytest.raises(CardioScarError, match="^helix_deg is for fibres rule"):
        export_model_node(node, tag_model_node(node), tmp_path / "heart", fmt=fmt, helix_deg=(50.0, -50.0))
    assert not list(tmp_path.glob("heart*"))


def test_export_refuses_units_with_a_vtu(tmp_path):
    """``export --format vtu --units um`` wrote the ``.vtu`` in the mesh's millimetres, exit 0:
    ``--units`` sets the openCARP ``.pts`` alone, and a modeller converting that ``.vtu`` for openCARP
    (meshtool keeps the coordinates) got a heart 1,000 times too small. Refused before any file;
    the ``.vtu`` without ``--units`` and the openCARP set with it are as before."""
    prediction, _ = _write_prediction(tmp_path)
    result = run_cli_in_process("export", "--mesh", prediction, "--format", "vtu", "--units", "um",
                                "--output", tmp_path / "heart.vtu")
    errors = error_lines(result.stderr)
    assert result.returncode != 0 and len(errors) == 1 and "a .vtu keeps the mesh's millimetres" in errors[0], \
        result.stderr
    assert not list(tmp_path.glob("heart*"))
    assert run_cli_in_process("export", "--mesh", prediction, "--format", "vtu", "--output",
                              tmp_path / "heart.vtu").returncode == 0
    assert run_cli_in_process("export", "--mesh", prediction, "--units", "mm", "--output",
                              tmp_path / "heart").returncode == 0
    assert (tmp_path / "heart.pts").read_text(encoding="utf-8").split("\n")[1].split()[0] == "10.000000"


def test_the_logic_refuses_tag_numbers_in_its_words(tmp_path):
    """The Slicer Logic's ``tag_model_node`` tags through the same check as ``export``: a tag the
    files cannot hold (or below 0, which its colour table cannot show: the healthy tissue drew
    without a colour) is one line naming its own parameter, and the node gets no tags."""
    import sys

    sys.path.insert(0, str(REPO / "CardioScar"))
    import CardioScarLogic as csl
    from CardioScarLogic.tissue import tag_model_node

    prediction, _ = _write_prediction(tmp_path)
    node = csl.load_model(csl.create_scene().scene, prediction)
    for tags in ((1, 2, 300000000000), (-1, 2, 3)):
        with pytest.raises(CardioScarError, match=r"^tag_values \(.*\) must be three whole numbers from 0 to 2147483647"):
            tag_model_node(node, tag_values=tags)
    assert not node.GetMesh().GetCellData().HasArray("tissue_tag")


@pytest.mark.parametrize("ident", ["cohort_summary.png", "Cohort_Manifest.json"])
def test_a_cohort_id_naming_one_of_the_runs_own_files_is_refused(tmp_path, ident):
    """A patient whose id is ``cohort_summary.png`` was fitted and its results folder took the place
    of the cohort's picture, then the run stopped on writing it ("is a folder"); ``cohort_manifest.json``
    replaced the record ``cohort status`` reads. The manifest check refuses such an id (compared
    without case, as ids are) before anything runs."""
    from cardioscar.cohort.manifest import read_manifest

    mesh, _ = _write_prediction(tmp_path)
    (tmp_path / "lge.nii").write_bytes(b"")
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"id,mesh,image\n{ident},{mesh.name},lge.nii\n")
    with pytest.raises(CardioScarError, match=f"id {ident} is the name of a file the run writes"):
        read_manifest(manifest)


def test_a_remote_of_one_intensity_names_the_mask_the_user_gave():
    """n-SD's refusal of a remote region of one intensity said "check the remote mask" when no remote
    mask was given (the region was the darkest sector found inside the myocardium mask: an LGE whose
    spacing was rewritten put that mask on flat background), sending the user after a file that does not
    exist. Without a remote mask it now points at the myocardium mask; with one, at the remote mask."""
    from cardioscar.lge.rules import apply_rule

    rows, cols = np.mgrid[:48, :48]
    radius = np.hypot(rows - 24, cols - 24)
    ring = (radius >= 10) & (radius <= 16)
    image = np.where(cols < 24, 100.0, 300.0 + 60.0 * np.random.default_rng(0).standard_normal((48, 48)))
    flat_half = ring & (cols < 24)
    with pytest.raises(CardioScarError, match="SD 0") as found:
        apply_rule("nsd", [image], [ring])
    assert "remote mask" not in str(found.value) and "myocardium mask lies on this image" in str(found.value)
    with pytest.raises(CardioScarError, match="SD 0.*check the remote mask$"):
        apply_rule("nsd", [image], [ring], remote=[flat_half])
