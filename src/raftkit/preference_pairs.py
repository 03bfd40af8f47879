"""Preference pairs from a run directory: the answers raftkit already rejected, and more.

**Natural pairs.** Every teacher answer is in the run's journal, including those that failed
verification and were re-asked. For each example, :func:`collect_natural_pairs` finds the
conversation its accepted answer came from (the journal entries whose first two messages are the
same request, with the example's question and oracle in it; re-asks only append to those) and
keeps every other answer of that conversation that fails verification against the oracle: a
pair of the verified ``cot_answer`` (chosen) and that answer (rejected), with the verifier's
reason. The prompts used are not needed, so runs with custom prompts work too.

**Synthetic pairs.** Re-asks are rare with a good teacher. :func:`synthesize_pairs` asks the
teacher for deliberately flawed answers (``wrong_document``: the RAFT question over the
example's distractors only; ``unsupported_quote``: an answer from memory with a quotation),
journaled like every paid call, and keeps only those that fail verification; they are labelled
``synthetic`` with the flaw asked for.

This module sits on floor 4 because it joins the journal, :mod:`raftkit.synth` (prompts,
verification) and :mod:`raftkit.dataset` (the pair records).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field

from raftkit.dataset import PreferencePair, read_examples
from raftkit.dataset.io import write_jsonl
from raftkit.errors import InputError, UsageError
from raftkit.journal import Journal
from raftkit.llm import LLMClient
from raftkit.run_dir import RunDir
from raftkit.synth import Prompts
from raftkit.synth.prompts import flawed_answer_messages
from raftkit.synth.verify import verify_answer
from raftkit.types import Chunk, RaftExample

__all__ = [
    "FLAWS",
    "PreferenceSet",
    "build_preference_set",
    "collect_natural_pairs",
    "read_pairs",
    "synthesize_pairs",
    "write_pairs",
]

#: The flaws a synthetic rejected answer is asked to have.
FLAWS = ("wrong_document", "unsupported_quote")
_CONCURRENCY = 8


class PreferenceSet(BaseModel):
    """The pairs of a run, and how they came about."""

    model_config = ConfigDict(frozen=True)

    pairs: list[PreferencePair]
    examples: int = Field(description="examples in the run")
    synthetic_asked: int = Field(0, description="teacher calls for flawed answers")
    synthetic_discarded: int = Field(0, description="flawed answers that verified anyway")

    @property
    def natural(self) -> int:
        return sum(not p.synthetic for p in self.pairs)

    @property
    def synthetic(self) -> int:
        return sum(p.synthetic for p in self.pairs)

    def by_example(self) -> dict[str, list[PreferencePair]]:
        grouped: dict[str, list[PreferencePair]] = {}
        for pair in self.pairs:
            grouped.setdefault(pair.example_id, []).append(pair)
        return grouped

    def render(self) -> str:
        reasons = Counter(p.reason for p in self.pairs if not p.synthetic)
        flaws = Counter(p.flaw or "-" for p in self.pairs if p.synthetic)

        def listed(counts: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"

        line = (
            f"preference pairs: {len(self.pairs)} for {len(self.by_example())} of "
            f"{self.examples} examples; natural {self.natural} ({listed(reasons)}), "
            f"synthetic {self.synthetic} ({listed(flaws)})"
        )
        if self.synthetic_discarded:
            line += (
                f"; {self.synthetic_discarded} of {self.synthetic_asked} flawed answers "
                "verified anyway and were dropped"
            )
        return line


# ---------------------------------------------------------------------------- reading the run


def _oracle_texts(run: RunDir, examples: Sequence[RaftExample]) -> dict[str, str]:
    texts = {d.chunk_id: d.text for e in examples for d in e.documents if d.is_oracle}
    if run.chunks.is_file():
        with run.chunks.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                try:
                    chunk = Chunk.model_validate_json(line)
                except ValueError as e:
                    raise InputError(f"{run.chunks}:{number}: not a chunk record: {e}") from e
                texts[chunk.id] = chunk.text
    return texts


def _journal_entries(run: RunDir) -> Iterator[tuple[list[Any], str]]:
    """``(messages, answer text)`` of every journaled chat call whose reply was not cut by
    its completion cap (such a reply is asked again with a larger cap)."""
    if not run.journal.is_file():
        return
    with run.journal.open(encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                return  # a torn last line
            try:
                entry = json.loads(line)
                messages = entry["request"]["messages"]
                choice = entry["response"]["choices"][0]
                text = choice["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                continue
            if choice.get("finish_reason") == "length":
                continue  # cut by the run's completion cap, not an answer the teacher chose
            if isinstance(messages, list) and len(messages) >= 2 and isinstance(text, str):
                yield messages, text


def _conversation(messages: list[Any]) -> str:
    first = json.dumps(messages[:2], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(first.encode("utf-8")).hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def collect_natural_pairs(
    run_dir: str | os.PathLike[str],
    examples: Sequence[RaftExample] | None = None,
    *,
    require_quotes: bool = True,
) -> list[PreferencePair]:
    """The run's own rejected answers paired with the accepted ones (blocking; reads the
    journal twice, holding only the conversations of accepted answers in memory)."""
    run = RunDir(run_dir)
    chosen = list(examples) if examples is not None else read_examples(run.examples)
    oracles = _oracle_texts(run, chosen)
    accepted: dict[str, list[RaftExample]] = {}
    for example in chosen:
        if example.chunk_id in oracles:
            accepted.setdefault(_digest(example.cot_answer), []).append(example)
    owner: dict[str, RaftExample] = {}
    for messages, text in _journal_entries(run):
        candidates = accepted.get(_digest(text))
        if not candidates:
            continue
        prompt = messages[1].get("content") if isinstance(messages[1], dict) else None
        if not isinstance(prompt, str):
            continue
        for example in candidates:
            if example.question in prompt and oracles[example.chunk_id] in prompt:
                owner.setdefault(_conversation(messages), example)
    pairs: list[PreferencePair] = []
    seen: set[tuple[str, str]] = set()
    for messages, text in _journal_entries(run):
        found = owner.get(_conversation(messages))
        if found is None or text == found.cot_answer or (found.id, text) in seen:
            continue
        example = found
        seen.add((example.id, text))
        check = verify_answer(text, oracles[example.chunk_id], require_quotes=require_quotes)
        if check.ok:
            continue  # a second acceptable answer is no rejected one
        pairs.append(
            PreferencePair(
                example_id=example.id,
                question_id=example.question_id,
                chunk_id=example.chunk_id,
                rejected=text,
                reason=check.reason or "invalid_response",
                teacher_model=example.teacher_model,
            )
        )
    order = {e.id: i for i, e in enumerate(chosen)}
    pairs.sort(key=lambda p: order[p.example_id])
    return pairs


# ---------------------------------------------------------------------------- asking for more


def _flaw(example: RaftExample) -> tuple[str, list[str], list[str]]:
    distractors = [
        d for d in sorted(example.documents, key=lambda d: d.position) if not d.is_oracle
    ]
    alternate = int(_digest(example.id)[:8], 16) % 2 == 0
    if distractors and alternate:
        return "wrong_document", [d.text for d in distractors], [d.title for d in distractors]
    return "unsupported_quote", [], []


async def synthesize_pairs(
    client: LLMClient,
    run_dir: str | os.PathLike[str],
    candidates: Sequence[RaftExample],
    *,
    want: int,
    teacher_model: str,
    prompts: Prompts | None = None,
    max_tokens: int | None = None,
    require_quotes: bool = True,
) -> tuple[list[PreferencePair], int, int]:
    """Ask the teacher for flawed answers to ``candidates`` (in order) until ``want`` of them
    fail verification; returns ``(pairs, asked, discarded)``. Every call goes through the run's
    journal, so asking again after a crash (or exporting again) pays nothing twice."""
    if want <= 0 or not candidates:
        return [], 0, 0
    run = RunDir(run_dir)
    oracles = await anyio.to_thread.run_sync(_oracle_texts, run, list(candidates))
    chosen_prompts = prompts if prompts is not None else Prompts()
    results: dict[int, PreferencePair] = {}
    asked = discarded = 0
    limiter = anyio.CapacityLimiter(_CONCURRENCY)
    with Journal(run).open() as journal:
        journaled = client.with_store(journal)

        async def one(index: int, example: RaftExample) -> None:
            nonlocal discarded
            kind, documents, titles = _flaw(example)
            messages = flawed_answer_messages(
                example.question, kind, chosen_prompts, documents, titles
            )
            async with limiter:
                response = await journaled.chat(
                    messages, model=teacher_model, temperature=0.7, max_tokens=max_tokens
                )
            check = verify_answer(
                response.text, oracles[example.chunk_id], require_quotes=require_quotes
            )
            if check.ok or not response.text.strip():
                discarded += 1
                return
            results[index] = PreferencePair(
                example_id=example.id,
                question_id=example.question_id,
                chunk_id=example.chunk_id,
                rejected=response.text,
                reason=check.reason or "invalid_response",
                synthetic=True,
                flaw=kind,
                teacher_model=response.model or teacher_model,
            )

        usable = [(i, e) for i, e in enumerate(candidates) if e.chunk_id in oracles]
        position = 0
        while len(results) < want and position < len(usable):
            batch = usable[position : position + want - len(results)]
            position += len(batch)
            asked += len(batch)
            async with anyio.create_task_group() as tg:
                for index, example in batch:
                    tg.start_soon(one, index, example)
    pairs = [results[i] for i in sorted(results)][:want]
    return pairs, asked, discarded


# ---------------------------------------------------------------------------- the set


def write_pairs(run_dir: str | os.PathLike[str], pairs: Sequence[PreferencePair]) -> None:
    """Record the pairs in ``RUN_DIR/preferences.jsonl`` (replaced whole)."""
    write_jsonl(RunDir(run_dir).preferences, (p.model_dump(mode="json") for p in pairs))


def read_pairs(path: str | os.PathLike[str]) -> list[PreferencePair]:
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    pairs.append(PreferencePair.model_validate_json(line))
                except ValueError as e:
                    raise InputError(f"{os.fspath(path)}:{number}: not a preference pair") from e
    return pairs


async def build_preference_set(
    run_dir: str | os.PathLike[str],
    *,
    want: int = 0,
    client: LLMClient | None = None,
    teacher_model: str | None = None,
    prompts: Prompts | None = None,
) -> PreferenceSet:
    """The run's natural pairs and, when fewer than ``want``, synthetic ones for examples that
    have none (needs ``client``); recorded in ``RUN_DIR/preferences.jsonl``."""
    run = RunDir(run_dir)
    if not run.examples.is_file():
        raise UsageError(f"{run.examples} does not exist; run `raftkit generate` first")
    examples = await anyio.to_thread.run_sync(read_examples, run.examples)
    natural = await anyio.to_thread.run_sync(lambda: collect_natural_pairs(run, examples))
    pairs, asked, discarded = list(natural), 0, 0
    if want > len(pairs):
        if client is None:
            raise UsageError("asking the teacher for more preference pairs needs a client")
        teacher = teacher_model or _run_teacher(run)
        have = {p.example_id for p in pairs}
        extra, asked, discarded = await synthesize_pairs(
            client,
            run,
            [e for e in examples if e.id not in have],
            want=want - len(pairs),
            teacher_model=teacher,
            prompts=prompts,
        )
        order = {e.id: i for i, e in enumerate(examples)}
        pairs = sorted([*pairs, *extra], key=lambda p: (order[p.example_id], p.synthetic))
    await anyio.to_thread.run_sync(write_pairs, run, pairs)
    return PreferenceSet(
        pairs=pairs, examples=len(examples), synthetic_asked=asked, synthetic_discarded=discarded
    )


def _run_teacher(run: RunDir) -> str:
    settings: Mapping[str, Any] = {}
    if run.settings.is_file():
        loaded = json.loads(run.settings.read_text(encoding="utf-8"))
        settings = loaded if isinstance(loaded, dict) else {}
    teacher = settings.get("teacher_model")
    if not isinstance(teacher, str):
        raise UsageError(f"{run.settings} names no teacher_model: pass the teacher model")
    return teacher
