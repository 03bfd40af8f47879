"""What a run used and what it cost: a per-model ledger, a price table and a budget cap.

The request path calls :meth:`UsageLedger.reserve_when_affordable` before every request (the
budget check), then :meth:`CostReservation.settle` with the response's usage or
:meth:`CostReservation.release` when the call failed for good. :meth:`UsageLedger.report` is a
pydantic snapshot of everything, ready to be written as JSON.

A budget (``max_cost_usd``) reserves for each call in flight a realistic estimate, not its
worst case: the prompt plus the share of ``max_tokens`` this model's replies have really used
so far in the run (the worst case until a few replies were seen). A call waits while the
calls in flight are what stand between it and the cap, and is refused only when what was
spent leaves no room for it; so the cap can be passed by at most what the calls in flight
cost above their estimates.

Prices change. :data:`DEFAULT_PRICES` are OpenAI's list prices in US dollars per million tokens
as of :data:`PRICES_AS_OF`, read from the dated data file ``raftkit/data/defaults.toml``; amend
it with a file of your own (:meth:`PriceTable.from_file`) or pass your own :class:`PriceTable`
(or :meth:`PriceTable.with_prices`) for negotiated rates, Azure deployments (whose names are not
model names) or newer models. A model the table does not know is counted with cost 0 and
flagged (``cost_known=False``), never an error.

About 570 lines: prices, the per-model counts and the ledger's budget (its reservations and the
estimates they are learned from) are one bookkeeping, read and written under one set of rules.
"""

from __future__ import annotations

import math
import os
import re
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from raftkit.errors import BudgetExceededError, UsageError
from raftkit.reference_data import ReferenceTable, load_reference
from raftkit.types import Usage

if TYPE_CHECKING:
    import anyio

__all__ = [
    "BATCH_DISCOUNT",
    "DEFAULT_PRICES",
    "PRICES_AS_OF",
    "CallKind",
    "CostReservation",
    "ModelPrice",
    "ModelUsage",
    "PriceTable",
    "UsageLedger",
    "UsageReport",
    "prices_from",
]

#: The Batch API bills half the list price.
BATCH_DISCOUNT = 0.5

CallKind = Literal["chat", "embedding"]

_PER_MILLION = 1_000_000.0


class ModelPrice(BaseModel):
    """US dollars per million tokens for one model. ``None``: no such price (or unknown)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float | None = Field(default=None, ge=0, description="prompt tokens (and embeddings)")
    cached_input: float | None = Field(
        default=None, ge=0, description="prompt tokens served from the prompt cache"
    )
    output: float | None = Field(default=None, ge=0, description="completion tokens")
    training: float | None = Field(
        default=None, ge=0, description="fine-tuning: per training token (tokens x epochs)"
    )
    fine_tuned_input: float | None = Field(
        default=None, ge=0, description="inference on a fine-tuned model of this base"
    )
    fine_tuned_cached_input: float | None = Field(default=None, ge=0)
    fine_tuned_output: float | None = Field(default=None, ge=0)

    def for_fine_tuned(self) -> ModelPrice:
        """The prices of inference on a model fine-tuned from this one."""
        return ModelPrice(
            input=self.fine_tuned_input if self.fine_tuned_input is not None else self.input,
            cached_input=(
                self.fine_tuned_cached_input
                if self.fine_tuned_cached_input is not None
                else self.cached_input
            ),
            output=self.fine_tuned_output if self.fine_tuned_output is not None else self.output,
            training=self.training,
        )


def prices_from(table: ReferenceTable) -> dict[str, ModelPrice]:
    """The ``[prices]`` of a dated table (:mod:`raftkit.reference_data`) as :class:`ModelPrice`."""
    prices: dict[str, ModelPrice] = {}
    for name, entry in table.section("prices").items():
        if not isinstance(entry, Mapping):
            raise UsageError(f"{table.files[-1]}: prices.{name} must be a table of prices")
        try:
            prices[str(name)] = ModelPrice(**entry)
        except ValidationError as e:
            problem = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
            )
            raise UsageError(f"{table.files[-1]}: prices.{name}: {problem}") from e
    return prices


_SHIPPED = load_reference("defaults")

#: The date :data:`DEFAULT_PRICES` were checked (``as_of`` of ``raftkit/data/defaults.toml``).
PRICES_AS_OF = _SHIPPED.as_of.isoformat()

#: List prices in USD per 1M tokens from ``raftkit/data/defaults.toml``, as of
#: :data:`PRICES_AS_OF` (its notes say which were checked where). Prices change: amend the file
#: with one of your own (:meth:`PriceTable.from_file`) or use :meth:`PriceTable.with_prices`.
DEFAULT_PRICES: Mapping[str, ModelPrice] = prices_from(_SHIPPED)

_DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$|-\d{4}$")


class PriceTable:
    """Model name → :class:`ModelPrice`, resolving dated snapshots and ``ft:`` names.

    Lookup order: the exact name; the name without a date suffix (``gpt-4o-2024-08-06`` →
    ``gpt-4o``); for ``ft:<base>:<org>::<id>``, the fine-tuned prices of ``<base>``. Entries
    given to the constructor replace the defaults of the same name.
    """

    def __init__(
        self,
        prices: Mapping[str, ModelPrice] | None = None,
        *,
        include_defaults: bool = True,
        as_of: str | None = None,
    ) -> None:
        self._prices: dict[str, ModelPrice] = dict(DEFAULT_PRICES) if include_defaults else {}
        self._prices.update(prices or {})
        self.as_of = as_of or (PRICES_AS_OF if include_defaults else None)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PriceTable:
        """The shipped prices amended by the TOML file ``path`` (same format as
        ``raftkit/data/defaults.toml``), dated by that file's ``as_of``."""
        table = load_reference("defaults", path)
        return cls(prices_from(table), include_defaults=False, as_of=table.as_of.isoformat())

    def with_prices(self, prices: Mapping[str, ModelPrice]) -> PriceTable:
        """A copy of this table with ``prices`` added or replaced."""
        table = PriceTable(self._prices, include_defaults=False, as_of=self.as_of)
        table._prices.update(prices)
        return table

    @property
    def prices(self) -> Mapping[str, ModelPrice]:
        return dict(self._prices)

    def lookup(self, model: str) -> ModelPrice | None:
        """The prices for ``model``, or ``None`` if the table does not know it."""
        if model in self._prices:
            return self._prices[model]
        if model.startswith("ft:"):
            base = model[3:].split(":", 1)[0]
            price = self._base(base)
            return None if price is None else price.for_fine_tuned()
        return self._base(model)

    def _base(self, model: str) -> ModelPrice | None:
        if model in self._prices:
            return self._prices[model]
        stripped = _DATE_SUFFIX.sub("", model)
        return self._prices.get(stripped)

    def cost(
        self, model: str, usage: Usage, *, kind: CallKind = "chat", batch: bool = False
    ) -> float | None:
        """US dollars for one call's ``usage``, or ``None`` if the price is unknown."""
        price = self.lookup(model)
        if price is None or price.input is None:
            return None
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = price.cached_input if price.cached_input is not None else price.input
        dollars = (usage.prompt_tokens - cached) * price.input + cached * cached_rate
        if kind == "chat":
            if price.output is None:
                if usage.completion_tokens:
                    return None
            else:
                dollars += usage.completion_tokens * price.output
        dollars /= _PER_MILLION
        return dollars * BATCH_DISCOUNT if batch else dollars

    def worst_case(
        self, model: str, *, prompt_tokens: int, max_completion_tokens: int, kind: CallKind
    ) -> float | None:
        """The most one call can cost: every prompt token uncached, every completion token used."""
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=max_completion_tokens if kind == "chat" else 0,
        )
        return self.cost(model, usage, kind=kind)


class ModelUsage(BaseModel):
    """Totals for one model."""

    model_config = ConfigDict(extra="forbid")

    calls: int = Field(default=0, description="calls that returned a usage (paid)")
    failed: int = Field(default=0, description="calls given up on (nothing recorded as paid)")
    retries: int = 0
    rate_limited: int = Field(default=0, description="429 rate_limit_exceeded responses")
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    embedding_tokens: int = Field(default=0, description="prompt tokens of embedding calls")
    batch_calls: int = 0
    cost_usd: float = 0.0
    saved_by_caching_usd: float = Field(
        default=0.0, description="what cached prompt tokens would have cost more at full price"
    )
    cost_known: bool = Field(
        default=True, description="false if some call of this model had no price (counted as 0)"
    )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageReport(BaseModel):
    """A snapshot of a :class:`UsageLedger`; ``model_dump_json()`` writes it as JSON."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelUsage] = Field(default_factory=dict)
    total_cost_usd: float = 0.0
    saved_by_caching_usd: float = Field(
        default=0.0,
        description="what the prompt cache saved: cached tokens at full price less what they cost",
    )
    reserved_usd: float = Field(default=0.0, description="estimated cost of calls in flight")
    max_cost_usd: float | None = None
    cost_complete: bool = Field(
        default=True, description="false if some model had no price: the total is a lower bound"
    )
    unpriced_models: list[str] = Field(default_factory=list)
    prices_as_of: str | None = None
    simulated_responses: int = Field(
        default=0, description="responses from raftkit's simulator: not real data"
    )

    @property
    def calls(self) -> int:
        return sum(m.calls for m in self.models.values())

    @property
    def usage(self) -> Usage:
        total = Usage()
        for m in self.models.values():
            total = total + Usage(
                prompt_tokens=m.prompt_tokens,
                completion_tokens=m.completion_tokens,
                cached_tokens=m.cached_tokens,
            )
        return total


class CostReservation:
    """One call's place in the budget, between :meth:`UsageLedger.reserve` and its outcome."""

    __slots__ = (
        "_done",
        "_ledger",
        "estimate_usd",
        "kind",
        "max_completion_tokens",
        "model",
        "worst_case_usd",
    )

    def __init__(
        self,
        ledger: UsageLedger,
        model: str,
        kind: CallKind,
        worst: float,
        estimate: float | None = None,
        max_completion_tokens: int = 0,
    ) -> None:
        self._ledger = ledger
        self._done = False
        self.model = model
        self.kind: CallKind = kind
        self.worst_case_usd = worst
        self.estimate_usd = worst if estimate is None else estimate
        """What the budget holds for this call while it is in flight."""
        self.max_completion_tokens = max_completion_tokens

    def settle(self, usage: Usage, *, batch: bool = False) -> None:
        """Record the call (calls + 1, its tokens and dollars) and free the reservation."""
        if self._done:
            return
        self._done = True
        self._ledger._settle(self, usage, batch)

    def release(self) -> None:
        """The call failed for good: free the reservation and record nothing as paid."""
        if self._done:
            return
        self._done = True
        self._ledger._release(self)

    def __repr__(self) -> str:
        return f"CostReservation(model={self.model!r}, estimate_usd={self.estimate_usd:.6f})"


#: Replies of a model seen before the budget trusts their share of ``max_tokens`` over the
#: worst case, how many it remembers, and the headroom it adds to their mean.
_ESTIMATE_AFTER = 5
_ESTIMATE_WINDOW = 200
_ESTIMATE_HEADROOM = 1.2


class UsageLedger:
    """Per-model calls, retries, 429s, tokens and dollars, with an optional spending cap.

    With ``max_cost_usd``, a call is admitted while what was spent, plus the estimates of the
    calls in flight, plus this call's estimate fit under the cap
    (:meth:`reserve_when_affordable` waits for calls in flight when they are what is in the
    way; :meth:`reserve` refuses at once). An estimate is the prompt plus the share of
    ``max_tokens`` the model's replies have used in this ledger so far (the worst case
    until a few were seen). Calls of models without a price cannot be budgeted; they pass
    and are flagged in the report.
    """

    def __init__(
        self, prices: PriceTable | None = None, *, max_cost_usd: float | None = None
    ) -> None:
        if max_cost_usd is not None and max_cost_usd < 0:
            raise UsageError(f"max_cost_usd must be >= 0, got {max_cost_usd!r}")
        self.prices = prices or PriceTable()
        self.max_cost_usd = max_cost_usd
        self._models: dict[str, ModelUsage] = {}
        self._spent = 0.0
        self._reserved = 0.0
        self._simulated = 0
        self._shares: dict[str, deque[float]] = {}
        self._waiters: set[anyio.Event] = set()

    @property
    def spent_usd(self) -> float:
        return self._spent

    @property
    def reserved_usd(self) -> float:
        return self._reserved

    def _entry(self, model: str) -> ModelUsage:
        entry = self._models.get(model)
        if entry is None:
            entry = self._models[model] = ModelUsage()
        return entry

    def completion_share(self, model: str) -> float | None:
        """The share of ``max_tokens`` ``model``'s replies used so far (with headroom), or
        ``None`` before enough were seen."""
        shares = self._shares.get(model)
        if shares is None or len(shares) < _ESTIMATE_AFTER:
            return None
        return min(1.0, _ESTIMATE_HEADROOM * sum(shares) / len(shares))

    def estimate(
        self,
        model: str,
        *,
        prompt_tokens: int,
        max_completion_tokens: int,
        kind: CallKind = "chat",
    ) -> tuple[float, float]:
        """``(estimate, worst case)`` in dollars for one call (0 for unpriced models)."""
        prompt, ceiling = max(0, prompt_tokens), max(0, max_completion_tokens)
        worst = self.prices.worst_case(
            model, prompt_tokens=prompt, max_completion_tokens=ceiling, kind=kind
        )
        share = self.completion_share(model) if kind == "chat" else None
        if share is None or worst is None:
            return worst or 0.0, worst or 0.0
        likely = self.prices.worst_case(
            model,
            prompt_tokens=prompt,
            max_completion_tokens=math.ceil(share * ceiling),
            kind=kind,
        )
        return likely or 0.0, worst

    def reserve(
        self,
        model: str,
        *,
        prompt_tokens: int,
        max_completion_tokens: int,
        kind: CallKind = "chat",
    ) -> CostReservation:
        """Budget check: raises :class:`~raftkit.errors.BudgetExceededError` if spent +
        reserved + this call's estimate > ``max_cost_usd``."""
        likely, worst = self.estimate(
            model,
            prompt_tokens=prompt_tokens,
            max_completion_tokens=max_completion_tokens,
            kind=kind,
        )
        if self._blocked(likely, in_flight=True):
            raise self._refusal(model, likely)
        return self._hold(model, kind, worst, likely, max_completion_tokens)

    async def reserve_when_affordable(
        self,
        model: str,
        *,
        prompt_tokens: int,
        max_completion_tokens: int,
        kind: CallKind = "chat",
    ) -> CostReservation:
        """Like :meth:`reserve`, but a call that only the calls in flight keep under the cap
        waits for them to finish; it is refused once what was spent leaves it no room."""
        import anyio

        while True:
            likely, worst = self.estimate(
                model,
                prompt_tokens=prompt_tokens,
                max_completion_tokens=max_completion_tokens,
                kind=kind,
            )
            if self._blocked(likely, in_flight=False):
                raise self._refusal(model, likely)
            if not self._blocked(likely, in_flight=True):
                return self._hold(model, kind, worst, likely, max_completion_tokens)
            changed = anyio.Event()
            self._waiters.add(changed)
            try:
                await changed.wait()
            finally:
                self._waiters.discard(changed)

    def _blocked(self, likely: float, *, in_flight: bool) -> bool:
        if self.max_cost_usd is None:
            return False
        committed = self._spent + (self._reserved if in_flight else 0.0)
        return committed + likely > self.max_cost_usd + 1e-12

    def _refusal(self, model: str, likely: float) -> BudgetExceededError:
        assert self.max_cost_usd is not None
        return BudgetExceededError(
            f"budget of ${self.max_cost_usd:.4f} reached: ${self._spent:.4f} spent, "
            f"${self._reserved:.4f} estimated for calls in flight, and this {model} call "
            f"would cost about ${likely:.4f}",
            spent_usd=self._spent,
            limit_usd=self.max_cost_usd,
        )

    def _hold(
        self, model: str, kind: CallKind, worst: float, likely: float, max_completion: int
    ) -> CostReservation:
        self._reserved += likely
        return CostReservation(self, model, kind, worst, likely, max(0, max_completion))

    def _changes(self) -> None:
        for waiter in self._waiters:
            waiter.set()
        self._waiters.clear()

    def record_retry(self, model: str) -> None:
        self._entry(model).retries += 1

    def record_rate_limited(self, model: str) -> None:
        self._entry(model).rate_limited += 1

    def record_simulated(self) -> None:
        """A response came from raftkit's simulator (it marks each one)."""
        self._simulated += 1

    @property
    def simulated_responses(self) -> int:
        """Responses recorded as coming from raftkit's simulator: reports say SIMULATED."""
        return self._simulated

    def record(
        self, model: str, usage: Usage, *, kind: CallKind = "chat", batch: bool = False
    ) -> float | None:
        """Record a call paid outside :meth:`reserve` (a batch job's results); returns its cost."""
        return self._add(model, usage, kind, batch)

    def _add(self, model: str, usage: Usage, kind: CallKind, batch: bool) -> float | None:
        entry = self._entry(model)
        entry.calls += 1
        entry.batch_calls += int(batch)
        entry.prompt_tokens += usage.prompt_tokens
        entry.cached_tokens += usage.cached_tokens
        entry.completion_tokens += usage.completion_tokens
        if kind == "embedding":
            entry.embedding_tokens += usage.prompt_tokens
        cost = self.prices.cost(model, usage, kind=kind, batch=batch)
        if cost is None:
            entry.cost_known = False
        else:
            entry.cost_usd += cost
            self._spent += cost
            if usage.cached_tokens:
                uncached = usage.model_copy(update={"cached_tokens": 0})
                full = self.prices.cost(model, uncached, kind=kind, batch=batch)
                entry.saved_by_caching_usd += max(0.0, (full or cost) - cost)
        return cost

    def _settle(self, reservation: CostReservation, usage: Usage, batch: bool) -> None:
        self._reserved = max(0.0, self._reserved - reservation.estimate_usd)
        if reservation.kind == "chat" and reservation.max_completion_tokens > 0:
            shares = self._shares.setdefault(reservation.model, deque(maxlen=_ESTIMATE_WINDOW))
            shares.append(min(1.0, usage.completion_tokens / reservation.max_completion_tokens))
        self._add(reservation.model, usage, reservation.kind, batch)
        self._changes()

    def _release(self, reservation: CostReservation) -> None:
        self._reserved = max(0.0, self._reserved - reservation.estimate_usd)
        self._entry(reservation.model).failed += 1
        self._changes()

    def model_usage(self, model: str) -> ModelUsage:
        """A copy of ``model``'s totals (zeros if it was never used)."""
        entry = self._models.get(model)
        return ModelUsage() if entry is None else entry.model_copy()

    def report(self) -> UsageReport:
        """A snapshot of everything recorded so far."""
        models = {name: entry.model_copy() for name, entry in sorted(self._models.items())}
        unpriced = [name for name, entry in models.items() if not entry.cost_known]
        return UsageReport(
            models=models,
            total_cost_usd=self._spent,
            saved_by_caching_usd=sum(m.saved_by_caching_usd for m in models.values()),
            reserved_usd=self._reserved,
            max_cost_usd=self.max_cost_usd,
            cost_complete=not unpriced,
            unpriced_models=unpriced,
            prices_as_of=self.prices.as_of,
            simulated_responses=self._simulated,
        )

    def merge(self, reports: Iterable[UsageReport]) -> None:
        """Add the totals of other ledgers' reports (e.g. from worker processes) to this one."""
        for report in reports:
            self._simulated += report.simulated_responses
            for name, other in report.models.items():
                entry = self._entry(name)
                for field in (
                    "calls",
                    "failed",
                    "retries",
                    "rate_limited",
                    "prompt_tokens",
                    "cached_tokens",
                    "completion_tokens",
                    "embedding_tokens",
                    "batch_calls",
                ):
                    setattr(entry, field, getattr(entry, field) + getattr(other, field))
                entry.cost_usd += other.cost_usd
                entry.saved_by_caching_usd += other.saved_by_caching_usd
                entry.cost_known = entry.cost_known and other.cost_known
                self._spent += other.cost_usd
