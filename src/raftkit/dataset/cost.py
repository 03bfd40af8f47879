"""What a fine-tuning job on a chat JSONL file will be billed, before it is submitted.

The rules follow OpenAI's fine-tuning data-preparation guide (the cookbook notebook
``Chat_finetuning_data_prep``): each example is billed for at most the per-example token limit
(longer examples are truncated), the billed tokens are multiplied by the number of epochs, and
when epochs are left on "auto" the service picks them from the number of training examples.

Training prices come from :class:`raftkit.llm.usage.PriceTable` (the dated data file
``raftkit/data/defaults.toml``: gpt-4.1-nano $1.50, gpt-4o-mini $3.00, gpt-4.1-mini $5.00,
gpt-4o and gpt-4.1 $25.00 per 1M training tokens). Prices change: every function here takes the
price (or a table) as an argument so callers can pass the current one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from raftkit.errors import UsageError
from raftkit.llm.usage import PriceTable

__all__ = [
    "DEFAULT_MAX_TOKENS_PER_EXAMPLE",
    "MAX_DEFAULT_EPOCHS",
    "MAX_TARGET_EXAMPLES",
    "MAX_TOKENS_PER_EXAMPLE",
    "MIN_DEFAULT_EPOCHS",
    "MIN_TARGET_EXAMPLES",
    "TARGET_EPOCHS",
    "Epochs",
    "TrainingCost",
    "billed_tokens",
    "default_epochs",
    "estimate_training_cost",
    "max_tokens_per_example",
    "training_price_per_million",
]

# OpenAI's default-epoch rule for n_epochs="auto" (data-preparation guide).
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

# Longest training example each base model accepts, in tokens (OpenAI fine-tuning guide).
DEFAULT_MAX_TOKENS_PER_EXAMPLE = 65_536
MAX_TOKENS_PER_EXAMPLE: Mapping[str, int] = {
    "gpt-4o-mini": 65_536,
    "gpt-4o": 65_536,
    "gpt-4.1-nano": 65_536,
    "gpt-4.1-mini": 65_536,
    "gpt-4.1": 65_536,
    "gpt-3.5-turbo": 16_385,
    "gpt-3.5-turbo-0613": 4_096,
}

Epochs = int | Literal["auto"]


class TrainingCost(BaseModel):
    """Billed tokens and dollars for one fine-tuning job; ``cost_usd`` is None without a price."""

    model_config = ConfigDict(frozen=True)

    model: str
    n_examples: int
    max_tokens_per_example: int
    tokens_per_epoch: int
    """Billed tokens for one pass: each example counted up to ``max_tokens_per_example``."""
    epochs: int
    epochs_auto: bool
    """True when ``epochs`` came from the service's default rule."""
    billed_tokens: int
    price_per_million: float | None
    cost_usd: float | None

    def render(self) -> str:
        how = " (auto)" if self.epochs_auto else ""
        money = (
            f"${self.cost_usd:,.2f} at ${self.price_per_million:g}/1M tokens"
            if self.cost_usd is not None and self.price_per_million is not None
            else "no price known for this model: pass a price per 1M tokens"
        )
        return (
            f"{self.n_examples} examples, {self.tokens_per_epoch:,} billed tokens per epoch "
            f"x {self.epochs} epochs{how} = {self.billed_tokens:,} tokens; {money}"
        )


def default_epochs(n_train_examples: int) -> int:
    """The epochs OpenAI picks for ``n_epochs="auto"``: about 3, more for tiny sets, fewer for
    huge ones, so that roughly 100 to 25,000 examples are seen in total."""
    if n_train_examples <= 0:
        raise UsageError("a fine-tuning job needs at least one training example")
    if n_train_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_train_examples)
    if n_train_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_train_examples)
    return TARGET_EPOCHS


def _base_model(model: str) -> str:
    # "ft:gpt-4o-mini-2024-07-18:org::id" is billed like its base model
    return model.removeprefix("ft:").split(":", 1)[0]


def training_price_per_million(model: str, prices: PriceTable | None = None) -> float | None:
    """Training price in USD per 1M tokens for ``model`` (snapshot, family or ``ft:`` name)."""
    price = (prices if prices is not None else PriceTable()).lookup(model)
    return None if price is None else price.training


def max_tokens_per_example(model: str, limits: Mapping[str, int] | None = None) -> int:
    """The per-example token limit for ``model``; unknown models get the 65,536 default.

    Dated snapshots (``gpt-4o-mini-2024-07-18``) and ``ft:`` names take their family's limit;
    the longest matching family name wins, so ``gpt-4o-mini`` is not read as ``gpt-4o``.
    """
    table = MAX_TOKENS_PER_EXAMPLE if limits is None else limits
    name = _base_model(model)
    if name in table:
        return table[name]
    families = [family for family in table if name.startswith(family + "-")]
    if not families:
        return DEFAULT_MAX_TOKENS_PER_EXAMPLE
    return table[max(families, key=len)]


def billed_tokens(token_counts: Iterable[int], max_tokens: int) -> int:
    """Tokens billed for one epoch: each example counted up to ``max_tokens``."""
    return sum(min(max_tokens, count) for count in token_counts)


def estimate_training_cost(
    token_counts: Iterable[int],
    *,
    model: str = "gpt-4o-mini",
    epochs: Epochs = "auto",
    max_tokens: int | None = None,
    price_per_million: float | None = None,
    prices: PriceTable | None = None,
) -> TrainingCost:
    """Billed tokens and cost of training on examples of the given per-example token counts.

    ``price_per_million`` overrides the price table (``prices``, by default raftkit's
    :class:`~raftkit.llm.usage.PriceTable`); ``max_tokens`` overrides the model's limit.
    """
    counts = list(token_counts)
    if epochs == "auto":
        n_epochs = default_epochs(len(counts))
    elif isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 1:
        n_epochs = epochs
    else:
        raise UsageError(f"epochs must be 'auto' or a positive integer, not {epochs!r}")
    limit = max_tokens if max_tokens is not None else max_tokens_per_example(model)
    if limit < 1:
        raise UsageError(f"max_tokens must be positive, not {limit}")
    price = (
        price_per_million
        if price_per_million is not None
        else training_price_per_million(model, prices)
    )
    if price is not None and price < 0:
        raise UsageError(f"price_per_million must not be negative, not {price}")
    per_epoch = billed_tokens(counts, limit)
    total = per_epoch * n_epochs
    return TrainingCost(
        model=model,
        n_examples=len(counts),
        max_tokens_per_example=limit,
        tokens_per_epoch=per_epoch,
        epochs=n_epochs,
        epochs_auto=epochs == "auto",
        billed_tokens=total,
        price_per_million=price,
        cost_usd=None if price is None else total * price / 1_000_000,
    )
