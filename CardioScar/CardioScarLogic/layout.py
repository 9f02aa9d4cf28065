"""Showing a result: a view layout that keeps the 3D view and adds the summary table and loss plot.

Slicer's own plot layouts (what ``ShowChartInLayout`` switches to) replace the 3D view with
slice views, so the user would lose sight of the coloured mesh; none of them has a table view,
and ``PropagateTableSelection`` only fills a table view that exists. CardioScar registers one
layout of its own on the scene's layout node (once) and switches to it: the 3D view on top,
the summary table and the loss plot below, side by side. Works on the MRML layout node alone,
so it behaves the same in the application (whose layout manager follows the node) and here.
"""

from __future__ import annotations

#: Id of the layout (Slicer's built-in layouts stay below 100; extensions pick large numbers).
RESULTS_LAYOUT_ID = 15401
RESULTS_LAYOUT = (
    '<layout type="vertical" split="true">'
    ' <item splitSize="600">'
    '  <view class="vtkMRMLViewNode" singletontag="1">'
    '   <property name="viewlabel" action="default">1</property>'
    '  </view>'
    ' </item>'
    ' <item splitSize="400">'
    '  <layout type="horizontal" split="true">'
    '   <item>'
    '    <view class="vtkMRMLTableViewNode" singletontag="TableView1">'
    '     <property name="viewlabel" action="default">T</property>'
    '    </view>'
    '   </item>'
    '   <item>'
    '    <view class="vtkMRMLPlotViewNode" singletontag="PlotView1">'
    '     <property name="viewlabel" action="default">P</property>'
    '    </view>'
    '   </item>'
    '  </layout>'
    ' </item>'
    '</layout>'
)


def layout_node_of(scene):
    """The scene's layout node (the application has exactly one), or None."""
    return scene.GetFirstNodeByClass("vtkMRMLLayoutNode")


def show_results(layout_node, application_logic, table_node, chart_node=None) -> None:
    """Switch to the 3D + table + plot layout (registered on first use) and show the table and
    the chart in its views. The table first: Slicer fills only table views that exist."""
    if not layout_node.IsLayoutDescription(RESULTS_LAYOUT_ID):
        layout_node.AddLayoutDescription(RESULTS_LAYOUT_ID, RESULTS_LAYOUT)
    layout_node.SetViewArrangement(RESULTS_LAYOUT_ID)
    selection = application_logic.GetSelectionNode()
    selection.SetActiveTableID(table_node.GetID())
    application_logic.PropagateTableSelection()
    if chart_node is not None:
        selection.SetActivePlotChartID(chart_node.GetID())
        application_logic.PropagatePlotChartSelection()


__all__ = ["RESULTS_LAYOUT_ID", "RESULTS_LAYOUT", "layout_node_of", "show_results"]
