"""Validate JSON against single schemas of the official OpenAI and Azure OpenAI specifications.

The specs are cuts of the official ones carried in ``tests/data/specs/`` (the schemas of the
endpoints raftkit calls, each schema unchanged; ``cut_specs.py`` there makes them and
names the versions). They still use two OpenAPI 3.0 constructs that JSON Schema 2020-12 reads
differently: ``nullable: true`` and boolean ``exclusiveMinimum`` / ``exclusiveMaximum``. Both
are rewritten before validating; ``$ref`` is resolved against the whole document through a
``referencing`` registry.

    from openapi_schemas import validate, validate_azure
    validate("CreateChatCompletionResponse", body)
    validate_azure("createChatCompletionResponse", body)  # inference GA 2024-10-21
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "AZURE_INFERENCE_GA",
    "OPENAI_SPEC",
    "SchemaValidationError",
    "normalise_openapi",
    "schema_names",
    "specs_dir",
    "validate",
    "validate_azure",
]

OPENAI_SPEC = "openai-openapi.json"
AZURE_INFERENCE_GA = "azure/azure-inference-ga-2024-10-21.json"


class SchemaValidationError(AssertionError):
    """An instance is not valid under a named schema (an ``AssertionError`` for pytest)."""


def specs_dir() -> Path:
    """``tests/data/specs``: the cuts of the official specs that the repository carries."""
    return Path(__file__).resolve().parent / "data" / "specs"


def normalise_openapi(node: Any) -> Any:
    """A copy of ``node`` with OpenAPI 3.0 ``nullable`` and boolean exclusive bounds rewritten."""
    if isinstance(node, list):
        return [normalise_openapi(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: normalise_openapi(value) for key, value in node.items()}
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        flag = result.get(bound)
        if isinstance(flag, bool):
            del result[bound]
            if flag and plain in result:
                result[bound] = result.pop(plain)
    if result.get("nullable") is True:
        del result["nullable"]
        return {"anyOf": [result, {"type": "null"}]}
    return result


@cache
def _load(relative: str) -> tuple[str, Registry[Any], frozenset[str]]:
    document = json.loads((specs_dir() / relative).read_text(encoding="utf-8"))
    document = normalise_openapi(document)
    uri = f"urn:raftkit-spec:{relative}"
    resource: Resource[Any] = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(uri, resource)
    components = document.get("components", {}).get("schemas", {})
    definitions = document.get("definitions", {})
    return uri, registry, frozenset(components) | frozenset(definitions)


def schema_names(spec: str = OPENAI_SPEC) -> frozenset[str]:
    """The schema names a spec defines."""
    return _load(spec)[2]


def _validate(spec: str, schema_name: str, instance: object) -> None:
    uri, registry, names = _load(spec)
    if schema_name not in names:
        raise KeyError(
            f"{spec} has no schema named {schema_name!r}; if the official spec has it, add it "
            "to SPECS in tests/data/specs/cut_specs.py and rerun that script"
        )
    document = registry[uri].contents
    section = (
        "components/schemas"
        if schema_name in document.get("components", {}).get("schemas", {})
        else "definitions"
    )
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{uri}#/{section}/{schema_name}"}, registry=registry
    )
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        details = "\n".join(
            f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
            for e in errors[:10]
        )
        raise SchemaValidationError(
            f"instance is not a valid {schema_name} ({spec}); {len(errors)} error(s):\n{details}"
        )


def validate(schema_name: str, instance: object) -> None:
    """Raise :class:`SchemaValidationError` unless ``instance`` is valid under the OpenAI spec's
    ``#/components/schemas/<schema_name>``."""
    _validate(OPENAI_SPEC, schema_name, instance)


def validate_azure(schema_name: str, instance: object, *, spec: str = AZURE_INFERENCE_GA) -> None:
    """The same against an Azure OpenAI spec (default: inference GA 2024-10-21)."""
    _validate(spec, schema_name, instance)
