"""Round 27 of the bad-input review in the Slicer Logic and panel, on a real MRML scene (slicer-core)
and the Qt stand-in of Testing/slicer_widget_harness.py. `Documentation/bad-input.md` has the rows
(`Testing/test_bad_inputs_round27.py` for the command line, the API, the batch script and the cohort)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from cardioscar.phantoms.phantom import raw_lge_acquisition  # noqa: E402
from test_bad_inputs_round26 import halves  # noqa: E402,F401 (the phantom whole and in two halves)
from test_slicer_aha import _markups  # noqa: E402
from test_slicer_panel import LATEST, case, harness, panel, phantom  # noqa: E402,F401 - the panel fixtures

#: The library's scar-free warning's advice (:func:`cardioscar.prepare.targets.warn_scar_free`), as
#: each face words it.
SCAR_FREE = "if this patient has scar, give the scar labels of this label map ({})"


@pytest.fixture(scope="module")
def scar_free_labels(tmp_path_factory, phantom):
    """The panel phantom's label map (1 blood pool, 2 myocardium): no pixel of scar label 3."""
    path = tmp_path_factory.mktemp("round27") / "labels.nii.gz"
    sitk.WriteImage(raw_lge_acquisition(phantom)[1], str(path))
    return path


def test_the_logic_logs_its_warnings_in_its_parameter_names(halves, scar_free_labels, phantom, caplog):
    """From the Python console (or Slicer's batch mode) the Logic raised its errors in its parameters'
    names but logged its warnings in the command line's: the AHA's "are --apex and --base swapped?",
    a scar-free label map's "give the scar labels of this label map (--scar-labels)", options its
    caller never gives. Each now names the Logic's parameter, outside a call the library's words stay."""
    context = csl.create_scene()
    node = csl.load_model(context.scene, halves["whole"], name="whole")
    options = halves["options"]
    rv = _markups(context.scene, [options.rv_point])
    swapped = _markups(context.scene, [options.base, options.apex], "swapped")
    caplog.set_level(logging.WARNING)
    csl.CardioScarLogic.aha_segments(node, csl.AhaInputs(rv_markups=rv, apex_base_markups=swapped))
    said = [record.getMessage() for record in caplog.records if "swapped?" in record.getMessage()]
    assert len(said) == 1 and "are point 1 of inputs.apex_base_markups and point 2 of inputs.apex_base_markups " \
        "swapped?" in said[0] and "--" not in said[0], said
    caplog.clear()
    labels = csl.load_volume(context.scene, scar_free_labels, labelmap=True)
    mesh = csl.load_model(context.scene, halves["whole"], name="mesh")
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    logic.prepare_training(labels, mesh, csl.ReconstructionOptions(
        slice_axis="y", slice_indices="2,5,8", scar_labels="3", myocardium_labels="2,3",
        half_thickness=phantom.slice_half_thickness_mm))
    assert SCAR_FREE.format("options.scar_labels") in caplog.text, caplog.text
    assert "options.slice_indices" in caplog.text and "--" not in caplog.text, caplog.text
    caplog.clear()
    logging.getLogger("cardioscar.prepare.targets").warning("give --scar-labels")  # no Logic call: as written
    assert caplog.records[0].getMessage() == "give --scar-labels"


@LATEST
def test_the_panel_still_names_its_boxes_in_the_logics_warnings(panel, scar_free_labels):
    """The panel reads the same warnings (its training start prepares the rows on the main thread, a
    Logic call that now words them in its parameters' names) and shows them in its boxes' labels:
    'Scar labels', not ``options.scar_labels``."""
    widget, ui = panel["widget"], panel["ui"]
    labels = csl.load_volume(panel["scene"], scar_free_labels, labelmap=True)
    ui.inputSelector.setCurrentNode(labels)
    ui.sliceAxisComboBox.choose("y")
    ui.sliceIndicesLineEdit.text = "2,5,8"
    ui.scarLabelsLineEdit.text = "3"
    ui.myocardiumLabelsLineEdit.text = "2,3"
    ui.applyButton.click()
    assert widget._run is not None, ui.statusLabel.text + ui.logTextEdit.toPlainText()
    ui.applyButton.click()  # Stop: the warnings came before the worker started
    warned = [line for line in ui.logTextEdit.toPlainText().splitlines() if line.startswith("Warning: ")]
    assert any(line.endswith(SCAR_FREE.format("'Scar labels'")) for line in warned), warned
    assert not any("options." in line or "--" in line for line in warned), warned
