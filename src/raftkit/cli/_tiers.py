"""``raftkit finetune`` on Azure: the training tier, its price and the deployment type, all
decided (and refused when impossible) before anything is uploaded."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from raftkit.cli._reference import defaults_table, price_table, require_provider
from raftkit.dataset.cost import training_price_per_million
from raftkit.finetune import AzureFineTuningCatalog, DeploymentType, TrainingTier
from raftkit.finetune.azure_tiers import TierChoice, tier_supported_by_api_version
from raftkit.llm import AzureOpenAIClient, LLMClient

__all__ = ["TrainingChoices", "training_choices"]


@dataclass(frozen=True)
class TrainingChoices:
    tier: TrainingTier | None
    price_per_million: float | None
    price_note: str
    deployment: DeploymentType | None
    sku: str


def training_choices(
    args: argparse.Namespace, provider: str, model: str, client: LLMClient
) -> TrainingChoices:
    """The tier, the training price, and the deployment type the arguments ask for; printed."""
    prices = price_table(args)
    if provider != "azure":
        for option, value in (
            ("--training-tier", args.training_tier),
            ("--deployment-type", args.deployment_type),
        ):
            if value:
                require_provider(provider, option, "azure")
        return TrainingChoices(
            None, training_price_per_million(model, prices), "", None, args.sku or "standard"
        )
    catalog = AzureFineTuningCatalog(defaults_table(args))
    choice = catalog.choose_tier(model, args.training_tier)
    if (
        args.training_tier is None
        and isinstance(client, AzureOpenAIClient)
        and not tier_supported_by_api_version(client.api_version, v1=client.v1)
    ):
        # a default is not worth refusing the job over: say what Azure will do instead
        choice = TierChoice(
            tier=None,
            reason=f"API version {client.api_version} does not take trainingType; Azure trains "
            "on Standard (2025-04-01-preview or later chooses a tier)",
        )
    tier = choice.tier
    if tier is None:
        print(f"training tier: none sent ({choice.reason})")
        note = "Azure's default tier, priced as regional Standard"
    else:
        print(f"training tier: {tier.api_value} ({choice.reason}: {tier.description})")
        note = f"Azure {tier.api_value} tier: {tier.price_factor:g} x the regional Standard price"
    price = catalog.training_price_per_million(model, tier, prices)
    deployment = None
    sku = args.sku or "Standard"
    if args.deployment_type or not args.sku:
        deployment = catalog.deployment_type(args.deployment_type or "standard")
        catalog.check_deployment(model, deployment)
        sku = deployment.sku
        if args.deployment:
            print(f"deployment type: {deployment.render()}")
    return TrainingChoices(tier, price, note, deployment, sku)
