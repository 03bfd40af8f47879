"""Preference pairs for DPO: a verified answer preferred over one that failed verification.

A :class:`PreferencePair` holds, for one example, a rejected answer and why it was rejected
(the verifier's reason: a quote not in the oracle, a missing ``<ANSWER>:`` line, ...), whether
it came from the run's own re-asks (natural) or from a teacher asked for a flawed answer
(``synthetic``). The chosen answer is always the example's verified ``cot_answer``.

Two exporters write the pairs of the examples given to them, one row per pair, with the same
prompt the ``chat`` format trains on (:meth:`ChatExporter.messages` without the answer):

- ``dpo`` — OpenAI / Azure OpenAI preference rows:
  ``{"input": {"messages": [...]}, "preferred_output": [assistant], "non_preferred_output":
  [assistant]}`` (OpenAI's preference fine-tuning format).
- ``dpo-trl`` — TRL's conversational preference rows: ``{"prompt": [...], "chosen":
  [assistant], "rejected": [assistant]}``.

:func:`validate_preference_jsonl` checks a ``dpo`` file the way the services do, and counts the
tokens a DPO job bills (input and both outputs of every pair, per epoch).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from raftkit.dataset.export import ChatExporter, JsonlExporter
from raftkit.errors import UsageError
from raftkit.llm.tokens import count_message_tokens
from raftkit.types import RaftExample

__all__ = [
    "DpoExporter",
    "PreferencePair",
    "PreferenceReport",
    "TrlDpoExporter",
    "validate_preference_jsonl",
]

_MAX_PROBLEMS = 20


class PreferencePair(BaseModel):
    """One rejected answer to an example's question, and where it came from."""

    model_config = ConfigDict(frozen=True)

    example_id: str
    question_id: str
    chunk_id: str
    rejected: str = Field(description="the answer that failed verification")
    reason: str = Field(description="why it failed (a verifier RejectionReason)")
    synthetic: bool = Field(False, description="asked of the teacher on purpose, not a re-ask")
    flaw: str | None = Field(None, description="synthetic: the flaw the teacher was asked for")
    teacher_model: str = ""


class DpoExporter(JsonlExporter):
    """OpenAI / Azure OpenAI preference rows for the examples that have pairs.

    ``pairs`` maps an example id to its pairs; examples without pairs write no row. The prompt
    is the ``chat`` format's, with the same ``system_prompt``.
    """

    name = "dpo"

    def __init__(
        self,
        pairs: Mapping[str, Sequence[PreferencePair]] | None = None,
        *,
        system_prompt: str | None = None,
    ) -> None:
        self.pairs = dict(pairs or {})
        self.chat = ChatExporter(system_prompt)

    def prompt(self, example: RaftExample) -> list[dict[str, str]]:
        """The chat format's messages without the answer: optional system, then user."""
        return self.chat.messages(example)[:-1]

    def pair_row(self, example: RaftExample, pair: PreferencePair) -> dict[str, Any]:
        return {
            "input": {"messages": self.prompt(example)},
            "preferred_output": [{"role": "assistant", "content": example.cot_answer}],
            "non_preferred_output": [{"role": "assistant", "content": pair.rejected}],
        }

    def row(self, example: RaftExample) -> dict[str, Any]:
        """The row of the example's first pair (:meth:`rows` writes one per pair)."""
        found = self.pairs.get(example.id)
        if not found:
            raise UsageError(f"example {example.id} has no preference pair")
        return self.pair_row(example, found[0])

    def rows(self, examples: Iterable[RaftExample]) -> Iterator[dict[str, Any]]:
        for example in examples:
            for pair in self.pairs.get(example.id, ()):
                yield self.pair_row(example, pair)


class TrlDpoExporter(DpoExporter):
    """TRL's conversational preference rows (``prompt`` / ``chosen`` / ``rejected``)."""

    name = "dpo-trl"

    def pair_row(self, example: RaftExample, pair: PreferencePair) -> dict[str, Any]:
        return {
            "prompt": self.prompt(example),
            "chosen": [{"role": "assistant", "content": example.cot_answer}],
            "rejected": [{"role": "assistant", "content": pair.rejected}],
        }


class PreferenceReport(BaseModel):
    """What :func:`validate_preference_jsonl` found in one file."""

    model_config = ConfigDict(frozen=True)

    path: str
    rows: int
    problems: list[str]
    billed_tokens_per_epoch: int = Field(description="input + both outputs of every pair")

    @property
    def ok(self) -> bool:
        return self.rows > 0 and not self.problems

    def render(self) -> str:
        status = "OK" if self.ok else "REJECTED"
        head = (
            f"{self.path}: {status}, {self.rows} preference pairs, "
            f"{self.billed_tokens_per_epoch:,} billed tokens per epoch"
        )
        if self.rows == 0 and not self.problems:
            return head + "\n  the file holds no pairs"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def _messages(value: Any, where: str, *, roles: set[str]) -> str | None:
    if not isinstance(value, list) or not value:
        return f"{where} must be a non-empty list of messages"
    for i, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            return f"{where}[{i}] needs a string content"
        if message.get("role") not in roles:
            return f"{where}[{i}] has role {message.get('role')!r}; allowed: {sorted(roles)}"
    return None


def _problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return "not a JSON object"
    for key in ("input", "preferred_output", "non_preferred_output"):
        if key not in row:
            return f"key {key!r} is missing" + (" (a chat example?)" if "messages" in row else "")
    messages: Any = row["input"].get("messages") if isinstance(row["input"], dict) else None
    problem = _messages(messages, "input.messages", roles={"system", "user", "assistant"})
    if problem is None and messages[-1]["role"] != "user":
        problem = "input.messages must end with a user message"
    for key in ("preferred_output", "non_preferred_output"):
        problem = problem or _messages(row[key], key, roles={"assistant"})
    if problem is None and row["preferred_output"] == row["non_preferred_output"]:
        problem = "preferred_output and non_preferred_output are identical"
    return problem


def validate_preference_jsonl(
    path: str | os.PathLike[str], *, model: str = "gpt-4.1-nano"
) -> PreferenceReport:
    """Check a ``dpo`` file as the services do (each line a pair whose input ends with a user
    message, outputs non-empty lists of assistant messages that differ) and count its tokens."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {file}: {e}") from e
    problems: list[str] = []
    rows = 0
    tokens = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        rows += 1
        try:
            row = json.loads(line)
        except ValueError:
            problem: str | None = "not valid JSON"
        else:
            problem = _problem(row)
        if problem is not None:
            if len(problems) < _MAX_PROBLEMS:
                problems.append(f"line {number}: {problem}")
            continue
        pair = [*row["input"]["messages"], *row["preferred_output"], *row["non_preferred_output"]]
        tokens += count_message_tokens(pair, model)
    return PreferenceReport(
        path=str(file), rows=rows, problems=problems, billed_tokens_per_epoch=tokens
    )
