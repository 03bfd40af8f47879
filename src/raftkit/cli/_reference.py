"""The dated tables on the command line: which files amend them, what "today" is, and the
lifecycle check every command runs before it pays for anything.

- ``--defaults-file FILE`` / ``RAFTKIT_DEFAULTS``: amends ``raftkit/data/defaults.toml`` (default
  models, prices, Azure tiers and deployment types).
- ``--lifecycle-file FILE`` / ``RAFTKIT_LIFECYCLE``: amends ``raftkit/data/lifecycle.toml``.
- ``RAFTKIT_TODAY=2027-01-07``: the day the checks take as today when no service is asked
  (dry runs, exports without credentials); otherwise the service's ``Date`` is today.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date

from raftkit.cli._errors import explain
from raftkit.errors import APIError, UsageError
from raftkit.finetune import LifecycleReport, LifecycleTable, check_model
from raftkit.finetune.lifecycle import Purpose
from raftkit.llm import LLMClient
from raftkit.llm.usage import PriceTable
from raftkit.reference_data import ReferenceTable, default_models, load_reference, parse_day

__all__ = [
    "DEFAULTS_ENV",
    "LIFECYCLE_ENV",
    "TODAY_ENV",
    "add_reference_arguments",
    "defaults_table",
    "hosted_provider",
    "lifecycle_table",
    "price_table",
    "report_lifecycle",
    "require_provider",
    "student_default",
    "teacher_default",
    "today_override",
]

DEFAULTS_ENV = "RAFTKIT_DEFAULTS"
LIFECYCLE_ENV = "RAFTKIT_LIFECYCLE"
TODAY_ENV = "RAFTKIT_TODAY"


def add_reference_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dated tables (prices, defaults, lifecycle dates)")
    group.add_argument(
        "--defaults-file",
        default=os.environ.get(DEFAULTS_ENV) or None,
        help=f"a TOML file amending raftkit's default models and prices ({DEFAULTS_ENV})",
    )
    group.add_argument(
        "--lifecycle-file",
        default=os.environ.get(LIFECYCLE_ENV) or None,
        help=f"a TOML file amending raftkit's model lifecycle dates ({LIFECYCLE_ENV})",
    )


def defaults_table(args: argparse.Namespace) -> ReferenceTable:
    path: str | None = getattr(args, "defaults_file", None)
    return load_reference("defaults", path)


def lifecycle_table(args: argparse.Namespace) -> LifecycleTable:
    path: str | None = getattr(args, "lifecycle_file", None)
    return LifecycleTable.from_file(path)


def price_table(args: argparse.Namespace) -> PriceTable:
    path: str | None = getattr(args, "defaults_file", None)
    return PriceTable.from_file(path) if path else PriceTable()


def teacher_default(args: argparse.Namespace) -> str:
    return default_models(defaults_table(args)).teacher


def student_default(args: argparse.Namespace) -> str:
    return default_models(defaults_table(args)).student


def today_override() -> date | None:
    value = os.environ.get(TODAY_ENV)
    return parse_day(value, where=TODAY_ENV) if value else None


def hosted_provider(provider: str) -> str:
    """The provider whose dates apply: the simulator imitates OpenAI."""
    return "openai" if provider == "simulator" else provider


async def report_lifecycle(
    args: argparse.Namespace,
    client: LLMClient | None,
    model: str,
    *,
    provider: str,
    purpose: Purpose,
    refuse: bool = True,
    note: str = "",
) -> LifecycleReport:
    """Check ``model``, print its warnings to stderr and raise on a refusal (or, with
    ``refuse=False``, print the refusal as a warning followed by ``note``).

    With ``refuse=False`` the check is advice for work that needs no service (an export): a
    service that cannot be asked (unreachable, or refusing the key) is a warning, and the
    dated table judges alone.
    """
    try:
        report = await _check(args, client, model, provider, purpose)
    except APIError as error:
        if refuse or client is None:
            raise
        why = explain(error).lines[0]
        print(
            f"raftkit: warning: could not ask the service about {model} ({why}); "
            "judging by raftkit's dated lifecycle table alone",
            file=sys.stderr,
        )
        report = await _check(args, None, model, provider, purpose)
    for message in report.warnings:
        print(f"raftkit: warning: {message}", file=sys.stderr)
    if refuse:
        report.raise_if_refused()
    else:
        for finding in report.findings:
            if finding.level == "refused":
                print(f"raftkit: warning: {finding.message}{note}", file=sys.stderr)
    return report


async def _check(
    args: argparse.Namespace,
    client: LLMClient | None,
    model: str,
    provider: str,
    purpose: Purpose,
) -> LifecycleReport:
    return await check_model(
        client,
        model,
        provider=hosted_provider(provider),
        purpose=purpose,
        table=lifecycle_table(args),
        today=today_override(),
    )


def require_provider(provider: str, option: str, *allowed: str) -> None:
    if provider not in allowed:
        raise UsageError(f"{option} is for {' or '.join(allowed)}, not {provider}")
