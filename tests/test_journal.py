from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from raftkit.errors import DatasetError, ResumeMismatchError
from raftkit.journal import Journal

pytestmark = pytest.mark.anyio


async def test_put_then_get_survives_reopen(tmp_path: Path) -> None:
    async with Journal(tmp_path).open() as journal:
        await journal.put("k1", {"q": "蝙蝠"}, {"text": "会飞"})
        await journal.put("k2", {"q": 2}, {"text": "two"})
        await journal.put("k1", {"q": "again"}, {"text": "ignored: first write wins"})
        assert await journal.get("k1") == {"text": "会飞"}
    async with Journal(tmp_path).open() as again:
        assert len(again) == 2
        assert await again.get("k2") == {"text": "two"}
        assert await again.get("missing") is None
        assert again.replayed == 1


async def test_torn_last_line_is_cut_and_appends_stay_valid(tmp_path: Path) -> None:
    async with Journal(tmp_path).open() as journal:
        await journal.put("a", {}, {"n": 1})
    with (tmp_path / "journal.jsonl").open("ab") as f:
        f.write(b'{"key":"b","request":{},"resp')  # the process died mid-write
    async with Journal(tmp_path).open() as journal:
        assert "b" not in journal
        await journal.put("c", {}, {"n": 3})
    lines = (tmp_path / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a", "c"]


async def test_corrupt_middle_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "journal.jsonl").write_text('{"key":"a","response":{}}\nnot json\n{"key":"c"}\n')
    with pytest.raises(DatasetError, match=r"journal\.jsonl:2"):
        Journal(tmp_path).open()


def test_resume_with_other_settings_says_what_differs(tmp_path: Path) -> None:
    Journal(tmp_path).open({"p": 0.8, "k": 4, "model": "gpt-4o"}).close()
    Journal(tmp_path).open({"k": 4, "model": "gpt-4o", "p": 0.8}).close()  # same, other order
    with pytest.raises(ResumeMismatchError) as info:
        Journal(tmp_path).open({"p": 1.0, "k": 4, "model": "gpt-4o"})
    assert info.value.differences == {"p": (0.8, 1.0)}
    assert "p: run has 0.8, now given 1.0" in str(info.value)


async def test_durable_mode_fsyncs(tmp_path: Path) -> None:
    async with Journal(tmp_path, durable=True).open() as journal:
        await journal.put("x", {}, {"ok": True})
        assert journal.recorded == 1


async def test_a_response_that_arrived_is_written_even_under_cancellation(
    tmp_path: Path,
) -> None:
    with Journal(tmp_path).open() as journal:
        with anyio.CancelScope() as scope:
            scope.cancel()  # the run is being stopped (Ctrl-C, a budget stop)
            await journal.put("k", {"q": 1}, {"a": 1})
        assert await journal.get("k") == {"a": 1}
    with Journal(tmp_path).open() as reopened:
        assert "k" in reopened


def test_simulated_is_recorded_not_compared_and_stays_true(tmp_path: Path) -> None:
    Journal(tmp_path).open({"seed": 1, "simulated": False}).close()
    journal = Journal(tmp_path).open({"seed": 1, "simulated": True})  # not a mismatch
    journal.close()
    settings = json.loads((tmp_path / "settings.json").read_text(encoding="utf-8"))
    assert settings["simulated"] is True
    Journal(tmp_path).open({"seed": 1, "simulated": False}).close()
    settings = json.loads((tmp_path / "settings.json").read_text(encoding="utf-8"))
    assert settings["simulated"] is True, "once simulated, always said"
    with pytest.raises(ResumeMismatchError, match="endpoint") as refused:
        Journal(tmp_path).open({"seed": 1, "endpoint": {"provider": "openai"}})
    assert "--out NEW_DIR" in str(refused.value)
    assert "per endpoint" in str(refused.value)
