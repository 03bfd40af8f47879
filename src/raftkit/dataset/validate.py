"""Check a chat fine-tuning JSONL file the way the fine-tuning services do, before uploading it.

The format checks and their names follow OpenAI's data-preparation guide (the cookbook notebook
``Chat_finetuning_data_prep``): ``data_type``, ``missing_messages_list``,
``message_missing_key``, ``message_unrecognized_key``, ``unrecognized_role``,
``missing_content`` and ``example_missing_assistant_message``. raftkit adds the file-level ones
the upload itself enforces (``invalid_json``, ``invalid_utf8``, ``empty_file``,
``too_few_examples``: at least 10 examples) and ``invalid_weight`` (``weight`` is allowed on
assistant messages only, and must be 0 or 1).

Every issue names its 1-based line and the field (``messages[1].content``). The report also has
token statistics and the billed-token and cost estimate (see :mod:`raftkit.dataset.cost`).
The file is read as a stream; only per-example token counts are kept in memory.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from raftkit.dataset.cost import (
    Epochs,
    estimate_training_cost,
    max_tokens_per_example,
)
from raftkit.dataset.io import iter_jsonl_lines
from raftkit.dataset.validation_report import (
    ExampleProblem,
    Issue,
    IssueKind,
    Purpose,
    TokenStats,
    ValidationReport,
)
from raftkit.llm.tokens import count_message_tokens, count_tokens
from raftkit.llm.usage import PriceTable

__all__ = [
    "ALLOWED_MESSAGE_KEYS",
    "ALLOWED_ROLES",
    "MIN_EXAMPLES",
    "RECOMMENDED_EXAMPLES",
    "ExampleProblem",
    "Issue",
    "IssueKind",
    "Purpose",
    "TokenStats",
    "ValidationReport",
    "check_chat_example",
    "validate_chat_jsonl",
]

MIN_EXAMPLES = 10
RECOMMENDED_EXAMPLES = 1_000
ALLOWED_ROLES = frozenset({"system", "user", "assistant", "tool", "function"})
ALLOWED_MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id"}
)
_CALL_KEYS = ("function_call", "tool_calls")


def check_chat_example(example: Any) -> list[ExampleProblem]:
    """Format problems of one parsed chat example (an empty list when it is well-formed)."""
    if not isinstance(example, dict):
        return [_problem("data_type", f"an example must be a JSON object, not {_kind(example)}")]
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        what = "missing" if messages is None else f"not a non-empty list ({_kind(messages)})"
        return [_problem("missing_messages_list", f"'messages' is {what}", "messages")]

    problems: list[ExampleProblem] = []
    for i, message in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.append(
                _problem("data_type", f"a message must be a JSON object, not {_kind(message)}", at)
            )
            continue
        has_call = any(message.get(key) for key in _CALL_KEYS)
        if "role" not in message:
            problems.append(_problem("message_missing_key", "no 'role'", f"{at}.role"))
        elif message["role"] not in ALLOWED_ROLES:
            problems.append(
                _problem(
                    "unrecognized_role",
                    f"role {message['role']!r} is not one of {', '.join(sorted(ALLOWED_ROLES))}",
                    f"{at}.role",
                )
            )
        if "content" not in message and not has_call:
            problems.append(_problem("message_missing_key", "no 'content'", f"{at}.content"))
        elif "content" in message and not has_call and not _has_content(message["content"]):
            problems.append(
                _problem(
                    "missing_content",
                    f"content must be non-empty text, not {_kind(message['content'])}",
                    f"{at}.content",
                )
            )
        for key in message:
            if key not in ALLOWED_MESSAGE_KEYS:
                problems.append(
                    _problem("message_unrecognized_key", f"unknown key {key!r}", f"{at}.{key}")
                )
        if "weight" in message:
            weight = message["weight"]
            if message.get("role") != "assistant":
                problems.append(
                    _problem(
                        "invalid_weight",
                        "weight is only allowed on assistant messages",
                        f"{at}.weight",
                    )
                )
            elif isinstance(weight, bool) or weight not in (0, 1):
                problems.append(
                    _problem(
                        "invalid_weight", f"weight must be 0 or 1, not {weight!r}", f"{at}.weight"
                    )
                )
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        problems.append(
            _problem("example_missing_assistant_message", "no assistant message", "messages")
        )
    return problems


def validate_chat_jsonl(
    path: str | os.PathLike[str],
    *,
    model: str = "gpt-4o-mini",
    max_tokens: int | None = None,
    epochs: Epochs = "auto",
    price_per_million: float | None = None,
    prices: PriceTable | None = None,
    min_examples: int = MIN_EXAMPLES,
    recommended_examples: int = RECOMMENDED_EXAMPLES,
    max_listed: int = 200,
    purpose: Purpose = "training",
) -> ValidationReport:
    """Validate a chat fine-tuning JSONL file and estimate its training tokens and cost.

    ``max_tokens`` defaults to the model's per-example limit
    (:data:`~raftkit.dataset.cost.MAX_TOKENS_PER_EXAMPLE`); ``price_per_million`` to the
    model's training price in :class:`~raftkit.llm.usage.PriceTable`.
    At most ``max_listed`` errors and as many warnings are listed; all are counted.
    A ``purpose="validation"`` file is checked line by line alike, but is not held to the
    training minimum or recommendation, and has no training cost.
    Raises :class:`~raftkit.errors.DatasetError` only when the file cannot be opened.
    """
    name = os.fspath(path)
    limit = max_tokens if max_tokens is not None else max_tokens_per_example(model)
    found = _Collector(max_listed)
    example_tokens: list[int] = []
    assistant_tokens: list[int] = []
    message_counts: list[int] = []
    lines = 0
    pending_blank: list[int] = []

    for line in iter_jsonl_lines(name, strict=False):
        lines = line.number
        if not line.text.strip():
            pending_blank.append(line.number)
            continue
        for blank in pending_blank:  # blank lines before the end; a trailing one is harmless
            found.warn(Issue(line=blank, kind="blank_line", message="blank line is skipped"))
        pending_blank.clear()
        if not line.utf8:
            found.error(Issue(line=line.number, kind="invalid_utf8", message="not UTF-8 text"))
            continue
        try:
            example = json.loads(line.text)
        except json.JSONDecodeError as e:
            found.error(
                Issue(line=line.number, kind="invalid_json", message=f"{e.msg} at column {e.colno}")
            )
            continue
        problems = check_chat_example(example)
        for p in problems:
            found.error(Issue(line=line.number, kind=p.kind, message=p.message, field=p.field))
        if problems:
            continue
        messages: list[dict[str, Any]] = example["messages"]
        tokens = count_message_tokens(messages, model)
        example_tokens.append(tokens)
        assistant_tokens.append(_assistant_tokens(messages, model))
        message_counts.append(len(messages))
        if not any(m["role"] == "user" for m in messages):
            found.warn(
                Issue(line=line.number, kind="missing_user_message", message="no user message")
            )
        if tokens > limit:
            found.warn(
                Issue(
                    line=line.number,
                    kind="too_long",
                    message=f"about {tokens:,} tokens, over the {limit:,} limit: truncated",
                )
            )

    n_examples = len(example_tokens)
    if lines == 0 or (n_examples == 0 and not found.error_counts and lines == len(pending_blank)):
        found.error(Issue(line=None, kind="empty_file", message="the file has no examples"))
    elif purpose == "validation":
        pass  # the minimum and the advice on dataset size are about training files
    elif n_examples < min_examples:
        found.error(
            Issue(
                line=None,
                kind="too_few_examples",
                message=f"{n_examples} valid examples; fine-tuning needs at least {min_examples}",
            )
        )
    elif n_examples < recommended_examples:
        found.warn(
            Issue(
                line=None,
                kind="few_examples",
                message=f"{n_examples} examples; at least {recommended_examples:,} are "
                "recommended for RAFT to teach reading rather than recall",
            )
        )

    cost = (
        estimate_training_cost(
            example_tokens,
            model=model,
            epochs=epochs,
            max_tokens=limit,
            price_per_million=price_per_million,
            prices=prices,
        )
        if example_tokens and purpose == "training"
        else None
    )
    return ValidationReport(
        path=name,
        model=model,
        purpose=purpose,
        lines=lines,
        examples=n_examples,
        errors=found.errors,
        warnings=found.warnings,
        error_counts=dict(found.error_counts),
        warning_counts=dict(found.warning_counts),
        max_tokens_per_example=limit,
        too_long=sum(1 for t in example_tokens if t > limit),
        example_tokens=TokenStats.of(example_tokens),
        assistant_tokens=TokenStats.of(assistant_tokens),
        messages_per_example=TokenStats.of(message_counts),
        cost=cost,
    )


class _Collector:
    def __init__(self, max_listed: int) -> None:
        self.max_listed = max_listed
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        self.error_counts: Counter[str] = Counter()
        self.warning_counts: Counter[str] = Counter()

    def error(self, issue: Issue) -> None:
        self.error_counts[issue.kind] += 1
        if len(self.errors) < self.max_listed:
            self.errors.append(issue)

    def warn(self, issue: Issue) -> None:
        self.warning_counts[issue.kind] += 1
        if len(self.warnings) < self.max_listed:
            self.warnings.append(issue)


def _problem(kind: IssueKind, message: str, field: str | None = None) -> ExampleProblem:
    return ExampleProblem(kind=kind, message=message, field=field)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _has_content(content: object) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    # multimodal content: a list of parts such as {"type": "text", "text": ...}
    return (
        isinstance(content, list)
        and bool(content)
        and all(isinstance(part, Mapping) and isinstance(part.get("type"), str) for part in content)
    )


def _assistant_tokens(messages: Sequence[Mapping[str, Any]], model: str) -> int:
    total = 0
    for message in messages:
        if message.get("role") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            total += count_tokens(content, model)
        elif isinstance(content, list):
            total += sum(
                count_tokens(part["text"], model)
                for part in content
                if isinstance(part, Mapping) and isinstance(part.get("text"), str)
            )
    return total
