"""Can this model still be fine-tuned (or used) here, and for how long? Asked before paying.

A hosted model's life has dates: the provider's own fine-tuning cut-off (OpenAI takes no new
jobs from 2027-01-06), a model's training cut-off (Azure's ``deprecation.fine_tune``) and its
shutdown (OpenAI's ``shutdown_date``, Azure's ``deprecation.inference``), after which it and
every fine-tune of it stop serving. :func:`check_model` asks the service
(:func:`raftkit.llm.models.retrieve_model`, a free call) and falls back on the dated table
``raftkit/data/lifecycle.toml`` (:class:`LifecycleTable`), then judges: past a date that
forbids the work is a refusal (:class:`ModelLifecycleError`, one line naming the date, what
still works and the alternatives); a date within ``warn_days`` is a warning with the days left.

"Today" is the service's (its ``Date`` header) unless the caller gives one; only without
either is the local clock read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import UsageError
from raftkit.llm import LLMClient
from raftkit.llm.models import ModelLookup, retrieve_model
from raftkit.reference_data import ReferenceTable, load_reference, parse_day

__all__ = [
    "ALTERNATIVES",
    "LifecycleFinding",
    "LifecycleReport",
    "LifecycleTable",
    "ModelLifecycleError",
    "Purpose",
    "assess",
    "base_model_name",
    "check_model",
]

#: ``finetune``: a new fine-tuning job on the model; ``inference``: calling it (generation,
#: evaluation).
Purpose = Literal["finetune", "inference"]
Level = Literal["warning", "refused"]
#: Where "today" came from: the caller, the service's ``Date`` header, or the local clock.
TodayFrom = Literal["given", "service", "clock"]

#: Where else a RAFT student can be trained, said in every refusal to fine-tune.
ALTERNATIVES = (
    "fine-tune on Azure OpenAI instead (--provider azure) or train an open-weight student "
    "locally (--provider local)"
)

_HOSTED = frozenset({"openai", "azure"})
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})$")
_OPENAI_FINE_TUNE = re.compile(r"^ft:(?P<base>[^:]+):")
_AZURE_FINE_TUNE = re.compile(r"^(?P<base>.+?)\.ft-[0-9A-Za-z]")


class ModelLifecycleError(UsageError):
    """The model (or the provider) no longer takes the work asked of it; nothing was paid."""

    def __init__(self, message: str, report: LifecycleReport) -> None:
        super().__init__(message)
        self.report = report


def base_model_name(model: str) -> tuple[str, bool]:
    """``(base, is_fine_tune)``: the base model a name stands for, snapshot date removed
    (``ft:gpt-4o-mini-2024-07-18:org::id`` → ``("gpt-4o-mini", True)``)."""
    fine_tune = False
    name = model
    for pattern in (_OPENAI_FINE_TUNE, _AZURE_FINE_TUNE):
        match = pattern.match(name)
        if match is not None:
            name, fine_tune = match.group("base"), True
            break
    return _SNAPSHOT.sub("", name), fine_tune


class LifecycleTable:
    """The announced dates of ``raftkit/data/lifecycle.toml`` (amended by a user file)."""

    def __init__(self, table: ReferenceTable | None = None) -> None:
        self.table = table if table is not None else load_reference("lifecycle")
        warn = self.table.data.get("warn_days", 60)
        self.warn_days = warn if isinstance(warn, int) and not isinstance(warn, bool) else 60

    @classmethod
    def from_file(cls, path: str | None) -> LifecycleTable:
        """The shipped table amended by ``path`` (``None``: the shipped table)."""
        return cls(load_reference("lifecycle", path))

    def _date(self, section: Mapping[str, object], key: str, where: str) -> date | None:
        value = section.get(key)
        return None if value is None else parse_day(value, where=f"{where}.{key}")

    def provider_name(self, provider: str) -> str:
        name = self.table.section("providers", provider).get("name")
        return name if isinstance(name, str) else provider

    def provider_cutoff(self, provider: str) -> date | None:
        """The day ``provider`` stops taking new fine-tuning jobs (``None``: none announced)."""
        section = self.table.section("providers", provider)
        return self._date(section, "fine_tuning_cutoff", f"providers.{provider}")

    def model_dates(self, model: str, provider: str) -> tuple[date | None, date | None]:
        """``(shutdown, training_cutoff)`` announced for ``model`` (or its base) on
        ``provider``; entries for another provider do not apply."""
        models = self.table.section("models")
        base, _ = base_model_name(model)
        for name in (model, _SNAPSHOT.sub("", model), base):
            entry = models.get(name)
            if not isinstance(entry, Mapping):
                continue
            scope = entry.get("provider")
            if isinstance(scope, str) and scope != provider:
                return None, None
            where = f"models.{name}"
            return (
                self._date(entry, "shutdown", where),
                self._date(entry, "training_cutoff", where),
            )
        return None, None


class LifecycleFinding(BaseModel):
    model_config = ConfigDict(frozen=True)

    level: Level
    message: str


class LifecycleReport(BaseModel):
    """What is known of a model's dates on one provider, and the verdict for ``purpose``."""

    model_config = ConfigDict(frozen=True)

    model: str
    provider: str
    purpose: Purpose
    today: date
    today_from: TodayFrom
    listed: bool | None = Field(None, description="None: the service was not asked")
    shutdown: date | None = None
    shutdown_from: str | None = None
    training_cutoff: date | None = None
    provider_cutoff: date | None = None
    findings: list[LifecycleFinding] = Field(default_factory=list)

    @property
    def refused(self) -> bool:
        return any(f.level == "refused" for f in self.findings)

    @property
    def warnings(self) -> list[str]:
        return [f.message for f in self.findings if f.level == "warning"]

    def days_left(self) -> int | None:
        return None if self.shutdown is None else (self.shutdown - self.today).days

    def raise_if_refused(self) -> None:
        """Raise :class:`ModelLifecycleError` with the first refusal, if there is one."""
        for finding in self.findings:
            if finding.level == "refused":
                raise ModelLifecycleError(finding.message, self)


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def assess(
    model: str,
    *,
    provider: str,
    purpose: Purpose,
    today: date,
    today_from: TodayFrom = "given",
    table: LifecycleTable | None = None,
    lookup: ModelLookup | None = None,
) -> LifecycleReport:
    """The verdict from what is known: the service's answer (``lookup``) before the table."""
    dates = table if table is not None else LifecycleTable()
    report = LifecycleReport(
        model=model, provider=provider, purpose=purpose, today=today, today_from=today_from
    )
    if provider not in _HOSTED:
        return report
    name = dates.provider_name(provider)
    shutdown, cutoff = dates.model_dates(model, provider)
    shutdown_from = f"raftkit's table of {dates.table.as_of.isoformat()}" if shutdown else None
    fine_tunable: bool | None = None
    listed: bool | None = None
    findings: list[LifecycleFinding] = []
    if lookup is not None and lookup.withheld is None:
        listed = lookup.model is not None
        info = lookup.model
        if info is not None:
            if info.shutdown is not None:
                shutdown, shutdown_from = info.shutdown, f"{name}'s models listing"
            cutoff = info.fine_tune_until or cutoff
            fine_tunable = info.fine_tunable
        elif not (provider == "azure" and purpose == "inference"):
            # an Azure chat model is a deployment name, which the models listing never holds
            findings.append(
                LifecycleFinding(
                    level="warning",
                    message=f"the service does not list {model} "
                    f"({lookup.not_found or 'not found'}); raftkit's table decides",
                )
            )
    provider_cutoff = dates.provider_cutoff(provider) if purpose == "finetune" else None
    _, is_fine_tune = base_model_name(model)
    still = (
        f"{model} keeps serving until {shutdown.isoformat()}"
        if shutdown is not None and shutdown > today
        else "existing fine-tuned models keep serving until their shutdown dates"
    )
    if provider_cutoff is not None:
        if today >= provider_cutoff:
            findings.append(
                LifecycleFinding(
                    level="refused",
                    message=f"{name} accepts no new fine-tuning jobs since "
                    f"{provider_cutoff.isoformat()} (today is {today.isoformat()}), so {model} "
                    f"cannot be fine-tuned there; {still}, and generating, exporting and "
                    f"evaluating data still work; {ALTERNATIVES}",
                )
            )
        elif (provider_cutoff - today).days <= dates.warn_days:
            findings.append(
                LifecycleFinding(
                    level="warning",
                    message=f"{name} takes new fine-tuning jobs for "
                    f"{_days((provider_cutoff - today).days)} more: none from "
                    f"{provider_cutoff.isoformat()} on",
                )
            )
    if shutdown is not None:
        left = (shutdown - today).days
        if left <= 0:
            what = "fine-tuned" if purpose == "finetune" else "called"
            findings.append(
                LifecycleFinding(
                    level="refused",
                    message=f"{model} was shut down on {name} on {shutdown.isoformat()} "
                    f"({shutdown_from}; today is {today.isoformat()}) and can no longer be "
                    f"{what} there, nor can its fine-tunes"
                    + (f"; {ALTERNATIVES}" if purpose == "finetune" else ""),
                )
            )
        elif left <= dates.warn_days:
            tail = (
                ": a fine-tune of it shuts down with it"
                if purpose == "finetune" or is_fine_tune
                else ""
            )
            findings.append(
                LifecycleFinding(
                    level="warning",
                    message=f"{model} shuts down on {name} on {shutdown.isoformat()}, "
                    f"{_days(left)} from {today.isoformat()} ({shutdown_from}){tail}",
                )
            )
    if purpose == "finetune" and cutoff is not None and (shutdown is None or cutoff < shutdown):
        left = (cutoff - today).days
        if left <= 0:
            findings.append(
                LifecycleFinding(
                    level="refused",
                    message=f"{model} takes no new fine-tuning jobs on {name} since "
                    f"{cutoff.isoformat()} (today is {today.isoformat()}); {still}; "
                    f"{ALTERNATIVES}",
                )
            )
        elif left <= dates.warn_days:
            findings.append(
                LifecycleFinding(
                    level="warning",
                    message=f"{model} takes new fine-tuning jobs on {name} until "
                    f"{cutoff.isoformat()}: {_days(left)} left",
                )
            )
    if purpose == "finetune" and fine_tunable is False and not is_fine_tune:
        findings.append(
            LifecycleFinding(
                level="refused",
                message=f"{name} lists {model} as a model it does not fine-tune "
                f"(capabilities.fine_tune is false); choose a base model it fine-tunes",
            )
        )
    return report.model_copy(
        update={
            "listed": listed,
            "shutdown": shutdown,
            "shutdown_from": shutdown_from,
            "training_cutoff": cutoff,
            "provider_cutoff": provider_cutoff,
            "findings": findings,
        }
    )


async def check_model(
    client: LLMClient | None,
    model: str,
    *,
    provider: str,
    purpose: Purpose,
    table: LifecycleTable | None = None,
    today: date | None = None,
) -> LifecycleReport:
    """Ask the service about ``model`` (when ``client`` is given and the provider is hosted)
    and judge its dates for ``purpose``; never raises for a refusal (see
    :meth:`LifecycleReport.raise_if_refused`)."""
    lookup = None
    if client is not None and provider in _HOSTED:
        lookup = await retrieve_model(client, model)
    source: TodayFrom
    if today is not None:
        day, source = today, "given"
    elif lookup is not None and lookup.server_time is not None:
        day, source = lookup.server_time.astimezone(UTC).date(), "service"
    else:
        day, source = datetime.now(UTC).date(), "clock"
    return assess(
        model,
        provider=provider,
        purpose=purpose,
        today=day,
        today_from=source,
        table=table,
        lookup=lookup,
    )
