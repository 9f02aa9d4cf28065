"""Checkpoint files: atomic save, safe load, model rebuild.

A checkpoint holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``, which cannot execute code from a crafted file. Files written
by the reference tool load too: their architecture defaults to 4 x 128 when absent, and the
numpy arrays and scalars they hold (coordinate scalers from ``np.load``, losses) are allowed by
name through :data:`NUMPY_GLOBALS`; numpy's array reconstruction unpickles only plain data.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import os
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from cardioscar import __version__
from cardioscar.io.atomic import atomic_write
from cardioscar.io.checks import check_format_version, check_model_file
from cardioscar.io.meshio import is_vtk_file
from cardioscar.fit.engines import BayesianNN
from cardioscar.errors import CardioScarError

logger = logging.getLogger(__name__)

def _numpy_globals() -> list:
    """What a pickled numpy array or scalar names. A file keeps the module names of the numpy that
    wrote it (``numpy.core`` in 1.x, ``numpy._core`` in 2.x); torch >= 2.6 accepts both names for
    one function, older ones only the installed numpy's own."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    functions = [(multiarray._reconstruct, "_reconstruct"), (multiarray.scalar, "scalar")]
    if torch.__version__ >= "2.6":
        named = [(function, f"{module}.multiarray.{name}") for function, name in functions
                 for module in ("numpy.core", "numpy._core")]
    else:
        named = [function for function, _ in functions]
    kinds = (np.float64, np.float32, np.int64, np.int32, np.int16, np.uint8, np.bool_)
    return named + [np.ndarray, np.dtype] + [type(np.dtype(kind)) for kind in kinds]


#: Globals besides torch's own that a checkpoint may name (see the module docstring).
NUMPY_GLOBALS = _numpy_globals()

REQUIRED_KEYS = ("model_state_dict",)
#: The layout of a scar-field checkpoint, stored as ``format_version``: a later build that changes
#: what a key means raises it, so this build refuses that file instead of reading it in the old
#: meaning (a wrong field, exit 0). 1 is the layout of every file before the key existed (ours and
#: the reference tool's), so a file without it reads as 1; builds before the key ignore it, so the
#: files this one writes still load there.
CHECKPOINT_FORMAT = 1
ARCHITECTURE_KEYS = ("input_dim", "hidden_dim", "n_layers", "dropout_rate", "fourier_features")
DEFAULT_ARCHITECTURE = {"input_dim": 3, "hidden_dim": 128, "n_layers": 4, "dropout_rate": 0.1, "fourier_features": 0}


def _plain(value):
    """Convert numpy scalars/arrays and paths to checkpoint-safe Python types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor) or value is None:
        return value
    for plain_type in (bool, int, float, str):  # exact types: subclasses (TorchVersion) do not unpickle safely
        if isinstance(value, plain_type):
            return plain_type(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint")


#: The reference tool's names for history entries (its scripts read ``history['losses']``), kept
#: beside ours. Its ``converged_epoch`` counted the epochs run; ours is the best epoch, whose
#: weights the checkpoint holds (``epochs_run`` counts them).
REFERENCE_HISTORY_NAMES = {"losses": "train_loss", "lrs": "learning_rate", "training_time": "seconds"}


def build_checkpoint(model: BayesianNN, history: dict, config, dataset_info: dict,
                     provenance: dict | None = None) -> dict:
    """Assemble the checkpoint dict.

    ``hyperparameters`` = the model's architecture merged with the training configuration
    (``config.to_dict()`` or a dict); ``provenance`` gains the cardioscar and torch versions and
    the date unless given.
    """
    config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    hyperparameters = {**config_dict, **model.architecture()}
    stamp = {"cardioscar_version": __version__, "torch_version": str(torch.__version__),
             "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    stamp.update(provenance or {})
    return {
        "format_version": CHECKPOINT_FORMAT,
        "model_state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "history": _plain({**history, **{reference: history[ours] for reference, ours in REFERENCE_HISTORY_NAMES.items()
                                          if ours in history}}),
        "hyperparameters": _plain(hyperparameters),
        "dataset_info": _plain(dataset_info),
        "provenance": _plain(stamp),
    }


def save_checkpoint(checkpoint: dict, path: str | os.PathLike) -> None:
    """Write ``checkpoint`` to ``path`` atomically (a failed write leaves any old file intact)."""
    if not isinstance(checkpoint, dict) or "model_state_dict" not in checkpoint:
        raise CardioScarError("a checkpoint must be a dict with a 'model_state_dict' entry")
    safe = _plain(checkpoint)
    # Serialised in memory (a model is small) and written by Python: a full disk then says "No
    # space left on device" instead of torch's "enforce fail at inline_container.cc", and the
    # archive's inner folder is torch's neutral "archive", not the temporary file's name.
    buffer = io.BytesIO()
    torch.save(safe, buffer)
    with atomic_write(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    logger.debug("saved checkpoint %s", path)  # its caller logs the one line about the model


#: Most bytes a checkpoint may unpack to. A 4 x 128 network takes 0.2 MB, a 16 x 2048 one 250 MB;
#: a crafted file whose compressed entries inflate beyond this is refused before loading.
MAX_CHECKPOINT_BYTES = 512 * 2**20


def _check_allocation(path: Path) -> None:
    """Refuse a checkpoint that would allocate more than :data:`MAX_CHECKPOINT_BYTES`: torch's
    zip format may hold compressed entries (a few hundred KB can inflate to gigabytes), the old
    plain-pickle format is bounded by its size."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                unpacked = sum(entry.file_size for entry in archive.infolist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return  # torch.load reports the damage below
    else:
        unpacked = path.stat().st_size
    if unpacked > MAX_CHECKPOINT_BYTES:
        raise CardioScarError(f"{path} would unpack to {unpacked / 2**20:.0f} MB, more than a CardioScar checkpoint "
                              f"may ({MAX_CHECKPOINT_BYTES // 2**20} MB): refused; retrain or restore a backup")


#: The ``format`` of an Attri-VAE checkpoint (``cardioscar.attrivae.checkpoint.FORMAT``, not imported:
#: the scar-field stages do not depend on the Attri-VAE package).
ATTRIVAE_FORMAT = "cardioscar-attrivae"


def _other_stage_file(path: Path) -> str | None:
    """What another stage's file given as a model is (prepare's ``.npz``, a VTK mesh such as apply's
    prediction), from its first bytes; None for anything else. Why: each was called "truncated,
    corrupted ...: retrain or restore a backup", sending the user to retrain a model that was fine
    (round 18; the reverse, a model given as training data, is named since round 16)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
            if names and all(name.endswith(".npy") for name in names):
                return "training data (a numpy .npz, as 'cardioscar prepare' writes; it goes to train --training-data)"
            return None
    except (OSError, zipfile.BadZipFile):
        return None
    return "a VTK mesh (such as apply's prediction; meshes go to --mesh)" if is_vtk_file(path) else None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``) and check its required keys."""
    path = check_model_file(path)
    _check_allocation(path)
    # torch < 2.5 has no safe_globals: there only files without numpy objects (ours) load
    allowed = getattr(torch.serialization, "safe_globals", None)
    try:
        with allowed(NUMPY_GLOBALS) if allowed is not None else contextlib.nullcontext(), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's advice on old-format files; the file is checked below
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every unpickling failure means the same thing to the user
        logger.debug("torch.load(%s, weights_only=True) failed: %s", path, exc)
        other = _other_stage_file(path)
        if other:
            raise CardioScarError(f"{path} is {other}, not a trained model: give the .pth written by "
                                  "'cardioscar train'") from None
        raise CardioScarError(f"{path} is not a valid CardioScar checkpoint (truncated, corrupted, or holding "
                              f"objects other than plain data): retrain or restore a backup") from None
    if not isinstance(checkpoint, dict):
        raise CardioScarError(f"{path} is not a valid CardioScar checkpoint (not a dict): retrain or restore a backup")
    if checkpoint.get("format") == ATTRIVAE_FORMAT:
        raise CardioScarError(f"{path} is an Attri-VAE model (MI classification, from 'cardioscar attrivae train'), "
                              "not a scar-field model: give the .pth written by 'cardioscar train' (Attri-VAE models "
                              "go to 'cardioscar attrivae predict')")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CardioScarError(f"{path} is not a valid CardioScar checkpoint (missing {', '.join(missing)}): "
                              f"retrain or restore a backup")
    check_checkpoint_format(checkpoint, path)
    for key in ("hyperparameters", "history", "dataset_info"):
        if not isinstance(checkpoint.get(key, {}), dict):
            raise CardioScarError(f"{path} is not a valid CardioScar checkpoint ({key} is a "
                                  f"{type(checkpoint[key]).__name__}, not a dict): retrain or restore a backup")
    return checkpoint


def check_checkpoint_format(checkpoint: dict, where: object) -> None:
    """Refuse a checkpoint of a layout this build cannot read: a ``format_version`` above
    :data:`CHECKPOINT_FORMAT` (a newer CardioScar's file, whose keys may mean other things), or
    one that is not a whole number >= 1 (a damaged or hand-edited file); none reads as 1. Run on
    every file :func:`load_checkpoint` reads and on a dict given in memory (the Python API's
    ``predict_on_points``, the Slicer Logic's ``apply_model``) before its network is built."""
    check_format_version(checkpoint.get("format_version", CHECKPOINT_FORMAT), str(where), CHECKPOINT_FORMAT,
                         "retrain or restore a backup", "upgrade cardioscar, or retrain with this one")


def _linear_indices(state: dict) -> list[int]:
    """Positions of the Linear layers in the ``network`` Sequential that wrote ``state``."""
    return sorted({int(key.split(".")[1]) for key in state if re.fullmatch(r"network\.\d+\.(weight|bias)", key)})


def _dropout_after(state: dict) -> list[int]:
    """The hidden layers a dropout followed in the network that wrote ``state``: between two
    Linear layers sit a ReLU, and a Dropout where the gap is wider. Ours follow every second
    layer; the reference tool's code puts one after hidden layer 2, whatever its docstring says."""
    indices = _linear_indices(state)
    return [k for k, (here, following) in enumerate(zip(indices, indices[1:])) if following - here > 2]


def _ordered_linear_state(state: dict, model: BayesianNN) -> dict:
    """Map ``network.<i>.weight/bias`` entries onto the model's Linear layers by order.

    The reference tool places its dropout layers at other positions of the Sequential, so the
    same Linear layers have other indices in its files; their order is what identifies them.
    """
    indices = _linear_indices(state)
    linears = model.linear_layers()
    if len(indices) != len(linears):
        raise CardioScarError(f"the checkpoint has {len(indices)} Linear layers but its hyperparameters describe "
                              f"{len(linears)}: retrain or restore a backup")
    names = {id(module): name for name, module in model.named_modules()}
    mapped = {key: value for key, value in state.items() if key.startswith("encoding.")}
    for index, layer in zip(indices, linears):
        for part in ("weight", "bias"):
            mapped[f"{names[id(layer)]}.{part}"] = state[f"network.{index}.{part}"]
    return mapped


def model_from_checkpoint(checkpoint: dict) -> BayesianNN:
    """Rebuild the network of a checkpoint (ours or the reference tool's), in eval mode, with its
    dropout layers where the network that wrote it had them. A dict given in memory (not read by
    :func:`load_checkpoint`) has its ``format_version`` checked here."""
    check_checkpoint_format(checkpoint, "The checkpoint (in memory)")
    hyper = dict(checkpoint.get("hyperparameters") or {})
    for alias, key in (("hidden_size", "hidden_dim"), ("n_hidden_layers", "n_layers")):
        if key not in hyper and alias in hyper:
            hyper[key] = hyper[alias]
    arch = {key: hyper.get(key, DEFAULT_ARCHITECTURE[key]) for key in ARCHITECTURE_KEYS}
    try:
        model = BayesianNN(int(arch["input_dim"]), int(arch["hidden_dim"]), int(arch["n_layers"]),
                           float(arch["dropout_rate"]), _dropout_after(checkpoint["model_state_dict"]),
                           fourier_features=int(arch["fourier_features"]))
        model.load_state_dict(_ordered_linear_state(checkpoint["model_state_dict"], model))
    except CardioScarError:
        raise
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CardioScarError(f"the checkpoint's weights do not fit a {arch['n_layers']} x {arch['hidden_dim']} "
                              f"network ({first[:120]}): retrain or restore a backup") from None
    model.eval()
    return model
