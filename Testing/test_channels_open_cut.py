"""Channels along the mesh's open cut are flagged (:mod:`cardioscar.simulation.open_cut`).

Real parts: the demo phantom's tetrahedral wall lattice (open at its basal plane), painted by hand
in its wall coordinates as ``test_channels.py`` paints it; a stack of voxel rings meshed by
``mesh-from-labels``'s own mesher (hexahedra), each 9 mm slab's ring 3 mm narrower than the one above,
so its surface has the flat along-axis steps of a label mesh between its slabs. The search runs
through ``channels_of_mesh`` and the real command line.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import numpy_to_vtk

from cardioscar.aha.wall import lv_wall, walls_kept
from cardioscar.io.meshio import Mesh
from cardioscar.prepare.mesh_from_labels import myocardium_mesh_from_labels
from cardioscar.simulation import channels
from cardioscar.simulation.open_cut import OPEN_CUT_REASON, OpenEndUse, along_axis_patches, mark_open_cut, open_end_nodes
from cardioscar.simulation.opencarp import TAG_ARRAY, note_tag_values
from test_channels import Wall

#: The painted core's extent along the meridian below the basal cut (mm, mid-wall) and its half-width.
CORE_BELOW_CUT_MM, STRIP_MM, HALF_WIDTH_MM = 22.0, 3.0, 15.0


@pytest.fixture(scope="module")
def wall() -> Wall:
    return Wall(6000)


def _tagged_mesh(wall: Wall, tags: np.ndarray) -> Mesh:
    grid = vtk.vtkUnstructuredGrid()
    grid.DeepCopy(wall.grid)
    array = numpy_to_vtk(tags.astype(np.int32), deep=True)
    array.SetName(TAG_ARRAY)
    grid.GetPointData().AddArray(array)
    note_tag_values(grid, (1, 2, 3))
    return Mesh(dataset=grid, space="LPS", path=None)


def _strip_along_the_cut(wall: Wall) -> np.ndarray:
    """A core patch whose basal edge stops 3 mm short of the cut, the 3 mm between them border zone:
    the artefact of EMIDEC P047 and P028 (a strip between core and cut, open at its two ends)."""
    to_cut = wall.meridian.max() - wall.meridian
    across = np.abs(wall.circumference) < HALF_WIDTH_MM
    tags = np.ones(len(wall.points), np.int32)
    tags[across & (to_cut >= STRIP_MM) & (to_cut < CORE_BELOW_CUT_MM)] = 3
    tags[across & (to_cut < STRIP_MM)] = 2
    return tags


def test_a_strip_along_the_cut_is_flagged_and_a_corridor_far_from_it_is_not(wall, caplog):
    with walls_kept():  # one wall for the three searches (the same lattice)
        _flag_strip_not_corridor(wall, caplog)


def _flag_strip_not_corridor(wall: Wall, caplog) -> None:
    options = channels.ChannelOptions(layers=(0.1,))
    along_cut, _ = channels.channels_of_mesh(_tagged_mesh(wall, _strip_along_the_cut(wall)), options)
    assert len(along_cut.channels) == 1, along_cut.summary()
    channel = along_cut.channels[0]
    assert np.all(wall.meridian.max() - wall.meridian[channel.nodes] < STRIP_MM + 2.0)  # it is the strip
    assert channel.near_open_cut and channel.open_cut_mm < 0.5 * options.max_width_mm
    assert along_cut.near_open_cut == 1 and along_cut.open_cut_nodes > 0
    assert f"1 near the mesh's open cut ({OPEN_CUT_REASON})" in along_cut.summary()
    assert "1 of 1 channel(s) have an entrance within 5 mm (half --max-width) of the mesh's open cut" in caplog.text
    caplog.clear()
    # the mid-ventricular corridor of test_channels: its entrances lie about 20 mm below the cut
    far, _ = channels.channels_of_mesh(_tagged_mesh(wall, wall.tags()), options)
    assert len(far.channels) == 1 and not far.channels[0].near_open_cut and far.near_open_cut == 0
    assert far.channels[0].open_cut_mm > 15.0, far.channels[0].open_cut_mm
    assert "open cut" not in far.summary() and "open cut" not in caplog.text
    # the reach is half --max-width: one wide enough to reach the corridor's entrances flags it
    points, _, axis, faces = lv_wall(_tagged_mesh(wall, wall.tags()), "the channel search", "")
    mark_open_cut(far, points[open_end_nodes(points, axis, faces, OpenEndUse.CHANNEL_CUT)],
                  2.0 * far.channels[0].open_cut_mm + 0.1)
    assert far.channels[0].near_open_cut and far.near_open_cut == 1


def test_the_fibre_rule_and_the_channel_search_each_find_the_boundary_faces_once(wall, monkeypatch):
    """The open end is read off the wall's own boundary faces (``WallFaces.boundary``): the fibre
    rule's Laplace solve and the channel search each extract them once per mesh (twice before: once
    for the wall's faces, once for the open end). Counted by a wrapper that calls the real one,
    wherever a module holds it."""
    from cardioscar.aha import wall as wall_module
    from cardioscar.simulation.fibres import rule_fibres

    real, calls = wall_module.boundary_faces, []

    def counted(dataset):
        calls.append(dataset.GetNumberOfPoints())
        return real(dataset)

    for module in list(sys.modules.values()):
        if getattr(module, "boundary_faces", None) is real:
            monkeypatch.setattr(module, "boundary_faces", counted)
    mesh = _tagged_mesh(wall, _strip_along_the_cut(wall))
    rule_fibres(mesh)
    assert calls == [len(wall.points)]
    calls.clear()
    result, _ = channels.channels_of_mesh(mesh, channels.ChannelOptions(layers=(0.1,)))
    assert calls == [len(wall.points)] and result.near_open_cut == 1


def test_the_flag_reaches_the_tables_through_the_command_line(wall, tmp_path):
    from cardioscar.cli import main
    from cardioscar.io.meshio import write_mesh

    mesh = _tagged_mesh(wall, _strip_along_the_cut(wall))
    write_mesh(mesh, tmp_path / "tagged.vtu")
    out = tmp_path / "channels"
    assert main(["channels", "--mesh", str(tmp_path / "tagged.vtu"), "--output-dir", str(out), "--layers", "0.1"]) == 0
    record = json.loads((out / "channels.json").read_text())
    assert record["n_near_open_cut"] == 1 and record["open_cut_nodes"] > 0 and "open base" in record["near_open_cut"]
    assert "near the mesh's open cut" in record["result"]
    row = record["channels"][0]
    assert row["near_open_cut"] is True and 0.0 <= row["open_cut_mm"] < 5.0
    header, line = (out / "channels.csv").read_text().splitlines()
    columns = dict(zip(header.split(","), line.split(",")))
    assert columns["near_open_cut"] == "true" and float(columns["open_cut_mm"]) == row["open_cut_mm"]


def _stepped_rings() -> Mesh:
    """Five 9 mm slabs of 1.5 mm voxels, each a ring (wall 8 mm) 3 mm narrower than the slab above:
    the flat along-axis steps of a ``mesh-from-labels`` mesh between its slices, on both faces."""
    pixel, slab = 1.5, 6
    n_xy, n_z = 56, 5 * slab
    centre = 0.5 * (n_xy - 1) * pixel
    y, x = (np.mgrid[0:n_xy, 0:n_xy] * pixel - centre)
    radius = np.hypot(x, y)
    mask = np.zeros((n_z, n_xy, n_xy), np.uint8)
    for k in range(5):
        endo = 10.0 + 3.0 * k  # the apical slab first, widest at the base
        mask[k * slab:(k + 1) * slab] = (radius >= endo) & (radius <= endo + 8.0)
    image = sitk.GetImageFromArray(mask * 2)
    image.SetSpacing((pixel, pixel, pixel))
    return myocardium_mesh_from_labels(image, (2,), spacing_mm=pixel)


def test_a_label_meshes_steps_are_not_the_cut():
    mesh = _stepped_rings()
    points, _, axis, faces = lv_wall(mesh, "the channel search", "")
    heights = points[:, 2] * np.sign(axis.base_direction[2])  # the slabs' normal (the shape's axis is near it)
    top, bottom = heights.max(), heights.min()
    cut = open_end_nodes(points, axis, faces, OpenEndUse.CHANNEL_CUT)
    # the top and the bottom ring's faces, whole (with the rim's nodes one voxel along the walls:
    # the normals are smoothed over two steps), and nothing between
    assert np.all((top - heights[cut] < 1.6) | (heights[cut] - bottom < 1.6))
    for end in (top, bottom):
        assert (np.abs(heights[cut] - end) < 0.1).sum() == (np.abs(heights - end) < 0.1).sum()
    steps = [patch for patch in along_axis_patches(points, axis, faces) if not patch.open_end]
    middle = [p for p in steps if min(p.below_top_mm, p.above_bottom_mm) > 5.0]
    assert len(middle) >= 8, [(len(p.nodes), p.cavity_share) for p in steps]  # 4 steps on each face
    assert all(p.cavity_share in (0.0, 1.0) and not np.isin(p.nodes, cut).any() for p in middle)
