"""End-to-end generation: examples per minute against a rate budget, and peak memory.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/generation.py            # both measurements
    .venv/bin/python benchmarks/generation.py --only throughput --rpm 1200

Throughput: ``raftkit generate`` on the corpus (``--corpus``; default ../shared/corpus, else
tests/data/corpus) against the simulator (in its own process)
enforcing RPM/TPM with per-call latency. The ideal is what the budget allows for the calls and
tokens the run actually needed: ``min(RPM / calls per example, TPM / tokens per example)``
examples per minute, where tokens are counted as rate limits count them at admission (prompt
plus ``max_tokens``, which the run sets to 400 for every teacher call). Goal: at least 0.9
of it, end to end (extraction and chunking included).

Memory: peak RSS of ``raftkit generate`` on the corpus and on ten copies of it (no limits, no
latency). Goal: ten times the corpus costs at most twice the peak memory.

Both are ratios measured within one run, as these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from default_corpus import default_corpus
from simulator_process import simulator_process

from raftkit.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]


def generate(
    docs: Path, out: Path, sim: tuple[str, str], *extra: str
) -> tuple[dict[str, object], int]:
    """Run ``raftkit generate`` in a child process; its report and peak RSS in bytes."""
    base_url, api_key = sim
    env = {**os.environ, "OPENAI_API_KEY": api_key}
    command = [
        sys.executable, "-m", "raftkit.cli", "generate", str(docs), "--out", str(out),
        "--base-url", base_url, "--quiet", *extra,
    ]  # fmt: skip
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"raftkit generate failed with status {status}")
    report = json.loads(RunDir(out).report_json.read_text(encoding="utf-8"))
    return report, usage.ru_maxrss * 1024  # Linux reports kilobytes


def throughput(
    corpus: Path, rpm: float, tpm: float, latency: float, concurrency: int, max_tokens: int
) -> dict[str, float]:
    """One run; the ideal counts tokens as the server's rate limiter does: prompt + max_tokens."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        simulator_process(
            "--rpm",
            str(int(rpm)),
            "--tpm",
            str(int(tpm)),
            "--latency-base",
            str(latency),
            # enforce per second, as OpenAI and Azure do: no minute-sized burst to start with
            "--window-seconds",
            "1",
        ) as url,
    ):
        report, _ = generate(
            corpus, Path(tmp) / "run", url,
            "--rpm", str(rpm), "--tpm", str(tpm), "--concurrency", str(concurrency),
            "--answer-max-tokens", str(max_tokens), "--question-max-tokens", str(max_tokens),
        )  # fmt: skip
    examples = float(report["examples"])  # type: ignore[arg-type]
    minutes = float(report["wall_seconds"]) / 60  # type: ignore[arg-type]
    calls = float(report["teacher_calls_paid"])  # type: ignore[arg-type]
    prompt = float(report["prompt_tokens"])  # type: ignore[arg-type]
    used = prompt + float(report["completion_tokens"])  # type: ignore[arg-type]
    charged = prompt + calls * max_tokens  # what TPM limits count at admission
    models = report["usage_by_model"]
    assert isinstance(models, dict)
    rate_limited = sum(int(m["rate_limited"]) for m in models.values())
    ideal = min(rpm / (calls / examples), tpm / (charged / examples))
    achieved = examples / minutes
    return {
        "examples": examples,
        "calls": calls,
        "tokens_used_per_example": used / examples,
        "tokens_charged_per_example": charged / examples,
        "wall_seconds": minutes * 60,
        "examples_per_minute": achieved,
        "ideal_examples_per_minute": ideal,
        "ratio": achieved / ideal,
        "rate_limited_429s": float(rate_limited),
    }


def memory(corpus: Path, copies: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, simulator_process() as url:
        big = Path(tmp) / "big"
        for i in range(copies):
            shutil.copytree(corpus, big / f"copy{i:02d}")
        small_report, small_rss = generate(corpus, Path(tmp) / "one", url)
        big_report, big_rss = generate(big, Path(tmp) / "ten", url)
    return {
        "corpus_examples": float(small_report["examples"]),  # type: ignore[arg-type]
        "corpus_peak_rss_mb": small_rss / 2**20,
        "copies": float(copies),
        "copies_examples": float(big_report["examples"]),  # type: ignore[arg-type]
        "copies_peak_rss_mb": big_rss / 2**20,
        "ratio": big_rss / small_rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["throughput", "memory"])
    parser.add_argument(
        "--corpus", type=Path, help="default: ../shared/corpus, else tests/data/corpus"
    )
    parser.add_argument("--rpm", type=float, default=1200)
    parser.add_argument("--tpm", type=float, default=2_000_000)
    parser.add_argument("--tpm-bound", type=float, default=600_000, help="TPM of the TPM-bound run")
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument(
        "--max-tokens", type=int, default=400, help="max_tokens of every teacher call"
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    corpus: Path = args.corpus or default_corpus()
    if args.only in (None, "throughput"):
        for name, rpm, tpm in (
            ("RPM-bound", args.rpm, args.tpm),
            ("TPM-bound", args.rpm * 10, args.tpm_bound),
        ):
            result = throughput(corpus, rpm, tpm, args.latency, args.concurrency, args.max_tokens)
            print(f"throughput {name} rpm={rpm:g} tpm={tpm:g}: " + json.dumps(result, indent=None))
    if args.only in (None, "memory"):
        print(f"memory x{args.copies}: " + json.dumps(memory(corpus, args.copies)))


if __name__ == "__main__":
    main()
