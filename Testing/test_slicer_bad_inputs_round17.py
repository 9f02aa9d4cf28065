"""Round 17 of the bad-input review in the Slicer Logic, on a real MRML scene (slicer-core): a model
node with a node at NaN given to *Apply a saved model*, and an inverted scar map with a myocardium
mask volume given to *Reconstruct*. `Documentation/bad-input.md`'s table has the rows."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.errors import CardioScarError
from test_bad_inputs_round17 import trained  # noqa: F401 (the 1,500-node phantom and a model trained on it)
from test_slicer_rule_masks import csl


def test_apply_to_a_model_node_with_a_node_at_nan_names_the_node(trained):
    """A model node one of whose points is NaN (a failed transform hardened into it, a broken
    export): the Logic's *Apply* stopped on SciPy's "data must be finite, check for nan or inf
    values", a ValueError no face words; now one line naming the model and the node."""
    context = csl.create_scene()
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    model = csl.load_model(context.scene, trained["paths"]["mesh"], name="heart")
    model.GetMesh().GetPoints().SetPoint(7, float("nan"), 0.0, 0.0)
    with pytest.raises(CardioScarError, match=r"The model 'heart': 1 of its \d+ nodes have NaN or infinite "
                                              r"coordinates \(node 7 first\)"):
        logic.apply_model(trained["out"] / "model.pth", model, csl.ReconstructionOptions(inference_mc_samples=2))
    assert model.GetMesh().GetPointData().GetArray("scar_probability") is None  # nothing written


def test_an_inverted_scar_map_with_a_mask_volume_is_warned(segmented, tmp_path, warnings_of_cardioscar):
    """The Logic's *Reconstruct* with the segmented phantom's scar map inverted inside the
    myocardium (1 - scar) and its myocardium mask as a label map node: prepared without a word, 90 %
    of the rows scar. Now warned (the shared restriction to the myocardium); the map itself is not."""
    scar = sitk.ReadImage(str(segmented["image"]))
    inside = sitk.GetArrayFromImage(sitk.ReadImage(str(segmented["myocardium_mask"]))) > 0
    inverted = sitk.GetImageFromArray(np.where(inside, 1.0 - sitk.GetArrayFromImage(scar), 0.0).astype(np.float32))
    inverted.CopyInformation(scar)
    sitk.WriteImage(inverted, str(tmp_path / "inverted.nii.gz"))
    context = csl.create_scene()
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    model = csl.load_model(context.scene, segmented["mesh"])
    mask = csl.load_volume(context.scene, segmented["myocardium_mask"], labelmap=True, name="myocardium")
    for path, warned in ((tmp_path / "inverted.nii.gz", True), (segmented["image"], False)):
        warnings_of_cardioscar.clear()
        volume = csl.load_volume(context.scene, path)
        logic.prepare_training(volume, model, csl.ReconstructionOptions(), myocardium_mask=mask)
        named = [w for w in warnings_of_cardioscar if "is the scar map inverted" in w and "myocardium's pixels" in w]
        assert len(named) == warned, warnings_of_cardioscar
