"""Evaluation with the retriever in the loop: stored contexts, hit@k, the retriever × model grid."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from raftkit.errors import InputError, UsageError
from raftkit.evaluate import (
    BUILTIN_METRICS,
    ModelSpec,
    RaftEvaluator,
    RetrievedContexts,
    Retriever,
    abstention_metrics,
    documents_for,
    render_html,
    render_markdown,
    retrieve_contexts,
)
from raftkit.evaluate.report import EvaluationReport
from raftkit.llm import ChatResponse
from raftkit.testing.scripted import Call, ScriptedClient
from raftkit.types import DEFAULT_REFUSAL_ANSWER, ContextDocument, RaftExample, Usage

pytestmark = pytest.mark.anyio

# 24 facts, one chunk each, plus filler chunks no question is about
_WORDS = [
    *("red", "blue", "green", "gold", "iron", "wood", "salt", "milk", "rice", "corn", "silk"),
    *("wool", "jade", "onyx", "ruby", "opal", "tin", "lead", "zinc", "clay", "sand", "snow"),
    *("ice", "fog"),
]
_FACTS = {
    f"c{i}": (f"What is item {i}?", f"Item {i} is a {word}.", word) for i, word in enumerate(_WORDS)
}
_CHUNKS = {cid: text for cid, (_, text, _) in _FACTS.items()} | {
    f"f{j}": f"Filler text number {j} about nothing." for j in range(6)
}


def _examples() -> list[RaftExample]:
    return [
        RaftExample(
            id=f"ex-{cid}",
            question_id=f"q-{cid}",
            question=question,
            chunk_id=cid,
            document_id="d",
            documents=[ContextDocument(chunk_id=cid, position=0, is_oracle=True, text=text)],
            oracle_present=True,
            cot_answer=f"##begin_quote##{text}##end_quote## <ANSWER>: {word}",
            final_answer=word,
            question_type="factoid" if i % 2 else "lookup",
        )
        for i, (cid, (question, text, word)) in enumerate(_FACTS.items())
    ]


class FakeRetriever:
    """Finds a question's own chunk (``good``) or only filler (``poor``, except every fourth
    question); counts the queries it is asked."""

    def __init__(self, name: str, *, good: bool) -> None:
        self._name = name
        self.good = good
        self.queries: list[str] = []

    @property
    def name(self) -> str:
        return self._name

    async def search(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        self.queries.extend(queries)
        ranked = []
        for query in queries:
            own = "c" + re.findall(r"\d+", query)[0]
            found = self.good or int(own[1:]) % 4 == 0
            ids = ([own] if found else []) + [f"f{j}" for j in range(k)]
            ranked.append([(cid, 1.0 - 0.1 * r) for r, cid in enumerate(ids[:k])])
        return ranked


async def test_contexts_are_stored_per_question_and_not_searched_again(
    tmp_path: Path, anyio_backend: str
) -> None:
    store = tmp_path / "retrieved" / "good.jsonl"
    examples = _examples()
    retriever = FakeRetriever("good", good=True)
    assert isinstance(retriever, Retriever)
    first = await retrieve_contexts(retriever, examples[:10], _CHUNKS, k=3, store=store)
    assert len(retriever.queries) == 10
    assert first.setting == "retrieved:good"
    docs = first.documents(examples[0])
    assert [(d.chunk_id, d.position, d.is_oracle) for d in docs] == [
        ("c0", 0, True),
        ("f0", 1, False),
        ("f1", 2, False),
    ]
    assert docs[0].text == _CHUNKS["c0"]
    assert all(first.hit(e) for e in examples[:10])

    # a resumed evaluation searches only the questions not stored yet
    again = await retrieve_contexts(retriever, examples, _CHUNKS, k=3, store=store)
    assert len(retriever.queries) == 10 + len(examples) - 10
    assert again.contexts["ex-c0"] == first.contexts["ex-c0"]
    assert len(store.read_text(encoding="utf-8").splitlines()) == len(examples)
    # nothing new to search
    await retrieve_contexts(retriever, examples, _CHUNKS, k=3, store=store)
    assert len(retriever.queries) == len(examples)
    # another k is another search (stored beside the old one)
    await retrieve_contexts(retriever, examples[:2], _CHUNKS, k=5, store=store)
    assert len(retriever.queries) == len(examples) + 2


async def test_a_torn_store_is_repaired_and_a_bad_one_refused(
    tmp_path: Path, anyio_backend: str
) -> None:
    store = tmp_path / "r.jsonl"
    examples = _examples()[:4]
    retriever = FakeRetriever("good", good=True)
    await retrieve_contexts(retriever, examples, _CHUNKS, k=2, store=store)
    lines = store.read_text(encoding="utf-8").splitlines(keepends=True)
    store.write_text("".join(lines[:3]) + lines[3][:20], encoding="utf-8")  # killed mid-line
    await retrieve_contexts(retriever, examples, _CHUNKS, k=2, store=store)
    assert retriever.queries[4:] == [examples[3].question]
    assert len(store.read_text(encoding="utf-8").splitlines()) == 4
    await retrieve_contexts(retriever, examples, _CHUNKS, k=2, store=store)  # reads cleanly

    store.write_text("not json\n" + "".join(lines), encoding="utf-8")
    with pytest.raises(InputError, match=r"r\.jsonl, line 1"):
        await retrieve_contexts(retriever, examples, _CHUNKS, k=2, store=store)


async def test_stored_chunks_must_be_in_the_corpus(tmp_path: Path, anyio_backend: str) -> None:
    store = tmp_path / "r.jsonl"
    await retrieve_contexts(
        FakeRetriever("good", good=True), _examples(), _CHUNKS, k=2, store=store
    )
    smaller = {k: v for k, v in _CHUNKS.items() if k != "f0"}
    with pytest.raises(UsageError, match="'f0', which is not in the corpus"):
        await retrieve_contexts(
            FakeRetriever("good", good=True), _examples(), smaller, k=2, store=store
        )
    with pytest.raises(UsageError, match="at least 1"):
        await retrieve_contexts(FakeRetriever("good", good=True), _examples(), _CHUNKS, k=0)


def _generator(style: str) -> ScriptedClient:
    """``tuned`` answers from an oracle-looking document and refuses without one; ``base``
    answers the first document's last word, never refusing."""

    def respond(call: Call) -> ChatResponse:
        docs = re.findall(r"<DOCUMENT>(.*?)</DOCUMENT>", call.prompt)
        facts = [d for d in docs if d.startswith("Item")]
        if style == "tuned":
            answer = facts[0].split()[-1].rstrip(".") if facts else DEFAULT_REFUSAL_ANSWER
        else:
            answer = docs[0].split()[-1].rstrip(".")
        text = f"##begin_quote##{docs[0]}##end_quote## <ANSWER>: {answer}"
        return ChatResponse(text=text, model=call.model, usage=Usage(completion_tokens=5))

    return ScriptedClient(respond)


async def _grid_report() -> tuple[EvaluationReport, list[RetrievedContexts]]:
    examples = _examples()
    contexts = [
        await retrieve_contexts(FakeRetriever(name, good=good), examples, _CHUNKS, k=3)
        for name, good in (("base", False), ("adapter:tuned", True))
    ]
    evaluator = RaftEvaluator(
        [*BUILTIN_METRICS, *abstention_metrics()], settings=contexts, n_resamples=2000
    )
    report = await evaluator.evaluate(
        examples,
        [ModelSpec("base", _generator("base"), "m"), ModelSpec("tuned", _generator("tuned"), "m")],
    )
    return report, contexts


async def test_the_retriever_by_generator_grid(anyio_backend: str) -> None:
    report, contexts = await _grid_report()
    assert report.settings == ["retrieved:base", "retrieved:adapter:tuned"]
    shown = documents_for(_examples()[1], contexts[0])
    assert shown is not None
    assert shown[0].chunk_id == "f0"

    hits = {r.retriever: r for r in report.retrieval}
    assert (hits["base"].k, hits["base"].hit_rate.mean) == (3, 6 / 24)  # every fourth question
    assert hits["adapter:tuned"].hit_rate.mean == 1.0
    assert hits["base"].versus_baseline is None
    better = hits["adapter:tuned"].versus_baseline
    assert better is not None
    assert better.verdict == "better"

    # oracle_shown follows the retriever, whichever model answered
    oracle = {(r.setting, r.model, r.example_id): r.oracle_shown for r in report.results}
    assert oracle[("retrieved:base", "tuned", "ex-c1")] is False
    assert oracle[("retrieved:base", "base", "ex-c4")] is True

    grid = {g.metric: g for g in report.grid}
    assert set(grid) == {m.name for m in report.metrics}
    f1 = grid["token_f1"]
    assert (f1.baseline_retriever, f1.baseline_model) == ("base", "base")
    cells = {(c.retriever, c.model): c for c in f1.cells}
    assert len(cells) == 4
    assert cells[("base", "base")].versus_baseline is None
    both = cells[("adapter:tuned", "tuned")]
    assert both.score.mean == 1.0
    assert both.versus_baseline is not None
    assert both.versus_baseline.verdict == "better"
    # the tuned generator alone, behind the poor retriever, refuses where the oracle is missing
    refusals = {(c.retriever, c.model): c.score for c in grid["refusal_without_oracle"].cells}
    assert refusals[("base", "tuned")].mean == 1.0
    assert refusals[("base", "base")].mean == 0.0
    false_refusals = grid["false_refusal_rate"].cells
    assert all(c.score.mean == 0.0 for c in false_refusals)

    # every metric is also broken down by question type inside each retrieved setting
    assert report.summary("token_f1", "retrieved:adapter:tuned", question_type="factoid")


async def test_the_grid_is_rendered(anyio_backend: str) -> None:
    report, _ = await _grid_report()
    markdown = render_markdown(report)
    assert "## Retriever in the loop" in markdown
    assert "| adapter:tuned | 3 | 1.000 |" in markdown
    assert "### token_f1: retriever × model (mean, 95% CI)" in markdown
    assert "| retriever | base | tuned |" in markdown
    assert "adapter:tuned + tuned is better than base + base on token_f1" in markdown
    assert "## Setting: retrieved:base" in markdown
    assert "the top-k chunks the retriever 'base' returned" in markdown
    html = render_html(report)
    assert "<h2>Retriever in the loop</h2>" in html
    assert "retriever \\ model" in html
    again = EvaluationReport.model_validate_json(report.model_dump_json())
    assert again.grid == report.grid
    assert again.retrieval == report.retrieval


def test_a_single_retriever_has_hit_rate_but_no_grid() -> None:
    from raftkit.evaluate import MetricInfo, QuestionResult, compare

    results = [
        QuestionResult(
            setting="retrieved:base",
            model=model,
            example_id=f"e{i}",
            question_id=f"q{i}",
            question="q",
            reference="r",
            oracle_shown=i % 2 == 0,
            scores={"m": 1.0},
        )
        for i in range(10)
        for model in ("a", "b")
    ]
    report = compare(results, [MetricInfo(name="m")], baseline="a", n_resamples=200)
    assert [r.hit_rate.mean for r in report.retrieval] == [0.5]
    assert report.retrieval[0].k is None
    assert report.grid == []
