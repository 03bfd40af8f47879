"""Keeping credentials out of reprs, logs, exception messages and URLs.

Every string the request path puts into an exception passes through :func:`redact`: the
credentials it knows are replaced, and so are secret-looking query parameters (Azure SAS
URLs carry ``sig``; some gateways accept ``api-key`` in the query string).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "SECRET_QUERY_PARAMS", "Secret", "redact", "redact_json", "redact_url"]

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
    """``text`` with the given secret values, key-shaped strings and secret query values hidden."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _QUERY_PAIR.sub(lambda m: m.group("name") + REDACTED, text)
    return _KEY_SHAPES.sub(REDACTED, text)


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
