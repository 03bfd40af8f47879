"""Structured-output models for a reply that lists exactly ``n`` strings."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model

__all__ = ["exact_list_model"]


def exact_list_model(name: str, field: str, n: int, description: str) -> type[BaseModel]:
    """``{field: [str, ...]}``: the schema sent to the model says exactly ``n`` items
    (``minItems``/``maxItems``), but validation accepts any count on purpose, so that a reply
    with one item too many or too few is mended by its caller instead of paid for again."""
    items = Field(description=description, json_schema_extra={"minItems": n, "maxItems": n})
    definitions: dict[str, Any] = {field: (list[str], items)}
    model: type[BaseModel] = create_model(name, **definitions)
    return model
