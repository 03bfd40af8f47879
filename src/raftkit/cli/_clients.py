"""How the command line finds its endpoint: OpenAI, Azure OpenAI, a local server or the simulator.

Resolution for ``--provider auto`` (the default): Azure when ``AZURE_OPENAI_ENDPOINT`` is set;
OpenAI (or an OpenAI-compatible server) when ``OPENAI_API_KEY``, ``--base-url`` or
``OPENAI_BASE_URL`` is set; otherwise the built-in loopback simulator, announced loudly and
in the words of the command's role (the teacher of ``generate``, the fine-tuning service of
``finetune``, the models of ``eval``), because what it answers is deterministic placeholder
text, not real data. The simulator is the one
``raftkit simulator start`` runs in the background when there is one (its jobs and files
outlive each command), else one started for this command alone.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from raftkit.cli._reference import add_reference_arguments, price_table
from raftkit.llm import EndpointIdentity, LLMClient
from raftkit.llm.azure import AzureOpenAIClient
from raftkit.llm.limiter import LimiterRegistry, RateLimits
from raftkit.llm.openai import OpenAIClient
from raftkit.llm.usage import UsageLedger

__all__ = [
    "ROLES",
    "SIMULATOR_IDENTITY",
    "OpenedClient",
    "add_client_arguments",
    "chosen_provider",
    "open_client",
    "simulator_notice",
]

#: The built-in simulator listens on a new port each time: its identity in journal keys and
#: run settings leaves the port out, so a simulated run resumes like any other.
SIMULATOR_IDENTITY = EndpointIdentity(provider="simulator", host="127.0.0.1", path="/v1")

#: What the endpoint is to each kind of command: (who answers, what its answers are worth).
ROLES: dict[str, tuple[str, str]] = {
    "teacher": (
        "the teacher is",
        "its answers are deterministic placeholders built from your documents — fine for "
        "trying raftkit, not for training a model. Set credentials to use a real teacher.",
    ),
    "fine-tuning": (
        "fine-tuning runs on",
        "its jobs train nothing and its fine-tuned models are names only — fine for trying "
        "the workflow. Set credentials to fine-tune a real model.",
    ),
    "jobs": (
        "the jobs shown are those of",
        "it starts empty in every process and knows no real job. Set credentials to see "
        "your account's jobs.",
    ),
    "evaluation": (
        "the models evaluated are answered by",
        "its answers are deterministic placeholders, so the scores say nothing about real "
        "models. Set credentials to evaluate real models.",
    ),
    "embeddings": (
        "embeddings come from",
        "its vectors are deterministic stand-ins, not a real embedding model. Set "
        "credentials to embed with a real one.",
    ),
}


def simulator_notice(role: str) -> str:
    """The banner printed when no credentials were found and ``role`` falls to the simulator."""
    who, worth = ROLES.get(role, ROLES["teacher"])
    return (
        "raftkit: no credentials found (OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT, OPENAI_BASE_URL), "
        f"so {who} the built-in SIMULATOR on 127.0.0.1.\nraftkit: {worth}"
    )


@dataclass
class OpenedClient:
    client: LLMClient
    ledger: UsageLedger
    simulated: bool
    provider: str


def add_client_arguments(
    parser: argparse.ArgumentParser, *, role: str = "teacher", extra_providers: Sequence[str] = ()
) -> None:
    """The endpoint flags; ``role`` (a key of :data:`ROLES`) words the simulator's banner;
    ``extra_providers`` are choices of ``--provider`` the command handles itself (``local``)."""
    parser.set_defaults(client_role=role)
    group = parser.add_argument_group(f"endpoint ({role})")
    group.add_argument(
        "--provider",
        choices=["auto", "openai", "azure", "simulator", *extra_providers],
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
        default=None,
        help="how structured output is requested (default: json_schema, falling back to "
        "json_object, then prompt, when the server refuses it)",
    )
    group.add_argument(
        "--request-timeout",
        type=float,
        metavar="SECONDS",
        help="seconds one attempt may wait for its answer (default: 60 + 1 per 5 max_tokens, "
        "at most 600)",
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
async def open_client(
    args: argparse.Namespace, *, base_url: str | None = None, ledger: UsageLedger | None = None
) -> AsyncIterator[OpenedClient]:
    """The client the command's arguments and environment ask for, opened and closed.

    ``base_url`` opens an OpenAI-compatible server there instead, whatever ``--provider``
    says (``raftkit eval --model NAME=MODEL@URL``); ``ledger`` shares one spending limit.
    """
    provider = "openai" if base_url else _provider(args)
    limits = RateLimits(rpm=args.rpm, tpm=args.tpm, max_concurrency=args.max_concurrency)
    limiters = LimiterRegistry(default=limits)
    ledger = (
        ledger
        if ledger is not None
        else UsageLedger(price_table(args), max_cost_usd=args.max_cost_usd)
    )
    common = {
        "limiters": limiters,
        "ledger": ledger,
        "structured_mode": args.structured_mode,
        "timeout": args.request_timeout,
    }
    if provider == "simulator":
        from raftkit.testing import Simulator  # the server stack only when it is used
        from raftkit.testing.service import find_running

        print(simulator_notice(getattr(args, "client_role", "teacher")), file=sys.stderr)
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
    async with OpenAIClient(base_url=base_url or args.base_url, **common) as openai:
        yield OpenedClient(openai, ledger, False, provider)
