"""The models the simulated service knows, as of the end of 2026, and how names resolve.

Each :class:`ModelCard` says what a model is (chat or embedding), when it shuts down (OpenAI's
``shutdown_date``), its context window and output limit, which fine-tuning methods it takes
and which Azure training types. A name resolves to a card when it is the card's name, a dated
snapshot of it (``gpt-4o-mini-2024-07-18``, Azure's ``gpt-35-turbo-0125``), or a fine-tune of
it (``ft:<base>:<org>:<suffix>:<id>[:ckpt-step-N]`` on OpenAI, ``<base>.ft-<id>[-suffix]`` on
Azure); a fine-tune shuts down with its base model.

Dates are the ones OpenAI announced: gpt-4o, gpt-4o-mini, gpt-4.1 and gpt-4.1-mini (and the
fine-tunes built on them) shut down on 2027-01-14; no new fine-tuning jobs are accepted from
2027-01-06 (the provider cut-off lives in ``SimulatorConfig.fine_tuning_cutoffs``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

__all__ = [
    "AZURE_TRAINING_TYPES",
    "DEFAULT_MODELS",
    "FINE_TUNING_CUTOFFS",
    "ModelCard",
    "ResolvedModel",
    "base_of_fine_tune",
    "resolve_model",
]

AZURE_TRAINING_TYPES: tuple[str, ...] = ("Standard", "GlobalStandard", "developerTier")
"""Azure's ``trainingType`` values, as its fine-tuning guides spell them (compared without case;
the REST specifications do not declare the field, see docs/simulator-finetuning.md)."""

FINE_TUNING_CUTOFFS: Mapping[str, date | None] = {"openai": date(2027, 1, 6), "azure": None}
"""From this date on, the provider accepts no new fine-tuning jobs (``None``: no cut-off)."""

_SFT_DPO = frozenset({"supervised", "dpo"})
_ALL_TIERS = frozenset(AZURE_TRAINING_TYPES)
_REGIONAL_AND_GLOBAL = frozenset({"Standard", "GlobalStandard"})
_RETIREMENT_2027 = date(2027, 1, 14)
_DEPLOY_4O = frozenset({"Standard", "GlobalStandard", "ProvisionedManaged"})
_DEPLOY_41 = _DEPLOY_4O | {"DeveloperTier"}


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """What the simulated service knows about one model."""

    kind: Literal["chat", "embedding"] = "chat"
    created: int = 1_700_000_000
    owned_by: str = "system"
    shutdown_date: date | None = None
    """Listed as ``shutdown_date`` by ``GET /v1/models``; from this date on the model (and
    every fine-tune of it) answers 404 and is no longer listed."""
    context_window: int | None = None
    """Prompt plus ``max_tokens`` above this answers 400 ``context_length_exceeded``."""
    max_output_tokens: int | None = None
    """A larger ``max_tokens`` answers 400 ``invalid_value``."""
    fine_tuning: frozenset[str] = frozenset()
    """Fine-tuning methods the model takes (``supervised``, ``dpo``); empty: not fine-tunable."""
    azure_training_types: frozenset[str] = frozenset()
    """Azure ``trainingType`` values the model takes; empty: Azure's default (Standard) only."""
    azure_deployment_types: frozenset[str] = frozenset()
    """ARM ``sku.name`` values a fine-tune of this model may be deployed with (compared without
    case); empty: any."""
    prompt_cache_ttl: float | None = None
    """Seconds a cached prompt prefix lives after its last use; ``None``: the account default."""


def _chat(
    created: int,
    *,
    context: int,
    output: int,
    shutdown: date | None = None,
    methods: frozenset[str] = frozenset(),
    tiers: frozenset[str] = frozenset(),
    deployments: frozenset[str] = frozenset(),
) -> ModelCard:
    return ModelCard(
        created=created,
        shutdown_date=shutdown,
        context_window=context,
        max_output_tokens=output,
        fine_tuning=methods,
        azure_training_types=tiers,
        azure_deployment_types=deployments,
    )


DEFAULT_MODELS: Mapping[str, ModelCard] = {
    "gpt-4o": _chat(
        1_715_367_049,
        context=128_000,
        output=16_384,
        shutdown=_RETIREMENT_2027,
        methods=_SFT_DPO,
        tiers=_REGIONAL_AND_GLOBAL,
        deployments=_DEPLOY_4O,
    ),
    "gpt-4o-mini": _chat(
        1_721_172_741,
        context=128_000,
        output=16_384,
        shutdown=_RETIREMENT_2027,
        methods=_SFT_DPO,
        tiers=_REGIONAL_AND_GLOBAL,
        deployments=_DEPLOY_4O,
    ),
    "gpt-4.1": _chat(
        1_744_316_542,
        context=1_047_576,
        output=32_768,
        shutdown=_RETIREMENT_2027,
        methods=_SFT_DPO,
        tiers=_ALL_TIERS,
        deployments=_DEPLOY_41,
    ),
    "gpt-4.1-mini": _chat(
        1_744_318_173,
        context=1_047_576,
        output=32_768,
        shutdown=_RETIREMENT_2027,
        methods=_SFT_DPO,
        tiers=_ALL_TIERS,
        deployments=_DEPLOY_41,
    ),
    "gpt-4.1-nano": _chat(
        1_744_321_025,
        context=1_047_576,
        output=32_768,
        methods=_SFT_DPO,
        tiers=_ALL_TIERS,
        deployments=_DEPLOY_41,
    ),
    "gpt-5": _chat(1_754_425_777, context=400_000, output=128_000),
    "gpt-5-mini": _chat(1_754_425_928, context=400_000, output=128_000),
    "gpt-5-nano": _chat(1_754_426_384, context=400_000, output=128_000),
    "o3": _chat(1_744_225_308, context=200_000, output=100_000),
    "o3-mini": _chat(1_737_146_383, context=200_000, output=100_000),
    "o4-mini": _chat(
        1_744_225_351,
        context=200_000,
        output=100_000,
        tiers=_REGIONAL_AND_GLOBAL,
        deployments=frozenset({"Standard", "GlobalStandard"}),
    ),
    "o1": _chat(1_734_375_816, context=200_000, output=100_000),
    "o1-mini": _chat(1_725_649_008, context=128_000, output=65_536),
    "gpt-4-turbo": _chat(1_712_361_441, context=128_000, output=4_096),
    "gpt-4": _chat(1_687_882_411, context=8_192, output=8_192),
    "gpt-3.5-turbo": _chat(
        1_677_610_602, context=16_385, output=4_096, methods=frozenset({"supervised"})
    ),
    "gpt-35-turbo": _chat(
        1_677_610_602,
        context=16_385,
        output=4_096,
        methods=frozenset({"supervised"}),
        tiers=frozenset({"Standard"}),
        deployments=frozenset({"Standard"}),
    ),
    "text-embedding-3-small": ModelCard(kind="embedding", created=1_705_948_997),
    "text-embedding-3-large": ModelCard(kind="embedding", created=1_705_953_180),
    "text-embedding-ada-002": ModelCard(kind="embedding", created=1_671_217_299),
}
"""The built-in catalog (``SimulatorConfig.models`` replaces it; extend it with
``{**DEFAULT_MODELS, "my-model": ModelCard()}``)."""

_SNAPSHOT = re.compile(r"^(?P<base>.+?)-(?:\d{4}-\d{2}-\d{2}|\d{4})$")
_OPENAI_FINE_TUNE = re.compile(r"^ft:(?P<base>[^:]+):")
_AZURE_FINE_TUNE = re.compile(r"^(?P<base>.+?)\.ft-[0-9A-Za-z]")


@dataclass(frozen=True)
class ResolvedModel:
    """A requested name, read against a catalog."""

    name: str
    base: str
    """The catalog name it resolved to (the name itself for a fine-tune of an unknown model)."""
    card: ModelCard | None
    """``None`` when neither the name nor its base is in the catalog."""
    fine_tuned: bool
    fine_tune_base: str | None = field(default=None)
    """For a fine-tune, the base model named in it (maybe a dated snapshot)."""


def base_of_fine_tune(name: str) -> str | None:
    """The base model in a fine-tuned model's name, or ``None`` for a base model's name."""
    for pattern in (_OPENAI_FINE_TUNE, _AZURE_FINE_TUNE):
        match = pattern.match(name)
        if match is not None:
            return match.group("base")
    return None


def _card(name: str, models: Mapping[str, ModelCard]) -> tuple[str, ModelCard] | None:
    if name in models:
        return name, models[name]
    match = _SNAPSHOT.match(name)
    if match is not None and match.group("base") in models:
        return match.group("base"), models[match.group("base")]
    return None


def resolve_model(name: str, models: Mapping[str, ModelCard]) -> ResolvedModel:
    """Read ``name`` against ``models`` (see the module docstring for the rules)."""
    fine_tune_base = base_of_fine_tune(name)
    looked_up = fine_tune_base if fine_tune_base is not None else name
    found = _card(looked_up, models)
    if found is None:
        return ResolvedModel(name, looked_up, None, fine_tune_base is not None, fine_tune_base)
    base, card = found
    return ResolvedModel(name, base, card, fine_tune_base is not None, fine_tune_base)
