"""raftkit's client inside ragas' LLM and embedding interfaces. Imports ragas: load it only
through :mod:`raftkit.evaluate.ragas_adapter`, which sets ``RAGAS_DO_NOT_TRACK`` first.

ragas' collection metrics (0.4) talk to an ``InstructorBaseRagasLLM`` (a prompt in, a pydantic
model out) and a ``BaseRagasEmbedding``. Implementing those two on top of raftkit's
:class:`~raftkit.llm.LLMClient` means every request of a ragas metric takes raftkit's request
path (rate limits, retries, timeouts, usage, journal) and ragas' own HTTP clients are never
built. Their concurrency helpers are avoided too: they assume asyncio, raftkit also runs on trio.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel
from ragas.embeddings.base import BaseRagasEmbedding
from ragas.llms.base import InstructorBaseRagasLLM
from ragas.metrics.collections import (
    AnswerCorrectness,
    AnswerRelevancy,
    Faithfulness,
    SemanticSimilarity,
)

from raftkit.errors import RaftkitError, UsageError
from raftkit.evaluate.metrics import Sample, Score
from raftkit.llm import LLMClient, StructuredMode

__all__ = [
    "RaftkitRagasEmbedding",
    "RaftkitRagasLLM",
    "RagasMetric",
    "build_metrics",
]

ModelT = TypeVar("ModelT", bound=BaseModel)


class RaftkitRagasLLM(InstructorBaseRagasLLM):  # type: ignore[misc, unused-ignore]
    """A ragas LLM whose every call is ``client.chat_structured``. Async only."""

    def __init__(
        self,
        client: LLMClient,
        *,
        model: str,
        temperature: float | None = 0.0,
        max_tokens: int | None = 1024,
        seed: int | None = None,
        mode: StructuredMode | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.mode = mode
        # ragas asks the same prompt several times on purpose (answer relevancy's strictness);
        # a distinct ``sample`` per repeat keeps a journal from collapsing them into one.
        # Keyed by digest: prompts are kilobytes and a run asks tens of thousands.
        self._asked: Counter[bytes] = Counter()

    def __repr__(self) -> str:
        return f"RaftkitRagasLLM(model={self.model!r})"

    def generate(self, prompt: str, response_model: type[ModelT]) -> ModelT:
        raise UsageError("raftkit's ragas LLM is async only: use the metric's ascore()")

    async def agenerate(self, prompt: str, response_model: type[ModelT]) -> ModelT:
        key = hashlib.sha256(f"{response_model.__name__}\0{prompt}".encode()).digest()
        sample = self._asked[key]
        self._asked[key] += 1
        result = await self.client.chat_structured(
            [{"role": "user", "content": prompt}],
            response_model,
            model=self.model,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=self.seed,
            sample=sample,
            mode=self.mode,
        )
        output = result.output
        if isinstance(output, response_model):
            return output
        return response_model.model_validate(output)


class RaftkitRagasEmbedding(BaseRagasEmbedding):  # type: ignore[misc, unused-ignore]
    """ragas embeddings from ``client.embed``, with a cache of the texts embedded so far.

    Some ragas metrics (semantic similarity) call the synchronous ``embed_text`` from inside
    their async ``ascore``; a synchronous call cannot wait for the event loop it runs on, so
    :class:`RagasMetric` embeds those texts beforehand (:meth:`prefetch`) and ``embed_text``
    answers from the cache.
    """

    #: Texts kept; the least recently used go first. Far more than are ever in flight at once,
    #: so a prefetched text is still there when ragas asks for it.
    max_cached = 4096

    def __init__(self, client: LLMClient, *, model: str, dimensions: int | None = None) -> None:
        super().__init__(cache=None)
        self.client = client
        self.model = model
        self.dimensions = dimensions
        self._vectors: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()

    def __repr__(self) -> str:
        return f"RaftkitRagasEmbedding(model={self.model!r})"

    async def prefetch(self, texts: Sequence[str]) -> None:
        """Embed (in one call) those of ``texts`` not cached yet."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            matrix = await self.client.embed(missing, model=self.model, dimensions=self.dimensions)
            for text, row in zip(missing, matrix, strict=True):
                self._vectors[text] = np.asarray(row, dtype=np.float32)
        for text in texts:
            if text in self._vectors:
                self._vectors.move_to_end(text)
        while len(self._vectors) > self.max_cached:
            self._vectors.popitem(last=False)

    async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        await self.prefetch(texts)
        return [self._lookup(t) for t in texts]

    async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
        return (await self.aembed_texts([text]))[0]

    def _lookup(self, text: str) -> list[float]:
        vector: list[float] = self._vectors[text].tolist()
        return vector

    def embed_text(self, text: str, **kwargs: Any) -> list[float]:
        try:
            return self._lookup(text)
        except KeyError:
            raise UsageError(
                "a ragas metric asked for an embedding synchronously for a text raftkit did not "
                "prefetch; score through raftkit's RagasMetric, not the ragas object directly"
            ) from None

    def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        return [self.embed_text(t) for t in texts]


def _response(sample: Sample, full: bool) -> str:
    return sample.response if full else sample.final_answer


class RagasMetric:
    """A :class:`~raftkit.evaluate.Metric` that scores through one ragas collection metric.

    A ``nan`` from ragas, or an input ragas refuses (no contexts, an empty answer) or fails on,
    is returned as ``nan`` ("not measured") with the reason as the note. raftkit's own errors
    (API failures, usage mistakes) propagate for the runner to handle.
    """

    higher_is_better: bool | None = True

    def __init__(
        self,
        name: str,
        metric: Any,
        inputs: Callable[[Sample], dict[str, Any]],
        *,
        description: str = "",
        embeddings: RaftkitRagasEmbedding | None = None,
        prefetch: Callable[[Sample], list[str]] | None = None,
    ) -> None:
        self.name = name
        self.metric = metric
        self.description = description
        self._inputs = inputs
        self._embeddings = embeddings
        self._prefetch = prefetch

    def __repr__(self) -> str:
        return f"RagasMetric({self.name!r})"

    async def score(self, sample: Sample) -> Score:
        kwargs = self._inputs(sample)
        if self._embeddings is not None and self._prefetch is not None:
            await self._embeddings.prefetch(self._prefetch(sample))
        try:
            result = await self.metric.ascore(**kwargs)
            value = float(result.value)
        except RaftkitError:
            raise
        except Exception as exc:  # ragas' own validation or parsing: this sample only
            return Score(math.nan, note=f"not measured: ragas {self.name}: {exc}")
        if math.isnan(value):
            return Score(math.nan, note=f"not measured: ragas {self.name} returned nan")
        return Score(value)


_DESCRIPTIONS = {
    "faithfulness": "ragas: share of the answer's claims supported by the documents shown",
    "answer_relevancy": "ragas: how well questions regenerated from the answer match the question",
    "semantic_similarity": "ragas: cosine similarity of answer and reference embeddings",
    "answer_correctness": "ragas: claim-level F1 against the reference, blended with similarity",
}


def build_metrics(
    names: Sequence[str],
    client: LLMClient,
    *,
    model: str,
    embedding_model: str | None,
    embedding_client: LLMClient | None = None,
    temperature: float | None = 0.0,
    max_tokens: int | None = 1024,
    seed: int | None = None,
    mode: StructuredMode | None = None,
    dimensions: int | None = None,
    strictness: int = 3,
    full_response: bool = False,
) -> list[RagasMetric]:
    """The named ragas metrics, wired to raftkit's client (see ``ragas_adapter.ragas_metrics``)."""
    llm = RaftkitRagasLLM(
        client, model=model, temperature=temperature, max_tokens=max_tokens, seed=seed, mode=mode
    )
    embeddings: RaftkitRagasEmbedding | None = None
    if embedding_model is not None:
        embeddings = RaftkitRagasEmbedding(
            embedding_client or client, model=embedding_model, dimensions=dimensions
        )

    def need_embeddings(metric: str) -> RaftkitRagasEmbedding:
        if embeddings is None:
            raise UsageError(f"the ragas metric {metric!r} needs embeddings: pass embedding_model")
        return embeddings

    def answer(s: Sample) -> str:
        return _response(s, full_response)

    built: list[RagasMetric] = []
    for name in names:
        if name == "faithfulness":
            built.append(
                RagasMetric(
                    name,
                    Faithfulness(llm=llm),
                    lambda s: {
                        "user_input": s.question,
                        "response": answer(s),
                        "retrieved_contexts": list(s.contexts),
                    },
                    description=_DESCRIPTIONS[name],
                )
            )
        elif name == "answer_relevancy":
            built.append(
                RagasMetric(
                    name,
                    AnswerRelevancy(
                        llm=llm, embeddings=need_embeddings(name), strictness=strictness
                    ),
                    lambda s: {"user_input": s.question, "response": answer(s)},
                    description=_DESCRIPTIONS[name],
                )
            )
        elif name == "semantic_similarity":
            built.append(
                RagasMetric(
                    name,
                    SemanticSimilarity(embeddings=need_embeddings(name)),
                    lambda s: {"reference": s.reference, "response": answer(s)},
                    description=_DESCRIPTIONS[name],
                    embeddings=embeddings,
                    # ragas replaces an empty text with one space before embedding it
                    prefetch=lambda s: [s.reference or " ", answer(s) or " "],
                )
            )
        elif name == "answer_correctness":
            built.append(
                RagasMetric(
                    name,
                    AnswerCorrectness(llm=llm, embeddings=need_embeddings(name)),
                    lambda s: {
                        "user_input": s.question,
                        "response": answer(s),
                        "reference": s.reference,
                    },
                    description=_DESCRIPTIONS[name],
                )
            )
        else:
            raise UsageError(
                f"unknown ragas metric {name!r}; known: {', '.join(sorted(_DESCRIPTIONS))}"
            )
    return built
