"""The Slicer module's Logic against the real MRML library (slicer-core), without Qt.

Inputs go through Slicer's own storage nodes (an oblique NIfTI LGE stack and a tetrahedral VTK
mesh of the LV phantom), exactly as in the application. Training budgets are tiny; the checks
are about wiring, frames and scene contents, which a tiny budget exercises fully.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import slicer  # noqa: E402  (slicer-core)
import SimpleITK as sitk  # noqa: E402
import torch  # noqa: E402
import vtk  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic import results  # noqa: E402
from CardioScarLogic.scarsource import scar_source_from_node  # noqa: E402
from cardioscar.errors import CardioScarError, TrainingCancelled  # noqa: E402
from cardioscar.predict.error_risk import error_risk  # noqa: E402
from cardioscar.logic import checkpoint_constraint_points  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom  # noqa: E402

EPOCHS = 25


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """Oblique LV phantom on disk: NIfTI stack + tetrahedral mesh (2k nodes)."""
    phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=3))
    paths = write_phantom(phantom, tmp_path_factory.mktemp("phantom"))
    direction = np.array(phantom.image.GetDirection()).reshape(3, 3)
    assert np.abs(direction - np.diag(np.diag(direction))).max() > 0.1, "the test stack must be oblique"
    return {"paths": paths, "half": phantom.slice_half_thickness_mm, "n_slices": phantom.image.GetSize()[2]}


@pytest.fixture()
def scene(case):
    context = csl.create_scene()
    volume = csl.load_volume(context.scene, case["paths"]["image"])
    model = csl.load_model(context.scene, case["paths"]["mesh"])
    return context, volume, model


def _options(case, **overrides) -> csl.ReconstructionOptions:
    values = dict(preset="fast", max_epochs=EPOCHS, half_thickness=case["half"], seed=7, num_threads=1,
                  threshold=0.5, slice_indices="0,1,2,3")
    values.update(overrides)
    return csl.ReconstructionOptions(**values)


def _point_array(model, name):
    array = model.GetMesh().GetPointData().GetArray(name)
    return None if array is None else vtk.util.numpy_support.vtk_to_numpy(array).copy()


def test_logic_writes_arrays_display_legend_table_and_plot(case, scene):
    context, volume, model = scene
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    result = logic.train_and_apply(volume, model, _options(case))
    n = model.GetMesh().GetNumberOfPoints()

    probability = _point_array(model, "scar_probability")
    uncertainty = _point_array(model, "scar_uncertainty")
    binary = _point_array(model, "scar_binary")
    assert len(probability) == len(uncertainty) == len(binary) == n
    assert np.all((probability >= 0) & (probability <= 1)) and np.ptp(probability) > 0
    assert np.all(uncertainty >= 0) and np.all(np.isfinite(uncertainty)) and uncertainty.max() > 0
    np.testing.assert_array_equal(binary, (probability >= 0.5).astype(np.uint8))
    np.testing.assert_array_equal(slicer.util.arrayFromModelPointData(model, "scar_probability"), probability)
    risk = _point_array(model, "scar_error_risk")  # issue 18: beside the MC std, not instead of it
    # with its border term, measured from the nodes the trained model was constrained on (LPS; the model node is RAS)
    points_lps = vtk.util.numpy_support.vtk_to_numpy(model.GetMesh().GetPoints().GetData()) * np.array([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(risk, error_risk(probability, uncertainty, 0.5, points_lps,
                                                checkpoint_constraint_points(result.checkpoint)), rtol=1e-5)

    display = model.GetDisplayNode()
    assert display.GetActiveScalarName() == "scar_probability"
    assert display.GetActiveAttributeLocation() == vtk.vtkAssignAttribute.POINT_DATA
    assert display.GetColorNodeID() == results.COLOR_TABLE_ID
    assert display.GetScalarRangeFlag() == slicer.vtkMRMLDisplayNode.UseManualScalarRange
    assert display.GetScalarRange() == (0.0, 1.0)
    assert display.GetScalarVisibility()
    color = context.scene.GetNodeByID(results.COLOR_TABLE_ID)
    assert color.GetNumberOfColors() == results.N_COLORS
    rgba = [0.0] * 4
    color.GetColor(results.N_COLORS - 1, rgba)
    np.testing.assert_allclose(rgba[:3], results.COLOR_ANCHORS[-1, 1:], atol=1.0 / 255)  # stored as 8-bit

    legend = result.legend_node
    assert legend is not None and legend.IsA("vtkMRMLColorLegendDisplayNode")
    assert legend.GetDisplayableNode() is model and legend.GetTitleText() == "Scar probability"

    table = result.table_node.GetTable()
    rows = {table.GetValue(r, 0).ToString(): (table.GetValue(r, 1).ToString(), table.GetValue(r, 2).ToString())
            for r in range(table.GetNumberOfRows())}
    from cardioscar.evaluate.metrics import node_volumes

    expected_ml = float(np.dot(node_volumes(model.GetMesh()), probability)) / 1000.0
    value, unit = rows["Scar volume (probability-weighted)"]
    assert unit == "ml" and float(value) == pytest.approx(expected_ml, abs=1e-3)
    assert float(rows["Mean uncertainty (std)"][0]) == pytest.approx(float(uncertainty.mean()), abs=1e-4)
    history = result.checkpoint["history"]
    assert int(rows["Epochs run"][0]) == history["epochs_run"] <= EPOCHS
    assert rows["Device"][0].startswith("cpu")
    assert "Scar fraction of the mesh volume" in rows
    explained = 100 * (1 - history["best_loss"] / history["target_variance"])
    assert rows["Pixel variance explained"] == (f"{explained:.1f}", "%")
    assert rows["Slab half-width"] == (f"{case['half']:g}", "mm")

    series = result.chart_node.GetPlotSeriesNode()
    loss_table = series.GetTableNode().GetTable()
    assert loss_table.GetNumberOfRows() == history["epochs_run"]
    np.testing.assert_allclose([loss_table.GetValue(r, 1).ToDouble() for r in range(loss_table.GetNumberOfRows())],
                               history["train_loss"], rtol=1e-12)

    again = logic.train_and_apply(volume, model, _options(case))  # re-running reuses the output nodes
    assert again.table_node is result.table_node and again.chart_node is result.chart_node
    np.testing.assert_array_equal(again.probability, probability)  # same seed, same result
    # the panel's Colour by: the risk and the MC spread on the same legend, then the probability again
    assert logic.show_field(model, "scar_error_risk") is legend and legend.GetTitleText() == "Error risk (relative)"
    assert display.GetActiveScalarName() == "scar_error_risk" and display.GetScalarRange() == (0.0, 1.0)
    logic.show_field(model, "scar_uncertainty")
    spread = _point_array(model, "scar_uncertainty")
    assert display.GetActiveScalarName() == "scar_uncertainty"
    assert display.GetScalarRange() == pytest.approx((0.0, float(spread.max())))  # not a chance: its own range
    logic.show_field(model, "scar_probability")
    with pytest.raises(CardioScarError, match="not 'scar_binary'"):
        logic.show_field(model, "scar_binary")
    model.GetMesh().GetPointData().RemoveArray("scar_error_risk")  # a result of an older version
    with pytest.raises(CardioScarError, match="has no scar_error_risk"):
        logic.show_field(model, "scar_error_risk")
    assert display.GetActiveScalarName() == "scar_probability" and display.GetScalarRange() == (0.0, 1.0)


def _cli(*commands):
    """Run `cardioscar <command> ...` through the console script's entry point, one thread
    (as the Logic run it is compared with)."""
    from cardioscar.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for argv in commands:
            assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)


def test_logic_equals_command_line_on_same_inputs_and_seed(case, scene, tmp_path):
    """prepare (with partial-volume correction) + train through the `cardioscar` command line
    (cardioscar.cli.main), predict through the Python API: the same arrays as the Slicer Logic
    (which read the files through MRML storage nodes)."""
    from cardioscar.logic import load_preprocessing_result, load_trained_model, predict_on_points
    from cardioscar.io.meshio import read_mesh

    context, volume, model = scene
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    result = logic.train_and_apply(volume, model, _options(case, partial_volume_correction=True))

    paths = case["paths"]
    npz, pth = tmp_path / "data.npz", tmp_path / "model.pth"
    _cli(["prepare", "--mesh-vtk", str(paths["mesh"]), "--image", str(paths["image"]), "--slice-indices", "0,1,2,3",
          "--partial-volume-correction", "--slice-thickness-padding", str(case["half"]), "--output", str(npz)],
         ["train", "--training-data", str(npz), "--output", str(pth), "--preset", "fast", "--max-epochs", str(EPOCHS),
          "--seed", "7", "--cpu", "--no-progress"])

    prepared = load_preprocessing_result(npz)
    assert prepared.partial_volume_correction and result.prepared.partial_volume_correction
    np.testing.assert_allclose(prepared.group_coverage, result.prepared.group_coverage)
    np.testing.assert_allclose(prepared.intensities, result.prepared.intensities, atol=1e-6)
    np.testing.assert_array_equal(prepared.group_ids, result.prepared.group_ids)
    np.testing.assert_array_equal(prepared.node_ids, result.prepared.node_ids)
    np.testing.assert_allclose(prepared.coordinates, result.prepared.coordinates, atol=1e-6)

    checkpoint = load_trained_model(pth)
    assert checkpoint["history"]["epochs_run"] == result.checkpoint["history"]["epochs_run"]
    for key, tensor in checkpoint["model_state_dict"].items():
        np.testing.assert_allclose(tensor.numpy(), result.checkpoint["model_state_dict"][key].cpu().numpy(), atol=1e-5)

    points = read_mesh(paths["mesh"]).points_lps()
    # the Logic draws its inference dropout masks from the run's seed
    api = predict_on_points(checkpoint, points, mc_samples=10, threshold=0.5, device="cpu", seed=7)
    np.testing.assert_allclose(api.mean_predictions, result.probability, atol=1e-5)
    np.testing.assert_allclose(api.std_predictions, result.uncertainty, atol=1e-5)
    # the border term measured from the same constrained nodes (world LPS in the scene, the file's LPS here)
    np.testing.assert_allclose(checkpoint_constraint_points(checkpoint),
                               checkpoint_constraint_points(result.checkpoint), atol=1e-4)
    assert _point_array(model, "scar_error_risk").dtype == np.float64
    np.testing.assert_allclose(api.error_risk, _point_array(model, "scar_error_risk"), atol=1e-3)


def _translation_node(scene, offset):
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = vtk.vtkMatrix4x4()
    for axis in range(3):
        matrix.SetElement(axis, 3, offset[axis])
    node.SetMatrixTransformToParent(matrix)
    return node


def test_parent_transforms_on_volume_and_mesh_are_honoured(case, scene, tmp_path):
    """Both nodes moved 200 mm by a transform: same world relation, so the same result as
    without transforms; a Logic that ignored either transform would find no overlap."""
    context, volume, model = scene
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    reference = logic.train_and_apply(volume, model, _options(case)).probability

    other = csl.create_scene()
    moved_volume = csl.load_volume(other.scene, case["paths"]["image"])
    moved_model = csl.load_model(other.scene, case["paths"]["mesh"])
    shift = _translation_node(other.scene, (200.0, -150.0, 120.0))
    moved_volume.SetAndObserveTransformNodeID(shift.GetID())
    moved_model.SetAndObserveTransformNodeID(shift.GetID())
    points_before = slicer.util.arrayFromModelPoints(moved_model).copy()
    moved = csl.CardioScarLogic(other.scene, other.color_logic).train_and_apply(moved_volume, moved_model, _options(case))
    np.testing.assert_allclose(moved.probability, reference, atol=1e-5)
    np.testing.assert_array_equal(slicer.util.arrayFromModelPoints(moved_model), points_before)  # never hardened
    assert moved_model.GetParentTransformNode() is shift


def _without_slice_under_acquisition_transform(scene, volume, missing: int):
    """What Slicer makes of a DICOM series of ``volume``'s slices with slice ``missing`` left out:
    the kept slices as one regular volume stepped evenly from the first to the last (as ITK reads
    them), under a grid transform with one displacement per slice corner that moves each slice
    back to where it was acquired (the form of the "acquisition transform" of Slicer's DICOM
    plugin; built here by hand, as slicer-core has no DICOM module). Returns (node, kept)."""
    values = slicer.util.arrayFromVolume(volume)
    count, rows, columns = values.shape
    kept = [k for k in range(count) if k != missing]
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(ijk_to_ras)
    acquired = slicer.util.arrayFromVTKMatrix(ijk_to_ras)
    step = (count - 1) / (count - 2)  # the even step from the first to the last kept slice
    regular = acquired.copy()
    regular[:3, 2] *= step
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "LGE missing a slice")
    slicer.util.updateVolumeFromArray(node, values[kept].copy())
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(regular))
    grid = vtk.vtkImageData()
    grid.SetDimensions(2, 2, len(kept))
    grid.SetOrigin(*regular[:3, 3])
    lengths = np.linalg.norm(regular[:3, :3], axis=0)
    grid.SetSpacing(lengths[0] * columns, lengths[1] * rows, lengths[2])
    grid.AllocateScalars(vtk.VTK_DOUBLE, 3)
    displacement = vtk.util.numpy_support.vtk_to_numpy(grid.GetPointData().GetScalars()).reshape(len(kept), 4, 3)
    for index, original in enumerate(kept):
        displacement[index] = acquired[:3, 2] * (original - index * step)
    grid.Modified()
    transform = slicer.vtkOrientedGridTransform()
    direction = vtk.vtkMatrix4x4()
    node.GetIJKToRASDirectionMatrix(direction)
    transform.SetGridDirectionMatrix(direction)
    transform.SetDisplacementGridData(grid)
    transform_node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "acquisition transform")
    transform_node.SetAndObserveTransformToParent(transform)
    node.SetAndObserveTransformNodeID(transform_node.GetID())
    return node, kept


def test_stack_missing_a_slice_under_slicers_acquisition_transform_is_used_where_acquired(case, scene):
    """Slicer loads an unevenly spaced DICOM series as a regular volume under a grid transform.
    Each slice must be taken where the transform puts it (where it was acquired): the result is
    the one from the complete stack's same slices. Ignoring the transform would move the kept
    slices by up to half a gap; hardening it would resample between slices."""
    context, volume, model = scene
    node, kept = _without_slice_under_acquisition_transform(context.scene, volume, missing=2)
    acquired = scar_source_from_node(volume).slices("z", kept[:4], case["half"])
    placed = scar_source_from_node(node).slices("z", [0, 1, 2, 3], case["half"])
    for layer, reference in zip(placed, acquired):
        np.testing.assert_allclose(layer.origin, reference.origin, atol=1e-6)
        np.testing.assert_allclose(layer.axis_i, reference.axis_i, atol=1e-9)
        np.testing.assert_allclose(layer.axis_j, reference.axis_j, atol=1e-9)
        np.testing.assert_array_equal(layer.values, reference.values)
    regular = scar_source_from_node(node)
    assert regular.ijk_to_lps is None and len(regular.planes) == case["n_slices"] - 1
    # a scar segmentation drawn on that volume, under the same transform, is placed the same way
    labels = context.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "scar labels")
    slicer.util.updateVolumeFromArray(labels, (slicer.util.arrayFromVolume(node) > 0.3).astype(np.uint8))
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    labels.SetIJKToRASMatrix(ijk_to_ras)
    segmentation = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(labels)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labels, segmentation)
    segmentation.SetAndObserveTransformNodeID(node.GetTransformNodeID())
    for layer, reference in zip(scar_source_from_node(segmentation).slices("z", [0, 1, 2, 3], case["half"]), placed):
        np.testing.assert_allclose(layer.origin, reference.origin, atol=1e-6)
        np.testing.assert_array_equal(layer.values, (reference.values > 0.3).astype(float))
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    expected = logic.train_and_apply(volume, model, _options(case, slice_indices=",".join(map(str, kept[:4]))))
    result = logic.train_and_apply(node, model, _options(case, slice_indices="0,1,2,3"))
    np.testing.assert_allclose(result.probability, expected.probability, atol=1e-5)
    with pytest.raises(CardioScarError, match="slice axis z"):
        logic.train_and_apply(node, model, _options(case, slice_axis="x", slice_indices="0"))

def test_mesh_moved_off_the_slices_fails_and_leaves_the_model_unchanged(case, scene):
    context, volume, model = scene
    model.SetAndObserveTransformNodeID(_translation_node(context.scene, (0.0, 0.0, 500.0)).GetID())
    n_arrays = model.GetMesh().GetPointData().GetNumberOfArrays()
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    with pytest.raises(CardioScarError) as error:
        logic.train_and_apply(volume, model, _options(case))
    assert "\n" not in str(error.value)
    assert model.GetMesh().GetPointData().GetNumberOfArrays() == n_arrays
    assert model.GetMesh().GetPointData().GetArray("scar_probability") is None


@pytest.mark.parametrize("version", ["2.3.1+cu121", "1.13.0"])
def test_a_torch_older_than_the_librarys_floor_is_refused_in_one_line(case, scene, monkeypatch, version):
    """The panel refuses a torch older than 2.4 (the library's floor) before a run; the Python
    console and the batch script reach training through ``train_and_apply``, which refuses it the
    same way, in one line naming the version and how to update, before any input is read. The
    installed version is a stand-in string (torch's package metadata), not a real old torch."""
    import importlib.metadata

    context, volume, model = scene
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: version if name == "torch" else real_version(name))
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    with pytest.raises(CardioScarError) as error:
        logic.train_and_apply(volume, model, _options(case))
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"PyTorch {version} is older than the >=2.4 CardioScar needs")
    assert 'pip install "torch>=2.4"' in message and "Update PyTorch" in message
    assert model.GetMesh().GetPointData().GetArray("scar_probability") is None


def test_a_torch_older_than_the_floor_is_refused_when_applying_a_saved_model(scene, monkeypatch, tmp_path):
    """``apply_model`` (the console's and the batch script's saved model) runs torch as training
    does but did not check its version; it now refuses an older one through the same check,
    before the model file is read. Stand-in version string, as above."""
    import importlib.metadata

    context, _, model = scene
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.3.1" if name == "torch" else real_version(name))
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    with pytest.raises(CardioScarError, match=r"^PyTorch 2\.3\.1 is older than the >=2\.4 CardioScar needs"):
        logic.apply_model(tmp_path / "never-read.pth", model)
    assert model.GetMesh().GetPointData().GetArray("scar_probability") is None


def test_cancel_leaves_the_model_as_it_was(case, scene):
    context, volume, model = scene
    display = model.GetDisplayNode()
    scalar_before, color_before = display.GetActiveScalarName(), display.GetColorNodeID()
    calls = []

    def cancel_on_third_poll() -> bool:
        calls.append(1)
        return len(calls) >= 3

    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    with pytest.raises(TrainingCancelled):
        logic.train_and_apply(volume, model, _options(case, max_epochs=500), should_cancel=cancel_on_third_poll)
    assert len(calls) == 3
    assert model.GetMesh().GetPointData().GetArray("scar_probability") is None
    assert (display.GetActiveScalarName(), display.GetColorNodeID()) == (scalar_before, color_before)
    assert model.GetNodeReference(results.SUMMARY_REFERENCE) is None
    assert logic.last_checkpoint is None


def test_label_map_and_segmentation_inputs_give_the_same_result(case, tmp_path):
    """A scar label map file and the same scar as a segmentation segment train identically; with
    the fast preset's ``auto`` both (0/1 targets over a stack) train with the shape prior, and the
    summary table says so, while the phantom's fractions train without it."""
    image = sitk.ReadImage(str(case["paths"]["image"]))
    label = sitk.Cast(image > 0.3, sitk.sitkUInt8)
    label_path = tmp_path / "scar_label.nii.gz"
    sitk.WriteImage(label, str(label_path))

    context = csl.create_scene()
    labelmap = csl.load_volume(context.scene, label_path, labelmap=True)
    assert labelmap.IsA("vtkMRMLLabelMapVolumeNode")
    model = csl.load_model(context.scene, case["paths"]["mesh"])
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    labelled = logic.train_and_apply(labelmap, model, _options(case))
    from_labels = labelled.probability
    assert labelled.checkpoint["hyperparameters"]["shape_prior"] is True and "shape_prior" in labelled.checkpoint
    assert ("Shape prior", "on", "") in labelled.summary

    segmentation = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(labelmap)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    n_nodes = context.scene.GetNumberOfNodes()
    segmented = logic.train_and_apply(segmentation, model, _options(case))
    from_segment = segmented.probability
    assert ("Shape prior", "on", "") in segmented.summary
    assert context.scene.GetNumberOfNodes() == n_nodes  # the temporary label map is gone
    np.testing.assert_allclose(from_segment, from_labels, atol=1e-6)

    text_labels = logic.train_and_apply(labelmap, model, _options(case, scar_labels="1")).probability
    np.testing.assert_array_equal(text_labels, from_labels)
    fractions = logic.train_and_apply(csl.load_volume(context.scene, case["paths"]["image"]), model, _options(case))
    assert fractions.checkpoint["hyperparameters"]["shape_prior"] is False
    assert ("Shape prior", "off", "") in fractions.summary


def test_bad_inputs_give_one_line_messages_that_say_what_to_fix(case, scene):
    context, volume, model = scene
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    last = case["n_slices"] - 1
    assert logic.slice_count(volume, "z") == case["n_slices"]
    with pytest.raises(CardioScarError, match=f"valid 0-{last}"):
        logic.train_and_apply(volume, model, _options(case, slice_indices=f"1,{last + 5}"))
    with pytest.raises(CardioScarError, match="comma-separated"):
        logic.train_and_apply(volume, model, _options(case, slice_indices="1;2"))
    with pytest.raises(CardioScarError, match="heart mesh"):
        logic.train_and_apply(volume, None, _options(case))
    with pytest.raises(CardioScarError, match="Train and apply"):
        logic.save_model(Path("never.pth"))

    warp = context.scene.AddNewNodeByClass("vtkMRMLTransformNode")
    spline = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for x, y, z in [(0, 0, 0), (100, 0, 0), (0, 100, 0), (0, 0, 100), (50, 50, 50)]:
        source.InsertNextPoint(x, y, z)
        target.InsertNextPoint(x + 3, y, z + (5 if x == 50 else 0))  # bends the planes around the last point
    spline.SetSourceLandmarks(source)
    spline.SetTargetLandmarks(target)
    spline.SetBasisToR()
    warp.SetAndObserveTransformToParent(spline)
    volume.SetAndObserveTransformNodeID(warp.GetID())
    with pytest.raises(CardioScarError, match="non-linear transform .* bends slice k=0"):
        logic.train_and_apply(volume, model, _options(case))


def test_several_volumes_are_pooled_like_the_command_line(tmp_path):
    """Slicer loads every series as a node of its own, so the Logic takes a list of nodes: the
    short-axis stack and the long-axis slice as two volume nodes give the rows that
    `cardioscar prepare --image stack long_axis` gives, slice indices counting across both."""
    from cardioscar.logic import PreprocessingRequest, prepare_training_data

    phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=3, long_axis=True))
    paths = write_phantom(phantom, tmp_path)
    half, n_stack = phantom.slice_half_thickness_mm, phantom.image.GetSize()[2]
    context = csl.create_scene()
    stack = csl.load_volume(context.scene, paths["image"])
    long_axis = csl.load_volume(context.scene, paths["long_axis_image"])
    model = csl.load_model(context.scene, paths["mesh"])
    options = csl.ReconstructionOptions(preset="fast", max_epochs=5, half_thickness=half, seed=7, num_threads=1,
                                        slice_indices=f"0,2,{n_stack}")
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    result = logic.train_and_apply([stack, long_axis], model, options)

    core = prepare_training_data(PreprocessingRequest(
        mesh_path=paths["mesh"], image_path=[paths["image"], paths["long_axis_image"]], slice_indices=[0, 2, n_stack],
        slice_thickness_padding=half))
    assert len(result.prepared.slice_labels) == 3 and result.prepared.slice_labels[-1].startswith(long_axis.GetName())
    assert set(core.group_slice[core.group_ids]) == {0, 1, 2}
    for key in ("group_ids", "node_ids", "group_slice", "group_pixel"):
        np.testing.assert_array_equal(getattr(result.prepared, key), getattr(core, key), err_msg=key)
    np.testing.assert_allclose(result.prepared.intensities, core.intensities, atol=1e-6)
    np.testing.assert_allclose(result.prepared.coordinates, core.coordinates, atol=1e-6)

    labels = csl.load_volume(context.scene, paths["image"], labelmap=True, name="scar labels")
    with pytest.raises(CardioScarError, match="^Give inputs of one kind: scar labels hold labels, the others intensities"):
        logic.train_and_apply([stack, labels], model, options)
    with pytest.raises(CardioScarError, match=f"slice index {n_stack + 1} is out of range for axis z of the 2 images"):
        logic.train_and_apply([stack, long_axis], model, csl.ReconstructionOptions(
            preset="fast", max_epochs=5, half_thickness=half, slice_indices=str(n_stack + 1)))
    with pytest.raises(CardioScarError, match="Choose the LGE volume"):
        logic.train_and_apply([], model, options)


def test_real_dicom_series_loaded_by_slicer_map_like_the_command_line():
    """The real biv-me short- and long-axis DICOM files, each loaded by Slicer's own volume storage
    node as a node of its own (RAS), pooled by the Logic: the same rows as the command line's
    reading of the same files (LPS, through SimpleITK), on the real fitted LV surface."""
    from cardioscar.logic import PreprocessingRequest, prepare_training_data
    from conftest import BIVME, bivme_dicom

    series = ("Se1", "Se3", "Se6", "Se8")  # two short-axis, a 4-chamber and a 2-chamber plane
    mesh = BIVME / "fitted_model_frame000" / "patient1_LV_ENDOCARDIAL_000.vtk"
    context = csl.create_scene()
    nodes = [csl.load_volume(context.scene, bivme_dicom(name), name=name) for name in series]
    model = csl.load_model(context.scene, mesh)
    options = csl.ReconstructionOptions(preset="fast", max_epochs=5, half_thickness=3.0, normalize_intensities=True,
                                        num_threads=1)
    result = csl.CardioScarLogic(context.scene, context.color_logic).train_and_apply(nodes, model, options)
    core = prepare_training_data(PreprocessingRequest(mesh_path=mesh, image_path=[BIVME / "dicom_ED" / s for s in series],
                                                      slice_thickness_padding=3.0, normalize_intensities=True))
    assert result.prepared.slice_labels == [f"{name} k=0" for name in series]
    assert set(core.group_slice) == set(range(len(series)))  # the surface crosses every plane
    for key in ("group_ids", "node_ids", "group_slice", "group_pixel"):
        np.testing.assert_array_equal(getattr(result.prepared, key), getattr(core, key), err_msg=key)
    np.testing.assert_allclose(result.prepared.intensities, core.intensities, atol=1e-6)


class DicomDatabaseStandIn:
    """Stand-in for the Slicer application's DICOM database (``slicer.dicomDatabase``, a
    ctkDICOMDatabase; slicer-core has none): it maps SOP instance UIDs to files, the two calls
    the Logic makes, filled from the real files' own UIDs."""

    isOpen = True

    def __init__(self, files) -> None:
        self.files = {sitk.ReadImage(str(path)).GetMetaData("0008|0018").strip(): str(path) for path in files}

    def fileForInstance(self, uid: str) -> str:
        return self.files.get(uid, "")


def test_auto_slab_reads_the_thickness_the_dicom_files_of_each_node_record(tmp_path):
    """Slab half-width "auto" in Slicer: half the slice thickness (0018,0050) recorded by the files
    each volume was read from (its storage node, here Slicer's own reading of the real biv-me
    files, 6 mm), pooled across nodes as on the command line: the same rows as
    ``prepare --slice-thickness-padding auto``."""
    from cardioscar.logic import PreprocessingRequest, prepare_training_data
    from conftest import BIVME, bivme_dicom

    series = ("Se1", "Se3", "Se6")
    mesh = BIVME / "fitted_model_frame000" / "patient1_LV_ENDOCARDIAL_000.vtk"
    context = csl.create_scene()
    nodes = [csl.load_volume(context.scene, bivme_dicom(name), name=name) for name in series]
    model = csl.load_model(context.scene, mesh)
    options = csl.ReconstructionOptions(preset="fast", max_epochs=2, half_thickness="auto", num_threads=1,
                                        normalize_intensities=True)
    result = csl.CardioScarLogic(context.scene, context.color_logic).train_and_apply(nodes, model, options)
    core = prepare_training_data(PreprocessingRequest(mesh_path=mesh, image_path=[BIVME / "dicom_ED" / s for s in series],
                                                      slice_thickness_padding="auto", normalize_intensities=True))
    for key in ("group_ids", "node_ids", "group_slice", "group_pixel"):
        np.testing.assert_array_equal(getattr(result.prepared, key), getattr(core, key), err_msg=key)
    assert [csl.half_width(node, "auto") for node in nodes] == [3.0, 3.0, 3.0]
    assert ("Slab half-width (from DICOM)", "3", "mm") in result.summary  # the geometry, next to the result


def test_auto_slab_of_a_volume_from_the_dicom_module_and_of_a_segmentation(tmp_path):
    """A volume loaded through Slicer's DICOM module names its files only through the instance UIDs
    it carries (attribute DICOM.instanceUIDs) and the DICOM database; a segmentation takes the
    width of the volume it was drawn on. Without a recorded thickness the message says what to do."""
    from conftest import bivme_dicom, bivme_dicom_with_thickness

    # the real file re-recorded as 8 mm, a file of its own
    eight = bivme_dicom_with_thickness("Se1", "8", tmp_path / "eight", instance_uid="1.2.826.0.1.3680043.2.1125.94.1")
    context = csl.create_scene()
    nifti = tmp_path / "Se1.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(eight)), str(nifti))  # the pixels, without DICOM tags
    volume = csl.load_volume(context.scene, nifti, name="Se1")
    with pytest.raises(CardioScarError, match=r"^'Se1': Se1.nii.gz records no slice thickness .*give the slab "
                                              r"half-width in mm instead of 'auto'$"):
        csl.half_width(volume, "auto")
    uid = sitk.ReadImage(str(eight)).GetMetaData("0008|0018").strip()
    volume.SetAttribute("DICOM.instanceUIDs", uid)  # as Slicer's DICOM plugin leaves it
    assert csl.half_width(volume, "auto", DicomDatabaseStandIn([eight])) == 4.0
    assert csl.half_width(volume, 2.5, DicomDatabaseStandIn([eight])) == 2.5

    segmentation = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Scar")
    with pytest.raises(CardioScarError, match="^The segmentation 'Scar' names no volume it was drawn on"):
        csl.half_width(segmentation, "auto")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    assert csl.half_width(segmentation, "auto", DicomDatabaseStandIn([eight])) == 4.0

    six = bivme_dicom("Se1")  # the same plane as recorded: 6 mm
    volume.SetAttribute("DICOM.instanceUIDs", f"{uid} {sitk.ReadImage(str(six)).GetMetaData('0008|0018').strip()}")
    with pytest.raises(CardioScarError, match=r"^'Se1': its DICOM files record different slice thicknesses \(6 mm in "
                                              r".+\.dcm, 8 mm in Se1\.dcm\): load them as separate volumes"):
        csl.half_width(volume, "auto", DicomDatabaseStandIn([eight, six]))
    unsaved = context.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Computed")
    with pytest.raises(CardioScarError, match="^'Computed' was not read from files Slicer can still find"):
        csl.half_width(unsaved, "auto")


@pytest.mark.parametrize("given, expected", [("auto", "auto"), (" AUTO ", "auto"), ("4.5", 4.5), (3, 3.0)])
def test_slab_half_width_options_take_millimetres_or_auto(given, expected):
    assert csl.ReconstructionOptions(half_thickness=given).half_thickness == expected


@pytest.mark.parametrize("given, axis, message", [
    ("thin", "z", "slab half-width must be > 0 mm or 'auto'"),
    (0.0, "z", "slab half-width must be > 0 mm or 'auto'"),
    ("auto", "x", "'auto' is the slice thickness the DICOM files record, along z; give it in mm to cut along x"),
])
def test_bad_slab_half_widths_are_one_line_errors(given, axis, message):
    with pytest.raises(CardioScarError, match=message):
        csl.ReconstructionOptions(half_thickness=given, slice_axis=axis)


def test_extra_inputs_are_kept_on_the_parameter_node_through_a_saved_scene():
    """The panel keeps its "Also use" choice as node references of its parameter node (the
    parameter-node wrapper has no connector for a checkable node box): replaced, not appended,
    on each change, and restored from a scene written to MRML XML and read back."""
    context = csl.create_scene()
    scene = context.scene
    parameters = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "CardioScar")
    volumes = [scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name) for name in ("SA", "4CH", "2CH")]
    logic = csl.CardioScarLogic
    logic.set_extra_inputs(parameters, volumes[:2])
    logic.set_extra_inputs(parameters, [volumes[2], volumes[0]])
    assert [node.GetName() for node in logic.extra_inputs(parameters)] == ["2CH", "SA"]

    scene.SetSaveToXMLString(1)
    scene.Commit()
    reloaded = slicer.vtkMRMLScene()
    reloaded.SetLoadFromXMLString(1)
    reloaded.SetSceneXMLString(scene.GetSceneXMLString())
    reloaded.Import()
    restored = reloaded.GetFirstNodeByName("CardioScar")
    assert [node.GetName() for node in logic.extra_inputs(restored)] == ["2CH", "SA"]
    reloaded.RemoveNode(reloaded.GetFirstNodeByName("2CH"))
    assert [node.GetName() for node in logic.extra_inputs(restored)] == ["SA"]  # a deleted node drops out


def test_a_run_without_threshold_removes_the_binary_field_of_an_earlier_run(case, scene):
    context, volume, model = scene
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    first = logic.train_and_apply(volume, model, _options(case))
    assert first.binary is not None and _point_array(model, results.BINARY) is not None
    again = logic.apply_model(first.checkpoint, model, _options(case, threshold=None, seed=8))
    assert again.binary is None
    assert _point_array(model, results.BINARY) is None  # not a field that no longer matches the probability
    np.testing.assert_array_equal(_point_array(model, results.PROBABILITY), again.probability)


def test_a_result_without_an_error_risk_removes_the_error_risk_of_an_earlier_run(case, scene):
    """An inference without ``error_risk`` (a worker's file without it) raised KeyError while
    publishing; now the earlier run's ``scar_error_risk`` is removed, as its ``scar_binary`` is."""
    import dataclasses

    from CardioScarLogic.geometry import model_points_lps

    context, volume, model = scene
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    first = logic.train_and_apply(volume, model, _options(case))
    assert _point_array(model, results.ERROR_RISK) is not None
    points = model_points_lps(model)
    inference = dataclasses.replace(logic._predict(first.checkpoint, points, _options(case), "cpu", None),
                                    error_risk=None)
    logic._publish(model, points, inference, first.checkpoint, _options(case), "cpu", 0.0, False)
    assert _point_array(model, results.ERROR_RISK) is None
    np.testing.assert_array_equal(_point_array(model, results.PROBABILITY), inference.mean_predictions)


def test_summary_measures_the_mesh_as_shown_under_its_parent_transform(case, scene):
    """The same mesh stored in centimetres under a x10 transform sits where the millimetre one
    does: same groups, same result, and the same scar volume (not a thousandth of it)."""
    context, volume, model = scene
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    volume_of = lambda rows: float(rows[0][1])  # noqa: E731  ("Scar volume (probability-weighted)", ml)
    in_mm = logic.train_and_apply(volume, model, _options(case))
    assert in_mm.summary[0][0] == "Scar volume (probability-weighted)" and volume_of(in_mm.summary) > 1.0

    points = vtk.util.numpy_support.vtk_to_numpy(model.GetMesh().GetPoints().GetData())
    points /= 10.0
    model.GetMesh().GetPoints().Modified()
    scale = context.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = vtk.vtkMatrix4x4()
    for axis in range(3):
        matrix.SetElement(axis, axis, 10.0)
    scale.SetMatrixTransformToParent(matrix)
    model.SetAndObserveTransformNodeID(scale.GetID())
    in_cm = logic.train_and_apply(volume, model, _options(case))
    assert volume_of(in_cm.summary) == pytest.approx(volume_of(in_mm.summary), rel=0.02)


def test_a_segmentation_pooled_with_a_label_map_keeps_its_scar(case, tmp_path):
    """The label map's scar labels (3 here) are for label maps; a segmentation's scar segment is
    exported as 1 and must stay scar, alone or beside a label map."""
    from CardioScarLogic.logic import _target_slices

    image = sitk.ReadImage(str(case["paths"]["image"]))
    label_path = tmp_path / "scar3.nii.gz"
    sitk.WriteImage(sitk.Cast(image > 0.3, sitk.sitkUInt8) * 3, str(label_path))
    context = csl.create_scene()
    labelmap = csl.load_volume(context.scene, label_path, labelmap=True)
    segmentation = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(labelmap)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)

    options = _options(case, scar_labels="3", slice_indices="")
    pooled, _ = _target_slices([labelmap, segmentation], options)
    n = case["n_slices"]
    assert len(pooled) == 2 * n
    assert sum(np.nansum(layer.values) for layer in pooled[:n]) > 20
    for from_labels, from_segment in zip(pooled[:n], pooled[n:]):
        np.testing.assert_array_equal(from_segment.values, from_labels.values)
    alone, _ = _target_slices(segmentation, options)
    for from_labels, from_segment in zip(pooled[:n], alone):
        np.testing.assert_array_equal(from_segment.values, from_labels.values)


def test_reading_a_segmentation_drawn_as_surfaces_leaves_its_representations(case, tmp_path):
    image = sitk.ReadImage(str(case["paths"]["image"]))
    label_path = tmp_path / "scar.nii.gz"
    sitk.WriteImage(sitk.Cast(image > 0.3, sitk.sitkUInt8), str(label_path))
    context = csl.create_scene()
    labelmap = csl.load_volume(context.scene, label_path, labelmap=True)
    segmentation = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(labelmap)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    surfaces = segmentation.GetSegmentation()
    binary = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    closed = slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()
    assert surfaces.CreateRepresentation(closed)
    surfaces.SetSourceRepresentationName(closed)
    surfaces.RemoveRepresentation(binary)
    assert not surfaces.ContainsRepresentation(binary)

    source = scar_source_from_node(segmentation)
    assert source.volume_kji.sum() > 20
    assert surfaces.ContainsRepresentation(closed) and not surfaces.ContainsRepresentation(binary)


def test_the_panels_default_heart_model_is_not_a_slice_views_model(case):
    """Slicer's slice views add hidden model nodes ("Red Volume Slice") before any data."""
    context = csl.create_scene()
    slice_logics = []
    for name in ("Red", "Yellow", "Green"):
        slice_logic = slicer.vtkMRMLSliceLogic()
        slice_logic.SetMRMLApplicationLogic(context.application_logic)
        slice_logic.SetMRMLScene(context.scene)
        slice_logic.AddSliceNode(name)
        slice_logics.append(slice_logic)
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    assert context.scene.GetNumberOfNodesByClass("vtkMRMLModelNode") >= 3
    assert logic.default_heart_model() is None
    heart = csl.load_model(context.scene, case["paths"]["mesh"])
    assert logic.default_heart_model() is heart


def test_a_model_removed_during_the_run_gets_nothing_and_a_clear_error(case, scene):
    context, volume, model = scene
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    removed = []

    def remove_the_model(progress) -> None:  # what a user can do while the panel pumps events
        if not removed:
            removed.append(model.GetID())
            context.scene.RemoveNode(model)

    with pytest.raises(CardioScarError, match="was removed from the scene during the run: nothing was written"):
        logic.train_and_apply(volume, model, _options(case), progress_callback=remove_the_model)
    assert removed and model.GetMesh().GetPointData().GetArray(results.PROBABILITY) is None


def test_slicer_counting_a_left_handed_files_slices_the_other_way_is_warned(tmp_path, caplog):
    """Slicer's reader flips an axis of a left-handed image (its slice k is the file's K-1-k),
    while the command line counts as the file does: the geometry is right either way, but the same
    indices pick other slices, so the Logic says so."""
    from CardioScarLogic.logic import _target_slices

    values = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6) / 120.0
    paths = {}
    for name, direction in (("right", np.eye(3)), ("left", np.diag([1.0, -1.0, 1.0]))):
        image = sitk.GetImageFromArray(values)
        image.SetSpacing((1.5, 1.5, 8.0))
        image.SetDirection(direction.ravel().tolist())
        paths[name] = tmp_path / f"{name}.nii.gz"
        sitk.WriteImage(image, str(paths[name]))
    context = csl.create_scene()
    options = csl.ReconstructionOptions(slice_indices="0", half_thickness=4.0)
    for name, reversed_order in (("right", False), ("left", True)):
        node = csl.load_volume(context.scene, paths[name])
        caplog.clear()
        with caplog.at_level("WARNING"):
            first = _target_slices(node, options)[0][0]
        # Slicer's slice 0 of the left-handed file is the file's last slice
        np.testing.assert_array_equal(first.values, values[3 if reversed_order else 0])
        warned = [r.getMessage() for r in caplog.records if "from the other end" in r.getMessage()]
        assert bool(warned) == reversed_order, warned
    assert "file slice k is slice 3-k here" in warned[0] and "'left'" in warned[0]
    paths["left"].write_bytes(b"overwritten since Slicer read it")  # no header to compare with: no warning, no crash
    caplog.clear()
    with caplog.at_level("WARNING"):
        _target_slices(node, options)
    assert not [r for r in caplog.records if "from the other end" in r.getMessage()]


def _dicom_stack_as_one_volume(scene, series, folder):
    """The real biv-me short-axis files ``series`` written as one series and read the way Slicer
    reads a series it does not regularize: one regular volume (ITK only warns)."""
    from conftest import bivme_dicom, write_dicom_series

    folder.mkdir()
    write_dicom_series([sitk.ReadImage(str(bivme_dicom(name))) for name in series], series, folder, "1.2.826.0.1.99")
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", folder.name)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(sorted(folder.iterdir())[0]))
    storage.SetSingleFile(False)
    node.SetAndObserveStorageNodeID(storage.GetID())
    assert storage.ReadData(node) and node.GetImageData().GetDimensions()[2] == len(series)
    return node


def test_a_regular_volume_of_an_unevenly_spaced_dicom_series_is_refused(tmp_path):
    """Read as one regular volume without Slicer's acquisition transform, a short-axis stack
    missing a slice puts the slices after the gap up to half a gap (8.9 mm) from where they were
    acquired; the node's own files say so. The complete stack, and the uneven one under a
    non-linear transform (which places each slice), pass."""
    from CardioScarLogic.acquisition import check_slices_where_acquired
    from conftest import BIVME

    context = csl.create_scene()
    complete = _dicom_stack_as_one_volume(context.scene, ("Se11", "Se1", "Se2", "Se3", "Se4", "Se5"),
                                          tmp_path / "complete")
    uneven = _dicom_stack_as_one_volume(context.scene, ("Se11", "Se1", "Se3", "Se4", "Se5"), tmp_path / "uneven")
    check_slices_where_acquired(complete)
    model = csl.load_model(context.scene, BIVME / "fitted_model_frame000" / "patient1_LV_ENDOCARDIAL_000.vtk")
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    with pytest.raises(CardioScarError, match=r"'uneven' is one regular volume, but its DICOM files cannot be one "
                                              r"\(it is not evenly spaced: slice k=2 would sit 8.8\d mm"):
        logic.train_and_apply(uneven, model, csl.ReconstructionOptions(half_thickness=3.0, normalize_intensities=True))
    assert model.GetMesh().GetPointData().GetArray(results.PROBABILITY) is None
    grid = context.scene.AddNewNodeByClass("vtkMRMLGridTransformNode")
    uneven.SetAndObserveTransformNodeID(grid.GetID())
    check_slices_where_acquired(uneven)
