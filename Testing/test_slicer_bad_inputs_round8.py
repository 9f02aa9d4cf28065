"""Round 8's label-map findings met through the Slicer Logic (real MRML, slicer-core), as
``cardioscar prepare`` meets them in ``Testing/test_bad_inputs_round8.py``:

* a label map loaded as a scalar volume (Slicer's *Add data* without *LabelMap* ticked) with
  *Scar labels* typed: the Logic skipped every check of the scar labels' tissue, so ACDC's cavity
  given as the scar (EMIDEC's 3,4), which the CLI refuses since round 7, trained the blood pool as
  scar, silently; 8-bit LGE loaded so with *Scar labels* 3,4 failed blaming the mesh;
* *Myocardium labels* 2,3,4 on a map numbered one below EMIDEC's without a cavity label: the
  infarct alone kept as the myocardium.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from test_bad_inputs_round7 import _mesh  # noqa: E402
from test_bad_inputs_round8 import P001, _write_like  # noqa: E402
from test_slicer_bad_inputs_round7 import _scene_with  # noqa: E402


def test_logic_checks_the_scar_labels_of_a_label_map_loaded_as_a_scalar_volume(shared_data, tmp_path):
    labels = shared_data / "acdc_patient101" / "patient101_frame01_gt.nii.gz"
    mesh = _mesh(labels, tmp_path, "2")
    context = csl.create_scene()
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    model = csl.load_model(context.scene, mesh)
    volume = csl.load_volume(context.scene, labels)  # a scalar volume node
    with pytest.raises(CardioScarError, match=r"the cavity \(blood pool\), not scar in a wall"):
        logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="3,4"))


def test_logic_prepares_a_scar_free_map_loaded_as_a_scalar_volume_with_a_myocardium_mask(shared_data, tmp_path):
    """An EMIDEC normal control's map (labels 0-2) loaded as a scalar volume, *Scar labels* 3,4 and
    its myocardium as a mask volume: refused with "give its myocardium too", which was given (a
    label map node, and ``cardioscar prepare``, train a scar-free heart with a warning)."""
    labels = shared_data / "emidec" / "Case_N020" / "Contours" / "Case_N020.nii.gz"
    mesh = _mesh(labels, tmp_path, "2")
    context = csl.create_scene()
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    model = csl.load_model(context.scene, mesh)
    volume = csl.load_volume(context.scene, labels)
    mask = csl.load_volume(context.scene, labels, labelmap=True, name="myocardium")
    prepared = logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="3,4", myocardium_labels="2"),
                                      myocardium_mask=mask)
    assert float(np.nanmax(prepared.prepared.intensities)) == 0.0


def test_logic_refuses_lge_in_8_bits_as_a_label_map(shared_data, tmp_path):
    import SimpleITK as sitk

    lge = sitk.ReadImage(str(shared_data / P001 / "Images" / "Case_P001.nii.gz"))
    eight = np.minimum(np.clip(sitk.GetArrayFromImage(lge) - 2048, 0, None) // 8, 255).astype(np.uint8)
    image = _write_like(eight, lge, tmp_path / "lge8.nii.gz")
    mesh = _mesh(shared_data / P001 / "Contours" / "Case_P001.nii.gz", tmp_path, "2,3,4")
    context = csl.create_scene()
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    model = csl.load_model(context.scene, mesh)
    for labelmap in (False, True):
        volume = csl.load_volume(context.scene, image, labelmap=labelmap)
        with pytest.raises(CardioScarError, match=r"an intensity image \(LGE in 8 bits\?\), not a label map"):
            logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="3,4"))


def test_logic_refuses_myocardium_labels_that_leave_the_wall_open(shared_data, tmp_path):
    import SimpleITK as sitk

    image = sitk.ReadImage(str(shared_data / P001 / "Contours" / "Case_P001.nii.gz"))
    values = sitk.GetArrayFromImage(image)
    below = _write_like(np.where(values >= 2, values - 1, 0).astype(np.uint8), image, tmp_path / "below.nii.gz")
    logic, volume, model = _scene_with(below, "1,2,3", tmp_path)
    with pytest.raises(CardioScarError, match="part of the myocardium, not all of it"):
        logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="3,4", myocardium_labels="2,3,4"))
    logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="2,3", myocardium_labels="1,2,3"))
