"""Core-reconstruction bad inputs met through the Slicer Logic (real MRML, slicer-core; no Qt
needed: the Logic reads segments through the Segmentations module logic and models through
their storage nodes). Each must be a one-line error that leaves the scene and the model node as
they were.

- A segmentation whose myocardium segment is empty: on main the scar segment became the only
  myocardium, every group a scar pixel (131 rows, every target 1), and the Logic trained a field
  of scar everywhere, with only a warning about the slices without scar.
- *Apply* of a saved model to a model node in another frame (the training mesh's file relabelled
  RAS, x and y mirrored): on main a warning and a field extrapolated from nowhere.
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

import CardioScarLogic as csl  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.io.meshio import read_mesh, write_mesh  # noqa: E402
from cardioscar.logic import prepare_training_data, PreprocessingRequest, train_scar_model, TrainingConfig  # noqa: E402
from cardioscar.phantoms.phantom import make_phantom, write_phantom  # noqa: E402
from cardioscar.phantoms.phantom_segmented import SegmentedConfig  # noqa: E402


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    out = tmp_path_factory.mktemp("empty_segment")
    paths = write_phantom(make_phantom(SegmentedConfig(seed=2, target_nodes=2000)), out)
    labels = sitk.ReadImage(str(paths["label_map"]))
    scar = sitk.GetImageFromArray((sitk.GetArrayFromImage(labels) == 3).astype(np.uint8))
    scar.CopyInformation(labels)
    sitk.WriteImage(scar, str(out / "scar.nii.gz"))
    return {**paths, "scar": out / "scar.nii.gz"}


def _segmentation(context, scar_path: Path):
    """A 'Scar' segment painted from the phantom's scar label, and an empty 'Myocardium' segment
    (added, never painted: what a user gets who creates it and forgets to paint it)."""
    segmentation = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    node = csl.load_volume(context.scene, scar_path, labelmap=True, name="Scar")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(node)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(node, segmentation)
    segmentation.GetSegmentation().GetNthSegment(0).SetName("Scar")
    context.scene.RemoveNode(node)
    segmentation.GetSegmentation().AddEmptySegment("", "Myocardium")
    return segmentation


def test_an_empty_myocardium_segment_is_refused_and_changes_nothing(segmented):
    context = csl.create_scene()
    model = csl.load_model(context.scene, segmented["mesh"])
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    segmentation = _segmentation(context, segmented["scar"])
    n_nodes = context.scene.GetNumberOfNodes()
    options = csl.ReconstructionOptions(preset="fast", max_epochs=2, seed=7, num_threads=1, inference_mc_samples=2,
                                        myocardium_segment="Myocardium")
    with pytest.raises(CardioScarError, match=r"The myocardium segment 'Myocardium' of '.*' is empty"):
        logic.train_and_apply(segmentation, model, options)
    assert context.scene.GetNumberOfNodes() == n_nodes
    assert model.GetMesh().GetPointData().GetArray("scar_probability") is None
    # the same segmentation without a myocardium segment named: every chosen pixel constrains, as documented
    run = logic.prepare_training(segmentation, model, csl.ReconstructionOptions(preset="fast", max_epochs=2))
    assert run.prepared.intensities.min() == 0.0 and run.prepared.intensities.max() == 1.0


def test_applying_a_model_to_a_node_in_another_frame_is_refused(segmented, tmp_path):
    config = TrainingConfig.fast()
    config.max_epochs = 2
    checkpoint = train_scar_model(prepare_training_data(PreprocessingRequest(
        mesh_path=segmented["mesh"], image_path=segmented["label_map"], scar_labels=[3], myocardium_labels=[2, 3])),
        config)
    mesh = read_mesh(segmented["mesh"])
    mesh.space = "RAS" if mesh.space == "LPS" else "LPS"  # same numbers, the other frame: mirrored in x and y
    write_mesh(mesh, tmp_path / "mirrored.vtk")
    context = csl.create_scene()
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    options = csl.ReconstructionOptions(inference_mc_samples=2, seed=7, num_threads=1)
    right = csl.load_model(context.scene, segmented["mesh"])
    logic.apply_model(checkpoint, right, options)
    assert right.GetMesh().GetPointData().GetArray("scar_probability") is not None
    mirrored = csl.load_model(context.scene, tmp_path / "mirrored.vtk")
    n_nodes = context.scene.GetNumberOfNodes()
    with pytest.raises(CardioScarError, match=r"of its nodes lie outside the box of the mesh the model was trained on"):
        logic.apply_model(checkpoint, mirrored, options)
    assert context.scene.GetNumberOfNodes() == n_nodes
    assert mirrored.GetMesh().GetPointData().GetArray("scar_probability") is None
