"""Throughput at the account's limit: raftkit's client and limiter against the simulator.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/throughput.py            # every scenario
    .venv/bin/python benchmarks/throughput.py rpm tpm    # some of them
    .venv/bin/python benchmarks/throughput.py --calls 200 --backend trio

Each scenario sends N teacher-sized chat calls (a RAFT prompt of about 1,800 tokens as the
simulator counts them, ``max_tokens=400``) through :class:`~raftkit.llm.OpenAIClient` to a loopback
:class:`~raftkit.testing.Simulator` that enforces RPM and TPM in one-second windows (as
OpenAI does: "limits may be enforced over shorter periods"), answers after a latency that
grows with the completion, and may carry load from another client of the same account.

It prints the achieved requests and tokens per minute as a ratio of the ideal::

    ideal calls/min = min(RPM, TPM / tokens per call, concurrency / latency x 60) x (1 - background)

where tokens per call are what the server charges at admission (prompt + ``max_tokens``, the
OpenAI and Azure rule) and latency is the round trip of one call on an idle connection
(measured before the run: the simulated latency plus HTTP and processing). It counts 429s,
retries and lost calls (calls that raised). The goal: a ratio of at least 0.95 in every
scenario, 429s at most 1 % of calls, no lost call.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import anyio

from raftkit.llm.limiter import LimiterRegistry, RateLimits
from raftkit.llm.openai import OpenAIClient
from raftkit.llm.tokens import count_message_tokens
from raftkit.llm.usage import UsageLedger
from raftkit.testing import DEFAULT_API_KEY

MODEL = "gpt-4o-mini"
MAX_TOKENS = 400
#: the simulator enforces each limit over windows this long
WINDOW_SECONDS = 1.0
_CALIBRATION_CALLS = 5
_DOC = (
    "Bats are mammals of the order Chiroptera. With their forelimbs adapted as wings, they "
    "are the only mammals capable of true and sustained flight. Bats are more agile in "
    "flight than most birds, flying with their very long spread-out digits covered with a "
    "thin membrane or patagium. The smallest bat, and arguably the smallest extant mammal, "
    "is Kitti's hog-nosed bat, which is 29 to 34 millimetres in length, 150 mm across the "
    "wings and 2 to 2.6 g in mass. "
)


def teacher_messages(index: int) -> list[dict[str, str]]:
    """A RAFT teacher prompt: a question and four context documents (about 1,900 tokens)."""
    documents = "\n\n".join(f"<DOCUMENT>{_DOC * 3} (part {index}.{d})</DOCUMENT>" for d in range(4))
    return [
        {
            "role": "system",
            "content": "Answer from the documents. Quote them between ##begin_quote## and "
            "##end_quote##, reason step by step, and end with <ANSWER>: and the answer.",
        },
        {
            "role": "user",
            "content": f"{documents}\n\nQuestion {index}: how small is the smallest bat?",
        },
    ]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    rpm: int
    tpm: int
    concurrency: int
    latency_base: float
    latency_per_token: float
    calls: int
    background: float = 0.0
    client_knows_limits: bool = True


SCENARIOS = [
    Scenario(
        "rpm", "RPM-bound: 600 RPM", rpm=600, tpm=100_000_000, concurrency=64,
        latency_base=0.2, latency_per_token=0.0005, calls=300,
    ),
    Scenario(
        "tpm", "TPM-bound: 1M TPM", rpm=6000, tpm=1_000_000, concurrency=64,
        latency_base=0.2, latency_per_token=0.0005, calls=300,
    ),
    Scenario(
        "latency", "latency-bound: 8 in flight, about 1.1 s each", rpm=6000,
        tpm=100_000_000, concurrency=8, latency_base=1.0, latency_per_token=0.001, calls=250,
    ),
    Scenario(
        "unknown", "RPM-bound at 600 RPM, limits learned from headers", rpm=600,
        tpm=100_000_000, concurrency=64, latency_base=0.2, latency_per_token=0.0005, calls=300,
        client_knows_limits=False,
    ),
    Scenario(
        "background", "900 RPM with 40% taken by another client", rpm=900,
        tpm=100_000_000, concurrency=64, latency_base=0.2, latency_per_token=0.0005,
        calls=300, background=0.4, client_knows_limits=False,
    ),
]  # fmt: skip


@dataclass
class Result:
    scenario: Scenario
    seconds: float
    delivered: int
    lost: int
    rate_limited: int
    retries: int
    tokens_per_call: float
    mean_latency: float
    factor: float

    @property
    def ideal_per_min(self) -> float:
        s = self.scenario
        by_tokens = s.tpm / self.tokens_per_call
        by_latency = s.concurrency / self.mean_latency * 60.0
        return min(s.rpm, by_tokens, by_latency) * (1.0 - s.background)

    @property
    def achieved_per_min(self) -> float:
        return self.delivered / self.seconds * 60.0


@contextlib.asynccontextmanager
async def simulator_process(scenario: Scenario) -> AsyncIterator[str]:
    """The simulator in a process of its own (so it does not share the client's GIL)."""
    command = [
        sys.executable, "-m", "raftkit.testing",
        "--rpm", str(scenario.rpm), "--tpm", str(scenario.tpm),
        "--window-seconds", str(WINDOW_SECONDS),
        "--background-load", str(scenario.background),
        "--latency-base", str(scenario.latency_base),
        "--latency-per-token", str(scenario.latency_per_token),
    ]  # fmt: skip
    process = await anyio.open_process(command, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        buffer = b""
        with anyio.fail_after(30):
            while b"\n" not in buffer:
                buffer += await process.stdout.receive()
        line = buffer.split(b"\n", 1)[0].decode()
        yield line.split("base_url=", 1)[1].strip()
    finally:
        process.terminate()
        with anyio.CancelScope(shield=True):
            await process.wait()


async def run_scenario(scenario: Scenario) -> Result:
    limits = (
        RateLimits(rpm=scenario.rpm, tpm=scenario.tpm, max_concurrency=scenario.concurrency)
        if scenario.client_knows_limits
        else RateLimits(max_concurrency=scenario.concurrency)
    )
    registry = LimiterRegistry(limits)
    ledger = UsageLedger()
    delivered = lost = 0
    charged = 0
    latencies: list[float] = []
    async with (
        simulator_process(scenario) as base_url,
        OpenAIClient(
            api_key=DEFAULT_API_KEY,
            base_url=base_url,
            limiters=registry,
            ledger=ledger,
            max_retries=20,
        ) as client,
    ):
        # load the tokenizer, open connections and measure an unloaded round trip: the
        # simulator's latency plus what HTTP, the client and the simulator itself add
        count_message_tokens(teacher_messages(0), MODEL)
        round_trips = []
        for index in range(_CALIBRATION_CALLS):
            sent = anyio.current_time()
            await client.chat(
                teacher_messages(-1 - index), model=MODEL, max_tokens=MAX_TOKENS, temperature=0
            )
            round_trips.append(anyio.current_time() - sent)
        # the calibration calls took their share of the budget; let it refill
        await anyio.sleep(2 * WINDOW_SECONDS)

        async def one(index: int) -> None:
            nonlocal delivered, lost, charged
            try:
                response = await client.chat(
                    teacher_messages(index), model=MODEL, max_tokens=MAX_TOKENS, temperature=0
                )
            except Exception as exc:
                lost += 1
                print(f"  lost call {index}: {exc!r}", file=sys.stderr)
                return
            delivered += 1
            charged += response.usage.prompt_tokens + MAX_TOKENS
            completion = response.usage.completion_tokens
            latencies.append(scenario.latency_base + scenario.latency_per_token * completion)

        # a pool of workers, as a pipeline stage feeds the client: twice the concurrency limit
        # keeps the limiter's queue full without a burst of task start-up work
        todo = iter(range(scenario.calls))

        async def worker() -> None:
            for index in todo:
                await one(index)

        started = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(min(scenario.calls, 2 * scenario.concurrency)):
                tg.start_soon(worker)
        seconds = anyio.current_time() - started
    stats = [limiter.stats() for limiter in registry.limiters().values()]
    report = ledger.report()
    usage = report.models.get(MODEL)
    return Result(
        scenario=scenario,
        seconds=seconds,
        delivered=delivered,
        lost=lost,
        rate_limited=usage.rate_limited if usage else 0,
        retries=usage.retries if usage else 0,
        tokens_per_call=charged / max(1, delivered),
        mean_latency=max(
            sum(latencies) / max(1, len(latencies)), sum(round_trips) / len(round_trips)
        ),
        factor=min((st.factor for st in stats), default=1.0),
    )


def print_result(result: Result) -> None:
    s = result.scenario
    ratio = result.achieved_per_min / result.ideal_per_min
    tokens_ratio = result.achieved_per_min * result.tokens_per_call
    ok = ratio >= 0.95 and result.rate_limited <= 0.01 * s.calls and result.lost == 0
    print(
        f"{s.name:<11} {s.description}\n"
        f"  {result.delivered} calls in {result.seconds:.1f} s: "
        f"{result.achieved_per_min:,.0f} req/min, {tokens_ratio:,.0f} tokens/min; "
        f"ideal {result.ideal_per_min:,.0f} req/min -> ratio {ratio:.3f}\n"
        f"  429s {result.rate_limited} ({result.rate_limited / s.calls:.1%}), "
        f"retries {result.retries}, lost {result.lost}, "
        f"final rate factor {result.factor:.2f}   {'OK' if ok else 'MISSED GOAL'}"
    )


async def main_async(names: list[str], calls: int | None) -> None:
    chosen = [s for s in SCENARIOS if not names or s.name in names]
    for scenario in chosen:
        if calls is not None:
            scenario = replace(scenario, calls=calls)
        print_result(await run_scenario(scenario))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help=", ".join(s.name for s in SCENARIOS))
    parser.add_argument("--calls", type=int, default=None, help="calls per scenario")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    unknown = set(args.scenarios) - {s.name for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    anyio.run(main_async, args.scenarios, args.calls, backend=args.backend)


if __name__ == "__main__":
    main()
