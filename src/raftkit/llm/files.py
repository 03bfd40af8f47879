"""The Files API over a client's request path: upload once, list, download, wait for processing.

Fine-tuning uploads training files and the Batch API uploads its input through it; both read
results back with :meth:`FileOps.content`.

Deduplication is done on the service, not in a local registry: the uploaded filename carries
the first 16 hex digits of the content's sha256 (``train-<hash>.jsonl``), and before uploading
the files of the same purpose are listed and one with that hash and the same size is reused
(unless it was rejected). This survives a lost run directory and works from several machines.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import APIError, FileRejectedError
from raftkit.llm._api_errors import json_of
from raftkit.llm._base import LLMClient
from raftkit.llm.polling import PollPolicy, poll_until

__all__ = [
    "DEFAULT_PART_BYTES",
    "DEFAULT_UPLOADS_THRESHOLD",
    "FileOps",
    "UploadedFile",
    "content_hash",
    "hashed_filename",
]

logger = logging.getLogger("raftkit.finetune")

#: ``POST /files`` takes files up to 512 MB; bigger ones go through ``/uploads``.
DEFAULT_UPLOADS_THRESHOLD = 512 * 1024 * 1024
#: An upload part may hold at most 64 MB.
DEFAULT_PART_BYTES = 64 * 1024 * 1024
_HASH_DIGITS = 16
_LIST_PAGE = 10_000


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def hashed_filename(filename: str, content: bytes) -> str:
    """``train.jsonl`` → ``train-<16 hex digits of sha256>.jsonl``."""
    path = PurePath(filename)
    digest = content_hash(content)[:_HASH_DIGITS]
    return f"{path.stem}-{digest}{path.suffix or '.jsonl'}"


class UploadedFile(BaseModel):
    """A file on the service (``/files``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    filename: str
    purpose: str
    bytes: int = 0
    status: str | None = None
    status_details: str | None = None
    reused: bool = Field(default=False, description="an identical earlier upload was reused")

    @classmethod
    def from_api(cls, body: Mapping[str, Any], *, reused: bool = False) -> UploadedFile:
        return cls(
            id=str(body["id"]),
            filename=str(body.get("filename") or ""),
            purpose=str(body.get("purpose") or ""),
            bytes=int(body.get("bytes") or 0),
            status=body.get("status"),
            status_details=body.get("status_details"),
            reused=reused,
        )


class FileOps:
    """File calls over one client's request path."""

    def __init__(
        self,
        client: LLMClient,
        *,
        wait_for_processing: bool,
        uploads_threshold: int = DEFAULT_UPLOADS_THRESHOLD,
        part_bytes: int = DEFAULT_PART_BYTES,
        poll: PollPolicy | None = None,
    ) -> None:
        if uploads_threshold < 1 or not 1 <= part_bytes <= DEFAULT_PART_BYTES:
            raise ValueError("uploads_threshold must be >= 1 and part_bytes 1..64 MB")
        self.client = client
        self.wait_for_processing = wait_for_processing
        self.uploads_threshold = uploads_threshold
        self.part_bytes = part_bytes
        self.poll = poll or PollPolicy(initial=0.5, maximum=10.0, timeout=3600.0)

    async def list(self, *, purpose: str | None = None) -> AsyncIterator[UploadedFile]:
        params: dict[str, str] = {"limit": str(_LIST_PAGE), "order": "desc"}
        if purpose is not None:
            params["purpose"] = purpose
        seen: set[str] = set()
        while True:
            body = json_of(await self.client.request("GET", "files", params=params))
            data = [d for d in body.get("data") or [] if isinstance(d, Mapping)]
            for item in data:
                if item["id"] not in seen:
                    seen.add(str(item["id"]))
                    yield UploadedFile.from_api(item)
            # Azure's versioned surface has no has_more: one page holds everything
            if not body.get("has_more") or not data:
                return
            params["after"] = str(data[-1]["id"])

    async def retrieve(self, file_id: str) -> UploadedFile:
        return UploadedFile.from_api(json_of(await self.client.request("GET", f"files/{file_id}")))

    async def content(self, file_id: str) -> bytes:
        response = await self.client.request("GET", f"files/{file_id}/content")
        return bytes(response.content)

    async def delete(self, file_id: str) -> None:
        await self.client.request("DELETE", f"files/{file_id}")

    async def find(self, name: str, size: int, purpose: str) -> UploadedFile | None:
        async for item in self.list(purpose=purpose):
            if item.filename == name and item.bytes == size and item.status != "error":
                return item
        return None

    async def upload(
        self, content: bytes, filename: str, *, purpose: str, dedupe: bool = True
    ) -> UploadedFile:
        """Upload ``content`` (or reuse an identical earlier upload) and, on Azure, wait until
        the service has processed it."""
        name = hashed_filename(filename, content)
        found = await self.find(name, len(content), purpose) if dedupe else None
        if found is not None:
            logger.info("reusing %s (%s): identical content was uploaded before", found.id, name)
            uploaded = found.model_copy(update={"reused": True})
        elif len(content) > self.uploads_threshold:
            uploaded = await self._multipart_upload(content, name, purpose)
        else:
            response = await self.client.request(
                "POST",
                "files",
                data={"purpose": purpose},
                files={"file": (name, content, "application/jsonl")},
            )
            uploaded = UploadedFile.from_api(json_of(response))
        if self.wait_for_processing:
            uploaded = await self.wait_processed(uploaded)
        return uploaded

    async def _multipart_upload(self, content: bytes, name: str, purpose: str) -> UploadedFile:
        created = json_of(
            await self.client.request(
                "POST",
                "uploads",
                json={
                    "filename": name,
                    "purpose": purpose,
                    "bytes": len(content),
                    "mime_type": "application/jsonl",
                },
            )
        )
        upload_id = str(created["id"])
        part_ids: list[str] = []
        try:
            for start in range(0, len(content), self.part_bytes):
                piece = content[start : start + self.part_bytes]
                part = json_of(
                    await self.client.request(
                        "POST",
                        f"uploads/{upload_id}/parts",
                        files={"data": ("part", piece, "application/octet-stream")},
                    )
                )
                part_ids.append(str(part["id"]))
            done = json_of(
                await self.client.request(
                    "POST",
                    f"uploads/{upload_id}/complete",
                    json={"part_ids": part_ids, "md5": hashlib.md5(content).hexdigest()},
                )
            )
        except BaseException:
            # a half-finished upload holds storage on the service until it expires
            await self._cancel_upload(upload_id)
            raise
        file = done.get("file")
        if not isinstance(file, Mapping):
            raise APIError(f"upload {upload_id} completed without a file: {json.dumps(done)}")
        return UploadedFile.from_api(file)

    async def _cancel_upload(self, upload_id: str) -> None:
        try:
            await self.client.request("POST", f"uploads/{upload_id}/cancel")
        except APIError as e:
            logger.warning("could not cancel upload %s: %s", upload_id, e)

    async def wait_processed(self, file: UploadedFile) -> UploadedFile:
        """Poll until ``processed``; a rejected file raises :class:`FileRejectedError`."""

        async def fetch() -> UploadedFile:
            return (await self.retrieve(file.id)).model_copy(update={"reused": file.reused})

        def done(current: UploadedFile) -> bool:
            if current.status == "error":
                raise FileRejectedError(current.id, current.filename, current.status_details)
            return current.status == "processed"

        return await poll_until(
            fetch,
            status=lambda current: str(current.status),
            done=done,
            policy=self.poll,
            what=f"file {file.id}",
            resource_id=file.id,
            current=file,
        )
