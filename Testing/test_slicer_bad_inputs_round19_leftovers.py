"""Leftovers of round 19 of the bad-input review in the Slicer Logic and panel wording, on a real
MRML scene (slicer-core). `Documentation/bad-input.md` has the rows
(`Testing/test_bad_inputs_round19_leftovers.py` for the command line and the cohort)."""

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
from CardioScarLogic.wording import in_panel_words, library_words  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from test_slicer_panel import LATEST, case, harness, panel, phantom  # noqa: E402,F401 - the panel fixtures


def test_the_panel_words_the_biventricular_aha_refusal_without_a_command_line_option(tmp_path):
    """The panel's *Compute AHA segments* showed the library's refusal of a biventricular model with
    its command-line advice, "mark its LV nodes with --lv-mask FIELD", an option the panel has no box
    for (the Logic names its own ``inputs.measure.lv_mask_field``, round 19). The panel now says it
    has no LV mask and where the LV can be marked (the console's Logic); the rest of the line is the
    library's."""
    from cardioscar.io.meshio import write_mesh
    from test_simulation_fibres import _ventricles_mesh
    from test_slicer_aha import _markups

    biv = _ventricles_mesh(with_rv=True, rv_cavity_mm=8.0, rv_wall_mm=3.0, rv_centre_x=52.0, slices=24)
    write_mesh(biv, tmp_path / "biv.vtk", {"scar_probability": np.zeros(biv.n_points)})
    context = csl.create_scene()
    node = csl.load_model(context.scene, tmp_path / "biv.vtk", name="both ventricles")
    rv = _markups(context.scene, [np.array([48.0, 32.0, 24.0]), np.array([48.0, 48.0, 24.0])])
    with pytest.raises(CardioScarError) as refused:
        csl.CardioScarLogic.aha_segments(node, csl.AhaInputs(rv_markups=rv))
    shown = in_panel_words(library_words(refused.value))  # the panel's _reportFailure
    assert shown == (
        "The model 'both ventricles' looks biventricular: 15 of 15 cross-sections across one direction enclose two "
        "cavities (an LV's enclose one); the AHA segmentation is the LV's: give an LV-only mesh (the panel has no LV mask), or mark "
        "its LV nodes in a point field and segment it from the Python console (CardioScarLogic.aha_segments with "
        "inputs.measure.lv_mask_field naming that field)"), shown


def test_an_empty_scar_segment_is_warned_in_the_segmentation_s_terms(segmented, tmp_path):
    """A segmentation whose scar segment is empty, with its myocardium segment given (a scar-free
    heart, trained as one), was warned in label-map terms: "Scar labels 1 match no pixel of the
    chosen slices (labels present: 0, 2) ... give the scar labels of this label map (--scar-labels)",
    labels the user never typed and a *Scar labels* box that does not apply to a segmentation. Now
    the warning names the segment and the segmentation; a label map keeps its label-map wording."""
    from CardioScarLogic.wording import library_warnings

    from conftest import scar_free_label_map

    context = csl.create_scene()
    model = csl.load_model(context.scene, segmented["mesh"])
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    labels = sitk.ReadImage(str(segmented["label_map"]))
    myocardium = sitk.GetImageFromArray(np.isin(sitk.GetArrayFromImage(labels), (2, 3)).astype(np.uint8))
    myocardium.CopyInformation(labels)
    sitk.WriteImage(myocardium, str(tmp_path / "myocardium.nii.gz"))
    painted = csl.load_volume(context.scene, tmp_path / "myocardium.nii.gz", labelmap=True, name="painted")
    segmentation = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "no infarct")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(painted)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(painted, segmentation)
    segmentation.GetSegmentation().GetNthSegment(0).SetName("Myocardium")
    segmentation.GetSegmentation().AddEmptySegment("", "Scar")
    options = csl.ReconstructionOptions(preset="fast", max_epochs=2, myocardium_segment="Myocardium")
    with library_warnings() as heard:
        run = logic.prepare_training(segmentation, model, options)
    assert run.prepared.n_groups > 100 and not run.prepared.intensities.any()  # a scar-free heart, as before
    assert [message for message in heard if "scar-free" in message] == [
        "The scar segment 'Scar' of 'no infarct' has no voxel anywhere (the segment is empty): every myocardium pixel "
        "trains as healthy, a scar-free heart; if this patient has scar, paint it in 'Scar' on the chosen slices (or "
        "choose the slices it is painted on)"], heard
    label_map = csl.load_volume(context.scene, scar_free_label_map(segmented["label_map"], tmp_path), labelmap=True)
    with library_warnings() as heard:
        logic.prepare_training(label_map, model, csl.ReconstructionOptions(
            preset="fast", max_epochs=2, scar_labels="3", myocardium_labels="2,3"))
    assert [message for message in heard if "scar-free" in message] == [
        "Scar labels 3 match no pixel of the chosen slices (labels present: 0, 1, 2): every myocardium pixel trains "
        "as healthy, a scar-free heart; if this patient has scar, give the scar labels of this label map "
        "(--scar-labels)"], heard


def _ball_model(scene, folder: Path, radius_mm: float, name: str):
    """A ball shell (no long axis in its shape) with a scar-free result, loaded as a model node."""
    import vtk

    from cardioscar.io.meshio import Mesh, write_mesh

    ball = vtk.vtkSphereSource()
    ball.SetRadius(radius_mm)
    ball.SetThetaResolution(30)
    ball.SetPhiResolution(30)
    ball.Update()
    mesh = Mesh(dataset=ball.GetOutput(), space="LPS")
    write_mesh(mesh, folder / f"{name}.vtk", {"scar_probability": np.zeros(mesh.n_points)})
    return csl.load_model(scene, folder / f"{name}.vtk", name=name)


def test_the_logic_words_the_aha_axis_advice_as_its_inputs_and_names_the_model(tmp_path):
    """The Logic's AHA of a model whose shape gives no long axis advised the command line's
    ``--slice-normal-from ... --apex X,Y,Z --base X,Y,Z``, which its option renaming made
    "inputs.apex_base_markups X,Y,Z inputs.apex_base_markups X,Y,Z"; it now names its two inputs for
    the axis. Its centimetre warning said "the mesh" (Slicer's *Tag* names the model): it names the model."""
    from CardioScarLogic.wording import library_warnings

    from test_slicer_aha import _markups

    context = csl.create_scene()
    node = _ball_model(context.scene, tmp_path, 6.0, "small ball")  # 21 mm across: a heart in centimetres?
    rv = _markups(context.scene, [np.array([6.0, 0.0, 0.0])])
    with library_warnings() as heard, pytest.raises(CardioScarError) as refused:
        csl.CardioScarLogic.aha_segments(node, csl.AhaInputs(rv_markups=rv))
    assert str(refused.value).endswith(
        "a ball-like shape); give inputs.slice_normal_volume (the short-axis volume), or inputs.apex_base_markups (a "
        "markups node: the apex, then the base centre)") and "--" not in str(refused.value), refused.value
    assert [message.split(" is ")[0] for message in heard if "centimetres" in message] == ["The model 'small ball'"], heard


@LATEST
def test_the_panel_words_the_aha_axis_advice_as_its_apex_and_base_list(panel, tmp_path):
    """*Compute AHA segments* on a model whose shape gives no long axis showed the library's advice,
    "give --slice-normal-from the short-axis image, or --apex X,Y,Z --base X,Y,Z": the panel has no
    short-axis volume for the axis and no such options, but its *Apex and base* point list."""
    widget, ui = panel["widget"], panel["ui"]
    node = _ball_model(panel["scene"], tmp_path, 30.0, "ball")
    rv = panel["scene"].AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "RV insertions")
    rv.AddControlPointWorld(-30.0, 0.0, 0.0)  # RAS of LPS (30, 0, 0), on the ball
    ui.ahaModelSelector.setCurrentNode(node)
    ui.ahaRvMarkupsSelector.setCurrentNode(rv)
    harness.click_to_end(widget, ui.computeAhaButton)  # refused in the worker
    assert ui.statusLabel.text.endswith(
        "a ball-like shape); choose 'Apex and base' (a point list: the apex, then the base centre)"), ui.statusLabel.text
    assert "--" not in ui.statusLabel.text
