"""``cardioscar prepare --scar-rule`` on real EMIDEC LGE with its expert label map as the
myocardium (2,3,4) and blood-pool (1) masks, through the command line; the mesh is a real
tetrahedral mesh built on the case's myocardial voxel centres (one node per myocardial pixel)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.cli import main
from cardioscar.errors import CardioScarError
from cardioscar.lge import apply_rule
from conftest import error_lines, run_cli_in_process

sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
from lge_rule_reconstruction_emidec import voxel_centre_mesh  # noqa: E402

CASE = "Case_P015"


@pytest.fixture(scope="module")
def emidec_case(shared_data, tmp_path_factory):
    folder = shared_data / "emidec" / CASE
    image_path, labels_path = folder / "Images" / f"{CASE}.nii.gz", folder / "Contours" / f"{CASE}.nii.gz"
    labels_image = sitk.ReadImage(str(labels_path))
    labels = sitk.GetArrayFromImage(labels_image)
    out = tmp_path_factory.mktemp("emidec")
    mesh_path = out / "myocardium.vtk"
    voxel_centre_mesh(labels_image, mesh_path)
    return image_path, labels_path, mesh_path, labels, out


def _prepare(*args):
    """``cardioscar prepare ARGS`` through the command's entry function in this process (its run as
    ``python -m cardioscar``: test_cli)."""
    return run_cli_in_process("prepare", *args)


@pytest.mark.parametrize("target", ["scar", "core"])
def test_prepare_with_nsd_rule_records_targets_and_statistics(emidec_case, target):
    image_path, labels_path, mesh_path, labels, out = emidec_case
    npz = out / f"{target}.npz"
    # the core run names its LGE dark-blood (P015's is not): the targets are the same, the check only skipped
    proc = _prepare("--mesh", str(mesh_path), "--image", str(image_path), "--scar-rule", "nsd",
                    "--scar-thresholds", "2,5", "--scar-target", target, "--myocardium-mask", str(labels_path),
                    "--myocardium-labels", "2,3,4", "--blood-pool-labels", "1", "--slice-thickness-padding", "1",
                    "--output", str(npz), *(["--dark-blood-lge"] if target == "core" else []))
    assert proc.returncode == 0, proc.stderr
    assert "may not lie on the left ventricle" not in proc.stderr  # P015: EMIDEC's own mask nearest the warning
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path)))
    grades = np.stack(apply_rule("nsd", list(image), list(np.isin(labels, [2, 3, 4])), thresholds=(2, 5)).grades)
    with np.load(npz) as data:
        record = json.loads(str(data["scar_rule"]))
        slices, pixels, targets = data["group_slice"], data["group_pixel"], data["intensities"][:, 0]
        starts = np.r_[0, np.cumsum(data["group_sizes"])[:-1]]
        dropped = data["dropped_outside_myocardium"]
    assert record["rule"] == "nsd" and (record["border"], record["core"]) == (2.0, 5.0) and record["target"] == target
    # the mask-fit check's measured share (P015's own mask: 0.916, the lowest of EMIDEC's own) is recorded,
    # judged or (--dark-blood-lge) not
    fit = record["mask_fit"]
    assert 0.90 <= fit["cavity_brighter_share"] < 0.95 and fit["checked"] == (target == "scar")
    assert fit.get("skipped") == (None if target == "scar" else "dark-blood LGE")
    # the LGE's pixels outside the myocardium, as the Slicer Logic counts them (the targets are NaN
    # there already, so they were counted as 0 dropped)
    np.testing.assert_array_equal(dropped, (~np.isin(labels, [2, 3, 4])).sum(axis=(1, 2)))
    graded = [s for s in record["slices"] if s["myocardium_pixels"]]
    assert graded and all(s["remote_sd"] > 0 and s["core_level"] > s["border_level"] for s in graded)
    # every group is one myocardial pixel and carries that pixel's graded target
    expected = grades[slices, pixels[:, 1], pixels[:, 0]]  # group_pixel is (i, j) = (column, row)
    assert (expected >= 0).all()
    np.testing.assert_array_equal(targets[starts], (expected >= 1) if target == "scar" else (expected == 2))
    from cardioscar.simulation.export import scar_rule_of

    if target == "core":  # the record travels into the checkpoint's provenance
        from cardioscar.logic import train_scar_model
        from cardioscar.fit.training import TrainingConfig

        checkpoint = train_scar_model(npz, TrainingConfig.fast(max_epochs=1))
        assert json.loads(checkpoint["provenance"]["scar_rule"]) == record
        with pytest.raises(CardioScarError, match="--scar-target core: give the scar model's training data"):
            scar_rule_of(npz)  # a core record would describe the scar field as the core's
    else:
        assert scar_rule_of(npz) == record  # what export --rule-from puts into the sidecar


def test_prepare_iir_with_intensity_offset_on_real_lge(emidec_case):
    """EMIDEC stores zero signal near 2048: --intensity-offset 2048 reaches the rule (IIR's targets
    equal the library's on the offset-free image) and is recorded; the stored image alone gives
    other targets."""
    image_path, labels_path, mesh_path, labels, out = emidec_case
    common = ["--mesh", str(mesh_path), "--image", str(image_path), "--scar-rule", "iir", "--myocardium-mask",
              str(labels_path), "--myocardium-labels", "2,3,4", "--blood-pool-labels", "1",
              "--slice-thickness-padding", "1"]
    proc = _prepare(*common, "--intensity-offset", "2048", "--output", str(out / "iir.npz"))
    assert proc.returncode == 0, proc.stderr
    assert "intensity offset 2048" in proc.stderr  # printed
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path))).astype(float)
    myocardium, blood = list(np.isin(labels, [2, 3, 4])), list(labels == 1)
    grades = np.stack(apply_rule("iir", list(image - 2048.0), myocardium, blood).grades)
    with np.load(out / "iir.npz") as data:
        record = json.loads(str(data["scar_rule"]))
        expected = grades[data["group_slice"], data["group_pixel"][:, 1], data["group_pixel"][:, 0]]
        starts = np.r_[0, np.cumsum(data["group_sizes"])[:-1]]
        np.testing.assert_array_equal(data["intensities"][starts, 0], expected >= 1)
    assert record["intensity_offset"] == 2048.0 and (expected >= 1).any()
    stored = np.stack(apply_rule("iir", list(image), myocardium, blood).grades)
    assert (stored >= 1).sum() < (grades >= 1).sum() / 10  # as stored, IIR finds almost nothing


def test_prepare_rule_errors_name_the_option(emidec_case, tmp_path, capsys):
    """In-process through cli.main (the same handler and error printing as the console script)."""
    image_path, labels_path, mesh_path, _, _ = emidec_case
    base = ["--mesh", str(mesh_path), "--image", str(image_path), "--output", str(tmp_path / "x.npz")]
    cases = [
        (["--scar-rule", "iir", "--myocardium-mask", str(labels_path), "--myocardium-labels", "2,3,4"], "needs the blood pool"),
        (["--scar-rule", "nsd"], "needs --myocardium-mask"),
        (["--scar-rule", "nsd", "--myocardium-mask", str(labels_path), "--myocardium-labels", "7"], "has no voxel with labels 7"),
        (["--scar-rule", "psi", "--scar-thresholds", "0.7,0.5", "--myocardium-mask", str(labels_path)], "0.05 <= BORDER < CORE <= 1"),
        (["--scar-thresholds", "2,3"], "--scar-thresholds needs --scar-rule"),
        (["--intensity-offset", "2048"], "--intensity-offset needs --scar-rule"),
        (["--scar-rule", "psi", "--myocardium-mask", str(labels_path), "--myocardium-labels", "2,3,4",
          "--intensity-offset", "2048"], "--intensity-offset 2048 applies to the ratio rules (fwhm, iir); --scar-rule "
                                         "psi is offset-free (its levels move with the image): leave it out"),
        (["--dark-blood-lge"], "--dark-blood-lge needs --scar-rule"),  # it skips a check only a rule runs
        (["--scar-target", "core"], "--scar-target core needs --scar-rule"),  # was ignored: the image learnt as is
        (["--scar-rule", "iir", "--myocardium-mask", str(labels_path), "--blood-pool-labels", "1"],
         "is a label map (labels 1,2,3,4) given without --myocardium-labels"),  # the cavity in the mask, any rule
        (["--scar-rule", "iir", "--myocardium-mask", str(labels_path), "--myocardium-labels", "2,3,4",
          "--blood-pool-labels", "1", "--intensity-offset", "100000", "--slice-indices", "3,4"],
         f"The blood-pool mean on {image_path.name} k=3 is "),  # the file's slice, not its place in the list
    ]
    for extra, fragment in cases:
        assert main(["prepare", *base, *extra]) != 0
        stderr = capsys.readouterr().err
        errors = error_lines(stderr)
        assert len(errors) == 1 and fragment in errors[0], (extra, stderr)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("other", ["moved 12 px", "Case_P022"])
def test_prepare_refuses_a_mask_off_this_lges_left_ventricle(emidec_case, shared_data, other, tmp_path, capsys):
    """P015's LGE with its own mask moved 12 pixels (17 mm) to lower i, or with another patient's
    (P022, on the 7 slices it covers): the rule ran on the wrong pixels and exited 0. (Moved 12
    pixels to higher i it passes this check, 0.91, and the mesh check refuses it.)"""
    image_path, labels_path, mesh_path, _, _ = emidec_case
    if other.startswith("moved"):
        own = sitk.ReadImage(str(labels_path))
        moved = sitk.GetImageFromArray(np.roll(sitk.GetArrayFromImage(own), -12, axis=2))
        moved.CopyInformation(own)
        mask, slices = tmp_path / "moved.nii.gz", []
        sitk.WriteImage(moved, str(mask))
    else:
        mask, slices = shared_data / "emidec" / other / "Contours" / f"{other}.nii.gz", ["--slice-indices", "0,1,2,3,4,5,6"]
    args = ["prepare", "--mesh", str(mesh_path), "--image", str(image_path), "--scar-rule", "nsd",
            "--myocardium-mask", str(mask), "--myocardium-labels", "2,3,4", *slices, "--output", str(tmp_path / "out.npz")]
    assert main(args) != 0
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and f"--myocardium-mask {mask.name} does not lie on the left ventricle" in errors[0], errors
    assert f"LGE {image_path.name}:" in errors[0] and "--dark-blood-lge" in errors[0]
    assert not (tmp_path / "out.npz").exists()
    if other.startswith("moved"):
        return
    # --dark-blood-lge skips this check (what it is for: a dark-blood LGE, where the cavity is dark): the
    # next check, of P015's mesh on these targets, is the one that refuses
    assert main([*args, "--dark-blood-lge"]) != 0
    stderr = capsys.readouterr().err
    assert "--dark-blood-lge: the fit of --myocardium-mask Case_P022.nii.gz to the LGE is not checked" in stderr
    # P015's mesh lies in the slabs, none of its nodes on P022's myocardium: named as such (the mask), not as the frame
    (said,) = error_lines(stderr)
    assert "does not lie on the left ventricle" not in stderr and "No mesh node lies on a pixel with a target" in said
    assert "all outside the myocardium given; does the myocardium mask or labels mark this mesh's wall" in said
