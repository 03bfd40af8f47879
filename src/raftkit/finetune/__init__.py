"""Floor 3: fine-tuning a student model and running teacher calls as batches.

- :class:`FineTuneProvider` — the plug-in point (an async context manager given its client):
  upload files, create / list / cancel jobs, follow events, wait, read metrics, deploy.
- :class:`OpenAIFineTuneProvider` and :class:`AzureFineTuneProvider` — OpenAI and Azure
  OpenAI; Azure deployments go through :class:`AzureManagementClient` (ARM).
- :class:`LocalLoRAProvider` — LoRA on this machine for open-weight students (``train`` extra).
- :class:`BatchRunner` — chat requests through the Batch API at half price, merged into the
  run's journal under the keys online calls use.
"""

from raftkit.finetune._base import KNOWN_STATUSES, EventCallback, FileSource, FineTuneProvider
from raftkit.finetune._errors import (
    BatchFailedError,
    DeploymentFailedError,
    FileRejectedError,
    FineTuneError,
    FineTuneJobFailedError,
    WaitTimeoutError,
)
from raftkit.finetune._files import content_hash, hashed_filename
from raftkit.finetune._models import (
    TERMINAL_STATUSES,
    Checkpoint,
    Deployment,
    FineTuneJob,
    Hyperparameters,
    JobError,
    JobEvent,
    StepMetrics,
    TrainingMetrics,
    UploadedFile,
    normalise_status,
)
from raftkit.finetune._poll import PollPolicy
from raftkit.finetune.azure import AzureFineTuneProvider
from raftkit.finetune.batch import (
    BatchLineFailure,
    BatchRequest,
    BatchResult,
    BatchRunner,
)
from raftkit.finetune.deploy import (
    ARM_API_VERSION,
    MANAGEMENT_SCOPE,
    AzureAccount,
    AzureManagementClient,
)
from raftkit.finetune.local import LocalLoRAProvider
from raftkit.finetune.metrics import parse_result_csv
from raftkit.finetune.openai import OpenAIFineTuneProvider

__all__ = [
    "ARM_API_VERSION",
    "KNOWN_STATUSES",
    "MANAGEMENT_SCOPE",
    "TERMINAL_STATUSES",
    "AzureAccount",
    "AzureFineTuneProvider",
    "AzureManagementClient",
    "BatchFailedError",
    "BatchLineFailure",
    "BatchRequest",
    "BatchResult",
    "BatchRunner",
    "Checkpoint",
    "Deployment",
    "DeploymentFailedError",
    "EventCallback",
    "FileRejectedError",
    "FileSource",
    "FineTuneError",
    "FineTuneJob",
    "FineTuneJobFailedError",
    "FineTuneProvider",
    "Hyperparameters",
    "JobError",
    "JobEvent",
    "LocalLoRAProvider",
    "OpenAIFineTuneProvider",
    "PollPolicy",
    "StepMetrics",
    "TrainingMetrics",
    "UploadedFile",
    "WaitTimeoutError",
    "content_hash",
    "hashed_filename",
    "normalise_status",
    "parse_result_csv",
]
