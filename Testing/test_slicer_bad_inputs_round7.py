"""Round 7's label-number findings met through the Slicer Logic (real MRML, slicer-core): real
label maps loaded as label map volume nodes, the meshes ``cardioscar mesh-from-labels`` builds from
them as model nodes. *Scar labels* 3,4 on an ACDC map (its LV cavity) and 2 on an EMIDEC map (its
healthy myocardium) trained the wrong tissue as scar without a word on main; now the Logic refuses
the first and names the second, as ``cardioscar prepare`` does (``Testing/test_bad_inputs_round7.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from cardioscar.cli import main  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402


def _scene_with(labels: Path, myocardium: str, out: Path):
    mesh = out / "lv.vtu"
    assert main(["mesh-from-labels", "--labels", str(labels), "--myocardium-labels", myocardium, "--spacing", "3",
                 "--output", str(mesh)]) == 0
    context = csl.create_scene()
    model = csl.load_model(context.scene, mesh)
    volume = csl.load_volume(context.scene, labels, labelmap=True)
    return csl.CardioScarLogic(context.scene, context.color_logic), volume, model


def test_logic_refuses_the_cavity_as_scar_labels(shared_data, tmp_path):
    logic, volume, model = _scene_with(shared_data / "acdc_patient101" / "patient101_frame01_gt.nii.gz", "2", tmp_path)
    with pytest.raises(CardioScarError, match=r"the cavity \(blood pool\), not scar in a wall"):
        logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="3,4"))


def test_logic_names_the_myocardium_as_scar_labels(shared_data, tmp_path, warnings_of_cardioscar):
    logic, volume, model = _scene_with(shared_data / "emidec" / "Case_P010" / "Contours" / "Case_P010.nii.gz",
                                       "2,3,4", tmp_path)
    logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="2", myocardium_labels="2,3,4"))
    warned = [m for m in warnings_of_cardioscar if "look like the myocardium, not scar" in m]
    assert len(warned) == 1, warnings_of_cardioscar
    assert not [m for m in warnings_of_cardioscar if "add it to the scar labels" in m]
    warnings_of_cardioscar.clear()
    logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="3,4", myocardium_labels="2,3,4"))
    assert not [m for m in warnings_of_cardioscar if "look like the myocardium" in m]


def test_logic_refuses_the_scar_labels_as_the_myocardium(shared_data, tmp_path):
    """*Myocardium labels* 3,4 (the scar's) left only scar pixels: every row target 1, a heart of scar."""
    logic, volume, model = _scene_with(shared_data / "emidec" / "Case_P001" / "Contours" / "Case_P001.nii.gz",
                                       "2,3,4", tmp_path)
    # refused since round 8 as labels that leave the wall's ring open (label 2 closes it)
    with pytest.raises(CardioScarError, match="part of the myocardium, not all of it"):
        logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="3,4", myocardium_labels="3,4"))
    logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="3,4", myocardium_labels="2,3,4"))
