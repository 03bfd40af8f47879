"""Export formats of the open trainers: TRL messages and prompt/completion, ShareGPT, Alpaca,
the provenance sidecar and LLaMA-Factory's dataset_info.json — each loaded with HF datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from raftkit.dataset import prepare_dataset, read_examples, split_examples
from students_support import EXAMPLES

SYSTEM = "Answer from the documents."
FORMATS = ["chat", "messages", "prompt-completion", "sharegpt", "alpaca"]
PARTS = ("train", "validation", "test")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
async def exported(tmp_path: Path) -> Path:
    out = tmp_path / "dataset"
    prepared = await prepare_dataset(EXAMPLES, out, formats=FORMATS, system_prompt=SYSTEM)
    assert set(prepared.files) == set(FORMATS)
    return out


@pytest.mark.anyio
async def test_every_format_carries_the_chat_rows_in_the_chat_split(
    anyio_backend: str, exported: Path
) -> None:
    for part in PARTS:
        chat = [row["messages"] for row in _jsonl(exported / "chat" / f"{part}.jsonl")]
        assert [r["messages"] for r in _jsonl(exported / "messages" / f"{part}.jsonl")] == chat
        pairs = _jsonl(exported / "prompt-completion" / f"{part}.jsonl")
        assert [r["prompt"] + r["completion"] for r in pairs] == chat
        sharegpt = _jsonl(exported / "sharegpt" / f"{part}.jsonl")
        assert [[t["from"] for t in r["conversations"]] for r in sharegpt] == [
            ["system", "human", "gpt"]
        ] * len(chat)
        assert [[t["value"] for t in r["conversations"]] for r in sharegpt] == [
            [m["content"] for m in messages] for messages in chat
        ]
        alpaca = _jsonl(exported / "alpaca" / f"{part}.jsonl")
        assert [(r["system"], r["instruction"], r["input"], r["output"]) for r in alpaca] == [
            (SYSTEM, m[1]["content"], "", m[2]["content"]) for m in chat
        ]


@pytest.mark.anyio
async def test_provenance_sidecar_lines_up_with_the_rows(
    anyio_backend: str, exported: Path
) -> None:
    split = split_examples(read_examples(EXAMPLES), seed=0)
    provenance = _jsonl(exported / "provenance.jsonl")
    expected = [
        (part, index, e.id, e.chunk_id, e.document_id, e.oracle_present)
        for part, examples in split.parts().items()
        for index, e in enumerate(examples)
    ]
    assert [
        (p["part"], p["row"], p["example_id"], p["chunk_id"], p["document_id"], p["oracle_present"])
        for p in provenance
    ] == expected
    # grouped by chunk: no chunk has rows in two parts
    parts_of: dict[str, set[str]] = {}
    for p in provenance:
        parts_of.setdefault(p["chunk_id"], set()).add(p["part"])
    assert all(len(parts) == 1 for parts in parts_of.values())


@pytest.mark.anyio
async def test_dataset_info_describes_every_file(anyio_backend: str, exported: Path) -> None:
    info = json.loads((exported / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(info) == {
        f"raft_{fmt}_{part}" for fmt in ("chat", "messages", "sharegpt", "alpaca") for part in PARTS
    }
    for entry in info.values():
        rows = _jsonl(exported / entry["file_name"])
        columns = entry["columns"]
        assert all(column in rows[0] for column in columns.values())
        if entry["formatting"] == "sharegpt":
            turns = rows[0][columns["messages"]]
            tags = entry["tags"]
            assert {t[tags["role_tag"]] for t in turns} == {
                tags["system_tag"],
                tags["user_tag"],
                tags["assistant_tag"],
            }
            assert all(tags["content_tag"] in t for t in turns)


@pytest.mark.extra("datasets")
@pytest.mark.anyio
async def test_each_format_loads_with_hf_datasets(
    anyio_backend: str, exported: Path, tmp_path: Path
) -> None:
    import datasets

    for fmt in FORMATS[1:]:
        files = {part: str(exported / fmt / f"{part}.jsonl") for part in PARTS}
        loaded = datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path / "hf"))
        for part in PARTS:
            assert loaded[part].num_rows == len(_jsonl(exported / "chat" / f"{part}.jsonl"))
        first = loaded["train"][0]
        if fmt == "messages":
            assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
        if fmt == "alpaca":
            assert first["output"].rstrip().splitlines()[-1].startswith("<ANSWER>:")
