from __future__ import annotations

import pytest

from raftkit.synth import REJECTION_REASONS, VerifyRules, quote_in_text, verify_answer
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
# A second oracle, for multi-hop answers that must quote both.
CAVE_ORACLE = "The Cueva del Guácharo in Venezuela is home to a colony of oilbirds and bats."

CASES: list[tuple[str, str | list[str], str, RejectionReason | None]] = [
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
        f"{BQ}adapted as wings. Most bats are nocturnal{EQ}\n<ANSWER>: nocturnal",
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
    (
        "one stop word as the only quote",
        EN_ORACLE,
        f"{BQ}and{EQ} so it is so.\n<ANSWER>: Bats",
        "quote_too_short",
    ),
    (
        "one chinese particle as the only quote",
        ZH_ORACLE,
        f"{BQ}的{EQ}\n<ANSWER>: 蝙蝠",
        "quote_too_short",
    ),
    (
        "a quote that starts inside a word",
        EN_ORACLE,
        f"{BQ}ats are the only mammals{EQ}\n<ANSWER>: Bats",
        "quote_splits_word",
    ),
    (
        "a quote of function words only",
        EN_ORACLE,
        f"{BQ}are the only{EQ}\n<ANSWER>: Bats",
        "no_substantive_quote",
    ),
    (
        "a number the oracle does not state",
        EN_ORACLE,
        f"{BQ}Most bats are nocturnal{EQ}\n<ANSWER>: 18.5% of bats",
        "answer_number_not_in_oracle",
    ),
    (
        "an answer the oracle does not back",
        EN_ORACLE,
        f"{BQ}many roost in caves or other refuges{EQ}\n<ANSWER>: in Madagascar",
        "answer_not_supported",
    ),
    (
        "a multi-hop answer quoting each of its oracles",
        [EN_ORACLE, CAVE_ORACLE],
        f"{BQ}Most bats are nocturnal{EQ} and {BQ}home to a colony of oilbirds and bats{EQ}"
        "\n<ANSWER>: nocturnal bats in the Cueva del Guácharo",
        None,
    ),
    (
        "a multi-hop answer that leaves one oracle unquoted",
        [EN_ORACLE, CAVE_ORACLE],
        f"{BQ}Most bats are nocturnal, and many roost in caves{EQ}\n<ANSWER>: in caves",
        "oracle_not_quoted",
    ),
]


@pytest.mark.parametrize(
    ("answer", "oracle", "expected"),
    [pytest.param(a, o, e, id=name) for name, o, a, e in CASES],
)
def test_verify_answer_table(
    answer: str, oracle: str | list[str], expected: RejectionReason | None
) -> None:
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


WIKI = (
    "Fossils have been found in Argentina, Mexico,[1][2] Ecuador and Brazil. The first fossil\n"
    "was located in Cueva del Guácharo in 1965, a skull and post-cranial material. Its skull is\n"
    "31.2 mm long, against 32.4–42.4 mm in the common vampire bat – a large difference. Sediments\n"
    "dated at 300 years BP hold 1,000 bones of three species."
)


@pytest.mark.parametrize(
    ("quote", "normalisation"),
    [
        ("found in Argentina, Mexico, Ecuador and Brazil", "citation_markers"),
        ("Was located in Cueva del", "initial_case"),
        ("a skull and postcranial material", "hyphenation"),
        ("located in Cueva del Guacharo in 1965", "diacritics"),
        ("the common vampire bat–a large difference", "dash_spacing"),
        ("Its skull is 31.2mm long", "unit_spacing"),
        ("The first fossil was located in Cueva del Guácharo in 1965.", "trailing_punctuation"),
        ("Fossils have been found ... Ecuador and Brazil", "ellipsis"),
        ("Ｉｔｓ skull is 31.2 mm long", "unicode_forms"),
    ],
)
def test_a_match_records_the_normalisation_it_needed(quote: str, normalisation: str) -> None:
    result = verify_answer(f"{BQ}{quote}{EQ}\n<ANSWER>: a skull", WIKI)
    assert result.ok, result.detail
    assert result.normalisations == [normalisation]
    assert result.quote_checks[0].normalisations == [normalisation]
    assert result.quotes == [quote], "the quote itself stays as written"


def test_a_verbatim_quote_needs_no_normalisation() -> None:
    result = verify_answer(f"{BQ}Its skull is 31.2 mm long{EQ}\n<ANSWER>: 31.2 mm", WIKI)
    assert result.ok
    assert result.normalisations == []


def test_quotes_match_on_word_boundaries() -> None:
    assert not quote_in_text("date", WIKI)
    assert quote_in_text("dated at 300 years", WIKI)
    assert not quote_in_text("ated at 300 years", WIKI)
    assert not quote_in_text("dated at 30", WIKI), "a number is a word too"
    # a hyphen is a boundary: a quote may start after one
    assert quote_in_text("cranial material", WIKI)


def test_cjk_quotes_may_start_and_end_at_any_character() -> None:
    assert quote_in_text("是唯一能够真正飞行", ZH_ORACLE)
    assert quote_in_text("能够真正飞行的哺乳动物", ZH_ORACLE)


def test_japanese_kana_marks_are_not_folded_away() -> None:
    oracle = "コウモリは夜に飛ぶことができる動物である。"
    assert quote_in_text("夜に飛ぶことができる", oracle)
    # ぶ and ふ differ only by a mark that diacritics folding must leave alone
    assert not quote_in_text("夜に飛ふことができる", oracle)


def test_the_final_answer_must_state_the_oracle_s_numbers() -> None:
    def check(answer: str) -> str | None:
        return verify_answer(f"{BQ}Its skull is 31.2 mm long{EQ}\n<ANSWER>: {answer}", WIKI).reason

    assert check("31.2 mm") is None
    assert check("about 1000 bones") is None, "1,000 is 1000"
    assert check("3 species") is None, "three is 3"
    assert check("32.4 to 42.4 mm") is None
    assert check("31.5 mm") == "answer_number_not_in_oracle"
    assert check("2 species") == "answer_number_not_in_oracle", "[2] is a citation, not a number"
    assert check("18.5% larger") == "answer_number_not_in_oracle"


def test_chinese_numerals_of_the_oracle_may_be_answered_in_digits() -> None:
    oracle = "全世界已知的蝙蝠超过一千四百种，约占哺乳动物物种总数的五分之一。"
    quote = f"{BQ}全世界已知的蝙蝠超过一千四百种{EQ}"
    assert verify_answer(f"{quote}\n<ANSWER>: 超过1400种", oracle).ok
    assert verify_answer(f"{quote}\n<ANSWER>: 超过１４００种", oracle).ok, "full-width digits"
    wrong = verify_answer(f"{quote}\n<ANSWER>: 超过1500种", oracle)
    assert wrong.reason == "answer_number_not_in_oracle"


def test_named_entities_of_the_answer_must_be_in_the_oracle() -> None:
    quote = f"{BQ}The first fossil was located in Cueva del Guácharo in 1965{EQ}"
    assert verify_answer(f"{quote}\n<ANSWER>: in Cueva del Guácharo", WIKI).ok
    # one invented name among supported words is enough to reject
    result = verify_answer(f"{quote}\n<ANSWER>: in Cueva del Guácharo, Venezuela", WIKI)
    assert result.reason == "answer_not_supported"
    assert "Venezuela" in result.detail


def test_thresholds_are_configurable() -> None:
    one_word = f"{BQ}Bats{EQ}\n<ANSWER>: Bats"
    assert verify_answer(one_word, EN_ORACLE).reason == "quote_too_short"
    assert verify_answer(one_word, EN_ORACLE, rules=VerifyRules(min_quote_words=1)).ok
    strict = VerifyRules(min_quote_words=10, min_quote_chars=80)
    short = f"{BQ}Most bats are nocturnal{EQ}\n<ANSWER>: nocturnal"
    assert verify_answer(short, EN_ORACLE).ok
    assert verify_answer(short, EN_ORACLE, rules=strict).reason == "quote_too_short"
    paraphrase = f"{BQ}Most bats are nocturnal{EQ}\n<ANSWER>: at night"
    assert verify_answer(paraphrase, EN_ORACLE).reason == "answer_not_supported"
    assert verify_answer(paraphrase, EN_ORACLE, rules=VerifyRules(min_answer_support=0)).ok
    number = f"{BQ}Most bats are nocturnal{EQ}\n<ANSWER>: 70% of bats"
    assert verify_answer(number, EN_ORACLE).reason == "answer_number_not_in_oracle"
    assert verify_answer(number, EN_ORACLE, rules=VerifyRules(check_answer_numbers=False)).ok


def test_every_problem_is_named_in_the_detail() -> None:
    answer = f"{BQ}Bats are mammals{EQ} and {BQ}than{EQ} {BQ}ats are the only{EQ}\n<ANSWER>: x"
    result = verify_answer(answer, EN_ORACLE)
    assert result.reason == "quote_not_in_oracle"
    states = {check.quote: (check.found, check.too_short) for check in result.quote_checks}
    assert states == {
        "Bats are mammals": ("missing", False),
        "than": ("missing", True),
        "ats are the only": ("splits_word", False),
    }


def test_each_quote_is_attributed_to_the_oracle_it_comes_from() -> None:
    answer = (
        f"{BQ}home to a colony of oilbirds and bats{EQ} and {BQ}Most bats are nocturnal{EQ}"
        "\n<ANSWER>: nocturnal"
    )
    result = verify_answer(answer, [EN_ORACLE, CAVE_ORACLE])
    assert result.ok
    assert [c.oracle for c in result.quote_checks] == [1, 0]
    one = verify_answer(f"{BQ}Most bats are nocturnal{EQ}\n<ANSWER>: nocturnal", EN_ORACLE)
    assert [c.oracle for c in one.quote_checks] == [0]
    missing = verify_answer(f"{BQ}Bats live on the Moon{EQ}\n<ANSWER>: Moon", [EN_ORACLE])
    assert [c.oracle for c in missing.quote_checks] == [None]


def test_a_multi_hop_final_answer_may_draw_on_every_oracle() -> None:
    # "Venezuela" is only in the second oracle: supported there, not by the first alone
    answer = (
        f"{BQ}Most bats are nocturnal{EQ} {BQ}The Cueva del Guácharo in Venezuela{EQ}"
        "\n<ANSWER>: Venezuela"
    )
    assert verify_answer(answer, [EN_ORACLE, CAVE_ORACLE]).ok
    alone = verify_answer(answer, EN_ORACLE)
    assert alone.reason == "quote_not_in_oracle"
