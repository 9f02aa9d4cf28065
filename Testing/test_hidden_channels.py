"""Where a reconstruction may have filled a narrow channel with core (``core_marginal``,
:mod:`cardioscar.simulation.hidden_channels`), on every face of the channel search.

Real parts: the painted lattice of ``test_channels.py`` (a core patch; here its corridor is
painted as core whose probability only just clears the core threshold, as the phantoms'
reconstructions left a narrow corridor), real ``.vtu`` files through the real command line, the
Slicer Logic on a real MRML scene and the batch script's lines. The answer is known: the search
finds no channel, and the flag marks the filled corridor's nodes and no node of the solid core.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cardioscar.io.meshio import read_mesh
from cardioscar.simulation import channels
from cardioscar.simulation.hidden_channels import CORE_MARGIN, MARGINAL_CORE_FIELD, NARROW_CORRIDOR_MM
from cardioscar.simulation.opencarp import TAG_ARRAY
from test_channels import Wall, _write

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CardioScar"))

#: The probability painted: healthy, the filled corridor (core, just above 0.8), the solid core.
HEALTHY_P, FILLED_P, CORE_P = 0.1, 0.85, 0.97
#: Five layers whose bands of 0.2 cover the whole wall: every core node is searched.
WHOLE_WALL = (0.1, 0.3, 0.5, 0.7, 0.9)


@pytest.fixture(scope="module")
def wall() -> Wall:
    return Wall(6000)


def filled(wall: Wall) -> tuple[np.ndarray, np.ndarray]:
    """The probability with the corridor filled (core, just above the threshold) and the corridor's nodes."""
    tags = wall.tags()
    corridor = tags == 2
    return np.where(wall.patch, np.where(corridor, FILLED_P, CORE_P), HEALTHY_P), corridor


def test_the_flag_marks_the_filled_corridor_and_not_the_solid_core(wall, tmp_path, caplog):
    probability, corridor = filled(wall)
    _write(wall, tmp_path / "scar.vtu", {"scar_probability": probability}, tag_note=False)
    out = tmp_path / "channels"
    result = channels.run_channels(tmp_path / "scar.vtu", out, channels.ChannelOptions(layers=WHOLE_WALL))
    assert result.channels == []  # the filled corridor is core: no channel, yet it may hide one
    hidden = result.hidden
    flag = hidden.flag
    assert np.array_equal(flag, corridor) and hidden.core_nodes == int(wall.patch.sum())
    assert hidden.flagged_nodes == int(corridor.sum())
    layer, outer = hidden.per_layer[0], hidden.per_layer[-1]
    assert layer["layer"] == 0.1 and 0 < layer["flagged_core_nodes"] < layer["core_nodes"]
    assert outer["layer"] == 0.9 and outer["flagged_core_nodes"] == 0 < outer["core_nodes"]  # the corridor is inner
    record = json.loads((out / "channels.json").read_text())["hidden_corridors"]
    assert record["node_field"] == MARGINAL_CORE_FIELD and record["flagged_core_nodes"] == int(corridor.sum())
    assert record["narrow_corridor_mm"] == NARROW_CORRIDOR_MM and record["core_margin"] == CORE_MARGIN
    written = read_mesh(out / "channels_mesh.vtu").point_array(MARGINAL_CORE_FIELD)
    assert np.array_equal(written.astype(bool), corridor)
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and MARGINAL_CORE_FIELD in r.getMessage()]
    assert len(said) == 1 and "not evidence of none" in said[0] and f"about {NARROW_CORRIDOR_MM:g} mm" in said[0]


def test_tags_alone_give_the_caveat_without_a_field_and_drop_an_earlier_one(wall, tmp_path, capsys):
    """A tags field carries no margin: the caveat is said (command line and JSON), no flag is
    written, and an earlier search's ``core_marginal`` on the input is not carried into the output."""
    from cardioscar.cli import main

    tags = np.where(wall.patch, 3, 1)
    _write(wall, tmp_path / "tagged.vtu", {TAG_ARRAY: tags, MARGINAL_CORE_FIELD: np.ones(len(tags), np.uint8)})
    out = tmp_path / "channels"
    assert main(["channels", "--mesh", str(tmp_path / "tagged.vtu"), "--output-dir", str(out), "--layers", "0.1"]) == 0
    whole = json.loads((out / "channels.json").read_text())
    record = whole["hidden_corridors"]
    assert record["node_field"] is None and record["flagged_core_nodes"] is None
    assert record["core_nodes"] == whole["per_layer"][0]["core_nodes"] > 0 and "no core_marginal" in record["basis"]
    assert "not evidence of none" in record["note"] and "not evidence of none" in capsys.readouterr().err
    assert MARGINAL_CORE_FIELD not in read_mesh(out / "channels_mesh.vtu").point_field_names()
    assert MARGINAL_CORE_FIELD in read_mesh(tmp_path / "tagged.vtu").point_field_names()  # the input untouched


def test_no_core_has_no_caveat_and_only_the_searched_layers_count(wall):
    result = wall.search(np.where(wall.patch, 2, 1), layers=(0.5,))
    assert result.hidden.core_nodes == 0 and result.hidden.summary() == ""
    inner = wall.search(np.where(wall.patch, 3, 1), layers=(0.1,))  # core through the wall, one inner layer searched
    assert 0 < inner.hidden.core_nodes == inner.layers[0]["core_nodes"] < int(wall.patch.sum())


def test_the_slicer_logic_writes_the_flag_and_removes_a_stale_one(wall, tmp_path):
    import slicer

    import CardioScarLogic as csl
    from CardioScarLogic.channels import find_model_channels

    probability, corridor = filled(wall)
    _write(wall, tmp_path / "scar.vtu", {"scar_probability": probability}, tag_note=False)
    scene = slicer.vtkMRMLScene()
    model = csl.load_model(scene, tmp_path / "scar.vtu")
    found = find_model_channels(model, channels.ChannelOptions(layers=WHOLE_WALL), scar_field="scar_probability",
                                output_dir=tmp_path / "out")
    assert found.hidden.flagged_nodes == int(corridor.sum())
    written = model.GetMesh().GetPointData().GetArray(MARGINAL_CORE_FIELD)
    assert written is not None and int(sum(written.GetValue(i) for i in range(written.GetNumberOfTuples()))) == \
        int(corridor.sum())
    # the same model searched from tags (no probability): the earlier flag is removed, not left stale
    from vtk.util.numpy_support import numpy_to_vtk

    tags = numpy_to_vtk(np.where(probability >= 0.8, 3, np.where(probability >= 0.5, 2, 1)).astype(np.int32), deep=True)
    tags.SetName(TAG_ARRAY)
    model.GetMesh().GetPointData().AddArray(tags)
    again = find_model_channels(model, channels.ChannelOptions(layers=(0.1,)), tag_values=(1, 2, 3))
    assert again.hidden.flag is None and model.GetMesh().GetPointData().GetArray(MARGINAL_CORE_FIELD) is None
