"""Structured output: strict JSON schemas for the API, parsing answers back, and falling back
when a server cannot do a mode.

OpenAI's strict ``json_schema`` mode accepts a subset of JSON Schema: every object must say
``additionalProperties: false`` and list all of its properties as ``required``, and a
``$ref`` may not have sibling keywords. :func:`strict_schema` rewrites a schema (pydantic's
included) into that subset, the way openai-python's ``to_strict_json_schema`` does.

Most local servers cannot do ``json_schema`` (llama.cpp answers it with a 500), some not
``json_object`` either (LM Studio). :class:`StructuredModes` recognises the refusal on the
first reply and moves that model on to the next mode, once for all calls.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from raftkit.errors import APIStatusError, StructuredOutputError, UsageError
from raftkit.llm._base import ChatResponse, StructuredMode, StructuredResponse
from raftkit.llm._retry import STRUCTURED_OUTPUT, unsupported_feature

__all__ = [
    "DEFAULT_STRUCTURED_ATTEMPTS",
    "STRUCTURED_ORDER",
    "Ask",
    "OutputSpec",
    "StructuredModes",
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

logger = logging.getLogger("raftkit.llm")

#: The order structured modes are tried in when the client chooses.
STRUCTURED_ORDER: tuple[StructuredMode, ...] = ("json_schema", "json_object", "prompt")
_SUGGEST: dict[StructuredMode, str] = {
    "json_schema": "structured_mode='json_object' (raftkit --structured-mode json_object)",
    "json_object": "structured_mode='prompt' (raftkit --structured-mode prompt)",
    "prompt": "another server",
}


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
    mode: StructuredMode | None = None,
) -> StructuredResponse[Any]:
    """Ask, parse against ``spec``, and re-ask with feedback until valid or out of attempts
    (``attempts`` calls in all, :data:`DEFAULT_STRUCTURED_ATTEMPTS` unless given).

    This is the loop raftkit's clients run for ``chat_structured``; a client of your own can
    run it too, with ``ask`` making one call. Each attempt uses its own sample index
    (``sample + attempt``), so a journal keeps every paid attempt apart. ``mode`` is
    recorded on the result (how ``ask`` asks for JSON). A re-ask shows the model at most an
    excerpt of its rejected reply (:func:`reply_excerpt`). Raises
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
                return StructuredResponse(
                    output=value, response=response, attempts=attempt + 1, mode=mode
                )
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


class StructuredModes:
    """Per model, the structured-output mode a server takes, learned from its refusals.

    A client asks :meth:`first` which mode to use, :meth:`after_refusal` when a call failed
    with an API error (the next mode, or the error raised again), and tells :meth:`worked`
    when a call succeeded. A mode the caller chose (``chosen``) is never changed: a refusal
    of it raises a one-line :class:`~raftkit.errors.UsageError` that names the mode to use.
    """

    def __init__(self) -> None:
        self._modes: dict[str, StructuredMode] = {}

    def known(self) -> dict[str, StructuredMode]:
        """The mode each model was asked in so far."""
        return dict(self._modes)

    def first(self, model: str, chosen: StructuredMode | None) -> StructuredMode:
        return chosen or self._modes.get(model, STRUCTURED_ORDER[0])

    def worked(self, model: str, mode: StructuredMode, *, chosen: StructuredMode | None) -> None:
        if chosen is None:
            self._modes.setdefault(model, mode)

    def after_refusal(
        self,
        model: str,
        mode: StructuredMode,
        error: APIStatusError,
        *,
        chosen: StructuredMode | None,
        endpoint: str,
    ) -> StructuredMode:
        """The mode to ask ``model`` in next after ``error``; raises when there is none.

        Only a refusal of structured output moves on (:func:`unsupported_feature` on the
        body the server sent); any other error is raised again as it is. The first of
        concurrent calls to learn the next mode says so in the log, once.
        """
        if mode == "prompt" or _refused_feature(error) != STRUCTURED_OUTPUT:
            raise error
        reason = f"{error.status_code}: {_first_line(error.message)}"
        if chosen is not None:
            raise UsageError(
                f"{endpoint} refuses structured output as {mode} for model {model!r} "
                f"({reason}); use {_SUGGEST[mode]}"
            ) from error
        known = self._modes.get(model, STRUCTURED_ORDER[0])
        following = STRUCTURED_ORDER[STRUCTURED_ORDER.index(mode) + 1]
        if STRUCTURED_ORDER.index(following) <= STRUCTURED_ORDER.index(known):
            return known  # another call learned it already
        self._modes[model] = following
        logger.warning(
            "%s refuses structured output as %s for model %r (%s); asking in %s mode from now on",
            endpoint,
            mode,
            model,
            reason,
            following,
        )
        return following


def _refused_feature(error: APIStatusError) -> str | None:
    """What an error says the server does not support, read from the body it sent."""
    body = error.body
    if body is None:
        return unsupported_feature(error.status_code, error.message)
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, default=str)
    return unsupported_feature(error.status_code, text)


def _first_line(text: str, limit: int = 200) -> str:
    text = text.split(" [not retried:")[0].strip()  # the server's words, not our note
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[:limit] + "..."
