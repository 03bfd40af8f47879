"""Where text may be cut: words, line breaks and sentence ends, in any script.

Text is split into *atoms* — a Latin-script word with its punctuation, or a single Chinese or
Japanese character — and every gap between two atoms gets a rank saying how good a place it
is to cut. Chunkers cut only between atoms, so a Latin word is never split (unless one word
alone is longer than a chunk), and they prefer the highest rank they can reach.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "LINE",
    "PARAGRAPH",
    "SENTENCE",
    "WORD",
    "Atoms",
    "atomize",
    "sentence_spans",
]

#: Ranks of a gap between atoms, best last. Inside an over-long word the rank is 0.
WORD = 1
LINE = 2
SENTENCE = 3
PARAGRAPH = 4

# Chinese/Japanese characters and punctuation: each is its own atom, cuttable on either side.
_CJ = (
    "\u2e80-\u2fdf\u3001-\u303f\u3040-\u30ff\u3100-\u312f\u31a0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff01-\uff60"
)
_ATOM = re.compile(rf"[{_CJ}]|[^\s{_CJ}]+")
_CLOSERS = "\"'”’)]}」』）】〉》»"
# A "word" longer than this many characters per token of the limit is cut without counting
# it: counting a multi-megabyte blob would cost far more memory than the blob.
_CERTAINLY_TOO_LONG = 64
_SENTENCE_END = re.compile(rf"[.!?…。！？；！？][{re.escape(_CLOSERS)}]*\Z")


@dataclass(frozen=True)
class Atoms:
    """The atoms of ``text[lo:hi]``: offsets, token counts and the rank of the gap after each.

    ``complete`` is false when ``max_atoms`` stopped the atomizing before ``hi``: then the
    last atom is followed by more text, and the rank after it (:data:`PARAGRAPH`) is not real.
    """

    starts: list[int]
    ends: list[int]
    tokens: list[int]
    ranks: list[int]
    complete: bool = True

    def __len__(self) -> int:
        return len(self.starts)


def _gap_rank(text: str, atom_end: int, next_start: int, atom: str, next_char: str) -> int:
    gap = text[atom_end:next_start]
    newlines = gap.count("\n")
    if newlines >= 2:
        return PARAGRAPH
    ends_sentence = _SENTENCE_END.search(text, max(0, atom_end - 8), atom_end)
    if ends_sentence and next_char not in _CLOSERS and (gap or atom[-1] != "."):
        # a Latin full stop ends a sentence only before a space ("3.5" is one atom anyway)
        return SENTENCE
    if newlines:
        return LINE
    return WORD


def atomize(
    text: str,
    lo: int,
    hi: int,
    *,
    counter: Callable[[str], int],
    max_tokens: int | None = None,
    max_atoms: int | None = None,
) -> Atoms:
    """Atoms of ``text[lo:hi]``; an atom over ``max_tokens`` is cut into pieces that fit.

    With ``max_atoms``, stops after the word (or character) that reaches that many atoms, so a
    caller can take a long text a bounded piece at a time.
    """
    complete = True
    starts: list[int] = []
    ends: list[int] = []
    tokens: list[int] = []
    inside_word: set[int] = set()  # atoms followed by another piece of the same cut word
    known: dict[str, int] = {}  # words repeat: count each distinct one once
    for match in _ATOM.finditer(text, lo, hi):
        if max_atoms is not None and len(starts) >= max_atoms:
            complete = False
            break
        start, end = match.span()
        atom = match.group()
        if max_tokens is not None and end - start > _CERTAINLY_TOO_LONG * max_tokens:
            count = max_tokens + 1  # no vocabulary packs this many characters in a token
        else:
            known_count = known.get(atom)
            if known_count is None:
                known_count = known[atom] = counter(atom)
            count = known_count
        if max_tokens is not None and count > max_tokens:
            # one "word" longer than a chunk (a URL, a base64 blob): cut it by characters; a
            # token is at least one character, so max_tokens characters never exceed the limit
            step = max(1, max_tokens)
            for piece in range(start, end, step):
                inside_word.add(len(starts))
                starts.append(piece)
                ends.append(min(piece + step, end))
                tokens.append(counter(text[piece : min(piece + step, end)]))
            inside_word.discard(len(starts) - 1)
            continue
        starts.append(start)
        ends.append(end)
        tokens.append(count)
    ranks: list[int] = []
    last = len(starts) - 1  # at the end of the range, or the atom max_atoms stopped after
    for i in range(len(starts)):
        if i == last:
            ranks.append(PARAGRAPH)
        elif i in inside_word:
            ranks.append(0)
        else:
            atom = text[starts[i] : ends[i]]
            ranks.append(_gap_rank(text, ends[i], starts[i + 1], atom, text[starts[i + 1]]))
    return Atoms(starts, ends, tokens, ranks, complete)


def sentence_spans(
    text: str, lo: int = 0, hi: int | None = None, *, counter: Callable[[str], int] = len
) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence in ``text[lo:hi]``, without surrounding whitespace.

    Sentences end at ``.!?…`` followed by a space, at ``。！？；`` and at blank lines.
    """
    atoms = atomize(text, lo, len(text) if hi is None else hi, counter=counter)
    spans: list[tuple[int, int]] = []
    first = 0
    for i, rank in enumerate(atoms.ranks):
        if rank >= SENTENCE:
            spans.append((atoms.starts[first], atoms.ends[i]))
            first = i + 1
    return spans
