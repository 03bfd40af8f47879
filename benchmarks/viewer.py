"""``raftkit show`` on a synthetic run of 100,000 examples: seconds, peak memory, page size.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/viewer.py                       # 100k examples, and 10k
    .venv/bin/python benchmarks/viewer.py --examples 20000 --small 2000

The synthetic run looks like a real one of that size: documents of 20 chunks, chunks of about
2,000 characters (about 512 tokens, the default chunk size; one document in ten Chinese),
five questions a chunk, about 4 % of them rejected, contexts of the oracle (kept with p = 0.8)
and four distractors, answers quoting a sentence of the oracle. Every record is a valid
``RaftExample``.

Measured, each in a child process (CPU time and peak RSS from ``wait4``; wall time too, but
these machines are shared, so CPU time is the figure to trust):

- ``raftkit --help``: what any raftkit command costs before it starts (imports);
- the floor: reading ``examples.jsonl`` and ``json.loads`` of every line, nothing else;
- ``raftkit show RUN`` on the small and the big run.

Reported as ratios within one run: the viewer's CPU time over the floor's (what the page costs
beyond parsing the file it must read), and big over small for CPU time (linear is 10), peak RSS
and page size (flat is 1).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from raftkit.types import RaftExample

_WORD_TEXT = """the of and to in is was for on that with as by at from his her an which were are
bat wing flight cave species fossil genus skull teeth blood colony night prey sound echo board
wave surf foil speed lift water rider wind design hydrofoil mast keel measured larger smaller
century region museum specimen described named found recorded"""
WORDS = _WORD_TEXT.split()
HAN = "蝙蝠是唯一能够真正飞行的哺乳动物它们前肢演化成了翼大多数小型依靠回声定位在黑暗中捕食发出高频声波"  # noqa: E501
CHUNKS_PER_DOCUMENT = 20
QUESTIONS_PER_CHUNK = 5
DISTRACTORS = 4
REJECTED = 0.04
REASONS = ("quote_not_in_oracle", "no_answer_line", "no_quotes")


def chunk_text(rng: random.Random, chars: int, chinese: bool) -> str:
    sentences: list[str] = []
    size = 0
    while size < chars:
        if chinese:
            sentence = "".join(rng.choices(HAN, k=rng.randint(12, 40))) + "。"
        else:
            words = rng.choices(WORDS, k=rng.randint(8, 24))
            sentence = " ".join(words).capitalize() + "."
        sentences.append(sentence)
        size += len(sentence) + 1
    # PDF-like line breaks every few sentences
    return "".join(s + ("\n" if i % 3 == 2 else " ") for i, s in enumerate(sentences)).strip()


def make_run(root: Path, examples: int, chunk_chars: int, seed: int = 0) -> Path:
    """Write a generation run directory with ``examples`` examples; return it."""
    rng = random.Random(seed)
    per_chunk = QUESTIONS_PER_CHUNK * (1 - REJECTED)
    n_chunks = int(examples / per_chunk) + CHUNKS_PER_DOCUMENT
    chunks: list[tuple[str, str, str]] = []  # id, document id, text
    root.mkdir(parents=True)
    with (root / "chunks.jsonl").open("w", encoding="utf-8") as f:
        for i in range(n_chunks):
            d = i // CHUNKS_PER_DOCUMENT
            chinese = d % 10 == 9
            doc = f"文档-{d:05d}.pdf" if chinese else f"document-{d:05d}.pdf"
            cid = f"{doc}#{i % CHUNKS_PER_DOCUMENT}"
            text = chunk_text(rng, chunk_chars, chinese)
            chunks.append((cid, doc, text))
            start = 0
            record = {
                "id": cid, "document_id": doc, "index": i % CHUNKS_PER_DOCUMENT, "text": text,
                "start": start, "end": start + len(text), "page_start": None, "page_end": None,
                "metadata": {},
            }  # fmt: skip
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    written = rejected = 0
    reasons: dict[str, int] = {}
    with (
        (root / "examples.jsonl").open("w", encoding="utf-8") as out,
        (root / "rejections.jsonl").open("w", encoding="utf-8") as rej,
    ):
        for index, (cid, doc, text) in enumerate(chunks):
            if written >= examples:
                break
            sentences = [s for s in text.replace("\n", " ").split(". ") if len(s) > 20]
            sentences = sentences or [text[:80]]
            for q in range(QUESTIONS_PER_CHUNK):
                if written >= examples:
                    break
                qid = f"q-{index:06d}-{q}"
                quote = rng.choice(sentences).strip()
                question = f"What does the text say about {' '.join(quote.split()[:6])}?"
                if rng.random() < REJECTED:
                    reason = rng.choice(REASONS)
                    reasons[reason] = reasons.get(reason, 0) + 1
                    rejected += 1
                    record = {
                        "question_id": qid, "chunk_id": cid, "question": question,
                        "reason": reason, "attempts": 3, "last_answer": "I think so.",
                    }  # fmt: skip
                    rej.write(json.dumps(record, ensure_ascii=False) + "\n")
                    continue
                keep = rng.random() < 0.8
                others = [chunks[rng.randrange(len(chunks))] for _ in range(DISTRACTORS)]
                picked = ([(cid, text, True)] if keep else []) + [
                    (o[0], o[2], False) for o in others
                ]
                rng.shuffle(picked)
                documents = [
                    {"chunk_id": c, "position": p, "is_oracle": o, "title": "", "text": t}
                    for p, (c, t, o) in enumerate(picked)
                ]
                final = " ".join(quote.split()[6:12]) or quote[:10]
                answer = (
                    f"The question asks about this. The document says "
                    f"##begin_quote##{quote}##end_quote## so the answer follows.\n"
                    f"<ANSWER>: {final}"
                )
                record = {
                    "id": qid, "question_id": qid, "question": question, "chunk_id": cid,
                    "document_id": doc, "documents": documents, "oracle_present": keep,
                    "cot_answer": answer, "final_answer": final, "quotes": [quote],
                    "teacher_model": "gpt-4o",
                    "usage": {"prompt_tokens": 2900, "completion_tokens": 120, "cached_tokens": 0},
                    "split": None, "metadata": {"attempts": 1},
                }  # fmt: skip
                if written == 0:
                    RaftExample.model_validate(record)  # the synthetic run is a valid one
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1
    documents_total = len({c[1] for c in chunks})
    report = {
        "status": "completed", "source": "synthetic", "run_dir": str(root),
        "teacher_model": "gpt-4o", "simulated_teacher": False, "files": documents_total,
        "documents": documents_total, "chunks": len(chunks), "chunks_done": len(chunks),
        "questions": written + rejected, "examples": written, "rejections": reasons,
        "prompt_tokens": 290 * written, "completion_tokens": 120 * written,
        "cost_usd": 0.004 * written, "wall_seconds": 0.5 * written,
    }  # fmt: skip
    (root / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    settings = {"distractors": DISTRACTORS, "oracle_probability": 0.8, "seed": 0}
    (root / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    return root


FLOOR = """
import json, sys
n = 0
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        json.loads(line)
        n += 1
print(n)
"""


def timed(command: list[str]) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of a child process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{command[:4]} failed with status {status}")
    return {
        "wall_s": elapsed,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports kilobytes
    }


def measure(run: Path) -> dict[str, float]:
    floor = timed([sys.executable, "-c", FLOOR, str(run / "examples.jsonl")])
    show = timed([sys.executable, "-m", "raftkit.cli", "show", str(run)])
    return {
        "examples_jsonl_mb": (run / "examples.jsonl").stat().st_size / 2**20,
        **{f"floor_{k}": v for k, v in floor.items()},
        **{f"show_{k}": v for k, v in show.items()},
        "html_kb": (run / "report.html").stat().st_size / 2**10,
        "show_over_floor_cpu": show["cpu_s"] / floor["cpu_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000, help="0: skip the small run")
    parser.add_argument("--chunk-chars", type=int, default=2_000)
    parser.add_argument("--keep", type=Path, help="build the runs here and keep them")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="raftkit-viewer-")) if args.keep is None else args.keep
    try:
        # what every raftkit command costs before it does anything: imports, parser
        startup = timed([sys.executable, "-m", "raftkit.cli", "--help"])
        results: dict[str, object] = {"cli_startup": startup}
        print("cli startup:", json.dumps(startup))
        sizes = [("small", args.small)] if args.small else []
        for name, n in [*sizes, ("big", args.examples)]:
            started = time.perf_counter()
            run = make_run(tmp / name, n, args.chunk_chars)
            print(f"{name}: {n:,} examples written in {time.perf_counter() - started:.0f} s")
            results[name] = {"examples": n, **measure(run)}
            print(json.dumps(results[name], indent=2))
        if args.small:
            small, big = results["small"], results["big"]
            assert isinstance(small, dict)
            assert isinstance(big, dict)
            results["big_over_small"] = {
                "examples": big["examples"] / small["examples"],
                "cpu": big["show_cpu_s"] / small["show_cpu_s"],
                "peak_rss": big["show_peak_rss_mb"] / small["show_peak_rss_mb"],
                "html_size": big["html_kb"] / small["html_kb"],
            }
        print(json.dumps(results, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
