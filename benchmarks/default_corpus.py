"""Which documents a benchmark reads when ``--corpus`` is not given.

The figures in docs/benchmarks.md were measured on the maintainers' larger corpus, kept beside
the checkout in ``../shared/corpus`` (16 English Wikipedia PDFs, 167 pages). A checkout without
it falls back to the repository's own ``tests/data/corpus`` (4 of those PDFs, 12 pages, and a
Chinese note) and says so, since numbers measured on it are not comparable with the documented
ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["REPOSITORY_CORPUS", "SHARED_CORPUS", "default_corpus"]

ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPUS = ROOT.parent / "shared" / "corpus"
REPOSITORY_CORPUS = ROOT / "tests" / "data" / "corpus"


def default_corpus() -> Path:
    """``../shared/corpus`` where it exists, else ``tests/data/corpus`` with a note on stderr."""
    if SHARED_CORPUS.is_dir():
        return SHARED_CORPUS
    print(
        f"note: {SHARED_CORPUS} is absent, so this benchmark reads the repository's small corpus "
        f"{REPOSITORY_CORPUS} (4 PDFs, 12 pages): its figures are not comparable with "
        "docs/benchmarks.md. Pass --corpus DIR to measure another folder.",
        file=sys.stderr,
    )
    return REPOSITORY_CORPUS
