"""Peak memory of ``raftkit generate --dry-run`` on pathological input: one 20 MB line.

Run by hand (not part of the test suite; each file takes a couple of minutes here)::

    .venv/bin/python benchmarks/pathological_memory.py              # all three kinds, 20 MB
    .venv/bin/python benchmarks/pathological_memory.py --only cjk --size-mb 5

Three one-line ``.txt`` files of ``--size-mb`` each, written to a temporary folder: Latin
words (no line break anywhere), Chinese characters (each one an atom of the chunker), and one
base64 "word" with no space at all. Each is dry-run in a child process of its own, and so is a
one-line file (the baseline: what the command costs with nothing to read); the peak RSS of the
child comes from ``wait4``. Goal: at most 350 MB for each 20 MB file. The ratio of each peak to
the baseline, measured in the same run, is printed too, since these machines are noisy.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_MB = 350.0
_WORDS = [
    *("the", "of", "and", "to", "in", "is", "a", "surfboard", "foil", "hydrofoil", "lift"),
    *("drag", "wing", "mast", "fuselage", "stabiliser", "board", "rider", "speed", "water"),
    *("wave", "ocean", "glide", "pump", "carve"),
]
_CHINESE = (
    "蝙蝠是唯一能够真正飞行的哺乳动物它们的前肢演化成了翼大多数小型蝙蝠依靠回声定位在黑暗中捕食"
)


def write_line(path: Path, kind: str, size: int) -> None:
    """One line of about ``size`` bytes of UTF-8."""
    rng = random.Random(0)
    if kind == "words":
        parts: list[str] = []
        total = 0
        while total < size:
            word = rng.choice(_WORDS) + ("." if rng.random() < 0.05 else "")
            parts.append(word)
            total += len(word) + 1
        text = " ".join(parts)
    elif kind == "cjk":
        count = size // 3  # three bytes a character in UTF-8
        text = (_CHINESE * (count // len(_CHINESE) + 1))[:count]
    else:
        text = base64.b64encode(rng.randbytes(size * 3 // 4)).decode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def dry_run(docs: Path) -> tuple[float, float, int]:
    """Peak RSS (MB) and wall seconds of ``raftkit generate DOCS --dry-run``, and its chunks."""
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable, "-m", "raftkit.cli", "generate", str(docs), "--out", out, "--dry-run",
        ]  # fmt: skip
        started = time.monotonic()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        printed = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"raftkit generate --dry-run failed on {docs} (status {status})")
    chunks = next(
        int(line.split("|")[2].replace(",", ""))
        for line in printed.splitlines()
        if line.startswith("| chunks |")
    )
    return usage.ru_maxrss / 1024, seconds, chunks  # Linux reports kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=20.0)
    parser.add_argument("--only", choices=["words", "cjk", "blob"], action="append")
    args = parser.parse_args()
    kinds = args.only or ["words", "cjk", "blob"]
    size = int(args.size_mb * 1_000_000)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "baseline").mkdir()
        (root / "baseline" / "one.txt").write_text("One short line of text.\n", encoding="utf-8")
        base_mb, base_s, _ = dry_run(root / "baseline")
        results["baseline"] = {"peak_rss_mb": base_mb, "seconds": base_s}
        for kind in kinds:
            folder = root / kind
            write_line(folder / f"{kind}.txt", kind, size)
            peak, seconds, chunks = dry_run(folder)
            results[kind] = {
                "size_mb": size / 1e6,
                "chunks": float(chunks),
                "peak_rss_mb": peak,
                "seconds": seconds,
                "above_baseline_mb": peak - base_mb,
                "ratio_to_baseline": peak / base_mb,
                "within_goal": float(peak <= GOAL_MB),
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
