"""Completion caps: a tight ``max_tokens`` on every call, learned from the run's own replies.

Providers count a request against the tokens-per-minute limit at admission as its prompt plus
its ``max_tokens`` (or a server default, often 1,024, when it has none), and raftkit's limiter
and budget reserve the same. A reply of 100 tokens sent with no cap therefore costs the rate
budget ten times what it uses. :class:`CompletionCaps` gives every call a cap close to what
replies of its kind really need:

- per call *kind* (``"questions"``, ``"answers"``, ``"judge"``, ``"vision"``, ...) and model,
  a call starts from a bound its caller derives from the prompt (``initial``: for example
  the number of questions asked times a per-question bound); after its first three replies,
  twice the longest of them when that is lower;
- once ``min_samples`` replies of that kind and model were seen, the cap is a high percentile
  of their completion tokens per *unit* (a question, an answer), times a margin, times the
  units the call asks for. Which percentile: the one (at least ``percentile``, 0.99 by
  default) that makes the fewest tokens charged per call, counting that a reply cut by its cap
  is asked again;
- a caller may give each call a *scale* derived from its prompt (an answer quotes its oracle,
  so its length follows the oracle's longest sentence): then what is learned is the reply's
  length relative to the scale, and a call over a chunk that is one long table gets a cap in
  proportion, instead of every call paying for the few such chunks;
- a cap a user pins (``pinned=``) wins over both;
- a reply cut by a learned cap (``finish_reason: "length"``) is asked once more by the
  client with :attr:`Cap.retry_max_tokens`: at least twice the cap, and enough for the
  longest reply of its kind seen so far. That is not a failure of the model; both replies
  are journaled under keys of their own (``UNKEYED_FIELDS`` leaves the cap out of the key, so
  a resumed run that learned other caps replays them).

``policy="server-default"`` sends no cap at all (raftkit's behaviour before caps, kept for
comparison): the server's default applies and the limiter reserves the client's
``default_max_tokens``. :meth:`CompletionCaps.save` / :meth:`CompletionCaps.load` keep what
was learned in a run directory, so a resumed run starts from it.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import UsageError
from raftkit.llm._base import ChatResponse
from raftkit.llm.tokens import estimate_tokens

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_PERCENTILE",
    "Cap",
    "CapPolicy",
    "CapStats",
    "CompletionCaps",
]

#: ``adaptive``: learned caps on every call; ``server-default``: no ``max_tokens`` sent.
CapPolicy = Literal["adaptive", "server-default"]

#: The lowest share of replies a learned cap lets finish without being cut.
DEFAULT_PERCENTILE = 0.99
#: The learned percentile is multiplied by this before it becomes a cap. Small, since every
#: call pays its cap in rate budget; not smaller, since a reply its cap cuts is paid twice in
#: dollars (the cut text, then the re-ask) while a cap's unused room costs none. On the
#: maintainers' 849-example benchmark 1.05 cut one answer in 850 (0.1 % dearer than sending no
#: cap) and four five-answer calls in 182; 1.10 cut none and one, for 0.5 % more rate budget
#: at one answer a call and 3 % less at five (docs/benchmarks.md, "Default settings").
DEFAULT_MARGIN = 1.10
#: Replies of a kind and model seen before their percentile replaces the initial bound.
DEFAULT_MIN_SAMPLES = 10
#: Replies of a kind and model that, before ``min_samples``, bound the next call's cap at
#: :data:`_EARLY_FACTOR` times the longest of them when that is below the caller's initial
#: bound. A run sends its first calls of a kind (a chunk's five answers, 16 chunks at once)
#: before ten replies are back; the initial bound is a guess from the prompt alone, usually
#: twice to four times what replies need. Twice the longest of three replies is seldom too
#: short for any teacher, and a reply it cuts is asked again with four times the cap.
_EARLY_SAMPLES = 3
_EARLY_FACTOR = 2.0
#: Tokens added to every learned cap: JSON punctuation, an answer tag, a stray newline.
_SLACK = 8
_FLOOR = 16
_CEILING = 16_384
_WINDOW = 2_000
#: How many new replies of a kind and model make the percentile worth recomputing.
_REFRESH_EVERY = 8
_FORMAT = 1


@dataclass(frozen=True)
class Cap:
    """The cap of one call: ``max_tokens`` to send (``None``: none) and the cap of the one
    re-ask of a reply cut by it (``retry_max_tokens``; ``None``: a cut reply is kept as it is,
    as for a cap the user pinned)."""

    max_tokens: int | None
    retry_max_tokens: int | None
    source: Literal["learned", "initial", "pinned", "server-default"]


class CapStats(BaseModel):
    """What :class:`CompletionCaps` learned for one kind and model (for the run report)."""

    model_config = ConfigDict(frozen=True)

    kind: str
    model: str
    replies: int = Field(description="replies observed (replayed ones included)")
    percentile: float | None = Field(
        description="the share of the replies seen that the cap lets finish; None before "
        "enough replies were seen"
    )
    cap_per_unit: int | None = Field(
        description="the cap a one-unit call of the average scale gets now (None: none "
        "learned, or none sent)"
    )
    retried: int = Field(description="replies cut by their cap and asked again with a larger one")
    cut: int = Field(description="replies still cut when they were used")


class _Entry:
    __slots__ = ("cut", "fresh", "plan", "prompts", "replies", "retried", "samples", "scales")

    def __init__(self) -> None:
        #: completion tokens per unit and per unit of scale
        self.samples: deque[float] = deque(maxlen=_WINDOW)
        #: prompt tokens of the same calls, likewise: what a re-ask costs again
        self.prompts: deque[float] = deque(maxlen=_WINDOW)
        self.scales: deque[float] = deque(maxlen=_WINDOW)
        self.replies = 0
        self.retried = 0
        self.cut = 0
        self.plan: tuple[float, float, float] | None = None
        self.fresh = 0


class CompletionCaps:
    """Learns, per call kind and model, the ``max_tokens`` a call should carry (see module).

    ``percentile`` of the completion tokens per unit, times ``margin``, once ``min_samples``
    replies were seen; before that, the caller's ``initial`` bound. One instance serves a
    whole run (questions, answers, re-asks, vision pages, a judge) and is safe to share
    between tasks of one event loop.
    """

    def __init__(
        self,
        policy: CapPolicy = "adaptive",
        *,
        percentile: float = DEFAULT_PERCENTILE,
        margin: float = DEFAULT_MARGIN,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        ceiling: int = _CEILING,
    ) -> None:
        if policy not in ("adaptive", "server-default"):
            raise UsageError(f"policy must be 'adaptive' or 'server-default', got {policy!r}")
        if not 0.5 <= percentile <= 1.0:
            raise UsageError(f"percentile must be between 0.5 and 1, got {percentile}")
        if margin < 1.0 or min_samples < 1 or ceiling < _FLOOR:
            raise UsageError("margin must be >= 1, min_samples >= 1 and ceiling >= 16")
        self.policy: CapPolicy = policy
        self.percentile = percentile
        self.margin = margin
        self.min_samples = min_samples
        self.ceiling = ceiling
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._changes = 0

    def __repr__(self) -> str:
        return f"CompletionCaps(policy={self.policy!r}, kinds={len(self._entries)})"

    # ------------------------------------------------------------------ caps

    def cap(
        self,
        kind: str,
        model: str,
        *,
        initial: int,
        units: int = 1,
        scale: float = 1.0,
        pinned: int | None = None,
    ) -> Cap:
        """The cap of a call of ``kind`` to ``model`` asking for ``units`` units.

        ``pinned`` (a cap the user set) wins; ``initial`` is the caller's bound for this call
        before anything was learned; ``scale`` is the prompt-derived size of one unit (the
        same kind of call must always pass one, or never).
        """
        if pinned is not None:
            return Cap(pinned, None, "pinned")
        if self.policy == "server-default":
            return Cap(None, None, "server-default")
        units = max(1, units)
        entry = self._entries.get((kind, model))
        plan = self._plan(entry) if entry is not None else None
        if plan is None:
            first = self._clamp(initial)
            early = self._early(entry, units, scale)
            if early is not None and early < first:
                # a few replies seen: twice the longest of them bounds the next one better
                # than the caller's guess (often by half), long before a percentile is known
                return Cap(early, self._clamp(4 * early), "initial")
            # nothing known of this kind yet: a cut reply gets room to finish
            return Cap(first, self._clamp(4 * first), "initial")
        _, per_unit, longest = plan
        size = max(1, units) * max(scale, 1e-9)
        tokens = self._clamp(_up(size * per_unit) + _SLACK)
        retry = self._clamp(max(2 * tokens, _up(size * longest) + _SLACK))
        return Cap(tokens, retry, "learned")

    def observe(
        self,
        kind: str,
        model: str,
        response: ChatResponse,
        *,
        units: int = 1,
        scale: float = 1.0,
    ) -> None:
        """Learn from a reply to a call of ``kind`` that asked for ``units`` units (each of
        the prompt-derived ``scale`` the call's cap was given)."""
        tokens = response.usage.completion_tokens
        if tokens <= 0 and response.text:
            # a server that reports no usage: the reply's length stands in for it
            tokens = estimate_tokens(response.text, model)
        if tokens <= 0:
            return
        entry = self._entries.setdefault((kind, model), _Entry())
        entry.replies += 1
        entry.retried += int(response.truncated_usage is not None)
        self._changes += 1
        if response.finish_reason == "length":
            # still cut, even with the larger cap: most likely output that does not stop
            # (a runaway), whose length says nothing of the next reply's; learning from it
            # would double the cap each time one happens
            entry.cut += 1
            return
        size = max(1, units) * max(scale, 1e-9)
        entry.samples.append(tokens / size)
        entry.prompts.append(response.usage.prompt_tokens / size)
        entry.scales.append(scale)
        entry.fresh += 1

    def stats(self) -> list[CapStats]:
        """What was learned, per kind and model."""
        result = []
        for (kind, model), entry in sorted(self._entries.items()):
            plan = self._plan(entry)
            per_unit = None
            if plan is not None and self.policy == "adaptive":
                # in tokens: for a unit of the average scale seen
                scale = sum(entry.scales) / len(entry.scales) if entry.scales else 1.0
                per_unit = self._clamp(_up(plan[1] * scale) + _SLACK)
            result.append(
                CapStats(
                    kind=kind,
                    model=model,
                    replies=entry.replies,
                    percentile=None if plan is None else round(plan[0], 3),
                    cap_per_unit=per_unit,
                    retried=entry.retried,
                    cut=entry.cut,
                )
            )
        return result

    @property
    def changes(self) -> int:
        """Replies observed so far (a cheap "anything new to save?" counter)."""
        return self._changes

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        """What was learned, as JSON-able data (:meth:`from_json` reads it back)."""
        return {
            "format": _FORMAT,
            "entries": [
                {
                    "kind": kind,
                    "model": model,
                    "replies": entry.replies,
                    "retried": entry.retried,
                    "cut": entry.cut,
                    "samples": [round(v, 4) for v in entry.samples],
                    "prompts": [round(v, 3) for v in entry.prompts],
                    "scales": [round(v, 1) for v in entry.scales],
                }
                for (kind, model), entry in sorted(self._entries.items())
            ],
        }

    def restore(self, data: Any) -> None:
        """Take back what :meth:`to_json` wrote; data of another shape is ignored."""
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return
        for item in data.get("entries") or []:
            try:
                key = (str(item["kind"]), str(item["model"]))
                samples = [float(v) for v in item["samples"] if float(v) > 0]
                prompts = [float(v) for v in item.get("prompts") or []]
                scales = [float(v) for v in item.get("scales") or []]
                entry = self._entries.setdefault(key, _Entry())
                entry.samples.extend(samples)
                entry.prompts.extend(prompts)
                entry.scales.extend(scales)
                entry.replies += int(item.get("replies", len(samples)))
                entry.retried += int(item.get("retried", 0))
                entry.cut += int(item.get("cut", 0))
                entry.fresh = len(entry.samples)
            except (KeyError, TypeError, ValueError):
                continue

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` to ``path`` atomically."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), separators=(",", ":")) + "\n", "utf-8")
        os.replace(tmp, target)

    def load(self, path: str | os.PathLike[str]) -> bool:
        """Restore from a file :meth:`save` wrote; ``False`` if it is missing or unreadable."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        self.restore(data)
        return True

    # ------------------------------------------------------------------ internals

    def _plan(self, entry: _Entry) -> tuple[float, float, float] | None:
        """(share of replies let finish, cap per unit, retry cap per unit), or ``None``."""
        if len(entry.samples) < self.min_samples:
            return None
        if entry.plan is None or entry.fresh >= _REFRESH_EVERY:
            entry.plan = self._cheapest(sorted(entry.samples), entry.prompts)
            entry.fresh = 0
        return entry.plan

    def _early(self, entry: _Entry | None, units: int, scale: float) -> int | None:
        """Before ``min_samples`` replies: :data:`_EARLY_FACTOR` times the longest of the
        first :data:`_EARLY_SAMPLES` or more (per unit of scale), for this call's size."""
        if entry is None or len(entry.samples) < min(_EARLY_SAMPLES, self.min_samples):
            return None
        size = max(1, units) * max(scale, 1e-9)
        return self._clamp(_up(_EARLY_FACTOR * size * max(entry.samples)) + _SLACK)

    def _cheapest(self, ordered: list[float], prompts: deque[float]) -> tuple[float, float, float]:
        """The cap per unit, from the replies' own percentiles at or above ``percentile``,
        that charges the fewest tokens per call: the cap itself, plus, for the replies longer
        than it, a re-ask of the prompt with the retry cap."""
        n = len(ordered)
        prompt = sum(prompts) / len(prompts) if prompts else 0.0
        longest = ordered[-1] * self.margin
        first = min(n - 1, max(0, math.ceil(self.percentile * n) - 1))
        best: tuple[float, float, float] | None = None
        best_cost = math.inf
        for index in range(first, n):
            if index + 1 < n and ordered[index + 1] == ordered[index]:
                continue  # the last of equal values: it lets all of them finish
            cap = ordered[index] * self.margin
            longer = (n - 1 - index) / n
            cost = cap + longer * (prompt + max(2 * cap, longest))
            if cost < best_cost:
                best, best_cost = ((index + 1) / n, ordered[index] * self.margin, longest), cost
        assert best is not None
        return best

    def _clamp(self, tokens: int) -> int:
        return max(_FLOOR, min(self.ceiling, tokens))


def _up(tokens: float) -> int:
    """Tokens rounded up, ignoring float noise (100 x 1.1 is 110, not 111)."""
    return math.ceil(round(tokens, 6))
