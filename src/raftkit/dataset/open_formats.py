"""Export formats of the open trainers: TRL / Hugging Face, axolotl, LLaMA-Factory, Unsloth.

Formats, by registry name (``raftkit export RUN --formats messages sharegpt alpaca``):

- ``messages`` — conversational rows ``{"messages": [{"role", "content"}, ...]}``, what TRL's
  ``SFTTrainer``, axolotl's ``chat_template`` datasets and ``tokenizer.apply_chat_template``
  read (for an assistant-only loss in TRL set ``assistant_only_loss=True``, which needs a
  template with generation markers, or use ``prompt-completion``);
- ``prompt-completion`` — TRL's conversational prompt/completion rows, trained on the
  completion only by default with any template;
- ``sharegpt`` — ``{"conversations": [{"from": "system"|"human"|"gpt", "value"}]}``
  (axolotl, LLaMA-Factory, Unsloth's ``standardize_sharegpt``);
- ``alpaca`` — ``{"instruction", "input", "output", "system"}``; the instruction is the whole
  RAFT prompt (documents, then question) and ``input`` is empty, so the student sees the same
  prompt as with every other format.

Every row carries the same text as the chat export; the split is the chat export's (grouped by
chunk). The trainers reject unknown columns in some versions, so provenance (example, question,
chunk and document id, whether the oracle was in the context) goes to a sidecar,
``provenance.jsonl`` beside the format folders: one line per row, ``part`` and ``row`` say
which. ``dataset_info.json`` describes the files for LLaMA-Factory (point its ``dataset_dir``
at the export folder).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from raftkit.dataset.export import (
    ChatExporter,
    JsonlExporter,
    format_instruction,
    register_exporter,
)
from raftkit.dataset.io import write_jsonl
from raftkit.dataset.split import Split, SplitName
from raftkit.types import RaftExample

__all__ = [
    "OPEN_FORMATS",
    "PROVENANCE_NAME",
    "AlpacaExporter",
    "MessagesExporter",
    "PromptCompletionExporter",
    "ShareGPTExporter",
    "dataset_info",
    "write_open_format_extras",
    "write_provenance",
]

PROVENANCE_NAME = "provenance.jsonl"
DATASET_INFO_NAME = "dataset_info.json"


class MessagesExporter(ChatExporter):
    """Conversational ``messages`` rows (the same rows as ``chat``, for the open trainers)."""

    name = "messages"


class PromptCompletionExporter(JsonlExporter):
    """TRL conversational prompt/completion rows: ``{"prompt": [...], "completion": [...]}``."""

    name = "prompt-completion"

    def __init__(self, system_prompt: str | None = None) -> None:
        self.chat = ChatExporter(system_prompt)

    def row(self, example: RaftExample) -> dict[str, Any]:
        messages = self.chat.messages(example)
        return {"prompt": messages[:-1], "completion": messages[-1:]}


_SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}


class ShareGPTExporter(JsonlExporter):
    """ShareGPT ``conversations`` rows; the system prompt (if any) is the first turn."""

    name = "sharegpt"

    def __init__(self, system_prompt: str | None = None) -> None:
        self.chat = ChatExporter(system_prompt)

    def row(self, example: RaftExample) -> dict[str, Any]:
        return {
            "conversations": [
                {"from": _SHAREGPT_FROM[m["role"]], "value": m["content"]}
                for m in self.chat.messages(example)
            ]
        }


class AlpacaExporter(JsonlExporter):
    """Alpaca rows: the RAFT prompt as ``instruction``, an empty ``input``, the CoT answer as
    ``output``, and ``system`` (empty when there is no system prompt)."""

    name = "alpaca"

    def __init__(self, system_prompt: str | None = None) -> None:
        self.system_prompt = system_prompt or ""

    def row(self, example: RaftExample) -> dict[str, Any]:
        return {
            "instruction": format_instruction(example),
            "input": "",
            "output": example.cot_answer,
            "system": self.system_prompt,
        }


#: Formats whose exporter takes the chat export's ``system_prompt``.
OPEN_FORMATS: Mapping[str, type[JsonlExporter]] = {
    "messages": MessagesExporter,
    "prompt-completion": PromptCompletionExporter,
    "sharegpt": ShareGPTExporter,
    "alpaca": AlpacaExporter,
}

for _name, _factory in OPEN_FORMATS.items():
    register_exporter(_name, _factory)

_ROLE_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}
_LLAMA_FACTORY: dict[str, dict[str, Any]] = {
    "chat": {"formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": _ROLE_TAGS},
    "messages": {
        "formatting": "sharegpt",
        "columns": {"messages": "messages"},
        "tags": _ROLE_TAGS,
    },
    "sharegpt": {
        "formatting": "sharegpt",
        "columns": {"messages": "conversations"},
        "tags": {
            "role_tag": "from",
            "content_tag": "value",
            "user_tag": "human",
            "assistant_tag": "gpt",
            "system_tag": "system",
        },
    },
    "alpaca": {
        "formatting": "alpaca",
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "system": "system",
        },
    },
}


def dataset_info(
    directory: str | os.PathLike[str], files: Mapping[str, Mapping[SplitName, str]]
) -> dict[str, Any]:
    """LLaMA-Factory's ``dataset_info.json`` entries (``raft_<format>_<part>``) for the files
    written, with file names relative to ``directory``."""
    root = Path(directory)
    info: dict[str, Any] = {}
    for fmt, parts in files.items():
        described = _LLAMA_FACTORY.get(fmt)
        if described is None:
            continue
        for part, path in parts.items():
            name = f"raft_{fmt.replace('-', '_')}_{part}"
            info[name] = {"file_name": Path(path).relative_to(root).as_posix(), **described}
    return info


def write_provenance(split: Split[RaftExample], directory: str | os.PathLike[str]) -> Path:
    """``provenance.jsonl``: for every row of every part, in file order, where it came from."""
    target = Path(directory) / PROVENANCE_NAME
    rows = (
        {
            "part": part,
            "row": index,
            "example_id": example.id,
            "question_id": example.question_id,
            "chunk_id": example.chunk_id,
            "document_id": example.document_id,
            "oracle_present": example.oracle_present,
        }
        for part, examples in split.parts().items()
        for index, example in enumerate(examples)
    )
    write_jsonl(target, rows)
    return target


def write_open_format_extras(
    split: Split[RaftExample],
    directory: str | os.PathLike[str],
    files: Mapping[str, Mapping[SplitName, str]],
) -> list[Path]:
    """The provenance sidecar and ``dataset_info.json`` beside the format folders."""
    root = Path(directory)
    written = [write_provenance(split, root)]
    info = dataset_info(root, files)
    if info:
        target = root / DATASET_INFO_NAME
        target.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written
