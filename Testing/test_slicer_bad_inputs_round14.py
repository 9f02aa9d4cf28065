"""Round 14's AHA finding met through the Slicer Logic (real MRML, slicer-core), as ``cardioscar
aha`` meets it in ``Testing/test_bad_inputs_round14.py``: an *Apex and base* point list placed off
the heart gave an axis beside the LV and segments numbered about it, without a word.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from vtk.util.numpy_support import vtk_to_numpy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.aha import AHA_TABLE_REFERENCE  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.io.meshio import Mesh, write_mesh  # noqa: E402
from test_aha import _options, analytic_segments  # noqa: E402
from test_bad_inputs_round14 import _apex_and_base, lad  # noqa: E402,F401 (the module fixture)
from test_slicer_aha import _markups  # noqa: E402


def test_apex_and_base_markups_beside_the_lv_are_refused_and_the_model_kept(lad, tmp_path):
    path = tmp_path / "heart.vtk"
    write_mesh(Mesh(dataset=lad.mesh, space="LPS"), path, {"scar_probability": lad.truth})
    context = csl.create_scene()
    model = csl.load_model(context.scene, path)
    options = _options(lad)
    rv = _markups(context.scene, [options.rv_point, options.rv_inferior_point])
    apex, base = _apex_and_base(lad)
    beside = _markups(context.scene, [apex + [60.0, 0.0, 0.0], base + [60.0, 0.0, 0.0]], "apex and base")
    with pytest.raises(CardioScarError, match=r"^the long axis from point 1 of inputs\.apex_base_markups to the base "
                                              r"point passes 60 mm from the LV's centre"):
        csl.CardioScarLogic.aha_segments(model, csl.AhaInputs(rv_markups=rv, apex_base_markups=beside))
    assert model.GetMesh().GetPointData().GetArray("aha_segment") is None
    assert model.GetNodeReference(AHA_TABLE_REFERENCE) is None
    placed = _markups(context.scene, [apex, base], "apex and base on the heart")
    csl.CardioScarLogic.aha_segments(model, csl.AhaInputs(rv_markups=rv, apex_base_markups=placed))
    segments = vtk_to_numpy(model.GetMesh().GetPointData().GetArray("aha_segment"))
    assert (segments == analytic_segments(lad, lad.points_lps)).mean() > 0.95
