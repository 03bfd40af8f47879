"""Build a JSON instance valid under a JSON schema, with its strings taken from a source text.

The subset of JSON Schema the teacher honours: ``type`` (also lists), ``object`` with
``properties``/``required``, ``array`` with ``items``/``minItems``/``maxItems``/``uniqueItems``,
``string`` with ``minLength``/``maxLength``, ``integer``/``number`` with bounds, ``boolean``,
``null``, ``enum``, ``const``, ``anyOf``/``oneOf``/``allOf`` and local ``$ref`` into
``$defs``/``definitions``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from raftkit.testing._text import is_cjk, is_stopword, split_sentences, stable_hash

__all__ = [
    "QuestionFlaws",
    "fill_schema",
    "flawed_question",
    "question_from_sentence",
    "short_answer",
]

_DEFAULT_ITEMS = 3
_MAX_DEPTH = 12
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")


def _cjk_share(text: str) -> float:
    letters = "".join(text.split())
    return sum(map(is_cjk, letters)) / len(letters) if letters else 0.0


_VERBS = frozenset(
    [
        "is",
        "are",
        "was",
        "were",
        "has",
        "have",
        "had",
        "can",
        "could",
        "will",
        "would",
        "lies",
        "lie",
        "contains",
        "contain",
        "includes",
        "include",
        "became",
        "become",
        "remains",
        "remain",
    ]
)
_LEADING = frozenset(
    [
        "with",
        "in",
        "on",
        "at",
        "after",
        "before",
        "during",
        "for",
        "from",
        "by",
        "since",
        "although",
        "though",
        "when",
        "while",
        "if",
        "because",
        "as",
        "despite",
        "unlike",
        "like",
    ]
)
_LATIN_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")
_MAX_QUESTION_WORDS = 14
_CJK_VERBS = ("是", "位于", "有")


def _is_verb(word: str, position: int) -> bool:
    lower = word.lower()
    return lower in _VERBS or (position > 0 and len(lower) > 4 and lower.endswith("ed"))


def question_from_sentence(sentence: str) -> str:
    """A self-contained question whose answer is ``sentence``.

    It asks for the subject: "What" followed by the sentence from its first verb on ("Mount
    Everest is the highest mountain." → "What is the highest mountain?"); a sentence that opens
    with a subordinate clause is read from its first comma on.
    """
    core = sentence.strip().rstrip("。！？!?.」』”’） ")
    if _cjk_share(core) > 0.3:
        for verb in _CJK_VERBS:
            at = core.find(verb, 1)
            if 0 < at <= 12:
                return f"什么{core[at:]}？"
        return f"关于“{core[:12]}”，有什么具体信息？"
    words = list(_LATIN_WORD.finditer(core))
    if words and words[0].group().lower() in _LEADING and "," in core:
        clause = core[core.index(",") + 1 :].strip()
        if _LATIN_WORD.search(clause):
            return question_from_sentence(clause)
    for position, match in enumerate(words[:12]):
        if _is_verb(match.group(), position) and position > 0:
            rest = core[match.start() :]
            kept = list(_LATIN_WORD.finditer(rest))
            if len(kept) > _MAX_QUESTION_WORDS:
                rest = rest[: kept[_MAX_QUESTION_WORDS - 1].end()]
            return f"What {rest[0].lower()}{rest[1:]}?"
    topic = " ".join(m.group() for m in words[:5]) or core
    return f"What is known about {topic}?"


@dataclass(frozen=True)
class QuestionFlaws:
    """Make a share of generated questions flawed (see ``ModelBehaviour.bad_questions``)."""

    share: float
    kinds: tuple[str, ...]
    key: str
    """Decisions depend on this (the model's name) as well as on the question."""


_GENERIC_QUESTION = {"en": "What is the main point?", "zh": "主要内容是什么？"}


def flawed_question(kind: str, sentence: str, previous: str | None) -> str:
    """A question with the flaw ``kind`` about ``sentence``."""
    chinese = _cjk_share(sentence) > 0.3
    core = sentence.strip().rstrip("。！？!?.」』”’） ")
    words = _WORD.findall(sentence)
    if kind == "duplicate":
        return previous or _GENERIC_QUESTION["zh" if chinese else "en"]
    if kind == "copied_sentence":
        return f"{core}？" if chinese else f"{core}?"
    if kind == "vague":
        if chinese:
            return f"关于“{core[:2]}”，知道些什么？"
        content = [w for w in words if not is_stopword(w) and len(w) > 3] or words or [core]
        rare = max(content, key=lambda w: (len(w), w))
        return f"What is known about {rare.lower()}?"
    if chinese:  # text_reference
        return f"关于“{core[:12]}”，文中是怎么说的？"
    return f"What does the text say about {' '.join(words[:6]) or core}?"


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
    def __init__(
        self,
        root: dict[str, Any],
        text: str,
        seed: int,
        flaws: QuestionFlaws | None = None,
        types: list[str] | None = None,
    ) -> None:
        self.root = root
        self.seed = seed
        self.flaws = flaws
        self.types = list(types or [])
        self.questions: list[str] = []
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
            if hint.endswith(".type") and self.types and self.types[0] in options:
                return self.types.pop(0)  # the types the prompt asked for, in order
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

    def flawed(self, name: str, sentence: str) -> str | None:
        flaws = self.flaws
        if flaws is None or not ("question" in name or "query" in name):
            return None
        decision = stable_hash("question", flaws.key, self.seed, sentence, len(self.questions))
        if decision / 2**64 >= flaws.share:
            return None
        kind = flaws.kinds[decision % len(flaws.kinds)]
        previous = self.questions[-1] if self.questions else None
        return flawed_question(kind, sentence, previous)

    def string(self, schema: dict[str, Any], hint: str) -> str:
        name = hint.rsplit(".", 1)[-1].lower()
        sentence = self.next_sentence()
        flawed = self.flawed(name, sentence)
        if flawed is not None and "maxLength" not in schema:
            self.used.add(flawed)
            self.questions.append(flawed)
            return flawed
        text = self.make(name, sentence)
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
        if "question" in name or "query" in name:
            self.questions.append(text)
        return text


def fill_schema(
    schema: dict[str, Any],
    text: str,
    *,
    seed: int = 0,
    flaws: QuestionFlaws | None = None,
    types: list[str] | None = None,
) -> Any:
    """An instance valid under ``schema`` whose strings come from the sentences of ``text``;
    with ``flaws``, a share of its questions is flawed on purpose; ``types`` fill the fields
    named ``type`` that have an ``enum``, in order, while they last."""
    filler = _Filler(schema, text, seed, flaws, types)
    return filler.fill(schema, "")
