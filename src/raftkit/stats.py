"""Uncertainty for paired scores: the percentile bootstrap of a mean difference (floor 1).

Two systems scored on the same items (questions, queries) give paired scores. Whether one is
better is a question about the mean of the per-item differences, and how much that mean could
move had other items been drawn. :func:`paired_bootstrap` answers it by resampling items with
replacement, and says "better" or "worse" only when the confidence interval of the difference
excludes zero. Nothing here knows about answers or retrieval: any two aligned score vectors
will do: the evaluation compares answers with it and the retrieval evaluation compares
rankings, which is why it sits on the lowest floor, beside ``types`` and ``errors``. numpy is
imported when a function runs, so importing the module costs nothing.

One run of an LLM evaluation can show a gain that the next run of the same questions reverses;
a mean without an interval invites reading noise as progress.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from raftkit.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "Comparison",
    "Interval",
    "MaybeNaN",
    "Verdict",
    "bootstrap_mean",
    "paired_bootstrap",
    "verdict_for",
]

#: ``better``/``worse`` when higher is better or lower is better; ``higher``/``lower`` for
#: descriptive quantities (a length) that have no good direction.
Verdict = Literal["better", "worse", "higher", "lower", "no detectable difference"]

# Bounds the (resamples x items) index matrix drawn at once: about 32 MB of int64 indices.
_MAX_CELLS_PER_CHUNK = 4_000_000


def _none_to_nan(value: Any) -> Any:
    return math.nan if value is None else value


#: A float that may be ``nan`` ("not measured"). JSON has no NaN, so it is written as ``null``
#: and read back as ``nan``.
MaybeNaN = Annotated[float, BeforeValidator(_none_to_nan)]


class Interval(BaseModel):
    """A bootstrap estimate of one mean: the mean and its percentile interval."""

    model_config = ConfigDict(frozen=True)

    mean: MaybeNaN
    ci_low: MaybeNaN
    ci_high: MaybeNaN
    confidence: float
    n: int = Field(description="values that entered the mean")
    n_excluded: int = Field(description="nan values left out (not measured)")


class Comparison(BaseModel):
    """The outcome of :func:`paired_bootstrap`: system ``b`` against system ``a``.

    ``mean_a``, ``mean_b`` and ``difference`` (``mean_b - mean_a``) are over the ``n`` pairs in
    which both values were measured; ``n_excluded`` pairs had a ``nan`` on either side and are
    counted, not averaged in. ``ci_low``/``ci_high`` bound the mean difference at
    ``confidence`` (percentile bootstrap over ``n_resamples`` resamples of the pairs).
    """

    model_config = ConfigDict(frozen=True)

    mean_a: MaybeNaN
    mean_b: MaybeNaN
    difference: MaybeNaN
    ci_low: MaybeNaN
    ci_high: MaybeNaN
    confidence: float
    n: int
    n_excluded: int
    n_resamples: int
    seed: int
    higher_is_better: bool | None = True
    verdict: Verdict

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return self.verdict != "no detectable difference"


def verdict_for(ci_low: float, ci_high: float, *, higher_is_better: bool | None = True) -> Verdict:
    """The verdict an interval of ``b - a`` supports: a direction only if it excludes zero."""
    if math.isnan(ci_low) or math.isnan(ci_high) or ci_low <= 0.0 <= ci_high:
        return "no detectable difference"
    up = ci_low > 0.0
    if higher_is_better is None:
        return "higher" if up else "lower"
    return "better" if up == higher_is_better else "worse"


def _check(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise UsageError(f"confidence must lie strictly between 0 and 1, not {confidence}")
    if n_resamples < 1:
        raise UsageError(f"n_resamples must be at least 1, not {n_resamples}")


def _as_vector(x: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    import numpy as np

    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise UsageError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _resampled_means(
    values: npt.NDArray[np.float64], n_resamples: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Means of ``n_resamples`` resamples (with replacement) of ``values``, drawn in chunks."""
    import numpy as np

    n = values.shape[0]
    chunk = max(1, _MAX_CELLS_PER_CHUNK // n)
    means = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    return means


def _percentiles(means: npt.NDArray[np.float64], confidence: float) -> tuple[float, float]:
    import numpy as np

    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def paired_bootstrap(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: bool | None = True,
) -> Comparison:
    """Compare paired scores ``b`` (e.g. the fine-tuned model) against ``a`` (the baseline).

    ``a[i]`` and ``b[i]`` must score the same item. Pairs with a ``nan`` on either side are
    excluded and counted in :attr:`Comparison.n_excluded`. The per-pair differences ``b - a``
    are resampled with replacement ``n_resamples`` times (vectorised, in chunks that bound
    memory); the ``confidence`` interval is the percentile interval of the resampled means.
    The verdict is ``better``/``worse`` only when that interval excludes zero
    (``higher_is_better=False`` flips the direction; ``None`` reports ``higher``/``lower``).

    Deterministic for a given ``seed``. With no complete pair every number is ``nan`` and the
    verdict is "no detectable difference". The percentile bootstrap is optimistic for very
    few pairs (a single pair gives a zero-width interval): read verdicts on fewer than about
    20 items with care.
    """
    import numpy as np

    _check(confidence, n_resamples)
    x = _as_vector(a, "a")
    y = _as_vector(b, "b")
    if x.shape != y.shape:
        raise UsageError(f"a and b must be paired: lengths {x.shape[0]} and {y.shape[0]} differ")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = int(x.shape[0])
    excluded = int(keep.shape[0]) - n
    if n == 0:
        nan = math.nan
        return Comparison(
            mean_a=nan,
            mean_b=nan,
            difference=nan,
            ci_low=nan,
            ci_high=nan,
            confidence=confidence,
            n=0,
            n_excluded=excluded,
            n_resamples=n_resamples,
            seed=seed,
            higher_is_better=higher_is_better,
            verdict="no detectable difference",
        )
    diff = y - x
    rng = np.random.default_rng(seed)
    low, high = _percentiles(_resampled_means(diff, n_resamples, rng), confidence)
    return Comparison(
        mean_a=float(x.mean()),
        mean_b=float(y.mean()),
        difference=float(diff.mean()),
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        n=n,
        n_excluded=excluded,
        n_resamples=n_resamples,
        seed=seed,
        higher_is_better=higher_is_better,
        verdict=verdict_for(low, high, higher_is_better=higher_is_better),
    )


def bootstrap_mean(
    values: npt.ArrayLike,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The mean of ``values`` (``nan`` excluded and counted) with its percentile interval."""
    import numpy as np

    _check(confidence, n_resamples)
    x = _as_vector(values, "values")
    keep = ~np.isnan(x)
    x = x[keep]
    n = int(x.shape[0])
    excluded = int(keep.shape[0]) - n
    if n == 0:
        return Interval(
            mean=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            confidence=confidence,
            n=0,
            n_excluded=excluded,
        )
    rng = np.random.default_rng(seed)
    low, high = _percentiles(_resampled_means(x, n_resamples, rng), confidence)
    return Interval(
        mean=float(x.mean()),
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        n=n,
        n_excluded=excluded,
    )
