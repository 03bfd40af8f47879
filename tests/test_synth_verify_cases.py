"""The verifier against the labelled set of real quote/answer cases (tests/data/verifier/).

The set is built from the corpus by benchmarks/verifier_cases.py; its README says how. Each
case has a ``label`` (would a careful reviewer keep it) and an ``expect`` (the verdict the
verifier is designed to give). These tests hold the verifier to ``expect`` class by class;
benchmarks/verifier.py scores it against ``label``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from raftkit.synth import REJECTION_REASONS, Verification, verify_answer
from raftkit.synth.verify import extract_quotes

DATA = Path(__file__).parent / "data" / "verifier"

# The edits real models make when they copy real text, each with the normalisation it needs.
NEAR_VERBATIM = {
    "citation_markers",
    "initial_case",
    "hyphenation",
    "diacritics",
    "dash_spacing",
    "unit_spacing",
    "cjk_punctuation",
    "trailing_punctuation",
    "ellipsis",
}
# Where the verifier knowingly rejects an acceptable answer (docs/synthesis.md, "Limits").
DOCUMENTED_LIMITS = {"paraphrase", "computed"}


@cache
def _load() -> tuple[dict[str, str], list[dict[str, Any]]]:
    with (DATA / "oracles.jsonl").open(encoding="utf-8") as f:
        oracles = {row["id"]: row["text"] for row in map(json.loads, f)}
    with (DATA / "cases.jsonl").open(encoding="utf-8") as f:
        cases = [json.loads(line) for line in f]
    return oracles, cases


def _by_class() -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in _load()[1]:
        grouped[case["class"]].append(case)
    return dict(grouped)


def _verify(case: dict[str, Any]) -> Verification:
    return verify_answer(case["answer"], _load()[0][case["oracle"]])


def _verdict(result: Verification) -> str:
    return "accept" if result.ok else str(result.reason)


def test_the_set_is_large_labelled_and_multilingual() -> None:
    oracles, cases = _load()
    assert len(cases) >= 200
    assert {c["label"] for c in cases} == {"accept", "reject"}
    assert len({c["id"] for c in cases}) == len(cases)
    assert all(c["oracle"] in oracles for c in cases)
    languages = {c["id"].split("-")[0] for c in cases}
    assert {"en", "zh", "ja"} <= languages
    assert {c["expect"] for c in cases} <= {"accept", *REJECTION_REASONS}


def test_label_and_expectation_differ_only_where_a_limit_is_documented() -> None:
    differing = {
        c["class"] for c in _load()[1] if (c["label"] == "accept") != (c["expect"] == "accept")
    }
    assert differing <= DOCUMENTED_LIMITS


@pytest.mark.parametrize("cls", sorted(_by_class()))
def test_every_case_of_a_class_gets_its_designed_verdict(cls: str) -> None:
    wrong = [
        (c["id"], c["expect"], _verdict(result))
        for c in _by_class()[cls]
        if _verdict(result := _verify(c)) != c["expect"]
    ]
    assert wrong == []


@pytest.mark.parametrize("cls", sorted(NEAR_VERBATIM))
def test_near_verbatim_quotes_pass_and_record_the_normalisation(cls: str) -> None:
    cases = _by_class()[cls]
    assert cases, f"the set has no {cls} case"
    for case in cases:
        result = _verify(case)
        assert result.ok, (case["id"], result.reason, result.detail)
        if case["normalisation"]:
            assert case["normalisation"] in result.normalisations, case["id"]
        # the quote is kept as the teacher wrote it, not in its matching form
        written = extract_quotes(case["answer"]) or []
        assert [q.strip("“”「」") for q in written] == result.quotes


def test_verbatim_quotes_need_no_normalisation_but_layout() -> None:
    for case in _by_class()["verbatim"]:
        result = _verify(case)
        assert result.ok, case["id"]
        assert set(result.normalisations) <= {"unicode_forms"}, case["id"]


@pytest.mark.parametrize(
    ("cls", "reason"),
    [
        ("lazy_one_word", "quote_too_short"),
        ("lazy_partial_word", "quote_splits_word"),
        ("partial_word", "quote_splits_word"),
        ("function_words", "no_substantive_quote"),
        ("invented", "quote_not_in_oracle"),
        ("number_altered_quote", "quote_not_in_oracle"),
        ("number_altered_answer", "answer_number_not_in_oracle"),
        ("unsupported_answer", "answer_not_supported"),
    ],
)
def test_every_negative_of_a_class_is_rejected_by_its_rule(cls: str, reason: str) -> None:
    negatives = [c for c in _by_class()[cls] if c["label"] == "reject"]
    assert negatives, f"the set has no negative {cls} case"
    for case in negatives:
        result = _verify(case)
        assert not result.ok, case["id"]
        assert result.reason == reason, (case["id"], result.reason)
        assert result.detail


def test_the_issue_s_own_failures_are_rejected() -> None:
    """SmolLM2's answers that passed before: 'than' for "18.5% larger", 'and', and 'date'."""
    notes = {c["note"]: c for c in _load()[1] if c["note"].startswith("issue 14: '")}
    assert len(notes) == 3
    for case in notes.values():
        assert not _verify(case).ok, case["id"]


def test_chinese_and_japanese_lazy_quotes_are_too_short() -> None:
    lazy = [c for c in _by_class()["lazy_one_word"] if c["id"].startswith(("zh-", "ja-"))]
    assert any("的" in c["answer"] for c in lazy)
    assert all(_verify(c).reason == "quote_too_short" for c in lazy)
