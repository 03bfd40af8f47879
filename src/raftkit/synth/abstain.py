"""What an example says when its context lacks the oracle: the paper's answer, or a refusal.

RAFT keeps the oracle in a share ``p`` of the contexts; in the others the paper still trains the
oracle's answer, teaching the student to recall what retrieval missed. A student that should
rather abstain when retrieval failed is taught with **refusals**: a short reasoned refusal in
the document's language, without quotes, ending ``<ANSWER>: `` and a fixed phrase
(:data:`~raftkit.types.DEFAULT_REFUSAL_ANSWER` unless configured) — the phrase evaluation
recognises (:func:`raftkit.evaluate.is_refusal`).

:class:`AbstentionRules` says which examples refuse:

- ``paper`` (default): none;
- ``refuse``: every example whose context lacks the oracle;
- ``mix`` (``share``): that many of them, drawn per question from the run seed.

The refusal is written from a template per language (:data:`REFUSAL_LANGUAGES`, chosen from
the oracle's text; English otherwise), not by the teacher: it says nothing the documents could
contradict, so a teacher call would buy variety of wording at the price of an answer call and a
check that it quotes nothing. It names the topics of the documents shown when they have titles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from raftkit.errors import UsageError
from raftkit.synth._language import Language, language_of
from raftkit.synth._text import stable_int
from raftkit.synth.answers import AnswerResult
from raftkit.types import DEFAULT_REFUSAL_ANSWER

__all__ = [
    "REFUSAL_LANGUAGES",
    "AbstentionRules",
    "refusal_answer",
    "refusal_result",
]

# (without topics, with topics) per language; {topics} lists the documents' titles.
_TEMPLATES: dict[Language, tuple[str, str]] = {
    "en": (
        "None of the documents addresses this question: none of them states the fact it asks "
        "for. Answering from memory could be wrong, so I do not answer.",
        "The documents are about {topics}; none of them states the fact this question asks "
        "for. Answering from memory could be wrong, so I do not answer.",
    ),
    "zh": (
        "这些文档都没有涉及这个问题，没有一篇给出所问的事实。凭记忆作答可能出错，因此我不作答。",
        "这些文档讲的是{topics}，没有一篇给出这个问题所问的事实。凭记忆作答可能出错，因此我不作答。",
    ),
    "ja": (
        "どの文書もこの質問を扱っておらず、問われている事実を述べているものはありません。"
        "記憶に頼って答えると誤る可能性があるため、回答しません。",
        "文書は{topics}についてのもので、この質問で問われている事実を述べているものはありません。"
        "記憶に頼って答えると誤る可能性があるため、回答しません。",
    ),
    "ko": (
        "어느 문서도 이 질문을 다루지 않으며, 묻는 사실을 밝히는 문서가 없습니다. "
        "기억에 의존해 답하면 틀릴 수 있으므로 답하지 않겠습니다.",
        "문서들은 {topics}에 관한 것이며, 이 질문이 묻는 사실을 밝히는 문서는 없습니다. "
        "기억에 의존해 답하면 틀릴 수 있으므로 답하지 않겠습니다.",
    ),
    "de": (
        "Keines der Dokumente behandelt diese Frage; keines nennt die gefragte Tatsache. Eine "
        "Antwort aus dem Gedächtnis könnte falsch sein, daher antworte ich nicht.",
        "Die Dokumente handeln von {topics}; keines nennt die Tatsache, nach der diese Frage "
        "fragt. Eine Antwort aus dem Gedächtnis könnte falsch sein, daher antworte ich nicht.",
    ),
    "fr": (
        "Aucun des documents ne traite cette question : aucun ne donne le fait demandé. "
        "Répondre de mémoire pourrait être faux, je ne réponds donc pas.",
        "Les documents portent sur {topics} ; aucun ne donne le fait que demande cette "
        "question. Répondre de mémoire pourrait être faux, je ne réponds donc pas.",
    ),
    "es": (
        "Ninguno de los documentos trata esta pregunta: ninguno da el dato que se pide. "
        "Responder de memoria podría ser un error, así que no respondo.",
        "Los documentos tratan de {topics}; ninguno da el dato que pide esta pregunta. "
        "Responder de memoria podría ser un error, así que no respondo.",
    ),
    "pt": (
        "Nenhum dos documentos trata desta pergunta: nenhum dá o fato pedido. Responder de "
        "memória poderia estar errado, por isso não respondo.",
        "Os documentos tratam de {topics}; nenhum dá o fato que esta pergunta pede. Responder "
        "de memória poderia estar errado, por isso não respondo.",
    ),
    "it": (
        "Nessuno dei documenti tratta questa domanda: nessuno riporta il fatto richiesto. "
        "Rispondere a memoria potrebbe essere sbagliato, quindi non rispondo.",
        "I documenti parlano di {topics}; nessuno riporta il fatto che chiede questa domanda. "
        "Rispondere a memoria potrebbe essere sbagliato, quindi non rispondo.",
    ),
}
#: The languages refusals are written in (others get the English template).
REFUSAL_LANGUAGES: tuple[Language, ...] = tuple(_TEMPLATES)
_LIST_JOIN: dict[Language, str] = {"zh": "、", "ja": "、", "ko": ", "}
_MAX_TOPICS = 3


class AbstentionRules(BaseModel):
    """Which examples without the oracle refuse (see the module docstring). They shape the
    data, so a run records them and refuses to resume with others."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["paper", "refuse", "mix"] = "paper"
    share: float = Field(
        0.0, ge=0.0, le=1.0, description="mix: the share of oracle-less examples that refuse"
    )
    phrase: str = Field(DEFAULT_REFUSAL_ANSWER, description="the final answer of a refusal")

    @field_validator("phrase")
    @classmethod
    def _phrase(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("the refusal phrase must not be empty")
        return value

    @classmethod
    def parse(cls, spec: str, *, phrase: str = DEFAULT_REFUSAL_ANSWER) -> AbstentionRules:
        """``paper``, ``refuse`` or ``mix:SHARE`` (as ``--no-oracle-answer`` takes them)."""
        text = spec.strip().lower()
        if text in ("paper", "refuse"):
            return cls(mode=text, share=1.0 if text == "refuse" else 0.0, phrase=phrase)
        if text.startswith("mix:"):
            try:
                share = float(text[4:])
            except ValueError:
                share = -1.0
            if not 0.0 <= share <= 1.0:
                raise UsageError(f"mix:SHARE needs a share between 0 and 1, got {spec!r}")
            return cls(mode="mix", share=share, phrase=phrase)
        raise UsageError(f"expected paper, refuse or mix:SHARE, got {spec!r}")

    def spec(self) -> str:
        """The form :meth:`parse` reads."""
        return f"mix:{self.share:g}" if self.mode == "mix" else self.mode

    def refuses_share(self) -> float:
        """The share of oracle-less examples that refuse."""
        return {"paper": 0.0, "refuse": 1.0}.get(self.mode, self.share)

    def refuses(self, seed: int, question_id: str, *, oracle_present: bool) -> bool:
        """Whether the example of ``question_id`` refuses (never when the oracle is shown)."""
        if oracle_present or self.mode == "paper":
            return False
        if self.mode == "refuse":
            return True
        return stable_int(f"{seed}/{question_id}/refuse") / 2**64 < self.share


def refusal_answer(
    oracle_text: str, phrase: str = DEFAULT_REFUSAL_ANSWER, *, topics: Sequence[str] = ()
) -> str:
    """A reasoned refusal in the language of ``oracle_text``, ending ``<ANSWER>: phrase``."""
    language = language_of(oracle_text)
    plain, with_topics = _TEMPLATES.get(language, _TEMPLATES["en"])
    named = list(dict.fromkeys(t.strip() for t in topics if t.strip()))[:_MAX_TOPICS]
    if named:
        joined = _LIST_JOIN.get(language, ", ").join(named)
        reasoning = with_topics.format(topics=joined)
    else:
        reasoning = plain
    return f"{reasoning}\n<ANSWER>: {phrase}"


def refusal_result(
    oracle_text: str, phrase: str = DEFAULT_REFUSAL_ANSWER, *, topics: Sequence[str] = ()
) -> AnswerResult:
    """A refusal as an accepted :class:`~raftkit.synth.AnswerResult` (no call, no quotes)."""
    return AnswerResult(
        accepted=True,
        cot_answer=refusal_answer(oracle_text, phrase, topics=topics),
        final_answer=phrase,
        attempts=0,
        kind="refusal",
    )
