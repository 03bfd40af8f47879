"""Keeping credentials out of reprs, logs, exception messages and URLs.

Every string the request path puts into an exception passes through :func:`redact`: the
credentials it knows are replaced, and so are secret-looking query parameters (Azure SAS
URLs carry ``sig``; some gateways accept ``api-key`` in the query string) and the user info
of URLs (``https://user:KEY@host/v1``).

Other libraries log too: httpx writes every request's full URL at INFO. Those lines are
cleaned at the logging boundary: :class:`RedactingFilter` rewrites each record a handler is
about to emit, and :func:`install_log_redaction` puts it on the handlers of a logger (the
root logger's, as ``logging.basicConfig`` and the ``raftkit`` command configure them).
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NoReturn
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "SECRET_QUERY_PARAMS",
    "RedactingFilter",
    "Secret",
    "install_log_redaction",
    "redact",
    "redact_json",
    "redact_url",
    "split_query",
    "url_secrets",
]

REDACTED: Final = "***"

#: Query parameters whose values are credentials (compared case-insensitively).
SECRET_QUERY_PARAMS: Final = frozenset(
    {
        "api-key",
        "api_key",
        "apikey",
        "key",
        "sig",
        "token",
        "access_token",
        "code",
        "subscription-key",
        "password",
        "secret",
        "client_secret",
    }
)

# Shapes of credentials worth catching even when we were not told the value: OpenAI keys and
# bearer tokens an upstream server may echo back.
_KEY_SHAPES = re.compile(
    r"(?:sk-[A-Za-z0-9_\-]{8,})|(?:(?<=Bearer )[A-Za-z0-9_\-\.=:/+]{8,})", re.IGNORECASE
)
_QUERY_PAIR = re.compile(
    r"(?P<name>[?&;](?:" + "|".join(re.escape(p) for p in sorted(SECRET_QUERY_PARAMS)) + r")=)"
    r"(?P<value>[^&#\s\"']*)",
    re.IGNORECASE,
)
# The user info of a URL in running text: "https://user:KEY@host" -> "https://***@host".
_USER_INFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]*://)[^\s/?#@\"'<>]+@", re.IGNORECASE)


class Secret:
    """A credential that never shows itself: ``repr``, ``str`` and ``format`` give ``'***'``.

    Call :meth:`get_secret_value` at the single place the value is really needed (building
    the request headers).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        self._value = value.get_secret_value() if isinstance(value, Secret) else value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return REDACTED

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> NoReturn:
        # pickling would write the value to wherever the pickle goes
        raise TypeError("a Secret cannot be pickled")


def redact_url(url: str) -> str:
    """``url`` with user info and secret query parameter values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _QUERY_PAIR.sub(lambda m: m.group("name") + REDACTED, url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, REDACTED if k.lower() in SECRET_QUERY_PARAMS else v) for k, v in pairs],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secret values, key-shaped strings, secret query values and the
    user info of URLs hidden."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _QUERY_PAIR.sub(lambda m: m.group("name") + REDACTED, text)
    text = _USER_INFO.sub(lambda m: m.group("scheme") + REDACTED + "@", text)
    return _KEY_SHAPES.sub(REDACTED, text)


def url_secrets(url: str) -> tuple[str, ...]:
    """The credentials a URL carries, to be redacted wherever they appear: the password of
    its user info (the user name when there is no password: ``https://KEY@host``), as
    written and decoded, and the values of secret query parameters."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    found: list[str] = []
    if "@" in parts.netloc:
        user_info = parts.netloc.rsplit("@", 1)[0]
        secret = user_info.split(":", 1)[-1]
        found += [secret, unquote(secret)]
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() in SECRET_QUERY_PARAMS:
            found.append(value)
    return tuple(dict.fromkeys(v for v in found if len(v) >= 4))


def split_query(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its query string, and the query's parameters: a base URL such as
    ``https://gateway/v1?api-key=KEY`` becomes ``https://gateway/v1`` plus parameters sent
    with every request (appending paths to the URL as written would put them in the query)."""
    parts = urlsplit(url)
    if not parts.query:
        return url, {}
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", parts.fragment)), params


Secrets = Iterable[str] | Callable[[], Iterable[str]]


class RedactingFilter(logging.Filter):
    """A logging filter that hides credentials in every record it passes.

    It catches what :func:`redact` catches without being told (``sk-...`` keys, bearer tokens,
    secret query parameters such as ``api-key=``, user info in URLs) plus the ``secrets``
    given: values, or a function returning them (asked for every record, so keys that
    rotate are covered). The message is formatted, cleaned and stored back with no
    arguments; a traceback is formatted and cleaned too. Put it on *handlers* (a filter on a
    logger does not see records of its child loggers): :func:`install_log_redaction`.
    """

    def __init__(self, secrets: Secrets = ()) -> None:
        super().__init__()
        self._secrets = secrets
        self._installed: list[logging.Handler | logging.Logger] = []

    def known(self) -> tuple[str, ...]:
        values = self._secrets() if callable(self._secrets) else self._secrets
        return tuple(v for v in values if v)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            secrets = self.known()
            message = record.getMessage()
        except Exception:  # a malformed record fails in the handler's format, as it would
            return True
        clean = redact(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return True

    def install(self, logger: logging.Logger | None = None) -> RedactingFilter:
        """Add this filter to every handler of ``logger`` (default: the root logger) and to
        the ``httpx`` logger itself; returns ``self``. Handlers added later are not covered:
        install after configuring logging."""
        target = logger if logger is not None else logging.getLogger()
        places: list[logging.Handler | logging.Logger] = [*target.handlers]
        places.append(logging.getLogger("httpx"))
        for where in places:
            if self not in where.filters:
                # beside any other RedactingFilter: each hides its own secrets
                where.addFilter(self)
                self._installed.append(where)
        return self

    def remove(self) -> None:
        """Take this filter off everything :meth:`install` put it on."""
        for where in self._installed:
            where.removeFilter(self)
        self._installed.clear()


def install_log_redaction(
    secrets: Secrets = (), *, logger: logging.Logger | None = None
) -> RedactingFilter:
    """Redact credentials from everything the handlers of ``logger`` (default: the root
    logger) emit, httpx's and httpcore's request lines included.

    Call it after configuring logging (``logging.basicConfig(...)``, ``dictConfig``)::

        logging.basicConfig(level=logging.INFO)
        install_log_redaction([os.environ["OPENAI_API_KEY"]])

    ``secrets`` are values to hide besides the shapes recognised anyway, or a function
    returning them. Returns the filter (``.remove()`` takes it off again).
    """
    return RedactingFilter(secrets).install(logger)


def redact_json(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of a parsed JSON value with every string passed through :func:`redact`."""
    known = tuple(secrets)
    if isinstance(value, str):
        return redact(value, known)
    if isinstance(value, Mapping):
        return {k: redact_json(v, known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(v, known) for v in value]
    return value
