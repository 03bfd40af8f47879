"""Models served at different endpoints: how they are named, and why their journals stay apart.

A comparison of a base model and its fine-tuned student often spans servers: the base on one
local OpenAI-compatible server (``raftkit serve``, vLLM, llama.cpp), the student on another, a
hosted model beside them. A model target is written ``[LABEL=]MODEL[@URL]``:

- ``gpt-4o-mini`` — the model at the default endpoint, labelled by its name;
- ``base=SmolLM2-135M-Instruct@http://127.0.0.1:8001/v1`` — a model at a base URL;
- ``tuned=@finetuned`` — the fine-tuned model recorded in the run's ``finetune.json`` (a local
  LoRA adapter: the name it is served under, ``raft``); ``base=@base`` — the base model it
  records (what the student was tuned from).

A journal key is a hash of the request (path and body), which does not name the server. Two
servers that answer to the same model name (llama.cpp ignores the name; two ``raftkit serve``
processes both call their base model by its file name) would replay each other's answers from
one journal, so the answers of a model at a base URL are journaled under keys scoped by that
URL (:class:`EndpointScopedStore`). The default endpoint keeps plain keys, so journals written
before endpoints existed still resume.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from raftkit.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    PermissionDeniedError,
    UsageError,
)

if TYPE_CHECKING:
    from raftkit.llm import LLMClient, ResponseStore

__all__ = [
    "BASE_ALIAS",
    "FINETUNED_ALIAS",
    "EndpointScopedStore",
    "ModelTarget",
    "check_endpoint",
    "parse_model_target",
    "parse_model_targets",
]

#: Stands for the fine-tuned model a run's ``finetune.json`` records.
FINETUNED_ALIAS = "@finetuned"
#: Stands for the base model a run's ``finetune.json`` records.
BASE_ALIAS = "@base"
_ALIASES = (FINETUNED_ALIAS, BASE_ALIAS)

# the last "@" that starts a URL separates the model from where it is served
_AT_URL = re.compile(r"@(?=https?://)", re.IGNORECASE)
# credentials written into a URL ("//user:key@host"), hidden from every message
_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")


@dataclass(frozen=True)
class ModelTarget:
    """A model under evaluation as the user named it: a label, a model id, a base URL."""

    label: str
    model: str
    base_url: str | None = None

    @property
    def is_finetuned_alias(self) -> bool:
        return self.model == FINETUNED_ALIAS

    @property
    def is_alias(self) -> bool:
        """Whether the model is ``@finetuned`` or ``@base``, resolved from the run."""
        return self.model in _ALIASES

    def __str__(self) -> str:
        where = f"@{self.base_url}" if self.base_url else ""
        return f"{self.label}={self.model}{where}"


def _check_url(url: str, shown: str) -> str:
    if _USERINFO.search(url):
        # a URL is printed and written into reports; a secret must never ride in one
        raise UsageError(f"model {shown!r}: put credentials in OPENAI_API_KEY, not in the URL")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as e:
        raise UsageError(f"model {shown!r}: {url!r} is not a URL") from e
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"model {shown!r}: {url!r} is not an http(s) base URL")
    return url.rstrip("/")


def parse_model_target(text: str) -> ModelTarget:
    """Parse ``[LABEL=]MODEL[@URL]`` (see the module docstring)."""
    spec = text.strip()
    shown = _USERINFO.sub("***@", spec)
    if not spec:
        raise UsageError("an empty model name was given")
    label: str | None = None
    head, equals, rest = spec.partition("=")
    if equals and "@" not in head and "/" not in head.replace("\\", "/"):
        label, spec = head.strip(), rest.strip()
        if not label:
            raise UsageError(f"model {shown!r}: the label before '=' is empty")
    base_url: str | None = None
    found = list(_AT_URL.finditer(spec))
    if found:
        at = found[-1].start()
        spec, base_url = spec[:at].strip(), _check_url(spec[at + 1 :].strip(), shown)
    if not spec:
        raise UsageError(f"model {shown!r} names no model (write LABEL=MODEL@URL)")
    if spec.startswith("@") and spec not in _ALIASES:
        raise UsageError(
            f"model {shown!r}: {spec!r} is not a known alias (try {FINETUNED_ALIAS} or "
            f"{BASE_ALIAS})"
        )
    if label is None:
        label = spec[1:] if spec in _ALIASES else spec
    return ModelTarget(label=label, model=spec, base_url=base_url)


def parse_model_targets(
    comma_separated: str | None, repeated: Sequence[str] = ()
) -> list[ModelTarget]:
    """The targets of ``--models a,b`` followed by those of each ``--model SPEC``; labels must
    be unique (two servers of one model name need labels: ``base=m@URL1 tuned=m@URL2``)."""
    texts = [t for t in (comma_separated or "").split(",") if t.strip()]
    targets = [parse_model_target(t) for t in [*texts, *repeated]]
    if not targets:
        raise UsageError("name at least one model (--models a,b or --model LABEL=MODEL@URL)")
    labels = [t.label for t in targets]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise UsageError(
            f"model label(s) {', '.join(twice)} given twice; label them apart, e.g. "
            "--model base=NAME@URL1 --model tuned=NAME@URL2"
        )
    return targets


async def check_endpoint(client: LLMClient, endpoint: str) -> None:
    """Fail early, with one clear line, when nothing answers at ``endpoint`` or it refuses the
    credentials: ``GET /models`` once (a server without that route is fine); otherwise every
    question would fail alike."""
    try:
        await client.request("GET", "models")
    except APIConnectionError as e:
        raise UsageError(
            f"nothing answers at {endpoint} ({type(e).__name__}); start the server (raftkit "
            "serve, vLLM, llama.cpp) or fix the URL"
        ) from e
    except (AuthenticationError, PermissionDeniedError) as e:
        raise UsageError(
            f"{endpoint} refused the credentials ({e.status_code}); a server started with an API "
            "key takes it from OPENAI_API_KEY"
        ) from e
    except APIStatusError:
        return


class EndpointScopedStore:
    """A :class:`~raftkit.llm.ResponseStore` that keeps one endpoint's responses apart in a
    shared store: each key is rehashed with the endpoint's base URL."""

    def __init__(self, inner: ResponseStore, endpoint: str) -> None:
        self.inner = inner
        self.endpoint = endpoint.rstrip("/")

    def __repr__(self) -> str:
        return f"EndpointScopedStore({self.endpoint!r})"

    def scoped(self, key: str) -> str:
        return hashlib.sha256(f"{self.endpoint}\n{key}".encode()).hexdigest()

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.inner.get(self.scoped(key))

    async def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        await self.inner.put(self.scoped(key), {**request, "endpoint": self.endpoint}, response)
