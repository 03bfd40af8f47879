"""raftkit.llm's public surface, and what `import raftkit` costs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import raftkit.llm
from raftkit.llm import (
    _api_errors,
    _retry,
    _secrets,
    _store,
    _structured,
    _transport,
    azure,
    openai,
)


def test_all_names_resolve_and_are_sorted() -> None:
    names = raftkit.llm.__all__
    assert list(names) == sorted(names)
    for name in names:
        assert getattr(raftkit.llm, name) is not None
    assert set(names) <= set(dir(raftkit.llm))


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        getattr(raftkit.llm, "NoSuchThing")  # noqa: B009


def test_every_module_declares_what_it_exports() -> None:
    for module in (_api_errors, _retry, _secrets, _store, _structured, _transport, azure, openai):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_import_raftkit_stays_light() -> None:
    code = (
        "import sys, json, raftkit; "
        "print(json.dumps(sorted(m for m in ('numpy', 'httpx', 'tenacity', 'anyio') "
        "if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
