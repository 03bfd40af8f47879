"""From ``examples.jsonl`` to upload-ready files in one call: split, export, check, estimate.

The work is file I/O and token counting, so :func:`prepare_dataset` runs it in a worker thread
and the event loop stays free; the building blocks it calls are plain functions for callers
that are not async.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict

from raftkit.dataset.cost import Epochs
from raftkit.dataset.export import ChatExporter, Exporter, export_split, get_exporter
from raftkit.dataset.io import read_examples
from raftkit.dataset.manifest import EXPORT_MANIFEST_NAME, ExportManifest
from raftkit.dataset.open_formats import OPEN_FORMATS, write_open_format_extras
from raftkit.dataset.preflight import PreflightReport, preflight
from raftkit.dataset.split import DEFAULT_RATIOS, GroupBy, Ratios, SplitName, SplitReport
from raftkit.dataset.split import split_examples as _split_examples
from raftkit.dataset.validate import ValidationReport, validate_chat_jsonl
from raftkit.errors import UsageError

__all__ = ["PreparedDataset", "prepare_dataset"]

SPLIT_REPORT_NAME = "split.json"


class PreparedDataset(BaseModel):
    """What :func:`prepare_dataset` wrote and found."""

    model_config = ConfigDict(frozen=True)

    directory: str
    files: dict[str, dict[SplitName, str]]
    """Paths written, by format name and then part."""
    split: SplitReport
    preflight: PreflightReport
    validation: dict[SplitName, ValidationReport]
    """The validator's report on each chat file written (train and validation)."""

    @property
    def ok(self) -> bool:
        return all(report.ok for report in self.validation.values())

    def render(self) -> str:
        out = [self.split.render(), self.preflight.render()]
        out.extend(report.render() for report in self.validation.values())
        return "\n".join(out)


async def prepare_dataset(
    examples_path: str | os.PathLike[str],
    directory: str | os.PathLike[str],
    *,
    formats: Sequence[str] = ("chat",),
    system_prompt: str | None = None,
    ratios: Ratios = DEFAULT_RATIOS,
    seed: int = 0,
    group_by: GroupBy = "chunk",
    model: str = "gpt-4o-mini",
    epochs: Epochs = "auto",
    price_per_million: float | None = None,
    exporter_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> PreparedDataset:
    """Split ``examples_path`` and write each format's files under ``directory/<format>/``.

    Chat files are validated as the service would; ``split.json`` records the split and
    ``export.json`` (:class:`~raftkit.dataset.manifest.ExportManifest`) the system prompt and
    formats, which ``raftkit eval`` reuses. ``exporter_options`` are passed to a format's
    exporter by name (the ``dpo`` formats take their ``pairs`` so); ``chat`` and the open
    trainers' formats are given ``system_prompt`` unless their options say otherwise.
    """
    if not formats:
        raise UsageError("formats must name at least one export format")
    options = {name: dict((exporter_options or {}).get(name, {})) for name in formats}
    for name, given in options.items():
        if name == "chat" or name in OPEN_FORMATS:
            given.setdefault("system_prompt", system_prompt)
    exporters = {name: get_exporter(name, **options[name]) for name in formats}
    return await anyio.to_thread.run_sync(
        lambda: _prepare(
            Path(examples_path),
            Path(directory),
            exporters,
            system_prompt=system_prompt,
            ratios=ratios,
            seed=seed,
            group_by=group_by,
            model=model,
            epochs=epochs,
            price_per_million=price_per_million,
        )
    )


def _prepare(
    examples_path: Path,
    directory: Path,
    exporters: dict[str, Exporter],
    *,
    system_prompt: str | None,
    ratios: Ratios,
    seed: int,
    group_by: GroupBy,
    model: str,
    epochs: Epochs,
    price_per_million: float | None,
) -> PreparedDataset:
    split = _split_examples(
        read_examples(examples_path), ratios=ratios, seed=seed, group_by=group_by
    )
    directory.mkdir(parents=True, exist_ok=True)
    report = split.report()
    (directory / SPLIT_REPORT_NAME).write_text(report.model_dump_json(indent=2), encoding="utf-8")
    manifest = ExportManifest(
        system_prompt=system_prompt, formats=list(exporters), seed=seed, group_by=group_by
    )
    (directory / EXPORT_MANIFEST_NAME).write_text(
        manifest.model_dump_json(indent=2), encoding="utf-8"
    )

    files: dict[str, dict[SplitName, str]] = {}
    validation: dict[SplitName, ValidationReport] = {}
    for name, exporter in exporters.items():
        written = export_split(split, directory / name, exporter)
        files[name] = {part: str(path) for part, path in written.items()}
        if isinstance(exporter, ChatExporter):
            for part in ("train", "validation"):
                if part in written:
                    validation[part] = validate_chat_jsonl(
                        written[part],
                        model=model,
                        epochs=epochs,
                        price_per_million=price_per_million,
                        purpose="training" if part == "train" else "validation",
                    )
    if any(name in OPEN_FORMATS for name in exporters):
        write_open_format_extras(split, directory, files)
    return PreparedDataset(
        directory=str(directory),
        files=files,
        split=report,
        preflight=preflight(
            split,
            exporter=ChatExporter(system_prompt),
            model=model,
            epochs=epochs,
            price_per_million=price_per_million,
        ),
        validation=validation,
    )
