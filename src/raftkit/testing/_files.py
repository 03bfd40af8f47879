"""Files and multipart uploads: ``/v1/files``, ``/v1/uploads`` and their Azure twins.

The files module is the base of the fine-tuning side: fine-tuning jobs read training files
from its store, batches read their input and write their output and error files into it, and
finished jobs write their result files. It also owns what the three share: which API dialect a
request speaks (:class:`Dialect`), dialect-aware errors, the light check of fine-tuning data
(:func:`inspect_training_data`) and lookup of a module's store in ``state.extensions``.

OpenAI marks a file ``processed`` at once and reports bad training data on the job. Azure
processes a file first: ``pending`` → ``running`` → ``processed``, or ``error`` with
``status_details`` when a fine-tune file is not valid JSONL chat data.

The module is long because files, uploads and the helpers the fine-tuning modules share
(dialects, errors, paging) are one unit; the training-data check lives in
:mod:`raftkit.testing._training_data`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from raftkit.testing._errors import SimulatorHTTPError
from raftkit.testing._state import SimulatorState
from raftkit.testing._training_data import TrainingDataReport, inspect_training_data

__all__ = [
    "API_PREFIXES",
    "Dialect",
    "FileRecord",
    "FileSettings",
    "FileStore",
    "TrainingDataReport",
    "api_error",
    "configure_files",
    "dialect_of",
    "extension",
    "file_store",
    "inspect_training_data",
    "page",
    "parse_multipart",
    "query_limit",
    "read_object",
    "routes",
]

API_PREFIXES: tuple[str, ...] = ("/v1", "/openai", "/openai/v1")
"""OpenAI, Azure (versioned by ``api-version``) and Azure's OpenAI-compatible v1 surface."""

_PURPOSES = frozenset(
    {
        "assistants",
        "assistants_output",
        "batch",
        "batch_output",
        "fine-tune",
        "fine-tune-results",
        "vision",
        "user_data",
        "evals",
    }
)
_UPLOAD_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data"})
# Azure's ErrorCode enum has no HTTP statuses, so each status gets its closest code.
_AZURE_CODES: dict[int, str] = {
    400: "invalidPayload",
    401: "unauthorized",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    413: "invalidPayload",
    429: "tooManyRequests",
    500: "internalFailure",
}

_T = TypeVar("_T")


# ---------------------------------------------------------------- dialects and errors


@dataclass(frozen=True)
class Dialect:
    """Which API a request speaks, which decides the shape of what we answer."""

    azure: bool
    """The request went to an Azure OpenAI resource (``/openai/...``)."""
    versioned: bool
    """Azure's ``api-version`` surface, whose schemas differ from OpenAI's (the authoring spec);
    ``False`` for OpenAI and for Azure's OpenAI-compatible ``/openai/v1/...``."""
    api_version: str | None = None


def dialect_of(request: Request) -> Dialect:
    path = request.url.path
    if path.startswith("/openai/v1/"):
        return Dialect(azure=True, versioned=False)
    if path.startswith("/openai/"):
        return Dialect(
            azure=True, versioned=True, api_version=request.query_params.get("api-version")
        )
    return Dialect(azure=False, versioned=False)


def api_error(
    dialect: Dialect,
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    azure_code: str | None = None,
) -> SimulatorHTTPError:
    """An error in the dialect's shape: on Azure's versioned surface ``code`` comes from the
    authoring spec's ``ErrorCode`` enum (``azure_code``, else the closest to ``status``);
    OpenAI's body shape carries it either way."""
    if dialect.versioned:
        code = azure_code or _AZURE_CODES.get(status, "internalFailure")
    return SimulatorHTTPError(status, message, code=code, param=param)


def extension(state: SimulatorState, key: str, factory: Callable[[], _T]) -> _T:
    """A module's own store in ``state.extensions``, created on first use."""
    with state.lock:
        found = state.extensions.get(key)
        if found is None:
            found = factory()
            state.extensions[key] = found
        return found


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}


async def read_object(request: Request, dialect: Dialect) -> dict[str, Any]:
    """The JSON object in the request body, or a 400 in the dialect's shape."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise api_error(dialect, 400, "We could not parse the JSON body of your request.")
    return body


def page(
    items: list[_T],
    ident: Callable[[_T], str],
    *,
    after: str | None,
    limit: int,
) -> tuple[list[_T], bool]:
    """One page of ``items`` (already in listing order) after the item ``after``."""
    start = 0
    if after is not None:
        ids = [ident(item) for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    chosen = items[start : start + limit]
    return chosen, start + limit < len(items)


def query_limit(request: Request, dialect: Dialect, default: int, maximum: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise api_error(dialect, 400, f"Invalid 'limit': {raw!r}.", param="limit") from None
    if not 1 <= value <= maximum:
        raise api_error(
            dialect, 400, f"Invalid 'limit': {value}. Expected 1 to {maximum}.", param="limit"
        )
    return value


# ---------------------------------------------------------------- multipart bodies


@dataclass(frozen=True)
class _Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def parse_multipart(body: bytes, content_type: str) -> dict[str, _Part]:
    """The fields of a ``multipart/form-data`` body by name.

    Hand-written because Starlette's form parser needs python-multipart, which raftkit does
    not depend on; the parts are split on the exact boundary so binary data stays intact.
    """
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise ValueError("expected a multipart/form-data body with a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + body).split(b"\r\n" + delimiter)
    parts: dict[str, _Part] = {}
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, separator, data = chunk.partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a multipart part has no header block")
        headers = HeaderParser().parsestr(head.decode("utf-8", "replace").lstrip("\r\n"))
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise ValueError("a multipart part has no name")
        filename = headers.get_filename()
        parts[name] = _Part(name, filename, headers.get("content-type"), data)
    return parts


async def _form(request: Request, dialect: Dialect) -> dict[str, _Part]:
    try:
        return parse_multipart(await request.body(), request.headers.get("content-type", ""))
    except ValueError as e:
        raise api_error(dialect, 400, f"Could not parse multipart form: {e}.") from e


# ---------------------------------------------------------------- the store


@dataclass(frozen=True, kw_only=True)
class FileSettings:
    """Limits and timing of the files API. Durations are seconds of the simulated clock."""

    max_file_bytes: int = 512 * 1024 * 1024
    """Largest file ``POST /files`` accepts in one request; bigger ones need ``/uploads``."""
    max_upload_bytes: int = 8 * 1024 * 1024 * 1024
    max_part_bytes: int = 64 * 1024 * 1024
    upload_ttl_seconds: int = 3600
    azure_pending_seconds: float = 0.05
    """How long an Azure file stays ``pending`` before processing starts."""
    azure_processing_seconds: float = 0.05
    """How long an Azure file stays ``running`` before it is ``processed`` (or ``error``)."""


@dataclass
class FileRecord:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int
    created_time: float
    """The simulated clock when the file was stored."""
    azure: bool
    """Uploaded to an Azure resource, so it goes through processing before use."""
    problem: str | None = None
    """Why a fine-tune file is unusable (Azure reports it as ``status_details``)."""

    def status(self, now: float, settings: FileSettings) -> str:
        """``pending`` / ``running`` / ``processed`` / ``error`` (OpenAI: always processed)."""
        if not self.azure:
            return "processed"
        elapsed = now - self.created_time
        if elapsed < settings.azure_pending_seconds:
            return "pending"
        if elapsed < settings.azure_pending_seconds + settings.azure_processing_seconds:
            return "running"
        return "error" if self.problem is not None else "processed"

    def render(self, dialect: Dialect, now: float, settings: FileSettings) -> dict[str, Any]:
        status = self.status(now, settings)
        if not dialect.versioned and status in ("pending", "running"):
            # OpenAI's schema knows only uploaded/processed/error
            status = "uploaded"
        body: dict[str, Any] = {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": status,
            "status_details": self.problem if status == "error" else None,
        }
        return _drop_none(body)


@dataclass
class _UploadRecord:
    id: str
    filename: str
    purpose: str
    declared_bytes: int
    mime_type: str
    created_at: int
    expires_at: int
    status: str = "pending"
    parts: dict[str, bytes] = field(default_factory=dict)
    file_id: str | None = None


class FileStore:
    """Every file and upload of one simulator; thread-safe through ``state.lock``."""

    def __init__(self, state: SimulatorState, settings: FileSettings | None = None) -> None:
        self._state = state
        self.settings = settings or FileSettings()
        self._files: dict[str, FileRecord] = {}
        self._uploads: dict[str, _UploadRecord] = {}
        state.add_persistence("files", self._dump, self._load)

    def add(
        self,
        filename: str,
        purpose: str,
        content: bytes,
        *,
        azure: bool = False,
        file_id: str | None = None,
    ) -> FileRecord:
        """Store a file (also how jobs and batches write their output files); a ``file_id``
        that is already stored returns that file (so a replayed job writes its results once)."""
        state = self._state
        if file_id is not None:
            with state.lock:
                found = self._files.get(file_id)
            if found is not None:
                return found
        problem = None
        if purpose == "fine-tune":
            problem = inspect_training_data(content).problem
        record = FileRecord(
            id=file_id or state.new_id("file"),
            filename=filename,
            purpose=purpose,
            content=content,
            created_at=state.unix_time(),
            created_time=state.now(),
            azure=azure,
            problem=problem,
        )
        with state.lock:
            self._files[record.id] = record
        if state.directory is not None:
            state.directory.write_blob(record.id, content)
            state.mark_dirty()
        return record

    def get(self, file_id: str) -> FileRecord | None:
        with self._state.lock:
            return self._files.get(file_id)

    def status(self, record: FileRecord) -> str:
        return record.status(self._state.now(), self.settings)

    def render(self, record: FileRecord, dialect: Dialect) -> dict[str, Any]:
        return record.render(dialect, self._state.now(), self.settings)

    def all(self) -> list[FileRecord]:
        with self._state.lock:
            return list(self._files.values())

    def delete(self, file_id: str) -> bool:
        with self._state.lock:
            removed = self._files.pop(file_id, None) is not None
        if removed and self._state.directory is not None:
            self._state.directory.delete_blob(file_id)
            self._state.mark_dirty()
        return removed

    def _dump(self) -> list[dict[str, Any]]:
        return [
            {
                "id": r.id,
                "filename": r.filename,
                "purpose": r.purpose,
                "created_at": r.created_at,
                "created_time": r.created_time,
                "azure": r.azure,
                "problem": r.problem,
            }
            for r in self._files.values()
        ]

    def _load(self, data: Any) -> None:
        directory = self._state.directory
        assert directory is not None
        for item in data:
            content = directory.read_blob(item["id"])
            if content is None:
                continue  # its bytes were lost: the file is gone
            self._files[item["id"]] = FileRecord(content=content, **item)

    def add_upload(self, record: _UploadRecord) -> None:
        with self._state.lock:
            self._uploads[record.id] = record

    def pending_upload(self, dialect: Dialect, upload_id: str) -> _UploadRecord:
        """The upload, if it still takes parts; a 404 or 400 in the dialect's shape if not."""
        with self._state.lock:
            upload = self._uploads.get(upload_id)
            if upload is None:
                raise api_error(
                    dialect, 404, f"No such Upload object: {upload_id}", param="upload_id"
                )
            if upload.status == "pending" and self._state.unix_time() >= upload.expires_at:
                upload.status = "expired"
            if upload.status != "pending":
                raise api_error(
                    dialect,
                    400,
                    f"Upload {upload_id} is {upload.status}, not pending.",
                    param="upload_id",
                )
            return upload


def file_store(state: SimulatorState) -> FileStore:
    """The simulator's file store (created with default settings on first use)."""
    return extension(state, "raftkit.testing._files", lambda: FileStore(state))


def configure_files(state: SimulatorState, settings: FileSettings) -> None:
    file_store(state).settings = settings


# ---------------------------------------------------------------- routes


def _require(
    dialect: Dialect, body: Mapping[str, Any], name: str, kind: type | tuple[type, ...]
) -> Any:
    value = body.get(name)
    if value is None:
        raise api_error(dialect, 400, f"Missing required parameter: '{name}'.", param=name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise api_error(dialect, 400, f"Invalid type for '{name}'.", param=name)
    return value


def _found(store: FileStore, dialect: Dialect, file_id: str) -> FileRecord:
    record = store.get(file_id)
    if record is None:
        raise api_error(dialect, 404, f"No such File object: {file_id}", param="id")
    return record


def _render_upload(store: FileStore, upload: _UploadRecord, dialect: Dialect) -> dict[str, Any]:
    file = store.get(upload.file_id) if upload.file_id else None
    body: dict[str, Any] = {
        "id": upload.id,
        "object": "upload",
        "bytes": upload.declared_bytes,
        "created_at": upload.created_at,
        "filename": upload.filename,
        "purpose": upload.purpose,
        "status": upload.status,
        "expires_at": upload.expires_at,
        "file": store.render(file, dialect) if file is not None else None,
    }
    return _drop_none(body) if dialect.versioned else body


def routes(state: SimulatorState) -> list[BaseRoute]:
    """``/files`` and ``/uploads`` under every prefix in :data:`API_PREFIXES`."""
    store = file_store(state)

    async def create_file(request: Request) -> Response:
        dialect = dialect_of(request)
        form = await _form(request, dialect)
        purpose_part = form.get("purpose")
        file_part = form.get("file")
        if purpose_part is None:
            raise api_error(dialect, 400, "Missing required parameter: 'purpose'.", param="purpose")
        if file_part is None:
            raise api_error(dialect, 400, "Missing required parameter: 'file'.", param="file")
        purpose = purpose_part.data.decode("utf-8", "replace")
        if purpose not in _PURPOSES or purpose.endswith(("_output", "-results")):
            raise api_error(
                dialect, 400, f"Invalid value for 'purpose': {purpose!r}.", param="purpose"
            )
        size = len(file_part.data)
        if size > store.settings.max_file_bytes:
            raise api_error(
                dialect,
                413,
                f"File is {size} bytes, more than the {store.settings.max_file_bytes} bytes "
                "one request may carry. Use the Uploads API (POST /uploads) for large files.",
                param="file",
                code="file_too_large",
            )
        record = store.add(
            file_part.filename or "upload", purpose, file_part.data, azure=dialect.azure
        )
        status = 201 if dialect.versioned else 200
        return JSONResponse(store.render(record, dialect), status_code=status)

    async def list_files(request: Request) -> Response:
        dialect = dialect_of(request)
        purpose = request.query_params.get("purpose")
        order = request.query_params.get("order", "desc")
        limit = query_limit(request, dialect, 10_000, 10_000)
        records = [r for r in store.all() if purpose is None or r.purpose == purpose]
        if order == "desc":
            records.reverse()
        chosen, more = page(
            records, lambda r: r.id, after=request.query_params.get("after"), limit=limit
        )
        data = [store.render(r, dialect) for r in chosen]
        body: dict[str, Any] = {"object": "list", "data": data}
        if not dialect.versioned:
            # the spec makes these required strings, also for an empty page
            body["first_id"] = data[0]["id"] if data else ""
            body["last_id"] = data[-1]["id"] if data else ""
            body["has_more"] = more
        return JSONResponse(body)

    async def retrieve_file(request: Request) -> Response:
        dialect = dialect_of(request)
        record = _found(store, dialect, request.path_params["file_id"])
        return JSONResponse(store.render(record, dialect))

    async def delete_file(request: Request) -> Response:
        dialect = dialect_of(request)
        record = _found(store, dialect, request.path_params["file_id"])
        store.delete(record.id)
        return JSONResponse({"id": record.id, "object": "file", "deleted": True})

    async def file_content(request: Request) -> Response:
        dialect = dialect_of(request)
        record = _found(store, dialect, request.path_params["file_id"])
        media = "application/jsonl" if record.filename.endswith(".jsonl") else None
        return Response(record.content, media_type=media or "application/octet-stream")

    async def create_upload(request: Request) -> Response:
        dialect = dialect_of(request)
        body = await read_object(request, dialect)
        filename = _require(dialect, body, "filename", str)
        purpose = _require(dialect, body, "purpose", str)
        declared = _require(dialect, body, "bytes", int)
        mime_type = _require(dialect, body, "mime_type", str)
        if purpose not in _UPLOAD_PURPOSES:
            raise api_error(
                dialect, 400, f"Invalid value for 'purpose': {purpose!r}.", param="purpose"
            )
        if not 0 < declared <= store.settings.max_upload_bytes:
            raise api_error(
                dialect,
                400,
                f"'bytes' must be between 1 and {store.settings.max_upload_bytes}.",
                param="bytes",
            )
        now = state.unix_time()
        upload = _UploadRecord(
            id=state.new_id("upload"),
            filename=filename,
            purpose=purpose,
            declared_bytes=declared,
            mime_type=mime_type,
            created_at=now,
            expires_at=now + store.settings.upload_ttl_seconds,
        )
        store.add_upload(upload)
        return JSONResponse(_render_upload(store, upload, dialect))

    async def add_part(request: Request) -> Response:
        dialect = dialect_of(request)
        upload = store.pending_upload(dialect, request.path_params["upload_id"])
        data_part = (await _form(request, dialect)).get("data")
        if data_part is None:
            raise api_error(dialect, 400, "Missing required parameter: 'data'.", param="data")
        if len(data_part.data) > store.settings.max_part_bytes:
            raise api_error(
                dialect,
                413,
                f"A part may be at most {store.settings.max_part_bytes} bytes.",
                param="data",
                code="part_too_large",
            )
        part_id = state.new_id("part")
        with state.lock:
            upload.parts[part_id] = data_part.data
        body: dict[str, Any] = {
            "id": part_id,
            "object": "upload.part",
            "created_at": state.unix_time(),
            "upload_id": upload.id,
        }
        return JSONResponse(body)

    async def complete_upload(request: Request) -> Response:
        dialect = dialect_of(request)
        upload = store.pending_upload(dialect, request.path_params["upload_id"])
        body = await read_object(request, dialect)
        part_ids = _require(dialect, body, "part_ids", list)
        missing = [p for p in part_ids if p not in upload.parts]
        if missing:
            raise api_error(dialect, 400, f"Unknown part id(s): {missing}.", param="part_ids")
        content = b"".join(upload.parts[p] for p in part_ids)
        if len(content) != upload.declared_bytes:
            raise api_error(
                dialect,
                400,
                f"The upload was created for {upload.declared_bytes} bytes but the parts "
                f"hold {len(content)} bytes.",
                param="part_ids",
            )
        md5 = body.get("md5")
        if isinstance(md5, str) and md5 and hashlib.md5(content).hexdigest() != md5.lower():
            raise api_error(dialect, 400, "The md5 checksum does not match.", param="md5")
        record = store.add(upload.filename, upload.purpose, content, azure=dialect.azure)
        with state.lock:
            upload.file_id = record.id
            upload.status = "completed"
            upload.parts.clear()
        return JSONResponse(_render_upload(store, upload, dialect))

    async def cancel_upload(request: Request) -> Response:
        dialect = dialect_of(request)
        upload = store.pending_upload(dialect, request.path_params["upload_id"])
        with state.lock:
            upload.status = "cancelled"
            upload.parts.clear()
        return JSONResponse(_render_upload(store, upload, dialect))

    table: Iterable[tuple[str, Callable[[Request], Any], str]] = (
        ("/files", create_file, "POST"),
        ("/files", list_files, "GET"),
        ("/files/{file_id}", retrieve_file, "GET"),
        ("/files/{file_id}", delete_file, "DELETE"),
        ("/files/{file_id}/content", file_content, "GET"),
        ("/uploads", create_upload, "POST"),
        ("/uploads/{upload_id}/parts", add_part, "POST"),
        ("/uploads/{upload_id}/complete", complete_upload, "POST"),
        ("/uploads/{upload_id}/cancel", cancel_upload, "POST"),
    )
    return [
        Route(prefix + path, endpoint, methods=[method])
        for prefix in API_PREFIXES
        for path, endpoint, method in table
    ]
