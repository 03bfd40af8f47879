"""Helpers of the fine-tuning tests: training data, and a recorder of what raftkit sends."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from raftkit.testing._files import parse_multipart
from raftkit.types import ContextDocument, RaftExample

__all__ = ["Exchange", "Recorder", "example", "form_fields", "training_jsonl"]


def training_jsonl(count: int = 12, *, extra: str = "") -> bytes:
    """Chat examples in English and Chinese (the service must take both)."""
    rows = []
    for i in range(count):
        if i % 2:
            question, answer = f"长城第{i}段有多长？", "长城的总长度超过两万公里。"
        else:
            question, answer = f"Where is landmark {i}?", "It is in Paris."
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "Answer from the documents."},
                    {"role": "user", "content": question + extra},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return ("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n").encode("utf-8")


def example(n: int, *, extra: str = "") -> RaftExample:
    """One RAFT example of a run directory (every third one in Chinese)."""
    chinese = n % 3 == 0
    oracle = "蝙蝠是唯一能真正飞行的哺乳动物。" if chinese else "Bats are mammals that fly."
    question = f"蝙蝠第{n}次飞行在什么时候？" if chinese else f"When does bat {n} fly?"
    return RaftExample(
        id=f"ex-{n}",
        question_id=f"q-{n}",
        question=question + extra,
        chunk_id=f"doc#{n % 20}",
        document_id=f"doc-{n % 5}",
        documents=[
            ContextDocument(chunk_id=f"doc#{n % 20}", position=0, is_oracle=True, text=oracle),
            ContextDocument(chunk_id="other#1", position=1, is_oracle=False, text="Pandas."),
        ],
        oracle_present=True,
        cot_answer=f"##begin_quote##{oracle}##end_quote## <ANSWER>: at night",
        final_answer="at night",
        quotes=[oracle],
        teacher_model="gpt-4o",
    )


@dataclass
class Exchange:
    method: str
    path: str
    content_type: str
    body: bytes
    status: int = 0
    response: Any = None


@dataclass
class Recorder:
    """Captures every request and JSON response through httpx event hooks."""

    exchanges: list[Exchange] = field(default_factory=list)

    async def on_request(self, request: httpx.Request) -> None:
        body = await request.aread()
        self.exchanges.append(
            Exchange(
                request.method, request.url.path, request.headers.get("content-type", ""), body
            )
        )

    async def on_response(self, response: httpx.Response) -> None:
        await response.aread()
        for exchange in reversed(self.exchanges):
            if exchange.path == response.request.url.path and exchange.status == 0:
                exchange.status = response.status_code
                kind = response.headers.get("content-type", "").split(";")[0].strip()
                if kind == "application/json":
                    exchange.response = response.json()
                break

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=10,
            event_hooks={"request": [self.on_request], "response": [self.on_response]},
        )

    def find(self, method: str, suffix: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == method and e.path.endswith(suffix)]


def form_fields(exchange: Exchange) -> dict[str, Any]:
    """A multipart body as the JSON the spec's form schema describes (files by name)."""
    parts = parse_multipart(exchange.body, exchange.content_type)
    return {
        name: part.filename if part.filename is not None else part.data.decode()
        for name, part in parts.items()
    }
