"""Preference pairs rendered with the student's own chat template, for local DPO.

A pair is two chat rows that share one prompt — the ``chat`` export's system prompt, documents
and question — and end in the chosen (verified) or the rejected answer. Each is rendered by
:func:`~raftkit.students.template.render_chat_row`, exactly as a supervised row is, so the
prompt tokens are the served prompt and the trained span of each is the answer plus its
end-of-turn token: DPO compares the log-probabilities of those two spans and nothing else.

Both preference formats of ``raftkit export --formats dpo`` are read: OpenAI's ``dpo``
(``input.messages`` / ``preferred_output`` / ``non_preferred_output``) and TRL's ``dpo-trl``
(``prompt`` / ``chosen`` / ``rejected``). No torch here: the checks run before a job starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftkit.errors import DatasetError, InputError
from raftkit.students.template import RenderedRow, render_chat_row

__all__ = ["RenderedPair", "load_preference_pairs", "preference_messages", "render_pair"]


@dataclass(frozen=True)
class RenderedPair:
    """The chosen and the rejected row of one preference pair."""

    chosen: RenderedRow
    rejected: RenderedRow

    @property
    def n_tokens(self) -> int:
        return self.chosen.n_tokens + self.rejected.n_tokens

    @property
    def n_trained(self) -> int:
        return self.chosen.n_trained + self.rejected.n_trained


def _messages(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{what} must be a non-empty list of messages")
    if not all(isinstance(m, Mapping) for m in value):
        raise ValueError(f"{what} must hold message objects")
    return [dict(m) for m in value]


def preference_messages(
    record: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """``(prompt messages, chosen answer, rejected answer)`` of a ``dpo`` or ``dpo-trl`` row;
    :class:`ValueError` saying which field is wrong."""
    if "prompt" in record:
        prompt = _messages(record.get("prompt"), "prompt")
        chosen = _messages(record.get("chosen"), "chosen")
        rejected = _messages(record.get("rejected"), "rejected")
    elif "input" in record:
        source = record.get("input")
        prompt = _messages(
            source.get("messages") if isinstance(source, Mapping) else None, "input.messages"
        )
        chosen = _messages(record.get("preferred_output"), "preferred_output")
        rejected = _messages(record.get("non_preferred_output"), "non_preferred_output")
    else:
        raise ValueError(
            "not a preference row: expected prompt/chosen/rejected (dpo-trl) or "
            "input/preferred_output/non_preferred_output (dpo)"
        )
    for name, answer in (("chosen", chosen), ("rejected", rejected)):
        if len(answer) != 1 or answer[0].get("role") != "assistant":
            raise ValueError(f"the {name} answer must be one assistant message")
    return prompt, chosen[0], rejected[0]


def render_pair(tokenizer: Any, record: Mapping[str, Any]) -> RenderedPair:
    """Render both sides of a preference row with the student's chat template."""
    prompt, chosen, rejected = preference_messages(record)
    return RenderedPair(
        chosen=render_chat_row(tokenizer, [*prompt, chosen]),
        rejected=render_chat_row(tokenizer, [*prompt, rejected]),
    )


def load_preference_pairs(
    path: str | os.PathLike[str], tokenizer: Any, *, max_tokens: int | None = None
) -> list[RenderedPair]:
    """Every pair of a preference JSONL file; :class:`DatasetError` naming the file and line
    of the first row that is not a pair, cannot be rendered, or is longer than ``max_tokens``
    (nothing is truncated), and for a file without pairs."""
    pairs: list[RenderedPair] = []
    with Path(path).open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, Mapping):
                    raise ValueError("a row must be a JSON object")
                pair = render_pair(tokenizer, record)
            except (ValueError, InputError) as e:  # json, field and template errors alike
                raise DatasetError(str(e).splitlines()[0], path=str(path), line=number) from e
            longest = max(pair.chosen.n_tokens, pair.rejected.n_tokens)
            if max_tokens is not None and longest > max_tokens:
                raise DatasetError(
                    f"the pair is {longest:,} tokens long, more than max_seq_length "
                    f"{max_tokens:,}: generate with fewer distractors or smaller chunks, or "
                    "raise max_seq_length",
                    path=str(path),
                    line=number,
                )
            pairs.append(pair)
    if not pairs:
        raise DatasetError(
            "has no preference pairs: write them with `raftkit export RUN --formats dpo`",
            path=str(path),
        )
    return pairs
