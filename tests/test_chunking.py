"""Chunkers: offsets, overlap, size bounds, page spans and CJK, on corpus PDFs and Chinese text."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pymupdf as _pymupdf
import pytest

from data_files import CORPUS, DRACULAE, WAKEBOARDING
from raftkit.chunking import (
    AsyncChunker,
    Chunker,
    MarkdownChunker,
    SemanticChunker,
    TokenChunker,
    chunk_document,
    cosine_distances,
    markdown_sections,
    sentence_spans,
    token_windows,
)
from raftkit.errors import UsageError
from raftkit.extract import PdfExtractor
from raftkit.llm.tokens import estimate_tokens
from raftkit.types import Chunk, Document

# PyMuPDF's annotations are partial: use it as an untyped module
pymupdf: Any = _pymupdf

PDFS = [DRACULAE, WAKEBOARDING]

CHINESE = (
    "蝙蝠是翼手目动物的总称，是唯一能够真正飞行的哺乳动物。它们的前肢演化成了翼，"
    "翼由延长的指骨和皮膜构成。大多数蝙蝠在夜间活动，白天则倒挂在洞穴或树上休息。\n"
    "许多小型蝙蝠利用回声定位来寻找猎物：它们发出高频声波，再根据回声判断物体的位置！"
    "果蝠则主要依靠视觉和嗅觉觅食？吸血蝠以其他动物的血液为食；它们分布在美洲。"
) * 6


@pytest.fixture(scope="module")
def corpus_documents() -> list[Document]:
    return [PdfExtractor().extract_sync(p, doc_id=p.name) for p in PDFS]


@pytest.fixture(scope="module")
def chinese_document(tmp_path_factory: pytest.TempPathFactory) -> Document:
    path = tmp_path_factory.mktemp("zh") / "蝙蝠.pdf"
    with pymupdf.open() as doc:
        lines = [CHINESE[i : i + 22] for i in range(0, len(CHINESE), 22)]
        for first in range(0, len(lines), 30):
            page = doc.new_page(width=320, height=600)
            text = "\n".join(lines[first : first + 30])
            page.insert_text((20, 30), text, fontname="china-s", fontsize=12)
        doc.save(path)
    return PdfExtractor().extract_sync(path, doc_id="zh/蝙蝠.pdf")


def check_chunks(document: Document, chunks: Sequence[Chunk]) -> None:
    """The properties every chunker promises."""
    assert chunks
    for index, chunk in enumerate(chunks):
        assert document.text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip()
        assert chunk.index == index
        assert chunk.id == f"{document.id}#{index}"
        assert chunk.document_id == document.id
        if document.pages:
            assert chunk.page_start == document.page_of(chunk.start)
            assert chunk.page_end == document.page_of(chunk.end - 1)
            assert chunk.page_start is not None
            assert chunk.page_end is not None
            assert chunk.page_start <= chunk.page_end
        else:
            assert chunk.page_start is None
    starts = [c.start for c in chunks]
    assert starts == sorted(starts)
    # together the chunks cover every non-space character of the document
    covered = np.zeros(len(document.text), dtype=bool)
    for chunk in chunks:
        covered[chunk.start : chunk.end] = True
    missing = [ch for ch, c in zip(document.text, covered, strict=True) if not c]
    assert "".join(missing).strip() == ""


def latin_words_intact(document: Document, chunks: Sequence[Chunk]) -> None:
    for chunk in chunks:
        before = document.text[chunk.start - 1] if chunk.start else " "
        after = document.text[chunk.end] if chunk.end < len(document.text) else " "
        assert before.isspace() or not before.isalnum() or not chunk.text[0].isalnum()
        assert after.isspace() or not after.isalnum() or not chunk.text[-1].isalnum()


@pytest.mark.parametrize(("size", "overlap"), [(128, 16), (512, 64), (64, 0)])
def test_token_chunker_on_corpus_pdfs(
    corpus_documents: list[Document], size: int, overlap: int
) -> None:
    for document in corpus_documents:
        chunks = TokenChunker(size, overlap).chunk(document)
        check_chunks(document, chunks)
        latin_words_intact(document, chunks)
        assert all(estimate_tokens(c.text) <= size for c in chunks)
        # windows are filled: all but the last hold a good part of the budget
        assert all(estimate_tokens(c.text) >= size // 3 for c in chunks[:-1])
        for previous, current in itertools.pairwise(chunks):
            shared = max(0, previous.end - current.start)
            if overlap and estimate_tokens(previous.text.split()[-1]) <= overlap:
                assert shared > 0
                assert estimate_tokens(document.text[current.start : previous.end]) <= overlap
            else:
                assert shared == 0
        assert chunks[-1].page_end == len(document.pages)
        assert all(c.metadata == {"chunker": "token"} for c in chunks)


def test_token_chunker_prefers_sentence_ends(corpus_documents: list[Document]) -> None:
    document = corpus_documents[1]
    chunks = TokenChunker(256, 32).chunk(document)
    ends = [c.text[-1] for c in chunks[:-1]]
    # most windows end at a sentence end (or at a line end of a list or heading)
    at_sentence = sum(1 for e in ends if e in ".!?)]")
    assert at_sentence >= len(ends) * 0.6


def test_token_chunker_on_chinese_pdf(chinese_document: Document) -> None:
    assert "\n" not in chinese_document.text.split("。")[0]
    chunks = TokenChunker(size=60, overlap=12).chunk(chinese_document)
    check_chunks(chinese_document, chunks)
    assert all(estimate_tokens(c.text) <= 60 for c in chunks)
    assert len(chunks) >= len(CHINESE) // 60
    assert {c.page_start for c in chunks} >= {1, 2}
    # sentence ends are the preferred cut
    assert sum(c.text[-1] in "。！？；" for c in chunks[:-1]) >= (len(chunks) - 1) * 0.6
    for previous, current in itertools.pairwise(chunks):
        assert current.start < previous.end


def test_token_chunker_with_exact_style_counter(corpus_documents: list[Document]) -> None:
    # a non-additive counter (characters / 3, rounded up, on the whole text) still bounds size
    def counter(text: str) -> int:
        return -(-len(text) // 3)

    document = corpus_documents[0]
    chunks = TokenChunker(100, 10, counter=counter).chunk(document)
    check_chunks(document, chunks)
    assert all(counter(c.text) <= 100 for c in chunks)


def test_overlong_word_is_cut_only_when_it_must_be() -> None:
    url = "https://example.org/" + "x" * 300
    document = Document(id="d", source="d", text=f"See {url} for more. Bats fly.")
    chunks = TokenChunker(size=20, overlap=0).chunk(document)
    check_chunks(document, chunks)
    assert all(estimate_tokens(c.text) <= 20 for c in chunks)
    assert chunks[-1].text.endswith("Bats fly.")


def test_small_and_empty_documents() -> None:
    document = Document(id="d", source="d", text="Bats fly.")
    assert [c.text for c in TokenChunker().chunk(document)] == ["Bats fly."]
    assert TokenChunker().chunk(Document(id="e", source="e", text=" \n ")) == []
    with pytest.raises(UsageError):
        TokenChunker(size=10, overlap=10)
    with pytest.raises(UsageError):
        token_windows("x", size=0)


def test_sentence_spans_in_latin_and_cjk() -> None:
    text = "It is 3.5 m long! Is it? 「你好。」他说。我们走吧；好的\n\nNew paragraph"
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "It is 3.5 m long!",
        "Is it?",
        "「你好。」",
        "他说。",
        "我们走吧；",
        "好的",
        "New paragraph",
    ]


MARKDOWN = """Preface line.

# Bats

Bats are mammals. {body}

## Flight

### Wings

Wing membranes. {body}

```python
# not a heading
fly()
```

## 回声定位

蝙蝠利用回声定位。{cjk}
"""


def test_markdown_chunker_keeps_heading_paths() -> None:
    text = MARKDOWN.format(body="They fly at night. " * 40, cjk="它们发出声波。" * 40)
    document = Document(id="bats.md", source="bats.md", text=text)
    chunks = MarkdownChunker(size=96, overlap=8).chunk(document)
    check_chunks(document, chunks)
    assert all(estimate_tokens(c.text) <= 96 for c in chunks)
    paths = [c.metadata["headings"] for c in chunks]
    assert paths[0] == ""
    assert chunks[0].text == "Preface line."
    assert "Bats" in paths
    assert "Bats > Flight > Wings" in paths
    assert "Bats > 回声定位" in paths
    order = [paths.index(p) for p in ("Bats", "Bats > Flight > Wings", "Bats > 回声定位")]
    assert order == sorted(order)
    # "## Flight" has no text of its own: it starts the chunk of its subsection
    wings = next(c for c in chunks if c.metadata["headings"] == "Bats > Flight > Wings")
    assert wings.text.startswith("## Flight\n\n### Wings")
    assert wings.metadata["heading"] == "Wings"
    # a long section becomes several windows, all with the section's path
    assert paths.count("Bats > 回声定位") > 1
    # no chunk crosses a section boundary
    sections = markdown_sections(text)
    for chunk in chunks:
        assert any(s.start <= chunk.start and chunk.end <= s.end for s in sections)
    assert not any("# not a heading" in s for s in (sec.path[-1] for sec in sections if sec.path))


def test_markdown_chunker_on_a_pdf_is_token_windows(corpus_documents: list[Document]) -> None:
    document = corpus_documents[0]
    chunks = MarkdownChunker(size=200, overlap=20).chunk(document)
    check_chunks(document, chunks)
    plain = TokenChunker(size=200, overlap=20).chunk(document)
    assert [(c.start, c.end) for c in chunks] == [(c.start, c.end) for c in plain]


class TopicEmbedder:
    """Embeds a text by which topic words it mentions: topic changes give large distances."""

    TOPICS = ("bat", "surf", "蝙蝠", "冲浪")

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.batches.append(len(texts))
        rows = [[t.lower().count(topic) + 0.01 for topic in self.TOPICS] for t in texts]
        return np.asarray(rows, dtype=np.float32)


@pytest.mark.anyio
async def test_semantic_chunker_cuts_where_the_topic_changes() -> None:
    bats = "Bats fly at night. A bat eats insects. Most bat species roost in caves. "
    surf = "Surfers ride waves. A surf board floats. Surf contests are held worldwide. "
    bats_zh = "蝙蝠在夜间飞行。许多蝙蝠吃昆虫。蝙蝠住在洞穴里。"
    surf_zh = "冲浪者在海浪上滑行。冲浪板浮在水面。冲浪比赛很多。"
    text = bats * 3 + surf * 3 + bats_zh * 2 + surf_zh * 2
    document = Document(id="mixed", source="mixed", text=text.strip())
    embedder = TopicEmbedder()
    chunker = SemanticChunker(embedder, percentile=90, max_tokens=400, buffer=0, batch_size=7)
    assert isinstance(chunker, AsyncChunker)
    chunks = await chunk_document(chunker, document)
    check_chunks(document, chunks)
    assert [c.text[:4] for c in chunks] == ["Bats", "Surf", "蝙蝠在夜", "冲浪者在"]
    assert all(c.metadata == {"chunker": "semantic"} for c in chunks)
    sentences = len(sentence_spans(document.text))
    assert sum(embedder.batches) == sentences
    assert max(embedder.batches) == 7


@pytest.mark.anyio
async def test_semantic_chunker_caps_size_and_handles_short_text(
    corpus_documents: list[Document],
) -> None:
    document = corpus_documents[1]
    chunker = SemanticChunker(TopicEmbedder(), percentile=95, max_tokens=120)
    chunks = await chunker.chunk(document)
    check_chunks(document, chunks)
    assert all(estimate_tokens(c.text) <= 120 for c in chunks)
    one = Document(id="one", source="one", text="Just one sentence without an end")
    assert [c.text for c in await chunker.chunk(one)] == [one.text]


@pytest.mark.anyio
async def test_semantic_chunker_rejects_bad_embeddings() -> None:
    async def broken(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.zeros((1, 3), dtype=np.float32)

    document = Document(id="d", source="d", text="One. Two. Three.")
    with pytest.raises(UsageError, match="embed returned shape"):
        await SemanticChunker(broken).chunk(document)


@pytest.mark.anyio
async def test_chunk_document_runs_sync_chunkers() -> None:
    chunker = TokenChunker(size=8, overlap=0)
    assert isinstance(chunker, Chunker)
    document = Document(id="d", source="d", text="Bats fly at night. They eat insects.")
    chunks = await chunk_document(chunker, document)
    assert [c.text for c in chunks] == ["Bats fly at night.", "They eat insects."]


def test_cosine_distances() -> None:
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    distances = cosine_distances(vectors)
    assert distances.tolist() == pytest.approx([0.0, 1.0, 1.0])
    assert re.fullmatch(r"float64", str(distances.dtype))


def test_a_long_one_line_text_is_windowed_a_bounded_segment_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Memory stays bounded on a pathological document (a 20 MB line; benchmarks/
    pathological_memory.py measures it): the chunker never builds per-word or per-character
    structures, nor counts tokens, over more than a segment of the text at once."""
    import raftkit.chunking.token as token_module
    from raftkit.chunking import sentences

    monkeypatch.setattr(token_module, "SEGMENT_ATOMS", 400)
    monkeypatch.setattr(token_module, "_COUNT_PIECE", 3_000)
    atomized: list[int] = []
    counted: list[int] = []
    atomize = sentences.atomize  # what token.py calls

    def spy(*args: Any, **kwargs: Any) -> Any:
        atoms = atomize(*args, **kwargs)
        atomized.append(len(atoms))
        return atoms

    def counter(text: str) -> int:
        counted.append(len(text))
        return estimate_tokens(text)

    monkeypatch.setattr(token_module, "atomize", spy)
    words = " ".join(
        itertools.islice(itertools.cycle(["bats", "fly", "at", "night.", "foils", "lift"]), 6000)
    )
    blob = "QUJD" * 2_000  # one "word" of 8,000 characters, no space
    text = f"{words} {CHINESE.replace(chr(10), '')} {blob} {words}"
    document = Document(id="line.txt", source="line.txt", text=text)
    chunks = TokenChunker(size=64, overlap=8, counter=counter).chunk(document)

    check_chunks(document, chunks)
    blob_at = text.index(blob)
    # Latin words are never cut; the blob, longer than a chunk, must be
    latin = [c for c in chunks if c.text.isascii() and not blob_at <= c.end <= blob_at + len(blob)]
    latin_words_intact(document, [c for c in latin if not blob_at <= c.start < blob_at + len(blob)])
    assert all(counter(c.text) <= 64 for c in chunks)
    assert len(atomized) > 10, "the text was taken a segment at a time"
    # a segment holds SEGMENT_ATOMS atoms, plus the pieces of one over-long word at most
    assert max(atomized) <= 400 + len(blob) // 64 + 1
    assert max(counted) <= 2 * 3_000
    # a text of one segment gets the windows it always got (the same as a huge segment)
    short = Document(id="s", source="s", text=words[:4_000])
    monkeypatch.setattr(token_module, "SEGMENT_ATOMS", 10**9)
    alone = TokenChunker(size=64, overlap=8).chunk(short)
    monkeypatch.setattr(token_module, "SEGMENT_ATOMS", 4_000)
    assert TokenChunker(size=64, overlap=8).chunk(short) == alone


def test_reading_text_does_not_load_the_pdf_library() -> None:
    """pymupdf costs ~120 MB of memory to import; a corpus without PDFs does not pay it."""
    import subprocess
    import sys

    code = (
        "import sys, anyio\n"
        "from raftkit.extract import extract_folder\n"
        "import raftkit.cli.generate\n"
        "docs, _ = anyio.run(extract_folder, sys.argv[1])\n"
        "assert docs and 'pymupdf' not in sys.modules, sorted(sys.modules)\n"
    )
    notes = CORPUS / "surfing" / "冲浪.md"
    subprocess.run([sys.executable, "-c", code, str(notes)], check=True)
