"""Train/validation/test splits of RAFT examples, grouped by oracle chunk or by document.

Questions written from the same chunk share their answer's evidence, so whole groups go to one
part; the grouped split itself (:func:`split_groups` and its report) lives in
:mod:`raftkit.grouped_split` and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from raftkit.errors import UsageError
from raftkit.grouped_split import (
    DEFAULT_RATIOS,
    SPLIT_NAMES,
    Ratios,
    Split,
    SplitName,
    SplitReport,
    assign_groups,
    leaked_groups,
    split_groups,
)
from raftkit.types import RaftExample

__all__ = [
    "DEFAULT_RATIOS",
    "SPLIT_NAMES",
    "GroupBy",
    "Ratios",
    "Split",
    "SplitName",
    "SplitReport",
    "assign_groups",
    "leaked_groups",
    "split_examples",
    "split_groups",
]

GroupBy = Literal["chunk", "document"]


def split_examples(
    examples: Iterable[RaftExample],
    *,
    ratios: Ratios = DEFAULT_RATIOS,
    seed: int = 0,
    group_by: GroupBy = "chunk",
) -> Split[RaftExample]:
    """Split RAFT examples grouped by oracle chunk (or by document), setting each ``split``.

    The result is the same for the same examples and seed whatever order they come in.
    """
    if group_by == "chunk":
        key: Callable[[RaftExample], str] = _chunk_key
    elif group_by == "document":
        key = _document_key
    else:
        raise UsageError(f"group_by must be 'chunk' or 'document', not {group_by!r}")
    split = split_groups(
        examples, key=key, ratios=ratios, seed=seed, order=_example_order, group_by=group_by
    )
    return Split(
        train=[e.model_copy(update={"split": "train"}) for e in split.train],
        validation=[e.model_copy(update={"split": "validation"}) for e in split.validation],
        test=[e.model_copy(update={"split": "test"}) for e in split.test],
        requested=split.requested,
        seed=split.seed,
        group_counts=split.group_counts,
        group_by=group_by,
    )


def _chunk_key(example: RaftExample) -> str:
    return example.chunk_id


def _document_key(example: RaftExample) -> str:
    return example.document_id


def _example_order(example: RaftExample) -> str:
    return example.id
