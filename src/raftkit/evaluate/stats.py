"""The paired bootstrap, re-exported from :mod:`raftkit.stats` where it now lives.

The statistics serve evaluation and retrieval alike, so they sit on the lowest floor; this
module keeps ``from raftkit.evaluate.stats import paired_bootstrap`` working.
"""

from raftkit.stats import (
    Comparison,
    Interval,
    MaybeNaN,
    Verdict,
    bootstrap_mean,
    paired_bootstrap,
    verdict_for,
)

__all__ = [
    "Comparison",
    "Interval",
    "MaybeNaN",
    "Verdict",
    "bootstrap_mean",
    "paired_bootstrap",
    "verdict_for",
]
