"""The repository carries everything its tests read: no test or example points outside it.

A fresh clone has nothing beside it, so a path that climbs above the repository root (a
``../shared`` folder, ``Path(__file__).parents[2]``, a walk over every ancestor) works on one
machine and fails everywhere else. The checker here reads the sources' syntax trees; its own
tests below show it catches the patterns that once slipped in.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from data_files import DATA

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    p
    for folder in ("tests", "examples")
    for p in (ROOT / folder).rglob("*.py")
    # this file's own examples are the very patterns it looks for
    if "__pycache__" not in p.parts and p != Path(__file__).resolve()
)

# a ".." path component, the maintainers' folders beside the checkout, or an absolute path of
# one machine ("shared" alone may name a folder a test makes, so it is not enough)
_OUTSIDE_TEXT = re.compile(r"(^|[/\\])\.\.([/\\]|$)|(^|[/\\])shared[/\\]|^(/work/|~/)")
_PATH_CALLS = {"Path", "PurePath", "abspath", "realpath", "resolve", "absolute", "expanduser"}


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string nodes that are docstrings (they may name paths in prose)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


class _Climb:
    """How many directory levels above a source file an expression rooted in ``__file__`` (or
    in the working directory, which pytest's is the repository root) is."""

    def __init__(self, tree: ast.AST, root: int) -> None:
        self.root = root
        self.names: dict[str, int] = {}
        # flow-insensitive: ``here = Path(__file__).resolve()`` makes ``here`` level 0
        for _ in range(3):
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                    level = self.level(node.value)
                    if isinstance(target, ast.Name) and level is not None:
                        self.names[target.id] = level

    def level(self, node: ast.AST) -> int | None:
        if isinstance(node, ast.Name):
            return 0 if node.id == "__file__" else self.names.get(node.id)
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("cwd", "getcwd") and not node.args:
                return self.root
            if name == "dirname" and node.args:
                inner = self.level(node.args[0])
                return None if inner is None else inner + 1
            if name in _PATH_CALLS:
                if node.args:
                    return self.level(node.args[0])
                if isinstance(func, ast.Attribute):
                    return self.level(func.value)
            return None
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            inner = self.level(node.value)
            return None if inner is None else inner + 1
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "parents"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, int)
        ):
            inner = self.level(node.value.value)
            return None if inner is None else inner + node.slice.value + 1
        return None


def outside_references(source: str, depth: int) -> Iterator[tuple[int, str]]:
    """``(line, what)`` for each place in ``source`` that reaches above the repository root.

    ``depth`` is how many folders lie between the root and the file (``tests/x.py``: 1), so
    climbing ``depth + 1`` levels from ``__file__`` reaches the root and one more leaves it.
    """
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    climb = _Climb(tree, root=depth + 1)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and _OUTSIDE_TEXT.search(node.value)
        ):
            yield node.lineno, f"the path {node.value!r}"
        if isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
            level = climb.level(node)
            if level is not None and level > depth + 1:
                yield node.lineno, f"{ast.unparse(node)} climbs {level - depth - 1} above the root"
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "parents"
            and climb.level(node.value) is not None
        ):
            parent = _parent_of(tree, node)
            if not (isinstance(parent, ast.Subscript) and parent.value is node):
                yield node.lineno, f"{ast.unparse(node)} walks every ancestor, outside included"


def _parent_of(tree: ast.AST, child: ast.AST) -> ast.AST | None:
    for node in ast.walk(tree):
        if child in ast.iter_child_nodes(node):
            return node
    return None


def test_no_test_or_example_reads_outside_the_repository() -> None:
    assert len(SOURCES) > 40, "the sources were not found"
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in SOURCES
        for line, what in outside_references(
            path.read_text(encoding="utf-8"), len(path.relative_to(ROOT).parts) - 1
        )
    ]
    assert found == [], "tests and examples must read only files inside the repository:\n" + (
        "\n".join(found)
    )


@pytest.mark.parametrize(
    "line",
    [
        'CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"',
        'CORPUS = Path(__file__).resolve().parents[1].parent / "corpus"',
        "CORPUS = Path(__file__).parent.parent.parent",
        "CORPUS = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))",
        'here = Path(__file__).resolve()\nCORPUS = here.parents[2] / "corpus"',
        'here = Path(__file__).resolve()\nfor p in here.parents:\n    print(p / "x")',
        'SPECS = Path("../shared/specs")',
        'SPECS = ROOT / ".." / "specs"',
        'SPECS = "/work/shared/specs"',
        'CORPUS = ROOT.parent.parent / "shared/corpus"',
        'CORPUS = Path.cwd().parent / "corpus"',
        "CORPUS = os.path.dirname(os.getcwd())",
    ],
)
def test_the_checker_catches_paths_outside(line: str) -> None:
    assert list(outside_references(line, depth=1)), line


@pytest.mark.parametrize(
    "line",
    [
        'DATA = Path(__file__).resolve().parent / "data"',
        'SRC = Path(__file__).resolve().parents[1] / "src"',
        "ROOT = Path(__file__).parent.parent",
        'DOCS = Path.cwd() / "examples" / "docs"',
        'def f():\n    """Reads ../shared/corpus on our machines, if given."""',
        'message = "a shared limiter bounds the calls"',
        'run = tmp_path / "shared"',
    ],
)
def test_the_checker_lets_paths_inside_pass(line: str) -> None:
    assert list(outside_references(line, depth=1)) == [], line


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


@pytest.mark.parametrize(
    "spec", sorted(p.relative_to(DATA / "specs").as_posix() for p in DATA.glob("specs/**/*.json"))
)
def test_every_spec_cut_is_whole(spec: str) -> None:
    """Each cut resolves every ``$ref`` inside itself and says where it came from."""
    document = json.loads((DATA / "specs" / spec).read_text(encoding="utf-8"))
    note = document["x-raftkit-cut"]
    assert note["from"].startswith(spec)
    assert re.fullmatch(r"[0-9a-f]{64}", note["sha256"])
    refs = set(_refs(document))
    assert refs, "a cut with no references at all is not the contract"
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = document
        for part in ref[2:].split("/"):
            assert part in node, f"{spec}: {ref} points nowhere"
            node = node[part]
    section = document.get("components", {}).get("schemas") or document["definitions"]
    assert set(note["schemas"]) <= set(section)


def test_the_test_data_is_small_and_every_file_is_accounted_for() -> None:
    files = [p for p in DATA.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    examples = [p for p in (ROOT / "examples" / "docs").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files + examples) < 10 * 2**20
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    unlisted = [
        p.relative_to(DATA).as_posix()
        for p in files
        if p.name != "README.md" or p.parent != DATA
        if f"`{p.relative_to(DATA).as_posix()}`" not in readme
    ]
    assert unlisted == [], f"tests/data/README.md gives no source or licence for {unlisted}"
