"""Round 16 of the bad-input review in the Slicer Logic, on a real MRML scene (slicer-core): an image
file read through Slicer's storage node, and the phantom's scar map prepared by the Logic (the
panel's *Reconstruct*). `Documentation/bad-input.md`'s table has the rows."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.errors import CardioScarError
from test_slicer_rule_masks import csl, files  # noqa: F401 (the phantom's raw LGE on disk)


def test_a_direction_matrix_holding_the_spacing_is_refused_on_loading(files):
    """An MHA whose direction columns are twice unit length: Slicer's reader took the factor as the
    spacing (3 mm pixels for 1.5, a stack twice as far apart) and the Logic used the node as read.
    Now ``load_volume`` refuses it as ``prepare`` does; the file with its own header loads."""
    out = files[0]
    image = sitk.ReadImage(str(out / "lge.nii.gz"))
    sitk.WriteImage(image, str(out / "lge_own.mha"))
    image.SetDirection(tuple(2.0 * np.asarray(image.GetDirection())))
    sitk.WriteImage(image, str(out / "lge_scaled_direction.mha"))
    context = csl.create_scene()
    with pytest.raises(CardioScarError, match="lge_scaled_direction.mha: its direction matrix's columns have lengths"):
        csl.load_volume(context.scene, out / "lge_scaled_direction.mha")
    assert csl.load_volume(context.scene, out / "lge_own.mha").GetSpacing() == pytest.approx(image.GetSpacing())


def test_the_logic_warns_about_a_scar_map_without_scar_and_slices_at_one_end(files, warnings_of_cardioscar):
    """The Logic's ``prepare_training`` (the panel's *Reconstruct*) on the phantom's scar map, all zero
    and with slices 7,8 only: both ran without a word, as ``prepare`` did; the map itself with every
    slice warns of neither."""
    out, mesh, half = files
    image = sitk.ReadImage(str(out / "phantom_lge.nii.gz"))
    empty = sitk.GetImageFromArray(np.zeros(image.GetSize()[::-1], dtype=np.float32))
    empty.CopyInformation(image)
    sitk.WriteImage(empty, str(out / "no_scar_map.nii.gz"))
    context = csl.create_scene()
    model = csl.load_model(context.scene, mesh)
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    for name, indices, warned in (("no_scar_map", "", "No pixel of the chosen slices is scar"),
                                  ("phantom_lge", "7,8", "lie at one end of the mesh"), ("phantom_lge", "", None)):
        warnings_of_cardioscar.clear()
        volume = csl.load_volume(context.scene, out / f"{name}.nii.gz")
        logic.prepare_training(volume, model, csl.ReconstructionOptions(half_thickness=half, slice_indices=indices))
        phrases = [warned] if warned else ["No pixel of the chosen slices is scar", "lie at one end of the mesh"]
        named = [w for w in warnings_of_cardioscar if any(phrase in w for phrase in phrases)]
        assert len(named) == bool(warned), named
