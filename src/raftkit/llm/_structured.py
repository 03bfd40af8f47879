"""Structured output: strict JSON schemas for the API, and parsing answers back.

OpenAI's strict ``json_schema`` mode accepts a subset of JSON Schema: every object must say
``additionalProperties: false`` and list all of its properties as ``required``, and a
``$ref`` may not have sibling keywords. :func:`strict_schema` rewrites a schema (pydantic's
included) into that subset, the way openai-python's ``to_strict_json_schema`` does.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from raftkit.errors import StructuredOutputError, UsageError
from raftkit.llm._base import ChatResponse, StructuredResponse

__all__ = [
    "DEFAULT_STRUCTURED_ATTEMPTS",
    "Ask",
    "OutputSpec",
    "ask_until_valid",
    "extract_json",
    "feedback_message",
    "instruction",
    "reply_excerpt",
    "strict_schema",
]

#: Calls a structured request may take in all (the first and its re-asks) unless told.
DEFAULT_STRUCTURED_ATTEMPTS = 3

_NAME_OK = re.compile(r"[^A-Za-z0-9_-]")
_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
_MAX_FEEDBACK = 1500
#: Characters of a rejected reply a re-ask shows the model: enough to see what went wrong, and
#: never a runaway reply of thousands of tokens sent back into the context.
REPLY_EXCERPT_CHARS = 1200


def _resolve(root: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise UsageError(f"only local $refs are supported in output schemas, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _strict(node: Any, root: Mapping[str, Any]) -> Any:
    if isinstance(node, list):
        return [_strict(item, root) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1:
        # a $ref may not have siblings in strict mode: inline it, local keywords win
        merged = {**_resolve(root, ref), **{k: v for k, v in node.items() if k != "$ref"}}
        return _strict(copy.deepcopy(merged), root)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "default":
            continue  # every property is required, so a default never applies
        if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(
            value, dict
        ):
            out[key] = {name: _strict(sub, root) for name, sub in value.items()}
        else:
            out[key] = _strict(value, root)
    if "allOf" in out and isinstance(out["allOf"], list) and len(out["allOf"]) == 1:
        only = out.pop("allOf")[0]
        out = {**only, **out}
    if out.get("type") == "object" or "properties" in out:
        out.setdefault("additionalProperties", False)
        properties = out.get("properties")
        if isinstance(properties, dict):
            out["required"] = list(properties)
    return out


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` rewritten for OpenAI's strict structured-output mode."""
    root = copy.deepcopy(dict(schema))
    result = _strict(root, root)
    assert isinstance(result, dict)
    return result


def extract_json(text: str) -> str:
    """The JSON in a reply: the text itself, a fenced block, or the outermost ``{...}``."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        return fenced.group(1).strip()
    if stripped.startswith(("{", "[")):
        return stripped
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end:
        return stripped[start : end + 1]
    return stripped


def instruction(schema: Mapping[str, Any]) -> str:
    """The system message that asks for JSON when the API cannot enforce the schema."""
    return (
        "Respond with a single JSON object and nothing else (no prose, no code fence). "
        "It must validate against this JSON Schema:\n"
        + json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
    )


def reply_excerpt(text: str, limit: int = REPLY_EXCERPT_CHARS) -> str:
    """``text`` if it is at most ``limit`` characters, else its start and end around a note of
    how much was left out: what a re-ask quotes of a rejected reply."""
    if len(text) <= limit:
        return text
    head = text[: limit * 2 // 3]
    tail = text[len(text) - limit // 3 :]
    left_out = len(text) - len(head) - len(tail)
    return f"{head}\n[... {left_out} characters left out ...]\n{tail}"


def feedback_message(error: str) -> str:
    """The user message of a re-ask: what was wrong with the previous answer."""
    if len(error) > _MAX_FEEDBACK:
        error = error[:_MAX_FEEDBACK] + " ..."
    return (
        "Your previous answer was not valid JSON for the required schema:\n"
        f"{error}\nAnswer again with only the corrected JSON object."
    )


@dataclass(frozen=True)
class OutputSpec:
    """What a caller asked for: the schema sent to the API and how answers are validated."""

    name: str
    schema: dict[str, Any]
    strict: dict[str, Any]
    adapter: TypeAdapter[Any] | None

    @classmethod
    def of(cls, output: Any) -> OutputSpec:
        if isinstance(output, Mapping):
            schema = dict(output)
            raw_name = str(schema.get("title") or "output")
            return cls(_name(raw_name), schema, strict_schema(schema), None)
        if isinstance(output, type):
            adapter: TypeAdapter[Any] = TypeAdapter(output)
            schema = adapter.json_schema()
            if schema.get("type") != "object":
                raise UsageError(f"structured output must be an object type, got {output.__name__}")
            return cls(_name(output.__name__), schema, strict_schema(schema), adapter)
        raise UsageError(
            "output must be a pydantic model class (or another class pydantic can validate) "
            f"or a JSON schema mapping, got {type(output).__name__}"
        )

    def response_format(self) -> dict[str, Any]:
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": self.strict, "strict": True},
        }

    def parse(self, text: str) -> Any:
        """The validated output; raises ``ValueError`` with a message fit to show the model."""
        payload = extract_json(text)
        if self.adapter is not None:
            try:
                return self.adapter.validate_json(payload)
            except ValidationError as exc:
                raise ValueError(str(exc)) from exc
        try:
            value = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON: {exc}") from exc
        _validate_schema(value, self.schema)
        return value


def _validate_schema(value: Any, schema: Mapping[str, Any]) -> None:
    try:
        import jsonschema
    except ImportError as exc:  # pragma: no cover - jsonschema ships with the dev extra
        raise UsageError(
            "validating output against a JSON schema mapping needs the jsonschema package "
            "(pip install jsonschema), or pass a pydantic model class instead"
        ) from exc
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        raise ValueError(
            "; ".join(
                f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in errors[:5]
            )
        )


def _name(raw: str) -> str:
    name = _NAME_OK.sub("_", raw)[:64]
    return name or "output"


#: One call of a structured request: the conversation so far and the sample index in, the
#: response and the model's refusal (``None`` if it did not refuse) out.
Ask = Callable[[list[dict[str, Any]], int], Awaitable[tuple[ChatResponse, str | None]]]


async def ask_until_valid(
    ask: Ask,
    conversation: list[dict[str, Any]],
    spec: OutputSpec,
    *,
    attempts: int | None = None,
    sample: int = 0,
) -> StructuredResponse[Any]:
    """Ask, parse against ``spec``, and re-ask with feedback until valid or out of attempts
    (``attempts`` calls in all, :data:`DEFAULT_STRUCTURED_ATTEMPTS` unless given).

    This is the loop raftkit's clients run for ``chat_structured``; a client of your own can
    run it too, with ``ask`` making one call. Each attempt uses its own sample index
    (``sample + attempt``), so a journal keeps every paid attempt apart. A re-ask shows the
    model at most an excerpt of its rejected reply (:func:`reply_excerpt`). Raises
    :class:`~raftkit.errors.StructuredOutputError` after ``attempts``.
    """
    attempts = attempts or DEFAULT_STRUCTURED_ATTEMPTS
    last_text = last_error = ""
    for attempt in range(attempts):
        response, refusal = await ask(conversation, sample + attempt)
        last_text = response.text
        if refusal is not None:
            last_error = f"the model refused: {refusal}"
        else:
            try:
                value = spec.parse(response.text)
            except ValueError as exc:
                last_error = str(exc)
                if response.finish_reason == "length":
                    last_error = "the answer was cut off (finish_reason=length); " + last_error
            else:
                return StructuredResponse(output=value, response=response, attempts=attempt + 1)
        conversation = [
            *conversation,
            {"role": "assistant", "content": reply_excerpt(response.text or refusal or "")},
            {"role": "user", "content": feedback_message(last_error)},
        ]
    raise StructuredOutputError(
        f"no valid {spec.name} output after {attempts} attempts: {last_error}",
        attempts=attempts,
        last_output=last_text,
    )
