"""The cohort manifest: one row per patient, read from CSV or YAML and validated before anything runs.

Every problem of every row is collected and raised at once (one line each), so a user fixing a
200-row manifest does not discover its errors one run at a time. Paths are relative to the
manifest's folder. A column this version does not take (``tags``: the tissue tags come from
``threshold`` and ``core_threshold``) is recognised and refused with the reason, rather than
ignored: a silently ignored option would be a different patient model.

A row with ``scar_rule`` takes the path of ``prepare --scar-rule`` (raw LGE graded by a rule): its
rule columns are checked by the command line's own reader (:func:`cardioscar.lge.options.scar_rule_request`),
and the patient trains two fields, scar and core (:mod:`cardioscar.cohort.tasks`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from cardioscar.cohort.summary import RUN_FILES
from cardioscar.errors import CardioScarError
from cardioscar.lge.options import scar_rule_request
from cardioscar.lge.prepare import ScarRuleRequest
from cardioscar.lge.rules import RULES
from cardioscar.logic import PreprocessingRequest
from cardioscar.io.meshio import MESH_SUFFIXES
from cardioscar.io.checks import MAX_SEED
from cardioscar.errors import advice_in_face_words
from cardioscar.simulation.fibres import GIVE_FIBRES, WITHOUT_RULE
from cardioscar.simulation.tags import DEFAULT_CORE_TWO_FIELDS

logger = logging.getLogger(__name__)

#: Values of ``options`` when a row leaves the column empty (the CLI's own defaults).
DEFAULTS: dict[str, Any] = {
    "slice_indices": None,
    "slice_axis": "z",
    "slice_thickness_padding": 5.0,
    "scar_labels": None,
    "normalize_intensities": False,
    "partial_volume_correction": False,
    "preset": "documented",
    "shape_prior": None,  # empty: the preset's (documented off, fast auto), resolved per row below
    "seed": 42,
    "max_epochs": None,
    "training_mc_samples": None,
    "threshold": 0.5,
    "core_threshold": 0.8,
    "mc_samples": 10,
    "truth_field": "scar_truth",
    "myocardium_labels": None,
    "myocardium_mask": None,
    "myocardium_margin": 0,
    "slice_profile": "box",
    "aha": None,
    "export": None,
    # the export's fibres (export --fibres rule [--helix-angles ENDO,EPI]); empty: none
    "fibres": None,
    "helix_angles": None,
    # the scar rule on raw LGE (prepare --scar-rule and its options); empty: the field learns the image's values
    "scar_rule": None,
    "scar_thresholds": None,
    "blood_pool_labels": None,
    "blood_pool_mask": None,
    "remote_mask": None,
    "intensity_offset": None,
    "expert_scar_labels": None,
    "expert_core_labels": None,
    "dark_blood_lge": False,
    # a scar-rule row's border-zone conducting channels (cardioscar channels on its two fields' tags)
    "channels": False,
}

#: Columns that name a file (relative to the manifest): a mask or label map read by ``prepare``.
MASK_COLUMNS = ("myocardium_mask", "blood_pool_mask", "remote_mask")

#: Columns of later pipeline stages: recognised, refused with the reason while unsupported.
PLANNED = {
    "tags": "the tissue tags come from threshold (border zone) and core_threshold (core); give export to write "
            "them",
}

REQUIRED = ("id", "mesh", "image")
COLUMNS = REQUIRED + tuple(DEFAULTS) + tuple(PLANNED)
_POINT = re.compile(r"^\s*-?[\d.]+(?:[eE][-+]?\d+)?(?:\s*,\s*-?[\d.]+(?:[eE][-+]?\d+)?){2}\s*$")
#: The CLI options the library's messages name, as a manifest names them (its columns). ``--mc-samples``
#: is left alone: it is train's (``training_mc_samples``) or apply's (``mc_samples``).
COLUMN_OF_OPTION = {f"--{column.replace('_', '-')}": column for column in (
    "scar_labels", "myocardium_labels", "myocardium_mask", "myocardium_margin", "slice_indices", "slice_axis",
    "slice_thickness_padding", "normalize_intensities", "partial_volume_correction", "slice_profile", "shape_prior",
    "preset", "seed", "max_epochs", "threshold", "scar_rule", "scar_thresholds", "blood_pool_labels", "blood_pool_mask",
    "remote_mask", "intensity_offset", "expert_scar_labels", "expert_core_labels", "dark_blood_lge", "fibres",
    "helix_angles")} | {
    "--rv-point": "the aha point", "--rv-inferior-point": "the aha inferior point", "--image": "image",
    "--mesh": "mesh", "--core": "core_threshold"}
_OPTION = re.compile(r"--[a-z]+(?:-[a-z]+)*")
#: The fibre advice of the command line (:mod:`cardioscar.simulation.fibres`) as a manifest gives fibres:
#: its ``fibres`` column takes the rule or none, never a cell field.
FIBRE_ADVICE = {WITHOUT_RULE: "leave the fibres column empty (no fibres)",
                GIVE_FIBRES: "give the fibres column rule (the LV fibre rule)"}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


@dataclass(frozen=True)
class PatientSpec:
    """One validated patient: absolute input paths and the pipeline options that apply to it."""

    id: str
    row: int
    mesh: Path
    images: tuple[Path, ...]
    options: dict = field(default_factory=dict)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _cell(value: Any) -> str:
    """A CSV cell's text for a YAML list: ``[a, b]`` as ``a,b``, ``[[x, y, z], [x, y, z]]`` (two
    points) as ``x,y,z;x,y,z``; other values as :func:`_text` gives them."""
    if isinstance(value, (list, tuple)):
        return ";".join(_cell(part) for part in value) if any(isinstance(part, (list, tuple)) for part in value) \
            else ",".join(_text(part) for part in value)
    return _text(value)


def _int_list(value: Any) -> Optional[list[int]]:
    if isinstance(value, (list, tuple)):
        parts = [_text(v) for v in value]
    else:
        parts = [p for p in _text(value).replace(" ", "").split(",")]
    values = [int(p) for p in parts if p]
    if not values:
        raise ValueError("no integers")
    return values


def _slice_indices(value: Any) -> list[int]:
    values = _int_list(value)
    if min(values) < 0:
        raise ValueError("negative index")
    return values


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(text)


def _flag_or_auto(value: Any) -> bool | str:
    """yes / no, or ``auto`` (the shape prior on for drawn 0/1 targets over a stack only)."""
    return "auto" if _text(value).lower() == "auto" else _flag(value)


def _padding(value: Any) -> float | str:
    text = _text(value).lower()
    if text == "auto":
        return "auto"
    number = float(text)
    if not number > 0:
        raise ValueError(text)
    return number


def _bounded(kind: Callable, low: float, high: float = math.inf) -> Callable[[Any], Any]:
    """A parser of ``kind`` (int) values from ``low`` to ``high``; anything else is a ValueError, which
    the row's check words as the column's valid values."""
    def parse(value: Any) -> Any:
        text = _text(value)
        number = kind(text)
        if not low <= number <= high:
            raise ValueError(text)
        return number

    return parse


def _probability(value: Any) -> float:
    """A threshold strictly between 0 and 1: at 0 every node is scar, at 1 none (as the tags and
    the AHA analysis refuse them)."""
    text = _text(value)
    number = float(text)
    if not 0.0 < number < 1.0:
        raise ValueError(text)
    return number


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value)
        if text not in choices:
            raise ValueError(text)
        return text

    return parse


def _export(value: Any) -> Optional[tuple[str, ...]]:
    """``opencarp``, ``vtu`` or both (``opencarp;vtu``): the simulator files written beside the
    prediction, tagged healthy / border zone / core at ``threshold`` and ``core_threshold``."""
    text = _cell(value)
    if text.lower() in ("", "no", "none"):
        return None
    formats = tuple(dict.fromkeys(part.strip() for part in re.split(r"[;,]", text) if part.strip()))
    if not formats or any(fmt not in ("opencarp", "vtu") for fmt in formats):
        raise ValueError(text)
    return formats


def _fibres(value: Any) -> Optional[str]:
    """``rule`` (the LV fibre rule's fibres in every export format) or ``no``/empty (none)."""
    from cardioscar.simulation.fibres import RULE_NAME

    text = _text(value).lower()
    if text in ("", "no", "none"):
        return None
    if text != RULE_NAME:
        raise ValueError(text)
    return RULE_NAME


def _helix_angles(value: Any) -> list[float]:
    """``ENDO,EPI``: the fibre rule's helix angles, each within [-90, 90] degrees."""
    from cardioscar.simulation.fibres import check_helix_angles

    try:
        return list(check_helix_angles(tuple(_two_numbers(value))))
    except CardioScarError:
        raise ValueError(value) from None


def _two_numbers(value: Any) -> list[float]:
    """``BORDER,CORE`` as two numbers; their order and range per rule are checked by the rule's
    own reader (:func:`cardioscar.lge.rules.parse_thresholds`)."""
    parts = value if isinstance(value, (list, tuple)) else _text(value).split(",")
    numbers = [float(_text(part)) for part in parts]
    if len(numbers) != 2 or not all(math.isfinite(n) for n in numbers):
        raise ValueError(value)
    return numbers


def _finite(value: Any) -> float:
    number = float(_text(value))
    if not math.isfinite(number):
        raise ValueError(value)
    return number


#: column -> (parser, what a valid value looks like)
_PARSERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "slice_indices": (_slice_indices, "comma-separated slice indices >= 0, e.g. 2,5,8"),
    "slice_axis": (_choice("x", "y", "z"), "x, y or z"),
    "slice_thickness_padding": (_padding, "a slab half-width in mm > 0, or auto"),
    "scar_labels": (_int_list, "comma-separated integer labels, e.g. 3,4"),
    "normalize_intensities": (_flag, "yes or no"),
    "partial_volume_correction": (_flag, "yes or no"),
    "preset": (_choice("documented", "fast"), "documented or fast"),
    "shape_prior": (_flag_or_auto, "yes, no or auto"),
    # the training's own range (check_seed): a seed over 64 bits passed here and failed its patient
    # when it trained, after the cohort had started
    "seed": (_bounded(int, 0, MAX_SEED), f"an integer from 0 to 2**63-1 ({MAX_SEED}; seeds are stored as 64-bit "
                                         "integers)"),
    "max_epochs": (_bounded(int, 1), "an integer >= 1"),
    "training_mc_samples": (_bounded(int, 1), "an integer >= 1 (MC-dropout passes in the training loss)"),
    "threshold": (_probability, "a number between 0 and 1 (0 < threshold < 1)"),
    "core_threshold": (_probability, "a number between 0 and 1, above threshold"),
    "mc_samples": (_bounded(int, 1), "an integer >= 1"),
    "truth_field": (_text, "a point field name"),
    "myocardium_labels": (_int_list, "comma-separated integer labels of the myocardium, e.g. 2,3,4"),
    "myocardium_margin": (_bounded(int, 0), "a whole number of pixels >= 0 (0: none)"),
    "slice_profile": (_choice("box", "gaussian"), "box or gaussian"),
    "export": (_export, "opencarp, vtu or opencarp;vtu"),
    "fibres": (_fibres, "rule (the LV fibre rule, as export --fibres rule) or no"),
    "helix_angles": (_helix_angles, "two angles ENDO,EPI in degrees, each within [-90, 90], e.g. 60,-60"),
    "scar_rule": (_choice(*RULES), f"one of {', '.join(RULES)} (as prepare --scar-rule)"),
    "scar_thresholds": (_two_numbers, "two numbers BORDER,CORE, e.g. 2,3 for nsd (as prepare --scar-thresholds)"),
    "blood_pool_labels": (_int_list, "comma-separated integer labels of the blood pool, e.g. 1"),
    "intensity_offset": (_finite, "a number: the stored value of zero signal, e.g. 2048"),
    "expert_scar_labels": (_int_list, "comma-separated integer labels the experts drew as scar, e.g. 3,4"),
    "expert_core_labels": (_int_list, "comma-separated integer labels of the experts' core, e.g. 4"),
    "dark_blood_lge": (_flag, "yes or no (yes: a dark-blood LGE, as prepare --dark-blood-lge)"),
    "channels": (_flag, "yes or no (yes: the conducting channels of the row's tissue tags, as cardioscar channels)"),
}


def _aha(value: Any, base: Path) -> Any:
    """``X,Y,Z`` (the anterior RV insertion, in the mesh file's frame), ``X,Y,Z;X,Y,Z`` (the anterior
    and the inferior one, as ``aha --rv-point --rv-inferior-point``: the septum's width measured,
    not taken as 120 degrees) or a label map with the RV blood pool (label 1) and LV myocardium
    (label 2), relative to the manifest; ``no``: none. YAML lists are read as that text."""
    text = _cell(value)
    if text.lower() in ("", "no", "none"):
        return None
    points = text.split(";")
    if len(points) <= 2 and all(_POINT.match(point) for point in points):
        parsed = [[float(number) for number in point.split(",")] for point in points]
        return parsed[0] if len(parsed) == 1 else parsed  # one point as before: its rows' hashes unchanged
    path = base / text
    if not path.exists():
        raise ValueError(text)
    return str(_absolute(path))


def _yaml_word(value: Any) -> Any:
    """A YAML boolean as the word a CSV cell holds. Why: YAML reads ``no``, ``off`` and ``false``
    as False, whose text 'False' the columns that take ``no`` (``export``, ``aha``) refused."""
    return ("yes" if value else "no") if isinstance(value, bool) else value


def _read_rows(path: Path) -> list[dict]:
    """The manifest's rows as dictionaries (CSV header names or YAML keys), with defaults applied."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise CardioScarError(f"cannot read the manifest {path}: {error.strerror or error}") from None
    if suffix == ".csv":
        _refuse_repeated_columns(next(csv.reader(text.splitlines()), []), path)
        rows = list(csv.DictReader(text.splitlines()))
        if rows and None in rows[0]:
            raise CardioScarError(f"{path}: a row has more values than the header has columns (paths with commas "
                                  "must be quoted)")
        return [{k.strip(): v for k, v in row.items() if k is not None} for row in rows]
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.load(text, Loader=_loader_refusing_repeated_keys(path))
        except yaml.YAMLError as error:
            raise CardioScarError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
        defaults: dict = {}
        if isinstance(data, dict):
            defaults, data = data.get("defaults") or {}, data.get("patients")
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data) or not isinstance(defaults, dict):
            raise CardioScarError(f"{path}: expected a list of patients, or a mapping with 'patients' (a list) and "
                                  "optional 'defaults' (a mapping)")
        return [{key: _yaml_word(value) for key, value in {**defaults, **row}.items()} for row in data]
    raise CardioScarError(f"the manifest {path} must be a .csv, .yaml or .yml file")


def _refuse_repeated_columns(header: list[str], path: Path) -> None:
    """Refuse a CSV header that names a column twice (compared as the rows' keys are, spaces stripped),
    or that is one column holding ';' or tabs (a spreadsheet's CSV in a locale with decimal commas).

    Why (round 17): the CSV reader keeps the last of two same-named columns without a word, so a
    second ``image`` column (the long-axis views beside the stack) replaced the first: the patient
    trained on the long-axis image alone, exit 0."""
    names = [name.strip() for name in header]
    separator = next((mark for mark in (";", "\t") if len(names) == 1 and mark in names[0]), None)
    if separator:  # else listed as an unknown column 'id;mesh;image' and every row's id, mesh and image empty
        raise CardioScarError(f"{path}: the header is one column, {names[0]!r}: a file separated by "
                              f"{'tabs' if separator == chr(9) else repr(separator)} (as a spreadsheet saves CSV in some "
                              "locales); save it with commas between the columns")
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise CardioScarError(f"{path}: the header names column '{repeated[0]}' {names.count(repeated[0])} times (the "
                              "last would replace the others): give each column once; several images go in one "
                              "'image' cell, separated by ';'")


def _loader_refusing_repeated_keys(path: Path) -> type:
    """A YAML safe loader that refuses a mapping with a key given twice (PyYAML keeps the last
    without a word, as the CSV reader does with a column: :func:`_refuse_repeated_columns`)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *defaults': its keys may be overridden
                    continue
                key = self.construct_object(key_node, deep=deep)
                if repr(key) in seen:  # repr: a key may be a list
                    raise CardioScarError(f"{path}: line {key_node.start_mark.line + 1} gives '{key}' again (the last "
                                          "would replace the other): give each key once; several images go in one list")
                seen.add(repr(key))
            return super().construct_mapping(node, deep=deep)

    return Loader


def _images(value: Any) -> list[str]:
    parts = value if isinstance(value, (list, tuple)) else _text(value).split(";")
    return [_text(p) for p in parts if _text(p)]


def _absolute(path: Path) -> Path:
    """``path`` made absolute with ``..`` folded, its links kept. Why not ``resolve()``: a link's
    target named the files in errors and records, so a row giving ``N020/labels.nii.gz`` (a link
    into the shared EMIDEC folder) was refused as ``myocardium_mask Case_N020.nii.gz``."""
    return Path(os.path.abspath(path))


def _real(path: Path) -> Path:
    """The file ``path`` is, links followed: rows that reach one file by two links are one patient."""
    return Path(os.path.realpath(path))


def in_manifest_terms(message: str) -> str:
    """``message`` with the CLI options it names written as the manifest's columns.

    Why: a row's errors come from the library the CLI shares, so they said 'give the scar labels of
    this label map (--scar-labels)' to a user who has no such option, only a ``scar_labels``
    column (EMIDEC, a mistyped label)."""
    return _OPTION.sub(lambda found: COLUMN_OF_OPTION.get(found.group(0), found.group(0)),
                       advice_in_face_words(message, _manifest_advice()))


def _manifest_advice() -> dict[str, str]:
    """The command line's advice that a manifest gives otherwise, in its words: fibres
    (:data:`FIBRE_ADVICE`), and the AHA's (a row has no LV mask, and its long axis is its first
    image's slice normal, not ``--apex``/``--base``). Imported here, not at the top: the AHA's modules
    are not needed to read a manifest."""
    from cardioscar.aha.insertion import AXIS_POINTS_ADVICE
    from cardioscar.aha.islands import LV_MASK_DEBRIS_ADVICE

    return {**FIBRE_ADVICE, LV_MASK_DEBRIS_ADVICE: " (a cohort has no LV mask)",
            AXIS_POINTS_ADVICE: "check that the row's first image is the short-axis stack (its slice normal is the "
                                "row's long axis)"}


def _check_row(row: dict, number: int, base: Path, seen: dict[str, int]) -> tuple[Optional[PatientSpec], list[str]]:
    """One row's spec, or the list of its problems (one line each).

    Why in phases: every problem of a row is listed at once (a user mends the whole row in one go),
    so each phase collects its lines rather than raising; the options are judged in combination
    only once each column has been read on its own."""
    ident = _text(row.get("id"))
    where = f"row {number}" + (f" (id {ident})" if ident else "")
    mesh, images = _text(row.get("mesh")), _images(row.get("image"))
    options, option_problems = _row_options(row, base)
    problems = (_planned_columns_used(row) + _id_problems(ident, number, seen)
                + _input_problems(mesh, images, base) + option_problems + _combination_problems(options))
    if problems:
        return None, [f"{where}: {text}" for text in problems]
    spec = PatientSpec(ident, number, _absolute(base / mesh), tuple(_absolute(base / i) for i in images), options)
    try:
        preparation_request(spec)  # the library's own checks of option combinations, before anything runs
    except CardioScarError as error:
        return None, [f"{where}: {in_manifest_terms(str(error))}"]
    return spec, []


def _planned_columns_used(row: dict) -> list[str]:
    """A filled column of a feature the cohort does not run yet (:data:`PLANNED`)."""
    return [f"column '{column}': {reason}; leave it empty" for column, reason in PLANNED.items()
            if _text(row.get(column)) not in ("", "no", "none")]


def _id_problems(ident: str, number: int, seen: dict[str, int]) -> list[str]:
    """A malformed or repeated id; a good one is added to ``seen`` (casefolded id -> row number)."""
    if not _ID.match(ident):
        return [f"column 'id' must be letters, digits, '.', '_' or '-' (starting with a letter or digit), got {ident!r}"]
    if ident.casefold() in RUN_FILES:
        # each id names its results folder, which then took the place of the run's own file: the run
        # fitted every patient, then stopped on writing that file (the summary or the cohort's record)
        return [f"id {ident} is the name of a file the run writes beside the patients' folders "
                f"({', '.join(RUN_FILES)}); give the patient another id"]
    if ident.casefold() in seen:
        # compared without case: each id names its results folder, and on macOS and Windows
        # P001 and p001 are one folder, where the second patient's results replaced the first's
        return [f"id {ident} is also on row {seen[ident.casefold()]} (ids are compared without case: each names a "
                "results folder, one on macOS and Windows); ids must be unique"]
    seen[ident.casefold()] = number
    return []


def _input_problems(mesh: str, images: list[str], base: Path) -> list[str]:
    """A missing, mistyped or absent mesh, and missing or absent images (paths relative to ``base``)."""
    problems = []
    if not mesh:
        problems.append("column 'mesh' is empty: give the heart mesh (.vtk, .vtp, .vtu), relative to the manifest")
    elif (base / mesh).suffix.lower() not in MESH_SUFFIXES:
        problems.append(f"column 'mesh': {mesh} is not a {', '.join(MESH_SUFFIXES)} file")
    elif not (base / mesh).is_file():
        problems.append(f"column 'mesh': {base / mesh} does not exist")
    if not images:
        problems.append("column 'image' is empty: give the image(s) or DICOM folder(s), several separated by ';'")
    problems += [f"column 'image': {base / image} does not exist" for image in images if not (base / image).exists()]
    return problems


def _row_options(row: dict, base: Path) -> tuple[dict[str, Any], list[str]]:
    """The row's options (:data:`DEFAULTS` where a column is empty) and the columns that could not be
    read. Defaults that depend on another column are resolved here, so that a cohort's hash says
    what was run: the shape prior by the preset, and a scar rule's core threshold."""
    options, problems = dict(DEFAULTS), []
    for column in MASK_COLUMNS:
        mask = _text(row.get(column))
        if mask and not (base / mask).is_file():
            problems.append(f"column '{column}': {base / mask} does not exist")
        elif mask:
            options[column] = str(_absolute(base / mask))
    try:
        options["aha"] = _aha(row.get("aha"), base)
    except ValueError:
        problems.append(f"column 'aha' must be the anterior RV insertion X,Y,Z (the mesh's frame), it and the "
                        f"inferior one X,Y,Z;X,Y,Z, or an existing label map (RV 1, myocardium 2), got "
                        f"{_cell(row.get('aha'))!r}")
    for column, (parse, valid) in _PARSERS.items():
        value = row.get(column)
        if _text(value) == "" and not isinstance(value, (list, tuple)):
            continue
        try:
            options[column] = parse(value)
        except (TypeError, ValueError):
            problems.append(f"column '{column}' must be {valid}, got {_text(value)!r}")
    if options["shape_prior"] is None:
        options["shape_prior"] = "auto" if options["preset"] == "fast" else False
    if options["scar_rule"] is not None and _text(row.get("core_threshold")) == "":
        # two fields: the core model's probability is cut at the two-field default, as export's --core
        options["core_threshold"] = DEFAULT_CORE_TWO_FIELDS
    return options, problems


def _combination_problems(options: dict[str, Any]) -> list[str]:
    """Columns given without the column they need, and a core threshold at or under the scar's."""
    problems = []
    if options["myocardium_margin"] and options["myocardium_labels"] is None and options["myocardium_mask"] is None:
        problems.append(f"column 'myocardium_margin' ({options['myocardium_margin']}) widens a myocardium: give "
                        "myocardium_labels (a label map) or myocardium_mask too, or leave it empty")
    if options["fibres"] is not None and options["export"] is None:
        problems.append("column 'fibres' (rule) shapes the simulator files: give export too (opencarp, vtu), or leave "
                        "it empty")
    if options["helix_angles"] is not None and options["fibres"] is None:
        problems.append("column 'helix_angles' is for fibres rule (the LV fibre rule's angles): give fibres rule, or "
                        "leave it empty")
    if options["channels"] and options["scar_rule"] is None:
        problems.append("column 'channels' (yes) searches the border zone between a scar rule's two fields (scar and "
                        "core models): give scar_rule too, or leave it empty")
    if options["scar_rule"] is None and options["core_threshold"] <= options["threshold"]:
        problems.append(f"column 'core_threshold' ({options['core_threshold']}) must be above threshold "
                        f"({options['threshold']})")
    return problems


def rule_request(spec: PatientSpec, target: str = "scar") -> Optional[ScarRuleRequest]:
    """The scar rule ``cardioscar prepare --scar-rule ... --scar-target TARGET`` would be asked for
    this patient (None without ``scar_rule``), through the command line's own reader, so that the
    manifest refuses what ``prepare`` refuses (its options then named as the columns, :func:`in_manifest_terms`)."""
    options = spec.options
    thresholds = options["scar_thresholds"]
    args = argparse.Namespace(
        scar_rule=options["scar_rule"], scar_target=target,
        scar_thresholds=None if thresholds is None else ",".join(str(t) for t in thresholds),
        blood_pool_labels=options["blood_pool_labels"], intensity_offset=options["intensity_offset"],
        expert_scar_labels=options["expert_scar_labels"], expert_core_labels=options["expert_core_labels"],
        dark_blood_lge=options["dark_blood_lge"], myocardium_labels=options["myocardium_labels"],
        **{column: None if options[column] is None else Path(options[column]) for column in MASK_COLUMNS})
    return scar_rule_request(args)


def preparation_request(spec: PatientSpec, target: str = "scar") -> PreprocessingRequest:
    """What ``cardioscar prepare`` would be asked for this patient (with a scar rule: for the
    ``target`` field, scar or core)."""
    options = spec.options
    return PreprocessingRequest(
        mesh_path=spec.mesh,
        image_path=list(spec.images),
        slice_axis=options["slice_axis"],
        slice_indices=options["slice_indices"],
        slice_thickness_padding=options["slice_thickness_padding"],
        scar_labels=options["scar_labels"],
        normalize_intensities=options["normalize_intensities"],
        partial_volume_correction=options["partial_volume_correction"],
        myocardium_labels=options["myocardium_labels"],
        myocardium_mask=options["myocardium_mask"],
        myocardium_margin_px=options["myocardium_margin"],
        slice_profile=options["slice_profile"],
        scar_rule=rule_request(spec, target),
    )


def _unknown_columns(rows: list[dict]) -> list[str]:
    """One line per unknown column (a CSV header's typo would otherwise be reported on every row)."""
    where: dict[str, list[int]] = {}
    for number, row in enumerate(rows, start=1):
        for column in set(row) - set(COLUMNS):
            where.setdefault(column, []).append(number)
    return [f"unknown column '{column}' ({'every row' if len(found) == len(rows) else 'rows ' + ', '.join(map(str, found))}); "
            f"valid columns: {', '.join(COLUMNS)}" for column, found in sorted(where.items())]


def read_manifest(path: str | Path) -> list[PatientSpec]:
    """Read and validate a manifest; raise one :class:`CardioScarError` listing every problem.

    Row numbers count data rows from 1 (a CSV's header is not a row).
    """
    path = Path(path)
    rows = _read_rows(path)
    if not rows:
        raise CardioScarError(f"the manifest {path} has no patients")
    seen: dict[str, int] = {}
    patients, errors = [], _unknown_columns(rows)
    for number, row in enumerate(rows, start=1):
        spec, problems = _check_row(row, number, _absolute(path).parent, seen)
        errors.extend(problems)
        if spec is not None:
            patients.append(spec)
    if errors:
        listed = "\n  ".join(errors)
        raise CardioScarError(f"the manifest {path} has {len(errors)} problem(s):\n  {listed}")
    _warn_shared_inputs(patients)
    _warn_copied_inputs(patients)
    return patients


def _warn_shared_inputs(patients: list[PatientSpec]) -> None:
    """Warn about rows that share a mesh or an image file: a row copied and half edited puts one
    patient's LGE on another's heart, and where every image has the same origin (challenge data
    converted to NIfTI, EMIDEC's) that mesh lies inside the field of view and nothing else
    objects; a patient on two rows is counted twice in the cohort's table. Both can be meant
    (one mesh under two settings), so a warning names the rows."""
    by_file: dict[Path, list[PatientSpec]] = {}
    for spec in patients:
        for source in {_real(spec.mesh), *map(_real, spec.images)}:  # a link and its target are one file
            by_file.setdefault(source, []).append(spec)
    reported: set[tuple[str, ...]] = set()
    for source, specs in by_file.items():
        ids = tuple(spec.id for spec in specs)
        if len(specs) < 2 or ids in reported:
            continue
        reported.add(ids)
        same = len({(_real(spec.mesh), tuple(map(_real, spec.images))) for spec in specs}) == 1
        logger.warning("the manifest's rows %s (ids %s) %s: %s", ", ".join(str(spec.row) for spec in specs),
                       ", ".join(ids), "have the same mesh and images" if same else f"share {source.name}",
                       "the same patient twice?" if same else "a row copied and not fully edited? each patient "
                       "needs its own mesh and images")


def file_digest(path: Path, digest: "hashlib._Hash") -> None:
    """Feed the bytes of the file ``path`` into ``digest``, a block at a time."""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def _byte_identical(paths: Iterable[Path]) -> list[list[Path]]:
    """The groups of two or more ``paths`` whose files hold the same bytes; only files that share
    their size with another are read (two patients' files all but never do)."""
    by_size: dict[int, list[Path]] = {}
    for path in paths:
        by_size.setdefault(path.stat().st_size, []).append(path)
    by_content: dict[str, list[Path]] = {}
    for path in (path for same_size in by_size.values() if len(same_size) > 1 for path in same_size):
        digest = hashlib.sha256()
        file_digest(path, digest)
        by_content.setdefault(digest.hexdigest(), []).append(path)
    return [copies for copies in by_content.values() if len(copies) > 1]


def _warn_copied_inputs(patients: list[PatientSpec]) -> None:
    """Warn about rows whose mesh or image files are byte-identical copies at other paths.

    Why: a patient's folder copied as the template of the next one (``P002/`` from ``P001/``) and
    not filled with P002's files ran as two patients, both ``done``, the same heart counted twice
    in the cohort's table, without a word: :func:`_warn_shared_inputs` compares paths, and these are
    two files."""
    owners: dict[Path, list[PatientSpec]] = {}
    for spec in patients:
        for path in dict.fromkeys([_real(spec.mesh), *map(_real, spec.images)]):  # the mesh first, in the warning too
            if path.is_file():  # a DICOM folder is not compared
                owners.setdefault(path, []).append(spec)
    by_row = {spec.row: spec for spec in patients}
    copied: dict[tuple[int, ...], list[str]] = {}  # the rows -> the names of the files they share
    for copies in _byte_identical(owners):
        rows = tuple(sorted({spec.row for path in copies for spec in owners[path]}))
        if len(rows) > 1:
            copied.setdefault(rows, []).append(copies[0].name)
    for rows, names in copied.items():
        logger.warning("the manifest's rows %s (ids %s) read byte-identical copies of %s: the same patient's files "
                       "copied into another's folder? each patient needs its own mesh and images",
                       ", ".join(map(str, rows)), ", ".join(by_row[row].id for row in rows), ", ".join(names))
