"""The Slicer Logic's *AHA* of a model of both ventricles whose long axis is known (its apex and
base markups, or a clear shape): refused in the panel's words, as a model whose shape gives its
axis unclearly was (`Testing/test_aha_biventricular_axis.py` for the command line and the API;
`Documentation/bad-input.md` has the row). Real MRML scene (slicer-core)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import slicer  # noqa: E402,F401  (slicer-core)

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.wording import in_panel_words, library_words  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.io.meshio import write_mesh  # noqa: E402
from test_simulation_fibres import _ventricles_mesh  # noqa: E402
from test_slicer_aha import _markups  # noqa: E402

#: The panel's line after the count (its own advice for the command line's --lv-mask).
PANEL_LINE = ("cross-sections across one direction enclose two cavities (an LV's enclose one); the AHA segmentation "
              "is the LV's: give an LV-only mesh (the panel has no LV mask), or mark its LV nodes in a point field and "
              "segment it from the Python console (CardioScarLogic.aha_segments with inputs.measure.lv_mask_field "
              "naming that field)")


@pytest.mark.parametrize("rv_cavity_mm, rv_wall_mm, rv_centre_x, slices, apex_and_base", [
    (8.0, 3.0, 52.0, 24, True),  # the rings' axis given by markups
    (6.0, 3.0, 50.0, 30, False),  # a small RV: the shape's rings stay clear (contrast 2.36)
])
def test_the_logic_refuses_a_biventricular_model_whose_axis_is_known(tmp_path, rv_cavity_mm, rv_wall_mm,
                                                                     rv_centre_x, slices, apex_and_base):
    biv = _ventricles_mesh(with_rv=True, rv_cavity_mm=rv_cavity_mm, rv_wall_mm=rv_wall_mm, rv_centre_x=rv_centre_x,
                           slices=slices)
    write_mesh(biv, tmp_path / "biv.vtk", {"scar_probability": np.zeros(biv.n_points)})
    context = csl.create_scene()
    node = csl.load_model(context.scene, tmp_path / "biv.vtk", name="both ventricles")
    inputs = csl.AhaInputs(rv_markups=_markups(context.scene, [np.array([48.0, 32.0, 24.0])]))
    if apex_and_base:
        inputs.apex_base_markups = _markups(context.scene, [np.array([30.0, 40.0, 8.0]), np.array([30.0, 40.0, 40.0])],
                                            "apex and base")
    with pytest.raises(CardioScarError) as refused:
        csl.CardioScarLogic.aha_segments(node, inputs)
    shown = in_panel_words(library_words(refused.value))  # the panel's _reportFailure
    assert shown == f"The model 'both ventricles' looks biventricular: 15 of 15 {PANEL_LINE}", shown
