"""OpenAIClient and AzureOpenAIClient over httpx.MockTransport: URLs, credentials, bodies."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import BaseModel

from raftkit.errors import NotFoundError, StructuredOutputError, UsageError
from raftkit.llm import (
    AzureOpenAIClient,
    EndpointIdentity,
    LLMClient,
    OpenAIClient,
    RetryPolicy,
    UsageLedger,
    request_key,
)
from raftkit.llm._openai_shaped import plan_batches
from raftkit.llm.tokens import estimate_tokens

pytestmark = pytest.mark.anyio

ENV_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_API_KEY",
    "OPENAI_API_VERSION",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def completion(content: str | None, *, refusal: str | None = None, model: str = "m") -> Any:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if refusal is not None:
        message["refusal"] = refusal
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }


class Server:
    """Records requests; answers chat with queued contents and embeddings with index vectors."""

    def __init__(self, contents: list[str] | None = None, *, shuffle: bool = False) -> None:
        self.requests: list[httpx.Request] = []
        self.contents = list(contents or ["hello"])
        self.shuffle = shuffle
        self.base64 = False

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.content]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        headers = {"x-request-id": f"req_{len(self.requests)}"}
        if request.url.path.endswith("/chat/completions"):
            content = self.contents.pop(0) if len(self.contents) > 1 else self.contents[0]
            return httpx.Response(200, json=completion(content), headers=headers)
        if request.url.path.endswith("/embeddings"):
            body = json.loads(request.content)
            data = []
            for i, text in enumerate(body["input"]):
                vector = [float(len(text)), float(i), 1.0]
                value: Any = vector
                if body.get("encoding_format") == "base64":
                    value = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
                data.append({"object": "embedding", "index": i, "embedding": value})
            if self.shuffle:
                data.reverse()
            usage = {"prompt_tokens": len(body["input"]), "total_tokens": len(body["input"])}
            return httpx.Response(
                200,
                json={"object": "list", "data": data, "model": "e", "usage": usage},
                headers=headers,
            )
        return httpx.Response(200, json={"object": "list", "data": []}, headers=headers)


def http(server: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(server))


FAST = RetryPolicy(initial_delay=0.001, max_delay=0.002)


# ---------------------------------------------------------------- OpenAI configuration


async def test_openai_reads_key_and_base_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-123456")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://proxy.example.test/v1/")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    server = Server()
    async with OpenAIClient(http_client=http(server), project="proj-9") as client:
        response = await client.chat([{"role": "user", "content": "hi"}], model="m")
    request = server.requests[0]
    assert str(request.url) == "https://proxy.example.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-env-key-123456"
    assert request.headers["openai-organization"] == "org-1"
    assert request.headers["openai-project"] == "proj-9"
    assert response.text == "hello"
    assert response.request_id == "req_1"
    assert response.usage.total_tokens == 9


async def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-123456")
    server = Server()
    async with OpenAIClient(api_key="sk-arg-key-654321", http_client=http(server)) as client:
        await client.chat([{"role": "user", "content": "hi"}], model="m")
    assert server.requests[0].headers["authorization"] == "Bearer sk-arg-key-654321"
    assert str(server.requests[0].url) == "https://api.openai.com/v1/chat/completions"


def test_openai_without_a_key_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"api_key.*OPENAI_API_KEY"):
        OpenAIClient()


async def test_local_servers_need_no_key() -> None:
    server = Server()
    async with OpenAIClient(base_url="http://127.0.0.1:8000/v1", http_client=http(server)) as c:
        await c.chat([{"role": "user", "content": "hi"}], model="llama", max_tokens=5)
    assert "authorization" not in server.requests[0].headers
    body = server.bodies()[0]
    assert body["max_tokens"] == 5  # other servers get the classic field
    assert "max_completion_tokens" not in body


async def test_chat_body_carries_the_options() -> None:
    server = Server()
    async with OpenAIClient(api_key="sk-test-000000", http_client=http(server)) as client:
        await client.chat(
            [{"role": "user", "content": "你好"}],
            model="gpt-4o-mini",
            temperature=0.2,
            max_tokens=50,
            seed=7,
            stop=["\n\n"],
            sample=3,
            extra_body={"top_p": 0.9},
        )
    body = server.bodies()[0]
    assert body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "你好"}],
        "temperature": 0.2,
        "max_completion_tokens": 50,
        "seed": 7,
        "stop": ["\n\n"],
        "top_p": 0.9,
    }
    assert "sample" not in body


async def test_injected_client_survives_aclose() -> None:
    client_http = http(Server())
    client = OpenAIClient(api_key="sk-test-000000", http_client=client_http)
    await client.aclose()
    assert not client_http.is_closed
    await client_http.aclose()


def test_max_retries_sets_the_attempts() -> None:
    client = OpenAIClient(api_key="sk-test-000000", max_retries=0)
    assert client.retry.max_attempts == 1
    with pytest.raises(UsageError):
        OpenAIClient(api_key="sk-test-000000", max_retries=-1)


# ---------------------------------------------------------------- Azure configuration


async def test_azure_deployment_urls_with_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key-0123456789")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    server = Server()
    async with AzureOpenAIClient(http_client=http(server)) as client:
        await client.chat([{"role": "user", "content": "hi"}], model="my gpt", max_tokens=9)
        await client.embed(["a"], model="emb-dep")
        await client.request("GET", "files")
    chat, emb, files = server.requests
    assert str(chat.url) == (
        "https://res.openai.azure.com/openai/deployments/my%20gpt/chat/completions"
        "?api-version=2024-10-21"
    )
    assert chat.headers["api-key"] == "azure-key-0123456789"
    assert "authorization" not in chat.headers
    assert "model" not in json.loads(chat.content)
    assert str(emb.url) == (
        "https://res.openai.azure.com/openai/deployments/emb-dep/embeddings?api-version=2024-10-21"
    )
    assert str(files.url) == "https://res.openai.azure.com/openai/files?api-version=2024-10-21"


async def test_azure_v1_surface() -> None:
    server = Server()
    async with AzureOpenAIClient(
        endpoint="https://res.openai.azure.com/openai/v1",
        api_key="azure-key-0123456789",
        v1=True,
        http_client=http(server),
    ) as client:
        await client.chat([{"role": "user", "content": "hi"}], model="dep")
    request = server.requests[0]
    assert str(request.url) == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert json.loads(request.content)["model"] == "dep"


async def test_azure_token_provider_is_asked_per_request() -> None:
    issued: list[str] = []

    def provider() -> str:
        issued.append(f"token-{len(issued)}")
        return issued[-1]

    async def async_provider() -> str:
        return "async-token"

    server = Server()
    async with AzureOpenAIClient(
        endpoint="https://res.openai.azure.com",
        token_provider=provider,
        api_version="2024-10-21",
        http_client=http(server),
    ) as client:
        for _ in range(2):
            await client.chat([{"role": "user", "content": "hi"}], model="dep")
    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer token-0",
        "Bearer token-1",
    ]
    assert "api-key" not in server.requests[0].headers
    async with AzureOpenAIClient(
        endpoint="https://res.openai.azure.com",
        token_provider=async_provider,
        api_version="2024-10-21",
        http_client=http(server),
    ) as client:
        await client.chat([{"role": "user", "content": "hi"}], model="dep")
    assert server.requests[-1].headers["authorization"] == "Bearer async-token"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, r"endpoint.*AZURE_OPENAI_ENDPOINT"),
        ({"endpoint": "https://r.openai.azure.com"}, r"api_key.*AZURE_OPENAI_API_KEY"),
        (
            {"endpoint": "https://r.openai.azure.com", "api_key": "k" * 12},
            r"api_version.*OPENAI_API_VERSION",
        ),
        (
            {"endpoint": "https://r", "api_key": "k" * 12, "token_provider": lambda: "t"},
            "not both",
        ),
    ],
)
def test_azure_configuration_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        AzureOpenAIClient(**kwargs)


def test_reprs_hide_credentials() -> None:
    client = OpenAIClient(api_key="sk-visible-if-bug-123456")
    azure = AzureOpenAIClient(endpoint="https://r", api_key="azure-visible-12345", v1=True)
    for text in (repr(client), str(client), repr(azure), repr(vars(client)), repr(vars(azure))):
        assert "visible" not in text


# ---------------------------------------------------------------- structured output


class Citation(BaseModel):
    quote: str
    page: int | None = None


class Answer(BaseModel):
    answer: str
    confidence: float = 0.5
    citations: list[Citation]


async def test_json_schema_mode_sends_a_strict_schema_and_parses() -> None:
    good = {"answer": "蝙蝠", "confidence": 0.9, "citations": [{"quote": "q", "page": None}]}
    server = Server([json.dumps(good, ensure_ascii=False)])
    async with OpenAIClient(api_key="sk-test-000000", http_client=http(server)) as client:
        result = await client.chat_structured(
            [{"role": "user", "content": "q"}], Answer, model="gpt-4o-mini"
        )
    assert isinstance(result.output, Answer)
    assert result.output.answer == "蝙蝠"
    assert result.attempts == 1
    fmt = server.bodies()[0]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Answer"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["answer", "confidence", "citations"]
    citation = schema["$defs"]["Citation"]
    assert citation["additionalProperties"] is False
    assert citation["required"] == ["quote", "page"]
    assert "default" not in json.dumps(schema)


async def test_invalid_output_is_reasked_with_feedback_and_a_new_sample() -> None:
    good = {"answer": "a", "confidence": 1, "citations": []}
    server = Server(["not json at all", '{"answer": 3}', json.dumps(good)])
    keys: list[str] = []

    class Store:
        async def get(self, key: str) -> dict[str, Any] | None:
            keys.append(key)
            return None

        async def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
            return None

    async with OpenAIClient(api_key="sk-test-000000", http_client=http(server)) as client:
        result = await client.with_store(Store()).chat_structured(
            [{"role": "user", "content": "q"}], Answer, model="m", sample=10
        )
    assert result.attempts == 3
    assert result.output.answer == "a"
    bodies = server.bodies()
    assert len(bodies) == 3
    last = bodies[2]["messages"]
    assert last[-2] == {"role": "assistant", "content": '{"answer": 3}'}
    assert last[-1]["role"] == "user"
    assert "not valid" in last[-1]["content"]
    assert len(set(keys)) == 3  # each re-ask is its own journal entry


async def test_structured_output_gives_up_after_max_attempts() -> None:
    server = Server(["{}"])
    async with OpenAIClient(api_key="sk-test-000000", http_client=http(server)) as client:
        with pytest.raises(StructuredOutputError) as caught:
            await client.chat_structured(
                [{"role": "user", "content": "q"}], Answer, model="m", max_attempts=2
            )
    assert caught.value.attempts == 2
    assert caught.value.last_output == "{}"
    assert len(server.requests) == 2


async def test_json_object_mode_puts_the_schema_in_a_system_message() -> None:
    schema = {
        "title": "Verdict",
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
    }
    server = Server(['```json\n{"ok": true}\n```'])
    async with OpenAIClient(
        base_url="http://local.test/v1", http_client=http(server), structured_mode="json_object"
    ) as client:
        result = await client.chat_structured([{"role": "user", "content": "q"}], schema, model="m")
        await client.chat_structured(
            [{"role": "user", "content": "q"}], schema, model="m", mode="prompt"
        )
    assert result.output == {"ok": True}
    first, second = server.bodies()
    assert first["response_format"] == {"type": "json_object"}
    assert first["messages"][0]["role"] == "system"
    assert "JSON" in first["messages"][0]["content"]
    assert '"ok"' in first["messages"][0]["content"]
    assert "response_format" not in second
    assert second["messages"][0]["role"] == "system"


async def test_dict_schemas_are_validated() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    server = Server(['{"n": "three"}'])
    async with OpenAIClient(api_key="sk-test-000000", http_client=http(server)) as client:
        with pytest.raises(StructuredOutputError, match="not of type"):
            await client.chat_structured(
                [{"role": "user", "content": "q"}], schema, model="m", max_attempts=1
            )


async def test_a_refusal_is_invalid_output() -> None:
    def refusing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=completion(None, refusal="I can't help with that"))

    async with OpenAIClient(api_key="sk-test-000000", http_client=http(refusing)) as client:
        with pytest.raises(StructuredOutputError, match="refused"):
            await client.chat_structured(
                [{"role": "user", "content": "q"}], Answer, model="m", max_attempts=2
            )


# ---------------------------------------------------------------- embeddings


async def test_embeddings_batch_keep_order_and_decode_base64() -> None:
    texts = [f"text {i}" + "x" * (i % 7) for i in range(4100)]
    server = Server(shuffle=True)
    async with OpenAIClient(
        api_key="sk-test-000000", http_client=http(server), embedding_format="base64"
    ) as client:
        matrix = await client.embed(texts, model="text-embedding-3-small", dimensions=3)
    assert matrix.dtype == np.float32
    assert matrix.shape == (4100, 3)
    sizes = [len(b["input"]) for b in server.bodies()]
    assert sorted(sizes) == [4, 2048, 2048]  # batches run concurrently
    assert all(b["dimensions"] == 3 and b["encoding_format"] == "base64" for b in server.bodies())
    np.testing.assert_array_equal(matrix[:, 0], [len(t) for t in texts])
    np.testing.assert_array_equal(matrix[2048:2051, 1], [0, 1, 2])


async def test_embedding_of_nothing_is_an_empty_matrix() -> None:
    async with OpenAIClient(api_key="sk-test-000000", http_client=http(Server())) as client:
        assert (await client.embed([], model="e", dimensions=8)).shape == (0, 8)
        with pytest.raises(UsageError):
            await client.embed("one string", model="e")


def test_batches_respect_the_token_cap_with_cjk_text() -> None:
    text = "蝙蝠是唯一能真正飞翔的哺乳动物。" * 10
    cost = estimate_tokens(text)
    assert cost > 100  # CJK: about a token per character, not per four
    per_batch = 500 // cost
    batches = plan_batches([text] * 10, max_tokens=500)
    assert all(end - start == per_batch for start, end, _ in batches[:-1])
    assert sum(end - start for start, end, _ in batches) == 10
    assert all(tokens <= 500 for _, _, tokens in batches)
    assert plan_batches(["a"] * 5, max_inputs=2) == [(0, 2, 2), (2, 4, 2), (4, 5, 1)]
    # one text over the cap still goes, alone
    big = "词" * 2000
    assert plan_batches([big, "a"], max_tokens=500) == [(0, 1, estimate_tokens(big)), (1, 2, 1)]


# ---------------------------------------------------------------- the journal hook


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.puts: list[tuple[str, dict[str, Any]]] = []

    async def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    async def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        self.puts.append((key, request))
        self.data[key] = response


async def test_with_store_replays_without_paying() -> None:
    server = Server()
    ledger = UsageLedger()
    store = MemoryStore()
    messages: list[Mapping[str, Any]] = [{"role": "user", "content": "hi"}]
    async with OpenAIClient(api_key="sk-test-000000", http_client=http(server), ledger=ledger) as c:
        journaled = c.with_store(store)
        assert journaled.ledger is ledger
        assert journaled.limiters is c.limiters
        assert journaled.store is store
        assert c.store is None
        first = await journaled.chat(messages, model="m")
        again = await journaled.chat(messages, model="m")
        other_sample = await journaled.chat(messages, model="m", sample=1)
        vectors = await journaled.embed(["a", "bb"], model="e")
        vectors_again = await journaled.embed(["a", "bb"], model="e")
        await journaled.aclose()  # the copy does not own the connection
        plain = await c.chat(messages, model="m")
    assert not first.from_journal
    assert again.from_journal
    assert again.text == first.text
    assert again.usage == first.usage
    assert not other_sample.from_journal
    assert not plain.from_journal
    np.testing.assert_array_equal(vectors, vectors_again)
    assert len(server.requests) == 4  # chat, chat sample 1, embed, plain chat
    assert ledger.model_usage("m").calls == 3
    assert ledger.model_usage("e").calls == 1
    key, request = store.puts[0]
    assert key == request_key("POST", "chat/completions", request, 0, endpoint=c.endpoint_identity)
    assert "authorization" not in json.dumps(request).lower()


async def test_the_store_is_written_before_the_response_is_returned() -> None:
    class FailingStore(MemoryStore):
        async def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
            raise OSError("disk full")

    async with OpenAIClient(api_key="sk-test-000000", http_client=http(Server())) as client:
        with pytest.raises(OSError, match="disk full"):
            await client.with_store(FailingStore()).chat(
                [{"role": "user", "content": "hi"}], model="m"
            )


def test_request_key_is_canonical() -> None:
    a = request_key("post", "/chat/completions", {"b": 1, "a": "蝙蝠"}, 0)
    b = request_key("POST", "chat/completions", {"a": "蝙蝠", "b": 1}, 0)
    assert a == b
    assert a != request_key("POST", "chat/completions", {"a": "蝙蝠", "b": 1}, 1)
    assert len(a) == 64


# ---------------------------------------------------------------- other endpoints


async def test_request_uploads_files_and_raises_on_errors() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/missing"):
            body = {"error": {"message": "No such file", "type": "invalid_request_error"}}
            return httpx.Response(404, json=body, headers={"x-request-id": "req_404"})
        return httpx.Response(200, json={"id": "file-1", "object": "file"})

    async with AzureOpenAIClient(
        endpoint="https://r.openai.azure.com",
        api_key="azure-key-0123456789",
        api_version="2024-10-21",
        http_client=http(handler),
    ) as client:
        response = await client.request(
            "POST",
            "/files",
            files={"file": ("train.jsonl", b'{"messages": []}\n', "application/jsonl")},
            data={"purpose": "fine-tune"},
            idempotent=False,
        )
        assert response.json()["id"] == "file-1"
        with pytest.raises(NotFoundError) as caught:
            await client.request("GET", "files/missing")
        with pytest.raises(UsageError):
            await client.request("GET", "https://elsewhere.test/files")
    upload = seen[0]
    assert str(upload.url) == "https://r.openai.azure.com/openai/files?api-version=2024-10-21"
    assert upload.headers["content-type"].startswith("multipart/form-data")
    assert b'name="purpose"' in upload.content
    assert b"train.jsonl" in upload.content
    assert caught.value.request_id == "req_404"
    assert len(seen) == 2  # the 404 was not retried


async def test_chat_request_predicts_the_journal_key() -> None:
    store = MemoryStore()
    messages: list[Mapping[str, Any]] = [{"role": "user", "content": "蝙蝠"}]
    async with AzureOpenAIClient(
        endpoint="https://r.openai.azure.com",
        api_key="azure-key-0123456789",
        api_version="2024-10-21",
        http_client=http(Server()),
    ) as client:
        await client.with_store(store).chat(messages, model="dep", max_tokens=7, sample=2)
        request = client.chat_request(messages, model="dep", max_tokens=7)
    path, body, endpoint = request
    assert path == "deployments/dep/chat/completions"
    assert body == {"messages": [{"role": "user", "content": "蝙蝠"}], "max_completion_tokens": 7}
    assert endpoint == EndpointIdentity(
        provider="azure", host="r.openai.azure.com", path="/openai", api_version="2024-10-21"
    )
    assert list(store.data) == [request_key("POST", path, body, 2, endpoint=endpoint)]
    assert request.method == "POST"
    assert request.key(2) == request_key("POST", path, body, 2, endpoint=endpoint)


async def test_clients_of_other_kinds_have_no_ledger_and_build_no_requests() -> None:
    class Minimal(LLMClient):
        async def aclose(self) -> None:
            return None

        async def chat(self, messages: Any, *, model: str, sample: int = 0, **params: Any) -> Any:
            raise NotImplementedError

        async def chat_structured(self, messages: Any, output: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        async def embed(self, texts: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        async def request(self, method: str, path: str, **kwargs: Any) -> Any:
            raise NotImplementedError

    minimal = Minimal()
    assert minimal.ledger is None
    with pytest.raises(UsageError, match="Minimal cannot say what a chat call would send"):
        minimal.chat_request([{"role": "user", "content": "hi"}], model="m")
    ledger = UsageLedger()
    async with OpenAIClient(base_url="http://127.0.0.1:9/v1", ledger=ledger) as client:
        assert client.ledger is ledger


async def test_token_provider_objects_with_async_call() -> None:
    class Provider:
        def __init__(self) -> None:
            self.calls = 0

        async def __call__(self) -> str:
            self.calls += 1
            return f"object-token-{self.calls}"

    provider = Provider()
    server = Server()
    async with AzureOpenAIClient(
        endpoint="https://res.openai.azure.com",
        token_provider=provider,
        v1=True,
        http_client=http(server),
    ) as client:
        await client.chat([{"role": "user", "content": "hi"}], model="dep")
    assert server.requests[0].headers["authorization"] == "Bearer object-token-1"
    assert provider.calls == 1
