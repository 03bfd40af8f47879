"""The ``hf`` export is one DatasetDict, and ``--push-to-hub`` publishes it (the hub mocked)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from finetune_support import example
from raftkit.cli import main
from raftkit.dataset import push_hf_dataset, write_examples
from raftkit.errors import APIError

pytestmark = pytest.mark.extra("datasets")

TOKEN = "hf_secret_token_0123456789abcdef"


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    write_examples(run / "examples.jsonl", [example(n) for n in range(150)])
    return run


def test_the_hf_export_is_one_dataset_dict(tmp_path: Path) -> None:
    import datasets

    run = _run(tmp_path)
    assert main(["export", str(run), "--formats", "chat", "hf"]) == 0
    loaded = datasets.load_from_disk(str(run / "dataset" / "hf"))
    assert isinstance(loaded, datasets.DatasetDict)
    assert set(loaded) == {"train", "validation", "test"}
    chat = {
        part: len((run / "dataset" / "chat" / f"{part}.jsonl").read_text().splitlines())
        for part in ("train", "validation")
    }
    assert loaded["train"].num_rows == chat["train"]
    assert loaded["validation"].num_rows == chat["validation"]
    assert sum(d.num_rows for d in loaded.values()) == 150
    ids = [set(d["id"]) for d in loaded.values()]
    assert sum(len(i) for i in ids) == len(set().union(*ids)) == 150  # each example once
    assert "instruction" in loaded["train"].column_names  # the RAFT reference rows


class _Hub:
    """Stands in for the Hugging Face Hub: records what would have been pushed."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def push(self, dataset: Any, repo_id: str, **kwargs: Any) -> None:
        self.calls.append({"repo_id": repo_id, "parts": sorted(dataset), **kwargs})


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> _Hub:
    import datasets

    fake = _Hub()

    def push(self: Any, repo_id: str, **kwargs: Any) -> None:
        fake.push(self, repo_id, **kwargs)

    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", push)
    return fake


def test_push_to_hub_takes_the_token_from_the_environment_and_never_shows_it(
    tmp_path: Path,
    hub: _Hub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = _run(tmp_path)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    argv = ["export", str(run), "--push-to-hub", "me/raft-bats", "--private", "-vv"]
    assert main(argv) == 0
    assert hub.calls == [
        {
            "repo_id": "me/raft-bats",
            "parts": ["test", "train", "validation"],
            "token": TOKEN,
            "private": True,
        }
    ]
    captured = capsys.readouterr()
    assert "pushed to https://huggingface.co/datasets/me/raft-bats" in captured.out
    everything = captured.out + captured.err + caplog.text
    assert TOKEN not in everything
    assert (run / "dataset" / "hf" / "dataset_dict.json").is_file()  # hf added by itself


def test_a_failed_push_names_the_repository_and_hides_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import datasets

    def refuse(self: Any, repo_id: str, **kwargs: Any) -> None:
        raise PermissionError(f"403 Forbidden: token {kwargs['token']} cannot write {repo_id}")

    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", refuse)
    run = _run(tmp_path)
    assert main(["export", str(run), "--formats", "hf"]) == 0
    with pytest.raises(APIError) as caught:
        push_hf_dataset(run / "dataset" / "hf", "me/raft-bats", token=TOKEN)
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None
    assert "me/raft-bats" in str(caught.value)

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["export", str(run), "--push-to-hub", "me/raft-bats", "-v"]) == 3
    err = capsys.readouterr().err
    assert "raftkit export: " in err
    assert "me/raft-bats" in err
    assert TOKEN not in err
