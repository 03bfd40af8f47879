"""``raftkit export --formats dpo``: the run's preference pairs, collected (and topped up with
synthetic ones when ``--preference-pairs N`` asks for more), then written in the ``dpo`` and
``dpo-trl`` formats with the same split and prompts as the chat export."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from raftkit.dataset import PreparedDataset, validate_preference_jsonl
from raftkit.errors import UsageError
from raftkit.llm import LLMClient
from raftkit.preference_pairs import PreferenceSet, build_preference_set

__all__ = ["PREFERENCE_FORMATS", "check_preference_files", "export_preferences", "with_trl"]

PREFERENCE_FORMATS = ("dpo", "dpo-trl")


def with_trl(formats: list[str]) -> list[str]:
    """``dpo`` brings ``dpo-trl`` along: one set of pairs serves hosted and open trainers."""
    if "dpo" in formats and "dpo-trl" not in formats:
        return [*formats, "dpo-trl"]
    return formats


async def export_preferences(
    args: argparse.Namespace, client: LLMClient | None
) -> tuple[PreferenceSet, Mapping[str, Mapping[str, Any]]]:
    """The pairs (printed as a summary) and the exporter options that carry them."""
    if args.preference_pairs < 0:
        raise UsageError("--preference-pairs must be 0 or more")
    pairs = await build_preference_set(
        args.run_dir, want=args.preference_pairs, client=client, teacher_model=args.teacher_model
    )
    print(pairs.render())
    if not pairs.pairs:
        print(
            "no preference pairs: every answer verified at the first attempt; ask the teacher "
            "for flawed ones with --preference-pairs N"
        )
    options = {"pairs": pairs.by_example(), "system_prompt": args.system_prompt}
    return pairs, dict.fromkeys(PREFERENCE_FORMATS, options)


async def check_preference_files(prepared: PreparedDataset) -> bool:
    """Check the ``dpo`` train and validation files as the service will; print the reports."""
    ok = True
    for part in ("train", "validation"):
        path = prepared.files.get("dpo", {}).get(part)
        if path is None:
            continue
        report = await anyio.to_thread.run_sync(validate_preference_jsonl, Path(path))
        print(report.render())
        ok = ok and report.ok
    return ok
