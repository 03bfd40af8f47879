"""Build the verifier's labelled set, tests/data/verifier/, from the real corpus.

Run by hand when the set should change (the result is committed; tests never need the corpus)::

    .venv/bin/python benchmarks/verifier_cases.py

The oracles are what a default ``raftkit generate`` run sees: the English Wikipedia PDFs of
``../shared/corpus`` read by raftkit's own extractor and cut by the default chunker (512-token
windows, 64 overlap); the Chinese note ``examples/docs/蝙蝠.md`` as Markdown and, to keep a
PDF's scattered spaces and line breaks in play, printed to a PDF with pymupdf and read back;
and a short Japanese note written for this set.

Each case is a RAFT answer (reasoning, quotes between the markers, ``<ANSWER>:``) with a
``label`` — ``accept`` if a careful reviewer would keep it as training data, ``reject`` if
not — and an ``expect``: the verdict the verifier is designed to give (``accept`` or a
rejection reason). They differ only where a documented limit rejects an acceptable answer (a
final answer in other words than the oracle's, a number computed from the text); the
benchmark scores the verifier against ``label``, the test holds it to ``expect``.

One English chunk per article (the one with the most prose sentences) plus the two chunks with
the issue's own examples. Cases come from generators that edit a chunk's real text in one
known way each — the label is known by construction, and each generator checks its edit
against the text with a plain regular expression of its own, not with the verifier — plus the
hand-written cases of verifier_hand_cases.json. All randomness is seeded.
"""

from __future__ import annotations

import json
import random
import re
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from raftkit.chunking import TokenChunker, chunk_document  # noqa: E402
from raftkit.extract import iter_documents  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
CHINESE_NOTE = ROOT / "examples" / "docs" / "蝙蝠.md"
HAND = Path(__file__).with_name("verifier_hand_cases.json")
OUT = ROOT / "tests" / "data" / "verifier"
SEED = 14
BQ, EQ = "##begin_quote##", "##end_quote##"

# The chunks with the issue's own examples: "30% larger", "dated", "Mexico,[1][2]", "Guácharo",
# "post-cranial" (the first), "31.2 mm" (the second).
PINNED = ("bats/Desmodus draculae - Wikipedia.pdf#0", "bats/Desmodus draculae - Wikipedia.pdf#1")
_FUNCTION_TEXT = """
the of and in to a as is it for on with by at from that this which be are was were or an than
its their has have had been also into such
"""
# Words that carry no fact on their own (the builder's list, independent of the library's).
FUNCTION_WORDS = frozenset(_FUNCTION_TEXT.split())
# Places of no article here, for final answers that name what the oracle does not.
FOREIGN = ["Madagascar", "Bordeaux", "Tasmania", "Honolulu", "Kilimanjaro", "Patagonia"]
CITATION = re.compile(r"\[(?:\d{1,4}|[a-z])\](?:: ?\d+(?:[–-]\d+)?)?")
NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
WORD = re.compile(r"[A-Za-zÀ-ÿĀ-ž]+(?:['’-][A-Za-zÀ-ÿĀ-ž]+)*|\d+(?:[.,]\d+)*")
UNIT = r"(?:mm|cm|km|kg|g|m|ft|lb)\b"


@dataclass
class Oracle:
    id: str
    source: str
    text: str
    language: str

    @property
    def flat(self) -> str:
        """The text as a model copies it: one line."""
        return re.sub(r"\s+", " ", self.text).strip()


@dataclass
class Case:
    cls: str
    label: str
    expect: str
    quotes: list[str]
    answer: str
    note: str = ""
    normalisation: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def accept(cls: str, quotes: list[str], answer: str, note: str, norm: str = "") -> Case:
    return Case(cls, "accept", "accept", quotes, answer, note, norm)


def reject(cls: str, reason: str, quotes: list[str], answer: str, note: str) -> Case:
    return Case(cls, "reject", reason, quotes, answer, note)


def cot(quotes: list[str], answer: str, *, cjk: bool) -> str:
    """A RAFT answer around ``quotes``, in the reasoning style of the answer prompt."""
    if cjk:
        body = "".join(f"根据文档，{BQ}{q}{EQ}。" for q in quotes)
        return f"{body}因此可以得出答案。\n<ANSWER>: {answer}"
    body = " ".join(f"The context says {BQ}{q}{EQ}." for q in quotes)
    opening = "To answer this, I look for the relevant passage."
    return f"{opening} {body} So the answer follows.\n<ANSWER>: {answer}"


# ----------------------------------------------------------------------------- corpus


async def pdf_chunks() -> list[Oracle]:
    found: list[Oracle] = []
    chunker = TokenChunker(size=512, overlap=64)
    async with iter_documents(CORPUS) as walk:
        async for document in walk:
            if document.id.endswith(".pdf"):
                for chunk in await chunk_document(chunker, document):
                    found.append(Oracle(chunk.id, chunk.id, chunk.text, "en"))
    return found


def is_prose(sentence: str) -> bool:
    words = sentence.split()
    noise = ("http", "Retrieved", "doi", "ISBN", "Archived")
    return (
        60 <= len(sentence) <= 320
        and len(words) >= 8
        and not any(bad in sentence for bad in noise)
        and sum(w[0].isupper() for w in words) < len(words) / 2
    )


def sentences(flat: str) -> list[str]:
    pieces = re.split(r"(?<=[.!?])(?:\[[^\]]{1,12}\])*\s+(?=[A-Z])", flat)
    return [p.strip() for p in pieces if is_prose(p.strip())]


def pick_chunks(chunks: list[Oracle]) -> list[Oracle]:
    by_document: dict[str, list[Oracle]] = {}
    for chunk in chunks:
        by_document.setdefault(chunk.id.rpartition("#")[0], []).append(chunk)
    chosen: list[Oracle] = []
    for _, items in sorted(by_document.items()):
        best = max(items, key=lambda c: len(sentences(c.flat)))  # first of the best on ties
        chosen.append(best)
        chosen.extend(c for c in items if c.id in PINNED and c is not best)
    return chosen


# ----------------------------------------------------------------------------- helpers


def window(sentence: str, rng: random.Random, lo: int = 5, hi: int = 10) -> str | None:
    """A run of ``lo`` to ``hi`` whole words of ``sentence``, without citation markers."""
    spans = [m.span() for m in re.finditer(r"\S+", sentence)]
    if len(spans) < lo:
        return None
    size = rng.randint(lo, min(hi, len(spans)))
    start = rng.randint(0, len(spans) - size)
    text = sentence[spans[start][0] : spans[start + size - 1][1]]
    if CITATION.search(text[:-1]):
        return None
    return CITATION.sub("", text).rstrip(",;:(")


def answer_from(span: str) -> str:
    """A short final answer made of quoted words: a number and unit, a name, or the last
    words."""
    number = re.search(r"\d+(?:[.,]\d+)?(?: ?(?:%|mm|cm|km|kg|m|g|in|ft|lb|years|species))?", span)
    if number:
        return number.group()
    words: list[str] = WORD.findall(span)
    names = [w for w in words[1:] if w[0].isupper() and len(w) > 1]
    names = [w for w in names if w.lower() not in FUNCTION_WORDS]
    if names:
        return names[-1]
    tail = words[-3:]
    while len(tail) > 1 and tail[0].lower() in FUNCTION_WORDS:
        tail = tail[1:]
    return " ".join(tail)


def strip_accents(text: str) -> str:
    kept = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", kept)


def occurs(quote: str, flat: str) -> bool:
    """The builder's own test: ``quote`` as a run of whole words of ``flat``."""
    return re.search(rf"(?<!\w){re.escape(quote)}(?!\w)", flat) is not None


def spans_around(pattern: str, flat: str) -> Iterator[str]:
    """Runs of text matching ``pattern`` that hold no citation marker."""
    for match in re.finditer(pattern, flat):
        if not CITATION.search(match.group()):
            yield match.group()


# ----------------------------------------------------------------------------- generators

Generator = Callable[[Oracle, list[str], random.Random], Iterator[Case]]


def verbatim(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    s = CITATION.sub("", rng.choice(ss)).strip()
    if occurs(s, o.flat):
        yield accept("verbatim", [s], answer_from(s), "a whole sentence")
    w = window(rng.choice(ss), rng)
    if w and occurs(w, o.flat):
        yield accept("verbatim", [w], answer_from(w), "a run of words")
    a, b = rng.sample(ss, 2)
    wa, wb = window(a, rng), window(b, rng)
    if wa and wb and occurs(wa, o.flat) and occurs(wb, o.flat):
        yield accept("verbatim", [wa, wb], answer_from(wb), "two quotes")


def citation(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    pattern = r"(?:\S+ ){3}\S+?(?:\[[^\]]{1,4}\])+(?: \S+){3}"
    hits = [m.group() for m in re.finditer(pattern, o.flat)]
    hits = [h for h in hits if not CITATION.search(h[-6:])]
    if hits:
        raw = rng.choice(hits)
        quote = CITATION.sub("", raw)
        if "[" not in quote and not occurs(quote, o.flat):
            note = f"oracle: {raw!r}"
            yield accept("citation_markers", [quote], answer_from(quote), note, "citation_markers")


def initial_case(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    for s in rng.sample(ss, len(ss)):
        w = window(s, rng, 6, 10)
        if w and w[0].islower() and occurs(w, o.flat):
            quote = w[0].upper() + w[1:]
            if not occurs(quote, o.flat):
                note = "capitalised mid-sentence start"
                yield accept("initial_case", [quote], answer_from(w), note, "initial_case")
                break
    s = CITATION.sub("", rng.choice(ss))
    first = s.split()[0]
    if first[0].isupper() and first[1:].islower():
        quote = " ".join(s.split()[:9]).rstrip(",")
        lowered = quote[0].lower() + quote[1:]
        if occurs(quote, o.flat) and not occurs(lowered, o.flat):
            note = "sentence start in lower case"
            yield accept("initial_case", [lowered], answer_from(quote), note, "initial_case")


def hyphen(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    for raw in spans_around(r"(?:\S+ ){2}[a-z]{3,}-[a-z]{3,}(?: \S+){2}", o.flat):
        quote = re.sub(r"([a-z]{3,})-([a-z]{3,})", r"\1\2", raw, count=1)
        yield accept("hyphenation", [quote], answer_from(quote), f"oracle: {raw!r}", "hyphenation")
        return


def accents(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    for raw in spans_around(r"(?:\S+ ){2}\S*[À-ÿĀ-ž]\S*(?: \S+){2}", o.flat):
        quote, answer = strip_accents(raw), strip_accents(answer_from(raw))
        yield accept("diacritics", [quote], answer, f"oracle: {raw!r}", "diacritics")
        return


def dashes(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    for raw in spans_around(r"(?:\S+ ){2}\S+ – \S+(?: \S+)", o.flat):
        quote = raw.replace(" – ", "–")
        yield accept(
            "dash_spacing", [quote], answer_from(quote), f"oracle: {raw!r}", "dash_spacing"
        )
        break
    for raw in spans_around(r"(?:\S+ ){2}\d+(?:\.\d+)?–\d+(?:\.\d+)?(?: \S+){2}", o.flat):
        quote = re.sub(r"(\d)–(\d)", r"\1 – \2", raw, count=1)
        yield accept(
            "dash_spacing", [quote], answer_from(quote), f"oracle: {raw!r}", "dash_spacing"
        )
        return


def units(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    for raw in spans_around(rf"(?:\S+ ){{2}}\d+(?:\.\d+)? {UNIT}(?: \S+){{1,2}}", o.flat):
        quote = re.sub(rf"(\d) ({UNIT})", r"\1\2", raw, count=1)
        yield accept("unit_spacing", [quote], answer_from(raw), f"oracle: {raw!r}", "unit_spacing")
        return


def trailing(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    for s in rng.sample(ss, len(ss)):
        m = re.search(r"(?:^|, )((?:[A-Za-z]+ ){4,8}[A-Za-z]+),", s)
        if m and occurs(m.group(1), o.flat) and not occurs(m.group(1) + ".", o.flat):
            quote = m.group(1) + "."
            note = "clause ended with a full stop"
            yield accept("trailing_punctuation", [quote], answer_from(quote), note,
                         "trailing_punctuation")  # fmt: skip
            return


def ellipsis(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    long = [CITATION.sub("", s) for s in ss if len(s.split()) >= 16]
    if long:
        words = rng.choice(long).split()
        quote = " ".join(words[:5]) + " ... " + " ".join(words[-5:])
        answer = answer_from(" ".join(words[-5:]))
        yield accept("ellipsis", [quote], answer, "elided middle", "ellipsis")


def curly(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    w = window(rng.choice(ss), rng, 6, 9)
    if w and occurs(w, o.flat):
        yield accept("unicode_forms", [f"“{w}”"], answer_from(w), "wrapped in curly quotes")


def lazy(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    stop = [w for w in ("than", "and", "the", "which", "with") if occurs(w, o.flat)]
    if stop:
        pick = rng.choice(stop)
        answer = answer_from(rng.choice(ss))
        yield reject("lazy_one_word", "quote_too_short", [pick], answer, f"one stop word {pick!r}")
    content = [w for w in WORD.findall(o.flat) if len(w) >= 5 and w.isalpha() and w.islower()]
    if content:
        pick = rng.choice(content)
        note = "one content word backs the answer"
        yield reject("lazy_one_word", "quote_too_short", [pick], pick, note)


def partial_word(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    long_words = sorted({w for w in WORD.findall(o.flat) if len(w) >= 8 and w.isalpha()})
    for w in rng.sample(long_words, len(long_words)):
        prefix = w[:4]
        if prefix.islower() and prefix in o.flat and not occurs(prefix, o.flat.lower()):
            note = f"{prefix!r} occurs only inside {w!r}"
            yield reject("lazy_partial_word", "quote_splits_word", [prefix], prefix, note)
            break
    for s in rng.sample(ss, len(ss)):
        w = window(s, rng, 5, 8)
        if w and w[0].isalpha() and len(w.split()[0]) >= 6:
            cut = w[2:]
            if cut in o.flat and not occurs(cut, o.flat):
                note = "the first word is cut"
                yield reject("partial_word", "quote_splits_word", [cut], answer_from(cut), note)
                return


def function_words(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    tokens = re.findall(r"[a-z]+|\S", o.flat)
    for i in range(len(tokens) - 2):
        trio = " ".join(tokens[i : i + 3])
        if all(t in FUNCTION_WORDS for t in tokens[i : i + 3]) and occurs(trio, o.flat):
            answer = answer_from(rng.choice(ss))
            note = "three function words"
            yield reject("function_words", "no_substantive_quote", [trio], answer, note)
            return


def invented(o: Oracle, ss: list[str], rng: random.Random, others: list[str]) -> Iterator[Case]:
    foreign = CITATION.sub("", rng.choice(others))
    if not occurs(foreign, o.flat):
        note = "a sentence of another article"
        yield reject("invented", "quote_not_in_oracle", [foreign], answer_from(foreign), note)
    words = CITATION.sub("", rng.choice(ss)).split()
    content = [i for i, w in enumerate(words) if w.isalpha() and w.islower() and len(w) > 4]
    if content:
        i = rng.choice(content)
        swaps = {"large": "small", "larger": "smaller", "most": "few"}
        swap = swaps.get(words[i], "rarely " + words[i])
        changed = " ".join([*words[:i], swap, *words[i + 1 :]])
        if not occurs(changed, o.flat):
            note = f"one word changed: {words[i]!r}"
            yield reject("invented", "quote_not_in_oracle", [changed], answer_from(changed), note)


def numbers(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    with_numbers = [s for s in (CITATION.sub("", s) for s in ss) if NUMBER.search(s)]
    if not with_numbers:
        return
    s = rng.choice(with_numbers)
    m = rng.choice(list(NUMBER.finditer(s)))
    value = m.group()
    other = str(int(value) + 7) if value.isdigit() else f"{float(value) + 1.3:.1f}"
    changed = s[: m.start()] + other + s[m.end() :]
    if not occurs(changed, o.flat):
        note = f"{value} became {other} in the quote"
        yield reject("number_altered_quote", "quote_not_in_oracle", [changed], other, note)
    if other not in o.flat and occurs(s, o.flat):
        answer = s[max(0, m.start() - 20) : m.start()].split(" ", 1)[-1] + other
        note = f"the quote says {value}, the answer {other}"
        yield reject("number_altered_answer", "answer_number_not_in_oracle", [s], answer, note)


def unsupported(o: Oracle, ss: list[str], rng: random.Random) -> Iterator[Case]:
    places = [p for p in FOREIGN if p not in o.flat]
    w = window(rng.choice(ss), rng, 6, 10)
    if places and w and occurs(w, o.flat):
        note = "the answer names a place the oracle does not"
        answer = f"in {rng.choice(places)}"
        yield reject("unsupported_answer", "answer_not_supported", [w], answer, note)


GENERATORS: list[Generator] = [
    verbatim, citation, initial_case, hyphen, accents, dashes, units, trailing, ellipsis, curly,
    lazy, partial_word, function_words, numbers, unsupported,
]  # fmt: skip


# ----------------------------------------------------------------------------- CJK oracles


async def read_first_chunk(path: Path) -> str:
    async with iter_documents(path) as walk:
        async for document in walk:
            chunks = await chunk_document(TokenChunker(size=512, overlap=64), document)
            return chunks[0].text
    raise SystemExit(f"{path} gave no text")


def chinese_pdf_text(markdown: str) -> str:
    """``markdown``'s paragraphs printed to a narrow PDF page and read back by raftkit."""
    import pymupdf as _pymupdf  # the PDF extra, present wherever raftkit reads PDFs

    pymupdf: Any = _pymupdf
    body = re.sub(r"^#+ .*$", "", markdown, flags=re.MULTILINE).strip()
    doc = pymupdf.open()
    page = doc.new_page(width=300, height=800)
    box = pymupdf.Rect(20, 20, 280, 780)
    page.insert_textbox(box, body, fontname="china-s", fontsize=10)
    with tempfile.TemporaryDirectory() as tmp:
        doc.save(Path(tmp) / "bats-zh.pdf")
        return anyio.run(read_first_chunk, Path(tmp))


def hand_cases(oracles: dict[str, Oracle]) -> list[tuple[Oracle, Case]]:
    data = json.loads(HAND.read_text(encoding="utf-8"))
    chinese = anyio.run(read_first_chunk, CHINESE_NOTE)
    oracles["zh"] = Oracle("zh-md", "examples/docs/蝙蝠.md", chinese, "zh")
    oracles["zh-pdf"] = Oracle(
        "zh-pdf", "examples/docs/蝙蝠.md printed to PDF", chinese_pdf_text(chinese), "zh"
    )
    oracles["ja"] = Oracle("ja-note", "written for raftkit", data["japanese_note"], "ja")
    rows: list[tuple[Oracle, Case]] = []
    for row in data["cases"]:
        case = Case(
            row["class"], row["label"], row["expect"], row["quotes"], row["answer"], row["note"],
            row["normalisation"],
        )  # fmt: skip
        rows.append((oracles[row["source"]], case))
        if row["source"] == "zh" and row["class"] in ("verbatim", "lazy_one_word", "invented"):
            # the same quote against the PDF's text, where line breaks cut the sentences
            cls = "cjk_pdf_layout" if row["label"] == "accept" else row["class"]
            pdf = Case(cls, case.label, case.expect, case.quotes, case.answer, "PDF; " + case.note)
            rows.append((oracles["zh-pdf"], pdf))
    return rows


# ----------------------------------------------------------------------------- main


def build() -> tuple[list[Oracle], list[dict[str, Any]]]:
    chunks = anyio.run(pdf_chunks)
    chosen = pick_chunks(chunks)
    rng = random.Random(SEED)
    rows: list[tuple[Oracle, Case]] = []
    prose = {o.id: sentences(o.flat) for o in chosen}
    for o in chosen:
        article = o.id.rpartition("#")[0]
        others = [s for c in chosen if not c.id.startswith(article) for s in prose[c.id]]
        for generator in GENERATORS:
            rows.extend((o, case) for case in generator(o, prose[o.id], rng))
        rows.extend((o, case) for case in invented(o, prose[o.id], rng, others))
    rows.extend(hand_cases({c.id: c for c in chunks}))
    counts: dict[str, int] = {}
    cases: list[dict[str, Any]] = []
    for o, case in rows:
        counts[case.cls] = counts.get(case.cls, 0) + 1
        answer = cot(case.quotes, case.answer, cjk=o.language in ("zh", "ja"))
        cases.append(
            {
                "id": f"{o.language}-{case.cls}-{counts[case.cls]:03d}",
                "class": case.cls,
                "label": case.label,
                "expect": case.expect,
                "normalisation": case.normalisation or None,
                "oracle": o.id,
                "answer": answer,
                "note": case.note,
            }
        )
    used = {o.id: o for o, _ in rows}
    return list(used.values()), cases


def main() -> None:
    oracles, cases = build()
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "oracles.jsonl").open("w", encoding="utf-8") as f:
        for o in oracles:
            row = {"id": o.id, "source": o.source, "language": o.language, "text": o.text}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    with (OUT / "cases.jsonl").open("w", encoding="utf-8") as f:
        for case in cases:
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
    labels = {label: sum(c["label"] == label for c in cases) for label in ("accept", "reject")}
    print(f"{len(cases)} cases ({labels}) over {len(oracles)} oracles -> {OUT}")


if __name__ == "__main__":
    main()
