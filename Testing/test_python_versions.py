"""The oldest Python we support: 3.9, the Python that Slicer 5.8 embeds (5.10 embeds 3.12).

No Python 3.9 is installed where the tests run, so its rules are checked on the source: the
3.9 grammar, and the features newer Pythons added that parse fine but fail when run on 3.9
(``X | Y`` evaluated at run time, ``zip(strict=...)``, ``dataclass(slots=/kw_only=)``,
names from newer ``typing`` / ``itertools``). The declared versions must agree with it.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OLDEST = (3, 9)
SOURCES = sorted([*(REPO / "CardioScarLib" / "cardioscar").glob("*.py"), *(REPO / "CardioScar").rglob("*.py"),
                  *(REPO / "AttriVAE").rglob("*.py")])
#: Names added after 3.9 to modules the code may import them from.
NEWER_NAMES = {"typing": {"TypeAlias", "ParamSpec", "Concatenate", "TypeGuard", "Self", "Never", "LiteralString",
                          "Required", "NotRequired", "assert_never", "reveal_type", "dataclass_transform"},
               "itertools": {"pairwise", "batched"}, "contextlib": {"aclosing", "chdir"}}
BUILTIN_TYPES = {"int", "float", "str", "bool", "bytes", "list", "dict", "tuple", "set", "frozenset", "type", "object"}


def _annotations(tree: ast.AST) -> set[int]:
    """ids of every node inside an annotation (not evaluated at run time under the future import)."""
    inside = set()
    for node in ast.walk(tree):
        roots = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            roots = [a.annotation for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                                            arguments.vararg, arguments.kwarg] if a is not None and a.annotation]
            roots += [node.returns] if node.returns else []
        elif isinstance(node, ast.AnnAssign):
            roots = [node.annotation]
        inside |= {id(sub) for root in roots for sub in ast.walk(root)}
    return inside


def _is_type_like(node: ast.expr) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or (
        isinstance(node, ast.Name) and node.id in BUILTIN_TYPES) or isinstance(node, ast.Subscript) or (
        isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and _is_type_like(node.left))


def problems(source: str) -> list[str]:
    """What would fail on Python 3.9 in ``source`` (empty: nothing found)."""
    try:
        tree = ast.parse(source, feature_version=OLDEST)
    except SyntaxError as error:
        return [f"line {error.lineno}: not 3.9 syntax ({error.msg})"]
    found = []
    future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
                 for n in tree.body)
    annotated = _annotations(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and \
                (_is_type_like(node.left) or _is_type_like(node.right)):
            if id(node) not in annotated or not future:
                found.append(f"line {node.lineno}: a | union evaluated at run time (3.10+)")
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            keywords = {k.arg for k in node.keywords}
            if name == "zip" and "strict" in keywords:
                found.append(f"line {node.lineno}: zip(strict=...) (3.10+)")
            if name.split(".")[-1] == "dataclass" and keywords & {"slots", "kw_only", "match_args"}:
                found.append(f"line {node.lineno}: dataclass({', '.join(sorted(keywords))}) (3.10+)")
        if isinstance(node, ast.ImportFrom) and node.module in NEWER_NAMES:
            for alias in node.names:
                if alias.name in NEWER_NAMES[node.module]:
                    found.append(f"line {node.lineno}: {node.module}.{alias.name} (after 3.9)")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.attr in NEWER_NAMES.get(node.value.id, ()):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr} (after 3.9)")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_runs_on_the_oldest_supported_python(path):
    assert problems(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("source", [
    "def f(x):\n    match x:\n        case 1: pass\n",
    "from __future__ import annotations\nok: int | None = None\nbad = isinstance(1, int | str)\n",
    "def f(x: int | None): pass\n",
    "for a, b in zip([1], [2], strict=True): pass\n",
    "from itertools import pairwise\n",
    "from dataclasses import dataclass\n@dataclass(slots=True)\nclass A: pass\n",
])
def test_the_check_finds_what_fails_on_3_9(source):
    assert problems(source)


def test_the_declared_python_and_slicer_versions_agree():
    project = tomllib.loads((REPO / "CardioScarLib" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["requires-python"] == ">=3.9"
    extension = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r'set\(EXTENSION_DESCRIPTION\s+"[^"]*Slicer 5\.8 or later', extension)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "Slicer 5.8 and later" in readme and "Python 3.9" in readme
