"""Before exporting: how many tokens the train and validation files hold, and what training costs.

This counts the chat rows :class:`~raftkit.dataset.export.ChatExporter` would write, with the
same counter the validator uses, so the estimate here and the validator's on the written file
agree. Fine-tuning is priced per training token; validation tokens are reported separately.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from raftkit.dataset.cost import (
    Epochs,
    TrainingCost,
    estimate_training_cost,
    max_tokens_per_example,
)
from raftkit.dataset.export import ChatExporter
from raftkit.dataset.split import Split
from raftkit.dataset.validate import TokenStats
from raftkit.llm.tokens import count_message_tokens
from raftkit.llm.usage import PriceTable
from raftkit.types import RaftExample

__all__ = ["PreflightReport", "chat_token_counts", "preflight"]


class PreflightReport(BaseModel):
    """Token statistics of the files an export would write, and the training cost."""

    model_config = ConfigDict(frozen=True)

    model: str
    train: TokenStats | None
    validation: TokenStats | None
    test: TokenStats | None
    training: TrainingCost | None
    """None when there are no training examples."""

    def render(self) -> str:
        out = [f"pre-flight for {self.model}"]
        for name, stats in (
            ("train", self.train),
            ("validation", self.validation),
            ("test", self.test),
        ):
            if stats is None:
                out.append(f"  {name:<10} no examples")
            else:
                out.append(f"  {name:<10} {stats.count:>7} examples  {stats.render()}")
        if self.training is not None:
            out.append(f"  training: {self.training.render()}")
        return "\n".join(out)


def chat_token_counts(
    examples: Iterable[RaftExample], *, exporter: ChatExporter | None = None, model: str
) -> list[int]:
    """Tokens of each example as a chat fine-tuning row, framing included."""
    rows = exporter if exporter is not None else ChatExporter()
    return [count_message_tokens(rows.messages(example), model) for example in examples]


def preflight(
    split: Split[RaftExample],
    *,
    exporter: ChatExporter | None = None,
    model: str = "gpt-4o-mini",
    epochs: Epochs = "auto",
    max_tokens: int | None = None,
    price_per_million: float | None = None,
    prices: PriceTable | None = None,
) -> PreflightReport:
    """Token statistics per part and the cost of training on ``split.train``.

    ``exporter`` sets the system prompt the rows will carry; the other arguments are those of
    :func:`~raftkit.dataset.cost.estimate_training_cost`.
    """
    counts = {
        name: chat_token_counts(part, exporter=exporter, model=model)
        for name, part in split.parts().items()
    }
    limit = max_tokens if max_tokens is not None else max_tokens_per_example(model)
    training = (
        estimate_training_cost(
            counts["train"],
            model=model,
            epochs=epochs,
            max_tokens=limit,
            price_per_million=price_per_million,
            prices=prices,
        )
        if counts["train"]
        else None
    )
    return PreflightReport(
        model=model,
        train=TokenStats.of(counts["train"]),
        validation=TokenStats.of(counts["validation"]),
        test=TokenStats.of(counts["test"]),
        training=training,
    )
