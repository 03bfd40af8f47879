"""Azure OpenAI's training tiers and the deployment types of a fine-tuned model.

A fine-tuning job on Azure trains on one of three tiers, chosen per job with the top-level
``trainingType`` field of the job body (API version ``2025-04-01-preview`` or later, or the
``/openai/v1`` surface): ``Standard`` (in the resource's region), ``GlobalStandard`` (wherever
Azure has capacity, cheaper) and ``developerTier`` (spare capacity, cheaper still, may be
preempted). The field is documented in Azure's fine-tuning guides (MicrosoftDocs/azure-ai-docs,
``fine-tuning-rest.md`` and ``fine-tuning-oai-sdk.md``); the published REST specifications
(Azure/azure-rest-api-specs: authoring ``2025-04-01-preview``, the ``OpenAI.v1`` preview) do not
declare it.

The result is deployed through ARM with a SKU: ``Standard``, ``GlobalStandard``,
``ProvisionedManaged`` or ``DeveloperTier`` — the last for evaluating a candidate, without a
hosting fee, and removed by Azure 24 hours after it is created.

Which tiers and deployment types each base model takes, the tiers' price factors and the
deployment types' fees live in the dated table ``raftkit/data/defaults.toml`` (section
``[azure]``), amended by a user file like the rest of it: Azure's models listing does not say
which tiers a model takes, so the table is where raftkit asks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from raftkit.errors import UsageError
from raftkit.finetune.lifecycle import base_model_name
from raftkit.llm.usage import PriceTable
from raftkit.reference_data import ReferenceTable, load_reference

__all__ = [
    "AzureFineTuningCatalog",
    "DeploymentType",
    "TierChoice",
    "TrainingTier",
    "TrainingTierName",
    "tier_supported_by_api_version",
]

TrainingTierName = Literal["standard", "global", "developer"]
#: Preferred first when the caller names no tier: Azure recommends Global Standard (cheaper,
#: shorter queues); Developer is never chosen for the caller (no SLA, no data residency).
_DEFAULT_ORDER: tuple[TrainingTierName, ...] = ("global", "standard")
#: The first API version of the versioned surface that reads ``trainingType``.
_FIRST_TIER_VERSION = "2025-04-01"


class TrainingTier(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    api_value: str
    price_factor: float
    description: str = ""


class DeploymentType(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    sku: str
    hosting_usd_per_hour: float | None = None
    lifetime_hours: float | None = None
    description: str = ""

    def render(self) -> str:
        """One line: the SKU, its fee and its lifetime."""
        parts = [self.sku]
        if self.hosting_usd_per_hour is not None:
            fee = self.hosting_usd_per_hour
            parts.append("no hosting fee" if fee == 0 else f"${fee:.2f}/hour hosting")
        if self.lifetime_hours is not None:
            parts.append(f"removed by Azure {self.lifetime_hours:g} hours after it is created")
        return ", ".join(parts)


class TierChoice(BaseModel):
    """The tier a job will train on (``None``: send no ``trainingType``) and why."""

    model_config = ConfigDict(frozen=True)

    tier: TrainingTier | None
    reason: str


def tier_supported_by_api_version(api_version: str | None, *, v1: bool = False) -> bool:
    """Whether Azure reads ``trainingType`` on this surface (older versions ignore it)."""
    if v1:
        return True
    if not api_version:
        return False
    return api_version[:10] >= _FIRST_TIER_VERSION


def _entries(table: ReferenceTable, key: str, kind: type[BaseModel]) -> dict[str, Any]:
    built: dict[str, Any] = {}
    for name, entry in table.section("azure", key).items():
        if not isinstance(entry, Mapping):
            raise UsageError(f"{table.files[-1]}: azure.{key}.{name} must be a table")
        try:
            built[str(name)] = kind(name=str(name), **entry)
        except ValidationError as e:
            raise UsageError(
                f"{table.files[-1]}: azure.{key}.{name}: {e.errors()[0]['msg']}"
            ) from e
    return built


class AzureFineTuningCatalog:
    """Azure's training tiers, deployment types and what each base model takes, from the
    ``[azure]`` section of a defaults table (the shipped one unless given)."""

    def __init__(self, table: ReferenceTable | None = None) -> None:
        self.table = table if table is not None else load_reference("defaults")
        self.tiers: dict[str, TrainingTier] = _entries(self.table, "training_tiers", TrainingTier)
        self.deployment_types: dict[str, DeploymentType] = _entries(
            self.table, "deployment_types", DeploymentType
        )

    def _model_entry(self, model: str) -> Mapping[str, Any] | None:
        models = self.table.section("azure", "models")
        base, _ = base_model_name(model)
        for name in (model, base):
            entry = models.get(name)
            if isinstance(entry, Mapping):
                return entry
        return None

    def _listed(self, model: str, key: str) -> list[str] | None:
        entry = self._model_entry(model)
        names = entry.get(key) if entry is not None else None
        if not isinstance(names, Sequence) or isinstance(names, str):
            return None
        return [str(n) for n in names]

    def model_tiers(self, model: str) -> list[str] | None:
        """The tiers the table says ``model`` trains on; ``None`` when it does not know."""
        return self._listed(model, "training_tiers")

    def model_deployment_types(self, model: str) -> list[str] | None:
        """The deployment types a fine-tune of ``model`` takes; ``None`` when unknown."""
        return self._listed(model, "deployment_types")

    def tier(self, name: str) -> TrainingTier:
        wanted = name.strip().lower()
        for tier in self.tiers.values():
            if wanted in (tier.name.lower(), tier.api_value.lower()):
                return tier
        raise UsageError(f"unknown Azure training tier {name!r}; known: {', '.join(self.tiers)}")

    def choose_tier(self, model: str, requested: str | None) -> TierChoice:
        """The tier to train ``model`` on: ``requested`` if the model takes it, else the best
        the model takes (Global, then Standard); unknown models get no ``trainingType``."""
        supported = self.model_tiers(model)
        if requested is not None:
            tier = self.tier(requested)
            if supported is not None and tier.name not in supported:
                raise UsageError(
                    f"Azure does not train {model} on the {tier.name} tier "
                    f"({tier.api_value}); it takes: {', '.join(supported)} "
                    f"(raftkit's table of {self.table.as_of.isoformat()}; amend it with "
                    "--defaults-file if Azure added the tier)"
                )
            return TierChoice(tier=tier, reason="chosen")
        if supported is None:
            return TierChoice(
                tier=None,
                reason=f"raftkit's table does not list {model}: no trainingType sent, Azure "
                "trains it on its default (Standard)",
            )
        for name in _DEFAULT_ORDER:
            if name in supported and name in self.tiers:
                return TierChoice(
                    tier=self.tiers[name], reason=f"the cheapest tier {model} takes with an SLA"
                )
        return TierChoice(tier=None, reason=f"{model} takes none of raftkit's default tiers")

    def training_price_per_million(
        self, model: str, tier: TrainingTier | None, prices: PriceTable | None = None
    ) -> float | None:
        """The training price of ``model`` on ``tier``: the table's training price times the
        tier's price factor (regional Standard = 1)."""
        price = (prices if prices is not None else PriceTable()).lookup(base_model_name(model)[0])
        if price is None or price.training is None:
            return None
        return price.training * (tier.price_factor if tier is not None else 1.0)

    def deployment_type(self, name: str) -> DeploymentType:
        """A deployment type by raftkit's name (``developer``) or ARM SKU (``DeveloperTier``)."""
        wanted = name.strip().lower()
        for kind in self.deployment_types.values():
            if wanted in (kind.name.lower(), kind.sku.lower()):
                return kind
        known = ", ".join(self.deployment_types)
        raise UsageError(f"unknown Azure deployment type {name!r}; known: {known}")

    def check_deployment(self, model: str, kind: DeploymentType) -> None:
        """Refuse a deployment type the base model of ``model`` does not take (if known)."""
        allowed = self.model_deployment_types(model)
        if allowed is not None and kind.name not in allowed:
            base, _ = base_model_name(model)
            raise UsageError(
                f"Azure does not deploy fine-tunes of {base} as {kind.sku}; it takes: "
                f"{', '.join(allowed)}"
            )
