"""Fine-tuning on Azure OpenAI: the same REST API, file processing, and ARM deployments."""

from __future__ import annotations

import re
from typing import Any

from raftkit.errors import NotFoundError, UsageError
from raftkit.finetune._errors import DeploymentFailedError
from raftkit.finetune._models import Deployment, FineTuneJob
from raftkit.finetune._rest import RestFineTuneProvider, _model_name
from raftkit.finetune.azure_tiers import tier_supported_by_api_version
from raftkit.llm import AzureOpenAIClient, LLMClient, json_of
from raftkit.llm.azure_management import AzureAccount, AzureManagementClient
from raftkit.llm.files import DEFAULT_PART_BYTES, DEFAULT_UPLOADS_THRESHOLD
from raftkit.llm.polling import PollPolicy, poll_until

__all__ = ["AzureFineTuneProvider"]

_SUCCEEDED = "succeeded"
_FAILED = frozenset({"failed", "canceled", "cancelled"})
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class AzureFineTuneProvider(RestFineTuneProvider):
    """Azure OpenAI fine-tuning through an :class:`~raftkit.llm.AzureOpenAIClient` the caller
    owns (use an authoring ``api_version`` such as ``2024-10-01-preview``, or ``v1=True``).

    Uploaded files are polled until Azure has ``processed`` them; one it rejects raises
    :class:`~raftkit.finetune.FileRejectedError` with Azure's ``status_details``.

    Deployment needs the management plane: ``management`` (an
    :class:`~raftkit.finetune.AzureManagementClient`, owned by the caller) and ``account``
    (subscription, resource group, resource name). ``sku_name``/``capacity`` are the
    deployment's SKU (``Standard``, ``GlobalStandard``, ``DeveloperTier``, ...; capacity in
    thousands of tokens per minute).

    ``training_type`` is sent as the job body's top-level ``trainingType`` (``Standard``,
    ``GlobalStandard``, ``developerTier``; see :mod:`raftkit.finetune.azure_tiers`). Azure reads
    it from API version ``2025-04-01-preview`` on (and on ``/openai/v1``) and silently ignores it
    before, so an older client is refused rather than trained on a tier it did not ask for.
    """

    wait_for_file_processing = True

    def __init__(
        self,
        client: LLMClient,
        *,
        management: AzureManagementClient | None = None,
        account: AzureAccount | None = None,
        sku_name: str = "standard",
        capacity: int = 1,
        training_type: str | None = None,
        deployment_poll: PollPolicy | None = None,
        uploads_threshold: int = DEFAULT_UPLOADS_THRESHOLD,
        part_bytes: int = DEFAULT_PART_BYTES,
        dedupe: bool = True,
        file_poll: PollPolicy | None = None,
        poll: PollPolicy | None = None,
    ) -> None:
        super().__init__(
            client,
            uploads_threshold=uploads_threshold,
            part_bytes=part_bytes,
            dedupe=dedupe,
            file_poll=file_poll,
            poll=poll,
        )
        if capacity < 1:
            raise UsageError("capacity must be at least 1")
        self.management = management
        self.account = account
        self.sku_name = sku_name
        self.capacity = capacity
        if (
            training_type is not None
            and isinstance(client, AzureOpenAIClient)
            and not tier_supported_by_api_version(client.api_version, v1=client.v1)
        ):
            raise UsageError(
                f"Azure reads trainingType from API version 2025-04-01-preview on (or on "
                f"/openai/v1); this client uses {client.api_version}, which would train on "
                "Standard whatever the tier: set OPENAI_API_VERSION=2025-04-01-preview"
            )
        self.training_type = training_type
        self.deployment_poll = deployment_poll or PollPolicy(
            initial=5.0, maximum=30.0, timeout=3600.0
        )

    def _job_body(self, **fields: Any) -> dict[str, Any]:
        body = super()._job_body(**fields)
        if self.training_type is not None:
            body["trainingType"] = self.training_type
        return body

    def _arm(self) -> tuple[AzureManagementClient, AzureAccount]:
        if self.management is None or self.account is None:
            raise UsageError(
                "deploying on Azure needs management=AzureManagementClient(token_provider=...) "
                "and account=AzureAccount(subscription_id=..., resource_group=..., "
                "account_name=...)"
            )
        return self.management, self.account

    # ------------------------------------------------------------------ deployment

    async def deploy(self, model: FineTuneJob | str, *, name: str | None = None) -> str:
        """Create (or update) a deployment of the fine-tuned model and wait until it serves;
        returns the deployment name, the ``model`` to pass to ``chat``."""
        deployment = await self.create_deployment(model, name=name)
        return deployment.name

    async def create_deployment(
        self,
        model: FineTuneJob | str,
        *,
        name: str | None = None,
        sku_name: str | None = None,
        capacity: int | None = None,
        wait: bool = True,
    ) -> Deployment:
        management, account = self._arm()
        model_name = _model_name(model)
        deployment_name = name or _default_name(model_name)
        body = {
            "sku": {"name": sku_name or self.sku_name, "capacity": capacity or self.capacity},
            "properties": {"model": {"format": "OpenAI", "name": model_name, "version": "1"}},
        }
        response = await management.request(
            "PUT", account.deployment_path(deployment_name), json=body
        )
        deployment = Deployment.from_api(json_of(response))
        if not wait:
            return deployment
        return await self.wait_deployment(deployment_name)

    async def get_deployment(self, name: str) -> Deployment:
        management, account = self._arm()
        response = await management.request("GET", account.deployment_path(name))
        return Deployment.from_api(json_of(response))

    async def wait_deployment(self, name: str) -> Deployment:
        """Poll until ``provisioningState`` is ``Succeeded``; ``Failed``/``Canceled`` raise
        :class:`DeploymentFailedError`."""

        def done(deployment: Deployment) -> bool:
            state = deployment.provisioning_state.lower()
            if state in _FAILED:
                raise DeploymentFailedError(name, deployment.provisioning_state)
            return state == _SUCCEEDED

        return await poll_until(
            lambda: self.get_deployment(name),
            status=lambda deployment: deployment.provisioning_state.lower(),
            done=done,
            policy=self.deployment_poll,
            what=f"deployment {name}",
            resource_id=name,
        )

    async def delete_deployment(self, name: str) -> bool:
        """Delete a deployment; ``False`` if there was none."""
        management, account = self._arm()
        try:
            response = await management.request("DELETE", account.deployment_path(name))
        except NotFoundError:
            return False
        return response.status_code != 204


def _default_name(model: str) -> str:
    # deployment names allow letters, digits, '.', '_' and '-' (at most 64)
    return _UNSAFE.sub("-", model).strip("-")[:64] or "fine-tuned"
