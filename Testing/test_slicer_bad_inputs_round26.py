"""Round 26 of the bad-input review in the Slicer Logic and panel, on a real MRML scene (slicer-core)
and the Qt stand-in of Testing/slicer_widget_harness.py, the analyses in the real worker process.
`Documentation/bad-input.md` has the rows (`Testing/test_bad_inputs_round26.py` for the command line,
the API and the cohort)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.channels import find_model_channels  # noqa: E402
from CardioScarLogic.wording import library_warnings  # noqa: E402
from cardioscar.simulation.channels import ChannelOptions  # noqa: E402
from test_bad_inputs_round26 import halves  # noqa: E402,F401 (the phantom whole and in two halves)
from test_slicer_aha import _markups  # noqa: E402
from test_slicer_panel import LATEST, case, harness, panel, phantom  # noqa: E402,F401 - the panel fixtures

#: What the panel's log and the Logic's warnings say of the halves, the gap's clause aside.
APART = "The model 'halves' falls apart: "


def test_the_logic_warns_of_an_lv_in_two_halves_in_aha_and_channels(halves):
    """The Logic's *AHA* (``aha_segments``) and channel search (``find_model_channels``) of a model in
    two halves no element joins ran without a word; each now warns, the AHA naming the model as its
    other messages do (the whole phantom is warned about by no face: the command line's test)."""
    context = csl.create_scene()
    node = csl.load_model(context.scene, halves["halves"], name="halves")
    rv = _markups(context.scene, [halves["options"].rv_point, halves["options"].rv_inferior_point])
    with library_warnings() as heard:
        csl.CardioScarLogic.aha_segments(node, csl.AhaInputs(rv_markups=rv))
        find_model_channels(node, ChannelOptions(layers=(0.5,)), scar_field="scar_probability", border_zone=0.5,
                            core=0.8)
    said = [message for message in heard if "falls apart" in message]
    assert len(said) == 2 and said[0].startswith(APART) and "the AHA analysis reads their cut faces" in said[0] \
        and said[1].startswith("the mesh falls apart: ") and "the channel search finds no path" in said[1], said


def test_the_logic_names_the_apex_and_the_base_point_apart(halves):
    """The Logic's AHA advice named both axis points as one input, "inputs.apex_base_markups and
    inputs.apex_base_markups are 3.0 mm apart"; each is now its point of that list."""
    import pytest

    from cardioscar.errors import CardioScarError

    context = csl.create_scene()
    node = csl.load_model(context.scene, halves["whole"], name="whole")
    options = halves["options"]
    rv = _markups(context.scene, [options.rv_point])
    close = _markups(context.scene, [options.apex, options.apex + [3.0, 0.0, 0.0]], "apex and base")
    with pytest.raises(CardioScarError, match=r"^no LV axis derivable: point 1 of inputs\.apex_base_markups and "
                                              r"point 2 of inputs\.apex_base_markups are 3\.0 mm apart"):
        csl.CardioScarLogic.aha_segments(node, csl.AhaInputs(rv_markups=rv, apex_base_markups=close))


@LATEST
def test_the_panel_words_the_aha_in_its_lists_says_at_which_probability_it_counted_and_warns_of_halves(
        panel, halves, tmp_path):
    """*Compute AHA segments* with the *Apex and base* points swapped warned "are --apex and --base
    swapped?", options the panel has no box for; on a result whose ``scar_binary`` (apply's call at the
    Options' *Threshold*, 0.3 here) differs from the AHA's cut it advised "give 'Threshold' 0.3", a box
    already at 0.3 that the AHA never reads (it counts at 0.5); on a model in two halves it said nothing
    of them. Now the warnings name the list's points and say where the AHA's threshold is set, the
    status line says at which probability it counted, and the worker's piece warning is in the Log
    section, as *Find channels*'s is. One AHA run, in the real worker, for the first three."""
    from cardioscar.io.meshio import read_mesh, write_mesh

    widget, ui = panel["widget"], panel["ui"]
    mesh = read_mesh(halves["halves"])
    called = (mesh.point_array("scar_probability") >= 0.3).astype(float)
    write_mesh(mesh, tmp_path / "halves.vtk", {"scar_binary": called})
    node = csl.load_model(panel["scene"], tmp_path / "halves.vtk", name="halves")
    options = halves["options"]
    ui.ahaModelSelector.setCurrentNode(node)
    ui.ahaRvMarkupsSelector.setCurrentNode(_markups(panel["scene"], [options.rv_point]))
    ui.ahaApexBaseSelector.setCurrentNode(_markups(panel["scene"], [options.base, options.apex], "swapped"))
    harness.click_to_end(widget, ui.computeAhaButton)
    assert ui.statusLabel.text.startswith("AHA segments on 'halves' (scar where scar_probability >= 0.5; the AHA does "
                                          "not read 'Threshold'): aha_segment written"), ui.statusLabel.text
    assert node.GetMesh().GetPointData().GetArray("aha_segment") is not None
    warned = [line for line in ui.logTextEdit.toPlainText().splitlines() if line.startswith("Warning: ")]
    swapped = [line for line in warned if "swapped" in line]
    assert swapped == [
        "Warning: the LV is wider at the end of point 1 of 'Apex and base' than at that of point 2 of 'Apex and base' "
        "(the apex tapers): are point 1 of 'Apex and base' and point 2 of 'Apex and base' swapped? the basal segments "
        "would be cut at the apex; give the apex point as point 1 of 'Apex and base' and the centre of the base as "
        "point 2 of 'Apex and base' (an apical aneurysm can be wider: then ignore this)"], warned
    call = [line for line in warned if "scar_binary" in line]
    assert len(call) == 1 and call[0].endswith(
        "the panel's AHA counts scar at 0.5, not at 'Threshold': to count the scar apply called, segment the model "
        "from the Python console (CardioScarLogic.aha_segments with inputs.measure.threshold 0.3)"), call
    assert "--" not in " ".join(swapped + call).replace("cardioscar apply --threshold", "")
    apart = [line for line in warned if "falls apart" in line]
    assert len(apart) == 1 and apart[0].startswith(f"Warning: {APART}") and "AHA analysis" in apart[0], warned
    ui.tagModelSelector.setCurrentNode(node)
    ui.channelLayersLineEdit.text = "0.5"
    harness.click_to_end(widget, ui.findChannelsButton)
    assert ui.statusLabel.text.startswith("Channels on 'halves'"), ui.statusLabel.text
    apart = [line for line in ui.logTextEdit.toPlainText().splitlines() if "falls apart" in line]
    assert len(apart) == 2 and apart[1].startswith("Warning: the mesh falls apart: ") and \
        "the channel search finds no path across the gap" in apart[1], apart
