"""The Attri-VAE module's Logic on real MRML (slicer-core), real EMIDEC files and the real
``cardioscar attrivae`` command line in worker processes, with a tiny model trained once per
session (conftest's ``attrivae_model``).

The central check: what the module writes for the command line and reads back is the data the
command line sees in the user's own files. So the Logic's prediction and attention maps, on
nodes under a rigid transform, must equal the command line's on the original files (a wrong
RAS/LPS flip, axis order, label export or grid mapping changes them), and every map must come
back on the LGE node's own grid and transform.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))
sys.path.insert(0, str(REPO / "AttriVAE"))

import SimpleITK as sitk  # noqa: E402
import slicer  # noqa: E402  (slicer-core)
import vtk  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
from AttriVAELogic import AttriVAELogic, AttriVAEOptions  # noqa: E402
from AttriVAELogic import scene as results  # noqa: E402
from AttriVAELogic.inputs import write_inputs  # noqa: E402
from cardioscar.errors import CardioScarError, TrainingCancelled  # noqa: E402
from conftest import run_cli_in_process  # noqa: E402
from test_temporary_folders import temporary  # noqa: E402,F401  (the system's temporary folder, redirected)

CASE = "Case_P003"
#: Two attributes and three steps keep explain short; the same options go to the reference run.
EXPLAIN = {"attributes": "lv_volume_ml,wall_thickness_mm", "steps": 3}


@pytest.fixture(scope="module")
def case_files(shared_data) -> tuple[Path, Path]:
    folder = shared_data / "emidec" / CASE
    return folder / "Images" / f"{CASE}.nii.gz", folder / "Contours" / f"{CASE}.nii.gz"


@pytest.fixture(scope="module")
def reference(attrivae_model, case_files, tmp_path_factory) -> dict:
    """The command line run directly on the original files: the truth the Logic must reproduce (its
    entry function in this process; test_attrivae_cli runs both commands as a user does)."""
    image, labels = case_files
    predicted = run_cli_in_process("attrivae", "predict", "--model", attrivae_model, "--image", image,
                                   "--labels", labels, "--device", "cpu")
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    out = tmp_path_factory.mktemp("reference_explain")
    explained = run_cli_in_process("attrivae", "explain", "--model", attrivae_model, "--image", image,
                                   "--labels", labels, "--output-dir", out, "--attributes", EXPLAIN["attributes"],
                                   "--steps", str(EXPLAIN["steps"]))
    assert explained.returncode == 0, explained.stderr[-2000:]
    maps = {name: sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"attention_{name}.nii.gz")))
            for name in EXPLAIN["attributes"].split(",")}
    return {"prediction": json.loads(predicted.stdout.strip().splitlines()[-1]), "maps": maps}


def _rigid_transform(scene):
    """30 degrees about an oblique axis and a shift: a frame where a wrong flip or order shows."""
    transform = vtk.vtkTransform()
    transform.Translate(12.0, -7.0, 25.0)
    transform.RotateWXYZ(30.0, 0.3, 0.5, 1.0)
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "rigid")
    node.SetMatrixTransformToParent(transform.GetMatrix())
    return node


@pytest.fixture()
def nodes(case_files):
    """A fresh scene holding the case's LGE and label map under one rigid transform, and the
    application's three slice views (their slice logics make the slice and composite nodes)."""
    context = csl.create_scene()
    slice_logics = []
    for name in ("Red", "Yellow", "Green"):
        slice_logics.append(slicer.vtkMRMLSliceLogic())
        slice_logics[-1].SetMRMLScene(context.scene)
        slice_logics[-1].AddSliceNode(name)
    image, labels = case_files
    lge = csl.load_volume(context.scene, image)
    label_map = csl.load_volume(context.scene, labels, labelmap=True)
    transform = _rigid_transform(context.scene)
    for node in (lge, label_map):
        node.SetAndObserveTransformNodeID(transform.GetID())
    return {"scene": context.scene, "lge": lge, "labels": label_map, "transform": transform, "context": context,
            "slice_logics": slice_logics}


def _matrix(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _world_ijk_to_lps(node, transform) -> np.ndarray:
    to_world = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToWorld(to_world)
    world = np.array([[to_world.GetElement(r, c) for c in range(4)] for r in range(4)])
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ world @ _matrix(node)


def _canonical(labels: np.ndarray) -> np.ndarray:
    """EMIDEC labels as the module writes them: 1 cavity, 2 myocardium (2, 3, 4), 0 elsewhere."""
    return np.where(labels == 1, 1, np.where(np.isin(labels, (2, 3, 4)), 2, 0))


def _image_geometry(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = sitk.ReadImage(str(path))
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    ijk_to_lps[:3, 3] = image.GetOrigin()
    return sitk.GetArrayFromImage(image), ijk_to_lps


def _node_count(scene) -> int:
    return scene.GetNumberOfNodes()


def test_inputs_are_written_on_the_lge_world_grid_with_canonical_labels(nodes, tmp_path):
    lge, labels, transform = nodes["lge"], nodes["labels"], nodes["transform"]
    truth = slicer.util.arrayFromVolume(labels).copy()
    written = write_inputs(lge, labels, AttriVAEOptions(), tmp_path)
    image, geometry = _image_geometry(written.image)
    expected = _world_ijk_to_lps(lge, transform)
    np.testing.assert_allclose(geometry, expected, atol=1e-4)
    np.testing.assert_array_equal(image, slicer.util.arrayFromVolume(lge))
    written_labels, label_geometry = _image_geometry(written.labels)
    np.testing.assert_allclose(label_geometry, expected, atol=1e-4)
    np.testing.assert_array_equal(written_labels, _canonical(truth))

    # labels on another grid (a crop, as a label map drawn on part of the study): resampled in world
    # coordinates, the same labels inside the crop, background outside it
    crop = truth[:, 40:200, 30:190].copy()
    cropped = nodes["scene"].AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "crop")
    slicer.util.updateVolumeFromArray(cropped, crop)
    matrix = _matrix(labels)
    matrix[:3, 3] = (matrix @ np.array([30.0, 40.0, 0.0, 1.0]))[:3]
    cropped.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    cropped.SetAndObserveTransformNodeID(transform.GetID())
    (tmp_path / "crop").mkdir()
    on_grid, _ = _image_geometry(write_inputs(lge, cropped, AttriVAEOptions(), tmp_path / "crop").labels)
    inside = np.zeros(truth.shape, dtype=bool)
    inside[:, 40:200, 30:190] = True
    np.testing.assert_array_equal(on_grid[inside], _canonical(truth)[inside])
    assert not on_grid[~inside].any()

    # ACDC labels (cavity 3, myocardium 2, right ventricle 1) give the same file: the RV is not cavity
    acdc = np.where(truth == 1, 3, np.where(np.isin(truth, (2, 3, 4)), 2, 0))
    acdc[(truth == 0) & (np.arange(truth.shape[2]) < 20)[None, None, :]] = 1
    slicer.util.updateVolumeFromArray(labels, acdc.astype(np.int16))
    (tmp_path / "acdc").mkdir()
    as_acdc = write_inputs(lge, labels, AttriVAEOptions(cavity_labels="3", myocardium_labels="2"), tmp_path / "acdc")
    np.testing.assert_array_equal(_image_geometry(as_acdc.labels)[0], _canonical(truth))


def test_a_segmentation_gives_the_same_label_file_as_the_label_map(nodes, tmp_path):
    scene, lge, labels = nodes["scene"], nodes["lge"], nodes["labels"]
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "segments")
    labels.SetAndObserveTransformNodeID(None)  # the import would move the segments by it: imported, then placed
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labels, segmentation)
    labels.SetAndObserveTransformNodeID(nodes["transform"].GetID())
    names = {"1": "LV cavity", "2": "Myocardium", "3": "Infarct", "4": "No-reflow"}
    ids = vtk.vtkStringArray()
    segmentation.GetSegmentation().GetSegmentIDs(ids)
    for index in range(ids.GetNumberOfValues()):
        segment = segmentation.GetSegmentation().GetSegment(ids.GetValue(index))
        segment.SetName(names[str(segment.GetLabelValue())])
    segmentation.SetAndObserveTransformNodeID(nodes["transform"].GetID())
    before = _node_count(scene)
    options = AttriVAEOptions(cavity_segments="LV cavity", myocardium_segments="myocardium, Infarct, No-reflow")
    written = write_inputs(lge, segmentation, options, tmp_path)
    assert _node_count(scene) == before, "the export's temporary nodes must be removed"
    np.testing.assert_array_equal(_image_geometry(written.labels)[0],
                                  _canonical(slicer.util.arrayFromVolume(labels)))
    with pytest.raises(CardioScarError, match="no segment named 'Blood'.*LV cavity, Myocardium.*type the cavity"):
        write_inputs(lge, segmentation, AttriVAEOptions(cavity_segments="Blood", myocardium_segments="Myocardium"),
                     tmp_path)


def test_predict_fills_the_table_with_the_command_lines_values(nodes, attrivae_model, reference):
    logic = AttriVAELogic(nodes["scene"])
    lines = []
    result = logic.predict(nodes["lge"], nodes["labels"], AttriVAEOptions(model_path=str(attrivae_model),
                                                                          device="cpu"), log=lines.append)
    truth = reference["prediction"]
    assert math.isclose(result.prediction.mi_probability, truth["mi_probability"], rel_tol=1e-4)
    assert result.prediction.mi_predicted == truth["mi_predicted"]
    assert set(result.prediction.attributes) == set(truth["attributes"]) and truth["attributes"]
    for name, value in truth["attributes"].items():
        assert math.isclose(result.prediction.attributes[name], value, rel_tol=1e-4, abs_tol=1e-6), name
    table = result.table_node
    assert nodes["lge"].GetNodeReference(results.PREDICTION_REFERENCE) is table
    rows = {table.GetCellText(r, 0): [table.GetCellText(r, c) for c in range(1, 5)]
            for r in range(table.GetNumberOfRows())}
    assert rows["MI probability"][0] == f"{truth['mi_probability']:.3f}"
    assert rows["MI score, uncalibrated"][0] == f"{truth['mi_probability_uncalibrated']:.3f}"
    assert rows["MI probability calibration"][0].startswith("none")  # the session's model has no folds
    assert truth["mi_probability_calibrated"] is False and result.prediction.calibrated is False
    assert any("records no calibration" in line for line in lines), "the command's warning reaches the caller"
    low, high = truth["model"]["training_ranges"]["wall_thickness_mm"]
    assert rows["Wall thickness"] == [f"{truth['attributes']['wall_thickness_mm']:.4g}", "mm", f"{low:.4g} to {high:.4g}",
                                      "yes" if truth["out_of_range"]["wall_thickness_mm"] else "no"]
    assert rows["Model: training cases"][0] == "3 (1 MI)"  # the session's tiny model (conftest)
    assert any("MI probability" in line for line in lines), "the command's log reaches the caller"
    assert results.show_prediction(nodes["lge"], result.prediction) is table, "a second result updates the table"


def test_explain_puts_each_map_on_the_lge_grid_over_the_lge(nodes, attrivae_model, reference, tmp_path):
    scene, lge = nodes["scene"], nodes["lge"]
    kept = tmp_path / "kept"
    result = AttriVAELogic(scene).explain(lge, nodes["labels"], AttriVAEOptions(model_path=str(attrivae_model),
                                                                                **EXPLAIN),
                                          output_folder=str(kept), opacity=0.4)
    assert set(result.attention_nodes) == set(reference["maps"])
    for name, node in result.attention_nodes.items():
        assert node.GetImageData().GetDimensions() == lge.GetImageData().GetDimensions()
        np.testing.assert_allclose(_matrix(node), _matrix(lge), atol=1e-9)
        assert node.GetTransformNodeID() == nodes["transform"].GetID()
        np.testing.assert_allclose(slicer.util.arrayFromVolume(node), reference["maps"][name], atol=1e-5)
        assert node.GetDisplayNode().GetColorNodeID() == results.ATTENTION_COLOR_ID
        assert lge.GetNodeReference(results.ATTENTION_REFERENCE + name) is node
    assert any(reference["maps"][name].max() > 0 for name in reference["maps"]), "an all-zero map proves nothing"
    composites = [scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
                  for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))]
    assert len(composites) == 3
    first = next(iter(result.attention_nodes.values()))
    for composite in composites:
        assert (composite.GetBackgroundVolumeID(), composite.GetForegroundVolumeID()) == (lge.GetID(), first.GetID())
        assert composite.GetForegroundOpacity() == pytest.approx(0.4)
    AttriVAELogic.show_attention_of(lge, "wall_thickness_mm", 0.7)  # another attribute's map in front
    for composite in composites:
        assert composite.GetForegroundVolumeID() == result.attention_nodes["wall_thickness_mm"].GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(0.7)
    with pytest.raises(CardioScarError, match="no attention map of age: run Explain first"):
        AttriVAELogic.show_attention_of(lge, "age")
    assert set(result.picture_nodes) == {"", *reference["maps"]}
    for name, node in result.picture_nodes.items():
        picture = node.GetImageData()
        assert node.IsA("vtkMRMLVectorVolumeNode") and picture.GetNumberOfScalarComponents() == 3
        png = vtk.vtkPNGReader()
        png.SetFileName(str(kept / (f"traversal_{name}.png" if name else "explain.png")))
        png.Update()
        assert picture.GetDimensions() == png.GetOutput().GetDimensions()
    table = result.files_table_node
    files = [Path(table.GetCellText(r, 2)) for r in range(table.GetNumberOfRows())]
    assert len(files) == 2 * len(reference["maps"]) + 1 and all(f.parent == kept and f.is_file() for f in files)
    assert result.folder == kept


def test_failures_and_stop_change_nothing(nodes, attrivae_model, tmp_path):
    scene, lge, labels = nodes["scene"], nodes["lge"], nodes["labels"]
    logic = AttriVAELogic(scene)
    before = _node_count(scene)
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "attention_lv_volume_ml.nii.gz").write_bytes(b"the user's own file")
    good = AttriVAEOptions(model_path=str(attrivae_model))
    # refused before any process starts, each with what to fix
    with pytest.raises(CardioScarError, match="model file"):
        logic.start_prediction(lge, labels, AttriVAEOptions())
    with pytest.raises(CardioScarError, match=r"No voxel of the cavity \(label\(s\) 7\).*label convention"):
        logic.start_prediction(lge, labels, AttriVAEOptions(model_path=str(attrivae_model), cavity_labels="7"))
    with pytest.raises(CardioScarError, match="between 2 and 25"):
        logic.start_explanation(lge, labels, AttriVAEOptions(model_path=str(attrivae_model), steps=1))
    # the command line's own one-line error, for a file that is not a checkpoint
    broken = tmp_path / "broken.pth"
    broken.write_text("not a checkpoint")
    run = logic.start_prediction(lge, labels, AttriVAEOptions(model_path=str(broken)))
    with pytest.raises(CardioScarError) as error:
        run.wait()
    message = str(error.value)
    assert "\n" not in message and "broken.pth" in message and not run.folder.exists()
    # Stop: the command ends at once, its folder goes, the user's folder keeps its file
    run = logic.start_explanation(lge, labels, good, output_folder=str(kept))
    run.stop()
    assert run._process.poll() is not None and not run.folder.exists()
    # Slicer ending however it ends closes the command's stdin: the command ends itself
    run = logic.start_prediction(lge, labels, good)
    run._process.stdin.close()
    assert run._process.wait(timeout=30) == 3
    run.stop()
    with pytest.raises(TrainingCancelled):
        logic.explain(lge, labels, good, output_folder=str(kept), should_cancel=lambda: True)
    assert _node_count(scene) == before
    assert [p.name for p in kept.iterdir()] == ["attention_lv_volume_ml.nii.gz"]
    assert (kept / "attention_lv_volume_ml.nii.gz").read_bytes() == b"the user's own file"


def test_a_torch_older_than_the_floor_is_refused_before_the_worker_starts(nodes, monkeypatch, temporary):
    """The worker imports the installed torch; one older than 2.4 (another extension's) was found
    only there, deep in torch. The Logic now refuses it before any file is written or process
    started, in the CardioScar Logic's one line. The version is a stand-in string in torch's
    package metadata, not a real old torch."""
    import importlib.metadata

    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.1.2+cu118" if name == "torch" else real_version(name))
    before = _node_count(nodes["scene"])
    for start in (AttriVAELogic(nodes["scene"]).start_prediction, AttriVAELogic(nodes["scene"]).start_explanation):
        with pytest.raises(CardioScarError, match=r"^PyTorch 2\.1\.2\+cu118 is older than the >=2\.4 CardioScar needs: "
                                                  r"update it"):
            start(nodes["lge"], nodes["labels"], AttriVAEOptions(model_path="never-read.pth"))
    assert _node_count(nodes["scene"]) == before and not list(temporary.glob("attrivae-run-*"))


def test_label_mistakes_are_told_in_the_panels_words(attrivae_model, shared_data):
    """An ACDC map with EMIDEC's convention reached the command line, whose error named the
    temporary labels file and its --cavity-labels option, which the panel does not have; now it
    is refused before any process starts. The command's errors that name the files it was given
    name the nodes (here another case's label map on the LGE's grid: EMIDEC N083's image, P062's
    labels)."""
    context = csl.create_scene()
    acdc = shared_data / "acdc_patient101"
    lge = csl.load_volume(context.scene, acdc / "patient101_frame01.nii.gz")
    labels = csl.load_volume(context.scene, acdc / "patient101_frame01_gt.nii.gz", labelmap=True)
    logic = AttriVAELogic(context.scene)
    options = AttriVAEOptions(model_path=str(attrivae_model))
    refused = (r"^Only 0 % of the cavity \(label\(s\) 1\) of '.*frame01_gt.*' lies inside its myocardium "
               r"\(label\(s\) 2,3,4\): choose the label convention")
    with pytest.raises(CardioScarError, match=refused):
        logic.start_prediction(lge, labels, options)
    emidec = shared_data / "emidec"
    lge = csl.load_volume(context.scene, emidec / "Case_N083" / "Images" / "Case_N083.nii.gz")
    other = csl.load_volume(context.scene, emidec / "Case_P062" / "Contours" / "Case_P062.nii.gz", labelmap=True)
    with pytest.raises(CardioScarError) as error:
        logic.predict(lge, other, options)
    message = str(error.value)
    assert message.startswith(f"'{other.GetName()}' (the labels) does not outline the image's left ventricle"), message
    assert "labels.nii.gz" not in message and "\n" not in message


def test_a_cine_given_as_the_lge_is_warned_about_in_the_nodes_name(attrivae_model, shared_data):
    """The command's cine warning reaches the panel's log naming the node, not the job's file."""
    context = csl.create_scene()
    acdc = shared_data / "acdc_patient101"
    cine = csl.load_volume(context.scene, acdc / "patient101_frame14.nii.gz")
    labels = csl.load_volume(context.scene, acdc / "patient101_frame14_gt.nii.gz", labelmap=True)
    lines = []
    AttriVAELogic(context.scene).predict(cine, labels, AttriVAEOptions(model_path=str(attrivae_model), cavity_labels="3",
                                                                        myocardium_labels="2", device="cpu"),
                                         log=lines.append)
    warned = [line for line in lines if "looks like a cine" in line]
    assert len(warned) == 1 and f"'{cine.GetName()}' (the LGE) looks like a cine" in warned[0], lines


def test_outputs_that_break_the_contract_are_refused(tmp_path):
    """The checks that stand between the command's files and the scene (no command needed)."""
    grid = np.diag([1.5, 1.5, 8.0, 1.0])
    grid[:3, 3] = (10.0, -20.0, 5.0)
    values = np.random.default_rng(0).random((4, 6, 5)).astype(np.float32)

    def write(name, array, origin=(10.0, -20.0, 5.0)):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((1.5, 1.5, 8.0))
        image.SetOrigin(origin)
        sitk.WriteImage(image, str(tmp_path / name))
        return tmp_path / name

    np.testing.assert_allclose(results.read_map(write("good.nii.gz", values), grid, (5, 6, 4), "map"), values)
    with pytest.raises(CardioScarError, match="not on the LGE's grid"):
        results.read_map(write("shifted.nii.gz", values, (11.0, -20.0, 5.0)), grid, (5, 6, 4), "map")
    with pytest.raises(CardioScarError, match="not on the LGE's grid"):
        results.read_map(write("small.nii.gz", values[:, :5]), grid, (5, 6, 4), "map")
    with pytest.raises(CardioScarError, match=r"outside \[0, 1\]"):
        results.read_map(write("big.nii.gz", values * 3), grid, (5, 6, 4), "map")
    with pytest.raises(CardioScarError, match="lacks mi_predicted, out_of_range"):
        results.read_prediction({"mi_probability": 0.5, "attributes": {}})
    with pytest.raises(CardioScarError, match="not a finite number"):
        results.read_prediction({"mi_probability": 0.5, "mi_predicted": True, "attributes": {"age": None},
                                 "out_of_range": {}})
    with pytest.raises(CardioScarError, match="names no attention map"):
        results.read_explanation({"files": {"attention": {}}}, tmp_path, grid, (5, 6, 4))


def test_the_table_shows_the_calibrated_probability_and_names_the_uncalibrated_score(nodes):
    """A calibrated model's result (the contract's keys, as ``predict`` prints them): the table's MI
    probability is the calibrated one, then how it was calibrated and the network's own score."""
    calibration = {"method": "platt", "slope": 0.4, "intercept": 1.2, "n_cases": 75}
    prediction = results.read_prediction({"mi_probability": 0.81, "mi_probability_uncalibrated": 0.35,
                                          "calibration": calibration, "mi_predicted": True, "attributes": {},
                                          "out_of_range": {}})
    table = results.show_prediction(nodes["lge"], prediction)
    rows = [[table.GetCellText(r, c) for c in range(2)] for r in range(table.GetNumberOfRows())]
    assert rows[:4] == [["MI probability", "0.810"], ["MI probability calibration",
                                                      "Platt scaling fitted on 75 held-out cases"],
                        ["MI score, uncalibrated", "0.350"], ["MI predicted", "yes"]]
    older = results.read_prediction({"mi_probability": 0.35, "mi_predicted": False, "attributes": {},
                                     "out_of_range": {}})  # a cardioscar from before calibration
    assert [row[0] for row in older.rows()] == ["MI probability", "MI predicted"]
    # the status line's words: calibrated, the raw score, or not said by an older cardioscar
    said = {"mi_probability": 0.35, "mi_predicted": False, "attributes": {}, "out_of_range": {}}
    assert results.read_prediction({**said, "mi_probability_calibrated": True}).calibration_note() == "calibrated"
    assert results.read_prediction({**said, "mi_probability_calibrated": False}).calibration_note().startswith(
        "not calibrated: the network's raw score")
    assert older.calibration_note() == "calibration not reported by this cardioscar"
    with pytest.raises(CardioScarError, match="mi_probability_calibrated is 'yes', not true or false"):
        results.read_prediction({**said, "mi_probability_calibrated": "yes"})


def test_an_attrivae_command_that_cannot_start_leaves_no_job_folder(nodes, attrivae_model, temporary):
    logic = AttriVAELogic(nodes["scene"])
    with pytest.raises(FileNotFoundError):
        logic.start_prediction(nodes["lge"], nodes["labels"], AttriVAEOptions(model_path=str(attrivae_model)),
                               python="/nonexistent/python3")
    assert list(temporary.iterdir()) == []


def test_an_explanation_without_output_folder_keeps_its_data_in_the_scene_only(nodes, attrivae_model, reference,
                                                                                temporary):
    """No output folder: nothing stays on disk, and the maps and pictures are the command line's."""
    lge = nodes["lge"]
    result = AttriVAELogic(nodes["scene"]).explain(lge, nodes["labels"],
                                                   AttriVAEOptions(model_path=str(attrivae_model), **EXPLAIN))
    assert list(temporary.iterdir()) == [], "the run's job folder and no explanation folder"
    assert result.folder is None
    for name, node in result.attention_nodes.items():
        assert node.GetStorageNode() is None, "nothing in the scene reads from a removed folder"
        np.testing.assert_allclose(slicer.util.arrayFromVolume(node), reference["maps"][name], atol=1e-5)
    for node in result.picture_nodes.values():
        assert node.GetStorageNode() is None and node.GetImageData().GetPointData().GetScalars().GetNumberOfTuples() > 0
    table = result.files_table_node
    rows = [[table.GetCellText(r, c) for c in range(3)] for r in range(table.GetNumberOfRows())]
    assert len(rows) == 2 * len(reference["maps"]) + 1 and {row[2] for row in rows} == {results.NOT_KEPT}
