from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import raftkit.evaluate as evaluate

_MODULES = [
    "raftkit.evaluate",
    "raftkit.evaluate.judge",
    "raftkit.evaluate.metrics",
    "raftkit.evaluate.prompt",
    "raftkit.evaluate.ragas_adapter",
    "raftkit.evaluate.render",
    "raftkit.evaluate.report",
    "raftkit.evaluate.runner",
    "raftkit.evaluate.stats",
]


@pytest.mark.parametrize("name", _MODULES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__)
    assert all(hasattr(module, n) for n in exported)
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and getattr(v, "__module__", None) == name
    }
    assert public <= exported, f"public but not in __all__: {sorted(public - exported)}"


def test_default_evaluator_satisfies_the_protocol() -> None:
    evaluator: evaluate.Evaluator = evaluate.RaftEvaluator()
    assert hasattr(evaluator, "evaluate")
    assert all(isinstance(m, evaluate.Metric) for m in evaluate.BUILTIN_METRICS)


def test_importing_evaluate_does_not_import_ragas() -> None:
    code = "import sys, raftkit.evaluate.ragas_adapter; print('ragas' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"
