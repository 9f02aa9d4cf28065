"""Border-zone conducting channels (``cardioscar channels``, :mod:`cardioscar.simulation.channels`).

Real parts: the demo phantom's tetrahedral wall lattice (``lattice_cubes``, the mesh the phantoms
are made of), built here without its acquisition, with tags painted by hand in its wall
coordinates (depth t, meridian and circumference in mm), so the answer is known: a core patch
crossed by a border-zone corridor in the inner half of the wall has exactly one channel in the
inner layers and none in the outer ones; a solid core none; two corridors two. Files are real
``.vtu`` files through the real command line (in process).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import vtk

from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh
from cardioscar.phantoms.phantom import LVGeometry, lattice_cubes, tets_from_cubes
from cardioscar.simulation import channels
from cardioscar.simulation.opencarp import TAG_ARRAY, note_tag_values
from conftest import assert_refused_in_one_line

#: The core patch's half-size (mm, on the mid-wall) and the corridor's half-width (mm).
PATCH_MM, CORRIDOR_MM = 15.0, 2.5
#: The corridor runs through the wall's inner part only (depth t below this).
CORRIDOR_DEPTH = 0.45
INNER, OUTER = (0.1, 0.2, 0.3), (0.7, 0.8, 0.9)


class Wall:
    """The lattice mesh (LPS, as read from a file) and each node's wall coordinates in mm."""

    def __init__(self, target_nodes: int) -> None:
        geometry = LVGeometry(25.0, 80.0, 35.0, 90.0, np.eye(3), np.array([12.0, -25.0, 40.0]))
        local, wall, corners = lattice_cubes(geometry, target_nodes)
        self.points = geometry.to_lps(local)
        self.grid = _tetra_grid(self.points, tets_from_cubes(local, corners))
        self.depth, u, theta = wall.T
        a_mid, c_mid = (float(v) for v in geometry.axes(np.array(0.5)))
        u0, theta0 = 1.1, 1.0  # the patch's centre: mid-ventricle
        self.circumference = (theta - theta0) * a_mid * np.sin(u)
        self.meridian = (u - u0) * np.hypot(a_mid * np.cos(u), c_mid * np.sin(u))
        self.patch = (np.abs(self.circumference) < PATCH_MM) & (np.abs(self.meridian) < PATCH_MM)

    def tags(self, corridors: tuple[float, ...] = (0.0,), rim: bool = False, notch: bool = False) -> np.ndarray:
        """1 healthy, 2 border zone, 3 core: the patch core, each corridor (at that meridian offset,
        across the patch) border zone in the inner wall; ``rim`` a 4 mm border zone around the patch
        (a reconstruction's field has one); ``notch`` a corridor entering from one side only."""
        tags = np.ones(len(self.points), np.int32)
        tags[self.patch] = 3
        inner = self.patch & (self.depth < CORRIDOR_DEPTH)
        for offset in corridors:
            corridor = inner & (np.abs(self.meridian - offset) < CORRIDOR_MM)
            tags[corridor & ((self.circumference < 0) if notch else True)] = 2
        if rim:
            tags[~self.patch & (np.abs(self.circumference) < PATCH_MM + 4) & (np.abs(self.meridian) < PATCH_MM + 4)] = 2
        return tags

    def search(self, tags: np.ndarray, layers=INNER + OUTER) -> channels.ChannelResult:
        tissue = channels.tissue_from_tags(tags, (1, 2, 3), "painted tags")
        return channels.find_channels(self.grid, self.points, self.depth, tissue, channels.ChannelOptions(layers=layers))


def _tetra_grid(points: np.ndarray, tets: np.ndarray) -> vtk.vtkUnstructuredGrid:
    from vtk.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray

    grid = vtk.vtkUnstructuredGrid()
    vtk_points = vtk.vtkPoints()
    vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(points), deep=True))
    grid.SetPoints(vtk_points)
    cells = vtk.vtkCellArray()
    cells.ImportLegacyFormat(numpy_to_vtkIdTypeArray(np.hstack([np.full((len(tets), 1), 4), tets]).ravel(), deep=True))
    grid.SetCells(vtk.VTK_TETRA, cells)
    return grid


@pytest.fixture(scope="module")
def wall() -> Wall:
    return Wall(15000)


def per_layer(result: channels.ChannelResult) -> dict[float, int]:
    return {row["layer"]: row["channels"] for row in result.layers}


def test_a_corridor_through_the_core_is_one_channel_in_the_layers_it_spans(wall):
    tags = wall.tags()
    result = wall.search(tags)
    counts = per_layer(result)
    assert [counts[v] for v in INNER] == [1, 1, 1] and [counts[v] for v in OUTER] == [0, 0, 0], counts
    for channel in result.channels:
        assert len(channel.entrances_lps) == 2
        assert np.all(tags[channel.nodes] == 2) and np.all(np.abs(wall.meridian[channel.nodes]) < CORRIDOR_MM)
        # it crosses the 30 mm patch (shorter on the endocardium, whose radius is 25 of the mid-wall's 30 mm)
        assert 20.0 < channel.length_mm < 2 * PATCH_MM + 2.0, channel.length_mm
        assert np.linalg.norm(channel.centroid_lps - wall.points[wall.patch].mean(axis=0)) < 10.0
    marked = result.node_channel > 0
    assert np.all(tags[marked] == 2) and marked.sum() > 0.5 * (tags == 2).sum()


def test_a_solid_core_has_none_and_two_corridors_two(wall):
    assert wall.search(wall.tags(corridors=())).channels == []
    counts = per_layer(wall.search(wall.tags(corridors=(-7.0, 7.0))))
    assert [counts[v] for v in INNER] == [2, 2, 2] and [counts[v] for v in OUTER] == [0, 0, 0], counts


def test_a_border_zone_rim_keeps_the_channel_and_a_dead_end_is_none(wall):
    """A reconstruction's core always has a border-zone rim, which joins the corridor's ends: the
    corridor is still one channel (its entrances open onto the rim that leads to healthy tissue),
    the rim alone none; a corridor open at one end only has one entrance, so none."""
    counts = per_layer(wall.search(wall.tags(rim=True), layers=INNER))
    assert [counts[v] for v in INNER] == [1, 1, 1], counts
    assert wall.search(wall.tags(corridors=(), rim=True)).channels == []
    assert wall.search(wall.tags(notch=True), layers=INNER).channels == []


def test_no_core_and_no_border_zone_are_each_an_explicit_none(wall):
    """A result with no core has no channel (zstalefibre): the search said so as an error (exit 2
    on the command line and in the batch script, after its training) where the cohort recorded 0
    channels; now every face gets the empty result and its summary says why."""
    no_core = wall.search(np.where(wall.patch, 2, 1), layers=(0.5,))
    assert no_core.channels == [] and not no_core.node_channel.any() and no_core.layers[0]["core_nodes"] == 0
    assert "no node of the searched layers is core" in no_core.summary() and "lower --core" in no_core.summary()
    in_file = channels.channels_record(no_core, channels.tissue_from_tags(np.where(wall.patch, 2, 1), (1, 2, 3), "t"),
                                       channels.ChannelOptions(layers=(0.5,)))["result"]
    assert in_file.endswith("check the tags (or lower the core threshold)"), in_file  # channels.json: no face's option
    result = wall.search(np.where(wall.patch, 3, 1), layers=(0.5,))
    assert result.channels == [] and "no conducting channel" in result.summary()
    assert result.layers[0]["border_zone_nodes"] == 0 and result.layers[0]["core_nodes"] > 0
    assert result.layers[0]["candidates"] == 0 and not result.node_channel.any()


def test_bad_options_and_tags_are_refused_in_one_line(wall):
    for options, fragment in ((channels.ChannelOptions(layers=(0.5, 1.5)), "--layers"),
                              (channels.ChannelOptions(layer_width=0.0), "--layer-width"),
                              (channels.ChannelOptions(max_width_mm=-1.0), "--max-width"),
                              (channels.ChannelOptions(max_width_mm=500.0),
                               r"--max-width 500: give a width in \(0, 30\] mm \(conducting channels are a few mm")):
        with pytest.raises(CardioScarError, match=fragment):
            options.check()
    # the bound itself is a width still searched: every border zone a corridor only beyond it
    channels.ChannelOptions(max_width_mm=channels.MAX_MAX_WIDTH_MM).check()
    with pytest.raises(CardioScarError, match=r"values \(0\.6\) that are none of its tags"):
        channels.tissue_from_tags(np.where(wall.patch, 0.6, 1.0), (1, 2, 3), "field 'x'")


def _write(wall: Wall, path, fields: dict, tag_note: bool = True) -> None:
    grid = vtk.vtkUnstructuredGrid()
    grid.DeepCopy(wall.grid)
    if tag_note:
        note_tag_values(grid, (1, 2, 3))
    write_mesh(Mesh(dataset=grid, space="LPS", path=None), path, fields)


def test_the_command_line_writes_the_field_and_tables(wall, tmp_path):
    from cardioscar.cli import main

    tags = wall.tags()
    spread = np.where(tags == 2, 0.25, 0.0)  # the core's edge unsure along the corridor only
    _write(wall, tmp_path / "tagged.vtu", {TAG_ARRAY: tags, "core_uncertainty": spread})
    out = tmp_path / "channels"
    assert main(["channels", "--mesh", str(tmp_path / "tagged.vtu"), "--output-dir", str(out),
                 "--layers", "0.1,0.9"]) == 0
    record = json.loads((out / "channels.json").read_text())
    assert record["n_channels"] == 1 and record["coordinate_frame"] == "LPS"
    assert record["tissue"].endswith(f"field '{TAG_ARRAY}'") and "not validated" in record["limits"]
    assert [row["channels"] for row in record["per_layer"]] == [1, 0]
    lines = (out / "channels.csv").read_text().splitlines()
    assert lines[0].startswith("channel,layer,nodes,length_mm") and lines[0].endswith(",mean_core_uncertainty")
    assert len(lines) == 2 and lines[1].startswith("1,0.1,") and lines[1].endswith(",0.2500")
    assert record["channels"][0]["mean_core_uncertainty"] == 0.25
    written = read_mesh(out / "channels_mesh.vtu")
    field = written.point_array(channels.CHANNEL_FIELD)
    assert set(np.unique(field)) == {0, 1} and np.all(tags[field == 1] == 2)
    # the depth computed from the wall's faces is the lattice's own (its shells at t = 0, 0.25, ...)
    assert np.percentile(np.abs(written.point_array(channels.DEPTH_FIELD) - wall.depth), 95) < 0.05


def test_the_command_line_on_a_result_without_core_writes_no_channel_and_warns(wall, tmp_path, capsys):
    from cardioscar.cli import main

    _write(wall, tmp_path / "tagged.vtu", {TAG_ARRAY: np.where(wall.patch, 2, 1)})
    out = tmp_path / "channels"
    assert main(["channels", "--mesh", str(tmp_path / "tagged.vtu"), "--output-dir", str(out), "--layers", "0.5"]) == 0
    record = json.loads((out / "channels.json").read_text())
    assert record["n_channels"] == 0 and record["channels"] == [] and "is core" in record["result"]
    assert (out / "channels.csv").read_text().count("\n") == 1  # the header alone
    assert not read_mesh(out / "channels_mesh.vtu").point_array(channels.CHANNEL_FIELD).any()
    assert "no node of the searched layers is core" in capsys.readouterr().err


def test_a_core_without_a_corridor_is_told_not_warned_and_a_result_without_core_is_warned(wall, tmp_path, caplog):
    """No channel through a solid core is a correct answer (the sweep over EMIDEC: P051's small
    infarct has core and border zone but no corridor, and was logged as a warning); a result without
    core in the searched layers still warns, as the tags may be wrong."""
    _write(wall, tmp_path / "solid.vtu", {TAG_ARRAY: wall.tags(corridors=(), rim=True)})
    _write(wall, tmp_path / "no_core.vtu", {TAG_ARRAY: np.where(wall.patch, 2, 1)})
    for name, level, fragment in (("solid", "INFO", "no conducting channel found"),
                                  ("no_core", "WARNING", "no node of the searched layers is core")):
        caplog.clear()
        with caplog.at_level("INFO", logger="cardioscar"):
            result = channels.run_channels(tmp_path / f"{name}.vtu", None, channels.ChannelOptions(layers=(0.3,)))
        assert result.channels == [] and result.without_core == (name == "no_core")
        said = [r for r in caplog.records if fragment in r.getMessage()]
        assert [r.levelname for r in said] == [level], [(r.levelname, r.getMessage()) for r in caplog.records]
        # the one other warning a search with core gives: a narrow corridor may be hidden in it
        assert not any(r.levelname == "WARNING" and "not evidence of none" not in r.getMessage()
                       for r in caplog.records if r not in said)


def test_a_probability_field_is_tagged_by_the_tag_rule(wall, tmp_path):
    probability = np.choose(wall.tags() - 1, [0.1, 0.6, 0.9])
    _write(wall, tmp_path / "scar.vtu", {"scar_probability": probability}, tag_note=False)
    result = channels.run_channels(tmp_path / "scar.vtu", None, channels.ChannelOptions(layers=(0.1,)))
    assert len(result.channels) == 1
    # cut above the border zone's 0.6 the corridor is healthy: a gap of healthy tissue is no channel
    above = channels.tissue_of_mesh(read_mesh(tmp_path / "scar.vtu"), border_zone=0.7)
    assert "probability band 0.7-0.8, probability >= 0.8" in above.source and not above.border_zone.any()
    assert channels.find_channels(wall.grid, wall.points, wall.depth, above).channels == []


def test_bad_input_on_the_command_line(wall, tmp_path, capsys):
    tags = wall.tags()
    _write(wall, tmp_path / "unnoted.vtu", {TAG_ARRAY: tags}, tag_note=False)
    _write(wall, tmp_path / "bare.vtu", {"other": tags.astype(float)})
    tagged = read_mesh(tmp_path / "unnoted.vtu").dataset
    note_tag_values(tagged, (1, 2, 3))
    surface = vtk.vtkDataSetSurfaceFilter()  # the wall's faces with their nodes' tags: no depth through it
    surface.SetInputData(tagged)
    surface.Update()
    write_mesh(Mesh(dataset=surface.GetOutput(), space="LPS", path=None), tmp_path / "surface.vtp")
    out = tmp_path / "out"
    out.mkdir()
    cases = [(["--mesh", tmp_path / "unnoted.vtu"], "give --tags HEALTHY,BORDER,CORE"),
             (["--mesh", tmp_path / "bare.vtu"], "has no tags"),
             (["--mesh", tmp_path / "unnoted.vtu", "--tags", "1,2,3", "--core", "0.7"], "leave them out"),
             (["--mesh", tmp_path / "bare.vtu", "--scar-field", "other"], "outside [0, 1]"),
             (["--mesh", tmp_path / "bare.vtu", "--scar-field", "p"], "no scar field 'p'"),
             (["--mesh", tmp_path / "surface.vtp"], "has no volume cells"),
             (["--mesh", tmp_path / "bare.vtu", "--tags", "1,2,3"], "leave --tags out"),
             (["--mesh", tmp_path / "unnoted.vtu", "--tags", "1,2,3", "--layers", "0.5,2"], "--layers"),
             (["--mesh", tmp_path / "unnoted.vtu", "--tags", "1,2,3", "--max-width", "500"],
              "--max-width 500: give a width in (0, 30] mm")]
    for args, fragment in cases:
        assert_refused_in_one_line(["channels", *args, "--output-dir", out / "out1"], fragment, capsys, out)


def test_a_minimum_length_drops_shorter_channels_and_counts_them(wall):
    """``min_length_mm`` leaves out the channels shorter than it (their nodes 0 in ``bz_channel``),
    counts them per layer and in the summary, and numbers the kept ones from 1; 0 keeps every one."""
    tags = wall.tags()
    every = channels.find_channels(wall.grid, wall.points, wall.depth, channels.tissue_from_tags(tags, (1, 2, 3), "t"),
                                   channels.ChannelOptions(layers=INNER, min_length_mm=0.0))
    lengths = sorted(c.length_mm for c in every.channels)
    assert len(lengths) == 3 and lengths[0] < lengths[-1], lengths
    tissue = channels.tissue_from_tags(tags, (1, 2, 3), "t")
    for cut, kept in ((lengths[-1] + 1.0, 0), (0.5 * (lengths[0] + lengths[-1]), None)):
        result = channels.find_channels(wall.grid, wall.points, wall.depth, tissue,
                                        channels.ChannelOptions(layers=INNER, min_length_mm=cut))
        expected = sum(v >= cut for v in lengths) if kept is None else kept
        assert len(result.channels) == expected and result.dropped_short == 3 - expected
        assert [c.id for c in result.channels] == list(range(1, expected + 1))
        assert all(c.length_mm >= cut for c in result.channels)
        assert sum(row["channels"] for row in result.layers) == expected
        assert sum(row["dropped_short"] for row in result.layers) == 3 - expected
        assert result.node_channel.max() <= expected and result.node_channel.any() == (expected > 0)
        assert f"{3 - expected} shorter than --min-length dropped" in result.summary()
        record = channels.channels_record(result, tissue, channels.ChannelOptions(layers=INNER, min_length_mm=cut))
        assert record["n_dropped_short"] == 3 - expected and record["min_length_mm"] == cut
    with pytest.raises(CardioScarError, match="--min-length -1 must be a length in mm >= 0"):
        channels.ChannelOptions(min_length_mm=-1.0).check()


def test_the_command_line_min_length(wall, tmp_path, capsys):
    """``--min-length`` reaches the search (the channel dropped and counted in channels.json); a
    negative one is refused in one line."""
    from cardioscar.cli import main

    _write(wall, tmp_path / "tagged.vtu", {TAG_ARRAY: wall.tags()})
    out = tmp_path / "channels"
    assert main(["channels", "--mesh", str(tmp_path / "tagged.vtu"), "--output-dir", str(out), "--layers", "0.1",
                 "--min-length", "60"]) == 0
    record = json.loads((out / "channels.json").read_text())
    assert (record["n_channels"], record["n_dropped_short"], record["min_length_mm"]) == (0, 1, 60.0)
    # the file's sentence names the option by the file's own key, as every face that writes it can read
    assert "1 shorter than min_length_mm dropped" in record["result"] and "--" not in record["result"]
    assert_refused_in_one_line(["channels", "--mesh", tmp_path / "tagged.vtu", "--output-dir", tmp_path / "o2",
                                "--min-length", "-1"], "--min-length", capsys, tmp_path)


def test_a_depth_given_twice_is_refused_on_the_command_line_and_the_api(wall, tmp_path, capsys):
    """``--layers 0.1,0.1`` searched 0.1 once but ``channels.json`` listed it twice beside one
    per-layer row: refused in one line (the command line, ``run_channels``, ``find_channels``), no
    folder written; each depth once (in any order) is searched and listed once, by depth."""
    from cardioscar.cli import main

    _write(wall, tmp_path / "tagged.vtu", {TAG_ARRAY: wall.tags()})
    assert_refused_in_one_line(["channels", "--mesh", tmp_path / "tagged.vtu", "--output-dir", tmp_path / "out1",
                                "--layers", "0.1,0.1"],
                               "--layers 0.1,0.1: depth 0.1 is given twice; give each depth once", capsys, tmp_path)
    mesh = read_mesh(tmp_path / "tagged.vtu")
    with pytest.raises(CardioScarError, match=r"^--layers 0.3,0.1,0.3,0.3: depth 0.3 is given 3 times; give each "
                                              r"depth once$"):
        channels.run_channels(mesh, tmp_path / "out2", channels.ChannelOptions(layers=(0.3, 0.1, 0.3, 0.3)))
    with pytest.raises(CardioScarError, match="depth 0.1 is given twice"):
        channels.find_channels(wall.grid, wall.points, wall.depth, channels.tissue_from_tags(wall.tags(), (1, 2, 3),
                                                                                            "t"),
                               channels.ChannelOptions(layers=(0.1, 0.10)))
    assert not (tmp_path / "out2").exists()
    assert main(["channels", "--mesh", str(tmp_path / "tagged.vtu"), "--output-dir", str(tmp_path / "once"),
                 "--layers", "0.2,0.1"]) == 0
    record = json.loads((tmp_path / "once" / "channels.json").read_text())
    assert record["layers"] == [0.1, 0.2] == [row["layer"] for row in record["per_layer"]]


@pytest.mark.parametrize("orientation", ["across", "along"])
def test_the_corridor_phantom_truth_holds_the_channel(orientation):
    """The segmented phantom's corridor layout: a core at scar fraction 1 crossed by a 6 mm strip at
    0.65 (border zone by the tag rule), running apex to base (across the short-axis slices) or round
    the wall (along them); the channel search on its true fraction finds the strip as a channel."""
    from cardioscar.phantoms.phantom import make_phantom
    from cardioscar.phantoms.phantom_segmented import CorridorSpec, SegmentedConfig

    phantom = make_phantom(SegmentedConfig(seed=2, target_nodes=4000,
                                           corridor=CorridorSpec(width_mm=6.0, orientation=orientation)))
    scar = phantom.scar_field.__self__
    local = phantom.geometry.to_local(phantom.points_lps)
    along, across = scar.mid_wall_mm(local)
    strip = scar.in_corridor(local)
    fraction = phantom.truth_fraction
    assert np.allclose(fraction[strip & (np.abs(across) < 1.0) & (np.abs(along) < 15)], 0.65, atol=0.02)
    assert np.all(fraction[(np.abs(across) > 6.0) & (np.abs(across) < 15) & (np.abs(along) < 15)] > 0.97)
    assert np.all(fraction[np.maximum(np.abs(along), np.abs(across)) > 25.0] < 0.01)
    z_span = np.ptp(local[strip, 2])  # the local z is the long axis, the short-axis slices' normal
    assert (z_span > 30.0) if orientation == "across" else (z_span < 15.0), z_span
    assert phantom.metadata["corridor"]["orientation"] == orientation and phantom.infarcts == []
    if orientation == "along":  # the search below is the same for both: once is enough; a patchy core instead
        patchy = make_phantom(SegmentedConfig(seed=2, target_nodes=4000, corridor=CorridorSpec(
            width_mm=6.0, orientation=orientation, patchiness=0.3))).truth_fraction
        deep = (np.abs(across) > 6.0) & (np.abs(across) < 15) & (np.abs(along) < 15)
        assert patchy[deep].min() < 0.8 < patchy[deep].max() and np.all(patchy[deep] > 0.69)
        assert np.allclose(patchy[strip & (np.abs(across) < 1.0) & (np.abs(along) < 15)], 0.65, atol=0.02)
        return
    grid = vtk.vtkUnstructuredGrid()
    grid.DeepCopy(phantom.mesh)
    mesh = Mesh(dataset=grid, space="LPS", path=None)
    probability = vtk.util.numpy_support.numpy_to_vtk(fraction, deep=True)
    probability.SetName("scar_probability")
    grid.GetPointData().AddArray(probability)
    result, _ = channels.channels_of_mesh(mesh, channels.ChannelOptions(layers=(0.1, 0.9)))
    assert [c.layer for c in result.channels] == [0.1, 0.9]
    assert all(strip[c.nodes].mean() > 0.9 and 20.0 < c.length_mm < 45.0 for c in result.channels)


def test_bad_corridor_layouts_are_refused_in_one_line():
    from cardioscar.phantoms.phantom_segmented import CorridorSpec, SegmentedConfig

    for spec, fragment in ((CorridorSpec(orientation="diagonal"), "orientation='diagonal'"),
                           (CorridorSpec(patchiness=0.5), "patchiness=0.5"),
                           (CorridorSpec(width_mm=40.0), "width_mm=40"),
                           (CorridorSpec(border_zone=1.0), "border_zone=1")):
        with pytest.raises(CardioScarError, match=fragment):
            SegmentedConfig(corridor=spec).validate()
