"""How each simulated model answers: deterministic, different from model to model.

A :class:`ModelBehaviour` gives shares (0 to 1) of answers that go a given way. Whether one
answer does is decided by a hash of the model, the kind of decision and the request, so the
same request to the same model always gets the same answer, a bigger model makes fewer
mistakes than a smaller one, and an evaluation on the simulator shows real differences.

The built-in table (``DEFAULT_BEHAVIOURS``) goes by the model's name:

- a fine-tuned model (``ft:...``, ``<base>.ft-...``, or any model a simulated job produced)
  has learned the RAFT answer format: it uses it even when the prompt does not ask for it,
  and rarely reads the wrong document;
- a base model answers in plain prose unless the prompt asks for the RAFT format; asked, a
  big model follows it, a ``mini`` model slips now and then, a ``nano`` model more often;
- small models read a distractor instead of the relevant document more often.

``SimulatorConfig.model_behaviour`` (exact names or ``fnmatch`` patterns such as ``"*-nano*"``)
and :meth:`Simulator.set_model_behaviour` override the table.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from raftkit.testing._text import stable_hash

__all__ = [
    "BAD_QUESTION_KINDS",
    "DEFAULT_BEHAVIOURS",
    "BadQuestionKind",
    "ModelBehaviour",
    "behaviour_for",
    "decide",
]

BadQuestionKind = Literal["text_reference", "duplicate", "copied_sentence", "vague"]
BAD_QUESTION_KINDS: tuple[BadQuestionKind, ...] = (
    "text_reference",
    "duplicate",
    "copied_sentence",
    "vague",
)


@dataclass(frozen=True, kw_only=True)
class ModelBehaviour:
    """Shares of a model's answers that go each way (each from 0.0 to 1.0)."""

    format_mistakes: float = 0.0
    """Of RAFT answers (when the prompt asks for the format or the model learned it): the share
    that breaks it, alternately without the ``<ANSWER>:`` line or with a quote that is not in
    the documents."""
    learned_format: float = 0.0
    """Of answers to prompts that do not ask for the RAFT format: the share given in it anyway
    (1.0 for a model fine-tuned on RAFT data; a base model answers in plain prose)."""
    wrong_document: float = 0.0
    """Of RAFT answers with several documents: the share built on a distractor rather than the
    document that matches the question best."""
    refusals: float = 0.0
    """Of RAFT answers: the share that declines (``<ANSWER>: I cannot answer this from the
    documents.``); 1.0 always refuses, 0.0 never does."""
    bad_questions: float = 0.0
    """Of generated questions (structured fields named ``*question*``): the share that is
    flawed in one of ``bad_question_kinds``."""
    bad_question_kinds: tuple[BadQuestionKind, ...] = ("text_reference", "duplicate")
    """``text_reference`` ("What does the text say about …?"), ``duplicate`` (the question
    before it again, or one question asked of every chunk), ``copied_sentence`` (a sentence of
    the chunk with a question mark) and ``vague`` ("What is known about <one word>?")."""
    refuses_without_evidence: bool = False
    """Also decline when no document shares at least two content words with the question (a
    student that abstains when retrieval failed)."""
    refusal_text: str | None = None
    """The final answer of a refusal; ``None``: "I cannot answer this from the given documents."
    (in Chinese for a Chinese question)."""

    def __post_init__(self) -> None:
        for name in ("format_mistakes", "learned_format", "wrong_document", "refusals"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"ModelBehaviour.{name} must be in [0, 1], got {value}")
        if not 0.0 <= self.bad_questions <= 1.0:
            raise ValueError(
                f"ModelBehaviour.bad_questions must be in [0, 1], got {self.bad_questions}"
            )
        unknown = set(self.bad_question_kinds) - set(BAD_QUESTION_KINDS)
        if unknown or not self.bad_question_kinds:
            raise ValueError(
                f"ModelBehaviour.bad_question_kinds must be some of {BAD_QUESTION_KINDS}, "
                f"got {self.bad_question_kinds}"
            )


_FINE_TUNED = ModelBehaviour(format_mistakes=0.02, learned_format=1.0, wrong_document=0.03)

DEFAULT_BEHAVIOURS: Mapping[str, ModelBehaviour] = {
    "ft:*": _FINE_TUNED,
    "*.ft-*": _FINE_TUNED,
    "*nano*": ModelBehaviour(format_mistakes=0.15, learned_format=0.0, wrong_document=0.3),
    "*mini*": ModelBehaviour(format_mistakes=0.05, learned_format=0.0, wrong_document=0.15),
    "*": ModelBehaviour(format_mistakes=0.0, learned_format=0.0, wrong_document=0.05),
}
"""Patterns tried in order; the first that matches a model name applies."""


def behaviour_for(
    model: str,
    overrides: Mapping[str, ModelBehaviour],
    *,
    fine_tuned: bool,
    table: Mapping[str, ModelBehaviour] = DEFAULT_BEHAVIOURS,
) -> ModelBehaviour:
    """The behaviour of ``model``: an exact override, a matching override pattern, a
    fine-tuned model's, then the first matching pattern of ``table``."""
    if model in overrides:
        return overrides[model]
    for pattern, behaviour in overrides.items():
        if fnmatch.fnmatchcase(model, pattern):
            return behaviour
    if fine_tuned:
        return _FINE_TUNED
    for pattern, behaviour in table.items():
        if fnmatch.fnmatchcase(model, pattern):
            return behaviour
    return ModelBehaviour()


def decide(share: float, *parts: object) -> bool:
    """Whether a decision with probability ``share`` goes the rare way for this request."""
    if share <= 0.0:
        return False
    if share >= 1.0:
        return True
    return stable_hash("behaviour", *parts) / 2**64 < share
