"""An explanation's files by name, without the network's code (the Slicer module's Logic keeps
them in the user's folder without loading torch into Slicer's process)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

logger = logging.getLogger(__name__)


def attention_file(folder: Path, attribute: str) -> Path:
    """Where ``explain`` writes the attention map of ``attribute``."""
    return folder / f"attention_{attribute}.nii.gz"


def traversal_file(folder: Path, attribute: str) -> Path:
    """Where ``explain`` writes the traversal picture of ``attribute``."""
    return folder / f"traversal_{attribute}.png"


def earlier_explanation_files(folder: Path, names: Sequence[str], known: Iterable[str]) -> list[Path]:
    """The attention maps and traversal pictures an earlier explanation left in ``folder`` for the
    ``known`` attributes not in ``names`` (a file of another name is never the library's).

    Why: explaining again with other attributes (or another model) left them beside the new
    ``explain.json``, which lists only its own: files named as this case's maps, of another run."""
    return [path for attribute in known if attribute not in names
            for path in (attention_file(folder, attribute), traversal_file(folder, attribute)) if path.is_file()]


def say_removed(folder: Path, removed: Iterable[Path]) -> None:
    """Warn of each of :func:`earlier_explanation_files` that went with a new explanation's set."""
    for path in removed:
        logger.warning("Removed %s from %s: an earlier explanation's, of an attribute this one does not explain",
                       path.name, folder)
