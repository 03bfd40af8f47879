"""Number, interval and verdict formatting shared by the evaluation report's renderings."""

from __future__ import annotations

import math

from raftkit.stats import Comparison

__all__ = ["interval", "md", "num", "percent", "verdict_class", "verdict_sentence"]


def num(value: float, digits: int = 3, *, signed: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def interval(low: float, high: float, *, signed: bool = False) -> str:
    if math.isnan(low) or math.isnan(high):
        return "n/a"
    return f"[{num(low, signed=signed)}, {num(high, signed=signed)}]"


def percent(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def verdict_sentence(model: str, baseline: str, metric: str, c: Comparison) -> str:
    if c.n == 0:
        return f"{model} vs {baseline} on {metric}: not measured on any common question"
    pct = percent(c.confidence)
    ci = interval(c.ci_low, c.ci_high, signed=True)
    span = f"Δ {num(c.difference, signed=True)}, {pct} CI {ci}"
    if c.verdict == "no detectable difference":
        head = f"no detectable difference between {model} and {baseline} on {metric}"
    else:
        word = {
            "better": "better than",
            "worse": "worse than",
            "higher": "higher than",
            "lower": "lower than",
        }[c.verdict]
        head = f"{model} is {word} {baseline} on {metric}"
    plural = "s" if c.n_excluded != 1 else ""
    excluded = f"; {c.n_excluded} pair{plural} not measured" if c.n_excluded else ""
    return f"{head} ({span}; n={c.n}{excluded})"


def md(text: str) -> str:
    # one line, no table breaks, no raw HTML from data
    text = " ".join(text.split()).replace("|", "\\|")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def verdict_class(verdict: str) -> str:
    return {"better": "better", "worse": "worse", "higher": "higher", "lower": "lower"}.get(
        verdict, "nodiff"
    )
