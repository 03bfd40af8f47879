"""When a failure ends one chunk's work and when it ends the run, and how a run stops.

One chunk's failure never ends the run. What a failure means is decided here, in one place:

========================  ============================================================
kind                      errors
========================  ============================================================
``chunk``                 the call of one chunk or question failed for good:
                          :class:`~raftkit.errors.StructuredOutputError`, any
                          :class:`~raftkit.errors.APIStatusError` not listed below (400
                          ``context_length_exceeded``, 409, 422, 429 after the retries,
                          5xx after the retries), :class:`~raftkit.errors.APITimeoutError`
                          (one request that took too long), other
                          :class:`~raftkit.errors.RaftkitError`\\ s about data. Recorded in
                          ``rejections.jsonl`` with its cause; the corpus goes on.
``stop``                  no further call can succeed: the budget is spent
                          (:class:`~raftkit.errors.BudgetExceededError`), the key is wrong
                          or lacks access (401, 403), the account's quota is used up
                          (``insufficient_quota``), the model or deployment does not exist
                          (404), the endpoint cannot be reached after the retries
                          (:class:`~raftkit.errors.APIConnectionError`).
``fail``                  a mistake, not a fault of the data or the endpoint: a
                          :class:`~raftkit.errors.UsageError`, or any exception that is not
                          a :class:`~raftkit.errors.RaftkitError` (a bug in a plug-in).
========================  ============================================================

A ``stop`` or ``fail`` does not cancel the calls in flight: the run stops handing out work
(:class:`Halt`), lets every chunk already started finish its calls — so every response paid
for is journaled — and then ends with the first cause.
"""

from __future__ import annotations

from typing import Literal

from raftkit.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BudgetExceededError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RaftkitError,
    UsageError,
    root_cause,
)

__all__ = ["FailureKind", "Halt", "cause_key", "classify_failure", "describe"]

FailureKind = Literal["chunk", "stop", "fail"]

_ACCOUNT_LEVEL = (
    BudgetExceededError,
    AuthenticationError,
    PermissionDeniedError,
    QuotaExceededError,
    NotFoundError,
)


def classify_failure(error: BaseException) -> FailureKind:
    """What ``error`` from one chunk's work means for the run (see the module's table)."""
    error = root_cause(error)
    if isinstance(error, _ACCOUNT_LEVEL):
        return "stop"
    if isinstance(error, APIConnectionError) and not isinstance(error, APITimeoutError):
        return "stop"
    if isinstance(error, UsageError) or not isinstance(error, RaftkitError):
        return "fail"
    return "chunk"


def describe(error: BaseException) -> str:
    """One line for a report: the error's class and message (an API error's message starts
    with its status and code)."""
    error = root_cause(error)
    message = " ".join(str(error).split())
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def cause_key(error: BaseException) -> str:
    """A short name to count failures by: the class, and an API error's status and code."""
    error = root_cause(error)
    if isinstance(error, APIStatusError):
        return " ".join(
            part for part in (type(error).__name__, str(error.status_code), error.code) if part
        )
    return type(error).__name__


class Halt:
    """Whether the run is stopping, and why: the first ``stop`` or ``fail`` wins."""

    def __init__(self) -> None:
        self.cause: BaseException | None = None

    @property
    def requested(self) -> bool:
        return self.cause is not None

    def request(self, error: BaseException) -> None:
        if self.cause is None:
            self.cause = root_cause(error)
