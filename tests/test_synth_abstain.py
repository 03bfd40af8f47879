"""Refusals for contexts without the oracle: the settings, the draw, and the text."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from raftkit.errors import UsageError
from raftkit.evaluate import is_refusal
from raftkit.synth import REFUSAL_LANGUAGES, AbstentionRules, refusal_answer, refusal_result
from raftkit.synth.verify import extract_final_answer, extract_quotes
from raftkit.types import DEFAULT_REFUSAL_ANSWER


@pytest.mark.parametrize(
    ("spec", "mode", "share"),
    [("paper", "paper", 0.0), ("refuse", "refuse", 1.0), ("mix:0.25", "mix", 0.25)],
)
def test_specs_parse(spec: str, mode: str, share: float) -> None:
    rules = AbstentionRules.parse(spec)
    assert (rules.mode, rules.share, rules.phrase) == (mode, share, DEFAULT_REFUSAL_ANSWER)
    assert AbstentionRules.parse(rules.spec()) == rules


@pytest.mark.parametrize("spec", ["always", "mix", "mix:", "mix:1.5", "mix:-0.1", "mix:half"])
def test_bad_specs_are_refused_in_one_line(spec: str) -> None:
    with pytest.raises(UsageError, match=r"paper, refuse or mix:SHARE|mix:SHARE needs"):
        AbstentionRules.parse(spec)


def test_an_empty_phrase_is_refused() -> None:
    with pytest.raises(ValidationError, match="must not be empty"):
        AbstentionRules(mode="refuse", phrase="  ")


def test_who_refuses() -> None:
    ids = [f"q-{i}" for i in range(2000)]
    paper, refuse = AbstentionRules(), AbstentionRules.parse("refuse")
    mix = AbstentionRules.parse("mix:0.3")
    for rules in (paper, refuse, mix):
        assert not any(rules.refuses(0, i, oracle_present=True) for i in ids)
    assert not any(paper.refuses(0, i, oracle_present=False) for i in ids)
    assert all(refuse.refuses(0, i, oracle_present=False) for i in ids)
    drawn = [mix.refuses(0, i, oracle_present=False) for i in ids]
    assert 0.26 < sum(drawn) / len(ids) < 0.34
    assert drawn == [mix.refuses(0, i, oracle_present=False) for i in ids], "deterministic"
    assert drawn != [mix.refuses(1, i, oracle_present=False) for i in ids], "seeded"


ORACLES = {
    "en": "Bats are the only mammals capable of true flight.",
    "zh": "蝙蝠是唯一能够真正飞行的哺乳动物。",
    "ja": "コウモリは空を飛ぶことができる唯一の哺乳類です。",
    "ko": "박쥐는 진정한 비행이 가능한 유일한 포유류입니다.",
    "de": "Die Fledermäuse sind die einzigen Säugetiere, die fliegen können, und das ist selten.",
    "fr": "Les chauves-souris sont les seuls mammifères qui volent dans le ciel et pour cela.",
    "es": "Los murciélagos son los únicos mamíferos que vuelan y es por eso que son raros.",
    "pt": "Os morcegos são os únicos mamíferos que voam e não são aves, como as aves da ilha.",
    "it": "I pipistrelli sono gli unici mammiferi che volano e non sono uccelli, della notte.",
}
# A word of each template, to tell which language was written.
MARKERS = {
    "en": "documents",
    "zh": "文档",
    "ja": "文書",
    "ko": "문서",
    "de": "Dokumente",
    "fr": "documents",
    "es": "documentos",
    "pt": "documentos",
    "it": "documenti",
}


@pytest.mark.parametrize("language", sorted(ORACLES))
def test_refusals_are_written_in_the_documents_language_without_quotes(language: str) -> None:
    text = refusal_answer(ORACLES[language])
    reasoning, _, _ = text.partition("\n<ANSWER>:")
    assert MARKERS[language] in reasoning
    assert extract_quotes(text) == []
    assert extract_final_answer(text) == DEFAULT_REFUSAL_ANSWER
    assert is_refusal(extract_final_answer(text) or "")


def test_every_refusal_language_is_tested() -> None:
    assert set(REFUSAL_LANGUAGES) == set(ORACLES)
    assert refusal_answer("Ceci.").endswith(DEFAULT_REFUSAL_ANSWER)  # unknown → English


def test_refusals_name_the_documents_topics_and_the_configured_phrase() -> None:
    text = refusal_answer(
        ORACLES["en"], "No answer in the documents.", topics=["Surfing", "", "Surfing", "Foil"]
    )
    assert text.splitlines()[0].startswith("The documents are about Surfing, Foil;")
    assert text.endswith("<ANSWER>: No answer in the documents.")
    chinese = refusal_answer(ORACLES["zh"], topics=["蝙蝠", "冲浪"])
    assert "蝙蝠、冲浪" in chinese
    result = refusal_result(ORACLES["en"], "Nope.")
    assert (result.kind, result.accepted, result.final_answer) == ("refusal", True, "Nope.")
    assert (result.quotes, result.attempts, result.usage.total_tokens) == ([], 0, 0)
