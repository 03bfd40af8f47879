"""A finished fine-tuning job as files a person can open: its training curve (CSV and a
standalone SVG plot) and a Markdown summary that links them.

The CSV has one row per step (``step``, the losses and accuracies, then any other numeric
column the service reported); the SVG draws loss above and accuracy below (when reported),
training as a solid line and validation as a dashed one, with no script and no external file.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from html import escape

from raftkit.finetune._models import FineTuneJob, StepMetrics, TrainingMetrics

__all__ = ["summary_markdown", "training_curve_csv", "training_curve_svg"]

_KNOWN = ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy")
_WIDTH = 720
_PANEL = 240
_MARGIN = (56, 16, 28, 36)  # left, right, top, bottom
_COLOURS = {"train": "#1f6feb", "valid": "#d1242f"}


def training_curve_csv(metrics: TrainingMetrics) -> str:
    """The per-step metrics as CSV text (blank where a step has no value)."""
    extra = sorted({name for row in metrics.steps for name in row.extra})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", *_KNOWN, *extra])
    for row in metrics.steps:
        known = [getattr(row, name) for name in _KNOWN]
        writer.writerow(
            [row.step, *("" if v is None else v for v in known)]
            + ["" if row.extra.get(n) is None else row.extra[n] for n in extra]
        )
    return out.getvalue()


def _series(steps: Sequence[StepMetrics], name: str) -> list[tuple[float, float]]:
    points = []
    for row in steps:
        value = getattr(row, name)
        if value is not None and math.isfinite(value):
            points.append((float(row.step), float(value)))
    return points


def _panel(
    steps: Sequence[StepMetrics], quantity: str, top: int, x_range: tuple[float, float]
) -> str:
    train = _series(steps, f"train_{quantity}")
    valid = _series(steps, f"valid_{quantity}")
    values = [v for _, v in train + valid]
    if not values:
        return ""
    low, high = min(values), max(values)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    left, right, pad_top, pad_bottom = _MARGIN
    x0, x1 = x_range
    inner_w = _WIDTH - left - right
    inner_h = _PANEL - pad_top - pad_bottom

    def x(step: float) -> float:
        return left + (step - x0) / max(x1 - x0, 1.0) * inner_w

    def y(value: float) -> float:
        return top + pad_top + (high - value) / (high - low) * inner_h

    parts = [
        f'<text x="{left}" y="{top + 18}" font-weight="bold">{escape(quantity)}</text>',
        f'<line x1="{left}" y1="{top + pad_top + inner_h}" x2="{left + inner_w}" '
        f'y2="{top + pad_top + inner_h}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top + pad_top}" x2="{left}" y2="{top + pad_top + inner_h}" '
        'stroke="#888"/>',
    ]
    for value in (low, (low + high) / 2, high):
        parts.append(
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.3g}</text>'
        )
    for step in (x0, x1):
        parts.append(
            f'<text x="{x(step):.1f}" y="{top + _PANEL - 14}" text-anchor="middle">'
            f"{step:.0f}</text>"
        )
    for label, points, dash in (("train", train, ""), ("valid", valid, ' stroke-dasharray="6 4"')):
        if not points:
            continue
        path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points)
        colour = _COLOURS[label]
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.6"{dash} points="{path}">'
            f"<title>{label} {escape(quantity)}</title></polyline>"
        )
        if len(points) == 1:
            s, v = points[0]
            parts.append(f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>')
    return "\n".join(parts)


def training_curve_svg(metrics: TrainingMetrics, *, title: str = "training curve") -> str:
    """A standalone SVG: loss (and accuracy, when reported) by step, train and validation."""
    steps = metrics.steps
    x_range = (float(steps[0].step), float(steps[-1].step)) if steps else (0.0, 1.0)
    body: list[str] = []
    top = 24
    for quantity in ("loss", "accuracy"):
        drawn = _panel(steps, quantity, top, x_range)
        if drawn:
            body.append(drawn)
            top += _PANEL
    if not body:
        body.append(f'<text x="{_MARGIN[0]}" y="60">no metrics were reported</text>')
        top += 60
    legend_y = top + 8
    legend = (
        f'<text x="{_MARGIN[0]}" y="{legend_y}"><tspan fill="{_COLOURS["train"]}">— train'
        f'</tspan>   <tspan fill="{_COLOURS["valid"]}">- - validation</tspan>   step →</text>'
    )
    height = legend_y + 12
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" font-family="sans-serif" font-size="12">\n'
        f'<rect width="100%" height="100%" fill="white"/>\n'
        f'<text x="{_MARGIN[0]}" y="16" font-size="14">{escape(title)}</text>\n'
        + "\n".join(body)
        + f"\n{legend}\n</svg>\n"
    )


def summary_markdown(
    job: FineTuneJob,
    metrics: TrainingMetrics | None,
    *,
    service: str,
    base_model: str,
    simulated: bool = False,
) -> str:
    """A finished job in Markdown: what was trained, on what, how it ended, and (with
    ``metrics``) the training curve, linked as ``training-curve.svg`` and ``.csv`` beside it."""
    lines = []
    if simulated:
        lines += [
            "> **SIMULATED** — this job ran on raftkit's built-in simulator: nothing was "
            "trained and the model name is a placeholder.",
            "",
        ]
    hyper = ", ".join(f"{k}={v}" for k, v in sorted(job.hyperparameters.items())) or "-"
    rows = [
        ("job", f"{job.id} ({job.status})"),
        ("service", service),
        ("base model", job.model or base_model),
        ("fine-tuned model", f"`{job.fine_tuned_model}`" if job.fine_tuned_model else "-"),
        ("training file", job.training_file or "-"),
        ("validation file", job.validation_file or "-"),
        ("trained tokens", f"{job.trained_tokens:,}" if job.trained_tokens is not None else "-"),
        ("hyperparameters", hyper),
        ("final metrics", metrics.render() if metrics is not None else "not reported"),
    ]
    lines += [f"# Fine-tuning {job.fine_tuned_model or job.id}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    if metrics is not None:
        lines += [
            "",
            "## Training curve",
            "",
            "![training curve](training-curve.svg)",
            "",
            "Per-step values: [training-curve.csv](training-curve.csv)",
        ]
    return "\n".join(lines) + "\n"
