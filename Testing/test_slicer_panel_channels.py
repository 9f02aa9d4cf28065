"""The panel's *Find channels* rows (the tissue section of CardioScar.py) on a real MRML scene, with
the Qt stand-in of Testing/slicer_widget_harness.py (see there what it cannot prove). The model is
the painted phantom lattice of ``test_channels.py`` (a core patch crossed by one border-zone
corridor in the inner wall), loaded through Slicer's model storage; the search runs in the real
worker process, and the files it writes are read back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CardioScar"))

import vtk  # noqa: E402
import vtk.util.numpy_support  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
import slicer_widget_harness as harness  # noqa: E402
from cardioscar.simulation.channels import CHANNEL_FIELD, DEFAULT_MIN_LENGTH_MM, DEPTH_FIELD  # noqa: E402
from cardioscar.simulation.hidden_channels import MARGINAL_CORE_FIELD  # noqa: E402
from cardioscar.simulation.opencarp import TAG_ARRAY  # noqa: E402
from test_channels import Wall, _write  # noqa: E402  (the painted lattice)
from test_one_field_aha_channels import BANDS_CAVEAT  # noqa: E402
from test_slicer_panel import LATEST, _arrays, case, panel, phantom  # noqa: E402,F401


@pytest.fixture(scope="module")
def wall() -> Wall:
    return Wall(6000)


def _load(panel, wall: Wall, path: Path, fields: dict, tag_note: bool = True):
    _write(wall, path, fields, tag_note)
    return csl.load_model(panel["scene"], path)


@LATEST
def test_find_channels_writes_the_field_table_colours_and_files(panel, wall, tmp_path):
    widget, ui = panel["widget"], panel["ui"]
    assert not ui.findChannelsButton.enabled  # no model to tag yet
    tags = wall.tags()
    model = _load(panel, wall, tmp_path / "tagged.vtu", {TAG_ARRAY: tags})
    ui.tagModelSelector.setCurrentNode(model)
    assert ui.findChannelsButton.enabled
    parameters = widget._parameterNode  # the CLI's defaults (test_slicer_ui checks them against ChannelOptions)
    assert (parameters.channelLayers, parameters.channelLayerWidth, parameters.channelMaxWidth,
            parameters.channelMinLength) == ("0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", 0.2, 10.0, DEFAULT_MIN_LENGTH_MM)
    ui.channelLayersLineEdit.text = "0.1,0.9"
    ui.channelOutputDirLineEdit.currentPath = str(tmp_path / "channels")
    harness.click_to_end(widget, ui.findChannelsButton)
    text = ui.statusLabel.text
    assert text.startswith("Channels on 'tagged'") and "1 channel(s)" in text and f"'{TAG_ARRAY}'" in text, text
    # the caveat that a narrow corridor may be hidden in the core; tags alone: no core_marginal field
    assert "Note: a border-zone corridor narrower than about 8 mm" in text and "not evidence of none" in text, text
    assert "cut at two probabilities" not in text  # tags without a note of their classes: read as before
    assert MARGINAL_CORE_FIELD not in _arrays(model)
    field = _arrays(model)[CHANNEL_FIELD]
    assert set(np.unique(field)) == {0, 1} and np.all(tags[field == 1] == 2)
    assert np.all((_arrays(model)[DEPTH_FIELD] >= 0) & (_arrays(model)[DEPTH_FIELD] <= 1))
    display = model.GetDisplayNode()
    assert display.GetActiveScalarName() == CHANNEL_FIELD and display.GetScalarVisibility()
    assert display.GetColorNode().GetNumberOfColors() == 2
    table = model.GetNodeReference("CardioScarChannelTable")
    assert table.GetNumberOfRows() == 1 and table.GetColumnName(0) == "channel" and table.GetCellText(0, 1) == "0.1"
    record = json.loads((tmp_path / "channels" / "channels.json").read_text(encoding="utf-8"))
    assert record["n_channels"] == 1 and [row["channels"] for row in record["per_layer"]] == [1, 0]
    csv = (tmp_path / "channels" / "channels.csv").read_text(encoding="utf-8").splitlines()
    assert len(csv) == 2 and csv[1].split(",")[:2] == [table.GetCellText(0, 0), table.GetCellText(0, 1)]
    # *Min channel length* reaches the worker's search: the corridor (20-32 mm) dropped, and counted
    ui.channelMinLengthSpinBox.value = 60.0
    harness.click_to_end(widget, ui.findChannelsButton)
    assert "no channel (1 shorter than 60 mm dropped)" in ui.statusLabel.text, ui.statusLabel.text
    record = json.loads((tmp_path / "channels" / "channels.json").read_text(encoding="utf-8"))
    assert (record["n_channels"], record["n_dropped_short"], record["min_length_mm"]) == (0, 1, 60.0)
    assert not _arrays(model)[CHANNEL_FIELD].any()


@LATEST
def test_a_probability_is_cut_at_the_thresholds_and_refusals_change_nothing(panel, wall, tmp_path):
    from CardioScarLogic.channels import find_model_channels, tissue_of_model

    widget, ui = panel["widget"], panel["ui"]
    probability = np.choose(wall.tags() - 1, [0.1, 0.6, 0.9])
    model = _load(panel, wall, tmp_path / "scar.vtu", {"scar_probability": probability}, tag_note=False)
    ui.tagModelSelector.setCurrentNode(model)
    ui.channelLayersLineEdit.text = "0.1,x"  # refused before a worker starts, in one line
    harness.click_to_end(widget, ui.findChannelsButton)
    assert "Channel layers '0.1,x'" in ui.statusLabel.text and "\n" not in ui.statusLabel.text
    ui.channelLayersLineEdit.text = "1.5"
    harness.click_to_end(widget, ui.findChannelsButton)
    assert "'Channel layers' 1.5: give depths between 0" in ui.statusLabel.text, ui.statusLabel.text
    ui.channelLayersLineEdit.text = "0.1,0.1"
    harness.click_to_end(widget, ui.findChannelsButton)
    assert "'Channel layers' 0.1,0.1: depth 0.1 is given twice; give each depth once" in ui.statusLabel.text, \
        ui.statusLabel.text
    ui.channelLayersLineEdit.text = "0.1"
    (tmp_path / "afile").write_text("")
    ui.channelOutputDirLineEdit.currentPath = str(tmp_path / "afile")
    harness.click_to_end(widget, ui.findChannelsButton)
    assert "'Channel files to'" in ui.statusLabel.text and "is a file" in ui.statusLabel.text
    ui.tagBorderZoneSpinBox.value = 0.95  # above the core's 0.8: the library's one-line error, in box names
    ui.channelOutputDirLineEdit.currentPath = ""
    harness.click_to_end(widget, ui.findChannelsButton)
    assert "'Border zone from'" in ui.statusLabel.text and "\n" not in ui.statusLabel.text, ui.statusLabel.text
    assert CHANNEL_FIELD not in _arrays(model) and model.GetNodeReference("CardioScarChannelTable") is None
    # at the section's 0.5 / 0.8 the corridor at 0.6 is border zone: the search (here in process, the
    # worker's steps being those of the first test) finds it, from the probability's tissue
    ui.tagBorderZoneSpinBox.value = 0.5
    parameters = widget._parameterNode
    tissue = tissue_of_model(model, parameters.tagBorderZone, parameters.tagCore, parameters.tagNumbers)
    assert tissue == {"scar_field": "scar_probability", "border_zone": 0.5, "core": 0.8}
    found = find_model_channels(model, widget.channelOptions(), **tissue)
    assert len(found.channels) == 1
    # from a probability, the core within 0.1 of the core threshold is flagged on the model (the core at 0.9 here)
    assert np.array_equal(_arrays(model)[MARGINAL_CORE_FIELD].astype(bool), found.hidden.flag)
    assert found.hidden.flagged_nodes > 0 and np.all(probability[found.hidden.flag] == 0.9)
    # ... and the Logic's result names that core as the top band, the corridor as the lower band
    assert found.hidden.summary().startswith(f"{BANDS_CAVEAT}: {found.hidden.flagged_nodes} of "), found.hidden.summary()
    assert "top-band nodes" in found.hidden.summary() and "core" not in found.hidden.summary().replace("core_marginal", "")
    # one field's bands (a probability is always one field): the status line says what its channels are not
    harness.click_to_end(widget, ui.findChannelsButton)
    assert "Note: its tags are one scar field cut at two probabilities" in ui.statusLabel.text, ui.statusLabel.text
    assert "(probability band 0.5-0.8, probability >= 0.8)" in ui.statusLabel.text
    assert f"Note: {BANDS_CAVEAT}: " in ui.statusLabel.text and "border-zone corridor" not in ui.statusLabel.text
    # ... and its advice to tag from a core model in the panel's words, not channels.json's command line
    assert "export --core-mesh" not in ui.statusLabel.text
    assert "choose the tissue section's 'Core model'" in ui.statusLabel.text, ui.statusLabel.text


@LATEST
def test_tags_without_their_note_are_read_with_the_sections_tag_numbers(panel, wall, tmp_path):
    """A tissue_tag loaded from a file without the export's note of its values is read with *Tag
    numbers*: tags 4,5,6 under the default 1,2,3 are one line before any worker; under 4,5,6 the
    search's inputs are accepted."""
    from CardioScarLogic.channels import read_channel_inputs, tissue_of_model

    widget, ui = panel["widget"], panel["ui"]
    model = _load(panel, wall, tmp_path / "unnoted.vtu", {TAG_ARRAY: wall.tags() + 3}, tag_note=False)
    ui.tagModelSelector.setCurrentNode(model)
    harness.click_to_end(widget, ui.findChannelsButton)
    assert "has values (4, 5, 6) that are none of its tags" in ui.statusLabel.text and widget._run is None
    assert "'Tag numbers' HEALTHY,BORDER,CORE" in ui.statusLabel.text, ui.statusLabel.text
    ui.tagNumbersLineEdit.text = "4,5,6"
    tissue = tissue_of_model(model, 0.5, 0.8, widget._parameterNode.tagNumbers)
    assert tissue == {"tag_values": (4, 5, 6)} and read_channel_inputs(model, **tissue).tissue == tissue


@LATEST
def test_a_surface_model_disables_the_button_and_says_why(panel, phantom):
    ui, scene = panel["ui"], panel["scene"]
    surface = vtk.vtkPolyData()
    surface.DeepCopy(phantom.surface)
    array = vtk.util.numpy_support.numpy_to_vtk(np.full(surface.GetNumberOfPoints(), 0.9, np.float32), deep=True)
    array.SetName("scar_probability")
    surface.GetPointData().AddArray(array)
    model = scene.AddNewNodeByClass("vtkMRMLModelNode", "surface")
    model.SetAndObserveMesh(surface)
    ui.tagModelSelector.setCurrentNode(model)
    assert not ui.findChannelsButton.enabled and "is a surface" in ui.findChannelsButton.toolTip


@LATEST
def test_stop_or_a_model_edited_meanwhile_writes_nothing(panel, wall, tmp_path):
    """The search runs in the worker with Stop (the rest of the panel disabled meanwhile); Stop, and a
    model whose points moved while the worker searched, leave the model and the folder as they were."""
    from vtk.util.numpy_support import vtk_to_numpy

    widget, ui = panel["widget"], panel["ui"]
    model = _load(panel, wall, tmp_path / "tagged.vtu", {TAG_ARRAY: wall.tags()})
    ui.tagModelSelector.setCurrentNode(model)
    ui.channelLayersLineEdit.text = "0.1"
    ui.channelOutputDirLineEdit.currentPath = str(tmp_path / "channels")
    ui.findChannelsButton.click()
    run = widget._run
    assert run is not None and ui.findChannelsButton.text == "Stop" and ui.findChannelsButton.enabled
    assert ui.statusLabel.text == "Finding channels on 'tagged'..."
    assert not ui.tagButton.enabled and not ui.applyButton.enabled and not ui.channelLayersLineEdit.enabled
    ui.findChannelsButton.click()  # Stop
    assert widget._run is None and not run.folder.exists() and "Stopped" in ui.statusLabel.text
    assert ui.findChannelsButton.text == "Find channels" and ui.channelLayersLineEdit.enabled
    ui.findChannelsButton.click()  # again, and the mesh is moved while the worker searches it
    assert widget._run is not None, ui.statusLabel.text
    points = model.GetMesh().GetPoints()
    vtk_to_numpy(points.GetData())[:10] += 2.0
    points.Modified()
    harness.run_to_end(widget)
    assert "changed during the channel search (its points moved): nothing was written" in ui.statusLabel.text
    assert CHANNEL_FIELD not in _arrays(model) and model.GetNodeReference("CardioScarChannelTable") is None
    assert not (tmp_path / "channels").exists() and ui.findChannelsButton.enabled


@LATEST
def test_find_channels_names_those_near_the_open_cut(panel, wall, tmp_path):
    """A border-zone strip between a core and the lattice's basal cut (``test_channels_open_cut``):
    the status line counts the channels near the mesh's open cut and says why, the table flags them."""
    from test_channels_open_cut import _strip_along_the_cut

    widget, ui = panel["widget"], panel["ui"]
    model = _load(panel, wall, tmp_path / "strip.vtu", {TAG_ARRAY: _strip_along_the_cut(wall)})
    ui.tagModelSelector.setCurrentNode(model)
    ui.channelLayersLineEdit.text = "0.1,0.9"
    ui.channelOutputDirLineEdit.currentPath = str(tmp_path / "channels")
    harness.click_to_end(widget, ui.findChannelsButton)
    text = ui.statusLabel.text
    assert "2 channel(s)" in text and "; 2 near the mesh's open cut (may be an artefact of the mesh's open base" in text, text
    record = json.loads((tmp_path / "channels" / "channels.json").read_text(encoding="utf-8"))
    assert record["n_near_open_cut"] == 2 and all(row["near_open_cut"] for row in record["channels"])
    table = model.GetNodeReference("CardioScarChannelTable")
    columns = [table.GetColumnName(k) for k in range(table.GetNumberOfColumns())]
    assert table.GetCellText(0, columns.index("near_open_cut")) == "true"
