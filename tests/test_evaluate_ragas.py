"""ragas' metrics driven by raftkit's client: a deterministic fake that reads ragas' prompts."""

from __future__ import annotations

import json
import math
import re
import sys
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from pydantic import BaseModel

from raftkit.errors import UsageError
from raftkit.evaluate import ModelSpec, RaftEvaluator, Sample
from raftkit.evaluate.ragas_adapter import RAGAS_METRIC_NAMES, ragas_metrics
from raftkit.llm import ChatMessage, ChatResponse, LLMClient, StructuredMode, StructuredResponse
from raftkit.types import ContextDocument, RaftExample

pytestmark = pytest.mark.anyio

_INPUT = "Now perform the same with the following input\ninput: "


def _sentences(text: str) -> list[str]:
    return [s.strip() + "." for s in re.split(r"[.。]", text) if s.strip()]


def _vector(text: str) -> npt.NDArray[np.float32]:
    """A bag of character bigrams hashed into 64 dimensions."""
    v = np.zeros(64, dtype=np.float32)
    padded = f" {text.lower()} "
    for i in range(len(padded) - 1):
        v[zlib.crc32(padded[i : i + 2].encode()) % 64] += 1.0
    return v


def _cosine(a: str, b: str) -> float:
    x, y = _vector(a), _vector(b)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


class RagasFake(LLMClient):
    """Plays ragas' judge: splits answers into sentences and checks them by substring."""

    def __init__(self) -> None:
        self.structured: list[tuple[str, int, str]] = []  # (response model, sample, prompt)
        self.embedded: list[str] = []

    async def aclose(self) -> None:
        return None

    async def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        raise AssertionError("ragas metrics must use chat_structured")

    async def chat_structured(
        self,
        messages: Sequence[ChatMessage],
        output: type[Any] | Mapping[str, Any],
        *,
        model: str,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        sample: int = 0,
        mode: StructuredMode | None = None,
        max_attempts: int | None = None,
    ) -> StructuredResponse[Any]:
        assert isinstance(output, type)
        assert issubclass(output, BaseModel)
        prompt = str(messages[-1]["content"])
        self.structured.append((output.__name__, sample, prompt))
        data = json.loads(prompt.rsplit(_INPUT, 1)[1].rsplit("\nOutput:", 1)[0])
        name = output.__name__
        if name == "StatementGeneratorOutput":
            result: dict[str, Any] = {"statements": _sentences(data["answer"])}
        elif name == "NLIStatementOutput":
            result = {
                "statements": [
                    {"statement": s, "reason": "substring", "verdict": int(s in data["context"])}
                    for s in data["statements"]
                ]
            }
        elif name == "AnswerRelevanceOutput":
            result = {"question": f"What about {data['response']}", "noncommittal": 0}
        elif name == "ClassificationWithReason":
            truth, answer = data["ground_truth"], data["answer"]
            result = {
                "TP": [{"statement": s, "reason": "r"} for s in answer if s in truth],
                "FP": [{"statement": s, "reason": "r"} for s in answer if s not in truth],
                "FN": [{"statement": s, "reason": "r"} for s in truth if s not in answer],
            }
        else:
            raise AssertionError(f"unexpected response model {name}")
        return StructuredResponse(
            output=output.model_validate(result), response=ChatResponse(text="{}", model=model)
        )

    async def embed(
        self, texts: Sequence[str], *, model: str, dimensions: int | None = None
    ) -> npt.NDArray[np.float32]:
        self.embedded.extend(texts)
        return np.stack([_vector(t) for t in texts])

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        raise NotImplementedError


def _by_name(client: LLMClient) -> dict[str, Any]:
    metrics = ragas_metrics(client, model="judge", embedding_model="embedder")
    return {m.name: m for m in metrics}


@pytest.mark.extra
async def test_faithfulness_counts_supported_statements(anyio_backend: str) -> None:
    client = RagasFake()
    faithfulness = _by_name(client)["faithfulness"]
    sample = Sample(
        question="What do bats do?",
        response="reasoning here\n<ANSWER>: Bats fly. Bats lay eggs.",
        reference="Bats fly.",
        contexts=("Paper is pulp.", "Bats fly. They hunt at night."),
    )
    score = await faithfulness.score(sample)
    assert score.value == 0.5  # one of the two statements of the final answer is supported
    generator_prompt = client.structured[0][2]
    assert '"answer": "Bats fly. Bats lay eggs."' in generator_prompt  # the final answer only


@pytest.mark.extra
async def test_similarity_relevancy_and_correctness(anyio_backend: str) -> None:
    client = RagasFake()
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
    samples = [s for name, s, _ in client.structured if name == "AnswerRelevanceOutput"]
    assert samples == [0, 1, 2]
    correctness = await metrics["answer_correctness"].score(sample)
    assert correctness.value == pytest.approx(0.75 * 1.0 + 0.25 * 1.0)
    wrong = Sample(question="q", response="<ANSWER>: Cats bark.", reference="Bats fly.")
    partial = await metrics["answer_correctness"].score(wrong)
    assert partial.value == pytest.approx(0.25 * _cosine("Cats bark.", "Bats fly."), abs=1e-6)
    assert len(client.embedded) == len(set(client.embedded))  # each text embedded once


@pytest.mark.extra
async def test_what_ragas_cannot_score_is_nan_with_a_reason(anyio_backend: str) -> None:
    metrics = _by_name(RagasFake())
    no_context = Sample(question="q", response="<ANSWER>: Bats fly.", reference="x", contexts=())
    score = await metrics["faithfulness"].score(no_context)
    assert math.isnan(score.value)
    assert "retrieved_contexts" in score.note
    no_statements = Sample(question="q", response="<ANSWER>: ...", reference="x", contexts=("c",))
    score = await metrics["faithfulness"].score(no_statements)
    assert math.isnan(score.value)
    assert "nan" in score.note


@pytest.mark.extra
async def test_ragas_metrics_in_an_evaluation_run(anyio_backend: str) -> None:
    """Runs ragas' metric code under both backends, trio included."""

    class Answerer(RagasFake):
        async def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
            return ChatResponse(text="<ANSWER>: Bats fly. Bats sing.", model="m")

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
    judge = RagasFake()
    metrics = ragas_metrics(judge, model="judge", embedding_model="e", names=["faithfulness"])
    results = await RaftEvaluator(metrics).run([example], [ModelSpec("m", Answerer(), "m")])
    assert results[0].scores == {"faithfulness": 0.5}


@pytest.mark.extra
def test_configuration_mistakes() -> None:
    with pytest.raises(UsageError, match="embedding_model"):
        ragas_metrics(RagasFake(), model="judge", names=["semantic_similarity"])
    with pytest.raises(UsageError, match="unknown ragas metrics"):
        ragas_metrics(RagasFake(), model="judge", names=["bleu"])
    only = ragas_metrics(RagasFake(), model="judge", names=["faithfulness"])
    assert [m.name for m in only] == ["faithfulness"]
    assert [m.name for m in ragas_metrics(RagasFake(), model="j", embedding_model="e")] == list(
        RAGAS_METRIC_NAMES
    )


@pytest.mark.extra
def test_tracking_is_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAGAS_DO_NOT_TRACK", raising=False)
    ragas_metrics(RagasFake(), model="judge", names=["faithfulness"])
    import os

    assert os.environ["RAGAS_DO_NOT_TRACK"] == "true"


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ragas", None)  # makes `import ragas` raise ImportError
    with pytest.raises(UsageError, match=re.escape("pip install 'raftkit[ragas]'")):
        ragas_metrics(RagasFake(), model="judge")


@pytest.mark.extra
async def test_embedding_cache_is_bounded_and_batched(anyio_backend: str) -> None:
    from raftkit.evaluate._ragas_bridge import RaftkitRagasEmbedding

    client = RagasFake()
    embeddings = RaftkitRagasEmbedding(client, model="e")
    embeddings.max_cached = 3
    await embeddings.prefetch(["a", "b", "a"])
    assert client.embedded == ["a", "b"]  # one call, each text once
    vectors = await embeddings.aembed_texts(["b", "c", "d"])
    assert client.embedded == ["a", "b", "c", "d"]
    assert vectors[0] == pytest.approx(_vector("b").tolist())
    with pytest.raises(UsageError, match="synchronously"):
        embeddings.embed_text("a")  # the least recently used text was dropped
    assert embeddings.embed_text("d") == pytest.approx(_vector("d").tolist())
