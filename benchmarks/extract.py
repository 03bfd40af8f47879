"""PDF extraction speed: raftkit's PdfExtractor against bare ``page.get_text()``.

Both read every page of every PDF under the corpus; raftkit also cleans the text (Unicode,
hyphens, CJK line breaks), records page spans and metadata and goes through the async API (a
worker thread per file). The two are run alternately, ``--rounds`` times each, and the best
round of each is compared. Both wall-clock and CPU time (this process, all threads) are
reported; the CPU-time ratio is the one to trust on a shared machine, where other processes
stretch wall-clock rounds at random. The result is a ratio measured in one run (goal: at
least 0.8).

    .venv/bin/python benchmarks/extract.py [--corpus DIR] [--rounds 5]

``--variants N`` also times the slower options (``sort=True``, ``tables=True`` with and
without pymupdf's layout model) once each on the first N PDFs, against bare text on the same.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import anyio
import pymupdf as _pymupdf
from default_corpus import default_corpus

from raftkit.extract import PdfExtractor, iter_documents

pymupdf: Any = _pymupdf  # PyMuPDF's annotations are partial


def bare(files: list[Path]) -> tuple[int, int]:
    pages = chars = 0
    for path in files:
        with pymupdf.open(path) as doc:
            for page in doc:
                chars += len(page.get_text())
                pages += 1
    return pages, chars


async def raftkit_walk(root: Path, extractor: PdfExtractor) -> tuple[int, int]:
    pages = chars = 0
    walk = iter_documents(root, extractors=[extractor])
    async with walk:
        async for document in walk:
            pages += len(document.pages)
            chars += len(document.text)
    if walk.report.errors:
        raise SystemExit(walk.report.summary())
    return pages, chars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--corpus", type=Path, help="default: ../shared/corpus, else tests/data/corpus"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", type=int, default=0, metavar="N")
    args = parser.parse_args()
    root: Path = args.corpus or default_corpus()
    files = sorted(root.rglob("*.pdf"))
    extractor = PdfExtractor()

    wall = {"bare": float("inf"), "raftkit": float("inf")}
    cpu = dict(wall)
    counts: dict[str, tuple[int, int]] = {}
    for _ in range(args.rounds):
        for name in ("bare", "raftkit"):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            if name == "bare":
                counts[name] = bare(files)
            else:
                counts[name] = anyio.run(raftkit_walk, root, extractor)
            wall[name] = min(wall[name], time.perf_counter() - start_wall)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
    pages = counts["bare"][0]
    if counts["raftkit"][0] != pages:
        raise SystemExit(f"page counts differ: {counts}")

    print(f"corpus: {root} ({len(files)} PDFs, {pages} pages), best of {args.rounds} rounds")
    print()
    print("| reader | wall s | pages/s (wall) | CPU s | pages/s (CPU) | characters |")
    print("|---|---:|---:|---:|---:|---:|")
    labels = {"bare": "bare `page.get_text()`", "raftkit": "raftkit `PdfExtractor()`"}
    for name, label in labels.items():
        print(
            f"| {label} | {wall[name]:.3f} | {pages / wall[name]:.1f} | {cpu[name]:.3f} "
            f"| {pages / cpu[name]:.1f} | {counts[name][1]} |"
        )
    print()
    print(
        f"ratio raftkit / bare (pages per second): CPU {cpu['bare'] / cpu['raftkit']:.2f}, "
        f"wall {wall['bare'] / wall['raftkit']:.2f} (goal: at least 0.8)"
    )

    if args.variants:
        variants(files[: args.variants])


def variants(files: list[Path]) -> None:
    start = time.process_time()
    pages, _ = bare(files)
    base = time.process_time() - start
    print()
    print(f"options, on {len(files)} PDFs ({pages} pages), one round each, CPU time:")
    print()
    print("| reader | CPU s | pages/s | relative to bare |")
    print("|---|---:|---:|---:|")
    print(f"| bare `page.get_text()` | {base:.2f} | {pages / base:.1f} | 1.00 |")
    options: dict[str, PdfExtractor] = {
        "`PdfExtractor(sort=True)`": PdfExtractor(sort=True),
        "`PdfExtractor(tables=True, table_layout=False)`": PdfExtractor(
            tables=True, table_layout=False
        ),
        "`PdfExtractor(tables=True)` (layout model)": PdfExtractor(tables=True),
    }
    for label, extractor in options.items():
        start = time.process_time()
        for path in files:
            extractor.extract_sync(path, doc_id=path.name)
        seconds = time.process_time() - start
        print(f"| {label} | {seconds:.2f} | {pages / seconds:.1f} | {base / seconds:.2f} |")


if __name__ == "__main__":
    main()
