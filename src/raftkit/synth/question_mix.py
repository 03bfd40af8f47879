"""Question types: a mix of factoid, explanation, comparison … questions, optionally personas.

A teacher left to itself writes mostly one kind of question (short factoids). A
:class:`QuestionMix` asks for a share of each type; every question records its type
(:attr:`~raftkit.types.Question.question_type`, then :attr:`~raftkit.types.RaftExample.
question_type`), so the run report counts them by type and evaluation breaks its metrics down
by type.

- **Allocation** (:meth:`QuestionMix.allocate`): a chunk's ``n`` questions are given types by
  systematic sampling — one random offset per chunk from the run seed, then ``n`` evenly spaced
  points on the types' cumulative shares — so each type gets ``n × share`` rounded up or down,
  and exactly its share over the corpus on average.
- **Personas** (optional): one per chunk, drawn from the run seed; the prompt asks for the
  questions as that person would ask them, and the example records it
  (``metadata["persona"]``).
- **Writing** (:class:`TypedQuestionSynthesizer`): one structured call asks for the chunk's
  questions with their types (``{"questions": [{"type": …, "question": …}]}``); a type still
  short after a round is asked for again, like missing questions are.

Built-in types have descriptions (:data:`BUILTIN_TYPES`); any other name is allowed with a
description of your own (in a mix file), or gets a generic one.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from raftkit.errors import InputError, StructuredOutputError, UsageError
from raftkit.llm import ChatMessage, LLMClient
from raftkit.llm.caps import CompletionCaps
from raftkit.synth._text import dedup_key, stable_int, tidy_spaces
from raftkit.synth.prompts import Prompts
from raftkit.synth.questions import QUESTION_TOKENS, question_id
from raftkit.types import Chunk, Question

__all__ = [
    "BUILTIN_TYPES",
    "QuestionMix",
    "QuestionType",
    "TypedQuestionSynthesizer",
    "typed_question_messages",
    "typed_questions_output_model",
]

logger = logging.getLogger("raftkit.synth")
#: Before any reply was seen: the JSON around the questions, and a question's type field.
_TYPED_JSON = 32
_TYPE_TOKENS = 16

#: Descriptions of the built-in question types, as the prompt gives them to the teacher.
BUILTIN_TYPES: dict[str, str] = {
    "factoid": "asks for one fact the chunk states: a name, number, date, place or term",
    "explanation": "asks why or how something happens or works, answered by the chunk's reasoning",
    "comparison": "asks how two things the chunk describes differ or are alike",
    "definition": "asks what a term the chunk defines means",
    "procedure": "asks how to do something the chunk describes, step by step",
    "yes_no": "is answered yes or no from the chunk, and names its subject",
}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_LIST_PREFIX = re.compile(r"^\s*(?:[-*•·]\s+|\d{1,3}[.):]\s+|\d{1,3}、|[（(]\d{1,3}[)）]\s*)")


class QuestionType(BaseModel):
    """One type of question in a mix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    share: float = Field(gt=0.0, le=1.0)
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> QuestionType:
        if not _NAME.match(self.name):
            raise ValueError(
                f"question type {self.name!r}: use lower-case letters, digits, '_' or '-'"
            )
        if self.name == "multi_hop":
            raise ValueError("'multi_hop' is the type of multi-hop questions; use --multi-hop")
        if not self.description:
            described = BUILTIN_TYPES.get(self.name, f"a {self.name.replace('_', ' ')} question")
            object.__setattr__(self, "description", described)
        return self


class QuestionMix(BaseModel):
    """The types of questions to ask, with their shares (summing to 1), and optional personas.

    They shape the data, so a run records them and refuses to resume with others.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    types: tuple[QuestionType, ...] = Field(min_length=1)
    personas: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> QuestionMix:
        names = [t.name for t in self.types]
        if len(set(names)) != len(names):
            raise ValueError(f"a question type is named twice: {names}")
        total = sum(t.share for t in self.types)
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"question type shares must sum to 1, got {total:g}")
        personas = tuple(" ".join(p.split()) for p in self.personas)
        if any(not p for p in personas):
            raise ValueError("a persona is empty")
        object.__setattr__(self, "personas", personas)
        return self

    @classmethod
    def parse(cls, spec: str, *, personas: Iterable[str] = ()) -> QuestionMix:
        """``factoid=0.5,explanation=0.3,comparison=0.2`` (as ``--question-mix`` takes it)."""
        types = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            try:
                share = float(value) if sep else math.nan
            except ValueError:
                share = math.nan
            if not sep or not 0.0 < share <= 1.0:
                raise UsageError(f"question mix: expected NAME=SHARE, got {part!r} in {spec!r}")
            types.append({"name": name.strip(), "share": share})
        try:
            return cls.model_validate({"types": types, "personas": list(personas)})
        except ValidationError as e:
            raise UsageError(f"question mix {spec!r}: {e.errors()[0]['msg']}") from None

    @classmethod
    def load(cls, path: str | Path) -> QuestionMix:
        """A mix file (JSON): ``{"types": {"factoid": 0.6, "howto": {"share": 0.4,
        "description": "..."}}, "personas": ["a first-year nurse", ...]}``."""
        where = Path(path)
        try:
            data = json.loads(where.read_text(encoding="utf-8"))
        except OSError as e:
            raise InputError(f"{where}: cannot read the question mix ({e.strerror})") from None
        except ValueError as e:
            raise InputError(f"{where}: not valid JSON ({e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("types"), dict):
            raise InputError(f"{where}: expected an object with a 'types' object")
        types: list[dict[str, Any]] = []
        for name, value in data["types"].items():
            entry = value if isinstance(value, dict) else {"share": value}
            types.append({"name": name, **entry})
        try:
            return cls.model_validate({"types": types, "personas": data.get("personas", [])})
        except ValidationError as e:
            error = e.errors()[0]
            spot = ".".join(str(p) for p in error["loc"])
            raise InputError(f"{where}: {spot}: {error['msg']}") from None

    def allocate(self, chunk_id: str, n: int, seed: int = 0) -> list[str]:
        """The types of the chunk's ``n`` questions, in the mix's order (see the module
        docstring)."""
        offset = stable_int(f"{seed}/{chunk_id}/question-mix") / 2**64
        edges: list[float] = []
        total = 0.0
        for t in self.types:
            total += t.share
            edges.append(total)
        chosen = []
        for i in range(n):
            point = (offset + i) / n
            at = next((j for j, edge in enumerate(edges) if point < edge), len(edges) - 1)
            chosen.append(self.types[at].name)
        return chosen

    def persona_for(self, chunk_id: str, seed: int = 0) -> str | None:
        """The persona of the chunk's questions (``None`` without personas)."""
        if not self.personas:
            return None
        return self.personas[stable_int(f"{seed}/{chunk_id}/persona") % len(self.personas)]

    def description(self, name: str) -> str:
        return next(t.description for t in self.types if t.name == name)


@lru_cache(maxsize=64)
def typed_questions_output_model(n: int, names: tuple[str, ...]) -> type[BaseModel]:
    """``{"questions": [{"type": one of names, "question": str}, ...]}``, ``n`` items asked.

    Like :func:`~raftkit.synth.questions.questions_output_model`, validation accepts any count
    and any type name, so an imperfect reply is used as far as it goes."""
    item: type[BaseModel] = create_model(
        "TypedQuestion",
        type=(str, Field(json_schema_extra={"enum": list(names)})),
        question=(str, ...),
    )
    model: type[BaseModel] = create_model(
        "TypedQuestions",
        questions=(
            list[item],
            Field(
                description=f"exactly {n} questions, each with its type",
                json_schema_extra={"minItems": n, "maxItems": n},
            ),
        ),
    )
    return model


def typed_question_messages(
    chunk_text: str,
    wanted: Counter[str],
    mix: QuestionMix,
    prompts: Prompts,
    *,
    persona: str | None = None,
    existing: list[str] | None = None,
) -> list[ChatMessage]:
    """Messages asking for ``wanted`` (type → count) questions about ``chunk_text``; with
    ``existing``, the retry asking for more, unlike those."""
    n = sum(wanted.values())
    listed = "\n".join(
        f"- {wanted[t.name]} {t.name}: {t.description}" for t in mix.types if wanted[t.name] > 0
    )
    system = prompts.typed_question_system.format(n=n, types=listed)
    if persona:
        system += "\n" + prompts.persona.format(persona=persona)
    messages: list[ChatMessage] = [
        {"role": "system", "content": system},
        {"role": "user", "content": prompts.question_user.format(chunk=chunk_text, n=n)},
    ]
    if existing is not None:
        shown = "\n".join(f"- {q}" for q in existing) if existing else "(none)"
        retry = prompts.typed_question_retry.format(n=n, existing=shown, types=listed)
        messages.append({"role": "user", "content": retry})
    return messages


class TypedQuestionSynthesizer:
    """A :class:`~raftkit.synth.QuestionSynthesizer` that asks for a :class:`QuestionMix`.

    Per chunk: allocate the ``n`` questions to types; ask for them in one structured call; keep
    each reply item whose type still lacks questions (duplicates, blank questions and items
    of a full or unknown type are dropped); ask again for what is missing, at most
    ``max_retries`` times. Each round has its own ``sample`` index
    (``sample * (max_retries + 1) + round``). A reply that is not valid JSON counts as a round
    that found nothing; API errors propagate.
    """

    def __init__(
        self,
        client: LLMClient,
        model: str,
        mix: QuestionMix,
        *,
        prompts: Prompts | None = None,
        seed: int = 0,
        temperature: float | None = None,
        max_tokens: int | None = None,
        max_retries: int = 2,
        caps: CompletionCaps | None = None,
    ) -> None:
        if max_retries < 0:
            raise UsageError("max_retries must be >= 0")
        self.caps = caps if caps is not None else CompletionCaps()
        self.client = client
        self.model = model
        self.mix = mix
        self.prompts = prompts if prompts is not None else Prompts()
        self.seed = seed
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_retries = max_retries

    def __repr__(self) -> str:
        names = ",".join(f"{t.name}={t.share:g}" for t in self.mix.types)
        return f"{type(self).__name__}(model={self.model!r}, mix={names!r})"

    async def synthesize(self, chunk: Chunk, n: int = 5, *, sample: int = 0) -> list[Question]:
        if n < 1:
            raise UsageError(f"n must be >= 1, got {n}")
        wanted = Counter(self.mix.allocate(chunk.id, n, self.seed))
        persona = self.mix.persona_for(chunk.id, self.seed)
        kept: dict[str, tuple[str, str]] = {}  # dedup key -> (type, text), in order of arrival
        rounds = self.max_retries + 1
        for round_ in range(rounds):
            missing = wanted - Counter(kind for kind, _ in kept.values())
            if not missing:
                break
            existing = None if round_ == 0 else [text for _, text in kept.values()]
            messages = typed_question_messages(
                chunk.text, missing, self.mix, self.prompts, persona=persona, existing=existing
            )
            for kind, text in await self._ask(messages, missing, sample * rounds + round_, chunk):
                key = dedup_key(text)
                if not key or key in kept or missing[kind] <= 0:
                    continue
                kept[key] = (kind, text)
                missing[kind] -= 1
        if len(kept) < n:
            logger.warning(
                "chunk %s: teacher gave %d of %d typed questions after %d rounds",
                chunk.id,
                len(kept),
                n,
                rounds,
            )
        order = {t.name: i for i, t in enumerate(self.mix.types)}
        typed = sorted(kept.values(), key=lambda item: order[item[0]])
        metadata = {"persona": persona} if persona else {}
        return [
            Question(
                id=question_id(chunk.id, text),
                chunk_id=chunk.id,
                text=text,
                question_type=kind,
                metadata=metadata,
            )
            for kind, text in typed
        ]

    async def _ask(
        self, messages: list[ChatMessage], wanted: Counter[str], sample: int, chunk: Chunk
    ) -> list[tuple[str, str]]:
        names = tuple(t.name for t in self.mix.types)
        n = sum(wanted.values())
        # typed questions: each carries its type's name too, so they learn a cap of their own
        initial = _TYPED_JSON + (QUESTION_TOKENS + _TYPE_TOKENS) * n
        cap = self.caps.cap(
            "typed-questions", self.model, initial=initial, units=n, pinned=self.max_tokens
        )
        try:
            result = await self.client.chat_structured(
                messages,
                typed_questions_output_model(n, names),
                model=self.model,
                temperature=self.temperature,
                max_tokens=cap.max_tokens,
                retry_max_tokens=cap.retry_max_tokens,
                sample=sample,
            )
        except StructuredOutputError as e:
            logger.warning("chunk %s: unusable question output (%s)", chunk.id, e)
            return []
        self.caps.observe("typed-questions", self.model, result.response, units=n)
        found: list[tuple[str, str]] = []
        for item in getattr(result.output, "questions", []) or []:
            kind = str(getattr(item, "type", "")).strip().lower()
            text = tidy_spaces(_LIST_PREFIX.sub("", str(getattr(item, "question", "")), count=1))
            if kind in names and text:
                found.append((kind, text))
        return found
