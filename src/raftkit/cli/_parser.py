"""The argument parser every ``raftkit`` command uses: defaults in ``--help``, suggestions for
mistyped flags and choices, and ``-v`` accepted after the command too."""

from __future__ import annotations

import argparse
import copy
import difflib
import re
import sys
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

__all__ = ["HelpFormatter", "RaftkitParser", "close_matches"]

_UNRECOGNIZED = re.compile(r"unrecognized arguments: (.+)")
_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.+)\)")


def close_matches(word: str, candidates: Iterable[str]) -> list[str]:
    """The candidates ``word`` was probably meant to be, best first."""
    return difflib.get_close_matches(word, list(candidates), n=2, cutoff=0.6)


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default; keeps text that has its own line breaks as written."""

    def _format_action(self, action: argparse.Action) -> str:
        default = action.default
        shown = (
            action.option_strings
            and action.help is not argparse.SUPPRESS
            and default is not None
            and default is not False
            and default is not argparse.SUPPRESS
            and not isinstance(action, argparse._VersionAction | argparse._HelpAction)
            and "default" not in (action.help or "")
        )
        if shown:
            action = copy.copy(action)
            value = ",".join(map(str, default)) if isinstance(default, list | tuple) else default
            shown_value = str(value).replace("%", "%%")  # help strings are %-formatted
            action.help = f"{action.help or ''} (default: {shown_value})".strip()
        return super()._format_action(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return textwrap.indent(text, indent)
        return super()._fill_text(text, width, indent)


class RaftkitParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose errors suggest the close flag or choice.

    Every parser (sub-commands included, which argparse builds with this class) takes
    ``-v/--verbose``, so ``raftkit generate ... -v`` works as well as ``raftkit -v generate``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=argparse.SUPPRESS,
            help="more logging (-vv: debug), and a traceback when a command fails",
        )

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._given = list(args) if args is not None else sys.argv[1:]
        parsed, extras = super().parse_known_args(args, namespace)
        # the innermost parser finishes first: it names the command whose flags were meant
        if not hasattr(parsed, "_parser"):
            parsed._parser = self
        return parsed, extras

    def options(self) -> list[str]:
        return [s for a in self._actions for s in a.option_strings if s.startswith("--")]

    def error(self, message: str) -> NoReturn:
        super().error(message + self._suggestion(message))

    def _suggestion(self, message: str) -> str:
        found = _UNRECOGNIZED.search(message)
        # a typo in a required flag makes argparse complain of the missing one first: the
        # words given are searched for the typo either way
        words = found.group(1).split() if found else getattr(self, "_given", [])
        known = set(self.options())
        hints = []
        for word in words:
            flag = word.split("=", 1)[0]
            if flag.startswith("--") and flag not in known:
                hints += [f"{flag}: did you mean {m}?" for m in close_matches(flag, known)[:1]]
        if hints:
            return f" ({'; '.join(hints)})"
        if found:
            return ""
        found = _INVALID_CHOICE.search(message)
        if found:
            choices = [c.strip().strip("'") for c in found.group(2).split(",")]
            best = close_matches(found.group(1), choices)
            return f"; did you mean {best[0]!r}?" if best else ""
        return ""
