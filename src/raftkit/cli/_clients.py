"""How the command line finds its teacher: OpenAI, Azure OpenAI, a local server or the simulator.

Resolution for ``--provider auto`` (the default): Azure when ``AZURE_OPENAI_ENDPOINT`` is set;
OpenAI (or an OpenAI-compatible server) when ``OPENAI_API_KEY``, ``--base-url`` or
``OPENAI_BASE_URL`` is set; otherwise the built-in loopback simulator, announced loudly,
because its "teacher" writes deterministic placeholder text, not real training data. The
simulator is the one ``raftkit simulator start`` runs in the background when there is one (its
jobs and files outlive each command), else one started for this command alone.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from raftkit.cli._reference import add_reference_arguments, price_table
from raftkit.llm import LLMClient
from raftkit.llm.azure import AzureOpenAIClient
from raftkit.llm.limiter import LimiterRegistry, RateLimits
from raftkit.llm.openai import OpenAIClient
from raftkit.llm.usage import UsageLedger

__all__ = ["OpenedClient", "add_client_arguments", "chosen_provider", "open_client"]

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
    add_reference_arguments(parser)


def _provider(args: argparse.Namespace) -> str:
    chosen: str = args.provider
    if chosen != "auto":
        return chosen
    if os.environ.get("AZURE_OPENAI_ENDPOINT"):
        return "azure"
    if args.base_url or os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return "openai"
    return "simulator"


def chosen_provider(args: argparse.Namespace) -> str:
    """The provider ``open_client`` would open (``openai``, ``azure`` or ``simulator``)."""
    return _provider(args)


@asynccontextmanager
async def open_client(args: argparse.Namespace) -> AsyncIterator[OpenedClient]:
    """The client the command's arguments and environment ask for, opened and closed."""
    provider = _provider(args)
    limits = RateLimits(rpm=args.rpm, tpm=args.tpm, max_concurrency=args.max_concurrency)
    limiters = LimiterRegistry(default=limits)
    ledger = UsageLedger(price_table(args), max_cost_usd=args.max_cost_usd)
    common = {
        "limiters": limiters,
        "ledger": ledger,
        "structured_mode": args.structured_mode,
    }
    if provider == "simulator":
        from raftkit.testing import Simulator  # the server stack only when it is used
        from raftkit.testing.service import find_running

        print(SIMULATOR_NOTICE, file=sys.stderr)
        background = find_running()
        if background is not None:
            print(
                f"raftkit: using the background simulator at {background.base_url}", file=sys.stderr
            )
            async with OpenAIClient(
                base_url=background.base_url, api_key=background.api_key, **common
            ) as client:
                yield OpenedClient(client, ledger, True, provider)
            return
        async with (
            Simulator() as sim,
            OpenAIClient(base_url=sim.base_url, api_key=sim.api_key, **common) as client,
        ):
            yield OpenedClient(client, ledger, True, provider)
        return
    if provider == "azure":
        async with AzureOpenAIClient(**common) as azure:
            yield OpenedClient(azure, ledger, False, provider)
        return
    async with OpenAIClient(base_url=args.base_url, **common) as openai:
        yield OpenedClient(openai, ledger, False, provider)
