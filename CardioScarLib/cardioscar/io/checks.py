"""Checks of the user's options that every face (command line, batch script, Python API, Slicer
Logic) runs before any work, so that one input meets one refusal everywhere.

Why before: an output path that cannot be written, found after an hour of training, loses the
hour; a seed out of range ends in torch's overflow traceback.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import CardioScarError

#: Seeds are stored as signed 64-bit integers (checkpoints, .npz, JSON readers), so the valid
#: range is 0..2**63-1, although torch alone would take up to 2**64-1.
MAX_SEED = 2**63 - 1
#: How far a label map's voxel may be from a whole number (float files keep 1.9999 for 2).
LABEL_TOLERANCE = 1e-3
#: The most different non-zero values a mask given without labels may hold: one (0/1, 0/255) or a
#: label map's few labels (EMIDEC 4, ACDC 3); a probability map (0..100, 0..255) or an image holds more.
MAX_MASK_VALUES = 16
#: How far (mm) the same node may lie in two files of one mesh (files may keep float32).
SAME_NODE_TOLERANCE_MM = 1e-3
#: The mesh files every face reads and writes (here, not in :mod:`cardioscar.io.meshio`, so that
#: the command line refuses a wrong name before VTK loads; ``meshio.MESH_SUFFIXES`` is this tuple).
MESH_SUFFIXES = (".vtk", ".vtp", ".vtu")


#: ``TrainingConfig.shape_prior`` value (the fast preset's) that lets the targets decide
#: (:func:`cardioscar.shape_prior.use.training_prior`); here, not in :mod:`cardioscar.fit.training`,
#: so that ``prepare`` stores the prior without importing torch.
SHAPE_PRIOR_AUTO = "auto"
#: The words every face takes for the shape prior (``--shape-prior``, the panel's box, the
#: Slicer Logic's options), as ``TrainingConfig.shape_prior`` values.
SHAPE_PRIOR_WORDS = {"on": True, "off": False, "auto": SHAPE_PRIOR_AUTO}


def shape_prior_word(text: str) -> bool | str | None:
    """True, False or ``"auto"`` for on / off / auto in any case and spacing; None for any other text."""
    return SHAPE_PRIOR_WORDS.get(text.strip().lower())


def check_seed(seed: object, option: str = "--seed") -> int:
    """``seed`` as an int in 0..2**63-1, else a one-line error naming ``option``."""
    if isinstance(seed, bool) or not isinstance(seed, int) and not hasattr(seed, "__index__"):
        raise CardioScarError(f"{option} must be an integer in 0..2**63-1 ({MAX_SEED}), got {seed!r}")
    value = int(seed)
    if not 0 <= value <= MAX_SEED:
        raise CardioScarError(f"{option} must be in 0..2**63-1 ({MAX_SEED}), got {value}")
    return value


def check_label_list(labels: object, field: str, example: str) -> list[int] | None:
    """``labels`` (a list of label values, or None) as ints; text, a bare number, a fraction or a
    bool is refused in one line naming ``field``, with ``example`` (e.g. ``[3, 4]``) as the form.

    Why: the Python API's label fields were read with ``int(v) for v in labels``, so the text
    ``"23"`` became labels 2 and 3 (the myocardium trained as scar with the infarct), ``"3,4"``
    a ``ValueError`` traceback, and 3.7 label 3: numbers that were never the user's labels."""
    if labels is None:
        return None
    if isinstance(labels, (str, bytes, dict)) or not isinstance(labels, Iterable):
        raise CardioScarError(f"{field} must be a list of whole label values such as {example}, got {labels!r}"
                              + (" (the text form is the command line's)" if isinstance(labels, str) else ""))
    values = []
    for value in np.asarray(list(labels), dtype=object).ravel():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
                or not float(value).is_integer():
            raise CardioScarError(f"{field} must hold whole label values such as {example}, got {value!r} in {labels!r}")
        values.append(int(value))
    return values


def check_threshold(value: object, option: str = "--threshold") -> float:
    """``value`` as a float strictly between 0 and 1, else a one-line error naming ``option``.

    Why: at 0 every node is scar and at 1 only a probability of exactly 1 is (none, in practice):
    a binary map, Dice or volume cut there is a trivial answer, not a measurement; NaN cuts nothing.
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CardioScarError(f"{option} must be a number between 0 and 1 (0 < threshold < 1), got {value!r}") from None
    if not 0.0 < number < 1.0:
        raise CardioScarError(f"{option} {number:g} is outside the valid range 0 < threshold < 1 (0 calls every node "
                              "scar, 1 none): give e.g. 0.5")
    return number


def _existing_ancestor(path: Path) -> Path:
    for folder in [path, *path.parents]:
        if folder.exists():
            return folder
    return Path(".")


def check_output_place(path: str | os.PathLike, option: str = "output") -> Path:
    """Refuse an output file that is an existing folder or lies under a file (cheap: no file is
    created; :func:`cardioscar.io.atomic.atomic_write` runs it for every write)."""
    target = Path(path)
    if target.is_dir():
        raise CardioScarError(f"{option} {target} is a folder; give a file name inside it")
    existing = _existing_ancestor(target.parent)
    if not existing.is_dir():
        raise CardioScarError(f"{option} {target}: {existing} is a file, not a folder; choose a path in a folder")
    return target


def _check_writable_folder(folder: Path, option: str, target: Path) -> None:
    """The nearest existing folder at or above ``folder`` must be a folder where a file can be
    created (tried for real: permissions, read-only mounts and /proc all answer the same way)."""
    existing = _existing_ancestor(folder)
    if not existing.is_dir():
        raise CardioScarError(f"{option} {target}: {existing} is a file, not a folder; choose a path in a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".cardioscar-write-check.", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise CardioScarError(f"{option} {target}: cannot create files in {existing} ({error.strerror or error}); "
                              "choose a writable folder") from None


def check_mesh_points(points_lps: object, mesh_name: str = "The mesh") -> np.ndarray:
    """``points_lps`` as an (N, 3) float64 array of finite coordinates, or a one-line refusal
    naming ``mesh_name`` (a file, a Slicer model node); the one check of a mesh's nodes, for points
    read from a file (:func:`cardioscar.io.meshio.read_mesh`) and points given in memory.

    Why (round 17): the in-memory API (and the Slicer Logic, which reads a model node's points)
    took any array. A node at NaN (a failed transform, a broken export) reached the network, which
    then answered NaN and ``predict_on_points`` blamed the model ("its weights are damaged;
    retrain it"); True/False values (a mask given for the points) were read as coordinates 0 and 1
    and predicted without a word. A file's message said only that some node was NaN; it now says
    how many and which, as the in-memory one does."""
    array = np.asarray(points_lps)
    if array.dtype == bool:
        raise CardioScarError(f"{mesh_name}'s points are True/False values (a mask?), not coordinates: give the nodes' "
                              "LPS coordinates in mm, an (N, 3) array.")
    points = np.asarray(array, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise CardioScarError(f"{mesh_name} must have at least one node with 3 coordinates, got an array of shape "
                              f"{points.shape}.")
    bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
    if bad.size:
        raise CardioScarError(f"{mesh_name}: {bad.size} of its {len(points)} nodes have NaN or infinite coordinates (node "
                              f"{bad[0]} first): fix or remove them in the mesh (a failed transform or export).")
    return points


#: Point fields CardioScar writes beside ``scar_probability`` that lie in [0, 1] but are not a scar
#: probability: cut at a probability threshold they would pass every range check and tag or count
#: the wrong nodes (the uncertain ones), so they are refused by name. The geometry's and the
#: scoring's fields too: ``export --scar-field transmural_depth`` on the raw-LGE demo's prediction
#: tagged a third of the wall core by its depth alone, exit 0 (round 15); a channel search's
#: ``wall_depth``, the core model's spread, and ``evaluate --write-truth``'s 0/1 mark of the scored
#: nodes pass the [0, 1] check as well.
NOT_SCAR_FIELDS = {
    "scar_uncertainty": "the MC-dropout spread of the scar probability",
    "scar_error_risk": "the chance that the call at 0.5 is wrong",
    "core_uncertainty": "the MC-dropout spread of the core probability",
    "core_error_risk": "the chance that the core model's call at 0.5 is wrong",
    "transmural_depth": "the node's depth through the wall (0 endocardium, 1 epicardium)",
    "wall_depth": "the node's depth through the wall that the channel search wrote (0 endocardium, 1 epicardium)",
    "scar_truth_scored": "the mark of the nodes evaluate scored against the slices (1 scored, 0 not)",
    "bz_channel": "the number of the conducting channel a node lies in (0 none)",
    "core_marginal": "the channel search's mark of the core nodes within 0.1 of the core threshold (1 marked, 0 not)",
}


def check_scar_field_name(name: str | None, option: str) -> None:
    """Refuse, by name, a field of :data:`NOT_SCAR_FIELDS` given as the scar (or core) field."""
    if name in NOT_SCAR_FIELDS:
        raise CardioScarError(f"{option} '{name}' is {NOT_SCAR_FIELDS[name]}, not a scar probability: give "
                              "scar_probability (or the field holding the scar probability)")


#: The files of an openCARP set, written at ``PREFIX`` + each suffix (``.lon`` only with fibres).
SET_SUFFIXES = (".pts", ".elem", ".lon", ".json")


def check_prefix(prefix: str | Path, what: str = "--output", vtu_format: str = "--format vtu") -> None:
    """Refuse a prefix that is the name of one of the set's files (or of a ``.vtu``): ``--output
    heart.pts`` wrote heart.pts.pts, heart.pts.elem and heart.pts.json, and openCARP, told
    ``heart``, finds none of them. ``what`` and ``vtu_format`` name the prefix and the choice of
    the vtu format in the caller's words."""
    path = Path(prefix)
    suffix = path.suffix.lower()
    if suffix not in SET_SUFFIXES + (".vtu",):
        return
    stem = path.with_suffix("")
    extra = f"; for one tagged .vtu, the vtu format ({vtu_format})" if suffix == ".vtu" else ""
    raise CardioScarError(f"{what} {path} names a file, but the openCARP files take a prefix: give {stem} (it "
                          f"writes {stem.name}.pts, {stem.name}.elem and {stem.name}.json){extra}")


def check_vtk_file(path: str | os.PathLike, allowed_suffixes: tuple[str, ...] = MESH_SUFFIXES) -> Path:
    """Refuse a VTK input that is a folder, missing, or of a kind not in ``allowed_suffixes``;
    returns the path. :func:`cardioscar.io.meshio.read_vtk_dataset` runs it before reading, and
    the command line before VTK loads (a refused name then costs no import of VTK)."""
    source = Path(path)
    if source.is_dir():
        raise CardioScarError(f"{source} is a folder, not a file: give the {' / '.join(allowed_suffixes)} file inside it")
    if not source.is_file():
        raise CardioScarError(f"File not found: {source}")
    if source.suffix.lower() not in allowed_suffixes:
        raise CardioScarError(
            f"Unsupported file type '{source.suffix}' for {source.name}; use one of {', '.join(allowed_suffixes)}")
    return source


def _present(path: str | os.PathLike, message: str, folder_ok: bool = False) -> Path:
    """``path`` as a Path when a file (or, ``folder_ok``, anything) is there; else ``message`` with
    the path in its ``{}`` as the one-line refusal. The one body of the input checks below, which
    differ in what they call the input and what to give instead."""
    source = Path(path)
    if not (source.exists() if folder_ok else source.is_file()):
        raise CardioScarError(message.format(source))
    return source


def check_training_data_file(path: str | os.PathLike) -> Path:
    """Refuse training data that is not a file (:func:`cardioscar.logic.load_preprocessing_result`
    and ``cardioscar train`` before torch loads); returns the path."""
    return _present(path, "Training data file not found: {}")


def check_model_file(path: str | os.PathLike) -> Path:
    """Refuse a scar-field checkpoint that is not a file (:func:`cardioscar.fit.checkpoint.load_checkpoint`,
    and ``fine-tune --model`` before torch loads); returns the path."""
    return _present(path, "checkpoint file {} does not exist: give the .pth written by 'cardioscar train'")


def check_attrivae_model_file(path: str | os.PathLike) -> Path:
    """Refuse an Attri-VAE ``--model`` that is not a file (its loader, and ``attrivae predict`` /
    ``explain`` before torch loads); returns the path."""
    return _present(path, "--model {} not found: give a model from `cardioscar attrivae train`")


def check_format_version(version: object, where: str, newest: int, damaged_fix: str, newer_fix: str) -> int:
    """A model file's ``format_version`` as an int in 1..``newest``, or one line naming ``where``.

    Why: a newer CardioScar's file may store keys in another meaning (read in this build's, a wrong
    answer with exit 0), and a text or fractional version is a damaged or hand-edited file; a bare
    ``>`` raised a TypeError on text. Shared by the scar-field and the Attri-VAE loaders and the
    training data's reader, whose ``.npz`` holds the number as a numpy array, and a model file, which may
    hold it as a torch tensor (a file saved by a script that wrote ``torch.tensor(2)``): one element of
    either is read as its value, so both model loaders read one file alike.

    A whole number stored as a float (2.0: a file rewritten by a tool whose numbers are all floats,
    MATLAB's or JavaScript's JSON) is read as that version: the number is the same, and it was
    refused as "not a whole number >= 1", which it is, leaving nothing the user could fix but the file."""
    if isinstance(version, (np.ndarray, np.generic)) and np.size(version) == 1:
        version = np.asarray(version).reshape(()).item()
    torch = sys.modules.get("torch")  # a tensor was loaded by torch, so torch is there; never imported here
    if torch is not None and isinstance(version, torch.Tensor) and version.numel() == 1:
        version = version.item()  # a float tensor's value is checked as a float's
    # said as the file holds it (3.0, 1e+300): a float 1e300 said as the int it equals filled the line
    # with 301 digits
    written = repr(version)
    if isinstance(version, float) and version.is_integer():
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, numbers.Integral) or version < 1:
        raise CardioScarError(f"{where} has format_version {written}, not a whole number >= 1 (a damaged or "
                              f"hand-edited file): {damaged_fix}")
    if version > newest:
        raise CardioScarError(f"{where} has format_version {written}, newer than this CardioScar reads ({newest}): "
                              f"{newer_fix}")
    return int(version)


def check_image_exists(path: str | os.PathLike) -> Path:
    """Refuse an image path with nothing there, a file or a DICOM folder being what
    :func:`cardioscar.io.imageio.read_image` reads (it runs this; the command line runs it before
    SimpleITK loads); returns the path."""
    return _present(path, "Image not found: {}", folder_ok=True)


def check_output_path(path: str | os.PathLike, option: str = "--output", suffixes: tuple[str, ...] = ()) -> Path:
    """Refuse, before any work, an output file that cannot be written: a wrong suffix (when
    ``suffixes`` are given), an existing folder, a path under a file, a folder where no file can
    be created. Returns the path."""
    target = Path(path)
    if not target.name or target.name in (".", ".."):
        raise CardioScarError(f"{option}: no file name given (got '{path}'); name the file to write")
    if suffixes and not target.name.lower().endswith(tuple(s.lower() for s in suffixes)):
        raise CardioScarError(f"{option} must end in {' or '.join(suffixes)}, got '{target.name}'")
    check_output_place(target, option)
    _check_writable_folder(target.parent, option, target)
    return target


def check_not_an_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None],
                       option: str = "--output") -> None:
    """Refuse an output file that is one of ``inputs`` (None: not given), in one line naming
    ``option``. Why: the output is replaced whole, so the input would be gone; for a mesh the
    result is a superset, but not of everything (``apply`` drops an earlier run's tags, channels
    and core fields), and the user's file is changed either way. A Slicer model node is updated in
    place by design; a file on disk is not."""
    target = Path(output)
    if not target.exists():
        return
    for given in inputs:
        if given is not None and Path(given).exists() and os.path.samefile(target, given):
            raise CardioScarError(f"{option} {target} is also an input: choose another file name")


def check_output_dir(path: str | os.PathLike, option: str = "--output-dir") -> Path:
    """Refuse, before any work, an output folder that is a file or where no file can be created."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise CardioScarError(f"{option} {folder} is a file, not a folder; give a folder (it is created if missing)")
    _check_writable_folder(folder, option, folder)
    return folder


#: What :func:`whole_labels` advises of an image that holds values other than labels.
IMAGE_LABELS_ADVICE = "give the mask, not an intensity image, and resample a label map with nearest neighbour, not linearly"


def whole_labels(values: np.ndarray, source: str, unit: str = "voxels", advice: str = IMAGE_LABELS_ADVICE) -> np.ndarray:
    """The voxels of a label map as whole numbers (float files keep 1.9999 for 2), or a one-line
    error naming ``source`` when one is not: a label map resampled with linear interpolation holds
    1.0 between 0 and 2 (another label: its edges would be read as blood pool) and 2.5 between 2
    and 3 (no label), so matching labels on it would be silently wrong at every edge. ``unit`` and
    ``advice``: what the values are and how to mend them, for labels that are not an image's (a
    mesh's point field of nodes)."""
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return values
    rounded = np.rint(values)
    off = ~(np.abs(values - rounded) <= LABEL_TOLERANCE)  # NaN counts as off
    if off.any():
        raise CardioScarError(f"{source} holds values that are not labels (e.g. {values[off].flat[0]:g}, "
                              f"{int(off.sum())} {unit}): a mask or label map holds whole numbers; {advice}")
    return rounded


def check_mask_values(values: np.ndarray, source: str) -> None:
    """Refuse a mask read without labels (every non-zero voxel inside) that holds more than
    MAX_MASK_VALUES different non-zero whole values: a probability map stored 0..100 or 0..255, or
    an intensity image, named by ``source``.

    Why: whole numbers pass :func:`whole_labels`, so a myocardium probability map in percent was
    taken whole, its faint tails included: on EMIDEC P015 n-SD then graded 322 scar rows where the
    0/1 mask gives 1,714, exit 0 (and the LGE itself as the mask was refused listing its hundreds
    of grey values as "labels")."""
    present = np.unique(values[np.isfinite(values) & (values != 0)])
    if present.size > MAX_MASK_VALUES:
        raise CardioScarError(f"{source} holds {present.size} different non-zero values ({present[0]:g} to "
                              f"{present[-1]:g}) where a mask holds one (0/1) or a few labels: a probability map or an "
                              "intensity image is no mask; threshold it into a 0/1 mask (e.g. at half its maximum), or "
                              "give the labels of a label map")


#: ``TrainingConfig.schedule`` values: the documented triangular cycle, or one warm-up and decay.
TRAINING_SCHEDULES = ("cyclical", "onecycle")
#: ``TrainingConfig`` fields that count something (rows, epochs, passes, units): whole numbers >= 1.
_POSITIVE_INT_FIELDS = ("batch_size", "max_epochs", "early_stopping_patience", "mc_samples", "lr_step_size",
                        "hidden_dim", "n_layers")
#: ... that are rates or lengths: finite numbers > 0.
_POSITIVE_FLOAT_FIELDS = ("base_lr", "max_lr", "fourier_scale_mm")


def _is_whole(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


#: How a training option's error names it (``TrainingConfig``'s field after it), the API's words;
#: the command line names its own option instead (``cli.TRAINING_WORDS``).
TRAINING_OPTION = "training option"
#: The rule between the schedule's rates, and the advice for a convergence tolerance on the
#: cyclical schedule, in the API's words (a face words them its own way: ``advice_in_face_words``).
BELOW_MAX_LR = "must be <= max_lr"
ONE_CYCLE_ADVICE = "set it to 0 or choose onecycle"


def check_training_values(values: dict) -> dict:
    """The ``TrainingConfig`` fields in ``values`` checked and normalised (ints, floats, the
    shape prior's word as True/False/"auto"); a one-line error naming the field otherwise.

    Why here and on a dict: ``TrainingConfig`` lives with the training loop, which imports torch;
    the command line checks the options it was given with this same function before that import,
    so ``train --batch-size 0`` answers at once, in the words the config (every other face) uses.
    A rule between two fields runs when both are in ``values`` (the config passes all of them)."""
    checked = dict(values)
    for name in _POSITIVE_INT_FIELDS:
        if name in checked:
            value = checked[name]
            if not _is_whole(value) or value < 1:
                raise CardioScarError(f"{TRAINING_OPTION} {name} must be a positive integer, got {value!r}")
            checked[name] = int(value)
    if "fourier_features" in checked:
        value = checked["fourier_features"]
        if not _is_whole(value) or value < 0:
            raise CardioScarError(f"{TRAINING_OPTION} fourier_features must be an integer >= 0, got {value!r}")
        checked["fourier_features"] = int(value)
    if "shape_prior" in checked:
        value = checked["shape_prior"]
        if isinstance(value, (bool, np.bool_)):
            checked["shape_prior"] = bool(value)
        elif isinstance(value, str) and shape_prior_word(value) is not None:
            # the words every other face takes (CLI, Slicer options, manifest; "Auto" from a JSON config too)
            checked["shape_prior"] = shape_prior_word(value)
        else:
            raise CardioScarError(f"{TRAINING_OPTION} shape_prior must be true, false, 'on', 'off' or "
                                  f"'{SHAPE_PRIOR_AUTO}', got {value!r}")
    for name in _POSITIVE_FLOAT_FIELDS:
        if name in checked:
            value = checked[name]
            if not _is_number(value) or not math.isfinite(value) or value <= 0:
                raise CardioScarError(f"{TRAINING_OPTION} {name} must be a positive number, got {value!r}")
            checked[name] = float(value)
    if "base_lr" in checked and "max_lr" in checked and checked["base_lr"] > checked["max_lr"]:
        raise CardioScarError(
            f"{TRAINING_OPTION} base_lr ({checked['base_lr']}) {BELOW_MAX_LR} ({checked['max_lr']})")
    if "weight_decay" in checked:
        value = checked["weight_decay"]
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            raise CardioScarError(f"{TRAINING_OPTION} weight_decay must be a number >= 0, got {value!r}")
        checked["weight_decay"] = float(value)
    if "convergence_tolerance" in checked:
        value = checked["convergence_tolerance"]
        if not _is_number(value) or not 0.0 <= value < 1.0:
            raise CardioScarError(f"{TRAINING_OPTION} convergence_tolerance must be in [0, 1) (0: no test), "
                                  f"got {value!r}")
        checked["convergence_tolerance"] = float(value)
    if "dropout_rate" in checked:
        value = checked["dropout_rate"]
        if not _is_number(value) or not 0.0 <= value < 1.0:
            raise CardioScarError(f"{TRAINING_OPTION} dropout_rate must be in [0, 1), got {value!r}")
        checked["dropout_rate"] = float(value)
    if "seed" in checked:
        checked["seed"] = check_seed(checked["seed"], f"{TRAINING_OPTION} seed")
    if "schedule" in checked and checked["schedule"] not in TRAINING_SCHEDULES:
        raise CardioScarError(f"{TRAINING_OPTION} schedule must be one of {', '.join(TRAINING_SCHEDULES)}, "
                              f"got {checked['schedule']!r}")
    if checked.get("convergence_tolerance", 0) > 0 and checked.get("schedule", "onecycle") != "onecycle":
        raise CardioScarError(f"{TRAINING_OPTION} convergence_tolerance needs schedule 'onecycle' (the cyclical "
                              f"schedule ends on its patience); {ONE_CYCLE_ADVICE}")
    if checked.get("num_threads") is not None and (not isinstance(checked["num_threads"], (int, np.integer))
                                                   or checked["num_threads"] < 1):
        raise CardioScarError(f"{TRAINING_OPTION} num_threads must be a positive integer or None, "
                              f"got {checked['num_threads']!r}")
    return checked


#: The largest ``max_width_mm`` of the conducting-channel search (mm). Conducting channels on LGE
#: scar maps are a few mm to 10-20 mm wide (Andreu et al. 2011, 2017); closing the core at half of
#: a wider width fills gaps of the size of a whole LV segment (a wall ~150-200 mm round), so every
#: border zone between two patches of core becomes an "enclosed corridor" and the count says
#: nothing about isthmuses.
MAX_MAX_WIDTH_MM = 30.0


def check_channel_options(layers: Iterable[float] | None = None, layer_width: float | None = None,
                          max_width_mm: float | None = None, min_length_mm: float | None = None) -> None:
    """One-line errors for the channel search's options (``ChannelOptions``; None: not given, not
    checked): layers outside [0, 1] or given twice, a band outside (0, 1], a width outside
    (0, ``MAX_MAX_WIDTH_MM``] or a negative minimum length.

    Why here: ``ChannelOptions`` lives with the search, which imports VTK and SciPy; the command
    line checks the options it was given with this function before those load, in the same words.
    A repeated depth is refused rather than merged: the search runs each depth once, so
    ``channels.json`` would list a layer its per-layer counts hold once (and a typo such as
    0.1,0.1 for 0.1,0.2 would go unseen)."""
    if layers is not None:
        depths = [float(v) for v in layers]
        given = f"--layers {','.join(f'{v:g}' for v in depths) or '(none)'}"
        if not depths or any(not 0.0 <= v <= 1.0 for v in depths):
            raise CardioScarError(f"{given}: give depths between 0 (endocardium) and 1 (epicardium), e.g. "
                                  "0.1,0.2,...,0.9")
        repeated = next((v for v in depths if depths.count(v) > 1), None)
        if repeated is not None:
            times = depths.count(repeated)
            raise CardioScarError(f"{given}: depth {repeated:g} is given {'twice' if times == 2 else f'{times} times'}; "
                                  "give each depth once")
    if layer_width is not None and not 0.0 < layer_width <= 1.0:
        raise CardioScarError(f"--layer-width {layer_width:g} must lie in (0, 1] (a share of the wall)")
    if max_width_mm is not None:
        if not math.isfinite(max_width_mm) or max_width_mm <= 0.0:
            raise CardioScarError(f"--max-width {max_width_mm:g} must be a positive width in mm")
        if max_width_mm > MAX_MAX_WIDTH_MM:
            raise CardioScarError(
                f"--max-width {max_width_mm:g}: give a width in (0, {MAX_MAX_WIDTH_MM:g}] mm (conducting channels "
                "are a few mm to 10-20 mm wide; a wider closing turns the border zone between any two core patches "
                "into a corridor)")
    if min_length_mm is not None and (not math.isfinite(min_length_mm) or min_length_mm < 0.0):
        raise CardioScarError(f"--min-length {min_length_mm:g} must be a length in mm >= 0 (0 keeps every "
                              "channel)")
