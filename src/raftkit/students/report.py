"""What a finished local training run leaves beside its adapter: the loss curve (CSV and a
self-contained SVG) and a model card.

The curve comes from the job's step events. A run resumed from a checkpoint trains some steps
twice (those after the checkpoint and before the kill); the later value of a step wins, so the
curve is the run that produced the adapter.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from raftkit.students.jobdir import LocalJobSpec, StepEvent

__all__ = ["CURVE_COLUMNS", "DPO_COLUMNS", "curve_csv", "curve_rows", "curve_svg", "model_card"]

# the order raftkit.finetune.training_curve_csv writes (known columns, then the others by
# name), so a run's finetune/training-curve.csv is this file byte for byte
CURVE_COLUMNS = (
    "step",
    "train_loss",
    "train_accuracy",
    "valid_loss",
    "valid_accuracy",
    "epoch",
    "learning_rate",
    "tokens_per_second",
)
#: A DPO run's columns besides (its train/valid loss is the DPO loss, accuracy the share of
#: pairs whose chosen answer out-scores the rejected one).
DPO_COLUMNS = ("chosen_reward", "rejected_reward", "reward_margin")


def curve_rows(events: Iterable[StepEvent]) -> list[dict[str, Any]]:
    """One row per step from the ``metrics`` events, ordered by step, later events winning."""
    by_step: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.type == "metrics" and isinstance(event.data.get("step"), int):
            row = {k: event.data.get(k) for k in CURVE_COLUMNS}
            row.update({k: event.data[k] for k in DPO_COLUMNS if k in event.data})
            by_step[event.data["step"]] = row
    return [by_step[step] for step in sorted(by_step)]


def curve_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV (blank cells where a step has no validation); ``parse_result_csv``
    reads it like a hosted job's result file. DPO columns appear in a DPO run's file only."""
    present = {k for row in rows for k in DPO_COLUMNS if row.get(k) is not None}
    columns = [*CURVE_COLUMNS[:5], *sorted({*CURVE_COLUMNS[5:], *present})]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return out.getvalue()


def _points(rows: Sequence[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    return [(float(r["step"]), float(r[key])) for r in rows if r.get(key) is not None]


def curve_svg(rows: Sequence[dict[str, Any]], *, title: str = "loss") -> str:
    """A line chart of train and validation loss per step, as a standalone SVG document."""
    width, height, left, right, top, bottom = 640, 360, 60, 20, 40, 45
    train = _points(rows, "train_loss")
    valid = _points(rows, "valid_loss")
    everything = train + valid
    if not everything:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="80">'
            '<text x="10" y="40">no training steps</text></svg>\n'
        )
    x_max = max(p[0] for p in everything)
    x_min = min(p[0] for p in everything)
    y_max = max(p[1] for p in everything)
    y_min = min(0.0, min(p[1] for p in everything))
    span_x = (x_max - x_min) or 1.0
    span_y = (y_max - y_min) or 1.0

    def to_xy(point: tuple[float, float]) -> str:
        x = left + (point[0] - x_min) / span_x * (width - left - right)
        y = height - bottom - (point[1] - y_min) / span_y * (height - top - bottom)
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#444"/>',
    ]
    for i in range(5):
        value = y_min + span_y * i / 4
        y = height - bottom - (value - y_min) / span_y * (height - top - bottom)
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.2f}</text>'
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            'stroke="#ddd"/>'
        )
    for i in range(5):
        step = x_min + span_x * i / 4
        x = left + (step - x_min) / span_x * (width - left - right)
        parts.append(
            f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{step:.0f}</text>'
        )
    parts.append(
        f'<text x="{(width + left) / 2}" y="{height - 8}" text-anchor="middle">step</text>'
    )
    for points, colour, label, offset in (
        (train, "#1f77b4", "train loss", 0),
        (valid, "#d62728", "validation loss", 1),
    ):
        if not points:
            continue
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{" ".join(to_xy(p) for p in points)}"/>'
        )
        parts.extend(
            f'<circle cx="{to_xy(p).split(",")[0]}" cy="{to_xy(p).split(",")[1]}" r="2.5" '
            f'fill="{colour}"/>'
            for p in points
        )
        legend_y = top + 4 + 16 * offset
        parts.append(
            f'<line x1="{width - right - 130}" y1="{legend_y}" x2="{width - right - 110}" '
            f'y2="{legend_y}" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{width - right - 104}" y="{legend_y + 4}">{label}</text>'
        )
    parts.append("</svg>\n")
    return "\n".join(parts)


def _split_summary(training_file: str) -> str | None:
    """The split ``raftkit export`` recorded beside the chat files, if it is there."""
    for candidate in (
        Path(training_file).parent / "split.json",
        Path(training_file).parent.parent / "split.json",
    ):
        try:
            report = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        items = report.get("items") or {}
        groups = report.get("groups") or {}
        return (
            f"split by {report.get('group_by', '?')} (seed {report.get('seed', '?')}): "
            + ", ".join(
                f"{name} {items.get(name, 0)} examples / {groups.get(name, 0)} groups"
                for name in ("train", "validation", "test")
            )
        )
    return None


def _how_trained(dpo: bool) -> str:
    if dpo:
        return (
            "Trained with raftkit's local LoRA provider by DPO on preference pairs of a RAFT "
            "run (a verified answer preferred over one that failed verification): the "
            "log-probabilities compared are those of each answer and its end-of-turn token, "
            "rendered with the base model's own chat template."
        )
    return (
        "Trained with raftkit's local LoRA provider on retrieval-augmented (RAFT) examples: "
        "the loss covers only the assistant's chain-of-thought answer and its end-of-turn "
        "token, rendered with the base model's own chat template."
    )


def model_card(
    spec: LocalJobSpec,
    *,
    rows: Sequence[dict[str, Any]],
    train_rows: int,
    valid_rows: int,
    trained_tokens: int,
    device: str,
    precision: str,
    version: str,
) -> str:
    """README.md of the adapter: base model, data and split, hyper-parameters, metrics."""
    base = spec.base
    final = rows[-1] if rows else {}
    valid = [r for r in rows if r.get("valid_loss") is not None]
    settings = spec.config.model_dump(mode="json")
    if settings.get("target_modules") is None:
        settings["target_modules"] = "every linear layer but the output head"
    if spec.method == "dpo":
        settings = {"method": "dpo", "beta": spec.beta or 0.1, **settings}
        if spec.from_adapter:
            settings["from_adapter (LoRA shape and reference)"] = spec.from_adapter
    lines = [
        "---",
        f"base_model: {json.dumps(base.spec)}",
        "library_name: peft",
        "tags: [raftkit, raft, lora]",
        "---",
        "",
        f"# {spec.suffix or 'RAFT student'} — LoRA adapter for {base.spec}",
        "",
        _how_trained(spec.method == "dpo"),
        "",
        "## Base model",
        "",
        f"- BASE: `{base.spec}` ({base.kind}, architecture {base.architecture or 'unknown'}, "
        f"context window {base.context_window or 'unknown'})",
        f"- fingerprint: `{base.fingerprint[:16]}`",
        "",
        "## Data",
        "",
        f"- training file: `{spec.training_source or spec.training_file}` ({train_rows} rows, "
        f"{trained_tokens:,} trained tokens over the run)",
        f"- validation file: `{spec.validation_file or '-'}` ({valid_rows} rows)",
    ]
    split = _split_summary(spec.training_source or spec.training_file)
    if split:
        lines.append(f"- {split}")
    lines += [
        "",
        "## Hyper-parameters",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in settings.items()),
        f"| device used | {device} |",
        f"| precision used | {precision} |",
        "",
        "## Metrics",
        "",
        f"- steps: {final.get('step', 0)}",
        f"- final train loss: {_number(final.get('train_loss'))}",
        f"- final validation loss: {_number(valid[-1]['valid_loss']) if valid else '-'}",
        *(
            [f"- final reward margin: {_number(final.get('reward_margin'))}"]
            if spec.method == "dpo"
            else []
        ),
        f"- first train loss: {_number(rows[0].get('train_loss')) if rows else '-'}",
        "",
        "The curve is in `training-curve.csv` and `training-curve.svg` beside this card.",
        "",
        "## Use",
        "",
        f"- raftkit: `raftkit serve {base.spec} --adapter raft=<this folder>` (or, in the run "
        "directory it was trained for, `raftkit serve --run RUN_DIR`)",
        "- vLLM, llama.cpp: see raftkit's docs/open-models.md",
        "",
        f"Made with raftkit {version}.",
        "",
    ]
    return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{float(value):.4f}" if isinstance(value, int | float) else "-"
