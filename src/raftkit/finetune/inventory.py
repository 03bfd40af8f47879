"""``raftkit jobs inventory``: the account's fine-tuned models and how long each has left.

A fine-tuned model shuts down with its base model (OpenAI's listing reports the base's
``shutdown_date`` on the fine-tune; Azure's reports ``deprecation.inference`` and, for further
training, ``deprecation.fine_tune``). :func:`fine_tuned_inventory` joins the succeeded jobs
(base model, creation date) with the models listing (shutdown), falling back on the dated
lifecycle table, and counts the days left from the service's date.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from pydantic import BaseModel, ConfigDict, Field

from raftkit.finetune._base import FineTuneProvider
from raftkit.finetune.lifecycle import LifecycleTable, base_model_name
from raftkit.llm import LLMClient
from raftkit.llm.models import ModelInfo, list_models

__all__ = ["FineTunedModel", "Inventory", "fine_tuned_inventory"]


class FineTunedModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    base_model: str | None = None
    created: date | None = None
    job_id: str | None = None
    shutdown: date | None = None
    shutdown_from: str | None = None
    training_until: date | None = Field(None, description="Azure: deprecation.fine_tune")
    listed: bool = True
    days_left: int | None = None

    @property
    def state(self) -> str:
        if self.days_left is not None and self.days_left <= 0:
            return "shut down"
        return "serving" if self.listed else "not listed"


class Inventory(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider: str
    today: date
    models: list[FineTunedModel]

    def render(self) -> str:
        """A text table, soonest shutdown first."""
        if not self.models:
            return f"no fine-tuned models on {self.provider} (as of {self.today.isoformat()})"
        header = ("fine-tuned model", "base model", "created", "shutdown", "days left", "state")
        rows = [header]
        for m in self.models:
            rows.append(
                (
                    m.model,
                    m.base_model or "-",
                    m.created.isoformat() if m.created else "-",
                    m.shutdown.isoformat() if m.shutdown else "none announced",
                    str(m.days_left) if m.days_left is not None else "-",
                    m.state,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        lines.append(f"(as of {self.today.isoformat()}, the service's date)")
        return "\n".join(lines)


def _fine_tuned(info: ModelInfo) -> bool:
    # a job's intermediate checkpoints are usable, but they are not the models it made
    if ":ckpt-step-" in info.id:
        return False
    return info.base_model is not None or base_model_name(info.id)[1]


def _day(seconds: int | None) -> date | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).date()


async def fine_tuned_inventory(
    provider: FineTuneProvider,
    client: LLMClient,
    *,
    provider_name: str,
    table: LifecycleTable | None = None,
    today: date | None = None,
) -> Inventory:
    """Every fine-tuned model of the account: from its succeeded jobs and the models listing."""
    dates = table if table is not None else LifecycleTable()
    listing = await list_models(client)
    day = today or (
        listing.server_time.astimezone(UTC).date()
        if listing.server_time is not None
        else datetime.now(UTC).date()
    )
    found: dict[str, FineTunedModel] = {}
    async for job in provider.list_jobs():
        if job.status != "succeeded" or not job.fine_tuned_model:
            continue
        if job.fine_tuned_model in found:
            continue
        found[job.fine_tuned_model] = FineTunedModel(
            model=job.fine_tuned_model,
            base_model=job.model or None,
            created=_day(job.finished_at or job.created_at),
            job_id=job.id,
            listed=False,
        )
    for info in listing.models:
        if not _fine_tuned(info):
            continue
        known = found.get(info.id)
        found[info.id] = FineTunedModel(
            model=info.id,
            base_model=(known.base_model if known else None)
            or info.base_model
            or base_model_name(info.id)[0],
            created=(known.created if known else None) or _day(info.created),
            job_id=known.job_id if known else None,
            shutdown=info.shutdown,
            shutdown_from="service" if info.shutdown else None,
            training_until=info.fine_tune_until,
            listed=True,
        )
    rows = []
    for entry in found.values():
        shutdown, source = entry.shutdown, entry.shutdown_from
        if shutdown is None:
            shutdown, _ = dates.model_dates(entry.base_model or entry.model, provider_name)
            source = "table" if shutdown else None
        rows.append(
            entry.model_copy(
                update={
                    "shutdown": shutdown,
                    "shutdown_from": source,
                    "days_left": None if shutdown is None else (shutdown - day).days,
                }
            )
        )
    rows.sort(key=lambda m: (m.shutdown or date.max, m.model))
    return Inventory(provider=provider_name, today=day, models=rows)
