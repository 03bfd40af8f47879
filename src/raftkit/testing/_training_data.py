"""The light check of fine-tuning data the service runs: chat examples or preference pairs.

A file is UTF-8 JSON Lines in one format throughout:

- **supervised**: ``{"messages": [...]}`` with at least one assistant message (or the legacy
  ``{"prompt": ..., "completion": ...}``);
- **preference** (DPO), as OpenAI documents it: ``{"input": {"messages": [...]},
  "preferred_output": [{"role": "assistant", ...}], "non_preferred_output": [...]}`` — the
  input ends with a user message, both outputs are non-empty lists of assistant messages, and
  (the simulator's own check) they differ.

The format is read from the first example; a line in the other format is a bad line. Tokens
are counted as the simulator bills them (exactly with the ``tokens`` extra): 4 tokens of
framing per message plus its content; a preference pair bills its input and both outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from raftkit.testing._tokens import TokenCounter, token_counter

__all__ = ["TrainingDataFormat", "TrainingDataReport", "inspect_training_data"]

TrainingDataFormat = Literal["supervised", "dpo"]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_MAX_REPORTED_PROBLEMS = 3
_FRAMING = 4


@dataclass(frozen=True)
class TrainingDataReport:
    """What a light check of a fine-tuning JSONL file found."""

    examples: int
    tokens: int
    """Tokens of one pass over the data (what one epoch bills)."""
    problem: str | None
    """Why the file cannot be used for fine-tuning, naming the line; ``None`` if it can."""
    format: TrainingDataFormat | None = None
    """``supervised`` (chat examples) or ``dpo`` (preference pairs); ``None`` for no examples."""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _messages_problem(
    messages: Any, where: str, counter: TokenCounter
) -> tuple[str | None, int, list[str]]:
    """Why a list of messages is malformed, its tokens and its roles."""
    if not isinstance(messages, list) or not messages:
        return f"key '{where}' is missing or not a non-empty array", 0, []
    tokens = 0
    roles: list[str] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"{where}[{index}] is not an object", 0, []
        role = message.get("role")
        if role not in _ROLES:
            return f"{where}[{index}] has an invalid role {role!r}", 0, []
        content = message.get("content")
        if content is None and not (role == "assistant" and message.get("tool_calls")):
            return f"{where}[{index}] has no content", 0, []
        if content is not None and not isinstance(content, str | list):
            return f"{where}[{index}].content must be a string or an array of parts", 0, []
        roles.append(str(role))
        tokens += _FRAMING + counter.count(_content_text(content))
    return None, tokens, roles


def _supervised_problem(record: dict[str, Any], counter: TokenCounter) -> tuple[str | None, int]:
    messages = record.get("messages")
    if messages is None and isinstance(record.get("prompt"), str):
        completion = record.get("completion")
        if not isinstance(completion, str):
            return "key 'completion' must be a string", 0
        return None, counter.count(record["prompt"]) + counter.count(completion)
    problem, tokens, roles = _messages_problem(messages, "messages", counter)
    if problem is not None:
        return problem, 0
    if "assistant" not in roles:
        return "the example has no assistant message to learn from", 0
    return None, tokens


def _preference_problem(record: dict[str, Any], counter: TokenCounter) -> tuple[str | None, int]:
    source = record.get("input")
    if not isinstance(source, dict):
        return "key 'input' must be an object with 'messages'", 0
    problem, tokens, roles = _messages_problem(source.get("messages"), "input.messages", counter)
    if problem is not None:
        return problem, 0
    if roles[-1] != "user":
        return "input.messages must end with a user message", 0
    outputs = []
    for key in ("preferred_output", "non_preferred_output"):
        problem, output_tokens, output_roles = _messages_problem(record.get(key), key, counter)
        if problem is not None:
            return problem, 0
        if any(role != "assistant" for role in output_roles):
            return f"{key} must hold assistant messages only", 0
        tokens += output_tokens
        outputs.append(json.dumps(record[key], sort_keys=True))
    if outputs[0] == outputs[1]:
        return "preferred_output and non_preferred_output are identical", 0
    return None, tokens


def _format_of(record: Any) -> TrainingDataFormat:
    if isinstance(record, dict) and ("preferred_output" in record or "input" in record):
        return "dpo"
    return "supervised"


def inspect_training_data(
    content: bytes,
    *,
    expected: TrainingDataFormat | None = None,
    counter: TokenCounter | None = None,
) -> TrainingDataReport:
    """Check ``content`` (see the module docstring); with ``expected``, a file in the other
    format is a problem too."""
    counter = counter or token_counter("gpt-4o")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as e:
        return TrainingDataReport(0, 0, f"The file is not UTF-8 text (byte {e.start}).")
    problems: list[str] = []
    examples = 0
    tokens = 0
    found: TrainingDataFormat | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            problems.append(f"Line {number}: not valid JSON")
            continue
        if not isinstance(record, dict):
            problems.append(f"Line {number}: expected a JSON object")
            continue
        kind = _format_of(record)
        found = found or kind
        if kind != found:
            other = "a preference pair" if kind == "dpo" else "a chat example"
            problems.append(f"Line {number}: {other} in a file of {_described(found)}")
            continue
        check = _preference_problem if kind == "dpo" else _supervised_problem
        problem, line_tokens = check(record, counter)
        if problem is not None:
            problems.append(f"Line {number}: {problem}")
            continue
        examples += 1
        tokens += line_tokens
    if problems:
        shown = "; ".join(problems[:_MAX_REPORTED_PROBLEMS])
        more = len(problems) - _MAX_REPORTED_PROBLEMS
        extra = f" (and {more} more)" if more > 0 else ""
        return TrainingDataReport(
            examples,
            tokens,
            f"Invalid file format: {len(problems)} bad line(s). {shown}{extra}.",
            found,
        )
    if examples == 0:
        return TrainingDataReport(0, 0, "The training file has no examples.")
    if expected is not None and found != expected:
        return TrainingDataReport(
            examples,
            tokens,
            f"A {_method(expected)} job needs {_described(expected)}; the file holds "
            f"{_described(found)}.",
            found,
        )
    return TrainingDataReport(examples, tokens, None, found)


def _described(kind: TrainingDataFormat | None) -> str:
    if kind == "dpo":
        return "preference pairs (input, preferred_output, non_preferred_output)"
    return "chat examples (messages)"


def _method(kind: TrainingDataFormat) -> str:
    return "DPO" if kind == "dpo" else "supervised"
