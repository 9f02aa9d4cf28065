"""Each face says only option names it has, checked over its main paths (not one message at a time).

The library's messages name the command line's options (``--min-length``); each face rewords them
(``CardioScar/CardioScarLogic/wording.py``). A message that slipped past the rewording names an option
its reader cannot give: a Slicer console user has no ``--`` option at all (the Logic's parameters are
``options.min_length_mm``, ``inputs.rv_markups``), and the batch script's user has only its own parser's
(``--channel-min-length``, where ``cardioscar channels`` says ``--min-length``). Here each face runs its
refusals, its warnings and its results on small real inputs, and every text its user sees is searched
for a ``--word`` outside a quoted command (``cardioscar export --core-mesh ...`` is to be typed as it is,
so it is left as written, as the rewording leaves it). What is searched:

- the Logic (real MRML, slicer-core): the one-line errors of its entry points, the warnings logged
  inside its calls, its results' summaries (the channel search's, the AHA's record);
- the batch script: its one-line errors, the warnings it writes and the lines it prints, run in this
  process (a handler on the root logger hears what its user's stderr would show) and, for the
  training route, as its user runs it (``test_batch_script``'s trained run).
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import vtk  # noqa: E402  (slicer-core's)

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.channels import find_model_channels  # noqa: E402
from CardioScarLogic.tissue import export_model_node, tag_model_node  # noqa: E402
from CardioScarLogic.wording import _IN_COMMAND, _OPTION, LIBRARY_LOGGERS  # noqa: E402
from cardioscar.aha import AhaOptions  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.io.checks import BELOW_MAX_LR, ONE_CYCLE_ADVICE, TRAINING_OPTION  # noqa: E402
from cardioscar.io.meshio import Mesh, write_mesh  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom  # noqa: E402
from cardioscar.simulation.channels import ChannelOptions  # noqa: E402
from conftest import _WarningRecords  # noqa: E402  (a handler's record of the warnings, as written)
from test_batch_script import _common, _load_script, _rv_insertions, case, trained  # noqa: E402,F401
from test_channels import Wall, _write  # noqa: E402  (the painted lattice)


def named_options(text: str) -> set[str]:
    """The ``--word`` tokens of ``text`` outside a quoted command: those a face rewords (the same
    patterns as :func:`CardioScarLogic.wording._renamed`)."""
    return {found.group(0) for found in _OPTION.finditer(text) if not _IN_COMMAND.search(text, 0, found.start())}


def texts_of(record) -> list[str]:
    """Every text in a result's record (dicts, lists, numbers and text)."""
    if isinstance(record, str):
        return [record]
    if isinstance(record, dict):
        return [text for value in record.values() for text in texts_of(value)]
    if isinstance(record, (list, tuple)):
        return [text for value in record for text in texts_of(value)]
    return []


@pytest.fixture
def heard_by_the_console():
    """The warnings the library and the Logic log, as Slicer's console writes them."""
    heard = _WarningRecords()
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    for logger in loggers:
        logger.addHandler(heard)
    yield heard.messages
    for logger in loggers:
        logger.removeHandler(heard)


# ------------------------------------------------------------------ the Slicer Logic


def _said(call) -> list[str]:
    """The error ``call`` raised (in the words the console shows), or its result's texts."""
    try:
        result = call()
    except CardioScarError as error:
        return [str(error)]
    summary = getattr(result, "summary", None)
    return texts_of(summary() if callable(summary) else summary)


@pytest.fixture(scope="module")
def aha_case(tmp_path_factory):
    phantom = make_phantom(PhantomConfig(target_nodes=6000, seed=0, territories=("LAD",)))
    path = tmp_path_factory.mktemp("faces") / "heart.vtk"
    write_mesh(Mesh(dataset=phantom.mesh, space="LPS"), path, {"scar_probability": phantom.truth})
    geometry = phantom.geometry
    insertions = [geometry.to_lps(geometry.wall_to_local(np.array([0.5]), np.array([1.2]),
                                                         np.array([math.radians(a)])))[0] for a in (30.0, 150.0)]
    return path, insertions


#: The library's words for a training option (its ``TrainingConfig`` field, its schedule's name), which
#: each face words as its user gives the option: the command line's ``--max-epochs``, the Logic's
#: ``max_epochs`` or ``extra_training['base_lr']``.
LIBRARY_TRAINING_WORDS = (TRAINING_OPTION, BELOW_MAX_LR, ONE_CYCLE_ADVICE)


def _changed(options, **values):
    """``options`` with ``values`` set after it was made (as a console user may), not checked then."""
    for name, value in values.items():
        setattr(options, name, value)
    return options


def _markups(scene, points_lps):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "RV insertion")
    for point in points_lps:
        node.AddControlPointWorld(vtk.vtkVector3d(-point[0], -point[1], point[2]))
    return node


def test_the_logic_names_no_command_line_option(aha_case, case, tmp_path, heard_by_the_console):
    """Refusals, warnings and summaries of the Logic's reconstruction (a short training on the batch
    script's phantom), channel search, AHA, tagging and export: none names a ``--`` option, which the
    Python console has none of, nor a training option in the library's words ("training option
    max_epochs"): the console gives it as the options' field or a key of their ``extra_training``."""
    context = csl.create_scene()
    scene = context.scene
    logic = csl.CardioScarLogic(scene, context.color_logic)
    volume = csl.load_volume(scene, case["paths"]["image"])
    phantom = csl.load_model(scene, case["paths"]["mesh"], "phantom")
    slab = {"half_thickness": case["half"], "preset": "fast", "max_epochs": 2, "num_threads": 1, "threshold": 0.5}
    wall = Wall(6000)
    _write(wall, tmp_path / "tagged.vtk", {"tissue_tag": wall.tags()})
    tagged = csl.load_model(scene, tmp_path / "tagged.vtk")
    _write(wall, tmp_path / "scar.vtk", {"scar_probability": np.choose(wall.tags() - 1, [0.1, 0.6, 0.9])},
           tag_note=False)
    probability = csl.load_model(scene, tmp_path / "scar.vtk")
    heart = csl.load_model(scene, aha_case[0])
    far, swapped = _markups(scene, [np.array([500.0, 500.0, 500.0])]), _markups(scene, aha_case[1][::-1])
    options = csl.ReconstructionOptions
    calls = {
        "a scar target core without a rule": lambda: options(scar_target="core"),
        "expert labels without a rule": lambda: options(expert_scar_labels="3,4"),
        "dark-blood LGE without a rule": lambda: options(dark_blood_lge=True),
        "base_lr above the preset's max_lr": lambda: options(extra_training={"base_lr": 0.05}),
        "max_epochs 0": lambda: options(max_epochs=0),
        "dropout_rate 1.5": lambda: options(extra_training={"dropout_rate": 1.5}),
        "a convergence tolerance on the cyclical schedule": lambda: options(
            extra_training={"convergence_tolerance": 0.02}),
        "max_epochs 0 set after making": lambda: logic.train_and_apply(volume, phantom,
                                                                       _changed(options(**slab), max_epochs=0)),
        "a threshold above 1": lambda: options(threshold=1.5),
        "a slice out of range": lambda: logic.train_and_apply(volume, phantom, options(slice_indices="0,99", **slab)),
        "scar labels on an LGE": lambda: logic.train_and_apply(volume, phantom, options(scar_labels="3", **slab)),
        "a short training": lambda: logic.train_and_apply(volume, phantom, options(slice_indices="0,1,2,3", **slab)),
        "channel layer width 0": lambda: find_model_channels(tagged, ChannelOptions(layer_width=0.0)),
        "channel min length -1": lambda: find_model_channels(tagged, ChannelOptions(min_length_mm=-1.0)),
        "channel max width 100": lambda: find_model_channels(tagged, ChannelOptions(max_width_mm=100.0)),
        "channel layers 1.5": lambda: find_model_channels(tagged, ChannelOptions(layers=(1.5,))),
        "tags read with thresholds": lambda: find_model_channels(tagged, border_zone=0.5, core=0.8),
        "tags other than the noted": lambda: find_model_channels(tagged, tag_values=(4, 5, 6)),
        "channels dropped as short": lambda: find_model_channels(tagged, ChannelOptions(layers=(0.1,),
                                                                                        min_length_mm=60.0),
                                                                 output_dir=tmp_path / "short"),
        "a min length below reach": lambda: find_model_channels(tagged, ChannelOptions(layers=(0.1,),
                                                                                       min_length_mm=1.0)),
        "no core in the layers": lambda: find_model_channels(probability, ChannelOptions(layers=(0.5,)),
                                                             scar_field="scar_probability", border_zone=0.5,
                                                             core=0.95),
        "one field's bands": lambda: find_model_channels(probability, ChannelOptions(layers=(0.1,)),
                                                         scar_field="scar_probability", border_zone=0.5, core=0.8,
                                                         output_dir=tmp_path / "bands"),
        "border zone above the core": lambda: tag_model_node(probability, 0.9, 0.5),
        "an RV point off the wall": lambda: csl.CardioScarLogic.aha_segments(heart, csl.AhaInputs(rv_markups=far)),
        "RV points swapped": lambda: csl.CardioScarLogic.aha_segments(heart, csl.AhaInputs(rv_markups=swapped)),
        "an AHA threshold above 1": lambda: csl.CardioScarLogic.aha_segments(
            heart, csl.AhaInputs(rv_markups=swapped, measure=AhaOptions(threshold=1.5))),
        "an LV mask the model lacks": lambda: csl.CardioScarLogic.check_aha_inputs(
            heart, csl.AhaInputs(rv_markups=swapped, measure=AhaOptions(lv_mask_field="lv"))),
    }
    said = {name: _said(call) for name, call in calls.items()}
    tags = tag_model_node(probability, 0.5, 0.8)
    said["an export prefix naming a file"] = _said(lambda: export_model_node(probability, tags, tmp_path / "h.pts"))
    said["an export without fibres"] = _said(lambda: export_model_node(probability, tags, tmp_path / "h"))
    said["a model file missing"] = _said(lambda: logic.apply_model(tmp_path / "none.pth", phantom, options()))
    said["fibres of another length"] = _said(lambda: export_model_node(probability, tags, tmp_path / "h",
                                                                       fibres=np.ones((3, 3))))
    tag_model_node(heart, 0.5, 0.8)  # one field's bands, which the AHA counts as bands and says so
    said["the AHA of one field's tags"] = _said(lambda: csl.CardioScarLogic.aha_segments(heart, csl.AhaInputs(
        rv_markups=_markups(scene, aha_case[1]), measure=AhaOptions(tags_field="tissue_tag", transmurality="off"))))
    said["warnings"] = heard_by_the_console
    for folder in ("short", "bands"):  # channels.json, which every face writes alike
        said[f"channels.json of {folder}"] = texts_of(json.loads((tmp_path / folder / "channels.json").read_text()))
    assert "bands_note" in json.loads((tmp_path / "bands" / "channels.json").read_text())  # its advice was read
    assert "options.min_length_mm" in " ".join(said["channels dropped as short"])  # each path ran (not refused)
    assert any("mirror" in message for message in heard_by_the_console)
    assert any("Mesh nodes" in text for text in said["a short training"])
    # a training option as the console gives it: the options' field, or a key of extra_training
    assert said["max_epochs 0"] == ["max_epochs must be a positive integer, got 0"]
    assert said["max_epochs 0 set after making"] == ["options.max_epochs must be a positive integer, got 0"]
    assert said["base_lr above the preset's max_lr"] == ["extra_training['base_lr'] (0.05) must be <= "
                                                         "extra_training['max_lr'] (0.01)"]
    assert "preset='fast'" in said["a convergence tolerance on the cyclical schedule"][0]
    leaks = {name: sorted({option for text in texts for option in named_options(text)}
                          | {words for text in texts for words in LIBRARY_TRAINING_WORDS if words in text})
             for name, texts in said.items()}
    leaks = {name: (options, said[name]) for name, options in leaks.items() if options}
    assert not leaks, leaks


# ------------------------------------------------------------------ the batch script


@pytest.fixture(scope="module")
def script():
    return _load_script()


@pytest.fixture(scope="module")
def own_options(script) -> set[str]:
    """The options the batch script's parser takes (its aliases too)."""
    return {option for action in script.build_parser()._actions for option in action.option_strings}


@pytest.fixture
def heard_by_the_script_user():
    """The warnings the script writes through the root logger's handlers (its user's stderr)."""
    heard = _WarningRecords()
    logging.getLogger().addHandler(heard)
    yield heard.messages
    logging.getLogger().removeHandler(heard)


def _foreign(texts: list[str], own: set[str]) -> list[tuple[str, str]]:
    return [(option, text) for text in texts for option in sorted(named_options(text) - own)]


def test_the_batch_script_names_only_its_own_options(script, own_options, case, trained, tmp_path, capsys,
                                                     heard_by_the_script_user):
    """Its refusals before any work (of its own and of the library's checks it runs first), and its
    runs on a saved model through tagging, export, the channel search and the AHA (warnings and the
    lines it prints): each option named is one its parser takes."""
    paths, model = case["paths"], str(case["dir"] / "model.pth")
    applied = ["--model", model, "--mesh", str(paths["mesh"]), "--output", str(tmp_path / "o.vtu")]
    trains = ["--volume", str(paths["image"]), "--mesh", str(paths["mesh"]), "--output", str(tmp_path / "t.vtk"),
              "--slice-thickness-padding", str(case["half"]), "--max-epochs", "2"]
    anterior, inferior = _rv_insertions()[1]
    refused = [
        trains + ["--base-lr", "0.05"], trains + ["--convergence-tolerance", "0.02"], trains + ["--threads", "0"],
        trains + ["--dropout-rate", "1.5"], trains + ["--slices", "1,99"], trains + ["--scar-labels", "x"],
        trains + ["--scar-rule", "psi", "--intensity-offset", "2048"], trains + ["--inference-mc-samples", "0"],
        trains + ["--scar-target", "core"], trains + ["--expert-scar-labels", "3,4"],
        applied + ["--border-zone", "0.9", "--core", "0.5"], applied + ["--channels-dir", str(tmp_path / "c"),
                                                                         "--channel-layer-width", "0"],
        applied + ["--channels-dir", str(tmp_path / "c"), "--channel-max-width", "100"],
        applied + ["--aha-dir", str(tmp_path / "a"), "--rv-point", "500,500,500"],
        applied + ["--aha-dir", str(tmp_path / "a"), "--rv-point", anterior, "--lv-mask", "lv"],
        applied + ["--export-opencarp", str(tmp_path / "h.pts")],
    ]
    runs = [
        applied + ["--border-zone", "0.2", "--core", "0.3", "--channels-dir", str(tmp_path / "short"),
                   "--channel-layers", "0.1,0.5", "--channel-min-length", "1", "--inference-mc-samples", "2"],
        applied + ["--border-zone", "0.2", "--core", "0.3", "--channels-dir", str(tmp_path / "long"),
                   "--channel-layers", "0.5", "--channel-min-length", "500", "--inference-mc-samples", "2"],
        applied + ["--border-zone", "0.2", "--core", "0.9999", "--channels-dir", str(tmp_path / "none"),
                   "--channel-layers", "0.5", "--inference-mc-samples", "2"],
        applied + ["--aha-dir", str(tmp_path / "aha"), "--rv-point", inferior, "--rv-inferior-point", anterior,
                   "--aha-threshold", "0.3", "--inference-mc-samples", "2", "--threshold", "0.5"],
        applied + ["--export-opencarp", str(tmp_path / "heart"), "--fibre-rule", "--inference-mc-samples", "2"],
    ]
    said, statuses = [], []
    for argv in refused + runs:
        statuses.append(script.run(argv))
        printed = capsys.readouterr()
        said += printed.err.splitlines() + printed.out.splitlines()
    assert statuses == [2] * len(refused) + [0] * len(runs), list(zip(statuses, refused + runs))
    said += heard_by_the_script_user + trained.stderr.splitlines() + trained.stdout.splitlines()
    for folder in ("short", "long", "none"):  # its channels.json (dropped as short, one field's bands)
        said += texts_of(json.loads((tmp_path / folder / "channels.json").read_text()))
    assert any("shorter than --channel-min-length dropped" in line for line in said)  # the runs' lines are here
    assert any("--base-lr" in line for line in said)
    assert not [line for line in said if any(words in line for words in LIBRARY_TRAINING_WORDS)]  # the API's
    assert not _foreign(said, own_options), _foreign(said, own_options)


def test_named_options_leaves_a_quoted_command_out():
    """The check reads what a face rewords: a command to type keeps the command line's options."""
    assert named_options("give --tags 1,2,3 (run `cardioscar export --border-zone T --core C`)") == {"--tags"}


def _kept_run_histories() -> list[dict]:
    """A history for each warning :func:`cardioscar.fit.training._warn_about_the_kept_run` gives (a
    failed fit, a diverged run, a stalled fit, a missed scar patch, a missed faint patch): forcing each
    in a real training takes minutes and chance, so the histories are built; the warnings are the real ones."""
    from cardioscar.fit import training

    healthy = {"best_loss": 0.01, "diverged": False, "ignored_share": 0.0, "ignored_groups": 0, "best_epoch": 80,
               "epochs_run": 130, "diverged_epoch": 130, "late_rise": 0.2}
    patch = {"ignored_share": training.SAID_IGNORED_FRACTION, "ignored_groups": training.MISSED_SCAR_GROUPS}
    return [{**healthy, "best_loss": 0.9}, {**healthy, "diverged": True},
            {**healthy, "ignored_share": 2 * training.STALLED_FIT_FRACTION, "ignored_groups": 40},
            {**healthy, **patch, "ignored_scar_groups": training.MISSED_SCAR_GROUPS},
            {**healthy, "faint_scar_groups": training.MISSED_SCAR_GROUPS,
             "faint_scar_share": training.SAID_IGNORED_FRACTION}]


@pytest.mark.parametrize("retried", (False, True))
def test_a_kept_runs_warning_in_the_logic_names_no_command_line_option(retried, heard_by_the_console):
    """What the Logic's console hears when the kept run failed, diverged, stalled or missed a scar
    patch names the console's own options ("a lower options.extra_training['max_lr']"), not the command
    line's: the diverged run's advice said "--max-lr", which the Logic had no word for."""
    from CardioScarLogic.wording import RECONSTRUCTION_NAMES, RECONSTRUCTION_TRAINING_ADVICE, speaks_logic_words
    from cardioscar.fit import training

    @speaks_logic_words(RECONSTRUCTION_NAMES, RECONSTRUCTION_TRAINING_ADVICE)
    def warn(history: dict) -> bool:  # as inside train_and_apply
        return training._warn_about_the_kept_run(history, retried, failed_level=0.5, variance=1.0)

    histories = _kept_run_histories()
    assert all(warn(history) for history in histories)
    assert len(heard_by_the_console) == len(histories)
    for message in heard_by_the_console:
        assert not named_options(message), message
    assert "options.extra_training['max_lr']" in heard_by_the_console[1]
