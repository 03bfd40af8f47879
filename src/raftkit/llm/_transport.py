"""The one request path: every REST call raftkit makes goes through :class:`Transport.send`.

Per request, in order: budget check (``ledger.reserve_when_affordable``) → rate-limit admission
(``limiter.admit``) → send → classify → retry or raise → reconcile tokens from ``usage`` →
record usage and cost. There is exactly one retry loop (tenacity, sleeping with
``anyio.sleep`` so it runs under trio too), bounded by ``RetryPolicy.max_attempts`` and an
overall deadline. A rate-limited attempt goes back through admission, so the limiter's pause
(``congested``) applies to the retry as to every other request of the scope. A 2xx whose
body is not the JSON object a chat or embedding call expects (a body cut short) is a failed
attempt like a dropped connection, retried by the same loop.

Each attempt's timeout starts when it is sent, after admission: time queued in the limiter
never counts. :meth:`Transport.activity` says what the requests are doing right now.

The module is longer than most on purpose: it is the request sequence, read top to bottom in
one place; the decisions it takes are pure functions elsewhere (``_retry``, ``_api_errors``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import anyio
import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)
from tenacity.stop import stop_base

from raftkit.errors import APIError, APITimeoutError
from raftkit.llm._api_errors import connection_error, error_details, request_id_of, status_error
from raftkit.llm._base import RequestActivity, WaitReason
from raftkit.llm._retry import (
    CONNECT_TIMEOUT,
    MAX_READ_TIMEOUT,
    RetryPolicy,
    attempt_timeout,
    classify_exception,
    classify_status,
    compute_wait,
    is_request_too_large,
)
from raftkit.llm._secrets import redact, redact_url
from raftkit.types import Usage

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "SIMULATOR_HEADER",
    "AuthHeaders",
    "Call",
    "Reply",
    "Transport",
    "usage_from_body",
]

logger = logging.getLogger("raftkit.llm")

#: The timeout of calls that are not chat completions (embeddings, files, jobs), and of chat
#: calls without ``max_tokens``; chat calls with one get :func:`attempt_timeout`.
DEFAULT_TIMEOUT = httpx.Timeout(MAX_READ_TIMEOUT, connect=CONNECT_TIMEOUT)
DEFAULT_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
_USER_AGENT = "raftkit/0.1"
#: raftkit's simulator marks every response with it (``raftkit.testing``, which this floor
#: may not import, names the same header): what it answers is not real data.
SIMULATOR_HEADER = "x-raftkit-simulator"

#: Builds the credential headers for one attempt (a token provider is asked every time).
AuthHeaders = Callable[[], Awaitable[Mapping[str, str]]]


# ------------------------------------------------------------ what the limiter and ledger offer


class _Limiter(Protocol):
    def admit(self, tokens: int) -> AbstractAsyncContextManager[Any]: ...
    def observe(self, headers: Mapping[str, str]) -> None: ...
    def congested(self, retry_after: float | None, headers: Mapping[str, str]) -> None: ...
    def waiting_on(self) -> tuple[WaitReason | None, float | None]: ...


class _Limiters(Protocol):
    def get(self, scope: str, model: str | None) -> Any: ...


class _Reservation(Protocol):
    def settle(self, usage: Usage, *, batch: bool = False) -> None: ...
    def release(self) -> None: ...


class _Ledger(Protocol):
    async def reserve_when_affordable(
        self,
        model: str,
        *,
        prompt_tokens: int,
        max_completion_tokens: int,
        kind: Literal["chat", "embedding"] = "chat",
    ) -> Any: ...
    def record_retry(self, model: str) -> None: ...
    def record_rate_limited(self, model: str) -> None: ...
    def record_simulated(self) -> None: ...


class _FreeAdmission:
    def settle(self, used_tokens: int, *, completion_tokens: int | None = None) -> None:
        return None


@contextlib.asynccontextmanager
async def _free_admit() -> AsyncIterator[_FreeAdmission]:
    yield _FreeAdmission()


# ------------------------------------------------------------ requests and replies


@dataclass(frozen=True)
class Call:
    """One logical request; its attempts share the idempotency key."""

    method: str
    path: str
    json: Any = None
    params: Mapping[str, str] | None = None
    files: Any = None
    data: Mapping[str, Any] | None = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    model: str | None = None
    #: billed calls are reserved against the ledger and settled from the response's usage
    kind: Literal["chat", "embedding"] | None = None
    prompt_tokens: int = 0
    max_completion_tokens: int = 0
    #: None: GET/HEAD/PUT/DELETE are idempotent and POST is made so by the Idempotency-Key;
    #: False: never resend once the request may have reached the server
    idempotent: bool | None = None
    #: the ``max_tokens`` a chat request sends (None: it sends none, the completion is
    #: unbounded); sizes the default per-attempt read timeout (:func:`attempt_timeout`)
    max_tokens: int | None = None


@dataclass(frozen=True)
class Reply:
    response: httpx.Response
    body: Any = None
    usage: Usage | None = None
    attempts: int = 1


@dataclass(eq=False)  # exceptions must stay hashable
class _Retryable(Exception):
    """Internal: an attempt failed in a way another attempt may fix."""

    error: APIError
    server_wait: float | None = None


def usage_from_body(body: Any) -> Usage | None:
    """The ``usage`` object of a chat or embeddings response, if it has one."""
    if not isinstance(body, Mapping):
        return None
    raw = body.get("usage")
    if not isinstance(raw, Mapping):
        return None
    prompt = raw.get("prompt_tokens")
    completion = raw.get("completion_tokens")
    if not isinstance(prompt, int):
        return None
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion if isinstance(completion, int) else 0,
        cached_tokens=cached if isinstance(cached, int) else 0,
    )


def _redacted_copy(exc: httpx.TransportError, secrets: tuple[str, ...]) -> httpx.TransportError:
    text = str(exc)
    clean = redact(text, secrets)
    if clean == text:
        return exc
    copy = type(exc)(clean)
    copy.__traceback__ = exc.__traceback__
    return copy


def _sent_fields(body: Any) -> tuple[str, ...]:
    return tuple(str(k) for k in body) if isinstance(body, Mapping) else ()


def _read_seconds(timeout: httpx.Timeout | None) -> float | None:
    return None if timeout is None else timeout.read


def _may_have_reached_server(exc: BaseException | None, status: int | None) -> bool:
    if status is not None:
        return status != 429
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


class Transport:
    """Owns (or borrows) one ``httpx.AsyncClient`` and sends every request of a client."""

    def __init__(
        self,
        *,
        base_url: str,
        auth: AuthHeaders,
        scope: str,
        http_client: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | float | None = None,
        limits: httpx.Limits | None = None,
        retry: RetryPolicy | None = None,
        limiters: _Limiters | None = None,
        ledger: _Ledger | None = None,
        default_headers: Mapping[str, str] | None = None,
        default_params: Mapping[str, str] | None = None,
        secrets: Callable[[], Iterable[str]] = tuple,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.scope = scope
        self.retry = retry or RetryPolicy()
        self.limiters = limiters
        self.ledger = ledger
        self._auth = auth
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(
            timeout=DEFAULT_TIMEOUT, limits=limits or DEFAULT_LIMITS, follow_redirects=True
        )
        # None: chat attempts get a timeout sized by their max_tokens, other calls the
        # default; an injected client keeps its own configuration unless told otherwise
        self._timeout: httpx.Timeout | None = None
        if timeout is not None:
            self._timeout = (
                timeout
                if isinstance(timeout, httpx.Timeout)
                else httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT))
            )
        self._proportionate = timeout is None and http_client is None
        self._default_headers = {"User-Agent": _USER_AGENT, **(default_headers or {})}
        self._default_params = dict(default_params or {})
        self._secrets = secrets
        self._sleep = sleep
        self._rng = rng
        self._closed = False
        # live state for activity(): attempts sent and not answered (their send time on the
        # monotonic clock), and attempts waiting for admission (their limiter)
        self._tickets = itertools.count()
        self._sent: dict[int, float] = {}
        self._queued: dict[int, _Limiter | None] = {}

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close the HTTP client if this transport created it; an injected one is left open."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()

    # ------------------------------------------------------------------ sending

    def url_for(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + path.lstrip("/")

    def activity(self) -> RequestActivity:
        """What this transport's requests are doing now: sent and unanswered (and the oldest
        one's age), waiting for admission, and what holds the first waiter back."""
        now = time.monotonic()
        oldest = min(self._sent.values(), default=None)
        reason: WaitReason | None = None
        paused_for: float | None = None
        if self._queued:
            first = self._queued[min(self._queued)]
            if first is not None:
                reason, paused_for = first.waiting_on()
        return RequestActivity(
            in_flight=len(self._sent),
            oldest_in_flight_s=None if oldest is None else max(0.0, now - oldest),
            waiting=len(self._queued),
            waiting_on=reason,
            paused_for_s=paused_for,
        )

    def timeout_for(self, call: Call) -> httpx.Timeout | None:
        """The timeout of one attempt of ``call``; ``None``: the injected client's own."""
        if self._timeout is not None:
            return self._timeout
        if not self._proportionate:
            return None
        if call.kind == "chat" and call.max_tokens is not None:
            return attempt_timeout(call.max_tokens, call.prompt_tokens)
        return DEFAULT_TIMEOUT

    async def send(self, call: Call) -> Reply:
        """Send ``call`` with admission, retries and accounting; raise raftkit errors."""
        method = call.method.upper()
        key = None if method in ("GET", "HEAD", "OPTIONS") else f"raftkit-{uuid.uuid4()}"
        policy = self.retry
        stop: stop_base = stop_after_attempt(policy.max_attempts)
        if policy.deadline is not None:
            # do not start a wait that would end after the deadline: fail with the real error
            stop = stop | stop_before_delay(policy.deadline)
        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=stop,
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            before_sleep=lambda state: self._before_sleep(call, state),
            reraise=True,
        )
        deadline = anyio.CancelScope()
        if policy.deadline is not None:
            deadline.deadline = anyio.current_time() + policy.deadline
        reservation: _Reservation | None = None
        if call.kind is not None and call.model is not None and self.ledger is not None:
            # the budget check, once per request: its reservation covers every attempt (it
            # waits while only calls in flight stand between this one and the cap)
            reservation = await self.ledger.reserve_when_affordable(
                call.model,
                prompt_tokens=call.prompt_tokens,
                max_completion_tokens=call.max_completion_tokens,
                kind=call.kind,
            )
        reply: Reply | None = None
        try:
            with deadline:
                async for attempt in retrying:
                    with attempt:
                        reply = await self._attempt(call, key, attempt.retry_state.attempt_number)
        except _Retryable as failure:
            raise failure.error from failure.__cause__
        finally:
            if reservation is not None and reply is None:
                reservation.release()
        if reply is None:
            if not deadline.cancelled_caught:  # pragma: no cover - tenacity returns or raises
                raise AssertionError("the retry loop ended without an outcome")
            url = redact_url(self.url_for(call.path))
            raise APITimeoutError(
                f"request deadline of {policy.deadline} s exceeded: {method} {url}",
                method=method,
                url=url,
            )
        if reservation is not None:
            reservation.settle(reply.usage or Usage(prompt_tokens=call.prompt_tokens))
        if self.ledger is not None and reply.response.headers.get(SIMULATOR_HEADER):
            self.ledger.record_simulated()
        return reply

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        server_wait = exc.server_wait if isinstance(exc, _Retryable) else None
        return compute_wait(
            self.retry, attempt=state.attempt_number, server_wait=server_wait, random=self._rng
        )

    def _before_sleep(self, call: Call, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if call.model is not None and self.ledger is not None:
            self.ledger.record_retry(call.model)
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        logger.debug(
            "retrying %s %s in %.2f s after attempt %d/%d: %s",
            call.method.upper(),
            redact_url(self.url_for(call.path)),
            wait,
            state.attempt_number,
            self.retry.max_attempts,
            exc.error if isinstance(exc, _Retryable) else exc,
        )

    def _admit(self, call: Call) -> AbstractAsyncContextManager[Any]:
        if self.limiters is None:
            return _free_admit()
        limiter: _Limiter = self.limiters.get(self.scope, call.model)
        return limiter.admit(call.prompt_tokens + call.max_completion_tokens)

    def _limiter(self, call: Call) -> _Limiter | None:
        return None if self.limiters is None else self.limiters.get(self.scope, call.model)

    async def _build(self, call: Call, key: str | None) -> httpx.Request:
        headers: dict[str, str] = dict(self._default_headers)
        headers.update(await self._auth())
        if key is not None:
            headers["Idempotency-Key"] = key
        if call.headers:
            headers.update(call.headers)
        params = {**self._default_params, **(call.params or {})}
        timeout = self.timeout_for(call)
        return self._client.build_request(
            call.method.upper(),
            self.url_for(call.path),
            json=call.json,
            params=params or None,
            files=call.files,
            data=call.data,
            content=call.content,
            headers=headers,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )

    async def _attempt(self, call: Call, key: str | None, number: int) -> Reply:
        if self._closed:
            raise RuntimeError("this client is closed")
        limiter = self._limiter(call)
        ticket = next(self._tickets)
        self._queued[ticket] = limiter
        try:
            async with self._admit(call) as admission:
                del self._queued[ticket]
                request = await self._build(call, key)
                broken: httpx.TransportError | None = None
                self._sent[ticket] = time.monotonic()
                try:
                    response = await self._client.send(request)
                except httpx.TransportError as exc:
                    broken = exc
                finally:
                    del self._sent[ticket]
                if broken is not None:
                    failure, cause = self._broken(call, request, broken)
                    raise failure from cause
                if limiter is not None:
                    limiter.observe(response.headers)
                if response.is_success:
                    body, usage = self._read_body(call, response)
                    # a server that reports no usage is charged its whole reservation
                    reserved = call.prompt_tokens + call.max_completion_tokens
                    if usage is None:
                        admission.settle(reserved)
                    else:
                        admission.settle(
                            usage.total_tokens, completion_tokens=usage.completion_tokens
                        )
                    return Reply(response, body, usage, number)
                raise self._failure(call, response, limiter)
        finally:
            self._queued.pop(ticket, None)

    def _broken(
        self, call: Call, request: httpx.Request, broken: httpx.TransportError
    ) -> tuple[Exception, httpx.TransportError]:
        """The exception for an attempt that got no response (retryable or final), and the
        cause to raise it from: a redacted copy of the transport error."""
        # raised outside the except block, so the original (which may quote a credential) is
        # not kept as __context__
        secrets = tuple(self._secrets())
        cause = _redacted_copy(broken, secrets)
        error = connection_error(
            cause, method=request.method, url=str(request.url), secrets=secrets
        )
        if isinstance(broken, httpx.ReadTimeout):
            read = _read_seconds(self.timeout_for(call))
            logger.warning(
                "%s %s sent no answer within %s; the request is sent again while retries last "
                "(the per-attempt timeout: timeout= / --request-timeout)",
                request.method,
                redact_url(str(request.url)),
                f"{read:.0f} s" if read is not None else "the read timeout",
            )
        verdict = classify_exception(broken)
        if verdict.retry and (
            call.idempotent is not False or not _may_have_reached_server(broken, None)
        ):
            return _Retryable(error), cause
        return error, cause

    def _read_body(self, call: Call, response: httpx.Response) -> tuple[Any, Usage | None]:
        """The JSON body and usage of a chat or embedding reply (other calls: not read).

        A body that is not a JSON object (cut short in transit, or a proxy's page) is a failed
        attempt, retried like a dropped connection: the server did answer, but nothing usable
        arrived.
        """
        if call.kind is None:
            return None, None
        problem = ""
        try:
            body = response.json()
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            problem = f"is not valid JSON ({len(response.content)} bytes; {exc})"
        else:
            if isinstance(body, dict):
                return body, usage_from_body(body)
            problem = f"is JSON but not an object ({type(body).__name__})"
        url = redact_url(str(response.request.url))
        error = APIError(
            f"{response.request.method} {url} answered {response.status_code} with a body "
            f"that {problem}",
            request_id=request_id_of(response.headers),
            method=response.request.method,
            url=url,
        )
        if call.idempotent is False:
            raise error
        raise _Retryable(error)

    def _failure(self, call: Call, response: httpx.Response, limiter: _Limiter | None) -> Exception:
        details = error_details(response)
        verdict = classify_status(
            response.status_code,
            response.headers,
            policy=self.retry,
            error_code=details.code,
            error_type=details.error_type,
            message=details.message,
            sent_fields=_sent_fields(call.json),
        )
        # no settle(): leaving the admission unsettled hands the token reservation back
        quota = "insufficient_quota" in (details.code, details.error_type)
        congestion = not quota and not is_request_too_large(details.message)
        if response.status_code == 429 and congestion:
            if limiter is not None:
                limiter.congested(verdict.server_wait, response.headers)
            if call.model is not None and self.ledger is not None:
                self.ledger.record_rate_limited(call.model)
        retry = verdict.retry and (
            call.idempotent is not False or not _may_have_reached_server(None, response.status_code)
        )
        error = status_error(
            response,
            details,
            retry_after=verdict.server_wait,
            secrets=self._secrets(),
            note=None if retry or response.status_code < 429 else f"not retried: {verdict.reason}",
        )
        if retry:
            return _Retryable(error, verdict.server_wait)
        return error
