"""LocalLoRAProvider on the real SmolLM2-135M: a short LoRA run, cancel, a row too long, a
folder base with packing and merge, and serving base and adapter over the OpenAI API
(raftkit's client, the openai package, the spec's schemas).

The trained adapter is the session's shared one (``trained`` in conftest.py: ``raftkit
finetune --provider local`` on a tiny run, rows of ~200 tokens); SIGKILL and resume through
the command, and ``raftkit serve`` as a process, are tested in test_finetune_local.py and
test_real_server.py.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from openapi_schemas import validate
from raftkit.finetune import FineTuneJob, JobEvent, LocalLoRAProvider, parse_result_csv
from raftkit.llm import OpenAIClient
from raftkit.serve import LocalChatModel, RequestError, ServerThread, parse_chat_request
from raftkit.students import LocalTrainingConfig
from raftkit.students.jobdir import JobDir
from students_support import TINY, Trained, requires_student, smollm_gguf

pytestmark = [requires_student()]


def _gguf() -> Path:
    gguf = smollm_gguf()
    assert gguf is not None
    return gguf.resolve()  # as `raftkit finetune` records an existing BASE: absolute


def _metrics_events(events: list[JobEvent]) -> list[JobEvent]:
    return [e for e in events if e.type == "metrics"]


def test_a_short_run_learns_and_reports_like_a_hosted_job(trained: Trained) -> None:
    steps = _metrics_events(trained.events)
    assert [e.data["step"] for e in steps] == [1, 2, 3]
    losses = [e.data["train_loss"] for e in steps]
    assert losses[2] < losses[1] < losses[0]  # the same two rows, each step
    assert all(e.data["tokens_per_second"] > 0 and e.data["learning_rate"] == 2e-3 for e in steps)
    assert "valid_loss" in steps[-1].data
    assert "valid_loss" in steps[1].data
    messages = [e.message for e in trained.events]
    assert any(m.startswith("memory estimate: ") and "GiB" in m for m in messages)
    assert any(m.startswith("training file: 2 rows") for m in messages)
    assert trained.job.trained_tokens
    assert trained.job.trained_tokens > 0
    metrics = parse_result_csv(Path(trained.job.result_files[0]).read_text(encoding="utf-8"))
    assert [s.train_loss for s in metrics.steps] == losses
    assert metrics.last("valid_loss") == steps[-1].data["valid_loss"]


@pytest.mark.anyio
async def test_outputs_adapter_curve_card_and_checkpoints(
    anyio_backend: str, trained: Trained
) -> None:
    adapter = Path(str(trained.job.fine_tuned_model))
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["base_model_name_or_path"] == str(_gguf())
    assert config["r"] == 8
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} == set(
        config["target_modules"]
    )
    assert (adapter / "adapter_model.safetensors").stat().st_size > 100_000
    svg = ET.fromstring((adapter / "training-curve.svg").read_text(encoding="utf-8"))
    assert svg.tag.endswith("svg")
    assert any(el.tag.endswith("polyline") for el in svg.iter())
    card = (adapter / "README.md").read_text(encoding="utf-8")
    for fact in (
        str(_gguf()),
        "split by chunk",
        "| lora_r | 8 |",
        "final train loss",
        "Made with raftkit",
        "train.jsonl",
    ):
        assert fact in card
    job_dir = Path(str(trained.job.raw["job_dir"]))
    assert (job_dir / "base_config" / "config.json").is_file()
    async with LocalLoRAProvider(trained.out, config=TINY) as provider:
        checkpoints = [c async for c in provider.checkpoints(trained.job.id)]
        assert [c.step for c in checkpoints] == [2]
        assert await anyio.Path(checkpoints[0].model, "adapter_model.safetensors").is_file()
        metrics = await provider.metrics(trained.job.id)
        assert [s.step for s in metrics.steps] == [1, 2, 3]
        assert trained.job.id in [j.id async for j in provider.list_jobs()]
        with pytest.raises(Exception, match="served, not deployed"):
            await provider.deploy(trained.job)


@pytest.mark.anyio
async def test_the_same_job_is_found_not_trained_again(
    anyio_backend: str, trained: Trained
) -> None:
    async with LocalLoRAProvider(trained.out, config=TINY) as provider:
        again = await provider.create_job(
            model=str(_gguf()),
            training_file=trained.train_id,
            validation_file=trained.valid_id,
        )
        assert (again.id, again.status) == (trained.job.id, "succeeded")
        events = [e async for e in provider.events(again.id)]
    assert len(events) == len(trained.events)


@pytest.mark.slow
def test_cancel_stops_the_trainer(trained: Trained) -> None:
    config = TINY.model_copy(update={"max_steps": 50, "batch_size": 1, "seed": 2})

    async def cancel() -> tuple[FineTuneJob, list[JobEvent]]:
        async with LocalLoRAProvider(trained.out, config=config, cancel_grace=300) as provider:
            job = await provider.create_job(model=str(_gguf()), training_file=trained.train_id)
            for _ in range(3000):  # until it trains: cancel the loop, not the start-up
                if (await provider.get_job(job.id)).status == "running":
                    break
                await anyio.sleep(0.1)
            cancelled = await provider.cancel_job(job.id)
            return cancelled, [e async for e in provider.events(job.id)]

    cancelled, events = anyio.run(cancel)
    assert cancelled.status == "cancelled"
    assert cancelled.fine_tuned_model is None
    assert not JobDir(Path(str(cancelled.raw["job_dir"]))).trainer_alive()
    assert events[0].message == "training cancelled"  # the trainer's own last word


@pytest.mark.slow
def test_rows_that_would_be_truncated_fail_the_job_before_training(trained: Trained) -> None:
    config = TINY.model_copy(update={"max_seq_length": 64})

    async def attempt() -> FineTuneJob:
        async with LocalLoRAProvider(trained.out, config=config) as provider:
            job = await provider.create_job(model=str(_gguf()), training_file=trained.train_id)
            return await provider.wait(job.id, raise_on_failure=False)

    failed = anyio.run(attempt)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.code == "invalid_training_file"
    assert "more than max_seq_length 64" in failed.error.message
    assert "\n" not in failed.error.message
    assert failed.fine_tuned_model is None
    assert not (Path(str(failed.raw["job_dir"])) / "adapter").exists()


def test_packing_checkpointing_and_merge_on_a_folder_base(trained: Trained) -> None:
    """A Hugging Face folder as BASE (a tiny random Llama with SmolLM2's tokenizer), packed
    rows, gradient checkpointing, and a merged model written beside the adapter."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = trained.run.parent / "tiny-llama"
    tokenizer = AutoTokenizer.from_pretrained(next((trained.out / "bases").iterdir()))
    torch.manual_seed(0)
    shape = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
    )
    LlamaForCausalLM(shape).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = LocalTrainingConfig(
        max_steps=2,
        packing=True,
        max_seq_length=1024,
        gradient_checkpointing=True,
        merge=True,
        gradient_accumulation_steps=1,
        save_every=1,
    )

    async def run() -> tuple[FineTuneJob, list[JobEvent]]:
        async with LocalLoRAProvider(trained.out, config=config) as provider:
            job = await provider.create_job(model=str(folder), training_file=trained.train_id)
            done = await provider.wait(job.id, raise_on_failure=False)
            return done, [e async for e in provider.events(job.id)]

    done, events = anyio.run(run)
    assert done.status == "succeeded", done.error
    assert [e.data["step"] for e in events[::-1] if e.type == "metrics"] == [1, 2]
    merged = Path(str(done.raw["job_dir"])) / "merged"
    assert (merged / "config.json").is_file()
    assert LlamaForCausalLM.from_pretrained(merged).config.hidden_size == 32


# ---------------------------------------------------------------------------- serving


@pytest.fixture(scope="module")
def served(trained: Trained) -> Iterator[tuple[str, LocalChatModel]]:
    model = LocalChatModel.load(
        str(_gguf()),
        adapters={"raft": str(trained.job.fine_tuned_model)},
        cache_dir=trained.out / "bases",
        default_max_tokens=16,
    )
    with ServerThread(model) as server:
        yield server.base_url, model


def _prompt(trained: Trained) -> list[dict[str, str]]:
    tiny = trained.run / "dataset" / "chat" / "train.jsonl"
    row = json.loads(tiny.read_text("utf-8").splitlines()[0])
    return list(row["messages"][:-1])


def test_models_lists_base_and_adapter(served: tuple[str, LocalChatModel]) -> None:
    url, _model = served
    body = httpx.get(f"{url}/models").json()
    validate("ListModelsResponse", body)
    assert [m["id"] for m in body["data"]] == [str(_gguf()), "raft"]


def test_chat_completions_follow_the_spec(
    served: tuple[str, LocalChatModel], trained: Trained
) -> None:
    url, model = served
    texts = {}
    for name in model.names:
        request = {"model": name, "messages": _prompt(trained), "max_tokens": 12, "temperature": 0}
        body = httpx.post(f"{url}/chat/completions", json=request, timeout=600).json()
        validate("CreateChatCompletionResponse", body)
        usage = body["usage"]
        assert usage["prompt_tokens"] > 100
        assert 0 < usage["completion_tokens"] <= 12
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        texts[name] = body["choices"][0]["message"]["content"]
    # three steps on these very rows moved the adapter's greedy answer
    assert texts["raft"] != texts[str(_gguf())]


def test_max_tokens_stop_and_seed(served: tuple[str, LocalChatModel]) -> None:
    url, _ = served
    ask = {"model": "raft", "messages": [{"role": "user", "content": "Name three colours."}]}
    short = httpx.post(
        f"{url}/chat/completions", json={**ask, "max_tokens": 3, "temperature": 0}, timeout=600
    ).json()
    assert short["choices"][0]["finish_reason"] == "length"
    assert short["usage"]["completion_tokens"] == 3
    greedy = httpx.post(
        f"{url}/chat/completions", json={**ask, "max_tokens": 10, "temperature": 0}, timeout=600
    ).json()
    text = greedy["choices"][0]["message"]["content"]
    word = text.split()[1]
    stopped = httpx.post(
        f"{url}/chat/completions",
        json={**ask, "max_tokens": 10, "temperature": 0, "stop": [word]},
        timeout=600,
    ).json()
    choice = stopped["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == text[: text.index(word)]
    sampled = [
        httpx.post(
            f"{url}/chat/completions",
            json={**ask, "max_tokens": 8, "temperature": 1.0, "seed": 7},
            timeout=600,
        ).json()
        for _ in range(2)
    ]
    assert sampled[0]["choices"][0]["message"] == sampled[1]["choices"][0]["message"]


def test_errors_have_openai_shape(served: tuple[str, LocalChatModel]) -> None:
    url, _ = served
    ask = {"messages": [{"role": "user", "content": "hi"}]}
    missing = httpx.post(f"{url}/chat/completions", json={**ask, "model": "gpt-4o"})
    assert missing.status_code == 404
    validate("ErrorResponse", missing.json())
    assert missing.json()["error"]["code"] == "model_not_found"
    streaming = httpx.post(f"{url}/chat/completions", json={**ask, "model": "raft", "stream": True})
    assert streaming.status_code == 400
    assert streaming.json()["error"]["param"] == "stream"


@pytest.mark.anyio
async def test_raftkit_client_talks_to_it(
    anyio_backend: str, served: tuple[str, LocalChatModel]
) -> None:
    url, _ = served
    async with OpenAIClient(base_url=url, api_key="unused") as client:
        reply = await client.chat(
            [{"role": "user", "content": "Say hello."}],
            model="raft",
            max_tokens=6,
            temperature=0,
            seed=1,
            stop=["\n\n"],
        )
    assert reply.text
    assert reply.usage.completion_tokens <= 6


def test_openai_package_talks_to_it(served: tuple[str, LocalChatModel]) -> None:
    import openai

    url, _ = served
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    models = [m.id for m in client.models.list()]
    assert "raft" in models
    done = client.chat.completions.create(
        model=models[0],
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=6,
        temperature=0,
    )
    assert done.choices[0].finish_reason in {"stop", "length"}
    assert done.usage is not None
    assert done.usage.completion_tokens <= 6


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3},
            "temperature",
        ),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_object"},
            },
            "response_format",
        ),
    ],
)
def test_bad_requests_name_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_chat_request(body)
    assert caught.value.status == 400
    assert caught.value.param == param


def test_request_parsing_accepts_openai_variants() -> None:
    parsed = parse_chat_request(
        {
            "model": "raft",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ],
            "max_completion_tokens": 5,
            "stop": "END",
            "seed": 3,
        }
    )
    assert parsed.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "ab"},
    ]
    assert (parsed.max_tokens, parsed.stop, parsed.seed) == (5, ["END"], 3)
