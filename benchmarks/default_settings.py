"""Throughput and teacher cost at default settings, against today's behaviour, in one run.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/default_settings.py                       # asyncio and trio
    .venv/bin/python benchmarks/default_settings.py --backend trio --corpus DIR

Each run is ``raftkit generate``'s pipeline at its default flags (the default teacher, 512-token
chunks, five questions a chunk, no ``--rpm``/``--tpm``: the limiter learns the account's limits
from the response headers) in a child process, against the simulator in a process of its own.
The simulator enforces an account of ``--rpm``/``--tpm`` (a minute's budget at once, or
``--window`` seconds' share of it), charges each chat request its prompt plus ``max_tokens``
at admission (plus its 1,024-token default when a request sends none, as OpenAI and Azure do)
and answers after ``--latency-base`` seconds plus
``--latency-per-token`` seconds per completion token.

The runs, one after the other on a fresh simulator each:

- ``today``: ``--max-tokens-policy server-default`` — no ``max_tokens`` sent, the limiter
  reserving the server's default (raftkit's behaviour before adaptive caps);
- ``default``: the new defaults (a learned cap on every call, one answer a call);
- ``k3``, ``k5``: ``--answers-per-call 3`` / ``5`` (cost; prompt caching is on for every run);
- ``k5-mini-judge``: ``--answers-per-call 5 --critique-model gpt-4.1-mini``, the cheapest
  setting documented (the question judge, one call a chunk, on a model a fifth the price);
- ``long``, ``long-k5`` (only when named with ``--runs``): 1,024-token chunks and ten questions
  a chunk (the same questions per token of source), where a chunk's answer prompts share a
  prefix long enough for the provider's prompt cache.

It prints, per run: examples, teacher calls, examples per minute, the **oracle ideal** — the
rate a client that knew every reply's length in advance could reach under the same limits,
``min(RPM / calls per example, TPM / (prompt + completion tokens) per example)`` with the
run's own calls and tokens — and the ratio to it; 429s, calls given up on, tokens charged at
admission per example, and teacher dollars per accepted example (prompt, cached and completion
tokens at the table's prices, as the run's ledger counts them).

Goals (issue 16): ``default`` reaches at least 0.8 of its oracle ideal and at least twice
``today``'s examples per minute; 429s at most 1 % of calls; no call lost; ``default`` costs no
more per example than ``today`` and the cheapest setting at most 0.6 of it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from default_corpus import default_corpus
from simulator_process import simulator_process

ROOT = Path(__file__).resolve().parents[1]

#: name -> extra settings of the run (RaftConfig fields)
RUNS: dict[str, dict[str, Any]] = {
    "today": {"max_tokens_policy": "server-default"},
    "default": {},
    "k3": {"answers_per_call": 3},
    "k5": {"answers_per_call": 5},
    # the cheapest setting documented: five answers a call, the question judge on a mini model
    "k5-mini-judge": {"answers_per_call": 5, "critique": {"model": "gpt-4.1-mini"}},
    # chunks twice as long, twice the questions (the same questions per token of source): the
    # answer prompts of a chunk share a prefix of more than 1,024 tokens, so caching applies
    "long": {"chunk_size": 1024, "questions_per_chunk": 10},
    "long-k5": {"chunk_size": 1024, "questions_per_chunk": 10, "answers_per_call": 5},
}
DEFAULT_RUNS = ["today", "default", "k3", "k5", "k5-mini-judge"]


@dataclass
class Outcome:
    name: str
    report: dict[str, Any]
    charged_tokens: int
    cpu_seconds: float

    @property
    def examples(self) -> int:
        return int(self.report["examples"])

    @property
    def calls(self) -> int:
        return int(self.report["teacher_calls_paid"])

    @property
    def minutes(self) -> float:
        return float(self.report["wall_seconds"]) / 60.0

    @property
    def per_minute(self) -> float:
        return self.examples / self.minutes

    def ideal(self, rpm: float, tpm: float) -> float:
        used = int(self.report["prompt_tokens"]) + int(self.report["completion_tokens"])
        return min(rpm * self.examples / self.calls, tpm * self.examples / used)

    def models(self, field: str) -> int:
        return sum(int(m[field]) for m in self.report["usage_by_model"].values())

    @property
    def dollars_per_example(self) -> float:
        return float(self.report["cost_usd"]) / self.examples


def simulator(args: argparse.Namespace) -> AbstractContextManager[tuple[str, str]]:
    """The simulator in a process of its own, enforcing the account's limits."""
    return simulator_process(
        "--rpm", str(int(args.rpm)), "--tpm", str(int(args.tpm)),
        *(["--window-seconds", str(args.window)] if args.window else []),
        "--latency-base", str(args.latency_base),
        "--latency-per-token", str(args.latency_per_token),
    )  # fmt: skip


def charged(run_dir: Path) -> int:
    """Tokens the server charged at admission: each journaled call's prompt plus its cap (or
    the server's 1,024-token default when it sent none)."""
    total = 0
    with (run_dir / "journal.jsonl").open(encoding="utf-8") as journal:
        for line in journal:
            entry = json.loads(line)
            cap = entry["request"].get("max_tokens") or entry["request"].get(
                "max_completion_tokens"
            )
            total += int(entry["response"]["usage"]["prompt_tokens"]) + int(cap or 1024)
    return total


def run_once(name: str, corpus: Path, backend: str, args: argparse.Namespace, tmp: Path) -> Outcome:
    out = tmp / f"{name}-{backend}"
    with simulator(args) as (base_url, api_key):
        command = [
            sys.executable, __file__, "--child", name, "--backend", backend,
            "--corpus", str(corpus), "--out", str(out), "--base-url", base_url,
        ]  # fmt: skip
        env = {**os.environ, "OPENAI_API_KEY": api_key}
        child = subprocess.Popen(command, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        if status != 0:
            raise SystemExit(f"run {name} ({backend}) failed with status {status}")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return Outcome(name, report, charged(out), usage.ru_utime + usage.ru_stime)


def child(name: str, backend: str, corpus: Path, out: Path, base_url: str) -> None:
    """One generation run, built as ``raftkit generate`` builds it, on ``backend``."""
    import anyio

    from raftkit.llm import OpenAIClient
    from raftkit.llm.limiter import LimiterRegistry
    from raftkit.llm.usage import UsageLedger
    from raftkit.pipeline import RaftConfig, RaftPipeline

    async def main() -> None:
        config = RaftConfig(**RUNS[name])
        async with OpenAIClient(
            base_url=base_url, limiters=LimiterRegistry(), ledger=UsageLedger()
        ) as client:
            report = await RaftPipeline(client, config).run(corpus, out)
        if report.status != "completed":
            raise SystemExit(f"{name}: {report.status} ({report.stop_reason})")

    anyio.run(main, backend=backend)


def show(outcomes: list[Outcome], args: argparse.Namespace, backend: str) -> None:
    today = next((o for o in outcomes if o.name == "today"), None)
    default = next((o for o in outcomes if o.name == "default"), None)
    window = f"{args.window:g} s windows" if args.window else "a minute's budget at once"
    print(f"\n{backend}: {args.rpm:,.0f} RPM, {args.tpm:,.0f} TPM ({window}), latency "
          f"{args.latency_base} s + {args.latency_per_token * 1000:g} ms/token")  # fmt: skip
    print(
        "| run | examples | calls | ex/min | oracle ideal | ratio | 429s | given up "
        "| charged tok/ex | used tok/ex | cached tok | $ saved by caching | $ / example "
        "| vs today | CPU s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for o in outcomes:
        used = int(o.report["prompt_tokens"]) + int(o.report["completion_tokens"])
        versus = o.dollars_per_example / today.dollars_per_example if today else float("nan")
        ideal = o.ideal(args.rpm, args.tpm)
        print(
            f"| {o.name} | {o.examples} | {o.calls} | {o.per_minute:,.1f} | "
            f"{ideal:,.1f} | {o.per_minute / ideal:.3f} "
            f"| {o.models('rate_limited')} | {o.models('failed')} | "
            f"{o.charged_tokens / o.examples:,.0f} | {used / o.examples:,.0f} | "
            f"{int(o.report['cached_tokens']):,} | {float(o.report['saved_by_caching_usd']):.4f} | "
            f"{o.dollars_per_example:.5f} | {versus:.3f} | "
            f"{o.cpu_seconds:,.0f} |"
        )
    if today and default:
        print(
            f"default / today examples per minute: {default.per_minute / today.per_minute:.2f}; "
            f"$ per example: {default.dollars_per_example / today.dollars_per_example:.3f}"
        )
    for o in outcomes:
        caps = ", ".join(
            f"{c['kind']} {c['cap_per_unit']} a unit (lets {c['percentile']:.1%} finish, "
            f"{c['retried']} cut and asked again, {c['cut']} still cut)"
            for c in o.report.get("completion_caps", [])
            if c.get("cap_per_unit") and c.get("percentile") is not None
        )
        if caps:
            print(f"  {o.name} caps: {caps}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="default: ../shared/corpus, else tests/data")
    parser.add_argument("--rpm", type=float, default=600)
    parser.add_argument("--tpm", type=float, default=150_000)
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        help="seconds the simulator enforces its limits over (default: a minute)",
    )
    parser.add_argument("--latency-base", type=float, default=1.0)
    parser.add_argument("--latency-per-token", type=float, default=0.01)
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=DEFAULT_RUNS)
    parser.add_argument("--backend", choices=["asyncio", "trio"], action="append")
    parser.add_argument("--child", choices=list(RUNS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    corpus: Path = args.corpus or default_corpus()
    if args.child:
        child(args.child, (args.backend or ["asyncio"])[0], corpus, args.out, args.base_url)
        return
    print(f"corpus {corpus}; load average before: {os.getloadavg()}")
    for backend in args.backend or ["asyncio", "trio"]:
        outcomes = []
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.runs:
                started = time.monotonic()
                outcomes.append(run_once(name, corpus, backend, args, Path(tmp)))
                print(
                    f"  {name} ({backend}) done in {time.monotonic() - started:.0f} s; "
                    f"load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
            shutil.rmtree(tmp, ignore_errors=True)
        show(outcomes, args, backend)


if __name__ == "__main__":
    main()
