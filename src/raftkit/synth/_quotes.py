"""Finding a quote in its oracle: word boundaries, and the normalisations a match needed.

Both sides are first put in :func:`~raftkit.synth._text.match_form` (width, quote marks, dashes,
invisible characters, the spaces PDF text scatters between CJK characters). A quote must then
occur on word boundaries: it may not start or end inside a word of a script written with
spaces (``date`` does not occur in "dated"); CJK characters are words of their own, so a
Chinese or Japanese quote may start and end at any character.

Real models copy real text imperfectly in a few harmless ways, each a *normalisation* that a
match may need. A quote is first looked for as it is; only if that fails are the
normalisations allowed, and then each one that the match can do without is dropped again, so
what is recorded is a minimal set that was really needed:

- ``citation_markers`` — Wikipedia's ``[1]``, ``[a]``, ``[note 2]``, ``[citation needed]``
  are ignored (``Mexico,[1][2] Ecuador`` quoted as ``Mexico, Ecuador``);
- ``initial_case`` — the first letter of the quote (or of an elided piece) in either case;
- ``hyphenation`` — a hyphen between two letters on one side only (``post-cranial``/
  ``postcranial``);
- ``diacritics`` — Latin letters compared without accents (``Guácharo``/``Guacharo``);
- ``dash_spacing`` — spaces around a dash on one side only (``forelimbs – resulting``);
- ``unit_spacing`` — a space between a number and what follows it (``31.2mm``/``31.2 mm``);
- ``cjk_punctuation`` — ``。``/``.`` and ``、``/``,`` taken as the same mark;
- ``trailing_punctuation`` — a stop or comma ending the quote where the oracle's clause goes on;
- ``ellipsis`` — ``...`` or ``…`` in the quote stands for left-out text (pieces in order);
- ``unicode_forms`` — the match needed the base normalisation itself (width, quote marks,
  dashes, invisible characters, spaces between CJK characters), not only collapsed whitespace.

Each normalisation is a transformation applied to both texts alike (a character mapping or a
deletion); the oracle's transformed text keeps a map back to its positions, so that word
boundaries are judged on the text as it was. The quote itself is never rewritten.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from typing import Literal

from raftkit.synth._text import match_form

__all__ = [
    "CITATION_MARKER",
    "NORMALISATIONS",
    "Normalisation",
    "OracleForms",
    "find_quote",
    "oracle_forms",
]

Normalisation = Literal[
    "unicode_forms",
    "citation_markers",
    "initial_case",
    "hyphenation",
    "diacritics",
    "dash_spacing",
    "unit_spacing",
    "cjk_punctuation",
    "trailing_punctuation",
    "ellipsis",
]
NORMALISATIONS: tuple[Normalisation, ...] = (
    "unicode_forms",
    "citation_markers",
    "initial_case",
    "hyphenation",
    "diacritics",
    "dash_spacing",
    "unit_spacing",
    "cjk_punctuation",
    "trailing_punctuation",
    "ellipsis",
)
# The ones tried by transformation; unicode_forms is decided by comparing with the raw text.
_FLEXIBLE: tuple[Normalisation, ...] = NORMALISATIONS[1:]

# Letters of scripts written without spaces: each is a word of its own.
_CJK = "\u2e80-\u2fff\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_WORD_CHAR = re.compile(rf"[^\W{_CJK}]")
_LETTER = rf"[^\W\d_{_CJK}]"
# match_form makes every dash "-"; the raw text (for unicode_forms) still has the others.
_DASH = "[-\u2010-\u2014\u2212]"
_ELLIPSIS = re.compile(r"\.{3,}|…+")
#: A Wikipedia-style citation marker with the space before it: [1], [a], [note 2], [who?].
CITATION_MARKER = (
    r" ?\[(?:\d{1,4}|[a-z]{1,2}|(?:note|nb|n) ?\d{1,3}|[a-z][a-z ]{2,40}needed|[a-z]{2,10}\?)\]"
)
# Deletions, applied in this order (a citation can sit before a spaced dash, and a spaced dash
# turns into a hyphen between letters once its spaces are gone).
_DELETIONS: tuple[tuple[Normalisation, re.Pattern[str]], ...] = (
    ("citation_markers", re.compile(CITATION_MARKER)),
    ("dash_spacing", re.compile(rf" (?={_DASH})|(?<={_DASH}) ")),
    ("hyphenation", re.compile(rf"(?<={_LETTER}){_DASH}(?={_LETTER})")),
    ("unit_spacing", re.compile(rf"(?<=\d) (?={_LETTER}|[%°])")),
)
_CJK_PUNCT = str.maketrans({"。": ".", "、": ","})
_TRAILING = ".,;:。，、；："
_SPACES = re.compile(r"\s+")

Found = Literal["found", "splits_word", "missing"]


def _is_word(ch: str) -> bool:
    return _WORD_CHAR.match(ch) is not None


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    # Only Latin letters lose their accents: kana would lose dakuten (が → か), a real change.
    if ord(ch) >= 0x0370 and not 0x1E00 <= ord(ch) <= 0x1EFF:
        return ch
    base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    return base if len(base) == 1 else ch


def _fold(text: str) -> str:
    """``text`` without accents on Latin letters; the same length, so positions still agree."""
    return "".join(map(_fold_char, text))


def _delete(
    text: str, index: list[int] | None, pattern: re.Pattern[str]
) -> tuple[str, list[int] | None]:
    spans = [m.span() for m in pattern.finditer(text)]
    if not spans:
        return text, index
    where = index if index is not None else list(range(len(text)))
    parts: list[str] = []
    kept: list[int] = []
    at = 0
    for start, end in spans:
        parts.append(text[at:start])
        kept.extend(where[at:start])
        at = end
    parts.append(text[at:])
    kept.extend(where[at:])
    return "".join(parts), kept


def _transform(text: str, flex: frozenset[Normalisation]) -> tuple[str, list[int] | None]:
    """``text`` with the normalisations in ``flex`` applied, and where each character was."""
    if "diacritics" in flex:
        text = _fold(text)
    if "cjk_punctuation" in flex:
        text = text.translate(_CJK_PUNCT)
    index: list[int] | None = None
    for name, pattern in _DELETIONS:
        if name in flex:
            text, index = _delete(text, index, pattern)
    return text, index


class OracleForms:
    """One oracle's text in each form quotes are looked for in, computed when first needed."""

    def __init__(self, oracle: str) -> None:
        self.raw = _SPACES.sub(" ", oracle).strip()
        self.base = match_form(oracle)
        self._forms: dict[tuple[bool, frozenset[Normalisation]], tuple[str, list[int] | None]] = {}

    def form(self, *, raw: bool, flex: frozenset[Normalisation]) -> tuple[str, list[int] | None]:
        key = (raw, flex)
        if key not in self._forms:
            self._forms[key] = _transform(self.raw if raw else self.base, flex)
        return self._forms[key]


@lru_cache(maxsize=32)
def oracle_forms(oracle: str) -> OracleForms:
    """The forms of ``oracle``, shared by the questions of one chunk and by re-asks."""
    return OracleForms(oracle)


def _pieces(quote: str, flex: frozenset[Normalisation]) -> list[str]:
    if "ellipsis" not in flex:
        return [quote]
    return [p for p in (piece.strip() for piece in _ELLIPSIS.split(quote)) if p]


def _find_piece(
    piece: str,
    text: str,
    index: list[int] | None,
    original: str,
    at: int,
    *,
    bounded: bool,
) -> int | None:
    """Where in ``text`` the first bounded occurrence of ``piece`` from ``at`` ends, or None."""
    check_start = bounded and _is_word(piece[0])
    check_end = bounded and _is_word(piece[-1])
    position = text.find(piece, at)
    while position >= 0:
        stop = position + len(piece)
        first = index[position] if index is not None else position
        last = index[stop - 1] if index is not None else stop - 1
        fits = not (check_start and first > 0 and _is_word(original[first - 1]))
        if check_end and last + 1 < len(original) and _is_word(original[last + 1]):
            fits = False
        if fits:
            return stop
        position = text.find(piece, position + 1)
    return None


def _search(
    quote: str, forms: OracleForms, flex: frozenset[Normalisation], *, raw: bool, bounded: bool
) -> bool:
    text, index = forms.form(raw=raw, flex=flex)
    original = forms.raw if raw else forms.base
    trailing = "trailing_punctuation" in flex
    pieces = [_transform(p, flex)[0] for p in _pieces(quote, flex)]
    if trailing:
        pieces[-1] = pieces[-1].rstrip(_TRAILING).rstrip()
    if not pieces or not all(pieces):
        return False
    at = 0
    for piece in pieces:
        variants = [piece]
        if "initial_case" in flex and piece[0].lower() != piece[0].upper():
            variants.append(piece[0].swapcase() + piece[1:])
        ends = [_find_piece(v, text, index, original, at, bounded=bounded) for v in variants]
        found = [end for end in ends if end is not None]
        if not found:
            return False
        at = min(found)
    return True


def _candidates(quote: str, allow_ellipsis: bool) -> frozenset[Normalisation]:
    """The normalisations worth trying for ``quote`` (the others cannot change its match)."""
    flex = set(_FLEXIBLE)
    # a leading or trailing "…" marks a cut too: one piece is enough
    if not allow_ellipsis or not _ELLIPSIS.search(quote) or not _ELLIPSIS.sub("", quote).strip():
        flex.discard("ellipsis")
    if "。" not in quote and "、" not in quote and "." not in quote and "," not in quote:
        flex.discard("cjk_punctuation")
    if not quote.rstrip().endswith(tuple(_TRAILING)) or len(quote.rstrip(_TRAILING)) == 0:
        flex.discard("trailing_punctuation")
    return frozenset(flex)


def find_quote(
    quote: str, forms: OracleForms, *, allow_ellipsis: bool = True
) -> tuple[Found, tuple[Normalisation, ...]]:
    """Whether ``quote`` occurs in the oracle, and the normalisations the match needed.

    ``"splits_word"``: it occurs only if a word may be cut (``date`` in "dated").
    """
    raw = _SPACES.sub(" ", quote).strip()
    base = match_form(quote)
    if not base:
        return "missing", ()
    none: frozenset[Normalisation] = frozenset()
    if _search(raw, forms, none, raw=True, bounded=True):
        return "found", ()
    if _search(base, forms, none, raw=False, bounded=True):
        return "found", ("unicode_forms",)
    every = _candidates(base, allow_ellipsis)
    if not _search(base, forms, every, raw=False, bounded=True):
        loose = _search(base, forms, every, raw=False, bounded=False)
        return ("splits_word" if loose else "missing"), ()
    needed = set(every)
    # The broad ones are tried for removal first, so a specific one that also fits is kept
    # ("。" quoted as "." is cjk_punctuation, not a dropped trailing stop).
    for name in reversed(_FLEXIBLE):
        if name in needed:
            fewer = frozenset(needed - {name})
            if _search(base, forms, fewer, raw=False, bounded=True):
                needed = set(fewer)
    if not _search(raw, forms, frozenset(needed), raw=True, bounded=True):
        needed.add("unicode_forms")
    return "found", _ordered(needed)


def _ordered(names: Iterable[Normalisation]) -> tuple[Normalisation, ...]:
    chosen = set(names)
    return tuple(name for name in NORMALISATIONS if name in chosen)
