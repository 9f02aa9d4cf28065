"""The colour legend a user sees after switching a result between *Colour by* and *Tag tissue*,
drawn by Slicer's own colour-legend displayable manager offscreen (slicer-core, Mesa EGL).

A model has one legend display node, shared by both colourings. Slicer draws it with colour
names as labels when ``UseColorNamesForLabels`` is on (one label per defined colour, printed
with ``LabelFormat``, which must then hold ``%s``), and otherwise ``NumberOfLabels`` values on a
bar of at most ``MaxNumberOfColors`` colours
(Modules/Loadable/Colors/MRMLDM/vtkMRMLColorLegendDisplayableManager.cxx). Slicer's legend widget
sets all three when it switches (Modules/Loadable/Colors/Widgets/qMRMLColorLegendDisplayNodeWidget.cxx).
What this cannot prove: the legend's placement in the application's views.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic import results  # noqa: E402
from CardioScarLogic.render import OffscreenThreeDView  # noqa: E402
from CardioScarLogic.tissue import tag_model_node  # noqa: E402
from cardioscar.io.meshio import Mesh, write_mesh  # noqa: E402
from test_simulation_export import _tet_mesh  # noqa: E402  (a 64-node tetrahedral block)
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402


@pytest.fixture()
def result(tmp_path):
    """A result on a model loaded through Slicer's storage, with a 3D view made before it is coloured."""
    grid = _tet_mesh().dataset
    x = vtk_to_numpy(grid.GetPoints().GetData())[:, 0]
    probability = np.clip((x - 10.0) / 3.0, 0.0, 1.0)
    write_mesh(Mesh(dataset=grid, space="LPS"), tmp_path / "result.vtk",
               {"scar_probability": probability, "scar_uncertainty": 0.1 * probability,
                "scar_error_risk": 0.5 * probability})
    context = csl.create_scene()
    view = OffscreenThreeDView(context.scene, context.application_logic, size=(200, 200))
    model = csl.load_model(context.scene, tmp_path / "result.vtk")
    manager = view.group.GetDisplayableManagerByClassName("vtkMRMLColorLegendDisplayableManager")
    yield context, model, view, manager
    view.close()


def _drawn(view, manager, model, legend):
    """The legend actor as Slicer's displayable manager draws it for the current display."""
    view.capture(model)
    return manager.GetColorLegendActor(legend)


def test_colour_by_after_tag_tissue_draws_values_not_the_table_s_names(result):
    context, model, view, manager = result
    results.show_field(model, results.PROBABILITY, context.color_logic)
    legend = tag_model_node(model, border_zone=0.4, core=0.7, color_logic=context.color_logic) and \
        context.color_logic.GetColorLegendDisplayNode(model)
    actor = _drawn(view, manager, model, legend)
    assert actor.GetUseAnnotationAsLabel() and actor.GetNumberOfLabels() == 3  # healthy, border zone, core
    assert "%s" in legend.GetLabelFormat()  # "%.1f" printed no class name (Slicer warns and drops it)

    for field in results.SHOWN_FIELDS:
        assert results.show_field(model, field, context.color_logic) is legend  # one legend per model
        actor = _drawn(view, manager, model, legend)
        assert not actor.GetUseAnnotationAsLabel(), f"{field}: the table's 256 colour names as labels"
        assert actor.GetNumberOfLabels() == 6 and actor.GetMaximumNumberOfColors() == results.N_COLORS
        assert actor.GetTitle() == results.SHOWN_FIELDS[field]


def test_a_legend_first_made_for_the_tags_shows_the_whole_probability_bar(result):
    """Slicer's default legend of a table of under 20 colours draws that many colours at most
    (vtkSlicerColorLogic::AddDefaultColorLegendDisplayNode); recoloured by probability, the same
    legend would show the 256-colour table as a few bands."""
    context, model, view, manager = result
    tag_model_node(model, border_zone=0.4, core=0.7, color_logic=context.color_logic)  # the legend is made here
    legend = context.color_logic.GetColorLegendDisplayNode(model)
    assert legend.GetMaxNumberOfColors() == 4  # tags 0-3 (drawn with names, where the bar keeps 256 colours)
    results.show_field(model, results.PROBABILITY, context.color_logic)
    actor = _drawn(view, manager, model, legend)
    assert actor.GetMaximumNumberOfColors() == results.N_COLORS and not actor.GetUseAnnotationAsLabel()
