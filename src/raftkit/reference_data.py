"""The dated tables raftkit ships, and the user files that amend them (floor 1).

Prices, default model names, Azure training tiers and deployment types (``defaults.toml``) and
announced lifecycle dates (``lifecycle.toml``) change faster than raftkit's releases, so they
live in data files inside the package (``raftkit/data/``), each dated with ``as_of``, instead of
in code. A user file in the same format amends a table: its entries replace the shipped ones of
the same name (tables are merged key by key, lists replaced whole) and its ``as_of`` dates the
result. The command line takes such a file from ``--defaults-file`` / ``RAFTKIT_DEFAULTS`` and
``--lifecycle-file`` / ``RAFTKIT_LIFECYCLE``; the library takes a path.

A table older than its ``stale_after_days`` on a given day is *stale*: callers say so
(:meth:`ReferenceTable.stale_notice`) rather than trust it silently.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from raftkit.errors import UsageError

__all__ = [
    "DefaultModels",
    "ReferenceTable",
    "TableName",
    "default_models",
    "load_reference",
    "parse_day",
]

#: The shipped tables: ``defaults`` (models, prices, Azure tiers) and ``lifecycle`` (dates).
TableName = Literal["defaults", "lifecycle"]

_DEFAULT_STALE_DAYS = 180


@dataclass(frozen=True)
class ReferenceTable:
    """One dated table: the shipped file, amended by a user file if one was given."""

    name: str
    as_of: date
    stale_after_days: int
    data: Mapping[str, Any]
    files: tuple[str, ...]
    """The files read, the shipped one first."""

    def section(self, *keys: str) -> Mapping[str, Any]:
        """A nested table (``{}`` when absent): ``table.section("azure", "training_tiers")``."""
        node: Any = self.data
        for key in keys:
            node = node.get(key) if isinstance(node, Mapping) else None
        return node if isinstance(node, Mapping) else {}

    def age_days(self, today: date) -> int:
        return (today - self.as_of).days

    def stale(self, today: date) -> bool:
        return self.age_days(today) > self.stale_after_days

    def stale_notice(self, today: date) -> str | None:
        """One line saying the table may be out of date, or ``None`` while it is fresh."""
        if not self.stale(today):
            return None
        return (
            f"the {self.name} table is dated {self.as_of.isoformat()}, "
            f"{self.age_days(today)} days before {today.isoformat()}: its values may be out "
            f"of date; amend it with a file of your own ({self.files[-1]})"
        )


class DefaultModels(BaseModel):
    """The model names raftkit uses when the caller names none."""

    model_config = ConfigDict(frozen=True)

    teacher: str
    student: str
    embedding: str


def parse_day(value: Any, *, where: str) -> date:
    """A date from TOML (a date or an ISO string); ``where`` names the file and key."""
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise UsageError(f"{where}: {value!r} is not a date (write 2026-11-30)")


def _read(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{where} is not valid TOML: {e}") from e


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = _merge(old, value)
        else:
            merged[key] = value
    return merged


@cache
def _shipped(name: TableName) -> tuple[dict[str, Any], str]:
    resource = resources.files("raftkit").joinpath("data", f"{name}.toml")
    where = f"raftkit/data/{name}.toml"
    return _read(resource.read_text(encoding="utf-8"), where), where


def load_reference(
    name: TableName, override: str | os.PathLike[str] | None = None
) -> ReferenceTable:
    """The shipped table ``name``, amended by the TOML file ``override`` if given.

    A user file must date itself (``as_of = 2026-11-30``); a file that cannot be read or parsed
    raises :class:`~raftkit.errors.UsageError` naming it.
    """
    shipped, where = _shipped(name)
    data: dict[str, Any] = dict(shipped)
    files = [where]
    as_of = parse_day(shipped.get("as_of"), where=f"{where}: as_of")
    if override is not None:
        path = Path(override)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot read the {name} file {path}: {e.strerror or e}") from e
        user = _read(text, str(path))
        if "as_of" not in user:
            raise UsageError(
                f"{path}: as_of is missing; date the table (as_of = {date.today().isoformat()})"
            )
        as_of = parse_day(user["as_of"], where=f"{path}: as_of")
        data = _merge(data, user)
        files.append(str(path))
    stale_after = data.get("stale_after_days", _DEFAULT_STALE_DAYS)
    if not isinstance(stale_after, int) or isinstance(stale_after, bool) or stale_after < 0:
        raise UsageError(f"{files[-1]}: stale_after_days must be a whole number of days")
    return ReferenceTable(
        name=name, as_of=as_of, stale_after_days=stale_after, data=data, files=tuple(files)
    )


def default_models(table: ReferenceTable | None = None) -> DefaultModels:
    """The default teacher, student and embedding model of ``table`` (the shipped one)."""
    chosen = table if table is not None else load_reference("defaults")
    models = chosen.section("models")
    missing = [k for k in ("teacher", "student", "embedding") if not isinstance(models.get(k), str)]
    if missing:
        raise UsageError(f"{chosen.files[-1]}: [models] lacks {', '.join(missing)}")
    return DefaultModels(
        teacher=models["teacher"], student=models["student"], embedding=models["embedding"]
    )
