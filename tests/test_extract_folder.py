"""The folder walk: dispatch by suffix and magic bytes, stable ids, bad files reported."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pymupdf as _pymupdf
import pytest

import raftkit.chunking
import raftkit.extract
from data_files import FOILBOARD
from raftkit.errors import ExtractionError, UsageError
from raftkit.extract import (
    Extractor,
    ExtractorDispatch,
    PdfExtractor,
    TextExtractor,
    extract_folder,
    iter_documents,
)
from raftkit.types import Document

# PyMuPDF's annotations are partial: use it as an untyped module
pymupdf: Any = _pymupdf

pytestmark = pytest.mark.anyio

SMALL_PDF = FOILBOARD


@pytest.mark.parametrize("module", [raftkit.extract, raftkit.chunking])
def test_all_matches_public_names(module: object) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith(module.__name__)  # type: ignore[attr-defined]
        and not isinstance(value, type(raftkit))
    }
    assert public <= set(module.__all__)  # type: ignore[attr-defined]
    assert all(hasattr(module, name) for name in module.__all__)  # type: ignore[attr-defined]


def make_tree(root: Path) -> None:
    (root / "sports").mkdir(parents=True)
    (root / "notes").mkdir()
    (root / ".hidden-dir").mkdir()
    shutil.copy(SMALL_PDF, root / "sports" / SMALL_PDF.name)
    (root / "sports" / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a PDF")
    (root / "sports" / "zero.pdf").write_bytes(b"")
    (root / "notes" / "a.md").write_text("# Notes\n\nBoards float.")
    (root / "notes" / "b.txt").write_bytes("Wing foil 翼板".encode("utf-16"))
    (root / "notes" / "latin1.txt").write_bytes("Planche à voile".encode("latin-1"))
    (root / "notes" / "records.jsonl").write_text(
        json.dumps({"text": "First record."}) + "\n{oops\n" + json.dumps({"text": "Third."})
    )
    (root / "notes" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n....")
    (root / ".secret.txt").write_text("hidden file")
    (root / ".hidden-dir" / "inside.txt").write_text("hidden folder")
    # a PDF without a suffix is found by its magic bytes
    with pymupdf.open() as doc:
        doc.new_page().insert_text((72, 72), "Kite without suffix.")
        doc.save(root / "sports" / "kite-scan")


async def test_walk_yields_documents_in_order_and_reports_bad_files(tmp_path: Path) -> None:
    make_tree(tmp_path)
    seen: list[ExtractionError] = []
    walk = iter_documents(tmp_path, on_error=seen.append)
    async with walk:
        documents = [document async for document in walk]
    assert [d.id for d in documents] == [
        "notes/a.md",
        "notes/b.txt",
        "notes/records.jsonl#1",
        "notes/records.jsonl#3",
        "sports/Foilboard - Wikipedia.pdf",
        "sports/kite-scan",
    ]
    assert documents[1].text == "Wing foil 翼板"
    assert "Kite without suffix." in documents[-1].text
    assert documents[-1].pages[0].page == 1
    report = walk.report
    assert report.errors == seen
    assert [Path(e.path).name for e in report.errors] == [
        "latin1.txt",
        "records.jsonl",
        "broken.pdf",
        "zero.pdf",
    ]
    assert "line 2: invalid JSON" in report.errors[1].reason
    assert report.skipped == ["notes/image.png"]
    assert report.files == 9
    assert report.documents == 6
    assert not report.ok
    summary = report.summary()
    assert "6 documents from 9 files, 4 errors" in summary
    assert "zero.pdf: empty file (0 bytes)" in summary


async def test_extract_folder_collects_everything_and_is_deterministic(tmp_path: Path) -> None:
    make_tree(tmp_path)
    first, report = await extract_folder(tmp_path)
    second, _ = await extract_folder(tmp_path)
    assert first == second
    assert len(report.errors) == 4


async def test_walk_of_a_single_file_and_custom_extractors(tmp_path: Path) -> None:
    make_tree(tmp_path)
    documents, report = await extract_folder(tmp_path / "notes" / "a.md")
    assert [d.id for d in documents] == ["a.md"]
    assert report.files == 1
    # only the extractors given are used: everything else is skipped, not an error
    documents, report = await extract_folder(tmp_path / "notes", extractors=[TextExtractor()])
    assert [d.id for d in documents] == ["a.md", "b.txt"]
    assert report.skipped == ["image.png", "records.jsonl"]


async def test_walk_stops_early_and_closes(tmp_path: Path) -> None:
    make_tree(tmp_path)
    walk = iter_documents(tmp_path)
    async with walk:
        async for document in walk:
            assert document.id == "notes/a.md"
            break
    assert walk.report.documents == 1
    with pytest.raises(StopAsyncIteration):
        await anext(walk)


async def test_symlink_loops_are_visited_once(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "note.txt").write_text("Bats fly.")
    (tmp_path / "a" / "loop").symlink_to(tmp_path, target_is_directory=True)
    documents, report = await extract_folder(tmp_path)
    assert [d.id for d in documents] == ["a/note.txt"]
    assert report.ok


async def test_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot walk"):
        await extract_folder(tmp_path / "nowhere")


async def test_user_extractor_plugs_in(tmp_path: Path) -> None:
    class CsvExtractor:
        def supports(self, path: Path) -> bool:
            return path.suffix == ".csv"

        async def extract(self, path: Path, *, doc_id: str) -> AsyncIterator[Document]:
            rows = (await anyio.Path(path).read_text()).splitlines()
            for number, row in enumerate(rows, start=1):
                yield Document(id=f"{doc_id}#{number}", source=str(path), text=row)

    (tmp_path / "t.csv").write_text("a,b\nc,d\n")
    csv = CsvExtractor()
    assert isinstance(csv, Extractor)
    dispatch = ExtractorDispatch([csv, PdfExtractor()])
    assert dispatch.supports(tmp_path / "t.csv")
    assert not dispatch.supports(tmp_path / "t.txt")
    documents, _ = await extract_folder(tmp_path, extractors=dispatch)
    assert [(d.id, d.text) for d in documents] == [("t.csv#1", "a,b"), ("t.csv#2", "c,d")]
    (tmp_path / "x.bin").write_bytes(b"\x00\x01")
    with pytest.raises(ExtractionError, match="unsupported file type"):
        [d async for d in dispatch.extract(tmp_path / "x.bin", doc_id="x.bin")]
