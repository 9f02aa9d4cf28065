"""Every reconstruction option on every face (issue 18, item 1: "the same in the API, the Slicer
Logic, the panel and the batch script").

``TABLE`` is the audit: for each option that changes the reconstructed field, its name on each face
(the ``cardioscar`` command line, the Python API, the Slicer Logic's ``ReconstructionOptions``,
the Qt panel's parameter node and ``.ui``, the batch script, the cohort manifest), or why that face
has none. Each name is checked against the real code, and a value given on the face is followed
to where the reconstruction reads it:

- command line: the parsers of ``cardioscar.cli.build_parser`` (the value parses to the option's
  ``dest``);
- Python API: the fields of ``PreprocessingRequest`` / ``TrainingConfig``, the parameters of
  ``train_scar_model`` / ``apply_scar_model``;
- Slicer Logic: ``ReconstructionOptions`` fields (a value reaches ``training_config()`` where it
  is a training option) and ``CardioScarLogic.train_and_apply``'s parameters (the mask node);
- panel: a parameter-node field, a widget bound to it in ``CardioScar.ui`` (parsed as XML) and the
  keyword the panel's code hands its value to (parsed from ``CardioScar.py``; the panel itself
  cannot run here without Qt: ``Testing/test_slicer_panel.py`` runs it on a stand-in for Qt);
- batch script: its own argparse parser; the parsed value reaches the ``ReconstructionOptions``
  the script builds (or, for a mask, the argument it loads into a node);
- cohort manifest: a column of ``cardioscar.cohort.manifest``; a value in a real manifest file
  reaches the patient's prepare request or training configuration.

The conducting-channel search's options (``cardioscar channels``; ``CHANNEL_READS``) are followed to
the ``ChannelOptions`` or the tissue keyword the search reads: on the API and the Logic they are
``ChannelOptions`` fields and parameters of ``run_channels`` / ``channels.find_model_channels``; the
batch script's thresholds are its tagging's, whose tags the search reads.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402  (needs slicer-core)

from cardioscar import cli  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.cohort import manifest as cohort_manifest  # noqa: E402
from cardioscar.fit.training import TrainingConfig  # noqa: E402
from cardioscar.lge.options import scar_rule_request  # noqa: E402
from cardioscar import logic as api  # noqa: E402
from cardioscar.shape_prior import field as prior_field  # noqa: E402
from cardioscar.simulation import channels as channel_search  # noqa: E402
from cardioscar.simulation.channels_cli import search_arguments  # noqa: E402
from CardioScarLogic import channels as logic_channels  # noqa: E402

FACES = ("cli", "api", "logic", "panel", "batch", "cohort")


@dataclasses.dataclass(frozen=True)
class Absent:
    """A face without the option, and why (a design choice, not a gap)."""

    why: str


@dataclasses.dataclass(frozen=True)
class Option:
    """One option's names. ``value`` is given on every face (its text form on the command line,
    in the batch script and in the manifest) and must arrive as ``expected``."""

    cli: Any  # "VERB --flag" (several separated by "; ")
    api: Any  # "Class.field" or "function(parameter)"
    logic: Any  # "ReconstructionOptions.field" or "CardioScarLogic.method(parameter)"
    panel: Any  # (parameter, keyword the panel hands it to)
    batch: Any  # "--flag"
    cohort: Any  # "column"
    value: str = ""
    expected: Any = None


NO_SEGMENTATION = Absent("a Slicer segmentation is a node; files give the myocardium as a label image "
                         "(--myocardium-mask FILE --myocardium-labels)")

NO_CHANNEL_OPTIONS = Absent("a row's channel search takes cardioscar channels' defaults (ChannelOptions())")

TABLE: dict[str, Option] = {
    "myocardium labels": Option(
        "prepare --myocardium-labels", "PreprocessingRequest.myocardium_labels",
        "ReconstructionOptions.myocardium_labels",
        ("myocardiumLabels", "myocardium_labels"), "--myocardium-labels", "myocardium_labels", "2,3,4", [2, 3, 4]),
    "myocardium mask": Option(
        "prepare --myocardium-mask", "PreprocessingRequest.myocardium_mask",
        "CardioScarLogic.train_and_apply(myocardium_mask)",
        ("myocardiumMask", "myocardium_mask"), "--myocardium-mask", "myocardium_mask"),
    "myocardium segment": Option(
        NO_SEGMENTATION, NO_SEGMENTATION, "ReconstructionOptions.myocardium_segment",
        ("myocardiumSegment", "myocardium_segment"), "--myocardium-segment",
        Absent("the manifest's images are files: a label image with myocardium_labels"), "Myocardium", "Myocardium"),
    "scar labels": Option(
        "prepare --scar-labels", "PreprocessingRequest.scar_labels", "ReconstructionOptions.scar_labels",
        ("scarLabels", "scar_labels"), "--scar-labels", "scar_labels", "3,4", [3, 4]),
    "myocardium margin": Option(
        "prepare --myocardium-margin", "PreprocessingRequest.myocardium_margin_px",
        "ReconstructionOptions.myocardium_margin",
        ("myocardiumMargin", "myocardium_margin"), "--myocardium-margin", "myocardium_margin", "2", 2),
    "slice profile": Option(
        "prepare --slice-profile", "PreprocessingRequest.slice_profile", "ReconstructionOptions.slice_profile",
        ("sliceProfile", "slice_profile"), "--slice-profile", "slice_profile", "gaussian", "gaussian"),
    "shape prior": Option(
        "train --shape-prior", "TrainingConfig.shape_prior", "ReconstructionOptions.shape_prior",
        ("shapePrior", "shape_prior"), "--shape-prior", "shape_prior", "on", True),
    "convergence test": Option(
        "train --convergence-tolerance; fine-tune --convergence-tolerance", "TrainingConfig.convergence_tolerance",
        Absent("the preset's; ReconstructionOptions(extra_training={'convergence_tolerance': t}) overrides it "
               "from the Python console"),
        Absent("the preset's (a training detail, like the training loss's MC samples)"),
        "--convergence-tolerance", Absent("the preset's (a training detail)"), "0.02", 0.02),
    "preset": Option(
        "train --preset; fine-tune --preset", "TrainingConfig.fast", "ReconstructionOptions.preset",
        ("preset", "preset"), "--preset", "preset", "fast", "fast"),
    "seed": Option(
        "train --seed; fine-tune --seed; apply --seed", "TrainingConfig.seed; apply_scar_model(seed)",
        "ReconstructionOptions.seed", ("seed", "seed"), "--seed", "seed", "7", 7),
    "MC samples in the training loss": Option(
        "train --mc-samples; fine-tune --mc-samples", "TrainingConfig.mc_samples", "ReconstructionOptions.mc_samples",
        ("trainingMcSamples", "mc_samples"), "--mc-samples", "training_mc_samples", "5", 5),
    "MC samples of the prediction": Option(
        "apply --mc-samples", "apply_scar_model(mc_samples)", "ReconstructionOptions.inference_mc_samples",
        ("inferenceMcSamples", "inference_mc_samples"), "--inference-mc-samples", "mc_samples", "20", 20),
    "device (CPU or GPU)": Option(
        "train --cpu; fine-tune --cpu; apply --cpu", "train_scar_model(device); apply_scar_model(device)",
        "ReconstructionOptions.force_cpu", ("forceCpu", "force_cpu"), "--cpu",
        Absent("per cohort run, not per patient: cohort run --gpus-per-worker (CohortOptions.gpus_per_worker)")),
    "expert scar labels": Option(
        "prepare --expert-scar-labels", "ScarRuleRequest.expert_scar_labels", "ReconstructionOptions.expert_scar_labels",
        ("expertScarLabels", "expert_scar_labels"), "--expert-scar-labels", "expert_scar_labels", "3,4", [3, 4]),
    "expert core labels": Option(
        "prepare --expert-core-labels", "ScarRuleRequest.expert_core_labels", "ReconstructionOptions.expert_core_labels",
        ("expertCoreLabels", "expert_core_labels"), "--expert-core-labels", "expert_core_labels", "4", [4]),
    "scar rule": Option(
        "prepare --scar-rule", "PreprocessingRequest.scar_rule; ScarRuleRequest.rule", "ReconstructionOptions.scar_rule",
        ("scarRule", "scar_rule"), "--scar-rule", "scar_rule", "psi", "psi"),
    "scar-rule thresholds": Option(
        "prepare --scar-thresholds", "ScarRuleRequest.thresholds", "ReconstructionOptions.scar_thresholds",
        ("scarThresholds", "scar_thresholds"), "--scar-thresholds", "scar_thresholds", "0.3,0.6", (0.3, 0.6)),
    "scar-rule target (scar or core)": Option(
        "prepare --scar-target", "ScarRuleRequest.target", "ReconstructionOptions.scar_target",
        ("scarTarget", "scar_target"), "--scar-target",
        Absent("a row with scar_rule trains both fields, scar and core (prepare --scar-target scar, then core), "
               "and exports them tagged"), "core", "core"),
    "blood-pool mask": Option(
        "prepare --blood-pool-mask", "ScarRuleRequest.blood_pool_path", "CardioScarLogic.train_and_apply(blood_pool_node)",
        ("bloodPoolMask", "blood_pool_node"), "--blood-pool-mask", "blood_pool_mask", "lge.nii.gz", Path("lge.nii.gz")),
    "blood-pool labels": Option(
        "prepare --blood-pool-labels", "ScarRuleRequest.blood_pool_labels", "ReconstructionOptions.blood_pool_labels",
        ("bloodPoolLabels", "blood_pool_labels"), "--blood-pool-labels", "blood_pool_labels", "1", [1]),
    "remote mask": Option(
        "prepare --remote-mask", "ScarRuleRequest.remote_path", "CardioScarLogic.train_and_apply(remote_node)",
        ("remoteMask", "remote_node"), "--remote-mask", "remote_mask", "lge.nii.gz", Path("lge.nii.gz")),
    "intensity offset": Option(
        "prepare --intensity-offset", "ScarRuleRequest.intensity_offset", "ReconstructionOptions.intensity_offset",
        ("intensityOffset", "intensity_offset"), "--intensity-offset", "intensity_offset", "2048", 2048.0),
    "dark-blood LGE (skips the mask-fit check)": Option(
        "prepare --dark-blood-lge", "ScarRuleRequest.dark_blood_lge", "ReconstructionOptions.dark_blood_lge",
        ("darkBloodLge", "dark_blood_lge"), "--dark-blood-lge", "dark_blood_lge", "yes", True),
    # the conducting-channel search (cardioscar channels) on the tagged or predicted result
    "channel layers": Option(
        "channels --layers", "ChannelOptions.layers", "channels.find_model_channels(options)",
        ("channelLayers", "layers"), "--channel-layers", NO_CHANNEL_OPTIONS, "0.3,0.7", (0.3, 0.7)),
    "channel layer width": Option(
        "channels --layer-width", "ChannelOptions.layer_width", "channels.find_model_channels(options)",
        ("channelLayerWidth", "layer_width"), "--channel-layer-width", NO_CHANNEL_OPTIONS, "0.3", 0.3),
    "channel max width": Option(
        "channels --max-width", "ChannelOptions.max_width_mm", "channels.find_model_channels(options)",
        ("channelMaxWidth", "max_width_mm"), "--channel-max-width", NO_CHANNEL_OPTIONS, "6", 6.0),
    "channel min length": Option(
        "channels --min-length", "ChannelOptions.min_length_mm", "channels.find_model_channels(options)",
        ("channelMinLength", "min_length_mm"), "--channel-min-length", NO_CHANNEL_OPTIONS, "0", 0.0),
    "channel tag numbers": Option(
        "channels --tags", "run_channels(tag_values); channels_of_mesh(tag_values)",
        "channels.find_model_channels(tag_values)", ("tagNumbers", "tag_numbers"),
        Absent("the script's tagging writes tissue_tag 1,2,3 with its note, which the search reads"),
        Absent("the row's tags are the task's own (1,2,3), handed to the search"), "4,5,6", (4, 5, 6)),
    "channel border-zone threshold": Option(
        "channels --border-zone", "run_channels(border_zone); channels_of_mesh(border_zone)",
        "channels.find_model_channels(border_zone)", ("tagBorderZone", "border_zone"), "--border-zone",
        "threshold", "0.3", 0.3),
    "channel core threshold": Option(
        "channels --core", "run_channels(core); channels_of_mesh(core)", "channels.find_model_channels(core)",
        ("tagCore", "core"), "--core", "core_threshold", "0.9", 0.9),
}

#: The channel rows: where the search reads each (a ``ChannelOptions`` field, or a keyword of the
#: tissue: ``run_channels`` / ``find_model_channels``).
CHANNEL_READS = {"channel layers": ("options", "layers"), "channel layer width": ("options", "layer_width"),
                 "channel max width": ("options", "max_width_mm"),
                 "channel min length": ("options", "min_length_mm"),
                 "channel tag numbers": ("tissue", "tag_values"),
                 "channel border-zone threshold": ("tissue", "border_zone"),
                 "channel core threshold": ("tissue", "core")}

#: Options of a scar rule, and what they need beside them to be read (on the Logic, in the batch script, in
#: the cohort manifest, where the rule's myocardium mask is a file).
RULE_CONTEXT = {"expert scar labels": {"scar_rule": "nsd", "myocardium_labels": "2,3,4"},
                "expert core labels": {"scar_rule": "nsd", "myocardium_labels": "2,3,4", "expert_scar_labels": "3,4"},
                "scar rule": {}, "scar-rule thresholds": {"scar_rule": "psi"},
                "scar-rule target (scar or core)": {"scar_rule": "nsd"}, "blood-pool mask": {"scar_rule": "iir"},
                "blood-pool labels": {"scar_rule": "iir"}, "remote mask": {"scar_rule": "nsd"},
                "intensity offset": {"scar_rule": "fwhm"},  # fwhm reads it too; iir needs a blood pool
                "dark-blood LGE (skips the mask-fit check)": {"scar_rule": "nsd"}}

#: A scar rule's options (the command line's dest, the Logic's field and the manifest's column: one
#: name) -> the ScarRuleRequest field where the rule reads them, on every face.
RULE_REQUEST = {"scar_rule": "rule", "scar_thresholds": "thresholds", "scar_target": "target",
                "blood_pool_mask": "blood_pool_path", "blood_pool_labels": "blood_pool_labels",
                "remote_mask": "remote_path", "intensity_offset": "intensity_offset",
                "expert_scar_labels": "expert_scar_labels", "expert_core_labels": "expert_core_labels",
                "dark_blood_lge": "dark_blood_lge"}

#: Options that are constants on purpose: on no face (where to change them: the module named).
CONSTANTS = {"shape prior residual decay": (prior_field, "RESIDUAL_DECAY_MM", "residual_decay")}


def _cases(face: str) -> list:
    return [pytest.param(name, getattr(option, face), option, id=name) for name, option in TABLE.items()
            if not isinstance(getattr(option, face), Absent)]


#: The required arguments of each verb, so that a verb's parser reads the option under test.
REQUIRED = {"prepare": ["--mesh", "m.vtk", "--image", "i.nii.gz", "--output", "d.npz"],
            "train": ["--training-data", "d.npz", "--output", "m.pth"],
            "fine-tune": ["--model", "b.pth", "--training-data", "d.npz", "--output", "m.pth"],
            "apply": ["--model", "m.pth", "--mesh", "m.vtk", "--output", "o.vtk"],
            "channels": ["--mesh", "m.vtu", "--output-dir", "d"]}


def _parsed(options, attribute: str) -> Any:
    """A ReconstructionOptions value as the Logic reads it (label lists are kept as typed)."""
    if attribute in RULE_REQUEST:
        return getattr(options.scar_rule_request("labels"), RULE_REQUEST[attribute])
    readers = {"scar_labels": lambda: options.parsed_scar_labels(False),
               "myocardium_labels": options.parsed_myocardium_labels}
    return readers[attribute]() if attribute in readers else getattr(options, attribute)


def _verb_parsers() -> dict[str, Any]:
    action = next(a for a in cli.build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def _action(parser, flag: str):
    return next((a for a in parser._actions if flag in a.option_strings), None)


@pytest.fixture(scope="module")
def batch():
    script = REPO / "CardioScar" / "Scripts" / "cardioscar_batch.py"
    spec = importlib.util.spec_from_file_location("cardioscar_batch_faces", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def panel_code() -> ast.Module:
    return ast.parse((REPO / "CardioScar" / "CardioScar.py").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def panel_bindings() -> dict[str, ET.Element]:
    """Parameter name -> the widget of CardioScar.ui bound to it (its SlicerParameterName)."""
    ui = ET.parse(REPO / "CardioScar" / "Resources" / "UI" / "CardioScar.ui").getroot()
    return {prop.find("string").text: widget for widget in ui.iter("widget") for prop in widget.findall("property")
            if prop.get("name") == "SlicerParameterName"}


@pytest.mark.parametrize("name, names, option", _cases("cli"))
def test_command_line(name, names, option):
    verbs = _verb_parsers()
    for entry in names.split("; "):
        verb, flag = entry.split()
        action = _action(verbs[verb], flag)
        assert action is not None, f"cardioscar {verb} has no {flag} ({name})"
        if option.value and action.nargs != 0:
            parsed = verbs[verb].parse_args(REQUIRED[verb] + _rule_flags(name) + [flag, option.value])
            value = getattr(parsed, action.dest)
            if action.dest in RULE_REQUEST:  # followed to the request prepare grades with
                value = getattr(scar_rule_request(parsed), RULE_REQUEST[action.dest])
            if name in CHANNEL_READS:  # followed to what run_channels reads
                value = _channel_value(name, *search_arguments(parsed))
            assert value == option.expected, (verb, flag)


def _channel_value(name: str, options, tissue: dict) -> Any:
    """Where the channel search reads row ``name``: a ``ChannelOptions`` field or a tissue keyword."""
    where, attribute = CHANNEL_READS[name]
    return getattr(options, attribute) if where == "options" else tissue[attribute]


def _rule_flags(name: str) -> list[str]:
    """The flags a scar rule's option needs beside it on the command line (the rule's myocardium mask)."""
    if name not in RULE_CONTEXT:
        return []
    context = {"myocardium_mask": "m.nii.gz", **RULE_CONTEXT[name]}
    return [f"--{key.replace('_', '-')}={value}" for key, value in context.items()]


@pytest.mark.parametrize("name, names, option", _cases("api"))
def test_python_api(name, names, option):
    for entry in names.split("; "):
        if "(" in entry:
            function, parameter = entry.rstrip(")").split("(")
            module = channel_search if name in CHANNEL_READS else api  # the search's: files or memory
            assert parameter in inspect.signature(getattr(module, function)).parameters, entry
        else:
            owner, attribute = entry.split(".")
            kind = {"PreprocessingRequest": api.PreprocessingRequest, "TrainingConfig": TrainingConfig,
                    "ScarRuleRequest": api.ScarRuleRequest, "ChannelOptions": channel_search.ChannelOptions}[owner]
            fields = {f.name for f in dataclasses.fields(kind)}
            assert attribute in fields or callable(getattr(kind, attribute, None)), entry


@pytest.mark.parametrize("name, names, option", _cases("logic"))
def test_slicer_logic(name, names, option):
    if "(" in names:
        owner, call = names.split(".")
        method, parameter = call.rstrip(")").split("(")
        owner = {"CardioScarLogic": csl.CardioScarLogic, "channels": logic_channels}[owner]
        assert parameter in inspect.signature(getattr(owner, method)).parameters, names
        if name in CHANNEL_READS and parameter == "options":  # the library's ChannelOptions, as the API's
            assert inspect.signature(owner.find_model_channels).parameters["options"].default == \
                channel_search.ChannelOptions()
        return
    attribute = names.split(".")[1]
    assert attribute in {f.name for f in dataclasses.fields(csl.ReconstructionOptions)}, names
    if option.expected is None:
        return
    given = option.value if isinstance(option.expected, (list, tuple)) else option.expected  # labels as typed
    options = csl.ReconstructionOptions(**{**RULE_CONTEXT.get(name, {}), attribute: given})
    assert _parsed(options, attribute) == option.expected
    if attribute in ("mc_samples", "seed", "shape_prior"):  # reaches the configuration the worker trains with
        assert getattr(options.training_config(), attribute) == option.expected


def _keywords_reading(tree: ast.Module, parameter: str) -> set[str]:
    """The keywords to which CardioScarWidget hands ``p.<parameter>`` (p: its parameter node), also
    where it does so only while its widget applies (``p.x if <condition> else <default>``, as the
    margin while no scar rule is chosen, or ``<default> if <condition> else p.x``)."""
    widget = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "CardioScarWidget")

    def reads(value) -> bool:
        if isinstance(value, ast.IfExp):  # also ``None if <no rule> else p.x``, as the scar rule's box
            return reads(value.body) or reads(value.orelse)
        if isinstance(value, ast.Call) and len(value.args) == 1:  # through one reader: ``layer_depths(p.x)``
            return reads(value.args[0])
        return (isinstance(value, ast.Attribute) and value.attr == parameter and isinstance(value.value, ast.Name)
                and value.value.id == "p")

    return {keyword.arg for node in ast.walk(widget) if isinstance(node, ast.Call) for keyword in node.keywords
            if reads(keyword.value)}


@pytest.mark.parametrize("name, names, option", _cases("panel"))
def test_panel(name, names, option, panel_code, panel_bindings):
    parameter, keyword = names
    wrapper = next(node for node in panel_code.body if isinstance(node, ast.ClassDef)
                   and node.name == "CardioScarParameterNode")
    assert parameter in {node.target.id for node in wrapper.body if isinstance(node, ast.AnnAssign)}, \
        f"the panel's parameter node has no {parameter} ({name})"
    assert parameter in panel_bindings, f"no widget of CardioScar.ui is bound to {parameter} ({name})"
    assert keyword in _keywords_reading(panel_code, parameter), f"the panel never hands {parameter} to {keyword}"


@pytest.mark.parametrize("name, names, option", _cases("batch"))
def test_batch_script(name, names, option, batch, tmp_path):
    parser = batch.build_parser()
    action = _action(parser, names)
    assert action is not None, f"cardioscar_batch.py has no {names} ({name})"
    base = ["--volume", "v.nii.gz", "--mesh", "m.vtk", "--output", "o.vtk"]
    if name in CHANNEL_READS:  # the search's options, or the tagging's thresholds behind its tissue_tag
        args = parser.parse_args(base + ["--channels-dir", str(tmp_path / "c"), names, option.value])
        batch._check_arguments(args, parser)
        where, attribute = CHANNEL_READS[name]
        value = (getattr(batch._channel_options(args), attribute) if where == "options"
                 else batch._tag_thresholds(args)[("border_zone", "core").index(attribute)])
        assert value == option.expected, names
        return
    logic = TABLE[name].logic
    if isinstance(logic, str) and "(" in logic:  # a file the script loads as a node for train_and_apply(<parameter>=)
        parameter = logic.split("(")[1].rstrip(")")
        assert f'("{parameter}", args.{action.dest})' in inspect.getsource(batch._run), names
        return
    rule = ["--scar-rule", "psi"] if name == "myocardium segment" else []  # a segment names a rule's mask
    rule += [f"--{key.replace('_', '-')}={value}" for key, value in RULE_CONTEXT.get(name, {}).items()]
    rule += ["--preset", "fast"] if name == "convergence test" else []  # the test needs the one-cycle schedule
    given = [names] if action.nargs == 0 else [names, option.value]
    options = batch._options(parser.parse_args(base + rule + given))
    if isinstance(TABLE[name].logic, Absent):  # a TrainingConfig field the script hands over in extra_training
        field_name = names.lstrip("-").replace("-", "_")
        assert options.extra_training[field_name] == option.expected, names
        assert getattr(options.training_config(), field_name) == option.expected, names
        return
    logic_name = TABLE[name].logic.split(".")[1]
    assert _parsed(options, logic_name) == (True if action.nargs == 0 else option.expected), names


#: Columns a column needs beside it in a valid row (a myocardium label map's scar labels; a
#: margin's myocardium).
NEEDS = {"myocardium_labels": {"scar_labels": "2"}, "myocardium_margin": {"myocardium_labels": "2,3", "scar_labels": "2"},
         **{TABLE[name].cohort: {**context, "myocardium_mask": "lge.nii.gz"} for name, context in RULE_CONTEXT.items()
            if not isinstance(TABLE[name].cohort, Absent)},
         # the thresholds of a scar-rule row's two fields' tags, which its channel search reads
         **{column: {"scar_rule": "nsd", "myocardium_mask": "lge.nii.gz", "channels": "yes"}
            for column in ("threshold", "core_threshold")}}


@pytest.mark.parametrize("name, names, option", _cases("cohort"))
def test_cohort_manifest(name, names, option, tmp_path):
    assert names in cohort_manifest.COLUMNS, f"the cohort manifest has no column {names} ({name})"
    from cardioscar.cohort.tasks import training_config as cohort_training_config

    for stand_in in ("heart.vtk", "lge.nii.gz"):  # read_manifest checks that the files exist; nothing reads them
        (tmp_path / stand_in).write_text("stand-in")
    row = {"id": "p1", "mesh": "heart.vtk", "image": "lge.nii.gz", **NEEDS.get(names, {}),
           names: "lge.nii.gz" if names in cohort_manifest.MASK_COLUMNS else option.value}
    (tmp_path / "m.csv").write_text(",".join(row) + "\n" + ",".join(f'"{v}"' for v in row.values()) + "\n")
    (spec,) = cohort_manifest.read_manifest(tmp_path / "m.csv")
    request, config = cohort_manifest.preparation_request(spec), cohort_training_config(spec)
    fast = config == TrainingConfig.fast(seed=config.seed, num_threads=1, shape_prior=config.shape_prior)
    reached = {"myocardium_labels": request.myocardium_labels, "myocardium_mask": request.myocardium_mask,
               "scar_labels": request.scar_labels, "myocardium_margin": request.myocardium_margin_px,
               "slice_profile": request.slice_profile,
               "shape_prior": config.shape_prior, "preset": "fast" if fast else "documented", "seed": config.seed,
               "training_mc_samples": config.mc_samples,
               "mc_samples": spec.options["mc_samples"],  # apply_scar_model's, read by cohort.tasks
               # the two fields' tagging (cohort.tasks._tissue_tags), whose tags the channel search reads
               "threshold": spec.options["threshold"], "core_threshold": spec.options["core_threshold"],
               **{column: getattr(request.scar_rule, field, None) for column, field in RULE_REQUEST.items()}}[names]
    expected = (tmp_path / "lge.nii.gz").resolve() if names in cohort_manifest.MASK_COLUMNS else option.expected
    assert reached == expected, names


@pytest.mark.parametrize("name", list(CONSTANTS))
def test_constants_are_on_no_face(name, batch, panel_code):
    module, constant, word = CONSTANTS[name]
    assert getattr(module, constant) > 0
    verbs = _verb_parsers()
    flags = {flag for parser in [*verbs.values(), batch.build_parser()] for action in parser._actions
             for flag in action.option_strings}
    names = (flags | {f.name for f in dataclasses.fields(TrainingConfig)}
             | {f.name for f in dataclasses.fields(api.PreprocessingRequest)}
             | {f.name for f in dataclasses.fields(csl.ReconstructionOptions)} | set(cohort_manifest.COLUMNS)
             | {node.target.id for node in ast.walk(panel_code) if isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)})
    assert not [n for n in names if word in n.replace("-", "_").lower()], f"{name} is now an option: update TABLE"


def test_the_table_names_every_face_of_every_option():
    for name, option in TABLE.items():
        for face in FACES:
            entry: Optional[Any] = getattr(option, face)
            assert entry and (not isinstance(entry, Absent) or entry.why), (name, face)


def test_the_shape_prior_s_words_mean_the_same_on_the_logic_as_on_the_command_line():
    """``ReconstructionOptions.shape_prior`` takes the words ``train --shape-prior`` takes, in any
    case and spacing (``"Auto"`` was refused while ``"ON"`` was accepted); None is the preset's."""
    for text in ("on", " OFF ", "Auto", "auto"):
        assert csl.ReconstructionOptions(shape_prior=text).shape_prior == cli.on_off_auto(text)
    assert csl.ReconstructionOptions(preset="fast").training_config().shape_prior == "auto"
    assert csl.ReconstructionOptions().training_config().shape_prior is False
    with pytest.raises(CardioScarError, match="shape prior must be True, False, 'auto' or None"):
        csl.ReconstructionOptions(shape_prior="maybe")


def test_dark_blood_lge_without_a_scar_rule_is_refused_on_each_face(batch):
    """It skips a check only a scar rule runs: without one it would change nothing, so every face
    refuses it in its own words (the command line's and the manifest's in test_lge_prepare / test_cohort)."""
    with pytest.raises(CardioScarError, match=r"^dark_blood_lge needs a scar rule"):
        csl.ReconstructionOptions(dark_blood_lge=True)
    parsed = batch.build_parser().parse_args(["--volume", "v.nii.gz", "--mesh", "m.vtk", "--output", "o.vtk",
                                              "--dark-blood-lge"])
    with pytest.raises(CardioScarError, match="--dark-blood-lge need --scar-rule"):
        batch._check_arguments(parsed, batch.build_parser())


def test_the_fibre_advice_names_each_face_s_own_way_of_giving_fibres(batch):
    """The fibre rule's refusal and the warning of an openCARP set without fibres advise the command
    line's ``--fibres CELLFIELD`` / ``--fibres rule``; a cohort row, the batch script and the panel
    take the rule or none, never a cell field, and said so in those words (zstalefibre). Each face
    now words the advice its own way (the Logic's: Testing/test_slicer_tissue.py)."""
    from CardioScarLogic.wording import BATCH_NAMES, in_batch_words, in_panel_words
    from cardioscar.cohort.manifest import in_manifest_terms
    from cardioscar.simulation.fibres import GIVE_FIBRES, WITHOUT_RULE

    refusal = f"biv.vtk looks biventricular: ...; give an LV-only mesh, or {WITHOUT_RULE}"
    warning = f"no heart.lon was written (no --fibres): openCARP reads ...; {GIVE_FIBRES}, before simulating"
    faces = {"cohort": (in_manifest_terms, "leave the fibres column empty", "give the fibres column rule"),
             "batch": (lambda m: in_batch_words(m, BATCH_NAMES["export"]), "leave --fibre-rule out",
                       "give --fibre-rule"),
             "panel": (in_panel_words, "untick 'LV fibre rule'", "tick 'LV fibre rule'")}
    for face, (words, without, give) in faces.items():
        said = words(refusal), words(warning)
        assert said[0].endswith(f"or {without} (no fibres)") and give in said[1], (face, said)
        assert not any("CELLFIELD" in text or "--fibres" in text for text in said), (face, said)
    assert any(action.option_strings == ["--fibre-rule"] for action in batch.build_parser()._actions)


def test_the_channel_search_s_defaults_are_the_library_s_on_every_face(batch, panel_code):
    """A channel option left out is ``ChannelOptions``' default, and the thresholds behind the tags
    the tagging's, on the command line, the batch script and the panel (whose parameter node holds
    its own copies of them)."""
    from cardioscar.simulation.channels_cli import layer_depths
    from cardioscar.simulation.tags import resolved_thresholds

    wrapper = next(node for node in panel_code.body if isinstance(node, ast.ClassDef)
                   and node.name == "CardioScarParameterNode")
    panel = {node.target.id: ast.literal_eval(node.value) for node in wrapper.body
             if isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.value, ast.Constant)}
    from_panel = channel_search.ChannelOptions(
        layers=layer_depths(panel["channelLayers"]), layer_width=panel["channelLayerWidth"],
        max_width_mm=panel["channelMaxWidth"], min_length_mm=panel["channelMinLength"])
    assert from_panel == channel_search.ChannelOptions()
    one_field = resolved_thresholds(None, None, two_fields=False)
    assert (panel["tagBorderZone"], panel["tagCore"]) == one_field
    options, tissue = search_arguments(_verb_parsers()["channels"].parse_args(REQUIRED["channels"]))
    assert options == channel_search.ChannelOptions() and tissue["border_zone"] is tissue["core"] is None
    args = batch.build_parser().parse_args(["--volume", "v.nii.gz", "--mesh", "m.vtk", "--output", "o.vtk",
                                            "--channels-dir", "c"])
    assert batch._channel_options(args) == channel_search.ChannelOptions() and batch._tag_thresholds(args) == one_field
    assert (cohort_manifest.DEFAULTS["threshold"], cohort_manifest.DEFAULTS["core_threshold"]) == one_field


@pytest.mark.parametrize("given, refused", [
    (["--border-zone", "1.5"], "--border-zone 1.5 is outside the valid range 0 < P < 1"),
    (["--core", "0"], "--core 0 is outside the valid range"),
    (["--border-zone", "0.9"], "--border-zone 0.9 must be below --core 0.8 when both apply to one field"),
    (["--border-zone", "0.9", "--core-field", "core_probability"], None)])  # two fields: the core's 0.5, any order
def test_the_batch_script_refuses_a_tagging_threshold_before_the_training(batch, given, refused):
    """Its tagging (and the channel search on its tags) runs after the training: a threshold the
    tagging refuses was found only then, the training lost (zfacesrows)."""
    parser = batch.build_parser()
    args = parser.parse_args(["--volume", "v.nii.gz", "--mesh", "m.vtk", "--output", "o.vtk", *given])
    if refused is None:
        batch._check_arguments(args, parser)
        assert batch._tag_thresholds(args) == (0.9, 0.5)
        return
    with pytest.raises(CardioScarError, match=refused.replace(".", r"\.")):
        batch._check_arguments(args, parser)
