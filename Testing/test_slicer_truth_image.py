"""The Slicer Logic's ``score_on_slices`` against the real MRML library (slicer-core), without Qt:
the same scores and the same truth on the mesh as ``cardioscar evaluate --truth-image`` on the
files the nodes were loaded from (the model held in RAS by Slicer, the label map as a label map node).
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path

import numpy as np
import pytest
import vtk.util.numpy_support

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402  (slicer-core)
from CardioScarLogic import results  # noqa: E402
from CardioScarLogic.wording import SCORING_NAMES  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.evaluate import heldout  # noqa: E402
from cardioscar.io.meshio import read_mesh, write_mesh  # noqa: E402
from cardioscar.logic import evaluate_on_slices  # noqa: E402


def test_the_logic_scores_and_writes_the_truth_as_the_command_line(segmented, tmp_path):
    mesh = read_mesh(segmented["mesh"])
    prediction = tmp_path / "prediction.vtk"
    probability = np.clip(mesh.point_array("scar_fraction_truth") * 1.5, 0.0, 1.0)  # a biased, ranked field
    write_mesh(mesh, prediction, {"scar_probability": probability})
    out = tmp_path / "truth_on_mesh.vtk"
    expected = evaluate_on_slices(prediction, segmented["label_map"], scar_labels=[3], myocardium_labels=[2, 3],
                                  slice_indices=[1, 2, 3], slice_thickness_padding=4.0, write_truth=out)

    context = csl.create_scene()
    labels = csl.load_volume(context.scene, segmented["label_map"], labelmap=True)
    model = csl.load_model(context.scene, prediction)
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    options = csl.ReconstructionOptions(scar_labels="3", myocardium_labels="2,3", slice_indices="1,2,3",
                                        half_thickness=4.0)
    # the phantom's own scar_truth (its whole ground truth) is not written over on the node
    with pytest.raises(CardioScarError, match="holds a scar_truth that no scoring wrote .* without writing the truth "
                                              r"\(write_truth\)"):
        logic.score_on_slices(labels, model, options)
    assert model.GetMesh().GetPointData().GetArray(heldout.SCORED_FIELD) is None
    assert logic.score_on_slices(labels, model, options, write_truth=False)["n_nodes"] == expected["n_nodes"]
    results.write_point_arrays(model, {heldout.TRUTH_FIELD: None})  # as a copy of the model without it
    scores = logic.score_on_slices(labels, model, options)
    again = logic.score_on_slices(labels, model, options)  # an earlier scoring's truth is replaced
    assert again["dice"] == scores["dice"]
    assert scores["n_nodes"] == expected["n_nodes"] > 500 and scores["not_scored"] == expected["not_scored"]
    counts = [[{k: v for k, v in line.items() if k != "slice"} for line in found["slices"]]
              for found in (scores, expected)]  # the slices named by node here, by file there
    assert counts[0] == counts[1] and [line["slice"] for line in scores["slices"]][0] == "phantom_labels k=1"
    assert scores["dice"] == pytest.approx(expected["dice"]) and scores["auc"] == pytest.approx(expected["auc"])
    written = read_mesh(out)
    for field in (heldout.SCORED_FIELD, heldout.SLICE_FIELD, heldout.TRUTH_FIELD):
        on_model = vtk.util.numpy_support.vtk_to_numpy(model.GetMesh().GetPointData().GetArray(field))
        np.testing.assert_array_equal(on_model, written.point_array(field))

    # as the command line refuses it, in the Logic's own names (each a real parameter of score_on_slices)
    with pytest.raises(CardioScarError, match="truth_node with options.scar_labels needs options.myocardium_labels"):
        logic.score_on_slices(labels, model, csl.ReconstructionOptions(scar_labels="3", half_thickness=4.0))
    results.write_point_arrays(model, {results.PROBABILITY: None})
    with pytest.raises(CardioScarError, match="no point field 'scar_probability'"):
        logic.score_on_slices(labels, model, options)
    parameters = inspect.signature(csl.CardioScarLogic.score_on_slices).parameters
    fields = {each.name for each in dataclasses.fields(csl.ReconstructionOptions)}
    for name in SCORING_NAMES.values():
        assert name.split(".")[0] in parameters and (not name.startswith("options.") or name[8:] in fields), name
