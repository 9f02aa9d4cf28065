"""The library's one-line errors in the words of the face that shows them.

The library names what to fix by its command-line option (``--scar-labels 3,4 match no pixel``),
which is right on the command line but means nothing to someone who clicks or types Python, and
is another option, or none, in the batch script:

- the panel shows the same message with each option it has a box for named as that box's label
  (``'Scar labels' 3,4 match no pixel``; :func:`in_panel_words`);
- the Logic used from the Python console raises it with each option named as the Logic's own
  parameter (``options.scar_labels 3,4 match no pixel``, ``border_zone``, ``inputs.rv_label``;
  :func:`speaks_logic_words` on its entry points), and logs its warnings in the same words;
- the batch script prints it with each option it calls otherwise named as the script's option
  (``--aha-threshold 1.5: use a value between 0 and 1``; :data:`BATCH_NAMES`, :func:`in_batch_words`).

Options with no name on a face keep their command-line name, so the message stays findable in the
option tables of Documentation/command-line.md#options. A reworded error keeps the library's words
(:func:`library_words`), and so does a reworded log record (:func:`library_message`,
:data:`LIBRARY_MSG`), from which the panel and the batch script word it their own way.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import re
import threading
from dataclasses import fields
from typing import Callable, Iterator, TypeVar

from cardioscar.aha.analysis import LV_MASK_ADVICE, AhaOptions
from cardioscar.aha.handedness import INSERTION_ORDER
from cardioscar.aha.insertion import AXIS_POINTS_ADVICE
from cardioscar.aha.islands import LV_MASK_DEBRIS_ADVICE
from cardioscar.aha.segments import AXIS_OPTIONS_ADVICE, LONG_AXIS_VIEW_ADVICE
from cardioscar.cli import TRAINING_WORDS
from cardioscar.errors import CardioScarError, advice_in_face_words
from cardioscar.fit.config import TrainingConfig
from cardioscar.io.checks import BELOW_MAX_LR, ONE_CYCLE_ADVICE, TRAINING_OPTION
from cardioscar.simulation.fibres import GIVE_FIBRES, WITHOUT_RULE
from cardioscar.simulation.tags import CALL_ADVICE, CORE_MESH_ADVICE, FILE_CORE_MODEL_ADVICE

#: Command-line option -> the label of the panel box that sets the same thing (CardioScar.ui).
PANEL_NAMES = {
    "--image": "LGE volume / scar",
    "--mesh": "Heart mesh",
    "--slice-axis": "Slice axis",
    "--slice-indices": "Slice indices",
    "--slice-thickness-padding": "Slab half-width",
    "--scar-labels": "Scar labels",
    "--myocardium-labels": "Myocardium labels",
    "--myocardium-mask": "Myocardium mask",
    "--myocardium-margin": "Myocardium margin",
    "--slice-profile": "Slice profile",
    "--preset": "Preset",
    "--max-epochs": "Max epochs",
    "--seed": "Seed",
    "--normalize-intensities": "Normalise intensities",
    "--shape-prior": "Shape prior",
    "--cpu": "Force CPU",
    "--threshold": "Threshold",
    "--scar-rule": "Scar rule (raw LGE)",
    "--scar-thresholds": "Thresholds (border,core)",
    "--scar-target": "Network learns",
    "--blood-pool-mask": "Blood pool",
    "--blood-pool-labels": "Blood-pool labels",
    "--expert-scar-labels": "Expert scar labels",
    "--expert-core-labels": "Expert core labels",
    "--remote-mask": "Remote myocardium",
    "--intensity-offset": "Intensity offset",
    "--core-mesh": "Core model",
    "--core-field": "Core field",
    "--border-zone": "Border zone from",
    "--core": "Core from",
    "--tags": "Tag numbers",
    "--format": "Export format",
    "--units": "Units",
    "--rv-label": "RV label",
    "--myocardium-label": "Myocardium label",
    "--layers": "Channel layers",
    "--layer-width": "Layer width",
    "--max-width": "Max channel width",
    "--fibres": "LV fibre rule",
    "--helix-angles": "Helix angles (endo,epi)",
    "--min-length": "Min channel length",
    "--rv-point": "RV insertion points",
}

#: The command line's fibre advice (:mod:`cardioscar.simulation.fibres`) on each face that gives
#: fibres otherwise: the panel and the batch script ask for the rule or none, the Logic takes
#: ``fibres="rule"`` or an array, none of them a cell field's name.
PANEL_FIBRE_ADVICE = {WITHOUT_RULE: "untick 'LV fibre rule' (no fibres)",
                      GIVE_FIBRES: "tick 'LV fibre rule' (the LV rule)"}
#: How a panel user gives the AHA an LV mask, which the panel has no box for: the Logic's
#: ``inputs.measure.lv_mask_field``, from the Python console.
_CONSOLE_LV_MASK = (" (the panel has no LV mask), or mark its LV nodes in a point field and segment it from the "
                    "Python console (CardioScarLogic.aha_segments with inputs.measure.lv_mask_field naming that field)")
#: The panel's words for the AHA's long-axis points: its *Apex and base* point list (it has no
#: short-axis volume for the axis; the Logic's ``inputs.slice_normal_volume``).
_PANEL_APEX_BASE = "choose 'Apex and base' (a point list: the apex, then the base centre)"
#: The panel's words for the advice to tag from a core model's field (``export --core-mesh``, or as
#: ``channels.json`` holds it, which the panel reads back), which the AHA and the channel search give
#: on one field's bands: its tissue section's *Core model* selector.
_PANEL_CORE_MODEL = ("choose the tissue section's 'Core model' (the result of a run whose 'Network learns' is core) "
                     "and tag again")
#: The panel's words for the library's advice it has no box for: ``--lv-mask`` (a biventricular
#: model's AHA, or one with debris) and the AHA's axis options (``--slice-normal-from``, ``--apex``
#: ``--base`` with coordinates), and the RV insertions' order (its *RV insertion points* list).
PANEL_ADVICE = {**PANEL_FIBRE_ADVICE, LV_MASK_ADVICE: _CONSOLE_LV_MASK, LV_MASK_DEBRIS_ADVICE: _CONSOLE_LV_MASK,
                AXIS_OPTIONS_ADVICE: _PANEL_APEX_BASE, AXIS_POINTS_ADVICE: _PANEL_APEX_BASE,
                INSERTION_ORDER: "(the first point of 'RV insertion points', then its second)",
                CORE_MESH_ADVICE: _PANEL_CORE_MODEL, FILE_CORE_MODEL_ADVICE: _PANEL_CORE_MODEL}
#: The panel's words for the AHA's points, which its point lists hold in order (unquoted phrases: the
#: list's label is quoted within): the command line's two points of the axis and its second insertion.
PANEL_POINTS = {"--apex": "point 1 of 'Apex and base'", "--base": "point 2 of 'Apex and base'",
                "--rv-inferior-point": "point 2 of 'RV insertion points'"}
#: The probability at which the panel's AHA counts scar (the library's default: the section has no
#: threshold box). The Options' 'Threshold' is the reconstruction's call (``--threshold`` of prepare and
#: apply), which the panel named for ``aha --threshold`` too, a box the AHA never read.
PANEL_AHA_THRESHOLD = AhaOptions.threshold
#: The AHA section's words for ``aha --threshold`` where no advice of a value says it otherwise.
PANEL_AHA_THRESHOLD_WORDS = f"the AHA's threshold ({PANEL_AHA_THRESHOLD:g} in the panel, not 'Threshold')"
#: The AHA section's words for ``aha --field``: the section has no field box, it reads the model's
#: scar_probability (a refusal of that field said "(--field)", an option the panel user cannot give).
PANEL_AHA_FIELD_WORDS = "the field the panel's AHA reads"
#: The AHA's advice to cut at apply's call (:data:`cardioscar.simulation.tags.CALL_ADVICE`), the cut found.
_AHA_CALL_ADVICE = re.compile(re.escape(CALL_ADVICE.format(option="--threshold", cut="\0", use="count"))
                              .replace(re.escape("\0"), r"(?P<cut>[0-9.]+)"))


def _panel_aha_call(found: re.Match) -> str:
    cut = found.group("cut")
    return (f"the panel's AHA counts scar at {PANEL_AHA_THRESHOLD:g}, not at 'Threshold': to count the scar apply "
            f"called, segment the model from the Python console (CardioScarLogic.aha_segments with "
            f"inputs.measure.threshold {cut})")


BATCH_FIBRE_ADVICE = {WITHOUT_RULE: "leave --fibre-rule out (no fibres)",
                      GIVE_FIBRES: "give --fibre-rule (the LV rule)"}
#: The batch script's words for the library's phrases: its fibre advice, and a training option's
#: refusal, which names the ``TrainingConfig`` field ("training option base_lr ... must be <= max_lr")
#: where the script's user typed ``--base-lr``: the script takes ``cardioscar train``'s options under
#: their names (the command line's words, ``cli.TRAINING_WORDS``), and ``num_threads`` as its ``--threads``.
BATCH_ADVICE = {**BATCH_FIBRE_ADVICE, **TRAINING_WORDS, f"{TRAINING_OPTION} num_threads": "--threads"}
LOGIC_FIBRE_ADVICE = {WITHOUT_RULE: "export with fibres=None (or fibres, an array of one fibre or fibre+sheet "
                                    "direction per cell)",
                      GIVE_FIBRES: "give fibres, an array of one fibre (or fibre+sheet) direction per cell from a "
                                   "fibre rule or atlas, or fibres=\"rule\" (the LV rule)"}

#: :data:`PANEL_NAMES` for the panel's *Score against labels* section, whose boxes set the scoring's labels and
#: slices (``evaluate --truth-image``'s options); the slice axis, slab and threshold are the Options'.
SCORE_PANEL_NAMES = {**PANEL_NAMES, "--truth-image": "Truth labels", "--prediction": "Model to score",
                     "--mesh": "Model to score", "--scar-labels": "Truth scar labels",
                     "--myocardium-labels": "Truth myocardium labels", "--myocardium-mask": "Truth myocardium mask",
                     "--slice-indices": "Scored slices",
                     "--write-truth": "Write scar_truth on the model"}

#: The Logic's words for the library's advice to tag from a core model's field (``export --core-mesh``),
#: which its AHA and its channel search give on one field's bands.
LOGIC_CORE_MODEL_ADVICE = {CORE_MESH_ADVICE: "tag_model_node with core_model, the core model's result"}
#: The Logic's words for the AHA's axis advice (a refusal's, and the warning of a slice normal across
#: the LV), which names the command line's options with coordinates (renamed one by one it read
#: ``inputs.apex_base_markups X,Y,Z inputs.apex_base_markups X,Y,Z``), and for the RV insertions' order, both points of one markups node (renamed one by one it read
#: ``(inputs.rv_markups, then inputs.rv_markups)``); and for the advice to tag from a core model.
LOGIC_AHA_ADVICE = {**LOGIC_CORE_MODEL_ADVICE,
                    AXIS_OPTIONS_ADVICE: "give inputs.slice_normal_volume (the short-axis volume), or "
                                         "inputs.apex_base_markups (a markups node: the apex, then the base centre)",
                    AXIS_POINTS_ADVICE: "give inputs.apex_base_markups (a markups node: the apex, then the base "
                                        "centre)",
                    LONG_AXIS_VIEW_ADVICE: "give a short-axis volume as inputs.slice_normal_volume, or "
                                           "inputs.apex_base_markups (a markups node: the apex, then the base centre)",
                    INSERTION_ORDER: "(point 1 of inputs.rv_markups, then its point 2)"}

#: Command-line option -> the :class:`CardioScarLogic.options.ReconstructionOptions` field that sets
#: the same thing (``cardioscar prepare`` / ``train`` / ``apply`` options).
OPTION_FIELDS = {
    "--slice-axis": "slice_axis",
    "--slice-indices": "slice_indices",
    "--slice-thickness-padding": "half_thickness",
    "--scar-labels": "scar_labels",
    "--myocardium-labels": "myocardium_labels",
    "--myocardium-margin": "myocardium_margin",
    "--normalize-intensities": "normalize_intensities",
    "--partial-volume-correction": "partial_volume_correction",
    "--preset": "preset",
    "--shape-prior": "shape_prior",
    "--max-epochs": "max_epochs",
    "--early-stopping-patience": "early_stopping_patience",
    "--batch-size": "batch_size",
    "--seed": "seed",
    "--threshold": "threshold",
    "--cpu": "force_cpu",
    "--scar-rule": "scar_rule",
    "--scar-thresholds": "scar_thresholds",
    "--scar-target": "scar_target",
    "--blood-pool-labels": "blood_pool_labels",
    "--expert-scar-labels": "expert_scar_labels",
    "--expert-core-labels": "expert_core_labels",
    "--intensity-offset": "intensity_offset",
    "--dark-blood-lge": "dark_blood_lge",
}

#: The ``TrainingConfig`` fields a :class:`CardioScarLogic.options.ReconstructionOptions` has a field
#: of its own for, of the same name; the console gives the others in its ``extra_training`` dict.
OWN_TRAINING_FIELDS = ("max_epochs", "early_stopping_patience", "mc_samples", "batch_size", "num_threads", "seed",
                       "shape_prior")


def _training_advice(prefix: str) -> dict[str, str]:
    """The Logic's words for a training option's refusal, each field named as the console gives it
    (``prefix`` before it: ``options.`` in an entry point, none in the options' constructor).

    Why: the refusal names the ``TrainingConfig`` field ("training option max_epochs", "must be <=
    max_lr", "choose onecycle"), the library's words, where the console user typed
    ``ReconstructionOptions(max_epochs=0)`` or ``extra_training={'base_lr': 0.05}`` and has no
    schedule option but the preset's. Longest field first, so no name is replaced inside a longer one."""
    def named(name: str) -> str:
        return f"{prefix}{name}" if name in OWN_TRAINING_FIELDS else f"{prefix}extra_training['{name}']"

    names = sorted((option.name for option in fields(TrainingConfig)), key=len, reverse=True)
    return {**{f"{TRAINING_OPTION} {name}": named(name) for name in names},
            BELOW_MAX_LR: f"must be <= {named('max_lr')}",
            ONE_CYCLE_ADVICE: f"leave it out (or set it to 0), or give {prefix}preset='fast' (its schedule is one-cycle)"}


#: :func:`_training_advice` in the options' constructor and in a reconstruction's entry points.
OPTIONS_TRAINING_ADVICE = _training_advice("")
RECONSTRUCTION_TRAINING_ADVICE = _training_advice("options.")

#: The same for a reconstruction's entry points (``train_and_apply``, ``prepare_training``,
#: ``apply_model``): the options argument's fields and the node arguments.
RECONSTRUCTION_NAMES = {**{option: f"options.{name}" for option, name in OPTION_FIELDS.items()},
                        "--image": "scar_node", "--mesh": "model_node", "--model": "model",
                        "--myocardium-mask": "myocardium_mask", "--blood-pool-mask": "blood_pool_node",
                        "--remote-mask": "remote_node",
                        # no field of its own: the kept run's advice to lower it (a diverged run)
                        "--max-lr": "options.extra_training['max_lr']"}

#: ``score_on_slices`` (``cardioscar evaluate --truth-image``) arguments.
SCORING_NAMES = {**{option: f"options.{name}" for option, name in OPTION_FIELDS.items()},
                 "--truth-image": "truth_node", "--prediction": "model_node", "--mesh": "model_node",
                 "--myocardium-mask": "myocardium_mask", "--truth-threshold": "truth_threshold",
                 "--write-truth": "write_truth"}

#: ``tag_model_node`` / ``export_model_node`` (CardioScarLogic.tissue) arguments.
TISSUE_NAMES = {"--mesh": "model_node", "--border-zone": "border_zone", "--core": "core", "--core-field": "core_field",
                "--core-mesh": "core_model", "--tags": "tag_values", "--format": "fmt", "--units": "units",
                "--space": "space", "--fibres": "fibres", "--helix-angles": "helix_deg", "--output": "prefix"}

#: ``aha_segments(model_node, inputs)``: the :class:`CardioScarLogic.aha.AhaInputs` fields (what to
#: measure in ``inputs.measure``, a :class:`cardioscar.aha.AhaOptions`).
AHA_NAMES = {"--mesh": "model_node", "--rv-point": "inputs.rv_markups", "--rv-inferior-point": "inputs.rv_markups",
             "--labels": "inputs.labels_node", "--rv-label": "inputs.rv_label",
             "--myocardium-label": "inputs.myocardium_label", "--apex": "point 1 of inputs.apex_base_markups",
             "--base": "point 2 of inputs.apex_base_markups", "--slice-normal-from": "inputs.slice_normal_volume",
             **{f"--{option}": f"inputs.measure.{name}" for option, name in (
                 ("threshold", "threshold"), ("field", "field"), ("uncertainty-field", "uncertainty_field"),
                 ("lv-mask", "lv_mask_field"), ("lv-value", "lv_mask_value"), ("tags-field", "tags_field"),
                 ("border-zone-tag", "border_zone_tag"), ("core-tag", "core_tag"),
                 ("transmurality", "transmurality"))}}

#: ``cardioscar`` verb -> its options that the batch script (``CardioScar/Scripts/cardioscar_batch.py``)
#: sets under another name, with that name. The script runs every step in one go, so names the
#: verbs share mean one step's option there: its ``--mc-samples``, ``--batch-size`` are train's and
#: its ``--output`` the result mesh (apply's), its ``--threshold`` apply's. The names the script takes
#: as aliases of its own (``--image`` for ``--volume``) it reads from its parser. Only names that a
#: library message can show in that step are here (each is reached by a test in
#: Testing/test_batch_script.py): apply's out-of-memory advice, the export's prefix refusal, the
#: AHA's warning of a threshold off the call apply wrote. The script checks its --save-model and
#: --aha-dir itself, in its own words, before any step runs.
BATCH_NAMES = {
    "apply": {"--mc-samples": "--inference-mc-samples", "--batch-size": "--inference-batch-size"},
    "export": {"--output": "--export-opencarp", "--fibres": "--fibre-rule"},
    "aha": {"--threshold": "--aha-threshold"},
    "channels": {"--layers": "--channel-layers", "--layer-width": "--channel-layer-width",
                 "--max-width": "--channel-max-width", "--min-length": "--channel-min-length",
                 "--output-dir": "--channels-dir"},
}

_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*[a-z]")
#: A command a message quotes (``run `cardioscar export --border-zone T --core C` ``), from its verb
#: to the first ; ` " ( ) or a , . : that ends a clause: left as written, to be typed.
_IN_COMMAND = re.compile(r"cardioscar [a-z-]+ (?:[^;`\"()\n,.:]|[,.:](?!\s))*$")


def _renamed(message: str, names: dict[str, str], form: str) -> str:
    """``message`` with each command-line option in ``names`` written as ``form`` of its name; a
    quoted command and everything else as it was."""

    def named(found: re.Match) -> str:
        option = found.group(0)
        if option not in names or _IN_COMMAND.search(message, 0, found.start()):
            return option
        return form.format(names[option])

    return _OPTION.sub(named, message)


def in_panel_words(message: str, names: dict[str, str] = PANEL_NAMES, aha: bool = False) -> str:
    """``message`` with each command-line option the panel has a box for replaced by that box's
    label in quotes, and the AHA's points as the points of its lists (:data:`PANEL_POINTS`); a quoted
    command and everything else as it was. ``names``: the boxes of the section that ran
    (:data:`SCORE_PANEL_NAMES` for the scoring's); ``aha``: the AHA section ran, which counts scar at
    :data:`PANEL_AHA_THRESHOLD`, not at the Options' 'Threshold' that ``--threshold`` names elsewhere."""
    message = advice_in_face_words(message, PANEL_ADVICE)
    if aha:
        message = _renamed(_AHA_CALL_ADVICE.sub(_panel_aha_call, message),
                           {"--threshold": PANEL_AHA_THRESHOLD_WORDS, "--field": PANEL_AHA_FIELD_WORDS}, "{}")
    return _renamed(_renamed(message, PANEL_POINTS, "{}"), names, "'{}'")


def _in_face_words(message: str, names: dict[str, str], advice: dict[str, str]) -> str:
    """``message`` with ``advice``'s phrases in a face's words, then each command-line option in
    ``names`` replaced by that face's name, unquoted (the Logic's and the batch script's way)."""
    return _renamed(advice_in_face_words(message, advice), names, "{}")


def record_in_words(record, names: dict[str, str], advice: dict[str, str]):
    """``record`` (a result's summary as ``aha.json`` holds it: dicts, lists, numbers and text) with
    each text in a face's words (:func:`_in_face_words`). Why: the AHA result's summary keeps the
    library's warnings (the RV insertions' order, "--rv-point lies 12 mm in front of the other"),
    which the Logic's console user reads in its parameter names (as its log says them) and the batch
    script writes into its ``aha.json`` in its options' (:data:`BATCH_NAMES`)."""
    if isinstance(record, str):
        return _in_face_words(record, names, advice)
    if isinstance(record, dict):
        return {key: record_in_words(value, names, advice) for key, value in record.items()}
    if isinstance(record, list):
        return [record_in_words(value, names, advice) for value in record]
    return record


def in_batch_words(message: str, names: dict[str, str]) -> str:
    """``message`` (the library's words) with each command-line option in ``names`` replaced by the
    batch script's option, and its phrases in the script's words (:data:`BATCH_ADVICE`); a quoted
    command and everything else as it was."""
    return _in_face_words(message, names, BATCH_ADVICE)


def library_words(error: BaseException) -> str:
    """The library's own message of ``error``, also when the Logic reworded it."""
    return getattr(error, "library_message", str(error))


#: The loggers whose warnings a face shows its user: the library's and the Logic's.
LIBRARY_LOGGERS = ("cardioscar", "CardioScarLogic")


#: The attribute of a log record the Logic reworded that keeps its format string in the library's words.
LIBRARY_MSG = "library_msg"


def library_message(record: logging.LogRecord) -> str:
    """The message of ``record`` in the library's words, also when a Logic call reworded it (the
    panel words it its own way: the Logic's parameter names mean nothing to someone who clicks)."""
    words = getattr(record, LIBRARY_MSG, None)
    if words is None:
        return record.getMessage()
    return str(words) % record.args if record.args else str(words)


class _HeardWarnings(logging.Handler):
    """The library's warnings raised on this thread, each once, in its own words."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        message = library_message(record)
        if record.thread == self._thread and message not in self.messages:
            self.messages.append(message)


@contextlib.contextmanager
def library_warnings() -> Iterator[list[str]]:
    """The warnings the library and the Logic log on this thread inside the block, in the library's
    words (the caller words them for its face). Why: the panel reads its inputs on Slicer's main
    thread, where a logged warning reaches only the Python console and the application log, never
    the panel the user is looking at; the worker's warnings come to the panel as report lines."""
    heard = _HeardWarnings()
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    for logger in loggers:
        logger.addHandler(heard)
    try:
        yield heard.messages
    finally:
        for logger in loggers:
            logger.removeHandler(heard)


Function = TypeVar("Function", bound=Callable)

#: The words (option names, advice) of the Logic call running in this context, outermost call's; None
#: outside a call. A context variable, so another thread's records (the panel's worker reports, a
#: cohort's) keep their own words: a thread starts with none set.
_LOGIC_WORDS: contextvars.ContextVar[tuple[dict[str, str], dict[str, str]] | None] = contextvars.ContextVar(
    "cardioscar_logic_words", default=None)


def _reword_in_logic_calls(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """The log record factory ``make`` whose records of the library's and the Logic's loggers, made
    inside a Logic call, have their format string in the call's words (the values filled in, such as
    a file name or a face's own advice given to the library, as they were) and keep the library's in
    :data:`LIBRARY_MSG`. A record factory, not a handler's filter: it reaches every handler, the one
    Slicer's console writes with, a script's ``basicConfig`` and Python's last resort on stderr alike."""

    def made(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        words = _LOGIC_WORDS.get()
        if words is not None and str(record.name).split(".")[0] in LIBRARY_LOGGERS:
            names, advice = words
            library = getattr(record, LIBRARY_MSG, record.msg)
            setattr(record, LIBRARY_MSG, library)
            record.msg = _in_face_words(str(library), names, advice)
        return record

    made.rewords_logic_calls = True  # type: ignore[attr-defined]
    return made


@contextlib.contextmanager
def _logging_in_logic_words(names: dict[str, str], advice: dict[str, str]) -> Iterator[None]:
    """Inside, the library's log records say the Logic's words (an outer call's words hold, as they
    do for its errors). The factory is installed once, over whatever factory the process has, and
    passes records through untouched outside a call."""
    if not getattr(logging.getLogRecordFactory(), "rewords_logic_calls", False):
        logging.setLogRecordFactory(_reword_in_logic_calls(logging.getLogRecordFactory()))
    token = _LOGIC_WORDS.set(_LOGIC_WORDS.get() or (names, advice))
    try:
        yield
    finally:
        _LOGIC_WORDS.reset(token)


def speaks_logic_words(names: dict[str, str], advice: dict[str, str] | None = None
                       ) -> Callable[[Function], Function]:
    """Decorate a Logic entry point: a :class:`CardioScarError` it raises names each command-line
    option in ``names`` as the Logic's parameter instead (and gives ``advice``'s phrases, the
    command line's fibre advice, in the Logic's words), and keeps the library's words in
    ``library_message``; its log records say the same words (:func:`_logging_in_logic_words`: "are
    --apex and --base swapped?" meant nothing in the Python console). The error itself is reworded,
    not a copy of it: a copy lost its cause (``raise ... from OSError``) and could not be made of a
    subclass whose ``__init__`` takes other arguments than its message (a TypeError in place of the
    user's error)."""

    def decorate(function: Function) -> Function:
        @functools.wraps(function)
        def worded(*args, **kwargs):
            try:
                with _logging_in_logic_words(names, advice or {}):
                    return function(*args, **kwargs)
            except CardioScarError as error:
                original = library_words(error)
                message = _in_face_words(original, names, advice or {})
                if message != str(error):
                    error.args = (message,)
                    error.library_message = original
                raise

        return worded  # type: ignore[return-value]

    return decorate
