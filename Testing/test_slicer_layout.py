"""The results layout on real MRML (slicer-core): the layout logic builds the views from our
description exactly as the application's layout manager asks it to."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import slicer  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic import layout  # noqa: E402


def _views(layout_logic) -> dict:
    nodes = layout_logic.GetViewNodes()
    return {nodes.GetItemAsObject(i).GetClassName(): nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())}


def test_results_keep_the_3d_view_and_show_the_table_and_the_plot():
    context = csl.create_scene()
    layout_logic = slicer.vtkMRMLLayoutLogic()
    layout_logic.SetMRMLScene(context.scene)
    layout_node = layout.layout_node_of(context.scene)
    layout_node.SetViewArrangement(slicer.vtkMRMLLayoutNode.SlicerLayoutConventionalView)
    table = context.scene.AddNewNodeByClass("vtkMRMLTableNode")
    chart = context.scene.AddNewNodeByClass("vtkMRMLPlotChartNode")

    for _ in range(2):  # a second result re-uses the registered layout
        layout.show_results(layout_node, context.application_logic, table, chart)
    assert layout_node.GetViewArrangement() == layout.RESULTS_LAYOUT_ID
    views = _views(layout_logic)
    assert set(views) == {"vtkMRMLViewNode", "vtkMRMLTableViewNode", "vtkMRMLPlotViewNode"}
    assert views["vtkMRMLTableViewNode"].GetTableNodeID() == table.GetID()
    assert views["vtkMRMLPlotViewNode"].GetPlotChartNodeID() == chart.GetID()
