"""raftkit's exceptions: one root, three families.

- :class:`UsageError` — the caller asked for something impossible (bad arguments, missing
  credentials, resuming a run with other settings). Fix the call.
- :class:`InputError` — a file or record the caller gave is unusable (a corrupt PDF, a broken
  JSONL line). Each names the file, line or field.
- :class:`APIError` — a REST call failed. Each carries the status, the error type and code,
  the request id and the server's retry-after, and never the credentials.

Messages never contain secrets: the request path redacts them before an exception is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConflictError",
    "ContextLengthExceededError",
    "DatasetError",
    "EmptyInputError",
    "ExtractionError",
    "FileRejectedError",
    "InputError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RaftkitError",
    "RateLimitError",
    "ResumeMismatchError",
    "RunLockedError",
    "StructuredOutputError",
    "UnprocessableEntityError",
    "UsageError",
    "WaitTimeoutError",
    "root_cause",
    "status_error_class",
]


class RaftkitError(Exception):
    """Root of every exception raftkit raises on purpose."""


# ---------------------------------------------------------------- usage mistakes


class UsageError(RaftkitError, ValueError):
    """Bad arguments, missing credentials, an impossible configuration."""


class ResumeMismatchError(UsageError):
    """A run directory was resumed with settings other than those it was started with."""

    def __init__(self, message: str, differences: Mapping[str, tuple[Any, Any]]) -> None:
        super().__init__(message)
        self.differences = dict(differences)


class RunLockedError(UsageError):
    """Another process is writing into the run directory (one writer per run)."""

    def __init__(self, message: str, *, run_dir: str, pid: int | None) -> None:
        super().__init__(message)
        self.run_dir = run_dir
        self.pid = pid


class BudgetExceededError(RaftkitError):
    """A new call would take the run's spending over ``max_cost_usd``; finished work is kept."""

    def __init__(self, message: str, *, spent_usd: float, limit_usd: float) -> None:
        super().__init__(message)
        self.spent_usd = spent_usd
        self.limit_usd = limit_usd


# ---------------------------------------------------------------- unusable input


class InputError(RaftkitError):
    """A file or record given to raftkit cannot be used."""


class ExtractionError(InputError):
    """A document could not be extracted; ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class DatasetError(InputError):
    """A dataset file or record is malformed; ``path`` and ``line`` (1-based) locate it."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class EmptyInputError(InputError):
    """There is nothing to work on: no supported file, no chunk, no example to export."""


class FileRejectedError(InputError):
    """The service processed an uploaded file and rejected it (Azure ``status: error``)."""

    def __init__(self, file_id: str, filename: str, details: str | None) -> None:
        reason = details or "no details given"
        super().__init__(f"the service rejected file {filename} ({file_id}): {reason}")
        self.file_id = file_id
        self.filename = filename
        self.details = details


class StructuredOutputError(RaftkitError):
    """The model kept answering with JSON that does not fit the requested schema."""

    def __init__(self, message: str, *, attempts: int, last_output: str) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_output = last_output


class WaitTimeoutError(RaftkitError, TimeoutError):
    """Waiting for a job, batch, file or deployment passed its deadline; the work goes on."""

    def __init__(self, message: str, *, resource_id: str, last_status: str | None) -> None:
        super().__init__(message)
        self.resource_id = resource_id
        self.last_status = last_status


# ---------------------------------------------------------------- API failures


class APIError(RaftkitError):
    """A call to a REST API failed."""

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.method = method
        self.url = url


class APIConnectionError(APIError):
    """The server could not be reached or the connection broke."""


class APITimeoutError(APIConnectionError):
    """The request timed out."""


class APIStatusError(APIError):
    """The server answered with a 4xx or 5xx status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        method: str | None = None,
        url: str | None = None,
        body: object = None,
    ) -> None:
        super().__init__(message, request_id=request_id, method=method, url=url)
        self.status_code = status_code
        self.error_type = error_type
        self.code = code
        self.param = param
        self.retry_after = retry_after
        self.body = body

    def __str__(self) -> str:
        parts = [f"{self.status_code}"]
        if self.code:
            parts.append(self.code)
        head = " ".join(parts)
        rid = f" (request id {self.request_id})" if self.request_id else ""
        return f"{head}: {self.message}{rid}"


class BadRequestError(APIStatusError):
    """400."""


class ContextLengthExceededError(BadRequestError):
    """The prompt leaves no room for a reply in the model's context window.

    Raised instead of sending a request that cannot fit (the client trims the completion cap
    where that is enough). ``context_window`` and ``prompt_tokens`` say by how much.
    """

    def __init__(
        self,
        message: str,
        *,
        context_window: int | None = None,
        prompt_tokens: int | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, **details)
        self.context_window = context_window
        self.prompt_tokens = prompt_tokens


class AuthenticationError(APIStatusError):
    """401."""


class PermissionDeniedError(APIStatusError):
    """403."""


class NotFoundError(APIStatusError):
    """404."""


class ConflictError(APIStatusError):
    """409."""


class UnprocessableEntityError(APIStatusError):
    """422."""


class RateLimitError(APIStatusError):
    """429 ``rate_limit_exceeded``: retried after the server's wait unless retries run out."""


class QuotaExceededError(RateLimitError):
    """429 ``insufficient_quota``: the account is out of credit. Never retried."""


class InternalServerError(APIStatusError):
    """5xx."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int, code: str | None = None) -> type[APIStatusError]:
    """The exception class for an HTTP error status (and error code, for 429s)."""
    if status_code == 429 and code == "insufficient_quota":
        return QuotaExceededError
    if status_code >= 500:
        return InternalServerError
    return _BY_STATUS.get(status_code, APIStatusError)


# ---------------------------------------------------------------- exception groups


def _is_cancellation(error: BaseException) -> bool:
    # asyncio's CancelledError and trio's Cancelled, named rather than imported: this floor
    # imports no event loop
    return type(error).__name__ in ("CancelledError", "Cancelled")


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def root_cause(error: BaseException) -> BaseException:
    """The one exception that explains ``error``, out of any exception groups around it.

    Concurrent work fails as a group (a hundred requests refused with the same 401); what a
    person needs is its first real failure: an interrupt (Ctrl-C) first, then the first
    exception that is not a cancellation caused by another one, else the first leaf.
    """
    leaves = _leaves(error)
    for leaf in leaves:
        if isinstance(leaf, KeyboardInterrupt):
            return leaf
    for leaf in leaves:
        if not _is_cancellation(leaf):
            return leaf
    return leaves[0]
