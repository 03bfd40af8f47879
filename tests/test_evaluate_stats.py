from __future__ import annotations

import math

import numpy as np
import pytest

from raftkit.errors import UsageError
from raftkit.stats import (
    Comparison,
    bootstrap_mean,
    paired_bootstrap,
    verdict_for,
)


def _paired(n: int, shift: float, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.2, 0.8, n)
    return a, a + shift + rng.normal(0.0, noise, n)


def test_known_difference_is_detected_and_covered() -> None:
    a, b = _paired(400, shift=0.05, noise=0.1, seed=7)
    c = paired_bootstrap(a, b, n_resamples=4000, seed=1)
    assert c.verdict == "better"
    assert c.significant
    assert c.ci_low > 0.0
    assert c.ci_low <= 0.05 <= c.ci_high  # the true shift lies inside the interval
    assert c.difference == pytest.approx(float(np.mean(b - a)))
    assert c.mean_b - c.mean_a == pytest.approx(c.difference)
    assert (c.n, c.n_excluded, c.n_resamples) == (400, 0, 4000)


def test_worse_is_reported_when_b_is_lower() -> None:
    a, b = _paired(300, shift=-0.08, noise=0.1, seed=3)
    assert paired_bootstrap(a, b, n_resamples=2000).verdict == "worse"
    # for an error rate lower is better: the same numbers are an improvement
    assert paired_bootstrap(a, b, n_resamples=2000, higher_is_better=False).verdict == "better"
    assert paired_bootstrap(a, b, n_resamples=2000, higher_is_better=None).verdict == "lower"


def test_no_difference_gives_an_interval_around_zero() -> None:
    a, b = _paired(300, shift=0.0, noise=0.1, seed=11)
    c = paired_bootstrap(a, b, n_resamples=4000)
    assert c.ci_low < 0.0 < c.ci_high
    assert c.verdict == "no detectable difference"
    assert not c.significant


def test_interval_width_follows_the_confidence_level() -> None:
    a, b = _paired(200, shift=0.01, noise=0.1, seed=5)
    wide = paired_bootstrap(a, b, n_resamples=3000, confidence=0.99)
    narrow = paired_bootstrap(a, b, n_resamples=3000, confidence=0.80)
    assert wide.ci_high - wide.ci_low > narrow.ci_high - narrow.ci_low


def test_seeded_runs_are_deterministic() -> None:
    a, b = _paired(150, shift=0.02, noise=0.2, seed=2)
    first = paired_bootstrap(a, b, n_resamples=3000, seed=42)
    assert paired_bootstrap(a, b, n_resamples=3000, seed=42) == first
    other = paired_bootstrap(a, b, n_resamples=3000, seed=43)
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


def test_chunking_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import raftkit.stats as stats

    a, b = _paired(100, shift=0.02, noise=0.2, seed=9)
    whole = paired_bootstrap(a, b, n_resamples=500, seed=4)
    # 100 items x 7 resamples per chunk: many chunks, and a short last one
    monkeypatch.setattr(stats, "_MAX_CELLS_PER_CHUNK", 700)
    chunked = paired_bootstrap(a, b, n_resamples=500, seed=4)
    assert chunked.difference == whole.difference
    assert chunked.ci_low == pytest.approx(whole.ci_low)
    assert chunked.ci_high == pytest.approx(whole.ci_high)


def test_nan_pairs_are_excluded_and_counted() -> None:
    a = np.array([0.0, 1.0, np.nan, 0.0, 1.0, 0.0])
    b = np.array([1.0, 1.0, 1.0, np.nan, np.nan, 1.0])
    c = paired_bootstrap(a, b, n_resamples=1000)
    assert (c.n, c.n_excluded) == (3, 3)
    assert c.mean_a == pytest.approx(1 / 3)
    assert c.mean_b == 1.0
    assert c.difference == pytest.approx(2 / 3)


def test_all_nan_is_not_measured() -> None:
    c = paired_bootstrap([np.nan, 1.0], [0.5, np.nan])
    assert (c.n, c.n_excluded) == (0, 2)
    assert math.isnan(c.difference)
    assert math.isnan(c.ci_low)
    assert c.verdict == "no detectable difference"


def test_comparison_json_round_trips_nan_as_null() -> None:
    c = paired_bootstrap([np.nan], [1.0])
    text = c.model_dump_json()
    assert "NaN" not in text
    assert '"difference":null' in text
    again = Comparison.model_validate_json(text)
    assert math.isnan(again.difference)
    assert again.n_excluded == 1


def test_invalid_arguments_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="lengths"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(UsageError, match="confidence"):
        paired_bootstrap([1.0], [1.0], confidence=1.0)
    with pytest.raises(UsageError, match="n_resamples"):
        paired_bootstrap([1.0], [1.0], n_resamples=0)
    with pytest.raises(UsageError, match="one-dimensional"):
        paired_bootstrap(np.ones((2, 2)), np.ones((2, 2)))


def test_verdict_for() -> None:
    assert verdict_for(0.01, 0.2) == "better"
    assert verdict_for(-0.2, -0.01) == "worse"
    assert verdict_for(-0.01, 0.2) == "no detectable difference"
    assert verdict_for(0.0, 0.2) == "no detectable difference"  # touching zero is not excluding it
    assert verdict_for(0.1, 0.2, higher_is_better=None) == "higher"
    assert verdict_for(math.nan, math.nan) == "no detectable difference"


def test_bootstrap_mean() -> None:
    values = np.concatenate([np.linspace(0.0, 1.0, 101), [np.nan, np.nan]])
    interval = bootstrap_mean(values, n_resamples=2000)
    assert interval.mean == pytest.approx(0.5)
    assert interval.ci_low < 0.5 < interval.ci_high
    assert (interval.n, interval.n_excluded) == (101, 2)
    empty = bootstrap_mean([np.nan])
    assert math.isnan(empty.mean)
    assert empty.n == 0
    assert empty.n_excluded == 1
