"""Break-it review of the sessions after ec0c1af (the Logic's warnings in its parameters' names, a
whole-float ``format_version``, one field's probability bands): the defects it found, each through
the face a user meets it on. `Documentation/bad-input.md` has the rows."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom  # noqa: E402
from test_bad_inputs_round26 import halves  # noqa: E402,F401 (the phantom whole, with its AHA points)
from test_slicer_aha import _markups  # noqa: E402


def test_the_logics_failed_fit_warning_names_its_preset_option(tmp_path, caplog):
    """A Logic run that fits nothing (two epochs of the documented preset) warned in the console
    "the fast preset (--preset fast, ...)": the advice was a value filled into the record, which the
    Logic's rewording leaves as it is, so only the record's own '--seed'-like words were renamed.
    It now names ``options.preset``, the field the caller sets."""
    phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=3))
    paths = write_phantom(phantom, tmp_path)
    context = csl.create_scene()
    volume = csl.load_volume(context.scene, paths["image"])
    model = csl.load_model(context.scene, paths["mesh"])
    options = csl.ReconstructionOptions(preset="documented", max_epochs=2, half_thickness=phantom.slice_half_thickness_mm,
                                        seed=7, num_threads=1, slice_indices="0,1,2,3")
    caplog.set_level(logging.WARNING)
    csl.CardioScarLogic(context.scene, context.color_logic).train_and_apply(volume, model, options)
    said = [record.getMessage() for record in caplog.records if record.name == "cardioscar.fit.training"]
    assert said and "options.preset fast" in said[-1] and "--" not in said[-1], said


def test_the_logic_words_a_slice_normal_across_the_lv_in_its_parameters(halves, tmp_path, caplog):
    """``aha_segments`` given a long-axis view as ``inputs.slice_normal_volume`` warned in the console
    "give the short-axis stack, or point 1 of inputs.apex_base_markups X,Y,Z point 2 of
    inputs.apex_base_markups X,Y,Z": the command line's two options with coordinates renamed one by
    one, which round 26 mended in the AHA's refusals but not in this warning. It now names the two
    inputs the caller can give; the command line's words are unchanged."""
    options = halves["options"]
    axis = np.asarray(options.base) - np.asarray(options.apex)
    across = np.cross(axis / np.linalg.norm(axis), [1.0, 0.0, 0.0])
    across /= np.linalg.norm(across)
    third = np.cross(across, axis / np.linalg.norm(axis))
    view = sitk.Image(8, 8, 3, sitk.sitkFloat32)  # a stack whose normal lies across the LV
    view.SetDirection(tuple(np.column_stack([axis / np.linalg.norm(axis), third, across]).ravel()))
    sitk.WriteImage(view, str(tmp_path / "long_axis_view.nii.gz"))
    context = csl.create_scene()
    node = csl.load_model(context.scene, halves["whole"], name="whole")
    volume = csl.load_volume(context.scene, tmp_path / "long_axis_view.nii.gz")
    caplog.set_level(logging.WARNING)
    csl.CardioScarLogic.aha_segments(node, csl.AhaInputs(rv_markups=_markups(context.scene, [options.rv_point]),
                                                         slice_normal_volume=volume))
    said = [record.getMessage() for record in caplog.records if "a long-axis view?" in record.getMessage()]
    assert len(said) == 1 and said[0].endswith(
        "give a short-axis volume as inputs.slice_normal_volume, or inputs.apex_base_markups (a markups node: the "
        "apex, then the base centre)"), said


def test_a_huge_float_format_version_is_said_as_the_file_holds_it(tmp_path):
    """A training ``.npz`` whose ``format_version`` is 1e300 (a damaged or hand-edited file) was
    refused with the int the float equals, 301 digits in the one line; it is said as written."""
    from cardioscar.errors import CardioScarError
    from cardioscar.logic import load_preprocessing_result
    from test_bad_inputs_round22 import _reference_tool_rows

    rows = _reference_tool_rows(n_nodes=50)
    rows.update(group_ids=np.arange(50), group_sizes=np.ones(50, dtype=np.int64))
    np.savez(tmp_path / "edited.npz", **rows, format_version=np.float64(1e300))
    with pytest.raises(CardioScarError) as refused:
        load_preprocessing_result(tmp_path / "edited.npz")
    assert "has format_version 1e+300, newer than" in str(refused.value) and len(str(refused.value)) < 300, \
        refused.value


def test_a_cohort_report_written_before_rows_had_classes_reads_as_bands(tmp_path):
    """A patient's ``report.json`` from before the cohort's rows had ``classes`` (every row then one
    field cut at threshold and core_threshold; PIPELINE_VERSION unchanged since, so the patient is
    skipped as up to date on a rerun) kept its bands in ``border_percent``/``core_percent``: the
    summary read them as border-zone and core tissue, the mislabel the band columns mend for newer
    reports. They go in the band columns, ``classes`` bands; a failed row is left as it was."""
    import csv

    from cardioscar.cohort.summary import SUMMARY_CSV, write_summary

    oldest = {"id": "P0", "status": "skipped", "scar_percent": 5.0, "border_percent": 1.0, "core_percent": 4.0}
    failed = {"id": "P1", "status": "failed", "error": "no mesh"}
    write_summary(tmp_path, [oldest, failed])
    with open(tmp_path / SUMMARY_CSV, newline="") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    assert (rows["P0"]["border_percent"], rows["P0"]["core_percent"]) == ("", ""), rows["P0"]
    assert (rows["P0"]["band_percent"], rows["P0"]["top_band_percent"], rows["P0"]["classes"]) == ("1", "4", "bands")
    assert rows["P1"]["classes"] == rows["P1"]["band_percent"] == "", rows["P1"]


def test_the_logics_uncertain_axis_and_channel_summary_name_its_inputs(tmp_path, caplog):
    """Two more records whose options were values filled in, so the Logic's console kept the command
    line's words: the AHA's uncertain-axis advice ("give --slice-normal-from the short-axis image, or
    --apex X,Y,Z --base X,Y,Z", the phrase the Logic words for its refusals) and the channel search's
    summary ("N shorter than --min-length dropped", "or lower --core"). The first through the Logic's
    own decorator around the library's shape axis (a thick washer, as test_aha_shape_axis), the second
    through ``find_model_channels`` with a minimum length no channel reaches."""
    from CardioScarLogic.channels import find_model_channels
    from CardioScarLogic.wording import AHA_NAMES, LOGIC_AHA_ADVICE, speaks_logic_words
    from cardioscar.aha.segments import axis_from_shape
    from cardioscar.simulation.channels import ChannelOptions
    from cardioscar.io.meshio import Mesh, write_mesh
    from test_aha_shape_axis import TILT, _tube
    from test_channels import Wall

    thick = _tube(radius=30.0, wall=25.0, length=20.0, tilt=TILT)
    caplog.set_level(logging.INFO)
    speaks_logic_words(AHA_NAMES, LOGIC_AHA_ADVICE)(axis_from_shape)(thick, np.ones(len(thick)))
    said = [record.getMessage() for record in caplog.records if "is uncertain" in record.getMessage()]
    assert len(said) == 1 and said[0].endswith("give inputs.slice_normal_volume (the short-axis volume), or "
                                               "inputs.apex_base_markups (a markups node: the apex, then the base "
                                               "centre)"), said
    caplog.clear()
    wall = Wall(6000)  # test_channels' wall: one corridor at 0.6 through a core at 0.9, on one field
    write_mesh(Mesh(dataset=wall.grid, space="LPS", path=None), tmp_path / "pred.vtu",
               {"scar_probability": np.choose(wall.tags() - 1, [0.1, 0.6, 0.9])})
    context = csl.create_scene()
    node = csl.load_model(context.scene, tmp_path / "pred.vtu", name="pred")
    find_model_channels(node, ChannelOptions(layers=(0.1,), min_length_mm=500.0), scar_field="scar_probability",
                        output_dir=tmp_path / "channels")
    said = [record.getMessage() for record in caplog.records if "dropped" in record.getMessage()]
    assert len(said) == 1 and "shorter than options.min_length_mm dropped" in said[0] and "--" not in said[0], said
