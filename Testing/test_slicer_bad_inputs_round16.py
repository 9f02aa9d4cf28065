"""Round 16 of the bad-input review in the Slicer Logic, on a real MRML scene (slicer-core): an image
file read through Slicer's storage node. README's *Bad input* table has the row."""

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
