from __future__ import annotations

import pytest

from raftkit.synth import REJECTION_REASONS, quote_in_text, verify_answer
from raftkit.synth.verify import RejectionReason, extract_final_answer, extract_quotes

EN_ORACLE = (
    "Bats are the only mammals capable of true and sustained flight. Their forelimbs are "
    "adapted as wings.\nMost bats are nocturnal, and many roost in caves or other refuges."
)
# As PDF extraction delivers Chinese: a line break and stray spaces between characters.
ZH_ORACLE = (
    "蝙蝠是唯一能够真正飞行的\n哺乳 动物。它们的前肢演化为翼，\n大多数蝙蝠在夜间活动（夜行性）。"
)
BQ, EQ = "##begin_quote##", "##end_quote##"

CASES: list[tuple[str, str, str, RejectionReason | None]] = [
    (
        "english exact quote",
        EN_ORACLE,
        f"The text says {BQ}Bats are the only mammals capable of true and sustained flight."
        f"{EQ} so they fly.\n<ANSWER>: Bats",
        None,
    ),
    (
        "quote spanning a line break of the oracle",
        EN_ORACLE,
        f"{BQ}adapted as wings. Most bats are nocturnal{EQ}\n<ANSWER>: at night",
        None,
    ),
    (
        "line break inside the quote",
        EN_ORACLE,
        f"{BQ}many roost in caves\nor other refuges{EQ}\n<ANSWER>: caves",
        None,
    ),
    (
        "curly quotes around the quote and marker spelling variants",
        EN_ORACLE,
        "## begin_quote ##“Their forelimbs are adapted as wings.”##END QUOTE##\n<answer>: wings",
        None,
    ),
    (
        "elided quote",
        EN_ORACLE,
        f"{BQ}Bats are the only mammals ... sustained flight.{EQ}\n<ANSWER>: yes",
        None,
    ),
    (
        "chinese quote without the PDF's spaces and line breaks",
        ZH_ORACLE,
        f"根据文档，{BQ}蝙蝠是唯一能够真正飞行的哺乳动物。{EQ}因此答案是蝙蝠。\n<ANSWER>: 蝙蝠",
        None,
    ),
    (
        "chinese quote with full-width punctuation the oracle has in full width",
        ZH_ORACLE,
        f"{BQ}它们的前肢演化为翼，{EQ}\n<ANSWER>：翼",
        None,
    ),
    (
        "chinese quote with half-width punctuation against full-width oracle",
        ZH_ORACLE,
        f"{BQ}大多数蝙蝠在夜间活动(夜行性){EQ}\n<ANSWER>: 夜间",
        None,
    ),
    (
        "full-width latin letters in the quote",
        EN_ORACLE,
        f"{BQ}Ｂａｔｓ are the only mammals{EQ}\n<ANSWER>: Bats",
        None,
    ),
    (
        "invented english quote",
        EN_ORACLE,
        f"{BQ}Bats are the only birds capable of flight.{EQ}\n<ANSWER>: Bats",
        "quote_not_in_oracle",
    ),
    (
        "one good and one invented chinese quote",
        ZH_ORACLE,
        f"{BQ}蝙蝠是唯一能够真正飞行的哺乳动物。{EQ}{BQ}蝙蝠会游泳。{EQ}\n<ANSWER>: 会",
        "quote_not_in_oracle",
    ),
    (
        "case changed inside a quote",
        EN_ORACLE,
        f"{BQ}bats are THE only mammals{EQ}\n<ANSWER>: Bats",
        "quote_not_in_oracle",
    ),
    (
        "missing answer line",
        EN_ORACLE,
        f"{BQ}Their forelimbs are adapted as wings.{EQ} So the answer is wings.",
        "no_answer_line",
    ),
    (
        "empty answer",
        EN_ORACLE,
        f"{BQ}Their forelimbs are adapted as wings.{EQ}\n<ANSWER>:   \n",
        "empty_answer",
    ),
    ("no quotes", EN_ORACLE, "Bats fly.\n<ANSWER>: Bats", "no_quotes"),
    ("only an empty quote", EN_ORACLE, f"{BQ}  {EQ}\n<ANSWER>: Bats", "no_quotes"),
    (
        "unclosed quote",
        EN_ORACLE,
        f"{BQ}Their forelimbs are adapted as wings.\n<ANSWER>: wings",
        "unbalanced_quote_markers",
    ),
    (
        "end marker first",
        EN_ORACLE,
        f"{EQ}Their forelimbs{BQ}\n<ANSWER>: wings",
        "unbalanced_quote_markers",
    ),
    (
        "nested begin",
        ZH_ORACLE,
        f"{BQ}蝙蝠{BQ}哺乳动物{EQ}{EQ}\n<ANSWER>: 是",
        "unbalanced_quote_markers",
    ),
    ("empty response", EN_ORACLE, "  \n ", "invalid_response"),
]


@pytest.mark.parametrize(
    ("answer", "oracle", "expected"),
    [pytest.param(a, o, e, id=name) for name, o, a, e in CASES],
)
def test_verify_answer_table(answer: str, oracle: str, expected: RejectionReason | None) -> None:
    result = verify_answer(answer, oracle)
    assert result.reason == expected
    assert result.ok is (expected is None)
    if expected is None:
        assert result.final_answer
        assert result.quotes
        assert result.detail == ""
    else:
        assert result.detail


def test_every_reason_is_covered_by_the_table() -> None:
    assert {e for *_, e in CASES if e is not None} == set(REJECTION_REASONS)


def test_missing_quotes_are_named() -> None:
    answer = f"{BQ}Bats are mammals{EQ} and {BQ}Most bats are nocturnal{EQ}\n<ANSWER>: x"
    result = verify_answer(answer, EN_ORACLE)
    assert result.reason == "quote_not_in_oracle"
    assert result.missing_quotes == ["Bats are mammals"]
    assert "Bats are mammals" in result.detail


def test_quotes_can_be_optional() -> None:
    result = verify_answer("Bats fly.\n<ANSWER>: Bats", EN_ORACLE, require_quotes=False)
    assert result.ok
    assert result.final_answer == "Bats"
    assert result.quotes == []


def test_ellipsis_can_be_refused_and_order_matters() -> None:
    elided = "Bats are the only mammals … sustained flight."
    assert quote_in_text(elided, EN_ORACLE)
    assert not quote_in_text(elided, EN_ORACLE, allow_ellipsis=False)
    assert not quote_in_text("sustained flight ... Bats are the only", EN_ORACLE)


def test_final_answer_is_taken_after_the_last_tag() -> None:
    text = "I will write <ANSWER>: later.\nReasoning.\n<ANSWER>: 42 ##end_quote##"
    assert extract_final_answer(text) == "42"
    assert extract_final_answer("no tag") is None


def test_extract_quotes_strips_and_pairs() -> None:
    text = f"a {BQ} one {EQ} b {BQ}two\nlines{EQ}"
    assert extract_quotes(text) == ["one", "two\nlines"]
    assert extract_quotes(f"{BQ}x") is None
