"""Exporters: RAFT examples to the files fine-tuning services and RAFT tools read.

Every exporter renders the prompt the same way as the RAFT reference implementation
(ShishirPatil/gorilla, ``raft/raft.py``): each context document in its recorded position as
``<DOCUMENT>text</DOCUMENT>`` on its own line, then the question. A model trained on one
format and evaluated on another therefore sees the same prompt.

Formats, by registry name:

- ``chat`` — OpenAI / Azure OpenAI chat fine-tuning JSONL: ``{"messages": [...]}``.
- ``completion`` — ``{"prompt", "completion"}`` JSONL, the completion ending in a stop marker.
- ``raft`` — the row format of gorilla's ``raft.py`` so its ``format.py`` and ``eval.py`` read
  our output.
- ``eval`` — one row per question with its context and gold final answer, for evaluation.
- ``hf`` — one Hugging Face ``DatasetDict`` (``train``/``validation``/``test``) saved with
  ``save_to_disk``, so ``datasets.load_from_disk`` reads the whole split back (optional extra);
  :func:`push_hf_dataset` publishes it on the Hub.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from raftkit.dataset.io import write_jsonl
from raftkit.dataset.split import Split, SplitName
from raftkit.errors import APIError, UsageError
from raftkit.types import ContextDocument, RaftExample

__all__ = [
    "DATASETS_INSTALL_HINT",
    "ChatExporter",
    "CompletionExporter",
    "EvalExporter",
    "Exporter",
    "HuggingFaceExporter",
    "JsonlExporter",
    "MissingExtraError",
    "RaftReferenceExporter",
    "SplitExporter",
    "export_split",
    "exporter_names",
    "format_context",
    "format_instruction",
    "get_exporter",
    "push_hf_dataset",
    "register_exporter",
    "to_hf_dataset",
]

DATASETS_INSTALL_HINT = "pip install 'raftkit[datasets]'"
_PLACEHOLDER_TITLE = "placeholder_title"  # what gorilla's raft.py writes for untitled documents


class MissingExtraError(UsageError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


@runtime_checkable
class Exporter(Protocol):
    """Writes RAFT examples to one file (or directory) of some format."""

    name: str
    suffix: str
    """File name ending the exporter writes, such as ``".jsonl"``; empty for a directory."""

    def export(self, examples: Iterable[RaftExample], path: str | os.PathLike[str]) -> int:
        """Write ``examples`` to ``path``; returns the number of rows written."""
        ...


@runtime_checkable
class SplitExporter(Protocol):
    """An exporter that writes a whole split as one thing (a Hugging Face ``DatasetDict``)
    rather than a file per part; :func:`export_split` hands it the split."""

    def write_split(
        self, split: Split[RaftExample], directory: Path, *, include_empty: bool = False
    ) -> dict[SplitName, Path]:
        """Write ``split`` under ``directory``; the path of each part written, by name."""
        ...


def _ordered(documents: Iterable[ContextDocument]) -> list[ContextDocument]:
    return sorted(documents, key=lambda d: d.position)


def format_context(example: RaftExample) -> str:
    """The context documents in prompt order, each ``<DOCUMENT>...</DOCUMENT>``, one per line."""
    return "\n".join(f"<DOCUMENT>{d.text}</DOCUMENT>" for d in _ordered(example.documents))


def format_instruction(example: RaftExample) -> str:
    """The user prompt exactly as gorilla's ``raft.py`` builds it: documents, then question."""
    documents = "".join(f"<DOCUMENT>{d.text}</DOCUMENT>\n" for d in _ordered(example.documents))
    return documents + example.question


class JsonlExporter(ABC):
    """An exporter writing one JSON object per example; subclasses define :meth:`row`."""

    name: str
    suffix: str = ".jsonl"

    @abstractmethod
    def row(self, example: RaftExample) -> dict[str, Any]:
        """The JSON object for one example."""

    def rows(self, examples: Iterable[RaftExample]) -> Iterator[dict[str, Any]]:
        for example in examples:
            yield self.row(example)

    def export(self, examples: Iterable[RaftExample], path: str | os.PathLike[str]) -> int:
        """Write the rows to ``path`` atomically (a temporary file, then a rename)."""
        return write_jsonl(path, self.rows(examples))


class ChatExporter(JsonlExporter):
    """OpenAI / Azure OpenAI chat fine-tuning rows: optional system, user prompt, CoT answer."""

    name = "chat"

    def __init__(self, system_prompt: str | None = None) -> None:
        self.system_prompt = system_prompt

    def messages(self, example: RaftExample) -> list[dict[str, str]]:
        messages: list[dict[str, str]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": format_instruction(example)})
        messages.append({"role": "assistant", "content": example.cot_answer})
        return messages

    def row(self, example: RaftExample) -> dict[str, Any]:
        return {"messages": self.messages(example)}


class CompletionExporter(JsonlExporter):
    """Prompt/completion rows; the completion ends with ``stop`` so generation knows to end.

    Defaults follow gorilla's ``format.py`` (``prompt``, ``completion``, ``<STOP>``); other
    trainers expect other field names, hence the options.
    """

    name = "completion"

    def __init__(
        self,
        *,
        stop: str = "<STOP>",
        prompt_field: str = "prompt",
        completion_field: str = "completion",
    ) -> None:
        if prompt_field == completion_field:
            raise UsageError("prompt_field and completion_field must differ")
        self.stop = stop
        self.prompt_field = prompt_field
        self.completion_field = completion_field

    def row(self, example: RaftExample) -> dict[str, Any]:
        return {
            self.prompt_field: format_instruction(example),
            self.completion_field: example.cot_answer + self.stop,
        }


class RaftReferenceExporter(JsonlExporter):
    """Rows in the format of the RAFT reference code (gorilla ``raft/raft.py``), field for field.

    ``context`` holds one list of titles and one list of texts, each nested in an outer list, as
    gorilla writes them; untitled documents get gorilla's ``"placeholder_title"``.
    ``oracle_context`` is the oracle chunk's text. When the oracle was left out of the context
    (the RAFT "p" fraction) the example does not carry that text: pass ``chunk_texts`` (chunk id
    to text) to fill it, otherwise it is ``null``.
    """

    name = "raft"

    def __init__(
        self, *, chunk_texts: Mapping[str, str] | None = None, type_: str = "general"
    ) -> None:
        self.chunk_texts = chunk_texts
        self.type = type_

    def row(self, example: RaftExample) -> dict[str, Any]:
        documents = _ordered(example.documents)
        oracle = example.oracle
        oracle_text = oracle.text if oracle is not None else None
        if oracle_text is None and self.chunk_texts is not None:
            oracle_text = self.chunk_texts.get(example.chunk_id)
        return {
            "id": example.id,
            "type": self.type,
            "question": example.question,
            "context": {
                "title": [[d.title or _PLACEHOLDER_TITLE for d in documents]],
                "sentences": [[d.text for d in documents]],
            },
            "oracle_context": oracle_text,
            "cot_answer": example.cot_answer,
            "instruction": format_instruction(example),
        }


class EvalExporter(JsonlExporter):
    """One row per question for evaluation: ids, question, context, prompt and gold answer.

    ``context`` and ``gold_final_answer`` match the columns of gorilla's ``format.py`` eval
    format; ``instruction`` is the exact prompt the model was trained on.
    """

    name = "eval"

    def row(self, example: RaftExample) -> dict[str, Any]:
        return {
            "id": example.id,
            "question_id": example.question_id,
            "chunk_id": example.chunk_id,
            "document_id": example.document_id,
            "question": example.question,
            "context": format_context(example),
            "instruction": format_instruction(example),
            "gold_final_answer": example.final_answer,
            "oracle_present": example.oracle_present,
        }


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError as e:
        raise MissingExtraError(
            "exporting a Hugging Face dataset needs the 'datasets' package: "
            f"{DATASETS_INSTALL_HINT}"
        ) from e
    return datasets


def to_hf_dataset(examples: Iterable[RaftExample], *, rows: JsonlExporter | None = None) -> Any:
    """A ``datasets.Dataset`` of the rows ``rows`` makes (default: the ``raft`` format)."""
    datasets = _import_datasets()
    maker = rows if rows is not None else RaftReferenceExporter()
    return datasets.Dataset.from_list(list(maker.rows(examples)))


class HuggingFaceExporter:
    """Saves a Hugging Face dataset (``save_to_disk``) of the chosen rows.

    Given a whole split (:func:`export_split`), it writes one ``DatasetDict`` with a dataset per
    part, which ``datasets.load_from_disk`` reads back as such; :meth:`export` writes a single
    ``Dataset``. Needs the optional extra: ``pip install 'raftkit[datasets]'``. The default rows
    are the ``raft`` format, which is what gorilla's ``raft.py`` saves as its ``hf`` output.
    """

    name = "hf"
    suffix = ""

    def __init__(self, *, rows: JsonlExporter | None = None) -> None:
        self.rows = rows if rows is not None else RaftReferenceExporter()

    def export(self, examples: Iterable[RaftExample], path: str | os.PathLike[str]) -> int:
        dataset = to_hf_dataset(examples, rows=self.rows)
        dataset.save_to_disk(os.fspath(path))
        return int(dataset.num_rows)

    def write_split(
        self, split: Split[RaftExample], directory: Path, *, include_empty: bool = False
    ) -> dict[SplitName, Path]:
        datasets = _import_datasets()
        parts = {
            name: to_hf_dataset(part, rows=self.rows)
            for name, part in split.parts().items()
            if part or include_empty
        }
        datasets.DatasetDict(parts).save_to_disk(os.fspath(directory))
        return {name: directory / name for name in parts}


def push_hf_dataset(
    directory: str | os.PathLike[str],
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
) -> str:
    """Publish the dataset saved in ``directory`` (the ``hf`` export) as the Hub dataset
    ``repo_id``; returns its address. Without ``token``, ``huggingface_hub`` uses its own login
    (``HF_TOKEN`` or ``hf auth login``). The token is never logged nor put in an error."""
    datasets = _import_datasets()
    try:
        loaded = datasets.load_from_disk(os.fspath(directory))
    except FileNotFoundError as e:
        raise UsageError(f"{directory} holds no saved dataset; export with --formats hf") from e
    try:
        loaded.push_to_hub(repo_id, token=token, private=private)
    except Exception as e:
        reason = str(e).replace(token, "***") if token else str(e)
        # "from None": the hub's own exception is not kept, so not even a traceback at -v
        # can carry the token
        raise APIError(
            f"pushing {directory} to the Hugging Face Hub as {repo_id} failed: {reason}; "
            "check the repository name and that the token may write to it",
            url=f"https://huggingface.co/datasets/{repo_id}",
        ) from None
    return f"https://huggingface.co/datasets/{repo_id}"


_REGISTRY: dict[str, Callable[..., Exporter]] = {
    "chat": ChatExporter,
    "completion": CompletionExporter,
    "raft": RaftReferenceExporter,
    "eval": EvalExporter,
    "hf": HuggingFaceExporter,
}


def exporter_names() -> list[str]:
    """The format names :func:`get_exporter` knows, sorted."""
    return sorted(_REGISTRY)


def register_exporter(name: str, factory: Callable[..., Exporter]) -> None:
    """Make ``factory`` available under ``name`` (for instance to the command line)."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"exporter names are letters, digits, '-' and '_', not {name!r}")
    _REGISTRY[name] = factory


def get_exporter(name: str, **options: Any) -> Exporter:
    """The exporter registered as ``name``, built with ``options`` (e.g. ``system_prompt``)."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise UsageError(f"unknown export format {name!r}; known: {', '.join(exporter_names())}")
    try:
        return factory(**options)
    except TypeError as e:
        raise UsageError(f"bad options for export format {name!r}: {e}") from e


def export_split(
    split: Split[RaftExample],
    directory: str | os.PathLike[str],
    exporter: Exporter,
    *,
    include_empty: bool = False,
) -> dict[SplitName, Path]:
    """Write each part of ``split`` as ``<directory>/<part><suffix>`` (``train.jsonl``, ...).

    Empty parts are skipped unless ``include_empty`` (services reject empty files).
    Returns the paths written, by part name.
    """
    root = Path(directory)
    if isinstance(exporter, SplitExporter):
        return exporter.write_split(split, root, include_empty=include_empty)
    written: dict[SplitName, Path] = {}
    for name, part in split.parts().items():
        if not part and not include_empty:
            continue
        target = root / f"{name}{exporter.suffix}"
        rows = exporter.export(part, target)
        if rows == 0 and not include_empty and target.is_file():
            target.unlink()  # the dpo formats write rows only for examples that have pairs
            continue
        written[name] = target
    return written
