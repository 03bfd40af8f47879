"""One streaming pass over a run directory: counters, histograms and seeded samples.

A run may hold hundreds of thousands of examples (a gigabyte of JSON lines), so nothing is kept
per example: each line is parsed, counted into histograms (value → count) and per-document
counters, offered to a seeded reservoir sample, and dropped. Memory grows with the number of
chunks and documents, not of examples. Context documents recur across examples (each chunk is
the oracle of several questions and a distractor of many more), so the token estimate of a
context document is computed once per chunk and cached.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from raftkit.errors import DatasetError, InputError
from raftkit.llm.tokens import TokenCounter, encoding_for_model, estimate_tokens, exact_counter
from raftkit.run_dir import RunDir
from raftkit.run_report import RunReport

__all__ = [
    "DocumentCoverage",
    "RunView",
    "SampledExample",
    "SampledRejection",
    "scan_run",
]

_REJECTION_SAMPLES = 3  # examples shown per rejection reason

T = TypeVar("T")


@dataclass
class DocumentCoverage:
    """What one source document contributed to the run."""

    document_id: str
    chunks: int = 0
    chunks_with_examples: int = 0
    examples: int = 0
    with_oracle: int = 0
    rejections: int = 0

    @property
    def questions(self) -> int:
        return self.examples + self.rejections


@dataclass
class SampledExample:
    """An example drawn for the page, with its line number in ``examples.jsonl``."""

    line: int
    record: dict[str, Any]
    #: when the context leaves the oracle out: each oracle's text (a multi-hop example has
    #: two), by chunk id, in the example's order
    withheld_oracles: dict[str, str] = field(default_factory=dict)

    @property
    def oracle_ids(self) -> list[str]:
        """The chunks the question was written from: two for a multi-hop question."""
        metadata = self.record.get("metadata")
        ids = metadata.get("oracle_chunk_ids") if isinstance(metadata, dict) else None
        if isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids):
            return ids
        return [str(self.record["chunk_id"])]


@dataclass
class SampledRejection:
    line: int
    record: dict[str, Any]


@dataclass
class RunView:
    """Everything the page shows, gathered in one pass; small whatever the run's size."""

    run_dir: Path
    report: RunReport | None
    settings: dict[str, Any]
    simulated: bool
    sample_size: int
    seed: int
    token_encoding: str = "o200k_base"
    tokens_exact: bool = False  # exact counts (the ``tokens`` extra) or the offline estimate
    examples: int = 0
    with_oracle: int = 0
    chunks: int | None = None  # None when the run has no chunks.jsonl
    rejections: Counter[str] = field(default_factory=Counter)
    rejection_samples: dict[str, list[SampledRejection]] = field(default_factory=dict)
    question_tokens: Counter[int] = field(default_factory=Counter)
    answer_tokens: Counter[int] = field(default_factory=Counter)
    example_tokens: Counter[int] = field(default_factory=Counter)
    oracle_positions: Counter[int] = field(default_factory=Counter)  # -1: oracle withheld
    documents: list[DocumentCoverage] = field(default_factory=list)
    samples: list[SampledExample] = field(default_factory=list)


class _Reservoir(Generic[T]):
    """A uniform sample of ``size`` items from a stream of unknown length (algorithm R)."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size, self.rng, self.seen = size, rng, 0
        self.items: list[T] = []

    def wants(self) -> int | None:
        """The slot the next item would take, or None; draws from the generator once."""
        self.seen += 1
        if len(self.items) < self.size:
            return len(self.items)
        slot = self.rng.randrange(self.seen)
        return slot if slot < self.size else None

    def put(self, slot: int, item: T) -> None:
        if slot == len(self.items):
            self.items.append(item)
        else:
            self.items[slot] = item


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each non-blank line; a clear error naming a bad one."""
    try:
        f = path.open(encoding="utf-8")
    except OSError as e:
        raise DatasetError(f"cannot open: {e.strerror or e}", path=str(path)) from e
    with f:
        for number, line in enumerate(f, 1):
            if not line or line.isspace():  # no strip(): it would copy a 10 kB line
                continue
            try:
                record = json.loads(line)
            except ValueError as e:
                raise DatasetError(f"not a JSON line ({e})", path=str(path), line=number) from e
            if not isinstance(record, dict):
                raise DatasetError("not a JSON object", path=str(path), line=number)
            yield number, record


def _field(record: dict[str, Any], name: str, kind: type, path: Path, line: int) -> Any:
    value = record.get(name)
    if not isinstance(value, kind):
        what = "missing" if value is None else f"not a {kind.__name__}"
        raise DatasetError(f"field {name!r} is {what}", path=str(path), line=line)
    return value


def _estimator(model: str | None) -> TokenCounter:
    return lambda text: estimate_tokens(text, model)


def _tolerant(exact: TokenCounter, model: str | None) -> TokenCounter:
    def count(text: str) -> int:
        try:
            return exact(text)
        except ValueError:  # a special token such as <|endoftext|> in the data: estimate it
            return estimate_tokens(text, model)

    return count


def _read_report(run: RunDir) -> RunReport | None:
    path = run.report_json
    if not path.exists():
        return None
    try:
        return RunReport.model_validate_json(path.read_bytes())
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise DatasetError(f"{where}: {first['msg']}", path=str(path)) from e


def _read_settings(run: RunDir) -> dict[str, Any]:
    path = run.settings
    if not path.exists():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DatasetError(f"not JSON ({e})", path=str(path)) from e
    if not isinstance(settings, dict):
        raise DatasetError("not a JSON object", path=str(path))
    return settings


def scan_run(run_dir: str | Path, *, sample: int = 12, seed: int = 0) -> RunView:
    """Read a generation run directory once and gather what its page shows.

    Blocking (file reads and parsing): call it from a worker thread in async code, as
    :func:`~raftkit.run_viewer.write_run_viewer` does. The same run, ``sample`` and ``seed``
    always give the same view.
    """
    run = RunDir(run_dir)
    root = run.root
    if not root.is_dir():
        raise InputError(f"{root}: not a directory (give the run directory of raftkit generate)")
    if not run.examples.is_file():
        raise InputError(
            f"{run.examples}: not found; is {root} a generation run that finished or "
            "stopped? (a killed run writes it when `raftkit generate` is run again)"
        )
    report = _read_report(run)
    settings = _read_settings(run)
    simulated = (report is not None and report.simulated_teacher) or settings.get(
        "simulated"
    ) is True
    view = RunView(
        run_dir=root,
        report=report,
        settings=settings,
        simulated=simulated,
        sample_size=sample,
        seed=seed,
    )
    model = settings.get("teacher_model") or (report.teacher_model if report else None)
    model = model if isinstance(model, str) else None
    view.token_encoding = encoding_for_model(model)
    exact = exact_counter(model) if model else None
    view.tokens_exact = exact is not None
    tokens_of = _tolerant(exact, model) if exact else _estimator(model)
    documents: dict[str, DocumentCoverage] = {}
    chunks_with_examples: set[str] = set()
    _scan_examples(run.examples, view, tokens_of, documents, chunks_with_examples)
    rejected_chunks = _scan_rejections(run.rejections, view)
    withheld: dict[str, list[SampledExample]] = {}
    for s in view.samples:
        if not s.record["oracle_present"]:
            for chunk_id in s.oracle_ids:
                withheld.setdefault(chunk_id, []).append(s)
    chunk_documents: dict[str, str] = {}
    if run.chunks.is_file():
        chunk_documents = _scan_chunks(
            run.chunks, view, documents, chunks_with_examples, rejected_chunks, withheld
        )
    for chunk_id, count in rejected_chunks.items():
        # older runs without chunks.jsonl: a chunk id is "<document id>#<index>"
        document_id = chunk_documents.get(chunk_id) or chunk_id.rpartition("#")[0] or chunk_id
        documents.setdefault(document_id, DocumentCoverage(document_id)).rejections += count
    view.documents = list(documents.values())
    return view


def _scan_examples(
    path: Path,
    view: RunView,
    tokens_of: TokenCounter,
    documents: dict[str, DocumentCoverage],
    chunks_with_examples: set[str],
) -> None:
    reservoir: _Reservoir[SampledExample] = _Reservoir(view.sample_size, random.Random(view.seed))
    context_tokens: dict[str, int] = {}  # chunk id → tokens, counted once per chunk
    for line, record in _lines(path):
        question = _field(record, "question", str, path, line)
        answer = _field(record, "cot_answer", str, path, line)
        context = _field(record, "documents", list, path, line)
        document_id = _field(record, "document_id", str, path, line)
        chunk_id = _field(record, "chunk_id", str, path, line)
        oracle_present = _field(record, "oracle_present", bool, path, line)
        tokens_q, tokens_a = tokens_of(question), tokens_of(answer)
        total = tokens_q + tokens_a
        position = -1
        for doc in context:
            if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
                raise DatasetError(
                    "field 'documents' holds an entry without text", path=str(path), line=line
                )
            key = str(doc.get("chunk_id", ""))
            tokens = context_tokens.get(key) if key else None
            if tokens is None:
                tokens = tokens_of(doc["text"])
                if key:
                    context_tokens[key] = tokens
            total += tokens
            if doc.get("is_oracle") is True:
                position = int(doc.get("position", 0))
        view.examples += 1
        view.with_oracle += oracle_present
        view.question_tokens[tokens_q] += 1
        view.answer_tokens[tokens_a] += 1
        view.example_tokens[total] += 1
        view.oracle_positions[position] += 1
        coverage = documents.get(document_id)
        if coverage is None:
            coverage = documents[document_id] = DocumentCoverage(document_id)
        coverage.examples += 1
        coverage.with_oracle += oracle_present
        chunks_with_examples.add(chunk_id)
        slot = reservoir.wants()
        if slot is not None:
            reservoir.put(slot, SampledExample(line, record))
    view.samples = sorted(reservoir.items, key=lambda s: s.line)


def _scan_rejections(path: Path, view: RunView) -> Counter[str]:
    """Count rejections by reason (sampling a few of each); return rejections per chunk."""
    per_chunk: Counter[str] = Counter()
    if not path.is_file():
        return per_chunk
    reservoirs: dict[str, _Reservoir[SampledRejection]] = {}
    for line, record in _lines(path):
        reason = str(record.get("reason") or "unknown")
        view.rejections[reason] += 1
        per_chunk[str(record.get("chunk_id") or "")] += 1
        reservoir = reservoirs.get(reason)
        if reservoir is None:
            # one generator per reason, seeded by name: adding a reason leaves the others alone
            rng = random.Random(f"{view.seed}:{reason}")
            reservoir = reservoirs[reason] = _Reservoir(_REJECTION_SAMPLES, rng)
        slot = reservoir.wants()
        if slot is not None:
            reservoir.put(slot, SampledRejection(line, record))
    view.rejection_samples = {
        reason: sorted(r.items, key=lambda s: s.line) for reason, r in reservoirs.items()
    }
    return per_chunk


def _scan_chunks(
    path: Path,
    view: RunView,
    documents: dict[str, DocumentCoverage],
    chunks_with_examples: set[str],
    rejected_chunks: Counter[str],
    withheld: dict[str, list[SampledExample]],
) -> dict[str, str]:
    """Count chunks per document; fill in withheld oracles; map rejected chunks to documents."""
    in_order: dict[str, DocumentCoverage] = {}
    chunk_documents: dict[str, str] = {}
    view.chunks = 0
    for line, record in _lines(path):
        chunk_id = _field(record, "id", str, path, line)
        document_id = _field(record, "document_id", str, path, line)
        view.chunks += 1
        coverage = in_order.get(document_id)
        if coverage is None:
            coverage = documents.pop(document_id, None) or DocumentCoverage(document_id)
            in_order[document_id] = coverage
        coverage.chunks += 1
        coverage.chunks_with_examples += chunk_id in chunks_with_examples
        if chunk_id in rejected_chunks:
            chunk_documents[chunk_id] = document_id
        for sampled in withheld.get(chunk_id, ()):
            sampled.withheld_oracles[chunk_id] = str(record.get("text", ""))
    # corpus order first; documents known only from examples (no chunk line) after
    in_order.update(documents)
    documents.clear()
    documents.update(in_order)
    return chunk_documents
