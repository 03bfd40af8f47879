"""Completion caps: a tight ``max_tokens`` on every call, learned from the run's own replies.

Providers count a request against the tokens-per-minute limit at admission as its prompt plus
its ``max_tokens`` (or a server default, often 1,024, when it has none), and raftkit's limiter
and budget reserve the same. A reply of 100 tokens sent with no cap therefore costs the rate
budget ten times what it uses. :class:`CompletionCaps` gives every call a cap close to what
replies of its kind really need:

- per call *kind* (``"questions"``, ``"answers"``, ``"judge"``, ``"vision"``, ...) and model,
  a call starts from a bound its caller derives from the prompt (``initial``: for example
  the number of questions asked times a per-question bound);
- once ``min_samples`` replies of that kind and model were seen, the cap is a high
  percentile of their completion tokens per *unit* (a question, an answer) times the units
  the call asks for, times a margin, plus a little slack;
- a cap a user pins (``pinned=``) wins over both;
- a reply cut by a learned cap (``finish_reason: "length"``) is asked once more with twice
  the cap by the client (``retry_truncated``), which is not a failure of the model; both
  replies are journaled under keys of their own (:data:`~raftkit.llm._store.UNKEYED_FIELDS`
  leaves the cap out of the key, so a resumed run that learned other caps replays them).

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

#: The share of replies a learned cap lets finish without being cut.
DEFAULT_PERCENTILE = 0.98
#: The learned percentile is multiplied by this before it becomes a cap.
DEFAULT_MARGIN = 1.25
#: Replies of a kind and model seen before their percentile replaces the initial bound.
DEFAULT_MIN_SAMPLES = 20
#: Tokens added to every learned cap: JSON punctuation, an answer tag, a stray newline.
_SLACK = 16
_FLOOR = 16
_CEILING = 16_384
_WINDOW = 2_000
#: How many new replies of a kind and model make the percentile worth recomputing.
_REFRESH_EVERY = 8
_FORMAT = 1


@dataclass(frozen=True)
class Cap:
    """The cap of one call: ``max_tokens`` to send (``None``: none) and whether a reply cut
    by it is asked once more with twice the cap (``retry_truncated``, for learned caps)."""

    max_tokens: int | None
    retry_truncated: bool
    source: Literal["learned", "initial", "pinned", "server-default"]


class CapStats(BaseModel):
    """What :class:`CompletionCaps` learned for one kind and model (for the run report)."""

    model_config = ConfigDict(frozen=True)

    kind: str
    model: str
    replies: int = Field(description="replies observed (replayed ones included)")
    per_unit_percentile: float | None = Field(
        description="the learned percentile of completion tokens per unit; None before "
        "enough replies were seen"
    )
    cap_per_unit: int | None = Field(
        description="the cap a one-unit call gets now (None: none learned, or none sent)"
    )
    retried: int = Field(description="replies cut by their cap and asked again with twice it")
    cut: int = Field(description="replies still cut when they were used")


class _Entry:
    __slots__ = ("cut", "fresh", "quantile", "replies", "retried", "samples")

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=_WINDOW)
        self.replies = 0
        self.retried = 0
        self.cut = 0
        self.quantile: float | None = None
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
        pinned: int | None = None,
    ) -> Cap:
        """The cap of a call of ``kind`` to ``model`` asking for ``units`` units.

        ``pinned`` (a cap the user set) wins; ``initial`` is the caller's bound for this call
        before anything was learned.
        """
        if pinned is not None:
            return Cap(pinned, retry_truncated=False, source="pinned")
        if self.policy == "server-default":
            return Cap(None, retry_truncated=False, source="server-default")
        units = max(1, units)
        entry = self._entries.get((kind, model))
        quantile = self._quantile(entry) if entry is not None else None
        if quantile is None:
            return Cap(self._clamp(initial), retry_truncated=True, source="initial")
        tokens = math.ceil(units * quantile * self.margin) + _SLACK
        return Cap(self._clamp(tokens), retry_truncated=True, source="learned")

    def observe(self, kind: str, model: str, response: ChatResponse, *, units: int = 1) -> None:
        """Learn from a reply to a call of ``kind`` that asked for ``units`` units."""
        tokens = response.usage.completion_tokens
        if tokens <= 0 and response.text:
            # a server that reports no usage: the reply's length stands in for it
            tokens = estimate_tokens(response.text, model)
        if tokens <= 0:
            return
        entry = self._entries.setdefault((kind, model), _Entry())
        entry.samples.append(tokens / max(1, units))
        entry.replies += 1
        entry.fresh += 1
        entry.retried += int(response.truncated_usage is not None)
        entry.cut += int(response.finish_reason == "length")
        self._changes += 1

    def stats(self) -> list[CapStats]:
        """What was learned, per kind and model."""
        result = []
        for (kind, model), entry in sorted(self._entries.items()):
            quantile = self._quantile(entry)
            per_unit = None
            if quantile is not None and self.policy == "adaptive":
                per_unit = self._clamp(math.ceil(quantile * self.margin) + _SLACK)
            result.append(
                CapStats(
                    kind=kind,
                    model=model,
                    replies=entry.replies,
                    per_unit_percentile=None if quantile is None else round(quantile, 1),
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
                    "samples": [round(v, 2) for v in entry.samples],
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
                entry = self._entries.setdefault(key, _Entry())
                entry.samples.extend(samples)
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

    def _quantile(self, entry: _Entry) -> float | None:
        if len(entry.samples) < self.min_samples:
            return None
        if entry.quantile is None or entry.fresh >= _REFRESH_EVERY:
            ordered = sorted(entry.samples)
            rank = min(len(ordered) - 1, math.ceil(self.percentile * len(ordered)) - 1)
            entry.quantile = ordered[max(0, rank)]
            entry.fresh = 0
        return entry.quantile

    def _clamp(self, tokens: int) -> int:
        return max(_FLOOR, min(self.ceiling, tokens))
