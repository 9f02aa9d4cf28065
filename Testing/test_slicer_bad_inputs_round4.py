"""Round 4's label-map finding met through the Slicer Logic (real MRML, slicer-core): a real
EMIDEC label map loaded as a label map volume node, the mesh ``cardioscar mesh-from-labels`` builds
from it as a model node. ``Scar labels`` 3 (with ``Myocardium labels`` 2,3,4 or without) trained the
no-reflow core (label 4) as healthy myocardium without a word on main; now the Logic names label 4 in a
warning, as ``cardioscar prepare`` does (``Testing/test_bad_inputs_round4.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from cardioscar.cli import main  # noqa: E402

CASE = "Case_P001"  # an infarct with no-reflow (label 4) inside it


def test_logic_names_a_no_reflow_label_left_out_of_the_scar_labels(shared_data, tmp_path, warnings_of_cardioscar):
    labels = shared_data / "emidec" / CASE / "Contours" / f"{CASE}.nii.gz"
    mesh = tmp_path / "lv.vtu"
    assert main(["mesh-from-labels", "--labels", str(labels), "--spacing", "3", "--output", str(mesh)]) == 0
    context = csl.create_scene()
    model = csl.load_model(context.scene, mesh)
    volume = csl.load_volume(context.scene, labels, labelmap=True)
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="3", myocardium_labels="2,3,4"))
    warned = [m for m in warnings_of_cardioscar if "inside the scar" in m]
    assert len(warned) == 1 and warned[0].startswith("Label 4 "), warnings_of_cardioscar
    warnings_of_cardioscar.clear()
    logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="3,4", myocardium_labels="2,3,4"))
    assert not [m for m in warnings_of_cardioscar if "inside the scar" in m]
    # without myocardium labels too (the label map's own labels are looked at)
    logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="3"))
    assert [m for m in warnings_of_cardioscar if m.startswith("Label 4 lies inside the scar")]
