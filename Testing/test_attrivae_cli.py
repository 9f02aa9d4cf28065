"""``cardioscar attrivae train | predict | explain`` end to end on real EMIDEC cases (the contract the
Slicer module's worker runs): a tiny model (16^3 cube, 2 epochs) on four cases, as a user runs it."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.cli import main
from cardioscar.errors import CardioScarError
from conftest import run_cli


def _in_process(capsys, *args) -> tuple[int, str, str]:
    """The same command line run in this process (cheaper than a new interpreter per call)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err

CASES = ("Case_P001", "Case_P003", "Case_N020", "Case_N023")
ATTRIBUTES = ["lv_volume_ml", "myocardium_volume_ml", "wall_thickness_mm", "ejection_fraction", "age", "sex",
              "tobacco"]


def _files(emidec, name):
    return emidec / name / "Images" / f"{name}.nii.gz", emidec / name / "Contours" / f"{name}.nii.gz"


@pytest.fixture(scope="module")
def emidec(shared_data):
    return shared_data / "emidec"


@pytest.fixture(scope="module")
def trained(emidec, tmp_path_factory):
    """Four real cases (two of each class, linked, not copied) and a model trained on them."""
    folder = tmp_path_factory.mktemp("attrivae_cli")
    data = folder / "data"
    data.mkdir()
    for name in CASES:
        (data / name).symlink_to(emidec / name)
    model = folder / "model.pth"
    result = run_cli("attrivae", "train", "--data", data, "--clinical", emidec / "clinical.csv", "--output", model,
                     "--cube", "16", "--epochs", "2", "--folds", "2", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    return folder, model, json.loads(result.stdout.strip().splitlines()[-1])


def test_train_cross_validates_and_records_the_attributes(trained):
    _, model, summary = trained
    assert model.is_file() and summary["attributes"] == ATTRIBUTES
    assert summary["cross_validation"]["n_cases"] == 4 and summary["cross_validation"]["n_mi"] == 2
    assert 0 <= summary["cross_validation"]["auc"] <= 1
    calibration = summary["calibration"]  # Platt scaling on the held-out scores, with Brier/ECE before and after
    assert calibration["method"] == "platt" and calibration["n_cases"] == 4 and calibration["slope"] >= 0
    assert calibration["brier_calibrated"] == summary["cross_validation"]["calibration"]["calibrated"]["brier"]
    assert all(0 <= calibration[f"{m}_{w}"] <= 1 for m in ("brier", "ece") for w in ("uncalibrated", "calibrated"))


def test_predict_prints_one_json_line_with_the_contract_fields(trained, emidec):
    _, model, _ = trained
    image, labels = _files(emidec, "Case_P001")
    result = run_cli("attrivae", "predict", "--model", model, "--image", image, "--labels", labels, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    answer = json.loads(lines[0])
    assert 0 <= answer["mi_probability"] <= 1 and answer["mi_predicted"] == (answer["mi_probability"] >= 0.5)
    platt = answer["calibration"]  # the trained model's scaling, applied to the network's own score
    assert answer["mi_probability_calibrated"] is True and "records no calibration" not in result.stderr
    logit = np.log(answer["mi_probability_uncalibrated"] / (1 - answer["mi_probability_uncalibrated"]))
    assert answer["mi_probability"] == pytest.approx(1 / (1 + np.exp(-(platt["slope"] * logit + platt["intercept"]))))
    assert list(answer["attributes"]) == ATTRIBUTES and list(answer["out_of_range"]) == ATTRIBUTES
    assert all(isinstance(v, float) and np.isfinite(v) for v in answer["attributes"].values())
    assert all(isinstance(v, bool) for v in answer["out_of_range"].values())
    assert answer["model"]["n_cases"] == 4 and answer["model"]["latent_dims"]["wall_thickness_mm"] == 2


def test_explain_writes_attention_maps_on_the_input_grid(trained, emidec):
    folder, model, _ = trained
    image_path, labels_path = _files(emidec, "Case_N020")
    out = folder / "explain"
    result = run_cli("attrivae", "explain", "--model", model, "--image", image_path, "--labels", labels_path,
                     "--output-dir", out, "--attributes", "lv_volume_ml,wall_thickness_mm", "--steps", "3")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout.strip())
    assert printed == json.loads((out / "explain.json").read_text(encoding="utf-8"))
    assert printed["attributes"] == ["lv_volume_ml", "wall_thickness_mm"]
    reference = sitk.ReadImage(str(image_path))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(labels_path)))
    lv = np.isin(labels, (1, 2, 3, 4))
    for name in printed["attributes"]:
        attention = sitk.ReadImage(printed["files"]["attention"][name])
        assert attention.GetSize() == reference.GetSize()
        assert np.allclose(attention.GetSpacing(), reference.GetSpacing())
        assert np.allclose(attention.GetOrigin(), reference.GetOrigin())
        assert np.allclose(attention.GetDirection(), reference.GetDirection())
        assert attention.GetPixelID() == sitk.sitkFloat32
        values = sitk.GetArrayFromImage(attention)
        assert values.min() >= 0 and values.max() <= 1
        k, j, i = np.nonzero(lv)
        outside = np.ones_like(lv)
        outside[k.min():k.max() + 1, max(j.min() - 3, 0):j.max() + 4, max(i.min() - 3, 0):i.max() + 4] = False
        assert values[outside].max() == 0  # 0 outside the LV crop
        png = printed["files"]["traversal"][name]
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert open(printed["files"]["png"], "rb").read(4) == b"\x89PNG"


def test_other_label_conventions_give_the_same_answer(trained, emidec, tmp_path, capsys):
    """An ACDC-style relabelling (cavity 3, myocardium 2) with the matching options reads the same heart."""
    _, model, _ = trained
    image, labels_path = _files(emidec, "Case_P003")
    labels = sitk.ReadImage(str(labels_path))
    array = sitk.GetArrayFromImage(labels)
    acdc = np.select([array == 1, np.isin(array, (2, 3, 4))], [3, 2], 0).astype(np.float64)
    relabelled = sitk.GetImageFromArray(acdc)
    relabelled.CopyInformation(labels)
    sitk.WriteImage(relabelled, str(tmp_path / "acdc.nii.gz"))
    code, out, err = _in_process(capsys, "attrivae", "predict", "--model", model, "--image", image,
                                 "--labels", labels_path)
    assert code == 0, err
    emidec_answer = json.loads(out)
    code, out, err = _in_process(capsys, "attrivae", "predict", "--model", model, "--image", image,
                                 "--labels", tmp_path / "acdc.nii.gz", "--cavity-labels", "3", "--myocardium-labels", "2")
    assert code == 0, err
    acdc_answer = json.loads(out)
    assert acdc_answer["mi_probability"] == pytest.approx(emidec_answer["mi_probability"], abs=1e-6)
    assert acdc_answer["attributes"] == pytest.approx(emidec_answer["attributes"], rel=1e-5)


def test_a_cine_with_its_labels_is_warned_about_naming_the_file(trained, emidec, shared_data, capsys):
    """ACDC's cine with its own labels passes every label check and was classified silently as an
    LGE; its blood pool lies 0.70 of the surrounding range above the wall (EMIDEC's LGE: at most
    0.54, ``Testing/benchmarks/attrivae_cine_contrast.py``). An EMIDEC LGE gets no such warning."""
    _, model, _ = trained
    cine = shared_data / "acdc_patient101" / "patient101_frame01.nii.gz"
    code, out, err = _in_process(capsys, "attrivae", "predict", "--model", model, "--image", cine, "--labels",
                                 shared_data / "acdc_patient101" / "patient101_frame01_gt.nii.gz",
                                 "--cavity-labels", "3", "--myocardium-labels", "2", "--device", "cpu")
    assert code == 0, err
    warned = [line for line in err.splitlines() if "looks like a cine" in line]
    assert len(warned) == 1 and f"--image {cine} looks like a cine" in warned[0] and "0.70 " in warned[0], err
    image, labels = _files(emidec, "Case_P001")
    code, _, err = _in_process(capsys, "attrivae", "predict", "--model", model, "--image", image, "--labels", labels,
                               "--device", "cpu")
    assert code == 0 and "looks like a cine" not in err, err


@pytest.mark.parametrize("args, words", [
    (["predict", "--model", "{missing}", "--image", "{image}", "--labels", "{labels}"], "--model"),
    (["predict", "--model", "{model}", "--image", "{image}", "--labels", "{image_small}"], "--labels"),
    (["predict", "--model", "{model}", "--image", "{image}", "--labels", "{labels}", "--myocardium-labels", "9"],
     "--myocardium-labels"),
    (["explain", "--model", "{model}", "--image", "{image}", "--labels", "{labels}", "--output-dir", "{out}",
      "--attributes", "infarct_volume"], "choose from lv_volume_ml"),
    (["explain", "--model", "{model}", "--image", "{image}", "--labels", "{labels}", "--output-dir", "{out}",
      "--steps", "1"], "--steps"),
    (["train", "--data", "{data}", "--clinical", "{clinical}", "--output", "{out}/m.pth", "--cube", "20"], "--cube 20"),
    (["train", "--data", "{data}", "--clinical", "{clinical}", "--output", "{out}/m.pth", "--folds", "3"],
     "--folds must be in 2..2"),
    (["train", "--data", "{out}", "--clinical", "{clinical}", "--output", "{out}/m.pth"], "--data"),
    (["predict", "--model", "{model}", "--image", "{image}", "--labels", "{image}"],
     "holds 2736 different values, not a few labels (an intensity image?)"),
    (["predict", "--model", "{model}", "--image", "{n083}", "--labels", "{p062}"],
     "Case_P062.nii.gz does not outline the image's left ventricle"),
])
def test_bad_input_is_one_error_line_with_status_2(trained, emidec, tmp_path, capsys, args, words):
    folder, model, _ = trained
    image, labels = _files(emidec, "Case_P001")
    small = tmp_path / "small.nii.gz"
    sitk.WriteImage(sitk.Image(8, 8, 2, sitk.sitkFloat32), str(small))
    names = {"missing": tmp_path / "none.pth", "image": image, "labels": labels, "image_small": small, "model": model,
             "out": tmp_path / "out", "data": folder / "data", "clinical": emidec / "clinical.csv",
             "n083": _files(emidec, "Case_N083")[0], "p062": _files(emidec, "Case_P062")[1]}  # one grid, two hearts
    try:
        code, _, err = _in_process(capsys, "attrivae", *[a.format(**names) for a in args])
    except SystemExit as parser_exit:  # argparse's own refusals end the parse with status 2
        code, err = parser_exit.code, capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and words in errors[0], err
    assert not (tmp_path / "out" / "m.pth").exists() and not (tmp_path / "out" / "explain.json").exists()


def test_demo_without_the_data_folder_trains_on_a_synthetic_set_and_explains(tmp_path, capsys):
    out = tmp_path / "demo"
    code, printed, err = _in_process(capsys, "attrivae", "demo", "--output-dir", out, "--data", tmp_path / "absent",
                                     "--epochs", "2", "--device", "cpu")
    assert code == 0, err
    summary = json.loads(printed)
    assert summary == json.loads((out / "demo.json").read_text(encoding="utf-8"))
    assert summary["data"] == "synthetic" and summary["heldout_case"] not in summary["training_cases"]
    assert 0 <= summary["mi_probability"] <= 1 and (out / "model.pth").is_file()
    # the demo trains without cross-validation: its probability is the raw score, said on each output
    assert summary["mi_probability_calibrated"] is summary["explain"]["mi_probability_calibrated"] is False
    assert json.loads((out / "predict.json").read_text(encoding="utf-8"))["mi_probability_calibrated"] is False
    assert err.count("records no calibration") == 1
    assert "looks like a cine" not in err  # its own synthetic LGE (a uniform background made it read as a cine)
    for path in summary["explain"]["files"]["attention"].values():
        assert sitk.ReadImage(path).GetSize() == sitk.ReadImage(
            str(out / "synthetic_data" / summary["heldout_case"] / "Images" / f"{summary['heldout_case']}.nii.gz")).GetSize()


def test_predict_output_is_strict_json_even_with_a_nan_in_the_model_record(trained, emidec, tmp_path, capsys):
    """A constant latent dimension has no Spearman (NaN): the line must still be valid JSON (null)."""
    import torch

    from cardioscar.attrivae.checkpoint import load_checkpoint, save_checkpoint

    _, model, _ = trained
    checkpoint = load_checkpoint(model)
    checkpoint["cross_validation"]["figures"]["spearman"]["age"] = float("nan")
    patched = tmp_path / "patched.pth"
    save_checkpoint(checkpoint, patched)
    assert torch.load(patched, weights_only=True)["format"] == "cardioscar-attrivae"
    image, labels = _files(emidec, "Case_N023")
    code, out, err = _in_process(capsys, "attrivae", "predict", "--model", patched, "--image", image, "--labels", labels)
    assert code == 0, err

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    answer = json.loads(out, parse_constant=refuse)
    assert answer["model"]["cross_validation"]["spearman"]["age"] is None


def test_explain_that_fails_midway_leaves_the_output_folder_as_it_was(trained, emidec, tmp_path, capsys, monkeypatch):
    """The second attribute's traversal fails (an injected error standing in for any failure in the
    network's work, e.g. out of memory): the folder keeps the user's file and gains nothing."""
    import cardioscar.attrivae.explain as explain

    _, model, _ = trained
    image_path, labels_path = _files(emidec, "Case_N020")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    real = explain.latent_traversal
    calls = []

    def failing_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(explain, "latent_traversal", failing_second)
    with pytest.raises(RuntimeError, match="injected"):
        main(["attrivae", "explain", "--model", str(model), "--image", str(image_path), "--labels", str(labels_path),
              "--output-dir", str(out), "--attributes", "lv_volume_ml,wall_thickness_mm", "--steps", "3"])
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_an_empty_attention_map_is_warned_and_listed(trained, emidec, tmp_path, capsys):
    """A latent dimension that nothing in the encoder's last layer raises has a Grad-CAM of 0
    everywhere: its map was written empty, its row of explain.png left blank, without a word."""
    from cardioscar.attrivae.checkpoint import load_checkpoint, save_checkpoint

    _, model, _ = trained
    checkpoint = load_checkpoint(model)
    age = checkpoint["latent_dims"]["age"]
    checkpoint["state_dict"]["to_mu.weight"][age] = 0.0  # mu_age no longer depends on the features
    patched = tmp_path / "patched.pth"
    save_checkpoint(checkpoint, patched)
    image, labels = _files(emidec, "Case_N023")
    code, out, err = _in_process(capsys, "attrivae", "explain", "--model", patched, "--image", image, "--labels",
                                 labels, "--output-dir", tmp_path / "why", "--attributes", "age,lv_volume_ml",
                                 "--steps", "2")
    assert code == 0, err
    printed = json.loads(out)
    assert printed["empty_attention"] == ["age"]
    assert sitk.GetArrayFromImage(sitk.ReadImage(printed["files"]["attention"]["age"])).max() == 0
    assert sitk.GetArrayFromImage(sitk.ReadImage(printed["files"]["attention"]["lv_volume_ml"])).max() > 0
    assert "No attention for age" in err


def test_the_python_api_the_readme_names_takes_paths_as_text(trained, emidec, tmp_path):
    """`explain_case(prediction, checkpoint, "why")` (a folder as text, as every other function
    of the README's list takes it) failed with AttributeError: 'str' object has no attribute 'mkdir'."""
    import torch

    from cardioscar.attrivae.checkpoint import load_checkpoint
    from cardioscar.attrivae.explain import explain_case
    from cardioscar.attrivae.predict import predict_case
    from cardioscar.attrivae.preprocess import LabelConvention

    _, model, _ = trained
    image, labels = _files(emidec, "Case_N023")
    checkpoint = load_checkpoint(str(model))
    prediction = predict_case(checkpoint, str(image), str(labels), LabelConvention(), torch.device("cpu"))
    summary = explain_case(prediction, checkpoint, str(tmp_path / "why"), ["lv_volume_ml"], 2)
    assert summary == json.loads((tmp_path / "why" / "explain.json").read_text(encoding="utf-8"))


def test_explaining_again_places_one_set_and_drops_the_other_attributes_maps(trained, emidec, tmp_path,
                                                                            monkeypatch, caplog):
    """`explain` into a folder that holds an earlier explanation: its files were written one by one,
    so a failure part-way left this run's first maps beside the earlier run's others, and the earlier
    run's maps of attributes not explained now stayed beside an explain.json that does not list
    them, named as this case's. The files are one set now (a failed placing keeps the earlier
    explanation whole: ``os.replace`` refusing the third rename is a stand-in for a full disk or
    a Ctrl-C there), and the earlier maps of other attributes go with it, with a warning."""
    import os

    import torch

    from cardioscar.attrivae.checkpoint import load_checkpoint
    from cardioscar.attrivae.explain import explain_case
    from cardioscar.attrivae.predict import predict_case
    from cardioscar.attrivae.preprocess import LabelConvention

    _, model, _ = trained
    checkpoint = load_checkpoint(str(model))
    image, labels = _files(emidec, "Case_N023")
    prediction = predict_case(checkpoint, str(image), str(labels), LabelConvention(), torch.device("cpu"))
    folder = tmp_path / "why"
    explain_case(prediction, checkpoint, folder, ["lv_volume_ml", "age"], 2)
    earlier = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert {"attention_age.nii.gz", "traversal_age.png", "explain.json"} <= set(earlier)

    real_replace, renames = os.replace, []

    def refusing_the_third(source, target):  # stand-in: the system refuses the set's third rename
        renames.append(target)
        if len(renames) == 3:
            raise OSError(28, "No space left on device")
        return real_replace(source, target)

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", refusing_the_third)
        with pytest.raises(CardioScarError, match="No space left on device"):
            explain_case(prediction, checkpoint, folder, ["lv_volume_ml"], 3)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == earlier

    with caplog.at_level(logging.WARNING, logger="cardioscar"):
        summary = explain_case(prediction, checkpoint, folder, ["lv_volume_ml"], 3)
    assert sorted(path.name for path in folder.iterdir()) == [
        "attention_lv_volume_ml.nii.gz", "explain.json", "explain.png", "traversal_lv_volume_ml.png"]
    assert summary["attributes"] == ["lv_volume_ml"]
    assert "Removed attention_age.nii.gz" in caplog.text and "Removed traversal_age.png" in caplog.text
