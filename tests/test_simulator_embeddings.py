"""The simulator's embeddings: schema-valid, deterministic, and meaningful enough to retrieve."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np
import pytest

from openapi_schemas import validate
from raftkit.testing import Simulator, embed_text

pytestmark = pytest.mark.anyio


async def embed(sim: Simulator, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30, verify=False) as client:
        return await client.post(
            f"{sim.base_url}/embeddings",
            headers={"Authorization": f"Bearer {sim.api_key}"},
            json=body,
        )


def cosine(left: list[float], right: list[float]) -> float:
    return float(np.dot(left, right) / (np.linalg.norm(left) * np.linalg.norm(right)))


async def test_vectors_are_valid_unit_length_and_deterministic(
    raftkit_simulator: Simulator,
) -> None:
    body = {"model": "text-embedding-3-small", "input": ["a cat sat on the mat", "dogs bark"]}
    first = await embed(raftkit_simulator, body)
    second = await embed(raftkit_simulator, body)
    assert first.status_code == 200
    payload = first.json()
    validate("CreateEmbeddingResponse", payload)
    assert [item["index"] for item in payload["data"]] == [0, 1]
    for item in payload["data"]:
        assert len(item["embedding"]) == 1536
        assert np.linalg.norm(item["embedding"]) == pytest.approx(1.0)
    assert second.json()["data"] == payload["data"]
    assert payload["usage"]["prompt_tokens"] == payload["usage"]["total_tokens"] > 0


@pytest.mark.parametrize(
    ("model", "dimensions"), [("text-embedding-3-large", 3072), ("text-embedding-ada-002", 1536)]
)
async def test_native_dimensions_per_model(
    raftkit_simulator: Simulator, model: str, dimensions: int
) -> None:
    payload = (await embed(raftkit_simulator, {"model": model, "input": "hello"})).json()
    assert len(payload["data"][0]["embedding"]) == dimensions


async def test_texts_sharing_words_are_closer(raftkit_simulator: Simulator) -> None:
    texts = [
        "The Eiffel Tower in Paris was completed in 1889.",
        "When was the Eiffel Tower completed?",
        "Photosynthesis turns light into chemical energy in plants.",
    ]
    payload = (
        await embed(raftkit_simulator, {"model": "text-embedding-3-small", "input": texts})
    ).json()
    tower, question, plants = (item["embedding"] for item in payload["data"])
    assert cosine(tower, question) > cosine(plants, question) + 0.2


async def test_chinese_texts_sharing_characters_are_closer(raftkit_simulator: Simulator) -> None:
    texts = ["长城是中国古代的军事防御工程。", "长城有多长？", "光合作用把光能转化为化学能。"]
    payload = (
        await embed(raftkit_simulator, {"model": "text-embedding-3-small", "input": texts})
    ).json()
    wall, question, light = (item["embedding"] for item in payload["data"])
    assert cosine(wall, question) > cosine(light, question) + 0.1


async def test_dimensions_and_base64(raftkit_simulator: Simulator) -> None:
    body = {"model": "text-embedding-3-small", "input": "hello world", "dimensions": 256}
    as_floats = (await embed(raftkit_simulator, body)).json()["data"][0]["embedding"]
    encoded = (await embed(raftkit_simulator, {**body, "encoding_format": "base64"})).json()
    decoded = np.frombuffer(base64.b64decode(encoded["data"][0]["embedding"]), dtype="<f4")
    assert len(as_floats) == 256
    assert decoded.shape == (256,)
    np.testing.assert_allclose(decoded, as_floats, rtol=1e-6, atol=1e-7)
    assert as_floats == embed_text("hello world", 256)


async def test_token_arrays_are_accepted(raftkit_simulator: Simulator) -> None:
    body = {"model": "text-embedding-3-small", "input": [[1, 2, 3], [4, 5]]}
    payload = (await embed(raftkit_simulator, body)).json()
    validate("CreateEmbeddingResponse", payload)
    assert payload["usage"]["prompt_tokens"] == 5


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "text-embedding-3-small"}, "input"),
        ({"model": "text-embedding-3-small", "input": ""}, "input"),
        ({"model": "text-embedding-3-small", "input": ["ok", 3]}, "input"),
        ({"model": "text-embedding-3-small", "input": ["x"] * 2049}, "input"),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 5000}, "dimensions"),
        ({"model": "text-embedding-ada-002", "input": "x", "dimensions": 8}, "dimensions"),
        (
            {"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"},
            "encoding_format",
        ),
    ],
)
async def test_bad_requests_are_400_with_param(
    raftkit_simulator: Simulator, body: dict[str, Any], param: str
) -> None:
    response = await embed(raftkit_simulator, body)
    assert response.status_code == 400
    validate("ErrorResponse", response.json())
    assert response.json()["error"]["param"] == param


@pytest.mark.raftkit_simulator(max_embedding_tokens=1000)
async def test_per_request_token_cap(raftkit_simulator: Simulator) -> None:
    body = {"model": "text-embedding-3-small", "input": ["word " * 300] * 4}
    response = await embed(raftkit_simulator, body)
    assert response.status_code == 400
    assert "max 1000 tokens" in response.json()["error"]["message"]


async def test_azure_embeddings_deployment(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    sim.register_deployment("emb", "text-embedding-3-large")
    async with httpx.AsyncClient(verify=False) as client:
        response = await client.post(
            f"{sim.azure_endpoint}/openai/deployments/emb/embeddings",
            params={"api-version": "2024-10-21"},
            headers={"api-key": sim.api_key},
            json={"input": ["hello", "world"]},
        )
    assert response.status_code == 200
    payload = response.json()
    validate("CreateEmbeddingResponse", payload)
    assert len(payload["data"][1]["embedding"]) == 3072
