"""Build a JSON instance valid under a JSON schema, with its strings taken from a source text.

The subset of JSON Schema the teacher honours: ``type`` (also lists), ``object`` with
``properties``/``required``, ``array`` with ``items``/``minItems``/``maxItems``/``uniqueItems``,
``string`` with ``minLength``/``maxLength``, ``integer``/``number`` with bounds, ``boolean``,
``null``, ``enum``, ``const``, ``anyOf``/``oneOf``/``allOf`` and local ``$ref`` into
``$defs``/``definitions``.
"""

from __future__ import annotations

import re
from typing import Any

from raftkit.testing._text import is_cjk, is_stopword, split_sentences, stable_hash

__all__ = ["fill_schema", "question_from_sentence", "short_answer"]

_DEFAULT_ITEMS = 3
_MAX_DEPTH = 12
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")


def _cjk_share(text: str) -> float:
    letters = "".join(text.split())
    return sum(map(is_cjk, letters)) / len(letters) if letters else 0.0


def question_from_sentence(sentence: str) -> str:
    """A question whose answer is ``sentence``."""
    if _cjk_share(sentence) > 0.3:
        core = sentence.rstrip("。！？!?.」』”’） ")
        topic = core[:12]
        return f"关于“{topic}”，文中是怎么说的？"
    words = _WORD.findall(sentence)
    topic = " ".join(words[:6]) or sentence.strip()
    return f"What does the text say about {topic}?"


def short_answer(sentence: str, question: str = "") -> str:
    """A few words of ``sentence``, preferring those the question does not already use."""
    core = sentence.strip().rstrip("。！？.!?")
    if _cjk_share(core) > 0.3:
        unasked = "".join(c for c in core if c not in question)
        return (unasked or core)[:20]
    asked = {w.lower() for w in _WORD.findall(question)}
    words = _WORD.findall(core)
    fresh = [w for w in words if w.lower() not in asked and not is_stopword(w) and len(w) > 1]
    return " ".join((fresh or words)[:8])


class _Filler:
    def __init__(self, root: dict[str, Any], text: str, seed: int) -> None:
        self.root = root
        self.seed = seed
        sentences = [s for s in split_sentences(text) if len(s) > 1]
        self.sentences = sentences or [text.strip() or "No text was given."]
        self.cursor = stable_hash(seed, len(self.sentences)) % len(self.sentences)
        self.used: set[str] = set()

    @staticmethod
    def make(name: str, sentence: str) -> str:
        if "question" in name or "query" in name:
            return question_from_sentence(sentence)
        if "answer" in name:
            return short_answer(sentence)
        return sentence

    def next_sentence(self) -> str:
        sentence = self.sentences[self.cursor % len(self.sentences)]
        self.cursor += 1
        return sentence

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema and seen < _MAX_DEPTH:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise ValueError(f"only local $ref is supported, got {ref!r}")
            target: Any = self.root
            for part in ref.lstrip("#").strip("/").split("/"):
                if part:
                    target = target[part.replace("~1", "/").replace("~0", "~")]
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest}
            seen += 1
        return schema

    def fill(self, schema: Any, hint: str, depth: int = 0) -> Any:
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return self.string({}, hint)
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            options = list(schema["enum"])
            return options[stable_hash(self.seed, hint) % len(options)]
        for combinator in ("anyOf", "oneOf"):
            options = schema.get(combinator)
            if isinstance(options, list) and options:
                chosen = next(
                    (o for o in options if self.resolve(o).get("type") != "null"), options[0]
                )
                return self.fill(chosen, hint, depth + 1)
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                resolved = self.resolve(part)
                merged.setdefault("properties", {}).update(resolved.get("properties", {}))
                merged.update({k: v for k, v in resolved.items() if k != "properties"})
            return self.fill(merged, hint, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else None
        if kind == "object":
            return self.object(schema, hint, depth)
        if kind == "array":
            return self.array(schema, hint, depth)
        if kind == "integer":
            return int(self.number(schema, hint, integer=True))
        if kind == "number":
            return self.number(schema, hint, integer=False)
        if kind == "boolean":
            return stable_hash(self.seed, hint) % 2 == 0
        if kind == "null":
            return None
        return self.string(schema, hint)

    def object(self, schema: dict[str, Any], hint: str, depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        result: dict[str, Any] = {}
        for name, sub in properties.items():
            result[name] = self.fill(sub, f"{hint}.{name}", depth + 1)
        for name in schema.get("required") or []:
            if name not in result:
                result[name] = self.string({}, f"{hint}.{name}")
        return result

    def array(self, schema: dict[str, Any], hint: str, depth: int) -> list[Any]:
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        count = max(low, _DEFAULT_ITEMS)
        if high is not None:
            count = min(count, int(high))
        items = schema.get("items", {})
        return [self.fill(items, f"{hint}[]", depth + 1) for _ in range(count)]

    def number(self, schema: dict[str, Any], hint: str, *, integer: bool) -> float:
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        low_value = float(low) if isinstance(low, int | float) else 0.0
        high_value = float(high) if isinstance(high, int | float) else low_value + 100.0
        if "exclusiveMinimum" in schema and isinstance(schema["exclusiveMinimum"], int | float):
            low_value += 1.0 if integer else 1e-6
        if "exclusiveMaximum" in schema and isinstance(schema["exclusiveMaximum"], int | float):
            high_value -= 1.0 if integer else 1e-6
        if integer:
            low_int, high_int = int(-(-low_value // 1)), int(high_value // 1)
            if high_int < low_int:
                return float(low_int)
            return float(low_int + stable_hash(self.seed, hint) % (high_int - low_int + 1))
        fraction = (stable_hash(self.seed, hint) % 1000) / 1000
        return low_value + (high_value - low_value) * fraction

    def string(self, schema: dict[str, Any], hint: str) -> str:
        name = hint.rsplit(".", 1)[-1].lower()
        text = self.make(name, self.next_sentence())
        # Arrays with more items than the text has sentences still need distinct strings:
        # try every other sentence first, then number the repeats.
        tries = 0
        while text in self.used and tries < len(self.sentences):
            text = self.make(name, self.next_sentence())
            tries += 1
        variant = 2
        base = text
        while text in self.used:
            text = (
                f"{base[:-1]} ({variant}){base[-1]}"
                if base.endswith(("?", "？"))
                else (f"{base} ({variant})")
            )
            variant += 1
        self.used.add(text)
        min_length = int(schema.get("minLength", 0))
        max_length = schema.get("maxLength")
        if len(text) < min_length:
            text = (text + " ") * (min_length // max(1, len(text)) + 1)
        if max_length is not None:
            text = text[: int(max_length)]
        return text


def fill_schema(schema: dict[str, Any], text: str, *, seed: int = 0) -> Any:
    """An instance valid under ``schema`` whose strings come from the sentences of ``text``."""
    filler = _Filler(schema, text, seed)
    return filler.fill(schema, "")
