"""Border-zone conducting channels from the Slicer Logic on real MRML (slicer-core, no Qt): the
painted phantom lattice of ``test_channels.py`` loaded through Slicer's model storage, under a
parent transform; what this cannot prove: a panel (there is none for channels)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import slicer  # noqa: E402  (slicer-core)
import vtk  # noqa: E402
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.channels import find_model_channels  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.simulation.channels import CHANNEL_FIELD, ChannelOptions  # noqa: E402
from cardioscar.simulation.opencarp import TAG_ARRAY  # noqa: E402
from test_channels import Wall, _write  # noqa: E402  (the painted lattice)

SHIFT_RAS = np.array([5.0, -3.0, 7.0])


def test_the_logic_finds_the_corridor_in_world_coordinates(tmp_path):
    wall = Wall(15000)
    tags = wall.tags()
    _write(wall, tmp_path / "tagged.vtk", {TAG_ARRAY: tags})
    context = csl.create_scene()
    node = csl.load_model(context.scene, tmp_path / "tagged.vtk")
    with pytest.raises(CardioScarError, match=r"options\.layer_width 0 must lie in"):
        find_model_channels(node, ChannelOptions(layer_width=0.0))
    assert node.GetMesh().GetPointData().GetArray(CHANNEL_FIELD) is None  # nothing written on a refusal
    transform = slicer.vtkMRMLLinearTransformNode()
    context.scene.AddNode(transform)
    matrix = vtk.vtkMatrix4x4()
    for axis in range(3):
        matrix.SetElement(axis, 3, SHIFT_RAS[axis])
    transform.SetMatrixTransformToParent(matrix)
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(CardioScarError, match=r"options\.min_length_mm -1 must be a length in mm >= 0"):
        find_model_channels(node, ChannelOptions(min_length_mm=-1.0))
    dropped = find_model_channels(node, ChannelOptions(layers=(0.1,), min_length_mm=60.0))
    assert dropped.channels == [] and dropped.dropped_short == 1
    # its summary in the console's words (the option it set), the library's kept for the batch script
    assert "; 1 shorter than options.min_length_mm dropped;" in dropped.summary(), dropped.summary()
    assert "--" not in dropped.summary() and "1 shorter than --min-length dropped" in dropped.library_summary()
    result = find_model_channels(node, ChannelOptions(layers=(0.1,)))  # tag values from the note
    assert len(result.channels) == 1
    field = vtk_to_numpy(node.GetMesh().GetPointData().GetArray(CHANNEL_FIELD))
    assert set(np.unique(field)) == {0, 1} and np.all(tags[field == 1] == 2)
    shift_lps = SHIFT_RAS * np.array([-1.0, -1.0, 1.0])
    centroid_file = wall.points[result.channels[0].nodes].mean(axis=0)
    np.testing.assert_allclose(result.channels[0].centroid_lps, centroid_file + shift_lps, atol=1e-6)


def test_the_logic_flags_channels_along_the_open_cut(tmp_path):
    """A border-zone strip between a core and the lattice's basal cut (``test_channels_open_cut``):
    the Logic's result and the model's channel table say it is near the mesh's open cut."""
    from test_channels_open_cut import _strip_along_the_cut

    wall = Wall(6000)
    _write(wall, tmp_path / "strip.vtk", {TAG_ARRAY: _strip_along_the_cut(wall)})
    node = csl.load_model(csl.create_scene().scene, tmp_path / "strip.vtk")
    result = find_model_channels(node, ChannelOptions(layers=(0.1, 0.9)))
    assert len(result.channels) == 2 and result.near_open_cut == 2 and "2 near the mesh's open cut" in result.summary()
    assert all(c.near_open_cut and c.open_cut_mm < 5.0 for c in result.channels)
    table = node.GetNodeReference("CardioScarChannelTable")
    columns = [table.GetColumnName(k) for k in range(table.GetNumberOfColumns())]
    near = columns.index("near_open_cut")
    assert [table.GetCellText(row, near) for row in range(table.GetNumberOfRows())] == ["true", "true"]
