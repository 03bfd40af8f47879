"""Precision and recall of the answer verifier, old against new, on the labelled set.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/verifier.py            # the table for docs/synthesis.md
    .venv/bin/python benchmarks/verifier.py --misses   # also list every wrong verdict

The set is tests/data/verifier/ (built by benchmarks/verifier_cases.py from the corpus). Each
case is labelled ``accept`` (a careful reviewer keeps it as training data) or ``reject``. An
accepted answer is a positive:

- precision = labelled-accept among the accepted — how much of the kept data is sound;
- recall = accepted among the labelled-accept — how much sound data survives.

"Old" is the verifier as it was before issue 14 — a plain substring test after the same base
normalisation, no word boundaries, no minimum, no check of the final answer — copied below so
that both run in one process on the same cases. It lives only here, not in the library.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from raftkit.synth import verify_answer  # noqa: E402

DATA = ROOT / "tests" / "data" / "verifier"

# ----------------------------------------------------------------------------- the old verifier
# (raftkit.synth.verify and raftkit.synth._text before issue 14, reduced to the yes/no verdict)

_OLD_CJK = (
    "\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3200-\u33ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
)
_OLD_SPACE_NEAR_CJK = re.compile(rf"(?<=[{_OLD_CJK}])\s+|\s+(?=[{_OLD_CJK}])")
_OLD_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"), None)
_OLD_MARKS = str.maketrans(
    dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'")
    | dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"')
    | dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2212", "-")
)
_OLD_MARKER = re.compile(r"##\s*(begin|end)[\s_\-]*quote\s*##", re.IGNORECASE)
_OLD_ANSWER = re.compile(r"<\s*answer\s*>\s*[:：]", re.IGNORECASE)
_OLD_ELLIPSIS = re.compile(r"\.{3,}|…+")
_OLD_WRAPPING = {'"': '"', "'": "'", "「": "」", "『": "』", "“": "”", "‘": "’", "《": "》"}


def _old_match_form(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_OLD_INVISIBLE).translate(_OLD_MARKS)
    return re.sub(r"\s+", " ", _OLD_SPACE_NEAR_CJK.sub("", text)).strip()


def _old_unwrap(quote: str) -> str:
    while len(quote) >= 2 and _OLD_WRAPPING.get(quote[0]) == quote[-1]:
        quote = quote[1:-1].strip()
    return quote


def _old_found(quote: str, text: str) -> bool:
    if not quote:
        return False
    if quote in text:
        return True
    pieces = [p.strip() for p in _OLD_ELLIPSIS.split(quote) if p.strip()]
    if len(pieces) < 2:
        return False
    at = 0
    for piece in pieces:
        found = text.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def old_verify(answer: str, oracle: str) -> str:
    """``"accept"`` or the old rejection reason."""
    quotes: list[str] = []
    start: int | None = None
    for marker in _OLD_MARKER.finditer(answer):
        if marker.group(1).lower() == "begin":
            if start is not None:
                return "unbalanced_quote_markers"
            start = marker.end()
        else:
            if start is None:
                return "unbalanced_quote_markers"
            quotes.append(answer[start : marker.start()].strip())
            start = None
    tags = list(_OLD_ANSWER.finditer(answer))
    if start is not None:
        return "unbalanced_quote_markers"
    if not tags:
        return "no_answer_line"
    if not _OLD_MARKER.sub("", answer[tags[-1].end() :]).strip():
        return "empty_answer"
    quotes = [q for q in map(_old_unwrap, quotes) if _old_match_form(q)]
    if not quotes:
        return "no_quotes"
    text = _old_match_form(oracle)
    if any(not _old_found(_old_match_form(q), text) for q in quotes):
        return "quote_not_in_oracle"
    return "accept"


def new_verify(answer: str, oracle: str) -> str:
    result = verify_answer(answer, oracle)
    return "accept" if result.ok else str(result.reason)


# ----------------------------------------------------------------------------- scoring


def load() -> tuple[dict[str, str], list[dict[str, str]]]:
    with (DATA / "oracles.jsonl").open(encoding="utf-8") as f:
        oracles = {row["id"]: row["text"] for row in map(json.loads, f)}
    with (DATA / "cases.jsonl").open(encoding="utf-8") as f:
        cases = [json.loads(line) for line in f]
    return oracles, cases


def score(verdicts: list[str], cases: list[dict[str, str]]) -> dict[str, float]:
    accepted = [v == "accept" for v in verdicts]
    good = [c["label"] == "accept" for c in cases]
    tp = sum(a and g for a, g in zip(accepted, good, strict=True))
    return {
        "accepted": sum(accepted),
        "precision": tp / max(1, sum(accepted)),
        "recall": tp / max(1, sum(good)),
        "false_accepts": sum(a and not g for a, g in zip(accepted, good, strict=True)),
        "false_rejects": sum(g and not a for a, g in zip(accepted, good, strict=True)),
    }


def timed(
    verify: Callable[[str, str], str], oracles: dict[str, str], cases: list[dict[str, str]]
) -> tuple[list[str], float]:
    started = time.perf_counter()
    verdicts = [verify(c["answer"], oracles[c["oracle"]]) for c in cases]
    return verdicts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--misses", action="store_true", help="list every wrong verdict")
    args = parser.parse_args()
    oracles, cases = load()
    old, old_seconds = timed(old_verify, oracles, cases)
    new, new_seconds = timed(new_verify, oracles, cases)
    labels = Counter(c["label"] for c in cases)
    print(
        f"{len(cases)} cases: {labels['accept']} to accept, {labels['reject']} to reject, "
        f"{len(oracles)} oracle chunks\n"
    )
    print("| verifier | accepted | precision | recall | false accepts | false rejects |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, verdicts in (("old (substring)", old), ("new", new)):
        s = score(verdicts, cases)
        print(
            f"| {name} | {s['accepted']:.0f} | {s['precision']:.3f} | {s['recall']:.3f} | "
            f"{s['false_accepts']:.0f} | {s['false_rejects']:.0f} |"
        )
    print(
        f"\nnew / old time per case: {new_seconds / old_seconds:.1f}x "
        f"({1e3 * new_seconds / len(cases):.2f} ms per case)\n"
    )
    print("| class | label | cases | old accepts | new accepts | new reasons |")
    print("|---|---|---:|---:|---:|---|")
    classes: dict[tuple[str, str], list[int]] = {}
    for i, case in enumerate(cases):
        classes.setdefault((case["class"], case["label"]), []).append(i)
    for (cls, label), items in sorted(classes.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        reasons = Counter(new[i] for i in items if new[i] != "accept")
        shown = ", ".join(f"{r} {n}" for r, n in reasons.most_common())
        print(
            f"| {cls} | {label} | {len(items)} | {sum(old[i] == 'accept' for i in items)} | "
            f"{sum(new[i] == 'accept' for i in items)} | {shown} |"
        )
    if args.misses:
        print()
        for i, case in enumerate(cases):
            for name, verdicts in (("old", old), ("new", new)):
                if (verdicts[i] == "accept") != (case["label"] == "accept"):
                    print(f"{name} {case['id']}: {verdicts[i]} ({case['note']})")


if __name__ == "__main__":
    main()
