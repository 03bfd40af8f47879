"""raftkit.dataset.validate and raftkit.dataset.cost: chat JSONL checks, epochs and billing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from raftkit.dataset import (
    DEFAULT_MAX_TOKENS_PER_EXAMPLE,
    Issue,
    ValidationReport,
    billed_tokens,
    check_chat_example,
    default_epochs,
    estimate_training_cost,
    max_tokens_per_example,
    training_price_per_million,
    validate_chat_jsonl,
)
from raftkit.errors import DatasetError, UsageError
from raftkit.llm.tokens import count_message_tokens, count_tokens
from raftkit.llm.usage import ModelPrice, PriceTable

MODEL = "gpt-4o-mini"


def good_row(n: int, *, chinese: bool = False) -> dict[str, Any]:
    question = f"长城有多长？（第{n}题）" if chinese else f"How long is wall number {n}?"
    answer = (
        "##begin_quote##长城全长两万多公里。##end_quote## <ANSWER>: 两万多公里"
        if chinese
        else (f"##begin_quote##Wall {n} is {n} km long.##end_quote## <ANSWER>: {n} km")
    )
    return {
        "messages": [
            {"role": "system", "content": "Answer from the documents."},
            {
                "role": "user",
                "content": f"<DOCUMENT>Wall {n} is {n} km long.</DOCUMENT>\n{question}",
            },
            {"role": "assistant", "content": answer},
        ]
    }


def write_rows(path: Path, rows: list[Any]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def kinds(issues: list[Issue]) -> set[str]:
    return {issue.kind for issue in issues}


# ---------------------------------------------------------------- a good file


def test_good_file_has_no_errors_and_exact_statistics(tmp_path: Path) -> None:
    rows = [good_row(n, chinese=n % 2 == 0) for n in range(12)]
    report = validate_chat_jsonl(write_rows(tmp_path / "train.jsonl", rows), model=MODEL)
    assert report.ok
    assert report.errors == []
    assert report.examples == report.lines == 12
    assert kinds(report.warnings) == {"few_examples"}  # under the recommended 1,000

    totals = sorted(count_message_tokens(row["messages"], MODEL) for row in rows)
    assistant = [count_tokens(row["messages"][2]["content"], MODEL) for row in rows]
    stats = report.example_tokens
    assert stats is not None
    assert (stats.count, stats.min, stats.max, stats.total) == (
        12,
        totals[0],
        totals[-1],
        sum(totals),
    )
    assert stats.mean == pytest.approx(sum(totals) / 12)
    assert stats.median == pytest.approx((totals[5] + totals[6]) / 2)
    assert stats.p90 == pytest.approx(totals[9] + (totals[10] - totals[9]) * 0.9)
    assert report.assistant_tokens is not None
    assert report.assistant_tokens.total == sum(assistant)
    assert report.messages_per_example is not None
    assert report.messages_per_example.max == 3

    assert report.cost is not None
    assert report.cost.epochs == 8  # auto: 100 // 12
    assert report.cost.billed_tokens == sum(totals) * 8
    assert report.cost.cost_usd == pytest.approx(sum(totals) * 8 * 3.00 / 1_000_000)


def test_report_serialises_to_json_and_renders(tmp_path: Path) -> None:
    rows: list[Any] = [good_row(n) for n in range(11)]
    rows.insert(3, {"messages": [{"role": "user", "content": "hi"}]})
    report = validate_chat_jsonl(write_rows(tmp_path / "train.jsonl", rows))
    again = ValidationReport.model_validate_json(report.model_dump_json())
    assert again == report
    text = report.render()
    assert "REJECTED" in text
    assert "line 4: example_missing_assistant_message: messages: no assistant message" in text
    assert "training:" in text


# ---------------------------------------------------------------- each kind of broken line

BROKEN: list[tuple[str, Any, str | None]] = [
    ("invalid_json", '{"messages": [', None),
    ("data_type", ["not", "an", "object"], None),
    ("data_type", {"messages": ["hello", {"role": "assistant", "content": "x"}]}, "messages[0]"),
    ("missing_messages_list", {"conversation": []}, "messages"),
    ("missing_messages_list", {"messages": []}, "messages"),
    (
        "message_missing_key",
        {"messages": [{"content": "q"}, {"role": "assistant", "content": "a"}]},
        "messages[0].role",
    ),
    (
        "message_missing_key",
        {"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]},
        "messages[0].content",
    ),
    (
        "message_unrecognized_key",
        {
            "messages": [
                {"role": "user", "content": "q", "source": "x"},
                {"role": "assistant", "content": "a"},
            ]
        },
        "messages[0].source",
    ),
    (
        "unrecognized_role",
        {"messages": [{"role": "human", "content": "q"}, {"role": "assistant", "content": "a"}]},
        "messages[0].role",
    ),
    (
        "missing_content",
        {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]},
        "messages[0].content",
    ),
    (
        "missing_content",
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]},
        "messages[1].content",
    ),
    (
        "missing_content",
        {"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "a"}]},
        "messages[0].content",
    ),
    (
        "invalid_weight",
        {
            "messages": [
                {"role": "user", "content": "q", "weight": 1},
                {"role": "assistant", "content": "a"},
            ]
        },
        "messages[0].weight",
    ),
    (
        "invalid_weight",
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a", "weight": 0.5},
            ]
        },
        "messages[1].weight",
    ),
    (
        "example_missing_assistant_message",
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]},
        "messages",
    ),
]


@pytest.mark.parametrize(("kind", "broken", "field"), BROKEN)
@pytest.mark.parametrize("line", [1, 7, 13])
def test_each_broken_line_is_reported_with_its_line_and_field(
    tmp_path: Path, kind: str, broken: Any, field: str | None, line: int
) -> None:
    rows: list[Any] = [good_row(n) for n in range(12)]
    rows.insert(line - 1, broken)
    report = validate_chat_jsonl(write_rows(tmp_path / "train.jsonl", rows))
    assert not report.ok
    assert [(e.line, e.kind, e.field) for e in report.errors] == [(line, kind, field)]
    assert report.error_counts == {kind: 1}
    assert report.examples == 12  # the good ones are still counted


def test_invalid_utf8_line(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.jsonl", [good_row(n) for n in range(12)])
    with path.open("ab") as out:
        out.write(b'{"messages": "\xff"}\n')
    report = validate_chat_jsonl(path)
    assert [(e.line, e.kind) for e in report.errors] == [(13, "invalid_utf8")]


def test_allowed_variants_are_not_errors() -> None:
    assert (
        check_chat_example(
            {
                "messages": [
                    {"role": "user", "content": "q", "name": "alice"},
                    {"role": "assistant", "content": "draft", "weight": 0},
                    {"role": "user", "content": "again"},
                    {"role": "assistant", "content": "final", "weight": 1},
                ]
            }
        )
        == []
    )
    assert (
        check_chat_example(
            {
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function"}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                    {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}]},
                ]
            }
        )
        == []
    )


# ---------------------------------------------------------------- file-level checks


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(content)
    report = validate_chat_jsonl(path)
    assert [(e.line, e.kind) for e in report.errors] == [(None, "empty_file")]
    assert report.cost is None
    assert report.example_tokens is None


def test_fewer_than_ten_examples_is_an_error(tmp_path: Path) -> None:
    report = validate_chat_jsonl(write_rows(tmp_path / "t.jsonl", [good_row(n) for n in range(9)]))
    assert [(e.line, e.kind) for e in report.errors] == [(None, "too_few_examples")]
    assert report.cost is not None  # still estimated, for what it is worth


def test_enough_examples_have_no_size_warning(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "t.jsonl", [good_row(n) for n in range(40)])
    report = validate_chat_jsonl(path, recommended_examples=40)
    assert report.ok
    assert report.warnings == []


def test_blank_lines_inside_are_warnings_with_their_line(tmp_path: Path) -> None:
    rows: list[Any] = [good_row(n) for n in range(12)]
    rows.insert(4, "")
    rows.append("")
    report = validate_chat_jsonl(write_rows(tmp_path / "t.jsonl", rows))
    assert report.ok
    blank = [w for w in report.warnings if w.kind == "blank_line"]
    assert [w.line for w in blank] == [5]  # the trailing one is harmless


def test_examples_over_the_limit_are_flagged_and_billed_at_the_limit(tmp_path: Path) -> None:
    rows = [good_row(n) for n in range(12)]
    rows[2]["messages"][1]["content"] += " filler" * 200
    rows[8]["messages"][1]["content"] += " filler" * 300
    counts = [count_message_tokens(row["messages"], MODEL) for row in rows]
    limit = 150
    assert sorted(c > limit for c in counts) == [False] * 10 + [True] * 2
    report = validate_chat_jsonl(
        write_rows(tmp_path / "t.jsonl", rows), model=MODEL, max_tokens=limit, epochs=3
    )
    assert [w.line for w in report.warnings if w.kind == "too_long"] == [3, 9]
    assert report.too_long == 2
    assert report.cost is not None
    assert report.cost.tokens_per_epoch == sum(min(c, limit) for c in counts)
    assert report.cost.billed_tokens == 3 * sum(min(c, limit) for c in counts)


def test_listing_is_capped_but_counting_is_not(tmp_path: Path) -> None:
    rows: list[Any] = ["{oops"] * 50 + [good_row(n) for n in range(12)]
    report = validate_chat_jsonl(write_rows(tmp_path / "t.jsonl", rows), max_listed=5)
    assert [e.line for e in report.errors] == [1, 2, 3, 4, 5]
    assert report.error_counts == {"invalid_json": 50}
    assert "... and 45 more" in report.render()


def test_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetError):
        validate_chat_jsonl(tmp_path / "absent.jsonl")


# ---------------------------------------------------------------- epochs and cost


@pytest.mark.parametrize(
    ("n_examples", "epochs"),
    [
        (1, 25),  # 100 // 1 = 100, capped at 25
        (4, 25),
        (5, 20),
        (10, 10),
        (33, 3),  # 99 < 100: 100 // 33
        (34, 3),  # 102 >= 100: the target
        (1_000, 3),
        (8_333, 3),  # 24,999 <= 25,000
        (8_334, 2),  # 25,002 > 25,000: 25,000 // 8,334
        (12_500, 2),
        (12_501, 1),
        (25_000, 1),
        (100_000, 1),  # 25,000 // 100,000 = 0, floored at 1
    ],
)
def test_default_epochs_rule(n_examples: int, epochs: int) -> None:
    assert default_epochs(n_examples) == epochs


def test_default_epochs_needs_examples() -> None:
    with pytest.raises(UsageError):
        default_epochs(0)


def test_cost_arithmetic() -> None:
    counts = [1_000, 2_000, 70_000]
    assert billed_tokens(counts, 65_536) == 1_000 + 2_000 + 65_536
    cost = estimate_training_cost(counts, model="gpt-4o", epochs=2)
    assert cost.max_tokens_per_example == 65_536
    assert cost.tokens_per_epoch == 68_536
    assert cost.billed_tokens == 137_072
    assert cost.price_per_million == 25.0
    assert cost.cost_usd == pytest.approx(137_072 * 25.0 / 1_000_000)
    assert not cost.epochs_auto

    auto = estimate_training_cost([500] * 50, model="gpt-4.1-mini", price_per_million=4.0)
    assert (auto.epochs, auto.epochs_auto) == (3, True)
    assert auto.cost_usd == pytest.approx(500 * 50 * 3 * 4.0 / 1_000_000)
    assert "$0.30 at $4/1M tokens" in auto.render()


def test_unknown_price_gives_tokens_but_no_dollars() -> None:
    cost = estimate_training_cost([100] * 20, model="my-azure-deployment", epochs=1)
    assert cost.billed_tokens == 2_000
    assert cost.cost_usd is None
    assert "no price known" in cost.render()
    assert cost.max_tokens_per_example == DEFAULT_MAX_TOKENS_PER_EXAMPLE


def test_a_custom_price_table_is_used() -> None:
    table = PriceTable({"my-model": ModelPrice(training=10.0)}, include_defaults=False)
    cost = estimate_training_cost([50_000] * 20, model="my-model", epochs=1, prices=table)
    assert cost.cost_usd == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4o-mini", 3.00),
        ("gpt-4o-mini-2024-07-18", 3.00),
        ("gpt-4o-2024-08-06", 25.00),
        ("gpt-4.1-mini-2025-04-14", 5.00),
        ("gpt-4.1", 25.00),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", 3.00),
        ("unknown-model", None),
    ],
)
def test_training_price_lookup(model: str, price: float | None) -> None:
    assert training_price_per_million(model) == price


@pytest.mark.parametrize(
    ("model", "limit"),
    [
        ("gpt-4o-mini-2024-07-18", 65_536),
        ("gpt-4o", 65_536),
        ("gpt-3.5-turbo-0125", 16_385),
        ("gpt-3.5-turbo-0613", 4_096),
        ("ft:gpt-4.1-nano-2025-04-14:acme::x", 65_536),
        ("something-else", DEFAULT_MAX_TOKENS_PER_EXAMPLE),
    ],
)
def test_per_example_limit_table(model: str, limit: int) -> None:
    assert max_tokens_per_example(model) == limit


@pytest.mark.parametrize("epochs", [0, -1, True, "three"])
def test_bad_epochs_are_usage_errors(epochs: Any) -> None:
    with pytest.raises(UsageError):
        estimate_training_cost([10] * 10, epochs=epochs)
