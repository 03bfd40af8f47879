"""How models under evaluation are named and asked: targets at endpoints, journals kept apart
per endpoint, the answer cap and the system prompt."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkit.errors import UsageError
from raftkit.evaluate import (
    BASE_ALIAS,
    FINETUNED_ALIAS,
    EndpointScopedStore,
    ModelSpec,
    ModelTarget,
    RaftEvaluator,
    default_max_tokens,
    parse_model_target,
    parse_model_targets,
    render_markdown,
)
from raftkit.journal import Journal
from raftkit.llm import ChatResponse
from raftkit.testing.scripted import Call, ScriptedClient
from raftkit.types import ContextDocument, RaftExample, Usage

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("gpt-4o-mini", ModelTarget("gpt-4o-mini", "gpt-4o-mini")),
        (
            "ft:gpt-4o-mini:org::abc",
            ModelTarget("ft:gpt-4o-mini:org::abc", "ft:gpt-4o-mini:org::abc"),
        ),
        (
            "base=HuggingFaceTB/SmolLM2-135M-Instruct@http://127.0.0.1:8001/v1/",
            ModelTarget("base", "HuggingFaceTB/SmolLM2-135M-Instruct", "http://127.0.0.1:8001/v1"),
        ),
        (
            "llama3:8b@HTTP://localhost:11434/v1",
            ModelTarget("llama3:8b", "llama3:8b", "HTTP://localhost:11434/v1"),
        ),
        ("tuned=@finetuned", ModelTarget("tuned", FINETUNED_ALIAS)),
        (
            "@finetuned@https://h.example/v1",
            ModelTarget("finetuned", FINETUNED_ALIAS, "https://h.example/v1"),
        ),
        (
            "@base@http://127.0.0.1:8000/v1",
            ModelTarget("base", BASE_ALIAS, "http://127.0.0.1:8000/v1"),
        ),
        (" a = m ", ModelTarget("a", "m")),
        ("team@acme-model", ModelTarget("team@acme-model", "team@acme-model")),  # not a URL
    ],
)
def test_model_targets_are_parsed(text: str, target: ModelTarget) -> None:
    parsed = parse_model_target(text)
    assert parsed == target
    assert parsed.is_finetuned_alias == (target.model == FINETUNED_ALIAS)
    assert parsed.is_alias == (target.model in (FINETUNED_ALIAS, BASE_ALIAS))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty model name"),
        ("=m", "label before '=' is empty"),
        ("base=@http://127.0.0.1:8001/v1", "names no model"),
        ("base=m@http://", "not an http"),
        ("m@http://user:secret@127.0.0.1:8001/v1", "credentials in OPENAI_API_KEY"),
        ("@latest", "not a known alias"),
        ("=m@http://u:secret@h/v1", "label before"),
    ],
)
def test_bad_model_targets_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_model_target(text)
    assert "secret" not in str(caught.value)


def test_targets_from_both_options_keep_order_and_need_unique_labels() -> None:
    targets = parse_model_targets("a,b", ["c=m@http://127.0.0.1:1/v1"])
    assert [t.label for t in targets] == ["a", "b", "c"]
    with pytest.raises(UsageError, match="label them apart"):
        parse_model_targets(None, ["m@http://127.0.0.1:1/v1", "m@http://127.0.0.1:2/v1"])
    with pytest.raises(UsageError, match="at least one model"):
        parse_model_targets(" , ", [])


async def test_scoped_keys_keep_two_endpoints_apart_in_one_journal(
    tmp_path: Path, anyio_backend: str
) -> None:
    with Journal(tmp_path).open() as journal:
        one = EndpointScopedStore(journal, "http://127.0.0.1:8001/v1/")
        two = EndpointScopedStore(journal, "http://127.0.0.1:8002/v1")
        await one.put("k", {"body": 1}, {"text": "one"})
        assert await one.get("k") == {"text": "one"}
        assert await two.get("k") is None
        assert await journal.get("k") is None  # the default endpoint's plain key is free too
        await two.put("k", {"body": 1}, {"text": "two"})
        assert await two.get("k") == {"text": "two"}
        assert journal.recorded == 2
    line = (tmp_path / "journal.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert '"endpoint":"http://127.0.0.1:8001/v1"' in line


def _example(i: int, cot: str) -> RaftExample:
    return RaftExample(
        id=f"ex{i}",
        question_id=f"q{i}",
        question=f"question {i}?",
        chunk_id=f"c{i}",
        document_id="d",
        documents=[ContextDocument(chunk_id=f"c{i}", position=0, is_oracle=True, text="Fact.")],
        oracle_present=True,
        cot_answer=cot,
        final_answer="Fact",
    )


def _runaway(call: Call) -> ChatResponse:
    """A model that never stops: it fills whatever cap it is given."""
    cap = call.kwargs["max_tokens"]
    return ChatResponse(
        text="and so on " * 5,
        model=call.model,
        finish_reason="length" if cap is not None else "stop",
        usage=Usage(prompt_tokens=10, completion_tokens=cap or 100_000),
    )


async def test_every_answer_is_capped_and_a_cut_off_answer_is_noted(anyio_backend: str) -> None:
    examples = [
        _example(0, "##begin_quote##Fact.##end_quote## <ANSWER>: Fact"),
        _example(1, "x " * 300),
    ]
    derived = default_max_tokens(examples)
    auto, fixed = ScriptedClient(_runaway), ScriptedClient(_runaway)
    report = await RaftEvaluator(n_resamples=100).evaluate(
        examples,
        [
            ModelSpec("auto", auto, "m", system_prompt="Answer from the documents."),
            ModelSpec("fixed", fixed, "m", max_tokens=64, endpoint="http://127.0.0.1:9/v1"),
        ],
    )
    assert {c.kwargs["max_tokens"] for c in auto.calls} == {derived}
    assert {c.kwargs["max_tokens"] for c in fixed.calls} == {64}
    assert auto.calls[0].messages[0] == {"role": "system", "content": "Answer from the documents."}
    assert [m["role"] for m in fixed.calls[0].messages] == ["user"]
    notes = {(r.model, r.example_id): r.notes.get("truncated") for r in report.results}
    assert notes[("fixed", "ex0")] == "stopped at max_tokens=64"
    assert notes[("auto", "ex1")] == f"stopped at max_tokens={derived}"
    details = report.model_details
    assert (details["auto"].max_tokens, details["auto"].endpoint) == (derived, None)
    assert details["auto"].system_prompt == "Answer from the documents."
    assert (details["fixed"].max_tokens, details["fixed"].endpoint) == (64, "http://127.0.0.1:9/v1")
    markdown = render_markdown(report)
    assert "- Model fixed: m at http://127.0.0.1:9/v1, max_tokens 64" in markdown
    assert "4 cut off at max_tokens" in markdown
