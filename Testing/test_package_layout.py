"""The package's stage layout and the flat module names it had before.

Modules live in stage sub-packages (``cardioscar.fit.training``); the old flat names
(``cardioscar.training``) are aliases answered by ``cardioscar.old_names``. These tests check that
each old name is the very same module object (not a copy, so a monkeypatch through either name
changes what the library runs), that the alias table covers exactly the moved modules and nothing
else answers to a wrong name, that ``import cardioscar`` stays light, and that every import line
written in the API reference and the README resolves.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
import sys

import pytest

import cardioscar
from cardioscar.old_names import MOVED, OldNameFinder
from conftest import REPO_ROOT

PACKAGE_DIR = REPO_ROOT / "CardioScarLib" / "cardioscar"
STAGES = sorted({new.split(".")[0] for new in MOVED.values()})
SPEC = REPO_ROOT.parent / "shared" / "spec" / "cardioscar-api-reference.md"
README = REPO_ROOT / "README.md"
#: the issue-18 record and the user guide's reference pages moved out of the README; their module
#: names and paths are the README's
ROBUSTNESS = REPO_ROOT / "Testing" / "benchmarks" / "ROBUSTNESS.md"
GUIDE = sorted((REPO_ROOT / "Documentation").glob("*.md"))


#: Modules of the stage sub-packages made after the split, which never had a flat name (the
#: torch-free training configuration, split from ``fit.training``, which re-exports its class; the
#: figures drawn without pyplot).
SINCE_THE_SPLIT = {"fit.config", "io.figures"}


def _stage_modules() -> set[str]:
    """Every module file of the stage sub-packages the old names point into, as ``stage.module``
    (less those made after the split)."""
    return {f"{stage}.{path.stem}" for stage in STAGES for path in (PACKAGE_DIR / stage).glob("*.py")
            if path.stem != "__init__"} - SINCE_THE_SPLIT


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_name_is_the_same_module_object(old):
    alias = importlib.import_module(f"cardioscar.{old}")
    module = importlib.import_module(f"cardioscar.{MOVED[old]}")
    assert alias is module
    assert sys.modules[f"cardioscar.{old}"] is module and getattr(cardioscar, old) is module
    # the module keeps its own identity: name, spec and file are those of its new place
    assert module.__name__ == module.__spec__.name == f"cardioscar.{MOVED[old]}"
    assert module.__file__ == str(PACKAGE_DIR / (MOVED[old].replace(".", "/") + ".py"))
    assert not (PACKAGE_DIR / f"{old}.py").exists()  # an alias, not a copy left behind


def test_monkeypatch_through_an_old_name_changes_the_library_module(monkeypatch):
    from cardioscar.fit import training

    sentinel = object()
    monkeypatch.setattr("cardioscar.training.fit_scar_field", sentinel)
    assert training.fit_scar_field is sentinel
    monkeypatch.undo()
    assert training.fit_scar_field is not sentinel and callable(training.fit_scar_field)


def test_alias_table_covers_exactly_the_moved_modules():
    assert set(MOVED.values()) == _stage_modules()
    assert len(set(MOVED.values())) == len(MOVED)  # one old name per module
    # an old name is not also a real module or package at the top level
    assert not {old for old in MOVED if (PACKAGE_DIR / old).is_dir()}


def test_no_module_answers_to_a_wrong_name():
    wrong = []
    for new in sorted(_stage_modules()):
        stage, leaf = new.split(".")
        for other in STAGES:  # the module under another stage's package (unless that one has its own file)
            spec = importlib.util.find_spec(f"cardioscar.{other}.{leaf}")
            if other != stage and spec is not None and spec.origin != str(PACKAGE_DIR / other / f"{leaf}.py"):
                wrong.append(f"cardioscar.{other}.{leaf}")
        flat = importlib.util.find_spec(f"cardioscar.{leaf}")  # the flat name of a module not in the table
        if leaf not in MOVED and flat is not None and flat.origin != str(PACKAGE_DIR / leaf / "__init__.py"):
            wrong.append(f"cardioscar.{leaf}")
    assert not wrong
    # the finder answers only its own table's names: below an old name, a near miss, another package
    for name in ("cardioscar.training.training", "cardioscar.trainings", "cardioscar.fit.fit", "training",
                 "cardioscar.aha.training", "othertool.training"):
        assert OldNameFinder().find_spec(name) is None
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(name)
    with pytest.raises(AttributeError):
        cardioscar.no_such_module


def test_old_names_first_in_a_fresh_process_and_import_stays_light():
    """A fresh interpreter: the old names are imported before the new ones, and the package alone
    loads none of the heavy libraries."""
    code = (
        "import sys, cardioscar\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'vtk', 'SimpleITK', 'numpy', 'scipy'})\n"
        "assert not heavy, heavy\n"
        "assert type(sys.meta_path[0]).__name__ == 'OldNameFinder'\n"
        "from cardioscar.training import TrainingConfig\n"
        "import cardioscar.slices as old_slices\n"
        "import cardioscar.fit.training, cardioscar.prepare.slices\n"
        "assert TrainingConfig is cardioscar.fit.training.TrainingConfig\n"
        "assert TrainingConfig.__module__ == 'cardioscar.fit.config'  # torch-free, re-exported by fit.training\n"
        "assert old_slices is cardioscar.prepare.slices is sys.modules['cardioscar.slices']\n"
        "import importlib; importlib.reload(cardioscar)\n"
        "assert sum(type(f).__name__ == 'OldNameFinder' for f in sys.meta_path) == 1\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


#: A fresh interpreter runs the commands that neither train nor predict, then names the torch
#: modules it loaded (``{segmented}``, ``{out}``: the phantom's files, a scratch folder).
TORCH_FREE_COMMANDS = """
import json, sys
from pathlib import Path
from cardioscar.cli import main
from cardioscar.cohort.runner import COHORT_RECORD
files, out = {segmented}, Path({out})
image = ["--image", files["label_map"], "--scar-labels", "3", "--myocardium-labels", "2,3",
         "--slice-thickness-padding", "3"]
codes = [main(["prepare", "--mesh", files["mesh"], *image, "--output", str(out / "data.npz")]),
         main(["evaluate", "--prediction", files["mesh"], "--probability-field", "scar_fraction_truth",
               "--truth-image", *image[1:], "--json", str(out / "scores.json")])]
(out / "cohort").mkdir()
(out / "cohort" / COHORT_RECORD).write_text(json.dumps({{"patients": [{{"id": "P1", "input_hash": "0"}}]}}))
codes.append(main(["cohort", "status", str(out / "cohort")]))
print(json.dumps({{"codes": codes, "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}}))
"""


def test_commands_that_do_not_train_do_not_import_torch(segmented, tmp_path):
    """prepare, evaluate --truth-image and cohort status start without torch's import (1.6-1.9 s
    of every run before): cardioscar.logic binds its fit and predict names on first use."""
    files = {key: str(segmented[key]) for key in ("mesh", "label_map")}
    code = TORCH_FREE_COMMANDS.format(segmented=repr(files), out=repr(str(tmp_path)))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"codes": [0, 0, 0], "torch": []}, result.stderr[-2000:]
    assert (tmp_path / "data.npz").is_file() and json.loads((tmp_path / "scores.json").read_text())["dice"] > 0


def test_torch_side_names_bind_on_first_use_and_keep_a_patch(monkeypatch):
    """As after a fresh import (the names unbound), a name patched first is kept when the rest bind,
    and each bound name is its module's own object; ``import *`` gives every name of ``__all__``."""
    import cardioscar.logic as logic
    from cardioscar.fit import checkpoint, training
    from cardioscar.predict import inference

    for name in logic._TORCH_NAMES:
        monkeypatch.delitem(vars(logic), name, raising=False)
    patched = object()
    monkeypatch.setitem(vars(logic), "mc_dropout_predict", patched)  # no getattr: nothing binds yet
    assert logic.fit_scar_field is training.fit_scar_field  # the first access binds the rest
    assert logic.mc_dropout_predict is patched and logic.load_checkpoint is checkpoint.load_checkpoint
    monkeypatch.undo()
    assert logic.mc_dropout_predict is inference.mc_dropout_predict and "TrainingConfig" in dir(logic)
    names: dict = {}
    exec("from cardioscar.logic import *", names)
    assert set(logic.__all__) <= set(names) and names["TrainingConfig"] is training.TrainingConfig
    with pytest.raises(AttributeError):
        logic.no_such_name


def _import_lines(markdown: str) -> list[str]:
    """The one-line ``cardioscar`` imports of a Markdown file: in its Python code blocks, and as
    inline code in its prose."""
    lines = re.findall(r"`(from cardioscar[\w.]* import [\w, ]+)`", markdown)
    for block in re.findall(r"```python\n(.*?)```", markdown, re.S):
        lines += [line.strip() for line in block.splitlines()
                  if re.match(r"\s*(from cardioscar[\w.]* import [^(]+$|import cardioscar[\w.]*( as \w+)?$)", line)]
    return lines


def _resolve(dotted: str) -> object:
    """``cardioscar.a.b.C``: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("documents", [[SPEC], [README, ROBUSTNESS, *GUIDE]], ids=["api-reference", "README"])
def test_documented_module_paths_resolve(documents):
    """Every import line and every inline ``cardioscar.x.y`` name the documents give a reader works."""
    text = "\n".join(document.read_text(encoding="utf-8") for document in documents)
    lines = _import_lines(text)
    names = sorted(set(re.findall(r"`(cardioscar(?:\.\w+)+)", text)))
    assert len(lines) + len(names) >= 5, f"too few cardioscar names found in {documents}"
    failed = []
    for line in lines:
        try:
            exec(line, {})
        except ImportError as exc:
            failed.append(f"{line}: {exc}")
    for name in names:
        try:
            _resolve(name)
        except (ImportError, AttributeError) as exc:
            failed.append(f"{name}: {exc!r}")
    assert not failed


def test_documented_file_paths_exist():
    """The ``cardioscar/...py`` paths of the README, its robustness record and the user guide's pages, and every module row
    of ARCHITECTURE.md's tables, name files that exist, and every stage module has its row (no stale
    rows after a move)."""
    readme_paths = [path for document in (README, ROBUSTNESS, *GUIDE)
                    for path in re.findall(r"`(cardioscar/[\w/]+\.py)`", document.read_text(encoding="utf-8"))]
    missing = [path for path in readme_paths if not (PACKAGE_DIR.parent / path).is_file()]
    architecture = (REPO_ROOT / "CardioScarLib" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = [cell for line in architecture.splitlines() if line.startswith("| `")
            for cell in re.findall(r"`([\w/]+(?:\.py|/))`", line.split(" | ")[0])]
    missing += [row for row in rows if not (PACKAGE_DIR / row).exists()]
    assert not missing
    assert {f"{new.replace('.', '/')}.py" for new in MOVED.values()} <= set(rows)
