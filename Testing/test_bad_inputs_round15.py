"""Round 15 of the bad-input review: the modeller's path from the scanner to the simulation.

Each test is one input a user could give that ran to exit 0 with a wrong or misleading result before
this round; the *Bad input* table (Documentation/bad-input.md) has a row for each. Real parts: round 13's 1,500-node phantom
with its raw LGE and label map (1 blood pool, 2 myocardium) written to disk, EMIDEC's P001 from the
shared data, and the real command line in process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import read_mesh, write_mesh
from cardioscar.prepare.mesh_from_labels import myocardium_mesh_from_labels
from cardioscar.simulation.export import export_model
from conftest import assert_refused_in_one_line
from test_bad_inputs_round13 import case  # noqa: F401 (the phantom, its raw LGE and label map on disk)


@pytest.fixture(scope="module")
def prediction(case) -> Path:
    """Round 13's phantom mesh as a prediction: its truth as ``scar_probability``, beside the
    phantom's ``transmural_depth``, a core model's spread and a channel search's depth."""
    mesh = read_mesh(case["mesh"])
    truth = mesh.point_array("scar_truth").astype(np.float64)
    path = case["out"] / "prediction.vtu"
    write_mesh(mesh, path, {"scar_probability": truth, "core_uncertainty": np.full(truth.shape, 0.9),
                            "wall_depth": np.linspace(0.0, 1.0, truth.size)})
    return path


def test_a_field_of_the_walls_depth_is_refused_as_the_scar(case, prediction, capsys):
    """``export --scar-field transmural_depth`` (the phantom's and the raw-LGE demo's depth, in [0, 1]):
    the demo's wall tagged 44 % healthy, 36 % border zone and 21 % core by depth alone, exit 0. The
    same for the channel search's ``wall_depth``, the core model's spread, on every verb that cuts a
    probability (export, evaluate, channels, aha: one shared check)."""
    out = case["out"]
    assert_refused_in_one_line(["export", "--mesh", prediction, "--format", "vtu", "--scar-field",
                                "transmural_depth", "--output", out / "out_tagged.vtu"],
                               "--scar-field 'transmural_depth' is the node's depth through the wall", capsys, out)
    assert_refused_in_one_line(["evaluate", "--prediction", prediction, "--truth", case["mesh"],
                                "--probability-field", "wall_depth"],
                               "--probability-field 'wall_depth' is the node's depth", capsys, out)
    assert_refused_in_one_line(["channels", "--mesh", prediction, "--output-dir", out / "out_channels",
                                "--scar-field", "transmural_depth"], "not a scar probability", capsys, out)
    with pytest.raises(CardioScarError, match="'core_uncertainty' is the MC-dropout spread of the core"):
        export_model(prediction, out / "out_core.vtu", fmt="vtu", core_field="core_uncertainty")
    with pytest.raises(CardioScarError, match="'core_marginal' is the channel search's mark"):
        export_model(prediction, out / "out_core.vtu", fmt="vtu", scar_field="core_marginal")
    tags, _ = export_model(prediction, out / "tagged.vtu", fmt="vtu")
    assert tags.node_tags.size == 1491


def test_mesh_from_labels_refuses_the_blood_pool_as_the_myocardium(shared_data, case, tmp_path, capsys):
    """``--myocardium-labels 1`` on EMIDEC (its cavity: the "1" of a 0/1 mask): P001 meshed as a solid
    LV cavity of 70,137 nodes, exit 0, which ``prepare`` then only warned about."""
    p001 = shared_data / "emidec" / "Case_P001" / "Contours" / "Case_P001.nii.gz"
    assert_refused_in_one_line(["mesh-from-labels", "--labels", p001, "--myocardium-labels", "1", "--output",
                                tmp_path / "out_mesh.vtu"],
                               "--myocardium-labels 1 enclose no cavity on any of the 10 slices", capsys, tmp_path)
    with pytest.raises(CardioScarError, match="is it the blood pool"):
        myocardium_mesh_from_labels(case["labels"], [1])
    assert myocardium_mesh_from_labels(case["labels"], [2]).dataset.GetNumberOfCells() > 0


def test_a_remote_mask_over_the_scar_is_named_in_the_scar_free_warning(case, capsys):
    """``--scar-rule nsd --remote-mask`` the whole myocardium: the scar's enhancement set the remote's
    mean and SD, 173 of 1,276 scar pixels were left, and the warning said only that the heart may
    have no infarct. A warning (a refusal has no cut: ``Testing/benchmarks/remote_mask_emidec.py``)."""
    from cardioscar.cli import main

    labels = sitk.GetArrayFromImage(case["labels"])
    remote = sitk.GetImageFromArray((labels == 2).astype(np.uint8))
    remote.CopyInformation(case["labels"])
    sitk.WriteImage(remote, str(case["out"] / "remote.nii.gz"))
    out = case["out"]
    base = ["prepare", "--mesh", case["mesh"], "--image", out / "lge.nii.gz", "--myocardium-mask", out / "labels.nii.gz",
            "--myocardium-labels", "2", "--slice-thickness-padding", case["half"], "--scar-rule", "nsd",
            "--output", case["out"] / "remote.npz"]
    capsys.readouterr()
    assert main([str(a) for a in base + ["--remote-mask", case["out"] / "remote.nii.gz"]]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "no compact enhancement" in line]
    assert len(warned) == 1 and "or the --remote-mask holds the scar" in warned[0], warned
    assert main([str(a) for a in base]) == 0
    assert "no compact enhancement" not in capsys.readouterr().err


def test_the_python_api_refuses_a_remote_mask_with_another_rule_and_thresholds_as_text(case):
    """``ScarRuleRequest(rule="psi", remote_path=...)``: the command line and the cohort refuse a remote
    mask with a rule that has no remote region; the Python API (and the Slicer Logic, which shares
    ``graded_targets``) dropped it without a word. ``thresholds="0.3,0.8"`` was parsed character by
    character ("'0,.,3,,,0,.,8' must be two numbers")."""
    from cardioscar.lge.prepare import ScarRuleRequest
    from cardioscar.logic import PreprocessingRequest, prepare_training_data

    out = case["out"]
    labels = sitk.GetArrayFromImage(case["labels"])
    remote = sitk.GetImageFromArray((labels == 2).astype(np.uint8))
    remote.CopyInformation(case["labels"])
    sitk.WriteImage(remote, str(out / "remote_api.nii.gz"))

    def request(rule: ScarRuleRequest) -> PreprocessingRequest:
        return PreprocessingRequest(mesh_path=case["mesh"], image_path=out / "lge.nii.gz", scar_rule=rule,
                                    myocardium_mask=out / "labels.nii.gz", myocardium_labels=[2],
                                    slice_thickness_padding=float(case["half"]))

    with pytest.raises(CardioScarError, match="nsd only; psi has no remote region: leave it out"):
        prepare_training_data(request(ScarRuleRequest(rule="psi", remote_path=out / "remote_api.nii.gz")))
    with pytest.raises(CardioScarError, match=r"thresholds must be two numbers \(border, core\).*got '0.3,0.8'"):
        ScarRuleRequest(rule="psi", thresholds="0.3,0.8")
    assert prepare_training_data(request(ScarRuleRequest(rule="psi", thresholds=(0.3, 0.8)))).scar_rule


@pytest.mark.parametrize("blood_signal, scar, warned", [(100.0, False, True), (400.0, True, False)])
def test_normalised_lge_without_a_myocardium_is_judged_on_the_meshs_pixels(tmp_path, capsys, blood_signal, scar,
                                                                           warned):
    """``--normalize-intensities`` without a myocardium mask or labels: no check ran (the warning of
    ``test_normalised_lge_warning`` needs the myocardium), and EMIDEC P001's raw PSIR stack on its own
    mesh trained 99.98 % of its 72,359 rows as scar, exit 0. Now the pixels the mesh's nodes lie on
    are judged: the dark-blood, scar-free stack is warned about, the bright-blood scarred one not."""
    from cardioscar.cli import main
    from test_normalised_lge_warning import _write_stack

    image, labels = _write_stack(tmp_path, blood_signal, scar)
    mesh = tmp_path / "mesh.vtk"
    write_mesh(myocardium_mesh_from_labels(sitk.ReadImage(str(labels)), [2]), mesh)
    capsys.readouterr()
    assert main(["prepare", "--mesh", str(mesh), "--image", str(image), "--normalize-intensities", "--output",
                 str(tmp_path / "out.npz")]) == 0
    named = [line for line in capsys.readouterr().err.splitlines() if "of the pixels the mesh's nodes lie on" in line]
    assert len(named) == warned, named


def test_helix_angles_starting_with_a_minus_are_read_as_values(case, prediction, capsys):
    """``export --helix-angles -60,60`` (a helix that turns the other way): argparse took the value for
    an option and refused the run with "expected one argument" (``aha`` read its points already);
    the batch script's ``--helix-angles`` the same."""
    import json

    from cardioscar.cli import main
    from test_batch_script import _load_script

    out = case["out"]
    capsys.readouterr()
    assert main(["export", "--mesh", str(prediction), "--fibres", "rule", "--helix-angles", "-60,60", "--output",
                 str(out / "helix")]) == 0, capsys.readouterr().err
    rule = json.loads((out / "helix.json").read_text())["fibre_rule"]
    assert (rule["helix_endo_deg"], rule["helix_epi_deg"]) == (-60.0, 60.0)
    args = _load_script().build_parser().parse_args(["--volume", "lge.nii.gz", "--mesh", "mesh.vtk", "--output",
                                                     "scar.vtu", "--helix-angles", "-60,60"])
    assert args.helix_angles == "-60,60"


def test_the_healthy_myocardium_as_the_experts_scar_is_warned_about(shared_data, tmp_path, capsys):
    """``--expert-scar-labels 2`` on an EMIDEC map (its healthy myocardium; the numbers swapped): the
    healthy wall graded as the experts' scar and the infarct left healthy (P001: 48 % of the rows
    scar for 52 %), exit 0, where ``--scar-labels 2`` has been warned about since round 7. Now the
    same measure on the myocardium's outer border (``Testing/benchmarks/expert_labels_outer_border_emidec.py``:
    3,4 at most 0.39 on EMIDEC's 52 infarct maps, 2 at least 0.61)."""
    from cardioscar.cli import main

    case = shared_data / "emidec" / "Case_P001"
    labels = case / "Contours" / "Case_P001.nii.gz"
    mesh = tmp_path / "mesh.vtu"
    write_mesh(myocardium_mesh_from_labels(sitk.ReadImage(str(labels)), spacing_mm=3.0), mesh)
    for scar, warned in (("2", True), ("3,4", False)):
        capsys.readouterr()
        assert main(["prepare", "--mesh", str(mesh), "--image", str(case / "Images" / "Case_P001.nii.gz"),
                     "--myocardium-mask", str(labels), "--myocardium-labels", "2,3,4", "--scar-rule", "nsd",
                     "--expert-scar-labels", scar, "--slice-indices", "3,4,5", "--output",
                     str(tmp_path / "out.npz")]) == 0
        named = [line for line in capsys.readouterr().err.splitlines()
                 if "of the myocardium's outer border" in line and f"--expert-scar-labels {scar} " in line]
        assert len(named) == warned, named


def test_a_mesh_given_as_a_mask_is_named_a_mesh(case, capsys):
    """The mesh as ``--remote-mask`` (a cohort row's ``remote_mask``, ``--myocardium-mask``): "unreadable,
    truncated or corrupted file", which sends the user to check a file that is fine. A ``.vtk`` image
    (STRUCTURED_POINTS, which SimpleITK reads) is still an image."""
    from cardioscar.io.imageio import read_image

    out = case["out"]
    assert_refused_in_one_line(["prepare", "--mesh", case["mesh"], "--image", out / "lge.nii.gz", "--myocardium-mask",
                                out / "labels.nii.gz", "--myocardium-labels", "2", "--scar-rule", "nsd",
                                "--remote-mask", case["mesh"], "--output", out / "out.npz"],
                               "phantom_mesh.vtk: it is a mesh (.vtk of points and cells), not an image", capsys, out)
    sitk.WriteImage(case["labels"], str(out / "labels_image.vtk"))
    assert read_image(out / "labels_image.vtk").GetSize() == case["labels"].GetSize()
