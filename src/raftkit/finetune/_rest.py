"""The fine-tuning REST API OpenAI defined and Azure OpenAI speaks too, over an LLM client.

Every call goes through the client's ``request`` (retries, rate limits, error translation);
paths are relative to the client's API root, so the same code serves ``api.openai.com/v1``,
Azure's ``/openai`` (with ``api-version``) and Azure's ``/openai/v1``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio

from raftkit.errors import UsageError
from raftkit.finetune._base import (
    FINE_TUNE_METHODS,
    FileSource,
    FineTuneMethod,
    FineTuneProvider,
)
from raftkit.finetune._models import (
    Checkpoint,
    FineTuneJob,
    Hyperparameters,
    JobEvent,
    TrainingMetrics,
)
from raftkit.finetune.metrics import parse_result_csv
from raftkit.llm import LLMClient, json_of
from raftkit.llm.files import DEFAULT_PART_BYTES, DEFAULT_UPLOADS_THRESHOLD, FileOps, UploadedFile
from raftkit.llm.polling import PollPolicy

__all__ = ["RestFineTuneProvider"]


class RestFineTuneProvider(FineTuneProvider):
    """Shared implementation of :class:`OpenAIFineTuneProvider` and
    :class:`AzureFineTuneProvider`; not used directly."""

    #: Azure processes a file before a job may use it; OpenAI does not make you wait.
    wait_for_file_processing = False
    #: Items asked for per page of the paginated lists.
    page_size = 100

    def __init__(
        self,
        client: LLMClient,
        *,
        uploads_threshold: int = DEFAULT_UPLOADS_THRESHOLD,
        part_bytes: int = DEFAULT_PART_BYTES,
        dedupe: bool = True,
        file_poll: PollPolicy | None = None,
        poll: PollPolicy | None = None,
    ) -> None:
        self.client = client
        self.dedupe = dedupe
        self.files = FileOps(
            client,
            wait_for_processing=self.wait_for_file_processing,
            uploads_threshold=uploads_threshold,
            part_bytes=part_bytes,
            poll=file_poll,
        )
        if poll is not None:
            self.default_poll = poll

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client!r})"

    # ------------------------------------------------------------------ files

    async def upload_file(
        self,
        source: FileSource,
        *,
        filename: str | None = None,
        purpose: str = "fine-tune",
    ) -> UploadedFile:
        if isinstance(source, bytes):
            content = source
            name = filename or "data.jsonl"
        else:
            path = Path(os.fspath(source))
            content = await anyio.Path(path).read_bytes()
            name = filename or path.name
        if not content:
            raise UsageError(f"{name} is empty; the service rejects empty files")
        return await self.files.upload(content, name, purpose=purpose, dedupe=self.dedupe)

    # ------------------------------------------------------------------ jobs

    def _job_body(
        self,
        *,
        model: str,
        training_file: str,
        validation_file: str | None,
        suffix: str | None,
        seed: int | None,
        hyperparameters: Hyperparameters | None,
        metadata: Mapping[str, str] | None,
        method: FineTuneMethod = "supervised",
        beta: float | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "training_file": training_file}
        if validation_file is not None:
            body["validation_file"] = validation_file
        if suffix is not None:
            body["suffix"] = suffix
        if seed is not None:
            body["seed"] = seed
        hyper = (hyperparameters or Hyperparameters()).to_api()
        if method == "dpo" and beta is not None:
            hyper["beta"] = beta
        body["method"] = {"type": method, method: {"hyperparameters": hyper}}
        if metadata:
            body["metadata"] = dict(metadata)
        return body

    async def create_job(
        self,
        *,
        model: str,
        training_file: str,
        validation_file: str | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        hyperparameters: Hyperparameters | None = None,
        metadata: Mapping[str, str] | None = None,
        method: FineTuneMethod = "supervised",
        beta: float | None = None,
    ) -> FineTuneJob:
        if suffix is not None and not 1 <= len(suffix) <= 64:
            raise UsageError("suffix must be 1 to 64 characters")
        if method not in FINE_TUNE_METHODS:
            raise UsageError(
                f"method must be one of {', '.join(FINE_TUNE_METHODS)}, not {method!r}"
            )
        if beta is not None:
            if method != "dpo":
                raise UsageError("beta is a DPO hyperparameter: pass method='dpo' with it")
            if not 0 < beta <= 2:
                raise UsageError(f"beta must be above 0 and at most 2, not {beta}")
        body = self._job_body(
            model=model,
            training_file=training_file,
            validation_file=validation_file,
            suffix=suffix,
            seed=seed,
            hyperparameters=hyperparameters,
            metadata=metadata,
            method=method,
            beta=beta,
        )
        # a job costs money: never resent once the server may have created it (a reply lost
        # in transit would make a second job); FineTuneRun finds the first by its tag instead
        response = await self.client.request(
            "POST", "fine_tuning/jobs", json=body, idempotent=False
        )
        return FineTuneJob.from_api(json_of(response))

    async def get_job(self, job_id: str) -> FineTuneJob:
        response = await self.client.request("GET", f"fine_tuning/jobs/{job_id}")
        return FineTuneJob.from_api(json_of(response))

    async def list_jobs(self) -> AsyncIterator[FineTuneJob]:
        async for item in self._pages("fine_tuning/jobs"):
            yield FineTuneJob.from_api(item)

    async def cancel_job(self, job_id: str) -> FineTuneJob:
        response = await self.client.request("POST", f"fine_tuning/jobs/{job_id}/cancel")
        return FineTuneJob.from_api(json_of(response))

    async def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        async for item in self._pages(f"fine_tuning/jobs/{job_id}/events"):
            yield JobEvent.from_api(item)

    async def checkpoints(self, job_id: str) -> AsyncIterator[Checkpoint]:
        path = f"fine_tuning/jobs/{job_id}/checkpoints"
        async for item in self._pages(path):
            yield Checkpoint.from_api(item)

    async def metrics(self, job: FineTuneJob | str) -> TrainingMetrics:
        found = job if isinstance(job, FineTuneJob) else await self.get_job(job)
        if not found.result_files:
            raise UsageError(
                f"job {found.id} has no result file (it is {found.status}); metrics come "
                "with a succeeded job"
            )
        file_id = found.result_files[0]
        content = await self.files.content(file_id)
        return await anyio.to_thread.run_sync(lambda: parse_result_csv(content, file_id=file_id))

    async def _pages(self, path: str) -> AsyncIterator[dict[str, Any]]:
        """Items of a cursor-paginated list (``after`` = the last id of the previous page)."""
        limit = self.page_size
        params = {"limit": str(limit)}
        while True:
            body = json_of(await self.client.request("GET", path, params=params))
            data = [d for d in body.get("data") or [] if isinstance(d, dict) and "id" in d]
            for item in data:
                yield item
            if not body.get("has_more") or not data:
                return
            params = {"limit": str(limit), "after": str(data[-1]["id"])}

    # ------------------------------------------------------------------ deployment

    async def deploy(self, model: FineTuneJob | str, *, name: str | None = None) -> str:
        return _model_name(model)


def _model_name(model: FineTuneJob | str) -> str:
    if isinstance(model, str):
        return model
    if model.fine_tuned_model is None:
        raise UsageError(f"job {model.id} has no fine-tuned model (it is {model.status})")
    return model.fine_tuned_model
