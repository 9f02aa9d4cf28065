"""An LGE stored as uint16 but written or read as int16 (zleftovers, from round 13's notes): each value
over 32767 wrapped round to a negative one, so the brightest pixels became the darkest, and every
scar rule graded it (EMIDEC P015 times 16: n-SD 1,573 scar pixels for 1,714, exit 0). Refused now
(``lge.rules.refuse_wrapped_int16``) where the pixels pile at both ends of int16's range; a signed
(PSIR) image is not refused. ``--normalize-intensities`` (min-max scaling of the raw LGE) reads the same
pixels and refuses it too, on the command line, the API (NRRD) and the Slicer Logic.

Real parts: the phantom's raw LGE and label map written by SimpleITK as uint16 and int16 NIfTI files,
the real command line and the Slicer Logic on a real MRML scene (slicer-core); EMIDEC P015 for the
counts. The loop over EMIDEC's 75 stacks is ``Testing/benchmarks/lge_int16_wrap_emidec.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.cli import main
from cardioscar.errors import CardioScarError
from cardioscar.lge.rules import apply_rule
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, raw_lge_acquisition, write_phantom
from conftest import assert_refused_in_one_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402

#: The phantom's air (about 23) moved to 2048 and the whole scaled 16 times, as EMIDEC's PSIR stacks
#: stored at 2048 would be: the air sits on 32768, where int16 wraps.
AIR = 23.0


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    out = tmp_path_factory.mktemp("int16_wrap")
    phantom = make_phantom(PhantomConfig(target_nodes=1500, seed=3))
    paths = write_phantom(phantom, out)
    lge, labels = raw_lge_acquisition(phantom)
    sitk.WriteImage(labels, str(out / "labels.nii.gz"))
    stored = np.rint((sitk.GetArrayFromImage(lge).astype(np.float64) - AIR + 2048.0) * 16.0).astype(np.uint16)

    def write(values: np.ndarray, name: str) -> str:
        image = sitk.GetImageFromArray(values)
        image.CopyInformation(lge)
        sitk.WriteImage(image, str(out / name))
        return str(out / name)

    return {"out": out, "mesh": paths["mesh"], "half": str(phantom.slice_half_thickness_mm),
            "uint16": write(stored, "lge_uint16.nii.gz"), "wrapped": write(stored.view(np.int16), "lge_wrapped.nii.gz"),
            "signed": write((stored.astype(np.int64) - 32768).astype(np.int16), "lge_psir.nii.gz"),
            "labels": str(out / "labels.nii.gz")}


def _prepare(case, image: str, output: str) -> list[str]:
    return ["prepare", "--mesh", str(case["mesh"]), "--image", image, "--myocardium-mask", case["labels"],
            "--myocardium-labels", "2", "--scar-rule", "nsd", "--slice-indices", "2,3,4,5,6",
            "--slice-thickness-padding", case["half"], "--output", str(case["out"] / output)]


def test_a_wrapped_lge_is_refused_and_a_signed_one_graded_as_the_unsigned(case, capsys):
    assert sitk.ReadImage(case["wrapped"]).GetPixelID() == sitk.sitkInt16
    assert_refused_in_one_line(_prepare(case, case["wrapped"], "out.npz"),
                               "The LGE lge_wrapped.nii.gz looks like an unsigned 16-bit image read as signed int16",
                               capsys, case["out"])
    capsys.readouterr()
    assert main(_prepare(case, case["uint16"], "unsigned.npz")) == 0
    # the same image less 32768 (a signed image, its air at 0: PSIR) passes, with n-SD's same targets
    assert main(_prepare(case, case["signed"], "signed.npz")) == 0
    with np.load(case["out"] / "unsigned.npz") as unsigned, np.load(case["out"] / "signed.npz") as signed:
        assert unsigned["intensities"][:, 0].sum() > 0
        np.testing.assert_array_equal(unsigned["intensities"], signed["intensities"])
        np.testing.assert_array_equal(unsigned["node_ids"], signed["node_ids"])


def test_the_slicer_logic_refuses_the_wrapped_volume(case):
    context = csl.create_scene()
    lge = csl.load_volume(context.scene, case["wrapped"], name="wrapped LGE")
    labels = csl.load_volume(context.scene, case["labels"], labelmap=True, name="labels")
    model = csl.load_model(context.scene, case["mesh"])
    options = csl.ReconstructionOptions(half_thickness=float(case["half"]), slice_indices="2,3,4,5,6",
                                        scar_rule="nsd", myocardium_labels="2")
    with pytest.raises(CardioScarError, match="The LGE wrapped LGE looks like an unsigned 16-bit image read as signed "
                                              "int16: .* re-save it with pixel type uint16"):
        csl.CardioScarLogic(context.scene, context.color_logic).prepare_training(lge, model, options, labels)


def test_emidec_p015_wrapped_is_refused_and_its_psir_passes(shared_data):
    """P015 times 16 as uint16 read as int16, through apply_rule as every face grades: refused; the
    stack less 2048 times 16 (a signed PSIR image at int16's range, clipped) grades as stored."""
    folder = shared_data / "emidec" / "Case_P015"
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "Images" / "Case_P015.nii.gz"))).astype(np.float64)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "Contours" / "Case_P015.nii.gz")))
    myocardium = [np.isin(s, [2, 3, 4]) for s in labels]
    stored = apply_rule("nsd", list(image), myocardium)
    assert sum(s["border_pixels"] + s["core_pixels"] for s in stored.statistics) == 1714
    wrapped = np.rint(image * 16).astype(np.uint16).view(np.int16).astype(np.float64)
    with pytest.raises(CardioScarError, match=r"Case_P015.nii.gz looks like an unsigned 16-bit .*: (\d+\.\d) % of its "
                                              r"pixels lie within 2048 of 32767"):
        apply_rule("nsd", list(wrapped), myocardium, slice_names=[f"Case_P015.nii.gz k={k}" for k in range(len(image))])
    psir = np.clip(np.rint((image - 2048) * 16), -32768, 32767)
    for a, b in zip(apply_rule("nsd", list(psir), myocardium).grades, stored.grades):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------- --normalize-intensities reads the raw LGE too


def _normalise(case, image: str, output: str) -> list[str]:
    return ["prepare", "--mesh", str(case["mesh"]), "--image", image, "--normalize-intensities",
            "--slice-indices", "2,3,4,5,6", "--slice-thickness-padding", case["half"],
            "--output", str(case["out"] / output)]


def test_normalize_intensities_refuses_a_wrapped_lge_on_the_command_line(case, capsys):
    """Min-max scaling a wrapped LGE would train its brightest scar as the lowest targets: refused
    with the scar rules' line; the same pixels stored as uint16, or as signed (PSIR) int16, pass."""
    assert_refused_in_one_line(_normalise(case, case["wrapped"], "out_normalised.npz"),
                               "The LGE lge_wrapped.nii.gz looks like an unsigned 16-bit image read as signed int16",
                               capsys, case["out"])
    assert main(_normalise(case, case["uint16"], "normalised_unsigned.npz")) == 0
    assert main(_normalise(case, case["signed"], "normalised_signed.npz")) == 0
    with np.load(case["out"] / "normalised_unsigned.npz") as unsigned, \
            np.load(case["out"] / "normalised_signed.npz") as signed:
        # min-max scaling forgets the 32768 between them: the same targets, spread over 0..1
        np.testing.assert_allclose(unsigned["intensities"], signed["intensities"], atol=1e-6)
        assert unsigned["intensities"][:, 0].min() >= 0 and unsigned["intensities"][:, 0].max() > 0.5


def test_normalize_intensities_refuses_a_wrapped_nrrd_through_the_api(case):
    """The Python API (``PreprocessingRequest``, which the cohort and the batch script build) reads
    the same route; an int16 NRRD this time, so the check is the pixels', not one format's."""
    from cardioscar.logic import PreprocessingRequest, prepare_training_data

    wrapped, psir = case["out"] / "lge_wrapped.nrrd", case["out"] / "lge_psir.nrrd"
    sitk.WriteImage(sitk.ReadImage(case["wrapped"]), str(wrapped))
    sitk.WriteImage(sitk.ReadImage(case["signed"]), str(psir))
    assert sitk.ReadImage(str(wrapped)).GetPixelID() == sitk.sitkInt16

    def request(image: Path) -> PreprocessingRequest:
        return PreprocessingRequest(mesh_path=Path(case["mesh"]), image_path=image, slice_indices=[2, 3, 4, 5, 6],
                                    slice_thickness_padding=float(case["half"]), normalize_intensities=True)

    with pytest.raises(CardioScarError, match=r"^The LGE lge_wrapped.nrrd looks like an unsigned 16-bit image read as "
                                              r"signed int16: .* re-save it with pixel type uint16"):
        prepare_training_data(request(wrapped))
    targets = prepare_training_data(request(psir)).intensities
    assert 0 <= targets.min() and targets.max() <= 1 and targets.max() > 0.5


def test_the_slicer_logic_refuses_the_wrapped_volume_when_normalising(case):
    context = csl.create_scene()
    lge = csl.load_volume(context.scene, case["wrapped"], name="wrapped LGE")
    model = csl.load_model(context.scene, case["mesh"])
    options = csl.ReconstructionOptions(half_thickness=float(case["half"]), slice_indices="2,3,4,5,6",
                                        normalize_intensities=True)
    with pytest.raises(CardioScarError, match="The LGE wrapped LGE looks like an unsigned 16-bit image read as signed "
                                              "int16: .* re-save it with pixel type uint16"):
        csl.CardioScarLogic(context.scene, context.color_logic).prepare_training(lge, model, options)


def test_the_batch_script_refuses_the_wrapped_volume_when_normalising(case, tmp_path, capsys):
    """The batch script (the Slicer Logic's route) says it in one line, exit 2, before any training."""
    from test_batch_script import _load_script

    status = _load_script().run(["--volume", case["wrapped"], "--mesh", str(case["mesh"]), "--slices", "2,3,4,5,6",
                                 "--slice-thickness-padding", case["half"], "--normalize-intensities",
                                 "--preset", "fast", "--max-epochs", "1", "--output", str(tmp_path / "scar.vtk")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert "lge_wrapped looks like an unsigned 16-bit image read as signed int16" in err[0], err
    assert not (tmp_path / "scar.vtk").exists()
