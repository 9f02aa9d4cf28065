"""Round 10 of silent wrong answers: the two leftovers of round 9 and what a new hunt found.

* ``export`` of one scar field (no ``--core-mesh``/``--core-field``) whose model learned 0/1
  targets (``--scar-labels``, a scar rule's scar target): the one-field rule tags its blurred edge
  (0.5 <= p < 0.8) as border zone, which a simulator gives border-zone conductivity, silently;
* a 0/1 scar map (1 scar) with mistyped ``--scar-labels`` and a ``--myocardium-mask``: the map's
  one label in the mask read as a scar-free heart's myocardium, its scar trained as healthy.

Real parts: the segmented phantom (conftest's session fixture), the real command line, real
checkpoints and VTK files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cardioscar.cli import main
from cardioscar.fit.checkpoint import build_checkpoint
from cardioscar.fit.engines import BayesianNN
from cardioscar.io.meshio import (BINARY_TARGETS, GRADED_TARGETS, TRAINING_TARGETS_ARRAY, read_mesh, set_text_field,
                                  text_field, write_mesh)
from cardioscar.logic import PreprocessingResult, _dataset_info, save_trained_model, training_targets_kind
from conftest import assert_refused_in_one_line
from test_bad_inputs_round7 import _warnings

EDGE = "is the learned scar's blurred edge, not border-zone tissue"


def _prediction(mesh_path: Path, out: Path, targets: str | None) -> Path:
    """``mesh_path`` with a scar field rising along x from 0 to 1 and ``apply``'s note of the
    targets its model learned (``None``: no note, as an older ``apply`` wrote)."""
    mesh = read_mesh(mesh_path)
    x = mesh.points_lps()[:, 0]
    set_text_field(mesh.dataset, TRAINING_TARGETS_ARRAY, targets)
    path = out / f"pred_{'none' if targets is None else targets.replace('/', '_')}.vtk"
    write_mesh(mesh, path, {"scar_probability": (x - x.min()) / (x.max() - x.min())})
    return path


def _model(mesh_path: Path, path: Path, targets: str | None) -> Path:
    """A real checkpoint file (an untrained network: what it predicts does not matter here) whose
    scaler spans the mesh and whose ``dataset_info.targets`` is ``targets`` (None: not recorded)."""
    points = read_mesh(mesh_path).points_lps()
    info = {"scaler_min": points.min(axis=0).tolist(), "scaler_max": points.max(axis=0).tolist(),
            **({} if targets is None else {"targets": targets})}
    save_trained_model(build_checkpoint(BayesianNN(3, 8, 2, 0.1), {}, {}, info), path)
    return path


def test_training_records_which_targets_the_model_learned():
    """0/1 targets (labels, a rule's) or graded ones, in the checkpoint's ``dataset_info``."""
    assert training_targets_kind(np.array([[0.0], [1.0], [1.0]], np.float32)) == BINARY_TARGETS
    assert training_targets_kind(np.array([0.0, 0.5, 1.0])) == GRADED_TARGETS
    rows = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], np.float32)
    result = PreprocessingResult(coordinates=rows, intensities=np.array([[0.0], [1.0]], np.float32),
                                 group_ids=np.arange(2), group_sizes=np.ones(2, np.int64), scaler_min=np.zeros(3),
                                 scaler_max=np.ones(3) * 100, n_nodes=2, n_groups=2)
    assert _dataset_info(result, rows * 100.0)["targets"] == BINARY_TARGETS


def test_apply_notes_the_models_targets_on_the_predicted_mesh(segmented, tmp_path):
    """``apply`` notes the checkpoint's targets on its output, replacing an earlier run's note on
    the input mesh; a checkpoint that does not say (older) leaves no note."""
    stale = _prediction(segmented["mesh"], tmp_path, BINARY_TARGETS)  # an earlier run's note on the input
    for targets in (GRADED_TARGETS, None):
        model = _model(segmented["mesh"], tmp_path / f"{targets}.pth", targets)
        assert main(["apply", "--model", str(model), "--mesh", str(stale), "--output", str(tmp_path / "out.vtk"),
                     "--mc-samples", "2"]) == 0
        assert text_field(read_mesh(tmp_path / "out.vtk").dataset, TRAINING_TARGETS_ARRAY) == targets


def test_one_field_export_of_a_model_trained_on_0_1_targets_warns_and_says_so(segmented, tmp_path, capsys):
    """The one-field rule's border zone of a 0/1-trained scar is its edge: a warning naming the core
    model to give, and the sidecar says what the border-zone tag is. A graded model's, or two
    fields, are tissue: no warning."""
    model = _model(segmented["mesh"], tmp_path / "labels.pth", BINARY_TARGETS)
    prediction = tmp_path / "labels_pred.vtk"
    assert main(["apply", "--model", str(model), "--mesh", str(segmented["mesh"]), "--output", str(prediction),
                 "--mc-samples", "2"]) == 0
    # an untrained network's field: thresholds that make most of it the band (none there: no warning)
    assert main(["export", "--mesh", str(prediction), "--border-zone", "0.01", "--core", "0.99", "--output",
                 str(tmp_path / "edge")]) == 0
    [warning] = _warnings(capsys.readouterr().err, EDGE)
    assert "--core-mesh" in warning and "prepare --scar-target core" in warning
    assert "blurred edge" in json.loads((tmp_path / "edge.json").read_text())["tag_rule"]["border_zone_is"]
    graded = _prediction(segmented["mesh"], tmp_path, GRADED_TARGETS)
    assert main(["export", "--mesh", str(graded), "--output", str(tmp_path / "graded")]) == 0
    binary = _prediction(segmented["mesh"], tmp_path, BINARY_TARGETS)  # the same ramp: a core inside the scar
    assert main(["export", "--mesh", str(binary), "--core-mesh", str(graded), "--output", str(tmp_path / "two")]) == 0
    assert not _warnings(capsys.readouterr().err, EDGE)
    assert "graded targets" in json.loads((tmp_path / "graded.json").read_text())["tag_rule"]["border_zone_is"]
    assert "core model's core" in json.loads((tmp_path / "two.json").read_text())["tag_rule"]["border_zone_is"]


@pytest.fixture()
def scar_map_0_1(segmented, tmp_path) -> Path:
    """The segmented phantom's scar (label 3) as a 0/1 map: 1 scar, 0 everywhere else."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(segmented["label_map"]))
    scar = sitk.GetImageFromArray((sitk.GetArrayFromImage(image) == 3).astype(np.uint8))
    scar.CopyInformation(image)
    path = tmp_path / "scar01.nii.gz"
    sitk.WriteImage(scar, str(path))
    return path


def test_a_0_1_scar_map_with_mistyped_scar_labels_and_a_mask_is_refused(segmented, scar_map_0_1, tmp_path, capsys):
    """``--scar-labels 2`` on a 0/1 scar map with ``--myocardium-mask``: one label (1) lies in the
    mask, so round 9's check (two or more) read a scar-free heart, warned so, and trained the scar
    as healthy, exit 0. Now refused: a scar-free map's myocardium label fills the mask (EMIDEC's
    normal controls: 100 %), this one 7 % of it."""
    assert_refused_in_one_line(["prepare", "--mesh", segmented["mesh"], "--image", scar_map_0_1, "--scar-labels", "2",
                                "--myocardium-mask", segmented["myocardium_mask"], "--output", tmp_path / "out.npz"],
                               "the myocardium mask holds label 1 on only 7 % of its pixels", capsys, tmp_path)


def test_a_scar_free_map_with_a_mask_keeps_the_warning(segmented, tmp_path, warnings_of_cardioscar):
    """The map whose one label in the mask fills it (a normal control's myocardium) is scar-free."""
    from cardioscar.prepare.myocardium import read_mask_image, masks_from_image
    from cardioscar.prepare.slices import slices_from_path
    from cardioscar.prepare.targets import warn_scar_free
    from conftest import scar_free_label_map

    layers = slices_from_path(scar_free_label_map(segmented["label_map"], tmp_path))
    masks = masks_from_image(read_mask_image(segmented["myocardium_mask"]), layers, None)
    assert warn_scar_free(layers, [3], None, masks)
    assert [w for w in warnings_of_cardioscar if "a scar-free heart" in w]


def _unmerged(mesh, shift_mm: float | None = None):
    """``mesh``'s elements with their corners written apart (every node once per element), or,
    with ``shift_mm``, the block and a copy shifted along x by it, appended without merging."""
    import vtk

    from cardioscar.io.meshio import Mesh

    if shift_mm is None:
        apart = vtk.vtkShrinkFilter()
        apart.SetShrinkFactor(1.0)  # the corners stay where they were, each element its own
        apart.SetInputData(mesh.dataset)
        apart.Update()
        return Mesh(dataset=apart.GetOutput(), space=mesh.space)
    moved = vtk.vtkTransformFilter()
    moved.SetTransform(vtk.vtkTransform())
    moved.GetTransform().Translate(shift_mm, 0.0, 0.0)
    moved.SetInputData(mesh.dataset)
    appended = vtk.vtkAppendFilter()  # MergePoints off: the seam's nodes twice
    appended.AddInputData(mesh.dataset)
    appended.AddInputConnection(moved.GetOutputPort())
    appended.Update()
    return Mesh(dataset=appended.GetOutput(), space=mesh.space)


def _scaled_block():
    """The 64-node tetrahedral block scaled to 30 mm (a heart's size, so the unit check passes)."""
    import vtk

    from cardioscar.io.meshio import Mesh
    from test_simulation_export import _tet_mesh

    scale = vtk.vtkTransformFilter()
    scale.SetTransform(vtk.vtkTransform())
    scale.GetTransform().Scale(10.0, 10.0, 10.0)
    scale.SetInputData(_tet_mesh().dataset)
    scale.Update()
    return Mesh(dataset=scale.GetOutput(), space="LPS")


@pytest.mark.parametrize("fmt", ["opencarp", "vtu"])
def test_export_of_elements_that_share_no_node_is_refused(tmp_path, capsys, fmt):
    """A mesh written without merging its points (a converter's, a shrink filter's) tagged and
    exported with exit 0, and openCARP simulated every element alone: no propagation at all."""
    mesh = _unmerged(_scaled_block())
    points = mesh.points_lps()
    path = tmp_path / "apart.vtk"
    write_mesh(mesh, path, {"scar_probability": (points[:, 0] - points[:, 0].min()) / np.ptp(points[:, 0])})
    assert_refused_in_one_line(["export", "--mesh", path, "--format", fmt, "--output", tmp_path / "out"],
                               "476 of its 540 nodes lie on another node", capsys, tmp_path)


def test_export_of_parts_appended_without_merging_warns(tmp_path, capsys):
    """Two blocks touching along a face, appended without merging: the seam is a line of block in
    the simulation; a split can be meant, so a warning with the count. A merged mesh: none."""
    from cardioscar.simulation.opencarp import check_elements_joined

    block = _scaled_block()
    check_elements_joined(block)  # the 64-node block itself: every node once
    seam = _unmerged(block, shift_mm=30.0)
    points = seam.points_lps()
    path = tmp_path / "seam.vtk"
    write_mesh(seam, path, {"scar_probability": (points[:, 0] - points[:, 0].min()) / np.ptp(points[:, 0])})
    capsys.readouterr()
    assert main(["export", "--mesh", str(path), "--output", str(tmp_path / "seam")]) == 0
    assert _warnings(capsys.readouterr().err, "16 of its 128 nodes lie on another node (16 places)")


def test_aha_of_cells_that_share_no_node_is_refused(segmented, tmp_path, capsys):
    """``aha`` on the segmented phantom's mesh written without merging its points: every cell face
    a boundary, so the wall's faces and thickness came out of single cells (transmurality 15 % ->
    0.9 % in segment 9 of a prediction), exit 0. Now refused."""
    apart = _unmerged(read_mesh(segmented["mesh"]))
    x = apart.points_lps()[:, 0]
    path = tmp_path / "apart.vtk"
    write_mesh(apart, path, {"scar_probability": (x - x.min()) / np.ptp(x)})
    assert_refused_in_one_line(["aha", "--mesh", path, "--output-dir", tmp_path / "out", "--rv-point", "30,0,20"],
                               "so its cells share no node", capsys, tmp_path)


def test_a_scar_free_map_with_a_mask_larger_than_its_wall_keeps_the_warning(segmented, tmp_path,
                                                                             warnings_of_cardioscar):
    """A scar-free map with its cavity label (labels 1, 2) and a myocardium mask reaching 6 pixels
    beyond its epicardium (a generous contour): its wall fills 44 % of the mask. That is no 0/1
    scar map, whose one label is its only one; refusing it advised --scar-labels 2, which trains
    the whole wall as scar (EMIDEC's normal controls, myocardium dilated 4 pixels: 12 of 23)."""
    from scipy import ndimage

    from cardioscar.prepare.myocardium import read_mask_image, masks_from_image
    from cardioscar.prepare.slices import slices_from_path
    from cardioscar.prepare.targets import warn_scar_free
    from conftest import scar_free_label_map

    layers = slices_from_path(scar_free_label_map(segmented["label_map"], tmp_path))
    masks = masks_from_image(read_mask_image(segmented["myocardium_mask"]), layers, None)
    wider = [ndimage.binary_dilation(mask | (layer.values == 1), iterations=6) & (layer.values != 1)
             for layer, mask in zip(layers, masks)]
    wall = sum(int(((layer.values == 2) & mask).sum()) for layer, mask in zip(layers, wider))
    assert wall < 0.5 * sum(int(mask.sum()) for mask in wider)
    assert warn_scar_free(layers, [3], None, wider)
    assert [w for w in warnings_of_cardioscar if "a scar-free heart" in w]


def test_export_of_another_field_than_the_models_does_not_call_it_the_models_edge(segmented, tmp_path, capsys):
    """apply's note says what its scar_probability learned; ``--scar-field`` naming another field
    of that mesh (a truth, a map sampled onto it) is not that model's field: no edge warning, and
    the sidecar does not call its border zone a 0/1 model's edge."""
    mesh = read_mesh(segmented["mesh"])
    x = mesh.points_lps()[:, 0]
    ramp = (x - x.min()) / np.ptp(x)
    set_text_field(mesh.dataset, TRAINING_TARGETS_ARRAY, BINARY_TARGETS)
    path = tmp_path / "pred.vtk"
    write_mesh(mesh, path, {"scar_probability": ramp, "sampled_map": ramp ** 2})
    capsys.readouterr()
    assert main(["export", "--mesh", str(path), "--scar-field", "sampled_map", "--output", str(tmp_path / "map")]) == 0
    assert not _warnings(capsys.readouterr().err, EDGE)
    assert "blurred edge" not in json.loads((tmp_path / "map.json").read_text())["tag_rule"]["border_zone_is"]


def test_one_field_export_of_a_scar_free_0_1_model_does_not_warn(segmented, tmp_path, capsys):
    """A scar-free heart's labels (EMIDEC's normal controls) train a 0/1 model whose field stays
    near 0: nothing is tagged border zone, so no warning about its edge (it said 0.0 % and asked for
    a core model of a heart without scar)."""
    mesh = read_mesh(segmented["mesh"])
    set_text_field(mesh.dataset, TRAINING_TARGETS_ARRAY, BINARY_TARGETS)
    path = tmp_path / "free.vtk"
    write_mesh(mesh, path, {"scar_probability": np.full(mesh.n_points, 0.02)})
    capsys.readouterr()
    assert main(["export", "--mesh", str(path), "--output", str(tmp_path / "free")]) == 0
    assert not _warnings(capsys.readouterr().err, EDGE)


def test_a_cohort_record_keeps_each_warning_once():
    """A cohort row exporting openCARP and .vtu tags its prediction once per format: the 0/1 border
    zone's warning (and the coincident nodes') came twice into the patient's record."""
    import logging

    from cardioscar.cohort.tasks import _KeptWarnings

    with _KeptWarnings() as kept:
        for _ in range(2):
            logging.getLogger("cardioscar.simulation.tags").warning("pred.vtk: its scar model was trained on 0/1")
        logging.getLogger("cardioscar.simulation.opencarp").warning("pred.vtk: 16 of its 128 nodes")
    assert kept.messages == ["pred.vtk: its scar model was trained on 0/1", "pred.vtk: 16 of its 128 nodes"]


def test_a_one_label_map_in_a_larger_mask_is_refused_naming_both_readings():
    """A map holding one label only, filling a third of the mask: a 0/1 scar map (give that label
    as the scar) or, less likely, a scar-free heart's myocardium-only map with a mask far beyond its
    wall; the message names the fix of each, not only the one that trains the wall as scar."""
    from cardioscar.errors import CardioScarError
    from cardioscar.prepare.slices import SliceLayer
    from cardioscar.prepare.targets import refuse_part_of_the_mask

    values = np.zeros((8, 8))
    values[2:4, 2:6] = 1.0
    layer = SliceLayer(values=values, origin=np.zeros(3), axis_i=np.array([1.0, 0, 0]), axis_j=np.array([0, 1.0, 0]),
                       spacing=(1.5, 1.5), half_thickness=5.0, label="k=0")
    mask = np.zeros((8, 8), bool)
    mask[2:6, 1:7] = True
    with pytest.raises(CardioScarError, match="33 % of its pixels.*give --scar-labels 1 .*--myocardium-labels 1 "
                                              "instead of the mask"):
        refuse_part_of_the_mask([layer], [mask], [2], 1)
