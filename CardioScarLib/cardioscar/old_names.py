"""The module names from before the stage sub-packages, kept working as aliases.

Scripts, notebooks, the API reference and the README import flat names (``cardioscar.training``,
``cardioscar.slices``, ...). Each old name here is the module of its stage's sub-package itself,
not a copy: ``from cardioscar.training import TrainingConfig`` gets the class of
``cardioscar.fit.training``, and ``monkeypatch.setattr("cardioscar.training.X", ...)`` changes what
the library runs. Nothing is imported until an old name is used, so ``import cardioscar`` stays
light. Only the names in :data:`MOVED` are answered; any other name is left to Python.
"""

from __future__ import annotations  # annotations unevaluated: no typing import, ``import cardioscar`` stays light

import importlib
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType

#: Old name (below ``cardioscar.``) -> the module's name now (below ``cardioscar.``).
MOVED = {
    "atomic": "io.atomic",
    "checks": "io.checks",
    "imageio": "io.imageio",
    "meshio": "io.meshio",
    "slices": "prepare.slices",
    "targets": "prepare.targets",
    "myocardium": "prepare.myocardium",
    "partial_volume": "prepare.partial_volume",
    "mapping": "prepare.mapping",
    "mesh_from_labels": "prepare.mesh_from_labels",
    "normalization": "fit.normalization",
    "engines": "fit.engines",
    "batching": "fit.batching",
    "cpu_step": "fit.cpu_step",
    "training": "fit.training",
    "devices": "fit.devices",
    "checkpoint": "fit.checkpoint",
    "inference": "predict.inference",
    "error_risk": "predict.error_risk",
    "meshscale": "predict.meshscale",
    "metrics": "evaluate.metrics",
    "baselines": "evaluate.baselines",
    "heldout": "evaluate.heldout",
    "phantom": "phantoms.phantom",
    "phantom_segmented": "phantoms.phantom_segmented",
    "demo": "phantoms.demo",
    "report": "phantoms.report",
    "aha_command": "commands.aha",
    "attrivae_command": "commands.attrivae",
    "cohort_command": "commands.cohort",
    "mesh_cli": "commands.mesh_from_labels",
}

PACKAGE = __name__.rpartition(".")[0]


def current_name(old_name: str) -> str | None:
    """The full name now of a full old name (``cardioscar.training`` -> ``cardioscar.fit.training``),
    or None when it is not an old name."""
    package, _, leaf = old_name.rpartition(".")
    if package != PACKAGE or leaf not in MOVED:
        return None
    return f"{PACKAGE}.{MOVED[leaf]}"


class _AliasLoader:
    """Hands the import system the already-imported module instead of executing a file (the
    loader protocol; not derived from ``importlib.abc``, whose import costs ~30 ms)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.target_spec: ModuleSpec | None = None

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self.target_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # Python stamps the alias's spec on the module it loads; the module keeps its own, so that
        # importlib.reload and tools that read __spec__ see its real name and file.
        module.__spec__ = self.target_spec


class OldNameFinder:
    """Answers only the old names; first on ``sys.meta_path`` so that a stale ``training.py`` left
    in an upgraded install or build tree cannot be imported as a second, outdated copy."""

    def find_spec(self, fullname: str, path: list[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        new_name = current_name(fullname)
        if new_name is None:
            return None
        return ModuleSpec(fullname, _AliasLoader(new_name))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (a reloaded package must not add a second one)."""
    if not any(isinstance(finder, OldNameFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, OldNameFinder())


def alias_attribute(name: str) -> ModuleType:
    """``cardioscar.<old name>`` as an attribute (module ``__getattr__``): imports the module, as the
    flat layout's side-effect imports used to make available."""
    if name not in MOVED:
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
    return importlib.import_module(f"{PACKAGE}.{name}")
