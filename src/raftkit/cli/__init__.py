"""Floor 5: the ``raftkit`` command line.

Each command lives in its own module with ``add_parser(commands)`` and an async ``run(args)``
returning the exit code; this module only dispatches. Exit codes: 0 success, 1 the work did
not complete (stopped by the budget, rejected data), 2 a usage or input error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import anyio

from raftkit.errors import InputError, RaftkitError, UsageError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from raftkit.cli import evaluate, finetune, generate, retrieval, show

    parser = argparse.ArgumentParser(
        prog="raftkit",
        description="Retrieval-Augmented Fine-Tuning: documents to a fine-tuned, evaluated model.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    generate.add_parser(commands)
    finetune.add_parsers(commands)
    evaluate.add_parser(commands)
    retrieval.add_parser(commands)
    show.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (
        logging.WARNING
        if args.verbose == 0
        else logging.INFO
        if args.verbose == 1
        else logging.DEBUG
    )
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from raftkit.llm import install_log_redaction

    # httpx logs full URLs at -v: keys in a base URL or the environment never reach the log
    redaction = install_log_redaction(
        [os.environ.get(k, "") for k in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")]
    )
    try:
        code: int = anyio.run(args.handler, args)
    except (UsageError, InputError) as e:
        print(f"raftkit {args.command}: {e}", file=sys.stderr)
        return 2
    except RaftkitError as e:
        print(f"raftkit {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"raftkit {args.command}: interrupted; run it again to resume", file=sys.stderr)
        return 130
    finally:
        redaction.remove()
    return code
