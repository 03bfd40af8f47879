"""Token windows with overlap, cut at the best boundary in reach (sentence, line, word).

Memory: a text's atoms (a word, or one CJK character, each: about 130 bytes of Python
objects apiece) are held for one *segment* of at most :data:`SEGMENT_ATOMS` atoms at a time, so
chunking a 20 MB one-line file holds a few copies of its text, not hundreds of megabytes of
per-word or per-character structures. A text of one segment (up to about a megabyte of English,
or 200,000 CJK characters) gets exactly the windows it always got; a longer one is windowed
segment after segment, each ending where its last complete window ends.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate

from raftkit.chunking._build import make_chunks
from raftkit.chunking.sentences import LINE, Atoms, atomize
from raftkit.errors import UsageError
from raftkit.llm.tokens import TokenCounter, estimate_tokens
from raftkit.types import Chunk, Document

__all__ = ["SEGMENT_ATOMS", "TokenChunker", "token_windows"]

#: The most atoms held at once (about 26 MB of Python objects).
SEGMENT_ATOMS = 200_000
# Text longer than twice this is counted in pieces of this many characters: a counter makes a
# Python object per word or token it finds, hundreds of megabytes for a 20 MB text.
_COUNT_PIECE = 1_000_000


def _check(size: int, overlap: int) -> None:
    if size < 1:
        raise UsageError(f"chunk size must be at least 1 token, got {size}")
    if not 0 <= overlap < size:
        raise UsageError(f"overlap must be between 0 and size - 1, got {overlap}")


def _best(i: int, ends: range, prefix: list[float], rank_before: list[int], floor: float) -> int:
    """The window end in ``ends`` with the best cut among those holding ``floor`` tokens.

    Falls back to every candidate when none reaches the floor; ties go to the longer window.
    """
    pool = [k for k in ends if prefix[k] - prefix[i] >= floor] or list(ends)
    return max(pool, key=lambda k: (rank_before[k], k))


def _reach(i: int, limit: int, prefix: list[float], budget: float) -> int:
    """The largest ``j`` in ``(i, limit]`` whose atoms ``i..j-1`` stay within ``budget``."""
    j = bisect_right(prefix, prefix[i] + budget, i + 1, limit + 1) - 1
    return max(j, i + 1)


def _windows(
    text: str, atoms: Atoms, size: int, overlap: int, counter: TokenCounter, *, final: bool
) -> tuple[list[tuple[int, int]], int | None]:
    """The windows over ``atoms``, and where the next segment starts (``None`` when ``final``
    or when no window could be finished).

    Unless ``final``, the atoms end at a segment boundary, not the text's end: the gap after
    the last atom is not real, so windowing stops before the first window that could reach
    it, and the next segment starts with that window.
    """
    n = len(atoms)
    starts, ends = atoms.starts, atoms.ends

    def cost(first: int, stop: int) -> int:
        return counter(text[starts[first] : ends[stop - 1]])

    # Atom counts only estimate the counter on joined text (rounding per atom, the cost of
    # line breaks, BPE merges); scaling them by the ratio over the whole range makes the
    # estimate close enough that each window is checked with the real counter once or twice.
    total = sum(atoms.tokens)
    scale = _cost_in_pieces(text, atoms, counter) / total if total else 1.0
    prefix = [0.0, *accumulate(t * scale for t in atoms.tokens)]
    # rank of a cut before atom k; before k = n is the end of the range, the best cut there is
    rank_before = [0, *atoms.ranks]

    spans: list[tuple[int, int]] = []
    i = 0
    while i < n:
        j = _reach(i, n, prefix, size)
        if not final and j >= n:
            return spans, (atoms.starts[i] if spans else None)
        floor = (prefix[j] - prefix[i]) / 2
        if j == n and cost(i, n) <= size:
            k = n
        else:
            k = _best(i, range(i + 1, j + 1), prefix, rank_before, floor)
        while k > i + 1 and (actual := cost(i, k)) > size:
            # shrink in proportion to the overshoot, then take the best cut in reach
            budget = (prefix[k] - prefix[i]) * size / actual
            j = min(_reach(i, k - 1, prefix, budget), k - 1)
            k = _best(i, range(i + 1, j + 1), prefix, rank_before, floor)
        spans.append((starts[i], ends[k - 1]))
        if k >= n:
            break
        i = _next_start(i, k, prefix, rank_before, overlap, cost)
    return spans, None


def _cost_in_pieces(text: str, atoms: Atoms, counter: TokenCounter) -> int:
    """The counter over all of ``atoms``' text; over a long text, summed over pieces of about
    ``_COUNT_PIECE`` characters cut between atoms (a slightly different estimate, and a
    bounded amount of memory)."""
    starts, ends, n = atoms.starts, atoms.ends, len(atoms)
    if ends[n - 1] - starts[0] <= 2 * _COUNT_PIECE:
        return counter(text[starts[0] : ends[n - 1]])
    total, first = 0, 0
    while first < n:
        stop = max(first + 1, bisect_right(starts, starts[first] + _COUNT_PIECE, first + 1))
        total += counter(text[starts[first] : ends[stop - 1]])
        first = stop
    return total


def _next_start(
    i: int,
    k: int,
    prefix: list[float],
    rank_before: list[int],
    overlap: int,
    cost: Callable[[int, int], int],
) -> int:
    """Where the next window starts: at most ``overlap`` tokens back from ``k``, after ``i``."""
    if overlap <= 0:
        return k
    candidates = [s for s in range(i + 1, k) if prefix[k] - prefix[s] <= overlap]
    if not candidates:
        return k
    # prefer starting a sentence or line, if that keeps at least half the overlap
    good = [
        s for s in candidates if rank_before[s] >= LINE and prefix[k] - prefix[s] >= overlap // 2
    ]
    start = max(good, key=lambda s: (rank_before[s], -s)) if good else min(candidates)
    while start < k and cost(start, k) > overlap:
        start += 1
    return start


def token_windows(
    text: str,
    lo: int = 0,
    hi: int | None = None,
    *,
    size: int = 512,
    overlap: int = 64,
    counter: TokenCounter = estimate_tokens,
) -> list[tuple[int, int]]:
    """``(start, end)`` spans of windows over ``text[lo:hi]``, each at most ``size`` tokens.

    Spans start and end on non-space characters. Consecutive windows share up to ``overlap``
    tokens. Cuts fall at the best boundary that keeps a window at least half full: paragraph,
    then sentence, then line, then word; never inside a Latin word unless the word alone is
    longer than ``size``. Text of more than :data:`SEGMENT_ATOMS` atoms is windowed a
    segment at a time (see the module's docstring).
    """
    _check(size, overlap)
    hi = len(text) if hi is None else hi
    spans: list[tuple[int, int]] = []
    start, segment = lo, SEGMENT_ATOMS
    while True:
        atoms = atomize(text, start, hi, counter=counter, max_tokens=size, max_atoms=segment)
        if not len(atoms):
            return spans
        found, resume = _windows(text, atoms, size, overlap, counter, final=atoms.complete)
        spans.extend(found)
        if atoms.complete:
            return spans
        if resume is None:
            segment *= 2  # not one whole window in this segment: look further
        else:
            start, segment = resume, SEGMENT_ATOMS


class TokenChunker:
    """Fixed-budget chunks: at most ``size`` tokens by ``counter``, ``overlap`` tokens shared.

    ``counter`` defaults to raftkit's script-aware estimate; pass an exact counter (for
    example ``raftkit.llm.tokens.exact_counter(model)``) to bound chunks by a real vocabulary.
    """

    def __init__(
        self, size: int = 512, overlap: int = 64, counter: TokenCounter = estimate_tokens
    ) -> None:
        _check(size, overlap)
        self.size = size
        self.overlap = overlap
        self.counter = counter

    def __repr__(self) -> str:
        return f"TokenChunker(size={self.size}, overlap={self.overlap})"

    def chunk(self, document: Document) -> list[Chunk]:
        spans = token_windows(
            document.text, size=self.size, overlap=self.overlap, counter=self.counter
        )
        return make_chunks(document, spans, {"chunker": "token"})
