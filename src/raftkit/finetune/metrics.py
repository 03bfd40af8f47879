"""Reading a job's result file: the per-step metrics CSV both OpenAI and Azure write.

OpenAI's columns are ``step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy``;
Azure's ``results.csv`` says ``train_mean_token_accuracy`` and ``validation_mean_token_accuracy``
and adds ``full_valid_*``. Known aliases map onto :class:`StepMetrics` fields, any other numeric
column lands in ``extra``, and blank cells are ``None``.
"""

from __future__ import annotations

import csv
import io

from raftkit.errors import DatasetError
from raftkit.finetune._models import StepMetrics, TrainingMetrics

__all__ = ["parse_result_csv"]

_ALIASES = {
    "step": "step",
    "train_loss": "train_loss",
    "train_accuracy": "train_accuracy",
    "train_mean_token_accuracy": "train_accuracy",
    "valid_loss": "valid_loss",
    "validation_loss": "valid_loss",
    "valid_accuracy": "valid_accuracy",
    "valid_mean_token_accuracy": "valid_accuracy",
    "validation_mean_token_accuracy": "valid_accuracy",
}


def _number(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse_result_csv(content: bytes | str, *, file_id: str = "") -> TrainingMetrics:
    """The rows of a result CSV as :class:`TrainingMetrics` (ordered by step)."""
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "step" not in [f.strip() for f in reader.fieldnames]:
        raise DatasetError("the result file has no 'step' column", path=file_id or None)
    rows: list[StepMetrics] = []
    for line, record in enumerate(reader, start=2):
        known: dict[str, float | None] = {}
        extra: dict[str, float] = {}
        for column, cell in record.items():
            if column is None:
                continue
            name = column.strip()
            value = _number(cell)
            field = _ALIASES.get(name)
            if field is not None:
                if known.get(field) is None:
                    known[field] = value
            elif value is not None:
                extra[name] = value
        step = known.pop("step", None)
        if step is None:
            raise DatasetError("a row has no step number", path=file_id or None, line=line)
        rows.append(
            StepMetrics(
                step=int(step),
                train_loss=known.get("train_loss"),
                train_accuracy=known.get("train_accuracy"),
                valid_loss=known.get("valid_loss"),
                valid_accuracy=known.get("valid_accuracy"),
                extra=extra,
            )
        )
    rows.sort(key=lambda r: r.step)
    return TrainingMetrics(file_id=file_id, steps=rows)
