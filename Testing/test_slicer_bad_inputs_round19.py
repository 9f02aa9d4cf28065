"""Round 19 of the bad-input review in the Slicer Logic, on a real MRML scene (slicer-core): a model
node in centimetres or metres given to *Tag*. `Documentation/bad-input.md`'s table has the rows
(`Testing/test_bad_inputs_round19.py` for the command line)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.tissue import export_model_node, tag_model_node  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from test_bad_inputs_round19 import CENTIMETRES, phantom, scaled_copy  # noqa: E402,F401 (the phantom in mm and cm)


def test_tag_of_a_model_in_centimetres_warns_and_in_metres_is_refused(phantom, tmp_path, warnings_of_cardioscar):
    """*Tag* (the console's ``tag_model_node``, the panel's *Tag* and the batch script, which read
    their inputs through ``read_tagging_inputs``) reports each class's volume in ml: on a model in
    metres it tagged and reported 0.00 ml (the command line's `export` refuses such a mesh before it
    tags), on one in centimetres a thousandth of the volume, without a word. Now metres are refused
    with nothing written on the model, centimetres warned once (the *Export* after it not again)."""
    context = csl.create_scene()
    metres = csl.load_model(context.scene, scaled_copy(phantom["mm"], tmp_path / "m.vtk", 0.001), name="in metres")
    with pytest.raises(CardioScarError, match=r"is 0\.1448 mm across .* to millimetres before tagging"):
        tag_model_node(metres)
    assert metres.GetMesh().GetPointData().GetArray("tissue_tag") is None
    centimetres = csl.load_model(context.scene, phantom["cm"], name="in centimetres")
    export_model_node(centimetres, tag_model_node(centimetres), tmp_path / "heart")
    assert [m for m in warnings_of_cardioscar if CENTIMETRES in m] == [
        "The model 'in centimetres' is 14.5 mm across (its bounding-box diagonal); a human heart in millimetres is "
        f"about 100-200: {CENTIMETRES} tagging (its classes' volumes are ml); a small animal's heart or a piece of "
        "wall this size is read as it is"]
    assert (tmp_path / "heart.pts").is_file()
    warnings_of_cardioscar.clear()
    tag_model_node(csl.load_model(context.scene, phantom["mm"], name="in millimetres"))
    assert not [m for m in warnings_of_cardioscar if CENTIMETRES in m]


def test_aha_of_a_biventricular_model_is_refused_naming_the_lv_mask(tmp_path):
    """The Logic's *AHA* (the console's ``aha_segments``; the panel's worker runs the same analysis)
    segmented a model of both ventricles as one LV, exit 0 (`Testing/test_bad_inputs_round19.py`);
    now refused by the library's test in the Logic's words, and run with the LV marked."""
    import numpy as np

    from cardioscar.aha import AhaOptions
    from cardioscar.io.meshio import write_mesh
    from test_simulation_fibres import _ventricles_mesh
    from test_slicer_aha import _markups

    biv = _ventricles_mesh(with_rv=True, rv_cavity_mm=8.0, rv_wall_mm=3.0, rv_centre_x=52.0, slices=24)
    points = biv.points_lps()
    lv = (np.hypot(points[:, 0] - 30.0, points[:, 1] - 40.0) <= 20.5).astype(float)
    write_mesh(biv, tmp_path / "biv.vtk", {"scar_probability": np.zeros(len(points)), "lv": lv})
    context = csl.create_scene()
    node = csl.load_model(context.scene, tmp_path / "biv.vtk", name="both ventricles")
    rv = _markups(context.scene, [np.array([48.0, 32.0, 24.0]), np.array([48.0, 48.0, 24.0])])
    with pytest.raises(CardioScarError, match=r"looks biventricular: 15 of 15 cross-sections .* mark its LV nodes with "
                                              r"inputs\.measure\.lv_mask_field FIELD"):
        csl.CardioScarLogic.aha_segments(node, csl.AhaInputs(rv_markups=rv))
    assert node.GetMesh().GetPointData().GetArray("aha_segment") is None
    inputs = csl.AhaInputs(rv_markups=rv, measure=AhaOptions(lv_mask_field="lv"))
    assert len(csl.CardioScarLogic.aha_segments(node, inputs).rows) == 17


def test_a_scar_segmentation_without_a_source_geometry_is_refused(tmp_path):
    """A segmentation whose segments were imported without a source (reference image) geometry (a
    script's ``ImportLabelmapToSegmentationNode`` alone, a model surface imported as a segment) is
    exported by Slicer on the segments' own extent: as the scar map it gave the segmented phantom's
    scar box alone (991 rows from 6 slices for 2,028 from 9, the mean target doubled), exit 0, with
    a warning that blamed the mesh's frame. Now refused, nothing changed; with the LGE's geometry set
    (after the import too) the same segmentation reads the LGE's slices."""
    import numpy as np
    import SimpleITK as sitk
    import slicer

    from cardioscar.phantoms.phantom import make_phantom, write_phantom
    from cardioscar.phantoms.phantom_segmented import SegmentedConfig

    paths = write_phantom(make_phantom(SegmentedConfig(seed=2, target_nodes=2000)), tmp_path)
    labels = sitk.ReadImage(str(paths["label_map"]))
    scar = sitk.GetImageFromArray((sitk.GetArrayFromImage(labels) == 3).astype(np.uint8))
    scar.CopyInformation(labels)
    sitk.WriteImage(scar, str(tmp_path / "scar.nii.gz"))
    context = csl.create_scene()
    model = csl.load_model(context.scene, paths["mesh"])
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    label_node = csl.load_volume(context.scene, tmp_path / "scar.nii.gz", labelmap=True, name="Scar")
    segmentation = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "drawn elsewhere")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(label_node, segmentation)
    options = csl.ReconstructionOptions(preset="fast", max_epochs=2)
    n_nodes = context.scene.GetNumberOfNodes()
    with pytest.raises(CardioScarError, match=r"The segmentation 'drawn elsewhere' has no source geometry, so its "
                                              r"segments are read on their own extent \(6 slices of \d+ x \d+ pixels\)"):
        logic.prepare_training(segmentation, model, options)
    assert context.scene.GetNumberOfNodes() == n_nodes
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(label_node)
    assert len(logic.prepare_training(segmentation, model, options).prepared.intensities) == 2028
