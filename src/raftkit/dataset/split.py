"""Train/validation/test splits of RAFT examples, grouped by oracle chunk or by document.

Questions written from the same chunk share their answer's evidence, so whole groups go to one
part; the grouped split itself (:func:`split_groups` and its report) lives in
:mod:`raftkit.grouped_split` and is re-exported here.

An example's :attr:`~raftkit.types.RaftExample.split_group`, when set, joins chunks that share
evidence: near-duplicate chunks (the same paragraph in two documents) and the two chunks of a
multi-hop question. Grouped by chunk, that key replaces the chunk; grouped by document, the
documents such examples join (and a multi-hop example's ``metadata["oracle_document_ids"]``)
form one group, named by the first of them in sorted order.
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
    connected_groups,
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
        examples = list(examples)
        joined = _document_groups(examples)

        def key(example: RaftExample) -> str:
            return joined[example.document_id]

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
    return example.split_group or example.chunk_id


def _document_groups(examples: list[RaftExample]) -> dict[str, str]:
    """Each document's group: documents joined by a shared split group or a multi-hop example
    are one, named by the first in sorted order (so the result ignores the examples' order)."""
    documents = sorted({e.document_id for e in examples})
    links: set[tuple[str, str]] = set()
    for example in examples:
        if example.split_group is not None:
            links.add((example.document_id, f"\x00{example.split_group}"))
        others = example.metadata.get("oracle_document_ids")
        if isinstance(others, list):
            links.update((example.document_id, str(d)) for d in others)
    return connected_groups(documents, sorted(links))


def _example_order(example: RaftExample) -> str:
    return example.id
