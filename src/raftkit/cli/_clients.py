"""How the command line finds its teacher: OpenAI, Azure OpenAI, a local server or the simulator.

Resolution for ``--provider auto`` (the default): Azure when ``AZURE_OPENAI_ENDPOINT`` is set;
OpenAI (or an OpenAI-compatible server) when ``OPENAI_API_KEY``, ``--base-url`` or
``OPENAI_BASE_URL`` is set; otherwise the built-in loopback simulator, announced loudly,
because its "teacher" writes deterministic placeholder text, not real training data.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from raftkit.llm import EndpointIdentity, LLMClient
from raftkit.llm.azure import AzureOpenAIClient
from raftkit.llm.limiter import LimiterRegistry, RateLimits
from raftkit.llm.openai import OpenAIClient
from raftkit.llm.usage import UsageLedger

__all__ = ["SIMULATOR_IDENTITY", "OpenedClient", "add_client_arguments", "open_client"]

#: The built-in simulator listens on a new port each time: its identity in journal keys and
#: run settings leaves the port out, so a simulated run resumes like any other.
SIMULATOR_IDENTITY = EndpointIdentity(provider="simulator", host="127.0.0.1", path="/v1")

SIMULATOR_NOTICE = (
    "raftkit: no credentials found (OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT, OPENAI_BASE_URL), "
    "so the teacher is the built-in SIMULATOR on 127.0.0.1.\n"
    "raftkit: its answers are deterministic placeholders built from your documents — fine for "
    "trying raftkit, not for training a model. Set credentials to use a real teacher."
)


@dataclass
class OpenedClient:
    client: LLMClient
    ledger: UsageLedger
    simulated: bool
    provider: str


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("teacher endpoint")
    group.add_argument(
        "--provider",
        choices=["auto", "openai", "azure", "simulator"],
        default="auto",
        help="where requests go (default: auto — from the environment, else the simulator)",
    )
    group.add_argument("--base-url", help="OpenAI-compatible base URL (vLLM, Ollama, llama.cpp)")
    group.add_argument("--rpm", type=float, help="requests per minute of the account/deployment")
    group.add_argument("--tpm", type=float, help="tokens per minute of the account/deployment")
    group.add_argument("--max-concurrency", type=int, help="requests in flight at most")
    group.add_argument("--max-cost-usd", type=float, help="stop before spending more than this")
    group.add_argument(
        "--structured-mode",
        choices=["json_schema", "json_object", "prompt"],
        default="json_schema",
        help="how structured output is requested (json_object for servers without json_schema)",
    )


def _provider(args: argparse.Namespace) -> str:
    chosen: str = args.provider
    if chosen != "auto":
        return chosen
    if os.environ.get("AZURE_OPENAI_ENDPOINT"):
        return "azure"
    if args.base_url or os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return "openai"
    return "simulator"


@asynccontextmanager
async def open_client(args: argparse.Namespace) -> AsyncIterator[OpenedClient]:
    """The client the command's arguments and environment ask for, opened and closed."""
    provider = _provider(args)
    limits = RateLimits(rpm=args.rpm, tpm=args.tpm, max_concurrency=args.max_concurrency)
    limiters = LimiterRegistry(default=limits)
    ledger = UsageLedger(max_cost_usd=args.max_cost_usd)
    common = {
        "limiters": limiters,
        "ledger": ledger,
        "structured_mode": args.structured_mode,
    }
    if provider == "simulator":
        from raftkit.testing import Simulator  # the server stack only when it is used

        print(SIMULATOR_NOTICE, file=sys.stderr)
        async with (
            Simulator() as sim,
            OpenAIClient(
                base_url=sim.base_url,
                api_key=sim.api_key,
                endpoint_identity=SIMULATOR_IDENTITY,
                **common,
            ) as client,
        ):
            yield OpenedClient(client, ledger, True, provider)
        return
    if provider == "azure":
        async with AzureOpenAIClient(**common) as azure:
            yield OpenedClient(azure, ledger, False, provider)
        return
    async with OpenAIClient(base_url=args.base_url, **common) as openai:
        yield OpenedClient(openai, ledger, False, provider)
