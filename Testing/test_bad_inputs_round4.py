"""Round 4 of silent wrong answers: inputs that gave a wrong field, a wrong training set or wrong
attribute read-outs with exit 0 on main. Each is now refused in one ``error:`` line naming the
option, file or column and what to give, or, where the input can be legitimate, named in a
warning.

Real parts throughout: the real EMIDEC label maps and clinical table (edited copies of the table
written the way users' tables go wrong), a mesh built from a real label map by
``cardioscar mesh-from-labels``, the segmented LV phantom's label map, and a small phantom model
trained by the real command line.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from cardioscar.cli import main
from cardioscar.io.meshio import read_mesh
from conftest import ATTRIVAE_CASES, assert_refused_in_one_line, trained_small_phantom

#: An EMIDEC infarct whose label map holds no-reflow (label 4) inside the infarct (label 3).
NO_REFLOW_CASE = "Case_P001"


@pytest.fixture(scope="module")
def emidec_mesh(tmp_path_factory, shared_data) -> dict:
    """The real label map of an infarct with no-reflow and a coarse mesh built from it."""
    out = tmp_path_factory.mktemp("round4_emidec")
    labels = shared_data / "emidec" / NO_REFLOW_CASE / "Contours" / f"{NO_REFLOW_CASE}.nii.gz"
    assert main(["mesh-from-labels", "--labels", str(labels), "--spacing", "3", "--output", str(out / "lv.vtu")]) == 0
    return {"out": out, "labels": labels, "mesh": out / "lv.vtu"}


def _scar_rows(npz: Path) -> int:
    return int((np.load(npz)["intensities"] >= 0.5).sum())


def test_no_reflow_label_left_out_of_scar_labels_is_named(emidec_mesh, capsys):
    """EMIDEC's scar is labels 3 (infarct) and 4 (no-reflow, the infarct's core). ``--scar-labels 3``
    (with ``--myocardium-labels 2,3,4`` or without) trained the no-reflow core as healthy
    myocardium, silently (P001: a third of its scar rows lost). Now a warning names label 4; the
    right labels give none."""
    out, common = emidec_mesh["out"], ["prepare", "--mesh", str(emidec_mesh["mesh"]), "--image",
                                       str(emidec_mesh["labels"]), "--myocardium-labels", "2,3,4"]
    capsys.readouterr()
    assert main([*common, "--scar-labels", "3", "--output", str(out / "only3.npz")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "inside the scar" in line]
    assert len(warned) == 1 and "Label 4 " in warned[0], warned
    assert "add it to the scar labels (--scar-labels)" in warned[0]
    assert main([*common, "--scar-labels", "3,4", "--output", str(out / "both.npz")]) == 0
    assert "inside the scar" not in capsys.readouterr().err
    # the careless form, without --myocardium-labels, is named too (the cavity, larger than the scar, is not)
    assert main(["prepare", "--mesh", str(emidec_mesh["mesh"]), "--image", str(emidec_mesh["labels"]),
                 "--scar-labels", "3", "--output", str(out / "no_myocardium.npz")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "inside the scar" in line]
    assert len(warned) == 1 and "Label 4 " in warned[0], warned
    # what the warning is about: the no-reflow pixels' rows are scar only with label 4 listed
    assert _scar_rows(out / "only3.npz") < 0.8 * _scar_rows(out / "both.npz")


@pytest.fixture(scope="module")
def segmented(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("round4_segmented")
    assert main(["phantom", "--family", "segmented", "--nodes", "1500", "--output-dir", str(out)]) == 0
    return out


def test_label_map_with_normalize_intensities_is_refused(segmented, tmp_path, capsys):
    """A label map (0 background, 1 cavity, 2 myocardium, 3 scar) given as raw LGE with
    ``--normalize-intensities`` was min-max scaled into grades: healthy myocardium a 0.67 scar,
    the cavity 0.33, exit 0. Refused; the phantom's real LGE stack still prepares."""
    assert_refused_in_one_line(["prepare", "--mesh", segmented / "phantom_mesh.vtk", "--image",
                                segmented / "phantom_labels.nii.gz", "--normalize-intensities", "--output",
                                tmp_path / "out.npz"], "a label map, not raw LGE", capsys, tmp_path)
    assert main(["prepare", "--mesh", str(segmented / "phantom_mesh.vtk"), "--image",
                 str(segmented / "phantom_lge.nii.gz"), "--normalize-intensities", "--output",
                 str(tmp_path / "lge.npz")]) == 0


@pytest.fixture(scope="module")
def no_dropout_model(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("round4_dropout")
    _, paths = trained_small_phantom(out, max_epochs=3)
    assert main(["train", "--training-data", str(out / "data.npz"), "--output", str(out / "no_dropout.pth"),
                 "--preset", "fast", "--max-epochs", "3", "--dropout-rate", "0", "--seed", "1"]) == 0
    return {"out": out, "mesh": paths["mesh"], "model": out / "model.pth", "no_dropout": out / "no_dropout.pth"}


def test_model_without_dropout_warns_that_its_uncertainty_is_zero(no_dropout_model, capsys):
    """``train --dropout-rate 0`` gives a network whose MC-dropout passes are all alike: ``apply``
    wrote ``scar_uncertainty`` 0 on every node, read as certainty, without a word (as
    ``--mc-samples 1`` did before round 3). Now a warning says so; a model with dropout gives none."""
    files = no_dropout_model
    capsys.readouterr()
    assert main(["apply", "--model", str(files["no_dropout"]), "--mesh", str(files["mesh"]), "--output",
                 str(files["out"] / "no_dropout.vtk"), "--seed", "1"]) == 0
    assert "trained with dropout_rate 0: scar_uncertainty is 0 on every node" in capsys.readouterr().err
    assert np.all(read_mesh(files["out"] / "no_dropout.vtk").point_array("scar_uncertainty") == 0)
    assert main(["apply", "--model", str(files["model"]), "--mesh", str(files["mesh"]), "--output",
                 str(files["out"] / "dropout.vtk"), "--seed", "1"]) == 0
    assert "dropout_rate 0" not in capsys.readouterr().err


# --------------------------------------------------------------------------- Attri-VAE clinical table

def _clinical_copy(shared_data: Path, path: Path, edit) -> Path:
    """The real EMIDEC clinical table with ``edit(rows)`` applied, written to ``path``."""
    with (shared_data / "emidec" / "clinical.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    rows = edit(rows)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _sex_as_letters(rows):
    return [{**row, "sex": "F" if row["sex"] == "1" else "M"} for row in rows]


def _case_3_twice(rows):
    three = next(row for row in rows if row["case"] == "3")
    return rows + [{**three, "FEVG": "20", "age": "90"}]


def _numbers_of_another_cohort(rows):
    return [{**row, "case": str(1000 + int(row["case"]))} for row in rows]


@pytest.mark.parametrize("edit, fragment", [
    (_sex_as_letters, "column 'sex': 'M' is not a number"),
    (_case_3_twice, "case 3 is on two rows"),
    (_numbers_of_another_cohort, "ejection_fraction is known for 0 of the 3 cases"),
], ids=["sex-as-letters", "duplicate-case", "ids-match-no-folder"])
def test_attrivae_clinical_table_that_ties_attributes_to_nothing_is_refused(shared_data, tmp_path, capsys, edit,
                                                                           fragment):
    """Each table trained with exit 0 on main: a non-numeric cell (sex M/F) or a case number that
    matches no folder left the attribute unknown on every case, so its latent dimension was tied
    to nothing and ``attrivae predict`` reported 0 for it on every case (the read-back line has no
    slope, the scaler's empty minimum is 0); a duplicated case silently kept its last row."""
    data = tmp_path / "data"
    data.mkdir()
    for case in ATTRIVAE_CASES:
        (data / case).symlink_to(shared_data / "emidec" / case)
    table = _clinical_copy(shared_data, tmp_path / "clinical.csv", edit)
    assert_refused_in_one_line(["attrivae", "train", "--data", data, "--clinical", table, "--output",
                                tmp_path / "out.pth", "--cube", "16", "--epochs", "1", "--folds", "0", "--device",
                                "cpu"], fragment, capsys, tmp_path)


def test_attrivae_cases_numbered_per_class_are_refused(shared_data, tmp_path, capsys):
    """A user's cohort numbered per class (Case_P003 and Case_N003): both folders read the
    clinical row of case 3, so the normal case trained with the infarct patient's ejection
    fraction, age and sex, exit 0 on main. Refused, naming both folders."""
    data = tmp_path / "data"
    data.mkdir()
    for case in ATTRIVAE_CASES:
        (data / case).symlink_to(shared_data / "emidec" / case)
    for sub in ("Images", "Contours"):  # a normal case renumbered per class
        (data / "Case_N003" / sub).mkdir(parents=True)
        (data / "Case_N003" / sub / "Case_N003.nii.gz").symlink_to(
            shared_data / "emidec" / "Case_N020" / sub / "Case_N020.nii.gz")
    clinical = shared_data / "emidec" / "clinical.csv"
    assert_refused_in_one_line(["attrivae", "train", "--data", data, "--clinical", clinical, "--output",
                                tmp_path / "out.pth", "--cube", "16", "--epochs", "1", "--folds", "0", "--device", "cpu"],
                               "Case_N003 and Case_P003 have the same number", capsys, tmp_path)


def test_attrivae_predict_with_the_no_reflow_left_out_of_the_myocardium_is_refused(attrivae_model, shared_data,
                                                                                 tmp_path, capsys):
    """``attrivae predict --myocardium-labels 2,3`` on an EMIDEC map (the model trained with 2,3,4):
    the no-reflow core (4) was masked out of the network's input as background, a hole in the
    infarct, exit 0 on main. (Leaving out 3 as well breaks the myocardium ring, which the cavity
    check already refused.) Refused; the map's own labels predict."""
    case = shared_data / "emidec" / "Case_P001"
    args = ["attrivae", "predict", "--model", attrivae_model, "--image", case / "Images" / "Case_P001.nii.gz",
            "--labels", case / "Contours" / "Case_P001.nii.gz", "--device", "cpu"]
    assert_refused_in_one_line([*args, "--myocardium-labels", "2,3"], "holds labels [4], myocardium when the model "
                               "was trained", capsys, tmp_path)
    assert main([str(a) for a in args]) == 0
