"""Train/validation/test splits that keep every group on one side (floor 1).

Items that share evidence must not straddle the split: if one question about a chunk is in
training and another in the test set, the test measures memorisation, not reading. So whole
groups (a chunk, a document) are assigned to one part.

The assignment depends only on the set of group keys, their sizes and the seed, never on the
order the items arrive in: the sorted keys are shuffled with a seeded generator and handed out,
one group at a time, to the part furthest below its target size. Exact ratios are impossible
with whole groups, so the split reports the ratios it achieved.

Nothing here knows what an item is: the dataset splits examples with it and retrieval splits
(question, chunk) pairs, which is why it sits on the lowest floor.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from raftkit.errors import UsageError

__all__ = [
    "DEFAULT_RATIOS",
    "SPLIT_NAMES",
    "Ratios",
    "Split",
    "SplitName",
    "SplitReport",
    "assign_groups",
    "connected_groups",
    "leaked_groups",
    "split_groups",
]

_T = TypeVar("_T")

SplitName = Literal["train", "validation", "test"]
SPLIT_NAMES: tuple[SplitName, SplitName, SplitName] = ("train", "validation", "test")
Ratios = tuple[float, float, float]
DEFAULT_RATIOS: Ratios = (0.8, 0.1, 0.1)


class SplitReport(BaseModel):
    """What a split asked for and what it got, serialisable to JSON for the run directory."""

    model_config = ConfigDict(frozen=True)

    seed: int
    group_by: str
    requested: dict[SplitName, float]
    achieved: dict[SplitName, float]
    items: dict[SplitName, int]
    groups: dict[SplitName, int]

    def render(self) -> str:
        """A few lines for the command line."""
        lines = [f"split by {self.group_by}, seed {self.seed}"]
        for name in SPLIT_NAMES:
            lines.append(
                f"  {name:<10} {self.items[name]:>7} items  {self.groups[name]:>6} groups  "
                f"{self.achieved[name]:6.1%} (asked {self.requested[name]:.1%})"
            )
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Split(Generic[_T]):
    """The three parts of a split, each a list in a deterministic order."""

    train: list[_T]
    validation: list[_T]
    test: list[_T]
    requested: Ratios
    seed: int
    group_counts: tuple[int, int, int]
    group_by: str = "key"

    def parts(self) -> dict[SplitName, list[_T]]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def __len__(self) -> int:
        return len(self.train) + len(self.validation) + len(self.test)

    @property
    def achieved(self) -> dict[SplitName, float]:
        """The share of items in each part (0.0 for all parts when there are no items)."""
        total = len(self)
        return {
            name: (len(items) / total if total else 0.0) for name, items in self.parts().items()
        }

    def report(self) -> SplitReport:
        return SplitReport(
            seed=self.seed,
            group_by=self.group_by,
            requested=dict(zip(SPLIT_NAMES, self.requested, strict=True)),
            achieved=self.achieved,
            items={name: len(items) for name, items in self.parts().items()},
            groups=dict(zip(SPLIT_NAMES, self.group_counts, strict=True)),
        )


def assign_groups(
    sizes: Mapping[str, int], *, ratios: Ratios = DEFAULT_RATIOS, seed: int = 0
) -> dict[str, SplitName]:
    """The part each group goes to, given each group's size (number of items).

    This is the whole decision of :func:`split_groups`, for callers that stream: count the
    items per key in one pass, assign, then route items in a second pass. The result is in
    assignment order and depends only on ``sizes`` and ``seed``.
    """
    wanted = _checked_ratios(ratios)
    keys = sorted(sizes)
    random.Random(seed).shuffle(keys)
    total = sum(sizes.values())
    targets = [share * total for share in wanted]
    filled = [0, 0, 0]
    # Zero-ratio parts never take a group: near the end every deficit may be negative, and a
    # zero part's would then look the least bad.
    open_parts = [i for i in range(3) if wanted[i] > 0]
    placement: dict[str, SplitName] = {}
    for group_key in keys:
        # the part furthest below its target takes the group; ties go to the earlier part
        best = max(open_parts, key=lambda i: (targets[i] - filled[i], -i))
        placement[group_key] = SPLIT_NAMES[best]
        filled[best] += sizes[group_key]
    return placement


def split_groups(
    items: Iterable[_T],
    *,
    key: Callable[[_T], str],
    ratios: Ratios = DEFAULT_RATIOS,
    seed: int = 0,
    order: Callable[[_T], Any] | None = None,
    group_by: str = "key",
) -> Split[_T]:
    """Split ``items`` into train/validation/test so that no ``key`` value spans two parts.

    ``ratios`` are the target shares of items (they must be non-negative and sum to 1; a zero
    leaves that part empty). Which group lands where depends only on the keys, the group sizes
    and ``seed``. Each part is then shuffled with a generator seeded from ``seed``; pass
    ``order`` (a sort key, such as an id) to make the order inside each part independent of
    the input order too. ``group_by`` only labels the report.
    """
    wanted = _checked_ratios(ratios)
    groups: dict[str, list[_T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    placement = assign_groups({k: len(v) for k, v in groups.items()}, ratios=wanted, seed=seed)
    assigned: list[list[str]] = [[], [], []]
    for group_key, name in placement.items():
        assigned[SPLIT_NAMES.index(name)].append(group_key)

    parts: list[list[_T]] = []
    for index, part_keys in enumerate(assigned):
        members: list[_T] = []
        for group_key in part_keys:
            members.extend(groups[group_key])
        if order is not None:
            members.sort(key=order)
        random.Random(f"{seed}/{SPLIT_NAMES[index]}").shuffle(members)
        parts.append(members)

    return Split(
        train=parts[0],
        validation=parts[1],
        test=parts[2],
        requested=wanted,
        seed=seed,
        group_counts=(len(assigned[0]), len(assigned[1]), len(assigned[2])),
        group_by=group_by,
    )


def connected_groups(members: Iterable[str], links: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each member's group key: the first member, in the order given, of the members ``links``
    join to it (directly or through others).

    Chunks that share text (or feed one multi-hop question) must land on one side of a split;
    this turns their pairwise links into group keys for :func:`split_groups`. Members named only
    in ``links`` follow the given ones, in the order they first appear. A member nothing links
    is its own group. The result depends only on the order of ``members`` and the set of links.
    """
    order: dict[str, int] = {}
    for member in members:
        order.setdefault(member, len(order))
    pairs = list(links)
    for left, right in pairs:
        order.setdefault(left, len(order))
        order.setdefault(right, len(order))
    parent = list(range(len(order)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for left, right in pairs:
        a, b = root(order[left]), root(order[right])
        if a != b:
            # the earlier member stays the root, so the key is the component's first member
            parent[max(a, b)] = min(a, b)
    names = list(order)
    return {name: names[root(i)] for name, i in order.items()}


def leaked_groups(split: Split[_T], key: Callable[[_T], Hashable]) -> set[Hashable]:
    """Group keys found in training and also in validation or test (empty for a clean split)."""
    seen_in_training = {key(item) for item in split.train}
    held_out = {key(item) for item in split.validation} | {key(item) for item in split.test}
    crossing = {key(item) for item in split.validation} & {key(item) for item in split.test}
    return (seen_in_training & held_out) | crossing


def _checked_ratios(ratios: Ratios) -> Ratios:
    values = tuple(float(r) for r in ratios)
    if len(values) != 3:
        raise UsageError(f"ratios must be three numbers (train, validation, test), got {ratios!r}")
    if any(not math.isfinite(r) or r < 0 for r in values):
        raise UsageError(f"ratios must be finite and non-negative, got {ratios!r}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise UsageError(f"ratios must sum to 1, got {ratios!r} (sum {sum(values):g})")
    return (values[0], values[1], values[2])
