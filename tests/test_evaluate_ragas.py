"""ragas' metrics driven by raftkit's client: a deterministic fake that reads ragas' prompts."""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from raftkit.errors import UsageError
from raftkit.evaluate import ModelSpec, RaftEvaluator, Sample
from raftkit.evaluate.ragas_adapter import RAGAS_METRIC_NAMES, ragas_metrics
from raftkit.llm import LLMClient
from raftkit.testing.scripted import Call, Reply, ScriptedClient, hashed_vector
from raftkit.types import ContextDocument, RaftExample

pytestmark = pytest.mark.anyio

_INPUT = "Now perform the same with the following input\ninput: "


def _sentences(text: str) -> list[str]:
    return [s.strip() + "." for s in re.split(r"[.。]", text) if s.strip()]


def _cosine(a: str, b: str) -> float:
    x, y = hashed_vector(a), hashed_vector(b)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def _judge(call: Call) -> Reply:
    """Plays ragas' judge: splits answers into sentences and checks them by substring."""
    assert call.method == "chat_structured", "ragas metrics must use chat_structured"
    data = json.loads(call.prompt.rsplit(_INPUT, 1)[1].rsplit("\nOutput:", 1)[0])
    name = _output_name(call)
    if name == "StatementGeneratorOutput":
        return {"statements": _sentences(data["answer"])}
    if name == "NLIStatementOutput":
        return {
            "statements": [
                {"statement": s, "reason": "substring", "verdict": int(s in data["context"])}
                for s in data["statements"]
            ]
        }
    if name == "AnswerRelevanceOutput":
        return {"question": f"What about {data['response']}", "noncommittal": 0}
    if name == "ClassificationWithReason":
        truth, answer = data["ground_truth"], data["answer"]
        return {
            "TP": [{"statement": s, "reason": "r"} for s in answer if s in truth],
            "FP": [{"statement": s, "reason": "r"} for s in answer if s not in truth],
            "FN": [{"statement": s, "reason": "r"} for s in truth if s not in answer],
        }
    raise AssertionError(f"unexpected response model {name}")


def _output_name(call: Call) -> str:
    output = call.kwargs["output"]
    assert isinstance(output, type)
    assert issubclass(output, BaseModel)
    return output.__name__


def _embedded(client: ScriptedClient) -> list[str]:
    return [text for call in client.calls_to("embed") for text in call.texts]


def _by_name(client: LLMClient) -> dict[str, Any]:
    metrics = ragas_metrics(client, model="judge", embedding_model="embedder")
    return {m.name: m for m in metrics}


@pytest.mark.extra("ragas")
async def test_faithfulness_counts_supported_statements(anyio_backend: str) -> None:
    client = ScriptedClient(_judge)
    faithfulness = _by_name(client)["faithfulness"]
    sample = Sample(
        question="What do bats do?",
        response="reasoning here\n<ANSWER>: Bats fly. Bats lay eggs.",
        reference="Bats fly.",
        contexts=("Paper is pulp.", "Bats fly. They hunt at night."),
    )
    score = await faithfulness.score(sample)
    assert score.value == 0.5  # one of the two statements of the final answer is supported
    generator_prompt = client.calls_to("chat_structured")[0].prompt
    assert '"answer": "Bats fly. Bats lay eggs."' in generator_prompt  # the final answer only


@pytest.mark.extra("ragas")
async def test_similarity_relevancy_and_correctness(anyio_backend: str) -> None:
    client = ScriptedClient(_judge)
    metrics = _by_name(client)
    sample = Sample(
        question="蝙蝠会飞吗？",
        response="<ANSWER>: 蝙蝠会飞。",
        reference="蝙蝠会飞。",
        contexts=("蝙蝠会飞。",),
    )
    similarity = await metrics["semantic_similarity"].score(sample)
    assert similarity.value == pytest.approx(1.0)
    relevancy = await metrics["answer_relevancy"].score(sample)
    assert relevancy.value == pytest.approx(
        _cosine("蝙蝠会飞吗？", "What about 蝙蝠会飞。"), abs=1e-6
    )
    # answer relevancy asks the same prompt 3 times: each repeat is a distinct sample
    asked = client.calls_to("chat_structured")
    samples = [c.sample for c in asked if _output_name(c) == "AnswerRelevanceOutput"]
    assert samples == [0, 1, 2]
    correctness = await metrics["answer_correctness"].score(sample)
    assert correctness.value == pytest.approx(0.75 * 1.0 + 0.25 * 1.0)
    wrong = Sample(question="q", response="<ANSWER>: Cats bark.", reference="Bats fly.")
    partial = await metrics["answer_correctness"].score(wrong)
    assert partial.value == pytest.approx(0.25 * _cosine("Cats bark.", "Bats fly."), abs=1e-6)
    assert len(_embedded(client)) == len(set(_embedded(client)))  # each text embedded once


@pytest.mark.extra("ragas")
async def test_what_ragas_cannot_score_is_nan_with_a_reason(anyio_backend: str) -> None:
    metrics = _by_name(ScriptedClient(_judge))
    no_context = Sample(question="q", response="<ANSWER>: Bats fly.", reference="x", contexts=())
    score = await metrics["faithfulness"].score(no_context)
    assert math.isnan(score.value)
    assert "retrieved_contexts" in score.note
    no_statements = Sample(question="q", response="<ANSWER>: ...", reference="x", contexts=("c",))
    score = await metrics["faithfulness"].score(no_statements)
    assert math.isnan(score.value)
    assert "nan" in score.note


@pytest.mark.extra("ragas")
async def test_ragas_metrics_in_an_evaluation_run(anyio_backend: str) -> None:
    """Runs ragas' metric code under both backends, trio included."""

    example = RaftExample(
        id="e1",
        question_id="q1",
        question="What do bats do?",
        chunk_id="c",
        document_id="d",
        documents=[ContextDocument(chunk_id="c", position=0, is_oracle=True, text="Bats fly.")],
        oracle_present=True,
        cot_answer="<ANSWER>: Bats fly.",
        final_answer="Bats fly.",
    )
    judge = ScriptedClient(_judge)
    metrics = ragas_metrics(judge, model="judge", embedding_model="e", names=["faithfulness"])
    answerer = ScriptedClient(lambda c: "<ANSWER>: Bats fly. Bats sing.")
    results = await RaftEvaluator(metrics).run([example], [ModelSpec("m", answerer, "m")])
    assert results[0].scores == {"faithfulness": 0.5}


@pytest.mark.extra("ragas")
def test_configuration_mistakes() -> None:
    with pytest.raises(UsageError, match="embedding_model"):
        ragas_metrics(ScriptedClient(_judge), model="judge", names=["semantic_similarity"])
    with pytest.raises(UsageError, match="unknown ragas metrics"):
        ragas_metrics(ScriptedClient(_judge), model="judge", names=["bleu"])
    only = ragas_metrics(ScriptedClient(_judge), model="judge", names=["faithfulness"])
    assert [m.name for m in only] == ["faithfulness"]
    every = ragas_metrics(ScriptedClient(_judge), model="j", embedding_model="e")
    assert [m.name for m in every] == list(RAGAS_METRIC_NAMES)


@pytest.mark.extra("ragas")
def test_tracking_is_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAGAS_DO_NOT_TRACK", raising=False)
    ragas_metrics(ScriptedClient(_judge), model="judge", names=["faithfulness"])
    import os

    assert os.environ["RAGAS_DO_NOT_TRACK"] == "true"


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ragas", None)  # makes `import ragas` raise ImportError
    with pytest.raises(UsageError, match=re.escape("pip install 'raftkit[ragas]'")):
        ragas_metrics(ScriptedClient(_judge), model="judge")


@pytest.mark.extra("ragas")
async def test_embedding_cache_is_bounded_and_batched(anyio_backend: str) -> None:
    from raftkit.evaluate._ragas_bridge import RaftkitRagasEmbedding

    client = ScriptedClient(_judge)
    embeddings = RaftkitRagasEmbedding(client, model="e")
    embeddings.max_cached = 3
    await embeddings.prefetch(["a", "b", "a"])
    assert _embedded(client) == ["a", "b"]  # one call, each text once
    vectors = await embeddings.aembed_texts(["b", "c", "d"])
    assert _embedded(client) == ["a", "b", "c", "d"]
    assert vectors[0] == pytest.approx(hashed_vector("b").tolist())
    with pytest.raises(UsageError, match="synchronously"):
        embeddings.embed_text("a")  # the least recently used text was dropped
    assert embeddings.embed_text("d") == pytest.approx(hashed_vector("d").tolist())
