from __future__ import annotations

import math

import pytest

from raftkit.evaluate.metrics import (
    BUILTIN_METRICS,
    Sample,
    answer_length,
    exact_match,
    extract_final_answer,
    extract_quotes,
    format_adherence,
    is_latin_script,
    normalize_answer,
    normalize_for_matching,
    quote_grounding,
    token_f1,
)
from raftkit.llm.tokens import estimate_tokens

# ---------------------------------------------------------------- final answer


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Because ##begin_quote##x##end_quote##.\n<ANSWER>: Paris", "Paris"),
        ("<ANSWER>: first\nthen <ANSWER>:  second  ", "second"),
        ("推理……\n<ANSWER>：巴黎", "巴黎"),  # full-width colon
        ("<answer>: lower case marker", "lower case marker"),
        ("  no marker at all  ", "no marker at all"),
        ("", ""),
        ("<ANSWER>:", ""),
    ],
)
def test_extract_final_answer(response: str, expected: str) -> None:
    assert extract_final_answer(response) == expected


def test_format_adherence_needs_marker_and_answer() -> None:
    assert format_adherence("reasoning\n<ANSWER>: 42") == 1.0
    assert format_adherence("推理\n<ANSWER>：四十二") == 1.0
    assert format_adherence("42") == 0.0
    assert format_adherence("reasoning <ANSWER>:   ") == 0.0
    assert format_adherence("") == 0.0


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  an   apple, a pear  ", "apple pear"),
        ("ＡＢＣ　１２３", "abc 123"),  # full-width letters, digits and ideographic space
        ("“巴黎 铁塔。”", "巴黎铁塔"),
        ("「東京」は、日本の首都です！", "東京は日本の首都です"),
        ("《红楼梦》【第一回】", "红楼梦第一回"),
        ("Straße", "strasse"),  # case-folding, not lower()
        ("café", "café"),
        ("", ""),
        ("?!。，", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_articles_are_dropped_only_from_latin_script_text() -> None:
    assert is_latin_script("the answer is a cat")
    assert not is_latin_script("维生素 A 的作用")
    assert normalize_answer("维生素 a") == "维生素a"  # the "a" is a name, kept
    assert normalize_answer("A vitamin") == "vitamin"
    assert normalize_answer("Ветер a b") == "ветер a b"  # Cyrillic text keeps the Latin "a"


def test_normalize_for_matching_keeps_case_and_punctuation() -> None:
    assert normalize_for_matching("蝙 蝠\n会飞。") == "蝙蝠会飞。"
    assert normalize_for_matching("Bats  can\n fly.") == "Bats can fly."
    assert normalize_for_matching("ｆｕｌｌ width") == "full width"


# ---------------------------------------------------------------- exact match and F1


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("The Eiffel Tower.", "eiffel tower", 1.0),
        ("Eiffel", "Eiffel Tower", 0.0),
        ("巴 黎。", "巴黎", 1.0),  # stray spaces between CJK characters do not matter
        ("ＰＡＲＩＳ", "Paris", 1.0),
        ("", "", 1.0),
        (".", "", 1.0),  # empty after normalisation
        ("", "Paris", 0.0),
        ("Paris", "", 0.0),
    ],
)
def test_exact_match(prediction: str, reference: str, expected: float) -> None:
    assert exact_match(prediction, reference) == expected


def test_token_f1_on_words() -> None:
    # pred {eiffel, tower, paris}, gold {eiffel, tower}: P=2/3, R=1
    assert token_f1("the Eiffel tower, Paris", "Eiffel Tower") == pytest.approx(0.8)
    assert token_f1("Paris", "London") == 0.0
    assert token_f1("x y y", "y y z") == pytest.approx(2 / 3)  # multiset overlap: 2 of 3 each


def test_token_f1_uses_characters_for_cjk() -> None:
    # 北京大学 vs 北京: overlap 2 chars, P=2/2, R=2/4 -> F1=2/3 (word tokens would score 0)
    assert token_f1("北京", "北京大学") == pytest.approx(2 / 3)
    assert token_f1("北 京 大 学", "北京大学") == 1.0
    assert token_f1("東京です", "東京") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))


def test_token_f1_on_mixed_script_text() -> None:
    # pred tokens: iphone 15 是 苹 果 ; gold tokens: iphone 是 苹 果 手 机 -> overlap 4
    precision, recall = 4 / 5, 4 / 6
    expected = 2 * precision * recall / (precision + recall)
    assert token_f1("iPhone 15是苹果", "iPhone是苹果手机") == pytest.approx(expected)


def test_token_f1_empty_cases() -> None:
    assert token_f1("", "") == 1.0
    assert token_f1("。", "") == 1.0
    assert token_f1("", "答案") == 0.0
    assert token_f1("答案", "") == 0.0


# ---------------------------------------------------------------- quote grounding


def test_extract_quotes() -> None:
    text = (
        "a ##begin_quote## one ##end_quote## b ##begin_quote##\ntwo\n##end_quote## "
        "##begin_quote## ##end_quote##"
    )
    assert extract_quotes(text) == ["one", "two"]


def test_quote_grounding_counts_the_share_of_quotes_found() -> None:
    docs = ["Bats are the only mammals capable of true flight.", "Surfing is a sport."]
    answer = (
        "##begin_quote##Bats are the only mammals capable of true flight.##end_quote## and "
        "##begin_quote##Bats lay eggs.##end_quote## <ANSWER>: flight"
    )
    assert quote_grounding(answer, docs) == 0.5


def test_quote_grounding_normalises_width_and_cjk_spacing() -> None:
    # PDF text: stray spaces and a line break between CJK characters, full-width digits
    docs = ["蝙蝠是唯一 能够真正\n飞行的哺乳动物，约有１４００种。"]
    answer = (
        "##begin_quote##蝙蝠是唯一能够真正飞行的哺乳动物##end_quote## "
        "##begin_quote##约有1400种。##end_quote##"
    )
    assert quote_grounding(answer, docs) == 1.0


def test_quote_grounding_is_case_sensitive_and_nan_without_quotes() -> None:
    assert quote_grounding("##begin_quote##BATS FLY##end_quote##", ["bats fly"]) == 0.0
    assert math.isnan(quote_grounding("<ANSWER>: no quotes", ["anything"]))
    assert quote_grounding("##begin_quote##x##end_quote##", []) == 0.0


# ---------------------------------------------------------------- length and metric objects


def test_answer_length_is_script_aware() -> None:
    assert answer_length("") == 0.0
    assert answer_length("蝙蝠会飞") == 4.0  # about a token per CJK character
    assert answer_length("bats fly") == float(estimate_tokens("bats fly"))


@pytest.mark.anyio
async def test_builtin_metrics_score_a_sample(anyio_backend: str) -> None:
    sample = Sample(
        question="蝙蝠会飞吗？",
        response="##begin_quote##蝙蝠会飞。##end_quote##\n<ANSWER>: 会",
        reference="会。",
        contexts=("干扰文档。", "蝙蝠 会飞。"),
    )
    scores = {m.name: await m.score(sample) for m in BUILTIN_METRICS}
    assert scores == {
        "exact_match": 1.0,
        "token_f1": 1.0,
        "quote_grounding": 1.0,
        "format_adherence": 1.0,
        "answer_length": float(estimate_tokens(sample.response)),
    }
    assert [m.higher_is_better for m in BUILTIN_METRICS][-1] is None
