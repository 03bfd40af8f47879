"""Chat requests through the Batch API: half the price, results within 24 hours.

:class:`BatchRunner` turns chat requests into one batch and merges the answers into a
:class:`~raftkit.llm.ResponseStore` (the run's journal) under the **same keys an online call
would use**, so the generation stage, run afterwards online with ``client.with_store(journal)``,
replays every batched answer instead of paying for it again.

- Each line's ``custom_id`` is the journal key (:func:`~raftkit.llm.request_key` of the
  request as the client would send it online, and its sample index). Requests already in the
  store are not submitted.
- The batch id is written to ``<run_dir>/<name>.batch.json`` as soon as the batch exists, so a
  restarted run polls that batch instead of submitting again. An input file of the same content
  is found again by its hashed name, and a live batch on that file is adopted, which closes the
  gap between creating a batch and writing its id down.
- Answers are billed in the client's ledger at the batch price
  (``UsageLedger.record(..., batch=True)``); failed lines are reported with their error and
  not stored, so an online run (or the next batch) asks again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Unpack

import anyio

from raftkit.batch.requests import (
    BatchFailedError,
    BatchLineFailure,
    BatchRequest,
    BatchResult,
    BatchStatus,
)
from raftkit.errors import UsageError
from raftkit.llm import (
    AzureOpenAIClient,
    ChatMessage,
    ChatParams,
    ChatRequest,
    LLMClient,
    OpenAIClient,
    ResponseStore,
    json_of,
    usage_from_body,
)
from raftkit.llm.files import DEFAULT_UPLOADS_THRESHOLD, FileOps
from raftkit.llm.polling import PollPolicy, poll_until
from raftkit.run_dir import RunDir

__all__ = ["BATCH_TERMINAL_STATUSES", "BatchRunner"]

logger = logging.getLogger("raftkit.batch")

BATCH_TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
_LIVE = frozenset({"validating", "in_progress", "finalizing", "completed"})
_OPENAI_ENDPOINT = "/v1/chat/completions"
_AZURE_ENDPOINT = "/chat/completions"


class BatchRunner:
    """Runs chat requests as one batch and merges the answers into ``store``.

    ``run_dir`` holds the state file ``<name>.batch.json``. ``poll`` paces the wait (a batch
    may take up to 24 hours; the default waits that long plus an hour). ``on_status`` is
    called with a :class:`BatchStatus` after every poll.
    """

    def __init__(
        self,
        client: LLMClient,
        store: ResponseStore,
        *,
        run_dir: str | os.PathLike[str],
        name: str = "teacher",
        poll: PollPolicy | None = None,
        uploads_threshold: int = DEFAULT_UPLOADS_THRESHOLD,
        metadata: Mapping[str, str] | None = None,
        on_status: Callable[[BatchStatus], object] | None = None,
    ) -> None:
        if not name or "/" in name or "\\" in name:
            raise UsageError(f"batch name must be a plain file name, got {name!r}")
        if not isinstance(client, OpenAIClient | AzureOpenAIClient):
            raise UsageError(
                "the Batch API runner needs an OpenAIClient or AzureOpenAIClient, "
                f"got {type(client).__name__}"
            )
        self.client = client
        self.store = store
        self.run_dir = Path(run_dir)
        self.name = name
        self.poll = poll or PollPolicy(initial=10.0, maximum=300.0, timeout=25 * 3600.0)
        self.metadata = dict(metadata or {})
        self.on_status = on_status
        self.round = 1
        self.azure = isinstance(client, AzureOpenAIClient)
        self.files = FileOps(
            client, wait_for_processing=self.azure, uploads_threshold=uploads_threshold
        )

    @property
    def state_path(self) -> Path:
        return RunDir(self.run_dir).batch_state(self.name)

    @property
    def endpoint(self) -> str:
        return _AZURE_ENDPOINT if self.azure else _OPENAI_ENDPOINT

    # ------------------------------------------------------------------ building requests

    def chat_request(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str,
        sample: int = 0,
        **params: Unpack[ChatParams],
    ) -> BatchRequest:
        """The request ``client.chat`` would send for these arguments, field for field."""
        online = self.client.chat_request(messages, model=model, **params)
        # A batch line always names its model (on Azure, the deployment), even where the
        # online request carries it in the URL instead.
        return BatchRequest(body={"model": model, **online.body}, sample=sample)

    def online_request(self, request: BatchRequest) -> ChatRequest:
        """The path and body an online ``chat`` of this request sends (Azure deployment URLs
        carry the model in the path, not the body)."""
        model = request.model
        if not model:
            raise UsageError("a batch request body needs a 'model'")
        # the client routes by model alone: ask it where a call of this model goes
        probe = self.client.chat_request(request.body.get("messages") or [], model=model)
        body = dict(request.body)
        if "model" not in probe.body:
            body.pop("model", None)
        return ChatRequest(probe.path, body, probe.endpoint)

    def key(self, request: BatchRequest) -> str:
        """The journal key an online call of ``request`` is stored under."""
        return self.online_request(request).key(request.sample)

    # ------------------------------------------------------------------ running

    async def run(self, requests: Sequence[BatchRequest]) -> BatchResult:
        """Submit what the store lacks as one batch (or resume the recorded one), wait, merge."""
        by_key: dict[str, BatchRequest] = {}
        for request in requests:
            by_key.setdefault(self.key(request), request)
        state = await self._load_state()
        if state is not None and not state.get("merged"):
            batch_id = str(state["batch_id"])
            logger.info("resuming batch %s from %s", batch_id, self.state_path)
            batch = await self.wait(batch_id)
            result = await self._merge(batch, by_key)
            await self._save_state({**state, "merged": True, "status": batch.get("status")})
            return result.model_copy(
                update={
                    "requested": len(by_key),
                    "submitted": _total(batch, len(by_key)),
                    "resumed": True,
                }
            )
        pending = [key for key in by_key if await self.store.get(key) is None]
        stored_before = len(by_key) - len(pending)
        if not pending:
            return BatchResult(
                requested=len(by_key), already_stored=stored_before, submitted=0, stored=0
            )
        content = self._input_file(pending, by_key)
        uploaded = await self.files.upload(
            content, f"{self.name}-batch.jsonl", purpose="batch", dedupe=True
        )
        batch = await self._adopt(uploaded.id) or await self._create(uploaded.id)
        state = {
            "batch_id": batch["id"],
            "input_file_id": uploaded.id,
            "requests": len(pending),
            "merged": False,
        }
        await self._save_state(state)
        batch = await self.wait(str(batch["id"]))
        result = await self._merge(batch, by_key)
        await self._save_state({**state, "merged": True, "status": batch.get("status")})
        return result.model_copy(
            update={
                "requested": len(by_key),
                "already_stored": stored_before,
                "submitted": len(pending),
            }
        )

    def _input_file(self, keys: Sequence[str], by_key: Mapping[str, BatchRequest]) -> bytes:
        lines = [
            json.dumps(
                {
                    "custom_id": key,
                    "method": "POST",
                    "url": self.endpoint,
                    "body": by_key[key].body,
                },
                ensure_ascii=False,
                separators=(",", ":"),
            )
            for key in keys
        ]
        return ("\n".join(lines) + "\n").encode("utf-8")

    async def _adopt(self, input_file_id: str) -> dict[str, Any] | None:
        """A live batch already made from this input file (created before a crash)."""
        body = json_of(await self.client.request("GET", "batches", params={"limit": "100"}))
        for item in body.get("data") or []:
            if (
                isinstance(item, dict)
                and item.get("input_file_id") == input_file_id
                and item.get("status") in _LIVE
            ):
                logger.info("adopting batch %s made from %s", item.get("id"), input_file_id)
                return item
        return None

    async def _create(self, input_file_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "input_file_id": input_file_id,
            "endpoint": self.endpoint,
            "completion_window": "24h",
        }
        metadata = {"raftkit_batch": self.name, **self.metadata}
        body["metadata"] = metadata
        return json_of(await self.client.request("POST", "batches", json=body))

    async def get(self, batch_id: str) -> dict[str, Any]:
        return json_of(await self.client.request("GET", f"batches/{batch_id}"))

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        return json_of(await self.client.request("POST", f"batches/{batch_id}/cancel"))

    async def wait(self, batch_id: str) -> dict[str, Any]:
        """Poll until the batch is terminal; a ``failed`` batch raises
        :class:`BatchFailedError` with the service's reasons."""

        def done(batch: dict[str, Any]) -> bool:
            status = _status(batch)
            if status == "failed":
                raise BatchFailedError(batch_id, status, _batch_errors(batch))
            return status in BATCH_TERMINAL_STATUSES

        async def seen(batch: dict[str, Any]) -> bool:
            if self.on_status is not None:
                self.on_status(_progress(batch_id, batch, self.round))
            return False

        return await poll_until(
            lambda: self.get(batch_id),
            status=_status,
            done=done,
            policy=self.poll,
            what=f"batch {batch_id}",
            resource_id=batch_id,
            hint="; run again to keep polling it",
            on_value=seen,
        )

    # ------------------------------------------------------------------ merging

    async def _lines(self, file_id: object) -> list[dict[str, Any]]:
        if not isinstance(file_id, str) or not file_id:
            return []
        content = await self.files.content(file_id)
        out: list[dict[str, Any]] = []
        for number, raw in enumerate(content.decode("utf-8").splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                logger.warning("batch file %s line %d is not JSON; skipped", file_id, number)
                continue
            if isinstance(line, dict):
                out.append(line)
        return out

    async def _merge(
        self, batch: Mapping[str, Any], by_key: Mapping[str, BatchRequest]
    ) -> BatchResult:
        ledger = self.client.ledger
        lines = await self._lines(batch.get("output_file_id"))
        lines += await self._lines(batch.get("error_file_id"))
        stored = 0
        cost = 0.0
        answered: set[str] = set()
        failures: list[BatchLineFailure] = []
        for line in lines:
            key = str(line.get("custom_id") or "")
            request = by_key.get(key)
            if request is None:
                logger.warning("batch %s answered unknown custom_id %r", batch.get("id"), key)
                continue
            answered.add(key)
            response = line.get("response")
            status = response.get("status_code") if isinstance(response, Mapping) else None
            body = response.get("body") if isinstance(response, Mapping) else None
            if status == 200 and isinstance(body, dict) and line.get("error") is None:
                if await self.store.get(key) is not None:
                    continue  # merged by an earlier, interrupted run: paid and counted then
                await self.store.put(key, self.online_request(request).body, body)
                stored += 1
                usage = usage_from_body(body)
                if ledger is not None and usage is not None:
                    cost += ledger.record(request.model, usage, batch=True) or 0.0
                continue
            failures.append(_failure(key, status, body, line.get("error")))
        status = str(batch.get("status") or "")
        for key in by_key:
            if key not in answered and await self.store.get(key) is None:
                failures.append(
                    BatchLineFailure(
                        key=key, message=f"not answered by batch {batch.get('id')} ({status})"
                    )
                )
        return BatchResult(
            requested=len(by_key),
            already_stored=0,
            submitted=0,
            stored=stored,
            batch_id=str(batch.get("id")),
            status=status,
            failures=failures,
            cost_usd=cost,
        )

    # ------------------------------------------------------------------ state file

    async def _load_state(self) -> dict[str, Any] | None:
        path = anyio.Path(self.state_path)
        if not await path.exists():
            return None
        try:
            state = json.loads(await path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise UsageError(
                f"{self.state_path} is not valid JSON; delete it to submit a new batch"
            ) from e
        if not isinstance(state, dict) or not isinstance(state.get("batch_id"), str):
            raise UsageError(f"{self.state_path} names no batch; delete it to submit a new one")
        return state

    async def _save_state(self, state: Mapping[str, Any]) -> None:
        await anyio.Path(self.run_dir).mkdir(parents=True, exist_ok=True)
        temporary = anyio.Path(self.state_path.with_suffix(".json.tmp"))
        await temporary.write_text(json.dumps(state, indent=2), encoding="utf-8")
        await temporary.replace(self.state_path)


def _status(batch: Mapping[str, Any]) -> str:
    return str(batch.get("status") or "unknown")


def _progress(batch_id: str, batch: Mapping[str, Any], round_: int) -> BatchStatus:
    counts = batch.get("request_counts")
    count = counts if isinstance(counts, Mapping) else {}
    return BatchStatus(
        batch_id=batch_id,
        status=_status(batch),
        completed=int(count.get("completed") or 0),
        failed=int(count.get("failed") or 0),
        total=int(count.get("total") or 0),
        round=round_,
    )


def _total(batch: Mapping[str, Any], default: int) -> int:
    counts = batch.get("request_counts")
    if isinstance(counts, Mapping) and isinstance(counts.get("total"), int):
        return int(counts["total"])
    return default


def _batch_errors(batch: Mapping[str, Any]) -> list[str]:
    errors = batch.get("errors")
    data = errors.get("data") if isinstance(errors, Mapping) else None
    items = data if isinstance(data, list) else [data] if isinstance(data, Mapping) else []
    out = []
    for item in items:
        if isinstance(item, Mapping):
            where = f"line {item['line']}: " if item.get("line") is not None else ""
            out.append(f"{where}{item.get('message') or item.get('code') or 'unknown error'}")
    return out


def _failure(key: str, status: object, body: object, error: object) -> BatchLineFailure:
    detail: Mapping[str, Any] = {}
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        detail = body["error"]
    elif isinstance(error, Mapping):
        detail = error
    return BatchLineFailure(
        key=key,
        status_code=status if isinstance(status, int) else None,
        code=detail.get("code"),
        message=str(detail.get("message") or "the request failed without a message"),
    )
