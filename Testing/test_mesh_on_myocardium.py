"""The mesh's cut through the chosen slices against the myocardium the mask or labels give
(``cardioscar.prepare.mapping.mesh_on_the_myocardium``, run by ``map_slices_to_nodes`` on every
face): another patient's mesh whose heart lies over this one's scar passed the scar check and
trained the scar onto the wrong wall, exit 0. Real EMIDEC maps and their ``mesh-from-labels``
meshes; a drawn ring for the measure itself (its refusal: ``test_bad_inputs_round6.py``). The figures over all 52 infarct cases:
``Testing/benchmarks/mesh_pair_check.py``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.cli import main
from cardioscar.io.meshio import write_mesh
from cardioscar.prepare.mapping import map_slices_to_nodes, mesh_on_the_myocardium
from cardioscar.prepare.mesh_from_labels import myocardium_mesh_from_labels
from cardioscar.prepare.myocardium import label_masks, restrict_to_myocardium
from cardioscar.prepare.slices import SliceLayer, slices_from_image
from cardioscar.prepare.targets import slice_targets


def _ring_layer(inner_mm: float = 20.0, outer_mm: float = 30.0) -> SliceLayer:
    """A 1 mm slice of 80 x 80 pixels whose myocardium is a ring about the centre (NaN outside it)."""
    j, i = np.mgrid[0:80, 0:80]
    radius = np.hypot(i - 40, j - 40)
    values = np.where((radius >= inner_mm) & (radius <= outer_mm), 0.0, np.nan)
    return SliceLayer(values=values, origin=np.zeros(3), axis_i=np.array([1.0, 0, 0]), axis_j=np.array([0, 1.0, 0]),
                      spacing=(1.0, 1.0), half_thickness=5.0, label="ring")


def _cut(layer: SliceLayer, centre: tuple[float, float]) -> np.ndarray:
    """The flat keys of the ring's pixels drawn about ``centre`` (i, j): a mesh's cut there."""
    j, i = np.mgrid[0:80, 0:80]
    radius = np.hypot(i - centre[0], j - centre[1])
    return np.flatnonzero((radius >= 20) & (radius <= 30))


def test_the_cut_of_this_ring_lies_on_it_and_a_ring_beside_it_does_not():
    layer = _ring_layer()
    assert mesh_on_the_myocardium([layer], [_cut(layer, (40, 40))], reach_mm=1.0) == (1.0, 1)
    beside, read = mesh_on_the_myocardium([layer], [_cut(layer, (60, 40))], reach_mm=1.0)
    assert read == 1 and 0.2 < beside < 0.6  # a ring 20 mm over crosses this one's wall twice
    whole = dataclasses.replace(layer, values=np.nan_to_num(layer.values, nan=0.0))
    assert mesh_on_the_myocardium([whole], [_cut(layer, (60, 40))], reach_mm=1.0) == (None, 0)  # no myocardium given


def _emidec_map(shared_data: Path, case: str) -> Path:
    return shared_data / "emidec" / f"Case_{case}" / "Contours" / f"Case_{case}.nii.gz"


@pytest.fixture(scope="module")
def emidec_pair(shared_data, tmp_path_factory):
    """P092's map with ``--scar-labels 3,4 --myocardium-labels 2,3,4`` (as targets) and with
    ``--scar-labels 3,4`` alone, and the 1.5 mm ``mesh-from-labels`` meshes of P092 and of P094,
    whose heart lies over 91 % of P092's scar (P094's also at 3 mm as a file, for the faces: 62 % of its cut on
    the heart P092's map draws)."""
    own = sitk.ReadImage(str(_emidec_map(shared_data, "P092")))
    raw = slices_from_image(own)
    layers, _ = restrict_to_myocardium(slice_targets(raw, [3, 4]), label_masks(raw, [2, 3, 4]), "labels 2,3,4")
    other = sitk.ReadImage(str(_emidec_map(shared_data, "P094")))
    other_file = tmp_path_factory.mktemp("other_patient") / "P094.vtu"
    write_mesh(myocardium_mesh_from_labels(other, spacing_mm=3.0), other_file)  # 9,309 nodes: cheap for the faces
    return {"layers": layers, "scar only": slice_targets(raw, [3, 4]), "map": _emidec_map(shared_data, "P092"),
            "own": myocardium_mesh_from_labels(own).points_lps(),
            "other": myocardium_mesh_from_labels(other).points_lps(), "other file": other_file}


def test_another_patients_mesh_over_this_scar_is_named(emidec_pair, warnings_of_cardioscar):
    map_slices_to_nodes(emidec_pair["other"], emidec_pair["layers"])
    named = [text for text in warnings_of_cardioscar if "lies on the myocardium the mask or labels give" in text]
    assert len(named) == 1 and named[0].startswith("Only 47 % of the mesh's cut"), warnings_of_cardioscar
    assert not [text for text in warnings_of_cardioscar if "lie on the mesh" in text]  # the scar check passed it
    assert not [text for text in warnings_of_cardioscar if DRAWN in text]  # a myocardium given: its check alone


def test_the_maps_own_mesh_is_not_named(emidec_pair, warnings_of_cardioscar):
    map_slices_to_nodes(emidec_pair["own"], emidec_pair["layers"])
    assert not [text for text in warnings_of_cardioscar if "myocardium" in text or "lie on the mesh" in text]


#: The drawn-heart check's warning (``mapping._check_mesh_on_the_drawn_heart``).
DRAWN = "lies on the heart the label map draws"


def test_the_labels_besides_the_scar_are_kept_as_the_drawn_heart():
    """``slice_targets`` keeps the pixels of every non-zero label when the slice shows one besides
    the scar (a map of the scar alone draws no heart), and the myocardium restriction keeps them."""
    values = np.zeros((30, 30))
    values[5:25, 5:25], values[10:20, 10:20], values[12:14, 5:8] = 2, 1, 3
    layer = SliceLayer(values=values, origin=np.zeros(3), axis_i=np.array([1.0, 0, 0]), axis_j=np.array([0, 1.0, 0]),
                       spacing=(1.0, 1.0), half_thickness=5.0)
    [target] = slice_targets([layer], [3])
    np.testing.assert_array_equal(target.drawn, values != 0)
    assert target.values.sum() == 6
    [restricted], _ = restrict_to_myocardium([target], label_masks([layer], [2, 3]), "labels 2,3")
    np.testing.assert_array_equal(restricted.drawn, values != 0)
    [scar_alone] = slice_targets([dataclasses.replace(layer, values=np.where(values == 3, 3.0, 0.0))], [3])
    assert scar_alone.drawn is None


def test_with_the_scar_labels_alone_another_patients_mesh_is_named(emidec_pair, warnings_of_cardioscar):
    """No myocardium given: P094's mesh cut P092's slices half off the heart P092's map draws (its
    blood pool and wall, labels 1-4), and passed every check; P092's own mesh is silent."""
    map_slices_to_nodes(emidec_pair["other"], emidec_pair["scar only"])
    named = [text for text in warnings_of_cardioscar if DRAWN in text]
    assert len(named) == 1 and named[0].startswith("Only 53 % of the mesh's cut"), warnings_of_cardioscar
    warnings_of_cardioscar.clear()
    map_slices_to_nodes(emidec_pair["own"], emidec_pair["scar only"])
    assert not [text for text in warnings_of_cardioscar if DRAWN in text or "lie on the mesh" in text]


def test_the_command_line_and_the_slicer_logic_name_it(emidec_pair, warnings_of_cardioscar, tmp_path, capsys):
    """The faces: ``cardioscar prepare --scar-labels 3,4`` and the Slicer Logic's preparation (the
    batch script's ``train_and_apply`` starts with it) keep the drawn heart through their own
    readers to the mapping: both warn, exit 0."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CardioScar"))
    import CardioScarLogic as csl

    assert main(["prepare", "--mesh", str(emidec_pair["other file"]), "--image", str(emidec_pair["map"]),
                 "--scar-labels", "3,4", "--output", str(tmp_path / "other.npz")]) == 0
    assert len([line for line in capsys.readouterr().err.splitlines() if DRAWN in line]) == 1  # its own handler
    context = csl.create_scene()
    volume = csl.load_volume(context.scene, emidec_pair["map"])
    model = csl.load_model(context.scene, emidec_pair["other file"])
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="3,4"))
    assert len([text for text in warnings_of_cardioscar if DRAWN in text]) == 1, warnings_of_cardioscar



def _with_rv_wall(labels: sitk.Image, wall_mm: float) -> sitk.Image:
    """ACDC's labels (1 RV cavity, 2 myocardium, 3 LV cavity) with an RV free wall drawn ``wall_mm``
    thick around the RV cavity as myocardium (2): the labels of a biventricular mesh."""
    from scipy import ndimage

    values = sitk.GetArrayFromImage(labels)
    spacing = labels.GetSpacing()
    wall = np.zeros(values.shape, bool)
    for k, plane in enumerate(values):
        if (plane == 1).any():
            distance = ndimage.distance_transform_edt(plane != 1, sampling=(spacing[1], spacing[0]))
            wall[k] = (distance > 0) & (distance <= wall_mm) & (plane == 0)
    drawn = sitk.GetImageFromArray(np.where(wall | (values == 2), 2, 0).astype(np.uint8))
    drawn.CopyInformation(labels)
    return drawn


def test_a_biventricular_mesh_on_the_lv_myocardium_is_warned_as_such_not_refused(shared_data,
                                                                                warnings_of_cardioscar):
    """A biventricular mesh with the LV myocardium's labels alone cuts the slices along its RV wall
    too, off that myocardium (0.54 at 1.5 mm): a warning that names this case, never a refusal."""
    labels = sitk.ReadImage(str(shared_data / "acdc_patient101" / "patient101_frame01_gt.nii.gz"))
    values = sitk.GetArrayFromImage(labels)
    columns = np.arange(values.shape[2])[None, None, :]
    scarred = sitk.GetImageFromArray(np.where((values == 2) & (columns < 110), 4, values).astype(np.uint8))
    scarred.CopyInformation(labels)  # the myocardium's half on one side as scar (4), the rest healthy (2)
    raw = slices_from_image(scarred)
    layers, _ = restrict_to_myocardium(slice_targets(raw, [4]), label_masks(raw, [2, 4]), "labels 2,4")
    mesh = myocardium_mesh_from_labels(_with_rv_wall(labels, 7.0), labels=[2])
    map_slices_to_nodes(mesh.points_lps(), layers, scar_targets=False)
    named = [text for text in warnings_of_cardioscar if "lies on the myocardium the mask or labels give" in text]
    assert len(named) == 1 and "A biventricular mesh" in named[0], warnings_of_cardioscar


@pytest.fixture(scope="module")
def segmented_seed0(tmp_path_factory):
    """The segmented phantom family's seed 0 (4,000 nodes) on disk: its surface mesh and label map."""
    from cardioscar.phantoms.phantom import make_phantom, write_phantom
    from cardioscar.phantoms.phantom_segmented import SegmentedConfig

    phantom = make_phantom(SegmentedConfig(seed=0, target_nodes=4000))
    out = tmp_path_factory.mktemp("segmented_seed0")
    return {**write_phantom(phantom, out), "half": str(phantom.slice_half_thickness_mm), "out": out}


def test_a_surface_mesh_of_this_heart_with_its_myocardium_is_not_named(segmented_seed0, tmp_path, capsys):
    """The scar check measured from the pixels with a target: with the myocardium given (NaN
    outside), about half of a surface mesh's nodes, on the wall's edges, fall on the pixels just
    outside, too few caught pixels were left to close over the wall, and seed 0's own surface mesh
    was warned as another patient's (44 % of its 228 scar pixels near it), while its volume mesh
    passed. Measured from the mesh's cut now, the surface reads as its volume mesh does, moved too:
    15 mm off warned (34 % near), 20 mm off refused (18 %)."""
    from test_bad_inputs_round11 import _moved

    case = segmented_seed0
    args = ["--image", case["label_map"], "--scar-labels", "3", "--myocardium-labels", "2,3",
            "--slice-thickness-padding", case["half"], "--output", tmp_path / "out.npz"]
    capsys.readouterr()
    assert main([str(a) for a in ["prepare", "--mesh", case["surface"], *args]]) == 0
    err = capsys.readouterr().err
    assert "scar pixels of the chosen slices lie on the mesh" not in err and "is the mesh" not in err
    moved = _moved(case["surface"], tmp_path / "moved.vtk", 15.0)
    assert main([str(a) for a in ["prepare", "--mesh", moved, *args[:-1], tmp_path / "moved.npz"]]) == 0
    assert "Only 34 % of the 228 scar pixels of the chosen slices lie on the mesh" in capsys.readouterr().err
    moved = _moved(case["surface"], tmp_path / "far.vtk", 20.0)
    assert main([str(a) for a in ["prepare", "--mesh", moved, *args[:-1], tmp_path / "far.npz"]]) != 0
    assert "The mesh is not where the image's scar is: only 18 % of the 228" in capsys.readouterr().err
    assert not (tmp_path / "far.npz").exists()
