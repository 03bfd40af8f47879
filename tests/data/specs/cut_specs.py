"""Cut the parts of the OpenAI and Azure OpenAI specs that raftkit's contract tests use.

The official specifications are large (the OpenAI one alone is 3.4 MB) and mostly describe
endpoints raftkit never calls. This script keeps, from each original, the schemas reachable
from the endpoints raftkit talks to (chat completions, embeddings, files, uploads,
fine-tuning, batches, models) plus the named schemas in ``SPECS``, together with everything
they ``$ref`` transitively, each under its original JSON pointer and unchanged (only the
whitespace of the JSON differs). ``tests/openapi_schemas.py`` validates against these files.

    python tests/data/specs/cut_specs.py ORIGINALS_DIR

``ORIGINALS_DIR`` holds the originals under the names in ``SPECS`` (our machines keep them in
``../shared/specs``). The versions cut are recorded in each output's ``x-raftkit-cut``:

- ``openai-openapi.json``: openai/openai-openapi 2.3.0 (OpenAPI 3.1, MIT licence).
- ``azure/*.json``: Azure OpenAI data-plane specs from Azure/azure-rest-api-specs (MIT licence):
  inference GA 2024-10-21, authoring preview 2024-10-01 and 2025-04-01.

A contract test that needs a schema missing from a cut: add its name to ``SPECS`` and rerun.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["SPECS", "Cut", "cut", "main"]

HERE = Path(__file__).resolve().parent

# The API families raftkit calls: a path containing one of these keeps its schemas.
ENDPOINTS = (
    "/chat/completions",
    "/embeddings",
    "/files",
    "/uploads",
    "/fine_tuning/jobs",
    "/batches",
    "/models",
)


class Cut:
    """One spec to cut: its file name, where it came from, and schemas kept besides the paths'."""

    def __init__(self, name: str, upstream: str, schemas: tuple[str, ...]) -> None:
        self.name = name
        self.upstream = upstream
        self.schemas = schemas


SPECS = (
    Cut(
        "openai-openapi.json",
        "openai/openai-openapi 2.3.0",
        (
            "Batch",
            "CompleteUploadRequest",
            "CompletionUsage",
            "CreateBatchRequest",
            "CreateChatCompletionRequest",
            "CreateChatCompletionResponse",
            "CreateChatCompletionStreamResponse",
            "CreateEmbeddingRequest",
            "CreateEmbeddingResponse",
            "CreateFileRequest",
            "CreateFineTuningJobRequest",
            "CreateUploadRequest",
            "DeleteFileResponse",
            "ErrorResponse",
            "FineTuningJob",
            "FineTuningJobCheckpoint",
            "FineTuningJobEvent",
            "ListBatchesResponse",
            "ListFilesResponse",
            "ListFineTuningJobCheckpointsResponse",
            "ListFineTuningJobEventsResponse",
            "ListModelsResponse",
            "ListPaginatedFineTuningJobsResponse",
            "Model",
            "OpenAIFile",
            "ResponseFormatJsonSchema",
            "Upload",
            "UploadPart",
        ),
    ),
    Cut(
        "azure/azure-inference-ga-2024-10-21.json",
        "Azure/azure-rest-api-specs, Azure OpenAI inference GA 2024-10-21",
        (
            "createChatCompletionRequest",
            "createChatCompletionResponse",
            "errorResponse",
        ),
    ),
    Cut(
        "azure/azure-authoring-preview-2024-10-01.json",
        "Azure/azure-rest-api-specs, Azure OpenAI authoring preview 2024-10-01",
        (
            "ErrorResponse",
            "File",
            "FileDelete",
            "FileList",
            "FineTuningJob",
            "FineTuningJobCheckpointList",
            "FineTuningJobCreation",
            "FineTuningJobEventList",
            "FineTuningJobList",
        ),
    ),
    Cut(
        "azure/azure-authoring-preview-2025-04-01.json",
        "Azure/azure-rest-api-specs, Azure OpenAI authoring preview 2025-04-01",
        (
            "Batch",
            "BatchCreateRequest",
            "BatchesList",
            "DpoMethodRequest",
            "ErrorResponse",
            "File",
            "FileDelete",
            "FileList",
            "FineTuningJob",
            "FineTuningJobCheckpointList",
            "FineTuningJobCreation",
            "FineTuningJobEventList",
            "FineTuningJobList",
            "SupervisedMethodRequest",
        ),
    ),
)


def _refs(node: Any) -> Iterator[str]:
    """Every local ``$ref`` (``#/...``) inside ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                if value.startswith("#/"):
                    yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _called(path: str) -> bool:
    """Whether raftkit calls ``path`` (Azure's ``/deployments/{id}`` prefix aside)."""
    if path.startswith("/deployments/{"):
        path = "/" + path.split("/", 3)[3]
    return any(path == e or path.startswith(e + "/") for e in ENDPOINTS)


def _parts(pointer: str) -> tuple[str, ...]:
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in pointer[2:].split("/"))


def _resolve(document: Any, parts: tuple[str, ...]) -> Any:
    node = document
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _schema_section(document: dict[str, Any]) -> tuple[str, ...]:
    return ("definitions",) if "definitions" in document else ("components", "schemas")


def _closure(document: dict[str, Any], roots: list[str]) -> set[tuple[str, ...]]:
    seen: set[tuple[str, ...]] = set()
    todo = [_parts(r) for r in roots]
    while todo:
        parts = todo.pop()
        if parts in seen:
            continue
        seen.add(parts)
        todo.extend(_parts(r) for r in _refs(_resolve(document, parts)))
    return seen


def _keep(node: Any, tree: dict[str, Any]) -> Any:
    """``node`` filtered down to the branches named in ``tree`` (a leaf ``{}`` keeps all)."""
    if not tree:
        return node
    assert isinstance(node, dict), "a kept pointer runs through a list"
    return {key: _keep(value, tree[key]) for key, value in node.items() if key in tree}


def cut(original: dict[str, Any], spec: Cut, sha256: str) -> dict[str, Any]:
    """The part of ``original`` that ``spec`` names, with a note of where it came from."""
    section = _schema_section(original)
    schemas = _resolve(original, section)
    missing = [name for name in spec.schemas if name not in schemas]
    if missing:
        raise SystemExit(f"{spec.name}: no schema named {', '.join(missing)}")
    roots = [
        ref
        for path, item in original.get("paths", {}).items()
        if _called(path)
        for ref in _refs(item)
    ]
    roots += ["#/" + "/".join((*section, name)) for name in spec.schemas]
    # the schemas those endpoints use, then whatever those schemas point at
    schema_roots = [
        "#/" + "/".join(parts)
        for parts in _closure(original, roots)
        if parts[: len(section)] == section
    ]
    kept = _closure(original, schema_roots)
    tree: dict[str, Any] = {}
    for parts in sorted(kept, key=len):
        branch = tree
        for part in parts[:-1]:
            if part in branch and not branch[part]:
                break  # an ancestor is already kept whole
            branch = branch.setdefault(part, {})
        else:
            branch[parts[-1]] = {}
    version_key = "openapi" if "openapi" in original else "swagger"
    result: dict[str, Any] = {version_key: original[version_key], "info": original["info"]}
    result["x-raftkit-cut"] = {
        "from": f"{spec.name} ({spec.upstream})",
        "sha256": sha256,
        "endpoints": list(ENDPOINTS),
        "schemas": list(spec.schemas),
        "by": "tests/data/specs/cut_specs.py; regenerate rather than edit",
    }
    result.update(_keep({k: v for k, v in original.items() if k in tree}, tree))
    dangling = [r for r in set(_refs(result)) if not _present(result, _parts(r))]
    assert not dangling, f"{spec.name}: the cut lost {sorted(dangling)}"
    return result


def _present(document: Any, parts: tuple[str, ...]) -> bool:
    try:
        _resolve(document, parts)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("originals", type=Path, help="folder holding the original specs")
    args = parser.parse_args(argv)
    for spec in SPECS:
        raw = (args.originals / spec.name).read_bytes()
        original = json.loads(raw)
        result = cut(original, spec, hashlib.sha256(raw).hexdigest())
        target = HERE / spec.name
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(result, indent=1, ensure_ascii=False) + "\n"
        target.write_text(text, encoding="utf-8")
        count = len(_resolve(result, _schema_section(result)))
        print(f"{target.relative_to(HERE)}: {count} schemas, {len(text) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
