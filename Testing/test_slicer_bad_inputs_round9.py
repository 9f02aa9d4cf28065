"""Round 9's label-map findings met through the Slicer Logic (real MRML, slicer-core), as
``cardioscar prepare`` meets them in ``Testing/test_bad_inputs_round9.py``:

* *Scar labels* mistyped (5 on a map holding 3,4) with a myocardium mask volume: only the
  scar-free warning, the infarct trained as healthy;
* a small heart's cavity given as the scar (its widest disc under 13 mm).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from test_bad_inputs_round8 import P001  # noqa: E402
from test_bad_inputs_round9 import small_heart  # noqa: E402,F401 (the module fixture)
from test_slicer_bad_inputs_round7 import _scene_with  # noqa: E402


@pytest.mark.parametrize("labelmap", [True, False])
def test_logic_refuses_mistyped_scar_labels_with_a_myocardium_mask(shared_data, tmp_path, labelmap):
    labels = shared_data / P001 / "Contours" / "Case_P001.nii.gz"
    logic, volume, model = _scene_with(labels, "2,3,4", tmp_path)
    if not labelmap:  # the map loaded as a scalar volume (Add data without LabelMap ticked)
        volume = csl.load_volume(logic.scene, labels, name="as_scalar")
    mask = csl.load_volume(logic.scene, labels, labelmap=True, name="myocardium")
    with pytest.raises(CardioScarError, match="yet the myocardium mask holds this map's labels 2, 3, 4"):
        logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="5", myocardium_labels="2,3,4"),
                               myocardium_mask=mask)


def test_logic_refuses_a_small_hearts_cavity_as_the_scar(small_heart, tmp_path):  # noqa: F811
    _, path, _ = small_heart
    logic, volume, model = _scene_with(path, "2,3,4", tmp_path)
    with pytest.raises(CardioScarError, match=r"the cavity \(blood pool\) of a small heart"):
        logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="1"))
