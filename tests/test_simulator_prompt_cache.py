"""Prompt caching, the TPM charge at admission, and token counts as the simulator bills them."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import pytest

from openapi_schemas import validate
from raftkit.testing import Simulator
from raftkit.testing._catalog import DEFAULT_MODELS, ModelCard
from raftkit.testing._text import estimate_tokens
from simulator_support import chat

pytestmark = pytest.mark.anyio

RULES = "Follow the house rules for answers: cite, be brief, stay polite. " * 150


def body(question: str, *, model: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": RULES},
        {"role": "user", "content": question},
    ]
    return {"model": model, "messages": messages, **extra}


async def usage(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    response = await chat(sim, request)
    assert response.status_code == 200, response.text
    validate("CreateChatCompletionResponse", response.json())
    result: dict[str, Any] = response.json()["usage"]
    return result


def cached(report: dict[str, Any]) -> int:
    return int(report["prompt_tokens_details"]["cached_tokens"])


async def test_a_repeated_prefix_is_cached_in_128_token_steps(
    raftkit_simulator: Simulator,
) -> None:
    sim = raftkit_simulator
    first = await usage(sim, body("What is the first rule?"))
    assert first["prompt_tokens"] > 1024
    assert cached(first) == 0
    again = await usage(sim, body("What is the first rule?"))
    steps = cached(again)
    assert steps >= 1024
    assert (steps - 1024) % 128 == 0
    assert again["prompt_tokens"] - 3 - 128 < steps <= again["prompt_tokens"]
    # another question after the same system prompt shares only the prefix
    other = await usage(sim, body("And the second rule?"))
    assert 1024 <= cached(other) <= steps
    # another model has its own cache
    assert cached(await usage(sim, body("What is the first rule?", model="gpt-4.1"))) == 0


async def test_short_prompts_are_never_cached(raftkit_simulator: Simulator) -> None:
    short = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello " * 100}]}
    await usage(raftkit_simulator, short)
    assert cached(await usage(raftkit_simulator, short)) == 0


async def test_the_prompt_cache_key_routes_requests(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    await usage(sim, body("Rule one?", prompt_cache_key="chunk-1"))
    assert cached(await usage(sim, body("Rule one?", prompt_cache_key="chunk-2"))) == 0
    assert cached(await usage(sim, body("Rule one?", prompt_cache_key="chunk-1"))) >= 1024
    assert cached(await usage(sim, body("Rule one?"))) == 0  # no key: another route


async def test_cached_prefixes_expire_after_their_ttl(raftkit_simulator_factory: Any) -> None:
    sim: Simulator = raftkit_simulator_factory(prompt_cache_ttl=300.0)
    await usage(sim, body("Rule one?"))
    sim.advance_time(200)
    assert cached(await usage(sim, body("Rule one?"))) >= 1024  # a hit refreshes the entry
    sim.advance_time(299)
    assert cached(await usage(sim, body("Rule one?"))) >= 1024
    sim.advance_time(301)
    assert cached(await usage(sim, body("Rule one?"))) == 0

    await usage(sim, body("Kept a day?", prompt_cache_retention="24h"))
    sim.advance_time(3 * 3600)
    assert cached(await usage(sim, body("Kept a day?", prompt_cache_retention="24h"))) >= 1024
    bad = await chat(sim, body("Rule?", prompt_cache_retention="forever"))
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "prompt_cache_retention"


async def test_a_model_card_sets_its_own_ttl(raftkit_simulator_factory: Any) -> None:
    models = {**DEFAULT_MODELS, "short-memory": ModelCard(prompt_cache_ttl=10.0)}
    sim: Simulator = raftkit_simulator_factory(models=models, prompt_cache_ttl=3600.0)
    await usage(sim, body("Rule one?", model="short-memory"))
    sim.advance_time(11)
    assert cached(await usage(sim, body("Rule one?", model="short-memory"))) == 0
    sim.clear_prompt_cache()
    await usage(sim, body("Rule one?"))
    sim.advance_time(11)
    assert cached(await usage(sim, body("Rule one?"))) >= 1024


@pytest.mark.raftkit_simulator(prompt_caching=False)
async def test_prompt_caching_can_be_turned_off(raftkit_simulator: Simulator) -> None:
    await usage(raftkit_simulator, body("Rule one?"))
    assert cached(await usage(raftkit_simulator, body("Rule one?"))) == 0


@pytest.mark.parametrize(("default_max_tokens", "max_tokens"), [(1024, None), (0, None), (0, 50)])
async def test_tpm_is_charged_prompt_plus_max_tokens_at_admission(
    raftkit_simulator_factory: Any, default_max_tokens: int, max_tokens: int | None
) -> None:
    sim: Simulator = raftkit_simulator_factory(tpm=1_000_000, default_max_tokens=default_max_tokens)
    extra: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens else {}
    request = body("Rule one?", **extra)
    response = await chat(sim, request)
    spent = 1_000_000 - int(response.headers["x-ratelimit-remaining-tokens"])
    prompt = response.json()["usage"]["prompt_tokens"]
    charged = prompt + (max_tokens if max_tokens is not None else default_max_tokens)
    assert charged <= spent <= charged + 5  # plus what refilled meanwhile


async def test_prompt_tokens_are_exact_with_the_tokens_extra(raftkit_simulator: Simulator) -> None:
    messages = [
        {"role": "system", "content": "You answer from documents."},
        {"role": "user", "content": "How tall is Mount Everest? 珠穆朗玛峰有多高？"},
    ]
    report = await usage(raftkit_simulator, {"model": "gpt-4o", "messages": messages})
    if importlib.util.find_spec("bpe_openai") is not None:
        encoding = importlib.import_module("bpe_openai").get_encoding("o200k_base")
        # 3 tokens of framing per message plus its role and content, 3 to prime the reply
        expected = 3 + sum(
            3 + len(encoding.encode(m["role"])) + len(encoding.encode(m["content"]))
            for m in messages
        )
    else:
        expected = 3 + sum(4 + estimate_tokens(m["content"]) for m in messages)
    assert report["prompt_tokens"] == expected


@pytest.mark.raftkit_simulator(exact_tokens=False)
async def test_the_estimate_stands_in_without_a_vocabulary(raftkit_simulator: Simulator) -> None:
    messages = [{"role": "user", "content": "How tall is Mount Everest?"}]
    report = await usage(raftkit_simulator, {"model": "gpt-4o", "messages": messages})
    assert report["prompt_tokens"] == 3 + 4 + estimate_tokens(messages[0]["content"])
