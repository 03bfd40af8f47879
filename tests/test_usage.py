"""The usage ledger: arithmetic, prices and overrides, the budget cap, the report."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from raftkit.dataset import estimate_training_cost
from raftkit.errors import BudgetExceededError, UsageError
from raftkit.llm.usage import (
    BATCH_DISCOUNT,
    DEFAULT_PRICES,
    ModelPrice,
    PriceTable,
    UsageLedger,
    UsageReport,
)
from raftkit.types import Usage

MILLION = 1_000_000


def test_chat_cost_splits_cached_and_uncached_prompt_tokens() -> None:
    table = PriceTable({"m": ModelPrice(input=2.0, cached_input=0.5, output=8.0)})
    usage = Usage(prompt_tokens=1000, cached_tokens=400, completion_tokens=100)
    expected = (600 * 2.0 + 400 * 0.5 + 100 * 8.0) / MILLION
    assert table.cost("m", usage) == pytest.approx(expected)
    assert table.cost("m", usage, batch=True) == pytest.approx(expected * BATCH_DISCOUNT)


def test_embedding_cost_counts_input_only() -> None:
    table = PriceTable()
    usage = Usage(prompt_tokens=2_000_000)
    assert table.cost("text-embedding-3-small", usage, kind="embedding") == pytest.approx(0.04)
    assert table.cost("text-embedding-3-large", usage, kind="embedding") == pytest.approx(0.26)
    assert table.cost("text-embedding-ada-002", usage, kind="embedding") == pytest.approx(0.20)


@pytest.mark.parametrize(
    ("model", "base"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o3-mini", "o3-mini"),
        ("o1", "o1"),
    ],
)
def test_dated_snapshots_are_priced_as_their_model(model: str, base: str) -> None:
    assert PriceTable().lookup(model) == DEFAULT_PRICES[base]


def test_fine_tuned_models_are_priced_from_their_base() -> None:
    price = PriceTable().lookup("ft:gpt-4o-mini-2024-07-18:my-org::9abcDEF1")
    assert price is not None
    base = DEFAULT_PRICES["gpt-4o-mini"]
    assert price.input == base.fine_tuned_input
    assert price.output == base.fine_tuned_output
    assert price.training == base.training
    # a base without separate fine-tuned prices is priced like the base
    table = PriceTable({"mine": ModelPrice(input=1.0, output=2.0)}, include_defaults=False)
    ft = table.lookup("ft:mine:org::1")
    assert ft is not None
    assert (ft.input, ft.output) == (1.0, 2.0)


def test_unknown_model_costs_nothing_but_is_flagged() -> None:
    ledger = UsageLedger()
    ledger.reserve("my-azure-deployment", prompt_tokens=10, max_completion_tokens=10).settle(
        Usage(prompt_tokens=10, completion_tokens=5)
    )
    report = ledger.report()
    assert report.total_cost_usd == 0.0
    assert not report.cost_complete
    assert report.unpriced_models == ["my-azure-deployment"]
    assert report.models["my-azure-deployment"].cost_known is False
    assert report.models["my-azure-deployment"].total_tokens == 15


def test_overrides_replace_defaults() -> None:
    cheap = PriceTable().with_prices({"gpt-4o": ModelPrice(input=1.0, output=1.0)})
    usage = Usage(prompt_tokens=MILLION, completion_tokens=MILLION)
    assert cheap.cost("gpt-4o", usage) == pytest.approx(2.0)
    assert PriceTable().cost("gpt-4o", usage) == pytest.approx(2.5 + 10.0)
    # an alias for an Azure deployment
    azure = PriceTable().with_prices({"teacher-deployment": DEFAULT_PRICES["gpt-4o"]})
    assert azure.cost("teacher-deployment", usage) == pytest.approx(12.5)


def test_ledger_arithmetic_per_model() -> None:
    ledger = UsageLedger()
    for _ in range(3):
        reservation = ledger.reserve("gpt-4o-mini", prompt_tokens=1000, max_completion_tokens=500)
        reservation.settle(Usage(prompt_tokens=1000, completion_tokens=200, cached_tokens=100))
    ledger.record_retry("gpt-4o-mini")
    ledger.record_rate_limited("gpt-4o-mini")
    ledger.reserve("gpt-4o-mini", prompt_tokens=1000, max_completion_tokens=500).release()
    ledger.reserve("text-embedding-3-small", prompt_tokens=5000, max_completion_tokens=0,
                   kind="embedding").settle(Usage(prompt_tokens=5000))  # fmt: skip
    mini = ledger.model_usage("gpt-4o-mini")
    assert (mini.calls, mini.failed, mini.retries, mini.rate_limited) == (3, 1, 1, 1)
    assert (mini.prompt_tokens, mini.cached_tokens, mini.completion_tokens) == (3000, 300, 600)
    per_call = (900 * 0.15 + 100 * 0.075 + 200 * 0.60) / MILLION
    assert mini.cost_usd == pytest.approx(3 * per_call)
    embed = ledger.model_usage("text-embedding-3-small")
    assert embed.embedding_tokens == 5000
    assert embed.cost_usd == pytest.approx(5000 * 0.02 / MILLION)
    assert ledger.spent_usd == pytest.approx(3 * per_call + 5000 * 0.02 / MILLION)
    assert ledger.reserved_usd == pytest.approx(0.0)
    assert ledger.model_usage("never-used").calls == 0


def test_settle_and_release_happen_once() -> None:
    ledger = UsageLedger()
    reservation = ledger.reserve("gpt-4o", prompt_tokens=100, max_completion_tokens=100)
    reservation.settle(Usage(prompt_tokens=100, completion_tokens=10))
    reservation.settle(Usage(prompt_tokens=100, completion_tokens=10))
    reservation.release()
    usage = ledger.model_usage("gpt-4o")
    assert (usage.calls, usage.failed) == (1, 0)


def test_budget_cap_refuses_the_call_that_could_exceed_it_and_keeps_finished_work() -> None:
    # worst case of one call: 1000 x 2.50 + 1000 x 10.00 per million = $0.0125
    ledger = UsageLedger(max_cost_usd=0.025)
    first = ledger.reserve("gpt-4o", prompt_tokens=1000, max_completion_tokens=1000)
    second = ledger.reserve("gpt-4o", prompt_tokens=1000, max_completion_tokens=1000)
    assert ledger.reserved_usd == pytest.approx(0.025)
    with pytest.raises(BudgetExceededError) as raised:
        ledger.reserve("gpt-4o", prompt_tokens=1000, max_completion_tokens=1000)
    assert raised.value.limit_usd == 0.025
    # finished work is kept; a cheaper actual cost makes room again
    first.settle(Usage(prompt_tokens=1000, completion_tokens=100))
    second.release()
    third = ledger.reserve("gpt-4o", prompt_tokens=1000, max_completion_tokens=1000)
    third.settle(Usage(prompt_tokens=1000, completion_tokens=1000))
    with pytest.raises(BudgetExceededError) as again:
        ledger.reserve("gpt-4o", prompt_tokens=1000, max_completion_tokens=1000)
    report = ledger.report()
    assert report.models["gpt-4o"].calls == 2
    assert report.total_cost_usd == pytest.approx(0.0035 + 0.0125)
    assert again.value.spent_usd == pytest.approx(report.total_cost_usd)
    assert report.total_cost_usd <= 0.025


def test_budget_must_not_be_negative() -> None:
    with pytest.raises(UsageError):
        UsageLedger(max_cost_usd=-1)


def test_report_round_trips_through_json() -> None:
    ledger = UsageLedger(max_cost_usd=10.0)
    ledger.reserve("gpt-4.1", prompt_tokens=10, max_completion_tokens=10).settle(
        Usage(prompt_tokens=10, completion_tokens=10)
    )
    ledger.record_rate_limited("gpt-4.1")
    report = ledger.report()
    again = UsageReport.model_validate_json(report.model_dump_json())
    assert again == report
    assert again.calls == 1
    assert again.usage == Usage(prompt_tokens=10, completion_tokens=10)
    assert again.max_cost_usd == 10.0
    assert again.prices_as_of is not None


def test_merge_adds_other_ledgers() -> None:
    a, b = UsageLedger(), UsageLedger()
    for ledger in (a, b):
        ledger.reserve("gpt-4o-mini", prompt_tokens=100, max_completion_tokens=10).settle(
            Usage(prompt_tokens=100, completion_tokens=10)
        )
    total = UsageLedger()
    total.merge([a.report(), b.report()])
    assert total.model_usage("gpt-4o-mini").calls == 2
    assert total.spent_usd == pytest.approx(a.spent_usd + b.spent_usd)


def test_finetune_cost() -> None:
    # the training prices of the table, through the one fine-tuning cost function
    def cost(tokens: int, *, epochs: int, model: str, prices: PriceTable | None = None) -> Any:
        counts = [1000] * (tokens // 1000)  # examples of 1000 tokens, under every model's limit
        return estimate_training_cost(counts, epochs=epochs, model=model, prices=prices).cost_usd

    # 2M tokens in the file, 3 epochs, gpt-4o-mini training at $3.00 / 1M
    assert cost(2_000_000, epochs=3, model="gpt-4o-mini") == pytest.approx(18.0)
    assert cost(1_000_000, epochs=1, model="gpt-4o-mini-2024-07-18") == pytest.approx(3.0)
    assert cost(1000, epochs=1, model="o3") is None
    custom = PriceTable({"gpt-4o": ModelPrice(input=1.0, training=10.0)})
    assert cost(MILLION, epochs=2, model="gpt-4o", prices=custom) == 20.0
    with pytest.raises(UsageError):
        cost(100_000, epochs=0, model="gpt-4o")


def test_the_budget_reserves_what_this_models_replies_really_used() -> None:
    ledger = UsageLedger(max_cost_usd=1.0)
    worst = PriceTable().worst_case(
        "gpt-4o", prompt_tokens=1000, max_completion_tokens=1000, kind="chat"
    )
    assert ledger.estimate("gpt-4o", prompt_tokens=1000, max_completion_tokens=1000) == (
        worst,
        worst,
    )
    for _ in range(5):  # replies that used a tenth of their cap
        reservation = ledger.reserve("gpt-4o", prompt_tokens=1000, max_completion_tokens=1000)
        reservation.settle(Usage(prompt_tokens=1000, completion_tokens=100))
    assert ledger.completion_share("gpt-4o") == pytest.approx(0.12)  # a tenth, with headroom
    likely, worst_now = ledger.estimate("gpt-4o", prompt_tokens=1000, max_completion_tokens=1000)
    assert worst_now == worst
    assert likely == pytest.approx((1000 * 2.50 + 120 * 10.00) / MILLION)
    held = ledger.reserve("gpt-4o", prompt_tokens=1000, max_completion_tokens=1000)
    assert ledger.reserved_usd == pytest.approx(likely)
    held.release()
    assert ledger.reserved_usd == pytest.approx(0.0)
    assert ledger.completion_share("gpt-4o-mini") is None  # per model


@pytest.mark.anyio
async def test_a_call_waits_for_calls_in_flight_and_is_refused_only_when_spent_leaves_no_room(
    anyio_backend: str,
) -> None:
    # each call: $0.0125 at worst; the cap holds two in flight, not three
    ledger = UsageLedger(max_cost_usd=0.03)
    first = await ledger.reserve_when_affordable(
        "gpt-4o", prompt_tokens=1000, max_completion_tokens=1000
    )
    second = await ledger.reserve_when_affordable(
        "gpt-4o", prompt_tokens=1000, max_completion_tokens=1000
    )
    admitted: list[str] = []

    async def third() -> None:
        await ledger.reserve_when_affordable(
            "gpt-4o", prompt_tokens=1000, max_completion_tokens=1000
        )
        admitted.append("third")

    async with anyio.create_task_group() as tg:
        tg.start_soon(third)
        await anyio.wait_all_tasks_blocked()
        assert admitted == []  # waiting: only the calls in flight are in its way
        first.settle(Usage(prompt_tokens=1000, completion_tokens=100))
    assert admitted == ["third"]
    second.settle(Usage(prompt_tokens=1000, completion_tokens=1000))
    # $0.016 spent and the third call in flight: a fourth does not fit beside it
    with pytest.raises(BudgetExceededError):
        ledger.reserve("gpt-4o", prompt_tokens=1000, max_completion_tokens=1000)
    assert ledger.spent_usd <= 0.03


@pytest.mark.anyio
async def test_a_call_the_spent_budget_cannot_cover_is_refused_at_once(anyio_backend: str) -> None:
    ledger = UsageLedger(max_cost_usd=0.02)
    done = await ledger.reserve_when_affordable(
        "gpt-4o", prompt_tokens=1000, max_completion_tokens=1000
    )
    done.settle(Usage(prompt_tokens=1000, completion_tokens=1000))  # $0.0125 spent
    with anyio.fail_after(5), pytest.raises(BudgetExceededError, match="budget of"):
        await ledger.reserve_when_affordable(
            "gpt-4o", prompt_tokens=1000, max_completion_tokens=1000
        )
