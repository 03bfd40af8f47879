"""What a person reads when a command fails: one or two lines, and an exit code from one table.

Every command's failure passes through :func:`explain` (called once, in ``raftkit.cli.main``),
so no command formats its own errors and none prints a traceback unless ``-v`` asks for it.
Each explanation names what failed, the file or endpoint, and what to do next. Exception groups
(concurrent requests failing together) are reduced to their root cause first.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from enum import IntEnum
from urllib.parse import urlsplit

from raftkit.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BudgetExceededError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    UsageError,
    WaitTimeoutError,
    root_cause,
)

__all__ = ["EXIT_CODE_TABLE", "ExitCode", "Explained", "explain"]


class ExitCode(IntEnum):
    """``raftkit``'s exit statuses; :data:`EXIT_CODE_TABLE` says what each means."""

    OK = 0
    INCOMPLETE = 1
    USAGE = 2
    REFUSED = 3
    UNREACHABLE = 4
    LOCAL = 5
    INTERNAL = 70
    INTERRUPTED = 130
    PIPE_CLOSED = 141


_MEANING = {
    ExitCode.OK: "done",
    ExitCode.INCOMPLETE: "the work did not complete: budget reached, data rejected, job failed",
    ExitCode.USAGE: "usage or input error: a flag, a missing or unreadable file, a bad record",
    ExitCode.REFUSED: "the service refused: API key, permission, quota, unknown model (4xx)",
    ExitCode.UNREACHABLE: "the service could not be reached or never answered (network, DNS)",
    ExitCode.LOCAL: "this machine: disk full, read-only or unwritable directory",
    ExitCode.INTERNAL: "a bug in raftkit (run with -v and report the traceback)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C or SIGTERM); run the same command to resume",
    ExitCode.PIPE_CLOSED: "the reader of the output went away (e.g. piped to head)",
}

#: The table the ``--help`` epilog and ``docs/cli.md`` show.
EXIT_CODE_TABLE = "exit status:\n" + "\n".join(
    f"  {int(code):>3}  {meaning}" for code, meaning in _MEANING.items()
)

_RERUN = "run the same command again to resume"
_RESUME = f"nothing paid is lost: {_RERUN}"


@dataclass(frozen=True)
class Explained:
    """An exit code and the lines to print (each prefixed ``raftkit COMMAND:`` when shown)."""

    code: ExitCode
    lines: tuple[str, ...]


def explain(error: BaseException) -> Explained:
    """The exit code and message for ``error`` (an exception group is reduced first)."""
    cause = root_cause(error)
    if isinstance(cause, KeyboardInterrupt) or _is_cancelled(cause):
        return Explained(ExitCode.INTERRUPTED, (f"interrupted; {_RESUME}",))
    if isinstance(cause, BrokenPipeError):
        return Explained(ExitCode.PIPE_CLOSED, ())
    if isinstance(cause, APIStatusError):
        return _status(cause)
    if isinstance(cause, APIConnectionError):
        return _unreachable(cause)
    if isinstance(cause, APIError):
        where = _endpoint(cause)
        return Explained(ExitCode.REFUSED, (f"{cause}{where}",))
    if isinstance(cause, BudgetExceededError):
        return Explained(
            ExitCode.INCOMPLETE,
            (f"stopped at the budget: {cause}", f"raise --max-cost-usd to go on; {_RESUME}"),
        )
    if isinstance(cause, WaitTimeoutError):
        return Explained(ExitCode.INCOMPLETE, (str(cause),))
    if isinstance(cause, UsageError | InputError):
        return Explained(ExitCode.USAGE, (str(cause),))
    if isinstance(cause, OSError):
        return _local(cause)
    if isinstance(cause, Exception) and type(cause).__module__.startswith("raftkit"):
        return Explained(ExitCode.INCOMPLETE, (f"{type(cause).__name__}: {cause}",))
    return Explained(
        ExitCode.INTERNAL,
        (
            f"internal error: {type(cause).__name__}: {cause}",
            "this is a bug in raftkit: run again with -v for the traceback and report it",
        ),
    )


def _is_cancelled(error: BaseException) -> bool:
    return type(error).__name__ in ("CancelledError", "Cancelled")


# ---------------------------------------------------------------- the service answered


def _endpoint(error: APIError) -> str:
    """`` (POST https://host/v1/path)``, or nothing when the URL is not known."""
    return f" ({_at(error)})" if error.url else ""


def _at(error: APIError) -> str:
    """``POST https://host/v1/path``, or the host, or "the server"."""
    if not error.url:
        return "the server"
    return f"{error.method} {error.url}" if error.method else error.url


def _host(error: APIError) -> str:
    return urlsplit(error.url).netloc if error.url else "the server"


def _status(error: APIStatusError) -> Explained:
    said = f"the server said: {error.message}"
    if isinstance(error, AuthenticationError):
        return Explained(
            ExitCode.REFUSED,
            (
                f"the API key was refused (401) at {_at(error)}",
                "check OPENAI_API_KEY (or AZURE_OPENAI_API_KEY) is a valid key for this "
                f"endpoint; {said}",
            ),
        )
    if isinstance(error, PermissionDeniedError):
        return Explained(
            ExitCode.REFUSED,
            (
                f"access denied (403) at {_at(error)}",
                "the key is valid but may not use this model or resource (project, "
                f"organisation, region or deployment permissions); {said}",
            ),
        )
    if isinstance(error, QuotaExceededError):
        return Explained(
            ExitCode.REFUSED,
            (
                f"the account is out of quota or credit (429 insufficient_quota) at {_at(error)}",
                f"add credit or raise the quota in the provider's billing settings; {_RESUME}",
            ),
        )
    if isinstance(error, RateLimitError):
        return Explained(
            ExitCode.REFUSED,
            (
                f"still rate-limited (429) after every retry at {_at(error)}",
                f"lower --rpm/--tpm/--max-concurrency to the account's limits; {_RESUME}",
            ),
        )
    if isinstance(error, NotFoundError):
        return Explained(
            ExitCode.REFUSED,
            (
                f"not found (404) at {_at(error)}: {error.message}",
                "check the model name (--teacher-model, --model, --models) or the Azure "
                "deployment name, and the base URL",
            ),
        )
    return Explained(
        ExitCode.REFUSED, (f"the service refused the request: {error}{_endpoint(error)}",)
    )


# ---------------------------------------------------------------- no answer


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _unreachable(error: APIConnectionError) -> Explained:
    host = _host(error)
    chain = _causes(error)
    text = " ".join(str(e) for e in chain).lower()
    if isinstance(error, APITimeoutError):
        return Explained(
            ExitCode.UNREACHABLE,
            (
                f"{host} did not answer in time ({_at(error)})",
                "the server may be overloaded or hung: try again later, or allow more time "
                "per request with --request-timeout SECONDS if the model is slow",
            ),
        )
    dns = any(isinstance(e, socket.gaierror) for e in chain) or any(
        marker in text
        for marker in (
            "name or service not known",
            "nodename nor servname",
            "temporary failure in name resolution",
            "getaddrinfo failed",
            "no address associated",
        )
    )
    if dns:
        return Explained(
            ExitCode.UNREACHABLE,
            (
                f"cannot resolve the host name {host!r} ({_at(error)})",
                "check --base-url (or OPENAI_BASE_URL, AZURE_OPENAI_ENDPOINT) for a typo, "
                "and the network or DNS",
            ),
        )
    refused = any(isinstance(e, ConnectionRefusedError) for e in chain) or (
        "connection refused" in text or "connect call failed" in text
    )
    if refused:
        return Explained(
            ExitCode.UNREACHABLE,
            (
                f"connection refused by {host} ({_at(error)})",
                "is the server running, and is --base-url (or OPENAI_BASE_URL) its address?",
            ),
        )
    return Explained(
        ExitCode.UNREACHABLE,
        (
            f"the connection to {host} failed: {error.message}",
            f"check the network and the endpoint, then {_RERUN}",
        ),
    )


# ---------------------------------------------------------------- this machine


def _local(error: OSError) -> Explained:
    where = error.filename if error.filename is not None else "a file"
    if error.errno == errno.ENOSPC or error.errno == errno.EDQUOT:
        return Explained(
            ExitCode.LOCAL,
            (
                f"the disk is full (writing {where})",
                f"free some space (or use another --out), then {_RERUN}",
            ),
        )
    if error.errno == errno.EROFS:
        return Explained(
            ExitCode.LOCAL,
            (f"{where} is on a read-only file system", "use a writable directory (--out)"),
        )
    if error.errno in (errno.EACCES, errno.EPERM):
        return Explained(
            ExitCode.LOCAL,
            (f"permission denied: {where}", "use a directory you can write to, or fix its mode"),
        )
    if error.errno == errno.EEXIST and error.filename is not None:
        return Explained(
            ExitCode.USAGE,
            (f"{where} is a file where a directory is needed: give a directory path",),
        )
    if error.errno == errno.ENOTDIR and error.filename is not None:
        return Explained(
            ExitCode.USAGE,
            (f"a part of {where} is a file, not a directory: give a directory path",),
        )
    if error.errno == errno.ENOENT and error.filename is not None:
        return Explained(ExitCode.USAGE, (f"{where} does not exist",))
    return Explained(ExitCode.LOCAL, (f"{error.strerror or error} ({where})",))
