"""What an export did to the examples' text, recorded beside the files (``export.json``).

A fine-tuned student answers best when it is asked exactly as it was trained: the same system
prompt and the same user-prompt layout. :func:`~raftkit.dataset.prepare_dataset` writes this
manifest next to ``split.json``, and ``raftkit eval`` reads it, so a system prompt given to
``raftkit export --system-prompt`` reaches the evaluation without being typed twice.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from raftkit.errors import InputError

__all__ = ["EXPORT_MANIFEST_NAME", "USER_PROMPT_LAYOUT", "ExportManifest", "read_export_manifest"]

EXPORT_MANIFEST_NAME = "export.json"

#: The user-prompt layout every exporter uses: each document in ``<DOCUMENT>`` tags on its own
#: line, in position order, then the question (:func:`~raftkit.dataset.format_instruction`).
USER_PROMPT_LAYOUT = "raft-documents-then-question"


class ExportManifest(BaseModel):
    """How the exported rows were rendered."""

    model_config = ConfigDict(frozen=True)

    system_prompt: str | None = Field(None, description="the system message of every row")
    user_prompt: str = Field(USER_PROMPT_LAYOUT, description="how the user message is laid out")
    formats: list[str] = Field(default_factory=list)
    seed: int = 0
    group_by: str = "chunk"


def read_export_manifest(path: str | os.PathLike[str]) -> ExportManifest | None:
    """The manifest at ``path``, or ``None`` when there is none (an export made before
    manifests were written). A file that is not a manifest is an :class:`InputError`."""
    file = Path(path)
    if not file.is_file():
        return None
    try:
        return ExportManifest.model_validate_json(file.read_bytes())
    except ValidationError as e:
        raise InputError(f"{file} is not an export manifest: {e.errors()[0]['msg']}") from e
