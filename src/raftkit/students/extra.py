"""The ``train`` extra: torch, transformers, peft, safetensors (and gguf for GGUF bases).

Nothing here imports them: :func:`require_train` only asks the import system whether they are
installed, so a missing extra is reported in one line before any work starts, and
``import raftkit`` stays fast.
"""

from __future__ import annotations

import importlib.util

from raftkit.dataset.export import MissingExtraError

__all__ = ["TRAIN_INSTALL_HINT", "missing_train_modules", "require_train"]

TRAIN_INSTALL_HINT = "pip install 'raftkit[train]'"

_CORE = ("torch", "transformers", "peft", "safetensors")


def missing_train_modules(*, gguf: bool = False) -> list[str]:
    """The modules of the ``train`` extra that are not installed (``gguf`` too if asked)."""
    wanted = (*_CORE, "gguf") if gguf else _CORE
    return [name for name in wanted if importlib.util.find_spec(name) is None]


def require_train(what: str, *, gguf: bool = False) -> None:
    """Raise :class:`~raftkit.dataset.MissingExtraError` naming the install command when
    ``what`` (say, "local LoRA training") lacks a module of the ``train`` extra."""
    missing = missing_train_modules(gguf=gguf)
    if missing:
        raise MissingExtraError(
            f"{what} needs {', '.join(missing)} (the 'train' extra): {TRAIN_INSTALL_HINT}"
        )
