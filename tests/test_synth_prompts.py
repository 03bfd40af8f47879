from __future__ import annotations

import importlib
from typing import Any

import pymupdf
import pytest
from pydantic import ValidationError

import raftkit.synth
from raftkit.synth import BEGIN_QUOTE, END_QUOTE, Prompts, verify_answer
from raftkit.synth.prompts import (
    answer_messages,
    answer_retry_messages,
    answers_messages,
    format_documents,
    question_messages,
    question_retry_messages,
)

# pymupdf has no type hints
PDF: Any = pymupdf

MODULES = [
    "prompts",
    "questions",
    "distractors",
    "context",
    "answers",
    "verify",
    "critique",
    "dedup",
    "abstain",
    "multihop",
    "question_mix",
]


def test_question_prompt_asks_for_n_in_the_chunks_language() -> None:
    messages = question_messages("蝙蝠是哺乳动物。{not a placeholder}", 3, Prompts())
    system, user = messages
    assert system["role"] == "system"
    assert "3 different questions" in system["content"]
    assert "exactly 3 questions" in system["content"]
    assert "same language as the chunk" in system["content"]
    assert '{"questions": [' in system["content"]
    assert user == {"role": "user", "content": "Chunk:\n蝙蝠是哺乳动物。{not a placeholder}"}


def test_question_retry_lists_what_exists() -> None:
    messages = question_retry_messages("chunk", 2, ["What is A?", "What is B?"], Prompts())
    assert len(messages) == 3
    assert "- What is A?\n- What is B?" in messages[-1]["content"]
    assert "Write 2 more questions" in messages[-1]["content"]


def test_answer_prompt_in_the_raft_style() -> None:
    messages = answer_messages("Who flies?", ["Bats fly.", "Dogs {bark}."], Prompts())
    system, user = messages[0]["content"], messages[1]["content"]
    assert "step by step" in system
    assert f"between {BEGIN_QUOTE} and {END_QUOTE}" in system
    assert "<ANSWER>:" in system
    assert "same language as the question" in system
    # what a chunk's questions share comes first (rules, then the oracle), the question last,
    # so a provider's prompt cache can serve the shared prefix
    assert user == (
        "<DOCUMENT>Bats fly.</DOCUMENT>\n<DOCUMENT>Dogs {bark}.</DOCUMENT>\nQuestion: Who flies?"
    )
    other = answer_messages("Who swims?", ["Bats fly.", "Dogs {bark}."], Prompts())
    assert other[0] == messages[0]
    assert other[1]["content"].startswith(user.removesuffix("Who flies?"))


def test_several_questions_in_one_answer_prompt() -> None:
    messages = answers_messages(["Who flies?", "Who barks?"], ["Bats fly. Dogs bark."], Prompts())
    system, user = messages[0]["content"], messages[1]["content"]
    assert system.startswith(Prompts().answer_system.split("{")[0])
    assert "2 questions" in system
    assert '{"answers": [' in system
    assert user == (
        "<DOCUMENT>Bats fly. Dogs bark.</DOCUMENT>\nQuestion 1: Who flies?\nQuestion 2: Who barks?"
    )


def test_a_reask_quotes_a_runaway_reply_only_in_part() -> None:
    first = answer_messages("Q?", ["D."], Prompts())
    runaway = "I keep going. " * 2_000
    retry = answer_retry_messages(first, runaway, "no <ANSWER>: line", Prompts())
    shown = retry[2]["content"]
    assert len(shown) < 1_300 < len(runaway)
    assert shown.startswith("I keep going.")
    assert "characters left out" in shown


def test_answer_retry_shows_the_rejected_answer_and_the_problem() -> None:
    first = answer_messages("Q?", ["D."], Prompts())
    retry = answer_retry_messages(first, "bad answer", "no <ANSWER>: line", Prompts())
    assert retry[:2] == first
    assert retry[2] == {"role": "assistant", "content": "bad answer"}
    assert retry[3]["role"] == "user"
    assert "no <ANSWER>: line" in retry[3]["content"]


def test_prompts_override_field_by_field() -> None:
    prompts = Prompts(
        question_system="Schreibe {n} Fragen in der Sprache des Textes.",
        document="<DOC title='{title}'>{text}</DOC>",
    )
    assert question_messages("x", 2, prompts)[0]["content"] == (
        "Schreibe 2 Fragen in der Sprache des Textes."
    )
    assert format_documents(["a", "b"], prompts, ["T1"]) == (
        "<DOC title='T1'>a</DOC>\n<DOC title=''>b</DOC>"
    )
    assert prompts.answer_user == Prompts().answer_user


@pytest.mark.parametrize(
    ("field", "template", "message"),
    [
        ("question_system", "Write questions.", "lacks placeholder"),
        ("answer_user", "{documents} {question} {language}", "unknown placeholder"),
        ("document", "<DOCUMENT>{text</DOCUMENT>", "not a valid format string"),
    ],
)
def test_prompts_are_checked_when_built(field: str, template: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Prompts.model_validate({field: template})


def test_exports_match_all() -> None:
    for name in MODULES:
        module = importlib.import_module(f"raftkit.synth.{name}")
        for exported in module.__all__:
            assert hasattr(module, exported), f"{name}.{exported}"
    # pytest's assertion rewriting adds "@py_builtins"-style names: keep identifiers only
    names = (n for n in dir(raftkit.synth) if n.isidentifier() and not n.startswith("_"))
    public = set(names) - set(MODULES)
    assert public == set(raftkit.synth.__all__)


def test_quote_from_a_chinese_pdf_verifies() -> None:
    # PDF extraction of Chinese puts line breaks where the page wrapped; quotes must still match.
    pdf = PDF.open()
    page = pdf.new_page(width=200, height=300)
    text = "蝙蝠是唯一能够真正飞行的哺乳动物。它们的前肢演化为翼，大多数蝙蝠在夜间活动。"
    rect = PDF.Rect(20, 20, 120, 280)
    assert page.insert_textbox(rect, text, fontname="china-s", fontsize=11) >= 0
    extracted = PDF.open("pdf", pdf.tobytes())[0].get_text()
    assert "\n" in extracted.strip()  # the narrow box wrapped the sentence
    answer = (
        f"{BEGIN_QUOTE}蝙蝠是唯一能够真正飞行的哺乳动物。{END_QUOTE}"
        f"{BEGIN_QUOTE}它们的前肢演化为翼,大多数蝙蝠在夜间活动。{END_QUOTE}\n<ANSWER>: 蝙蝠"
    )
    assert verify_answer(answer, extracted).ok
    invented = f"{BEGIN_QUOTE}蝙蝠是唯一能够游泳的哺乳动物。{END_QUOTE}\n<ANSWER>: 蝙蝠"
    assert verify_answer(invented, extracted).reason == "quote_not_in_oracle"
