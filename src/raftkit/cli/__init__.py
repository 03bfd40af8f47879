"""Floor 5: the ``raftkit`` command line.

Each command lives in a module with an ``add_*`` function that adds its parser (and sets its
``handler``, an async function returning the exit code); this module only dispatches. Only the
module of the command being run is imported, so ``raftkit --version`` and ``raftkit show`` do
not pay for the machinery of ``generate`` or ``retrieval``. Every failure goes through one
presentation layer (:mod:`raftkit.cli._errors`): a line or two and an exit code from the table
that ``raftkit --help`` prints.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

import anyio

from raftkit import __version__
from raftkit.cli._errors import EXIT_CODE_TABLE, ExitCode, explain
from raftkit.cli._parser import RaftkitParser

__all__ = ["COMMANDS", "build_parser", "main"]

#: Each command: the module that defines it, the function there that adds its parser, and the
#: one line ``raftkit --help`` lists it with.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "generate": (
        "raftkit.cli.generate",
        "add_parser",
        "turn a folder of documents into RAFT training examples",
    ),
    "show": (
        "raftkit.cli.show",
        "add_parser",
        "write RUN_DIR/report.html: a page that shows what a generation run made",
    ),
    "export": (
        "raftkit.cli.finetune",
        "add_export",
        "split a run's examples and write fine-tuning files",
    ),
    "validate": (
        "raftkit.cli.finetune",
        "add_validate",
        "check a chat fine-tuning JSONL file before uploading it",
    ),
    "finetune": (
        "raftkit.cli.finetune",
        "add_parser",
        "fine-tune a student model on a run's examples (OpenAI or Azure OpenAI)",
    ),
    "jobs": ("raftkit.cli.finetune", "add_jobs", "list, show or cancel fine-tuning jobs"),
    "eval": (
        "raftkit.cli.evaluate",
        "add_parser",
        "compare models on the held-out split, with confidence intervals",
    ),
    "retrieval": (
        "raftkit.cli.retrieval",
        "add_parser",
        "fine-tune and evaluate the retriever (embeddings, adapters, reranker)",
    ),
    "serve": (
        "raftkit.cli.serve",
        "add_parser",
        "serve a local open-weight model (and LoRA adapters) as an OpenAI-compatible API",
    ),
    "simulator": (
        "raftkit.cli.simulator",
        "add_parser",
        "run the loopback OpenAI/Azure simulator in the background",
    ),
}

_AddParser = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _chosen(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (the first word that is not a global option)."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``raftkit`` parser. Only the command ``argv`` names gets its full parser (its module
    is imported); the others are listed by name and help line. Without ``argv``, all are full."""
    parser: argparse.ArgumentParser = RaftkitParser(
        prog="raftkit",
        description="Retrieval-Augmented Fine-Tuning: documents to a fine-tuned, evaluated model.",
        epilog=EXIT_CODE_TABLE,
    )
    parser.add_argument("--version", action="version", version=f"raftkit {__version__}")
    parser.set_defaults(verbose=0)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = _chosen(argv) if argv is not None else None
    for name, (module, function, help_line) in COMMANDS.items():
        if argv is not None and name != wanted:
            commands.add_parser(name, help=help_line)
            continue
        add: _AddParser = getattr(importlib.import_module(module), function)
        before = set(commands.choices)
        add(commands)
        for added in set(commands.choices) - before:
            # the help line lives here, once, whichever module defines the command
            _set_help(commands, added, COMMANDS[added][2] if added in COMMANDS else None)
    return parser


def _set_help(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, line: str | None
) -> None:
    for action in commands._choices_actions:
        if action.dest == name and line is not None:
            action.help = line


def _command_name(args: argparse.Namespace) -> str:
    nested = getattr(args, "retrieval_command", None)
    return f"{args.command} {nested}" if nested else str(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``raftkit`` with ``argv`` (default: the process's arguments); the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            args = _parse(arguments)
        finally:
            sys.stdout.flush()  # --help went out whole, or the pipe's reader is gone
    except SystemExit as stop:  # --help, --version, or a usage error already printed
        return stop.code if isinstance(stop.code, int) else ExitCode.USAGE
    except BrokenPipeError:
        _silence_stdout()
        return ExitCode.PIPE_CLOSED
    verbose: int = args.verbose or 0
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from raftkit.llm import install_log_redaction

    # httpx logs full URLs at -v: keys in a base URL or the environment never reach the log
    redaction = install_log_redaction(
        [os.environ.get(k, "") for k in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")]
    )
    command = _command_name(args)
    with _terminate_as_interrupt():
        try:
            code: int = anyio.run(args.handler, args)
            sys.stdout.flush()
        except BaseException as error:
            if args.command == "serve" and isinstance(error, KeyboardInterrupt):
                return 0  # Ctrl-C is how a server is meant to stop
            return _fail(error, command, verbose)
        finally:
            redaction.remove()
    return code


def _parse(arguments: list[str]) -> argparse.Namespace:
    parser = build_parser(arguments)
    args, extras = parser.parse_known_args(arguments)
    if extras:
        inner: argparse.ArgumentParser = getattr(args, "_parser", parser)
        inner.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _fail(error: BaseException, command: str, verbose: int) -> int:
    if isinstance(error, SystemExit):
        raise error
    explained = explain(error)
    if explained.code == ExitCode.PIPE_CLOSED:
        _silence_stdout()
        return explained.code
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        if verbose:
            traceback.print_exception(error, file=sys.stderr)
        first, *rest = explained.lines
        print(f"raftkit {command}: {first}", file=sys.stderr)
        for line in rest:
            print(f"  {line}", file=sys.stderr)
    return explained.code


def _silence_stdout() -> None:
    """The reader closed the pipe: send what Python still holds to /dev/null, so the exit
    flush raises no second BrokenPipeError."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a command the way Ctrl-C does: cleanly, and resumable."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_terminate(signum: int, frame: FrameType | None) -> None:
        interrupt = signal.getsignal(signal.SIGINT)
        if callable(interrupt):  # the event loop's own handler: it cancels the run cleanly
            interrupt(signal.SIGINT, frame)
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
