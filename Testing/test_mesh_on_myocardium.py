"""The mesh's cut through the chosen slices against the myocardium the mask or labels give
(``cardioscar.prepare.mapping.mesh_on_the_myocardium``, run by ``map_slices_to_nodes`` on every
face): another patient's mesh whose heart lies over this one's scar passed the scar check and
trained the scar onto the wrong wall, exit 0. Real EMIDEC maps and their ``mesh-from-labels``
meshes; a drawn ring for the measure itself (its refusal: ``test_bad_inputs_round6.py``). The figures over all 52 infarct cases:
``Testing/benchmarks/mesh_pair_check.py``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk

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


@pytest.fixture(scope="module")
def emidec_pair(shared_data):
    """P092's map with ``--scar-labels 3,4 --myocardium-labels 2,3,4`` (as targets) and the 1.5 mm
    ``mesh-from-labels`` meshes of P092 and of P094, whose heart lies over 91 % of P092's scar."""
    def read(case: str) -> sitk.Image:
        return sitk.ReadImage(str(shared_data / "emidec" / f"Case_{case}" / "Contours" / f"Case_{case}.nii.gz"))

    own = read("P092")
    raw = slices_from_image(own)
    layers, _ = restrict_to_myocardium(slice_targets(raw, [3, 4]), label_masks(raw, [2, 3, 4]), "labels 2,3,4")
    return {"layers": layers, "scar only": slice_targets(raw, [3, 4]),
            "own": myocardium_mesh_from_labels(own).points_lps(),
            "other": myocardium_mesh_from_labels(read("P094")).points_lps()}


def test_another_patients_mesh_over_this_scar_is_named(emidec_pair, warnings_of_cardioscar):
    map_slices_to_nodes(emidec_pair["other"], emidec_pair["layers"])
    named = [text for text in warnings_of_cardioscar if "lies on the myocardium the mask or labels give" in text]
    assert len(named) == 1 and named[0].startswith("Only 47 % of the mesh's cut"), warnings_of_cardioscar
    assert not [text for text in warnings_of_cardioscar if "lie on the mesh" in text]  # the scar check passed it


def test_the_maps_own_mesh_is_not_named(emidec_pair, warnings_of_cardioscar):
    map_slices_to_nodes(emidec_pair["own"], emidec_pair["layers"])
    assert not [text for text in warnings_of_cardioscar if "myocardium" in text or "lie on the mesh" in text]



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
