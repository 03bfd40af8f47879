"""A scripted :class:`~raftkit.llm.LLMClient` for tests that need no HTTP at all.

A test scripts the replies (a function of the call, or a queue) and reads back every call
made::

    from raftkit.testing import ScriptedClient

    client = ScriptedClient(lambda call: f"echo: {call.prompt}")
    reply = await client.chat([{"role": "user", "content": "hi"}], model="m")
    assert reply.text == "echo: hi"
    assert client.calls[0].model == "m"

Structured replies travel as JSON text and are validated by the same parser the real clients
use, with the same re-asks (:func:`~raftkit.llm.ask_until_valid`), so a test cannot pass on
output a server's answer could not give.

Unlike the simulator beside it, this module imports the client side (it implements the
client's interface); ``raftkit.testing`` loads it only when it is asked for.
"""

from __future__ import annotations

import inspect
import json
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, Unpack

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from raftkit.errors import NotFoundError
from raftkit.llm import (
    ChatMessage,
    ChatParams,
    ChatResponse,
    LLMClient,
    OutputSpec,
    StructuredParams,
    StructuredResponse,
    ask_until_valid,
    count_message_tokens,
    estimate_tokens,
    truncation_retry_sample,
)
from raftkit.types import Usage

__all__ = ["Call", "Reply", "Responder", "ScriptedClient", "Vectorizer", "hashed_vector"]

#: What a script answers: text, a JSON-able mapping or model (structured calls), a complete
#: response (to set usage or the model), or an exception to raise.
Reply = str | Mapping[str, Any] | BaseModel | BaseException
#: One text to its vector: how :class:`ScriptedClient` embeds.
Vectorizer = Callable[[str], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class Call:
    """One call the client received; a structured call's re-ask is a call of its own."""

    method: Literal["chat", "chat_structured", "embed", "request"]
    model: str
    messages: tuple[ChatMessage, ...] = ()
    sample: int = 0
    texts: tuple[str, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The content of the last message."""
        return str(self.messages[-1]["content"])


Responder = Callable[[Call], Reply | Awaitable[Reply]]


def hashed_vector(text: str, dimensions: int = 64) -> npt.NDArray[np.float32]:
    """Character bigrams hashed into ``dimensions``: deterministic, similar texts near."""
    vector = np.zeros(dimensions, dtype=np.float32)
    padded = f" {text.lower()} "
    for i in range(len(padded) - 1):
        vector[zlib.crc32(padded[i : i + 2].encode()) % dimensions] += 1.0
    return vector


class ScriptedClient(LLMClient):
    """Answers chat and structured calls from ``respond`` (or the queue ``replies``), embeds
    with ``embedder`` and serves no other endpoint. Records each call in :attr:`calls` and
    counts how many chat and structured calls were in flight at once."""

    def __init__(
        self,
        respond: Responder | None = None,
        *,
        replies: Iterable[Reply] = (),
        embedder: Vectorizer = hashed_vector,
    ) -> None:
        self._respond = respond
        self._replies = deque(replies)
        self._embedder = embedder
        self.calls: list[Call] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    async def aclose(self) -> None:
        self.closed = True

    async def _reply(self, call: Call) -> ChatResponse:
        self.calls.append(call)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self._respond is not None:
                scripted = self._respond(call)
                reply = await scripted if inspect.isawaitable(scripted) else scripted
            elif self._replies:
                reply = self._replies.popleft()
            else:
                raise AssertionError(f"ScriptedClient has no reply scripted for {call.method}")
        finally:
            self.in_flight -= 1
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, ChatResponse):
            return reply
        if isinstance(reply, BaseModel):
            text = reply.model_dump_json()
        elif isinstance(reply, str):
            text = reply
        else:
            text = json.dumps(reply, ensure_ascii=False)
        usage = Usage(
            prompt_tokens=count_message_tokens(call.messages),
            completion_tokens=estimate_tokens(text),
        )
        return ChatResponse(text=text, model=call.model, finish_reason="stop", usage=usage)

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str,
        sample: int = 0,
        **params: Unpack[ChatParams],
    ) -> ChatResponse:
        # every parameter, given or not, so a test can read call.kwargs["max_tokens"]
        options: dict[str, Any] = {name: params.get(name) for name in ChatParams.__annotations__}

        async def once(options: dict[str, Any], sample: int) -> ChatResponse:
            return await self._reply(Call("chat", model, tuple(messages), sample, kwargs=options))

        return await _retrying_truncated(once, options, sample)

    async def chat_structured(
        self,
        messages: Sequence[ChatMessage],
        output: type[Any] | Mapping[str, Any],
        *,
        model: str,
        sample: int = 0,
        **params: Unpack[StructuredParams],
    ) -> StructuredResponse[Any]:
        spec = OutputSpec.of(output)
        # every parameter, given or not, so a test can read call.kwargs["mode"]
        options: dict[str, Any] = {
            "output": output,
            **{name: params.get(name) for name in StructuredParams.__annotations__},
        }

        async def ask(so_far: list[dict[str, Any]], index: int) -> tuple[ChatResponse, None]:
            async def once(options: dict[str, Any], sample: int) -> ChatResponse:
                call = Call("chat_structured", model, tuple(so_far), sample, kwargs=options)
                return await self._reply(call)

            return await _retrying_truncated(once, options, index), None

        return await ask_until_valid(
            ask,
            [dict(m) for m in messages],
            spec,
            attempts=params.get("max_attempts"),
            sample=sample,
        )

    async def embed(
        self, texts: Sequence[str], *, model: str, dimensions: int | None = None
    ) -> npt.NDArray[np.float32]:
        options: dict[str, Any] = {"dimensions": dimensions}
        self.calls.append(Call("embed", model, texts=tuple(texts), kwargs=options))
        if not texts:
            return np.zeros((0, dimensions or 0), dtype=np.float32)
        return np.stack([self._embedder(text) for text in texts])

    async def request(self, method: str, path: str, **kwargs: Any) -> NoReturn:
        model = str(kwargs.get("model") or "")
        self.calls.append(Call("request", model, kwargs={"method": method, "path": path, **kwargs}))
        raise NotFoundError(
            f"ScriptedClient serves no {method} {path}", status_code=404, method=method, url=path
        )


async def _retrying_truncated(
    once: Callable[[dict[str, Any], int], Awaitable[ChatResponse]],
    options: dict[str, Any],
    sample: int,
) -> ChatResponse:
    """One call, and with ``retry_max_tokens`` the real clients' second call with that cap when
    the first reply was cut by its cap (under :func:`~raftkit.llm.truncation_retry_sample`)."""
    response = await once(options, sample)
    retry_cap = options.get("retry_max_tokens")
    if retry_cap and options.get("max_tokens") and response.finish_reason == "length":
        again = await once({**options, "max_tokens": retry_cap}, truncation_retry_sample(sample))
        response = again.model_copy(update={"truncated_usage": response.usage})
    return response
