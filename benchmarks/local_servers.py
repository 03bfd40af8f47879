"""Requests per minute at default flags against a local server: few slots, no published limits.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/local_servers.py                      # 1 and 8 slots
    .venv/bin/python benchmarks/local_servers.py --slots 1 8 --backend trio
    .venv/bin/python benchmarks/local_servers.py --slots 1 8 \\
        --server "python -m raftkit.testing --dialect llama.cpp --slots {slots}"
    .venv/bin/python benchmarks/local_servers.py --base-url http://localhost:8080/v1 \\
        --slots 1 --model smollm2                                     # a server already running

The server is a parameter. ``--server`` is a command (``{slots}`` is filled in) that starts an
OpenAI-compatible server and prints a line ending in ``base_url=<url>``, as
``python -m raftkit.testing`` does; by default it is ``tests/slot_server.py``, which serves
``slots`` requests at once, queues the rest and publishes no limits (``--seconds`` plus
``--per-token`` per completion token each). ``--base-url`` uses a server already running.

Each configuration runs the same chat calls twice:

1. **default flags**: from ``--workers`` concurrent callers (16: the chunks a generation run
   keeps in flight by default) through an ``OpenAIClient`` with nothing set, as
   ``raftkit generate`` makes it: no rate limits given, none published, so the concurrency
   is learned;
2. **slots callers**: from exactly ``slots`` callers, what a user who knows the server would
   arrange. No request ever queues, in the client or the server, so their mean latency is
   the unloaded latency.

It prints requests per minute of both, and the ratio of the first to the server's capacity::

    ideal requests/min = slots / unloaded latency x 60

with the unloaded latency measured in run 2 (HTTP and the client included). It also counts
timeouts (attempts retried after no answer) and shows how long requests waited in the server
(the longest a request was in flight in run 1, from ``client.activity()``, over the mean
unloaded latency) and the limit the client learned.
Before each run, one unmeasured request warms the fresh server up: the simulator loads its
tokenizer on first use (2-6 s on this machine, more when it is busy), as a real server may
load its model. That one-off cost is not the server's capacity, and it varies with the
machine's load, so left in both runs it moved the ratio by up to 0.1 from run to run.
Goal: a ratio of at least 0.9 with no timeout, for 1 and for 8 slots. ``--baseline`` adds a
third run with every caller's request in flight at once (no adaptation), for comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from raftkit.errors import APITimeoutError
from raftkit.llm.limiter import LimiterRegistry, RateLimits
from raftkit.llm.openai import OpenAIClient
from raftkit.llm.usage import UsageLedger

ROOT = Path(__file__).resolve().parents[1]
SLOT_SERVER = f"{shlex.quote(sys.executable)} {ROOT / 'tests' / 'slot_server.py'} --slots {{slots}}"


@dataclass
class Run:
    name: str
    seconds: float = 0.0
    delivered: int = 0
    timeouts: int = 0
    lost: int = 0
    latencies: list[float] = field(default_factory=list)
    limits: list[float] = field(default_factory=list)
    #: the longest a request was seen sent and unanswered (queued in the server, and served)
    longest_in_flight: float = 0.0

    @property
    def per_minute(self) -> float:
        return self.delivered / self.seconds * 60.0 if self.seconds else 0.0


@contextlib.asynccontextmanager
async def server_process(command: str) -> AsyncIterator[str]:
    """Start ``command``; yield the base URL it prints (``... base_url=<url>``)."""
    process = await anyio.open_process(shlex.split(command), stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        buffer = b""
        with anyio.fail_after(60):
            while b"base_url=" not in buffer or not buffer.endswith(b"\n"):
                buffer += await process.stdout.receive()
        line = next(x for x in buffer.decode().splitlines() if "base_url=" in x)
        yield line.split("base_url=", 1)[1].strip()
    finally:
        process.terminate()
        with anyio.CancelScope(shield=True):
            await process.wait()


async def run_calls(
    name: str,
    base_url: str,
    *,
    model: str,
    calls: int,
    workers: int,
    max_tokens: int,
    limits: RateLimits | None,
) -> Run:
    result = Run(name)
    ledger = UsageLedger()
    registry = LimiterRegistry(limits)
    todo = iter(range(calls))
    async with OpenAIClient(base_url=base_url, limiters=registry, ledger=ledger) as client:

        async def worker() -> None:
            for index in todo:
                messages = [{"role": "user", "content": f"Question {index}: why do bats fly?"}]
                sent = anyio.current_time()
                try:
                    await client.chat(messages, model=model, max_tokens=max_tokens)
                except APITimeoutError:
                    result.lost += 1
                    continue
                result.latencies.append(anyio.current_time() - sent)
                result.delivered += 1

        async def watch() -> None:
            while True:
                await anyio.sleep(0.1)
                oldest = client.activity().oldest_in_flight_s or 0.0
                result.longest_in_flight = max(result.longest_in_flight, oldest)
                for limiter in registry.limiters().values():
                    stats = limiter.stats()
                    if stats.concurrency is not None:
                        result.limits.append(stats.concurrency)

        started = anyio.current_time()
        async with anyio.create_task_group() as outer:
            outer.start_soon(watch)
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
                    tg.start_soon(worker)
            outer.cancel_scope.cancel()
        result.seconds = anyio.current_time() - started
    usage = ledger.model_usage(model)
    # a retried attempt with no other fault injected is one that got no answer in time
    result.timeouts = usage.retries + result.lost
    return result


async def warm_up(base_url: str, model: str, max_tokens: int) -> float:
    """One request nobody measures (a fresh server's cold start); returns its seconds."""
    started = anyio.current_time()
    registry = LimiterRegistry(RateLimits(max_concurrency=1))
    async with OpenAIClient(base_url=base_url, limiters=registry, ledger=UsageLedger()) as client:
        messages = [{"role": "user", "content": "Warm-up: why do bats fly?"}]
        await client.chat(messages, model=model, max_tokens=max_tokens)
    return anyio.current_time() - started


def report(slots: int, runs: list[Run], cold: list[float]) -> None:
    default, told = runs[0], runs[1]
    unloaded = statistics.mean(told.latencies)
    ideal = slots / unloaded * 60.0
    ratio = default.per_minute / ideal
    waited = default.longest_in_flight / unloaded
    limits = default.limits or [float("nan")]
    ok = ratio >= 0.9 and default.timeouts == 0
    print(
        f"{slots} slot{'s' if slots > 1 else ''}: unloaded latency {unloaded:.3f} s, "
        f"ideal {ideal:,.0f} req/min (warm-up request {max(cold):.1f} s, not counted)\n"
        f"  default flags  {default.per_minute:8,.0f} req/min  ratio {ratio:.3f}  "
        f"timeouts {default.timeouts}  longest in flight x{waited:.1f}  learned limit "
        f"median {statistics.median(limits):.0f} (max {max(limits):.0f})   "
        f"{'OK' if ok else 'MISSED GOAL'}\n"
        f"  slots callers  {told.per_minute:8,.0f} req/min  ratio {told.per_minute / ideal:.3f}  "
        f"timeouts {told.timeouts}"
    )
    for extra in runs[2:]:
        print(
            f"  {extra.name:<14} {extra.per_minute:8,.0f} req/min  "
            f"ratio {extra.per_minute / ideal:.3f}  timeouts {extra.timeouts}  "
            f"longest in flight x{extra.longest_in_flight / unloaded:.1f}"
        )


async def main_async(args: argparse.Namespace) -> None:
    for slots in args.slots:
        calls = args.calls or max(120, 60 * slots)

        async def one_run(
            name: str, base_url: str, workers: int, limits: RateLimits | None, calls: int = calls
        ) -> Run:
            return await run_calls(
                name,
                base_url,
                model=args.model,
                calls=calls,
                workers=workers,
                max_tokens=args.max_tokens,
                limits=limits,
            )

        plan: list[tuple[str, int, RateLimits | None]] = [
            ("default flags", args.workers, None),
            ("slots callers", slots, RateLimits(max_concurrency=slots)),
        ]
        if args.baseline:
            plan.append(("all in flight", args.workers, RateLimits(max_concurrency=args.workers)))
        runs: list[Run] = []
        cold: list[float] = [0.0]
        if args.base_url:
            cold.append(await warm_up(args.base_url, args.model, args.max_tokens))
            for name, workers, limits in plan:
                runs.append(await one_run(name, args.base_url, workers, limits))
        else:
            command = (args.server or SLOT_SERVER).format(slots=slots)
            if not args.server:
                command += f" --seconds {args.seconds} --per-token {args.per_token}"
            for name, workers, limits in plan:
                # a fresh server for each run: nothing queued or cached carries over
                async with server_process(command) as base_url:
                    cold.append(await warm_up(base_url, args.model, args.max_tokens))
                    runs.append(await one_run(name, base_url, workers, limits))
        report(slots, runs, cold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--server", help="command starting a server; {slots} is filled in")
    parser.add_argument("--base-url", help="a server already running (give its --slots)")
    parser.add_argument("--seconds", type=float, default=0.2, help="slot server: fixed time")
    parser.add_argument("--per-token", type=float, default=0.004, help="slot server: per token")
    parser.add_argument("--model", default="local")
    parser.add_argument("--calls", type=int, help="calls per run (default 60 per slot, >= 120)")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--baseline", action="store_true", help="also run with no adaptation")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    if args.server and args.base_url:
        parser.error("give --server or --base-url, not both")
    anyio.run(main_async, args, backend=args.backend)


if __name__ == "__main__":
    main()
