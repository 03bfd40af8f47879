"""RunDir: every path of a run directory, from one place."""

from __future__ import annotations

import os
from pathlib import Path

from raftkit.journal import Journal
from raftkit.run_dir import RunDir


def test_the_layout_of_a_run_directory(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    root = tmp_path / "run"
    assert run.root == root
    assert os.fspath(run) == str(root)
    assert Path(run) == root
    assert run.settings == root / "settings.json"
    assert run.journal == root / "journal.jsonl"
    assert run.chunks == root / "chunks.jsonl"
    assert run.examples == root / "examples.jsonl"
    assert run.rejections == root / "rejections.jsonl"
    assert (run.report_json, run.report_md) == (root / "report.json", root / "report.md")
    assert run.batch_state("teacher") == root / "teacher.batch.json"
    assert run.dataset == root / "dataset"
    assert run.dataset_file("chat", "train") == root / "dataset" / "chat" / "train.jsonl"
    assert run.finetune_state == root / "finetune.json"
    assert run.eval == root / "eval"
    assert run.split_report == root / "dataset" / "split.json"
    assert run.export_manifest == root / "dataset" / "export.json"
    assert run.finetune == root / "finetune"
    assert run.finetune_report_md == root / "finetune" / "report.md"
    assert run.training_curve_csv == root / "finetune" / "training-curve.csv"
    assert run.training_curve_svg == root / "finetune" / "training-curve.svg"
    assert run.local_training == root / "finetune" / "local"
    assert run.retrieved_contexts("base") == root / "eval" / "retrieved" / "base.jsonl"
    # a retriever's name (a path, a colon) becomes a safe file name
    assert run.retrieved_contexts("adapter:../x y").name == "adapter_.._x_y.jsonl"
    assert run.retrieved_contexts("adapter:../x y").parent == root / "eval" / "retrieved"
    retrieval = root / "retrieval"
    assert run.retrieval == retrieval
    assert run.pairs == retrieval / "pairs.jsonl"
    assert run.pair_split == retrieval / "split.json"
    assert run.embedding_cache == retrieval / "cache"
    assert run.adapter("mlp") == retrieval / "adapter-mlp.npz"
    assert (run.bi_encoder, run.cross_encoder) == (
        retrieval / "bi-encoder",
        retrieval / "cross-encoder",
    )
    assert run.retrieval_report_md == retrieval / "report.md"
    assert run.retrieval_report_html == retrieval / "report.html"
    assert run.retrieval_report_json == retrieval / "report.json"
    assert run.lock_file == root / "run.lock"
    assert run.partial_examples == root / "examples.jsonl.partial"
    assert RunDir.temporary(run.chunks) == root / "chunks.jsonl.tmp"
    assert not run.simulated(), "no settings.json: nothing says it was simulated"
    assert not root.exists(), "naming paths creates nothing"
    assert RunDir(root) == run
    assert len({RunDir(root), run}) == 1
    assert repr(run) == f"RunDir({str(root)!r})"


def test_the_journal_writes_where_the_run_directory_says(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    with Journal(run).open({"seed": 1}) as journal:
        assert journal.path == run.journal
    assert run.journal.exists()
    assert run.settings.exists()
