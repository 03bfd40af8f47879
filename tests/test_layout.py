"""The modules the renovation added or moved: each declares what it exports, and old import
paths of moved names still work."""

from __future__ import annotations

import importlib

import pytest

_MODULES = [
    "raftkit.batch",
    "raftkit.batch.requests",
    "raftkit.batch.rounds",
    "raftkit.batch.runner",
    "raftkit.dataset.manifest",
    "raftkit.dataset.preference",
    "raftkit.eval_run",
    "raftkit.evaluate.abstention",
    "raftkit.evaluate.endpoints",
    "raftkit.evaluate.grid",
    "raftkit.evaluate.retrieved",
    "raftkit.finetune.azure_tiers",
    "raftkit.finetune.inventory",
    "raftkit.finetune.lifecycle",
    "raftkit.finetune_run",
    "raftkit.grouped_split",
    "raftkit.llm.azure_management",
    "raftkit.llm.files",
    "raftkit.llm.models",
    "raftkit.llm.polling",
    "raftkit.pipeline",
    "raftkit.pipeline.config",
    "raftkit.pipeline.feed",
    "raftkit.pipeline.output",
    "raftkit.pipeline.plan",
    "raftkit.pipeline.plugins",
    "raftkit.pipeline.run",
    "raftkit.preference_pairs",
    "raftkit.reference_data",
    "raftkit.resources",
    "raftkit.retrieval.encoder_training",
    "raftkit.retrieval.measure",
    "raftkit.run_dir",
    "raftkit.stats",
    "raftkit.testing.scripted",
]


@pytest.mark.parametrize("name", _MODULES)
def test_each_module_exports_exactly_its_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    assert all(hasattr(module, n) for n in exported)
    own = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and getattr(v, "__module__", None) == name
    }
    assert own <= set(exported), f"public but not in __all__: {sorted(own - set(exported))}"


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("raftkit.evaluate.stats", "raftkit.stats", "paired_bootstrap"),
        ("raftkit.evaluate", "raftkit.stats", "Comparison"),
        ("raftkit.dataset.split", "raftkit.grouped_split", "split_groups"),
        ("raftkit.dataset", "raftkit.grouped_split", "SplitReport"),
        ("raftkit.finetune", "raftkit.llm.polling", "PollPolicy"),
        ("raftkit.finetune", "raftkit.llm.azure_management", "AzureManagementClient"),
        ("raftkit.finetune", "raftkit.llm.azure_management", "AzureAccount"),
        ("raftkit.finetune", "raftkit.llm.files", "UploadedFile"),
        ("raftkit.finetune", "raftkit.errors", "WaitTimeoutError"),
        ("raftkit.finetune", "raftkit.errors", "FileRejectedError"),
        ("raftkit.retrieval", "raftkit.retrieval.measure", "evaluate_retrieval"),
        ("raftkit.retrieval", "raftkit.retrieval.encoder_training", "finetune_bi_encoder"),
        ("raftkit.pipeline", "raftkit.pipeline.run", "RaftPipeline"),
        ("raftkit.pipeline", "raftkit.pipeline.config", "default_chunker"),
    ],
)
def test_moved_names_are_still_importable_where_they_were(old: str, new: str, name: str) -> None:
    assert getattr(importlib.import_module(old), name) is getattr(
        importlib.import_module(new), name
    )


def test_the_old_chunking_embedder_name_warns() -> None:
    import raftkit.chunking

    with pytest.warns(DeprecationWarning, match="EmbedFunction"):
        assert raftkit.chunking.Embedder is raftkit.chunking.EmbedFunction
