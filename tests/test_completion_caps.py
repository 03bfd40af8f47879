"""Completion caps on every call: learned, sent, reserved, re-asked when cut, kept on resume.

The learner (:class:`raftkit.llm.caps.CompletionCaps`) on its own, then the clients against
the simulator over real HTTP: the cap sent is the cap reserved, a reply cut by a learned cap
is asked once more with twice the cap under a key of its own, journal keys ignore caps and
cache routing, ``prompt_cache_key`` goes where the spec has it, cached tokens are priced at the
cached rate, and a request too long for a model's context is trimmed or refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pymupdf as _pymupdf
import pytest

from openapi_schemas import validate
from raftkit.errors import ContextLengthExceededError, StructuredOutputError
from raftkit.evaluate.judge import JUDGE_TOKENS, JudgeCorrectness
from raftkit.extract import VisionPdfExtractor
from raftkit.extract.vision import VISION_TOKENS
from raftkit.journal import Journal
from raftkit.llm import (
    AzureOpenAIClient,
    ChatResponse,
    CompletionCaps,
    OpenAIClient,
    RetryPolicy,
    UsageLedger,
    truncation_retry_sample,
)
from raftkit.llm.tokens import count_message_tokens
from raftkit.llm.usage import DEFAULT_PRICES
from raftkit.testing import ScriptedClient, Simulator, SimulatorConfig
from raftkit.types import Usage

pytestmark = pytest.mark.anyio

# PyMuPDF's annotations are partial: use it as an untyped module
pymupdf: Any = _pymupdf

FAST = RetryPolicy(initial_delay=0.001, max_delay=0.005, deadline=30)
QUESTION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "<DOCUMENT>Bats are mammals that fly.</DOCUMENT>\nWhat flies?"},
]


def reply(tokens: int, *, finish: str = "stop", text: str = "x", prompt: int = 0) -> ChatResponse:
    usage = Usage(prompt_tokens=prompt, completion_tokens=tokens)
    return ChatResponse(text=text, model="m", finish_reason=finish, usage=usage)


def chat_bodies(sim: Simulator) -> list[dict[str, Any]]:
    return [r.json for r in sim.requests if r.path.endswith("/chat/completions")]


# ---------------------------------------------------------------- the learner


def test_a_call_starts_from_its_bound_then_gets_the_learned_cap() -> None:
    caps = CompletionCaps(margin=1.1)  # and the defaults: 10 replies, the 99th percentile or up
    first = caps.cap("answers", "m", initial=400)
    # before anything is known, a cut reply gets four times the room to finish
    assert (first.max_tokens, first.retry_max_tokens, first.source) == (400, 1600, "initial")
    for tokens in range(10, 110, 10):  # 10 replies of 10 ... 100 tokens, prompts of 500
        caps.observe("answers", "m", reply(tokens, prompt=500))
    learned = caps.cap("answers", "m", initial=400)
    # replies of even length: the cap lets the longest finish (100 x 1.1 + 8 tokens of slack)
    assert (learned.max_tokens, learned.retry_max_tokens, learned.source) == (118, 236, "learned")
    # a call for three units (questions, answers) gets three units' worth
    assert caps.cap("answers", "m", initial=400, units=3).max_tokens == 330 + 8
    # per kind and per model
    assert caps.cap("answers", "other-model", initial=400).source == "initial"
    assert caps.cap("questions", "m", initial=300).max_tokens == 300


def test_the_first_replies_bound_the_cap_before_a_percentile_is_learned() -> None:
    caps = CompletionCaps()  # a percentile after 10 replies
    for tokens in (40, 60):
        caps.observe("answers", "m", reply(tokens), scale=100)
    # two replies: too few to go by, the caller's bound stays
    assert caps.cap("answers", "m", initial=400, scale=100).max_tokens == 400
    caps.observe("answers", "m", reply(50), scale=100)
    # three: twice the longest (per unit of scale) for this call's size, plus the slack
    early = caps.cap("answers", "m", initial=400, scale=100)
    assert (early.max_tokens, early.retry_max_tokens, early.source) == (128, 512, "initial")
    assert caps.cap("answers", "m", initial=400, scale=200).max_tokens == 248
    # never above the caller's bound
    assert caps.cap("answers", "m", initial=100, scale=100).max_tokens == 100
    for _ in range(7):
        caps.observe("answers", "m", reply(50), scale=100)
    assert caps.cap("answers", "m", initial=400, scale=100).source == "learned"


def test_a_rare_long_reply_is_asked_again_instead_of_raising_every_cap() -> None:
    caps = CompletionCaps(margin=1.1)
    for index in range(100):  # 99 replies of 100 tokens and one of 600, prompts of 600
        caps.observe("answers", "m", reply(600 if index == 50 else 100, prompt=600))
    cap = caps.cap("answers", "m", initial=400)
    # asking 1 % of calls again (600 + 668 tokens) is cheaper than 550 more on every call
    assert cap.max_tokens == 118
    # ... and the re-ask has room for the longest reply seen
    assert cap.retry_max_tokens == 660 + 8
    [stats] = caps.stats()
    assert (stats.percentile, stats.cap_per_unit) == (0.99, 118)
    # long replies that are not rare (5 %) are let finish: no more than 1 % is ever cut
    common = CompletionCaps(margin=1.1)
    for index in range(100):
        common.observe("answers", "m", reply(600 if index % 20 == 0 else 100, prompt=600))
    assert common.cap("answers", "m", initial=400).max_tokens == 660 + 8


def test_a_prompt_derived_scale_gives_long_units_room_and_keeps_short_ones_tight() -> None:
    caps = CompletionCaps(margin=1.1)
    for index in range(100):  # answers are 1.0x their scale: 5 % quote a table of 600 tokens
        scale = 600.0 if index % 20 == 0 else 100.0
        caps.observe("answers", "m", reply(int(scale), prompt=600), scale=scale)
    short = caps.cap("answers", "m", initial=400, scale=100)
    long = caps.cap("answers", "m", initial=400, scale=600)
    assert short.max_tokens == 110 + 8
    assert long.max_tokens == 660 + 8
    assert caps.cap("answers", "m", initial=400, scale=100, units=3).max_tokens == 330 + 8


def test_replies_still_cut_after_the_larger_cap_do_not_raise_the_cap() -> None:
    caps = CompletionCaps()
    for _ in range(20):
        caps.observe("answers", "m", reply(100, prompt=600))
    before = caps.cap("answers", "m", initial=400)
    runaway = reply(before.retry_max_tokens or 0, finish="length").model_copy(
        update={"truncated_usage": Usage(completion_tokens=before.max_tokens or 0)}
    )
    for _ in range(5):  # output that never stops (llama.cpp at its defaults, now and then)
        caps.observe("answers", "m", runaway)
    assert caps.cap("answers", "m", initial=400) == before
    [stats] = caps.stats()
    assert (stats.replies, stats.retried, stats.cut) == (25, 5, 5)


def test_units_are_learned_per_unit() -> None:
    caps = CompletionCaps(min_samples=2, margin=1.0)
    caps.observe("questions", "m", reply(150), units=5)  # 30 tokens a question
    caps.observe("questions", "m", reply(60), units=2)
    assert caps.cap("questions", "m", initial=999, units=4).max_tokens == 4 * 30 + 8


def test_pinned_caps_win_and_server_default_sends_none() -> None:
    caps = CompletionCaps(min_samples=1)
    caps.observe("answers", "m", reply(50))
    pinned = caps.cap("answers", "m", initial=400, pinned=77)
    assert (pinned.max_tokens, pinned.retry_max_tokens, pinned.source) == (77, None, "pinned")
    old = CompletionCaps("server-default")
    none = old.cap("answers", "m", initial=400)
    assert (none.max_tokens, none.retry_max_tokens) == (None, None)
    assert old.cap("answers", "m", initial=400, pinned=50).max_tokens == 50


def test_replies_without_usage_are_counted_from_their_text() -> None:
    caps = CompletionCaps(min_samples=1, margin=1.0)
    caps.observe("answers", "m", reply(0, text="Bats fly at night. " * 10))
    learned = caps.cap("answers", "m", initial=400).max_tokens
    assert learned is not None
    assert 8 + 30 <= learned <= 8 + 80


def test_what_was_learned_is_saved_and_restored(tmp_path: Path) -> None:
    caps = CompletionCaps(min_samples=3)
    for tokens in (40, 50, 60):
        caps.observe("answers", "m", reply(tokens))
    cut = reply(80, finish="length").model_copy(update={"truncated_usage": Usage()})
    caps.observe("answers", "m", cut)
    caps.save(tmp_path / "caps.json")
    again = CompletionCaps(min_samples=3)
    assert again.load(tmp_path / "caps.json")
    assert again.cap("answers", "m", initial=999) == caps.cap("answers", "m", initial=999)
    [stats] = again.stats()
    assert (stats.kind, stats.model, stats.replies, stats.retried, stats.cut) == (
        "answers",
        "m",
        4,
        1,
        1,
    )
    assert not CompletionCaps().load(tmp_path / "missing.json")
    (tmp_path / "odd.json").write_text('{"format": 99}', encoding="utf-8")
    odd = CompletionCaps()
    assert odd.load(tmp_path / "odd.json")
    assert odd.stats() == []


# ---------------------------------------------------------------- keys


def test_journal_keys_ignore_caps_and_cache_routing_but_not_a_doubled_cap_reask() -> None:
    client = OpenAIClient(api_key="sk-test-000000")
    plain = client.chat_request(QUESTION, model="gpt-4o")
    capped = client.chat_request(QUESTION, model="gpt-4o", max_tokens=120, prompt_cache_key="c1")
    other = client.chat_request(QUESTION, model="gpt-4o", max_tokens=300, prompt_cache_key="c2")
    assert capped.body["max_completion_tokens"] == 120
    assert capped.body["prompt_cache_key"] == "c1"
    assert plain.key(0) == capped.key(0) == other.key(0)
    assert capped.key(0) != capped.key(truncation_retry_sample(0)) != capped.key(1)
    warmer = client.chat_request(QUESTION, model="gpt-4o", temperature=0.7)
    assert warmer.key(0) != plain.key(0)


# ---------------------------------------------------------------- against the simulator


async def test_the_cap_sent_is_the_cap_reserved_with_an_exact_prompt_count() -> None:
    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key, retry=FAST) as client,
    ):
        sent: list[Any] = []
        send = client._transport.send

        async def spy(call: Any) -> Any:
            sent.append(call)
            return await send(call)

        client._transport.send = spy  # type: ignore[method-assign]
        response = await client.chat(QUESTION, model="gpt-4o", max_tokens=77)
        await client.chat(QUESTION, model="gpt-4o")
    capped, bare = sent
    field = client.max_tokens_field
    assert capped.json[field] == capped.max_completion_tokens == 77
    # the prompt is counted with the model's own vocabulary, as the server counts it
    assert capped.prompt_tokens == count_message_tokens(QUESTION, "gpt-4o")
    assert capped.prompt_tokens == response.usage.prompt_tokens
    # no cap sent: the server's default is what the limiter and the budget reserve
    assert field not in bare.json
    assert bare.max_completion_tokens == client.default_max_tokens == 1024


async def test_a_reply_cut_by_a_learned_cap_is_asked_again_with_a_larger_cap(
    tmp_path: Path,
) -> None:
    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key, retry=FAST) as client,
    ):
        with Journal(tmp_path) as journal:
            journaled = client.with_store(journal)
            sim.misbehave("runaway")  # the next reply does not stop: it is cut by its cap
            response = await journaled.chat(
                QUESTION, model="gpt-4o", max_tokens=40, retry_max_tokens=80, sample=3
            )
            assert response.finish_reason == "stop"
            assert response.truncated_usage is not None
            assert response.truncated_usage.completion_tokens == 40
            assert response.total_usage.completion_tokens == 40 + response.usage.completion_tokens
            bodies = chat_bodies(sim)
            assert [b[client.max_tokens_field] for b in bodies] == [40, 80]
            assert len(journal) == 2  # the cut reply and the re-ask, under keys of their own
            request = client.chat_request(QUESTION, model="gpt-4o")
            assert request.key(3) in journal
            assert request.key(truncation_retry_sample(3)) in journal
            # a resumed run with another cap replays both and pays nothing
            replayed = await journaled.chat(
                QUESTION, model="gpt-4o", max_tokens=55, retry_max_tokens=300, sample=3
            )
            assert replayed.text == response.text
            assert replayed.from_journal
            assert len(chat_bodies(sim)) == 2
        # without retry_max_tokens (a pinned cap) the cut reply is what comes back
        sim.misbehave("runaway")
        kept = await client.chat(QUESTION, model="gpt-4o", max_tokens=40, seed=1)
        assert kept.finish_reason == "length"
        assert kept.truncated_usage is None
    for body in chat_bodies(sim):
        validate("CreateChatCompletionRequest", body)


async def test_prompt_cache_key_goes_to_openai_not_to_azure() -> None:
    async with Simulator() as sim:
        async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as openai:
            await openai.chat(QUESTION, model="gpt-4o", prompt_cache_key="raftkit-chunk-1")
        async with AzureOpenAIClient(
            endpoint=sim.azure_endpoint, api_key=sim.api_key, api_version="2024-10-21"
        ) as azure:
            await azure.chat(QUESTION, model="gpt-4o", prompt_cache_key="raftkit-chunk-1")
    to_openai, to_azure = chat_bodies(sim)
    assert to_openai["prompt_cache_key"] == "raftkit-chunk-1"
    validate("CreateChatCompletionRequest", to_openai)
    assert "prompt_cache_key" not in to_azure


async def test_cached_tokens_are_priced_at_the_cached_rate_and_the_saving_reported() -> None:
    shared = "Bats are the only mammals capable of true and sustained flight. " * 110
    ledger = UsageLedger()
    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key, ledger=ledger) as client,
    ):
        usages = []
        for question in ("What flies?", "What are bats?"):
            messages = [
                {"role": "system", "content": "Answer from the document."},
                {"role": "user", "content": f"<DOCUMENT>{shared}</DOCUMENT>\n{question}"},
            ]
            response = await client.chat(
                messages, model="gpt-4o-mini", max_tokens=60, prompt_cache_key="raftkit-c"
            )
            usages.append(response.usage)
    first, second = usages
    assert first.cached_tokens == 0
    assert second.cached_tokens >= 1024
    assert (second.cached_tokens - 1024) % 128 == 0
    price = DEFAULT_PRICES["gpt-4o-mini"]
    assert price.input is not None
    assert price.cached_input is not None
    assert price.output is not None
    expected = sum(
        (u.prompt_tokens - u.cached_tokens) * price.input
        + u.cached_tokens * price.cached_input
        + u.completion_tokens * price.output
        for u in usages
    )
    report = ledger.report()
    assert report.total_cost_usd == pytest.approx(expected / 1e6)
    assert report.models["gpt-4o-mini"].cached_tokens == second.cached_tokens
    saved = second.cached_tokens * (price.input - price.cached_input) / 1e6
    assert report.saved_by_caching_usd == pytest.approx(saved)
    assert report.models["gpt-4o-mini"].saved_by_caching_usd == pytest.approx(saved)


async def test_a_request_longer_than_the_context_is_trimmed_or_refused() -> None:
    config = SimulatorConfig(dialect="llama.cpp", runaway_share=0.0)
    async with (
        Simulator(config) as sim,
        OpenAIClient(base_url=sim.base_url, retry=FAST) as client,
    ):
        # prompt + cap above the 4,096-token window: the server's refusal names the window;
        # the cap is trimmed to fit and the request sent once more
        response = await client.chat(QUESTION, model="local", max_tokens=4090)
        assert response.text
        assert client.context_windows == {"local": 4096}
        first, second = chat_bodies(sim)
        assert first["max_tokens"] == 4090
        assert second["max_tokens"] + count_message_tokens(QUESTION, "local") <= 4096
        # once the window is known, a cap is trimmed before sending
        await client.chat(QUESTION, model="local", max_tokens=5000)
        assert len(chat_bodies(sim)) == 3
        assert chat_bodies(sim)[-1]["max_tokens"] < 4096
        # a prompt that alone fills the window is refused without a request
        huge = [{"role": "user", "content": "bats and birds " * 3000}]
        with pytest.raises(ContextLengthExceededError, match="4096-token context window"):
            await client.chat(huge, model="local", max_tokens=100)
        assert len(chat_bodies(sim)) == 3
    async with (
        Simulator(config) as sim,
        OpenAIClient(base_url=sim.base_url, retry=FAST) as fresh,
    ):
        with pytest.raises(ContextLengthExceededError) as refused:
            await fresh.chat(huge, model="local", max_tokens=100)
        assert refused.value.context_window == 4096
        assert len(chat_bodies(sim)) == 1  # asked once, learned the window, gave up


async def test_a_structured_reask_quotes_only_an_excerpt_of_a_runaway_reply() -> None:
    runaway = '{"questions": ["What' + " and what" * 5_000
    client = ScriptedClient(replies=[runaway, {"questions": ["What flies?"]}])
    schema = {
        "type": "object",
        "properties": {"questions": {"type": "array", "items": {"type": "string"}}},
    }
    result = await client.chat_structured(QUESTION, schema, model="m")
    assert result.output == {"questions": ["What flies?"]}
    reask = client.calls[1].messages
    assert reask[-2]["role"] == "assistant"
    assert len(str(reask[-2]["content"])) < 1_300 < len(runaway)
    assert len(json.dumps(reask)) < 6_000
    stubborn = ScriptedClient(lambda call: runaway)
    with pytest.raises(StructuredOutputError):
        await stubborn.chat_structured(QUESTION, schema, model="m", max_attempts=3)
    assert all(len(json.dumps(call.messages)) < 6_000 for call in stubborn.calls)


# ---------------------------------------------------------------- the other callers


async def test_the_judge_and_the_vision_extractor_cap_their_calls(tmp_path: Path) -> None:
    caps = CompletionCaps(min_samples=1, margin=1.0)
    judge_client = ScriptedClient(lambda call: {"rationale": "Matches.", "grade": 5})
    judge = JudgeCorrectness(judge_client, model="judge", caps=caps)
    await judge.grade("q?", "bats", "bats")
    await judge.grade("q?", "bats", "birds")
    first, second = judge_client.calls
    assert first.kwargs["max_tokens"] == JUDGE_TOKENS
    assert first.kwargs["retry_max_tokens"] == 4 * JUDGE_TOKENS
    learned = caps.cap("judge", "judge", initial=JUDGE_TOKENS)
    assert learned.source == "learned"
    assert learned.max_tokens is not None
    assert second.kwargs["max_tokens"] == learned.max_tokens < JUDGE_TOKENS
    pinned = ScriptedClient(lambda call: {"rationale": "Matches.", "grade": 5})
    await JudgeCorrectness(pinned, model="judge", max_tokens=50).grade("q?", "a", "a")
    assert pinned.calls[0].kwargs["max_tokens"] == 50

    pdf = tmp_path / "page.pdf"
    with pymupdf.open() as document:
        document.new_page(width=300, height=200).insert_text((20, 40), "A page.")
        document.save(pdf)
    vision_client = ScriptedClient(lambda call: "## A page\n\nA page.")
    extractor = VisionPdfExtractor(vision_client, "vision", dpi=36, caps=caps)
    [_] = [d async for d in extractor.extract(pdf, doc_id="page.pdf")]
    [call] = vision_client.calls
    assert (call.kwargs["max_tokens"], call.kwargs["retry_max_tokens"]) == (
        VISION_TOKENS,
        4 * VISION_TOKENS,
    )
    assert any(stats.kind == "vision" for stats in caps.stats())
