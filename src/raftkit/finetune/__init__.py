"""Floor 3: fine-tuning a student model.

- :class:`FineTuneProvider` — the plug-in point (an async context manager given its client):
  upload files, create / list / cancel jobs, follow events, wait, read metrics, deploy.
- :class:`OpenAIFineTuneProvider` and :class:`AzureFineTuneProvider` — OpenAI and Azure
  OpenAI; Azure deployments go through :class:`~raftkit.llm.AzureManagementClient` (ARM).
  Jobs train ``supervised`` (chat examples) or ``dpo`` (preference pairs, ``beta``).
- :mod:`~raftkit.finetune.lifecycle` — whether a model can still be fine-tuned or called, from
  the service and a dated table, before anything is paid; :mod:`~raftkit.finetune.inventory`
  — the account's fine-tuned models and their days left.
- :mod:`~raftkit.finetune.azure_tiers` — Azure's training tiers (``trainingType``) and the
  deployment types of a fine-tuned model.
- :class:`LocalLoRAProvider` — LoRA on this machine for open-weight students (``train`` extra).

The whole resumable workflow of a run directory (export, validate, upload, start or resume the
job, wait, deploy) is :class:`raftkit.finetune_run.FineTuneRun`. Teacher calls through the
Batch API moved to :mod:`raftkit.batch`; their old names here still resolve, with a warning.
"""

from __future__ import annotations

import warnings
from typing import Any

from raftkit.errors import FileRejectedError, WaitTimeoutError
from raftkit.finetune._base import (
    FINE_TUNE_METHODS,
    KNOWN_STATUSES,
    EventCallback,
    FileSource,
    FineTuneMethod,
    FineTuneProvider,
    JobCallback,
)
from raftkit.finetune._errors import (
    DeploymentFailedError,
    FineTuneError,
    FineTuneJobFailedError,
)
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
    normalise_status,
)
from raftkit.finetune.azure import AzureFineTuneProvider
from raftkit.finetune.azure_tiers import (
    AzureFineTuningCatalog,
    DeploymentType,
    TierChoice,
    TrainingTier,
)
from raftkit.finetune.inventory import FineTunedModel, Inventory, fine_tuned_inventory
from raftkit.finetune.lifecycle import (
    LifecycleReport,
    LifecycleTable,
    ModelLifecycleError,
    check_model,
)
from raftkit.finetune.local import LocalLoRAProvider
from raftkit.finetune.metrics import parse_result_csv
from raftkit.finetune.openai import OpenAIFineTuneProvider
from raftkit.finetune.report import summary_markdown, training_curve_csv, training_curve_svg
from raftkit.llm.azure_management import (
    ARM_API_VERSION,
    MANAGEMENT_SCOPE,
    AzureAccount,
    AzureManagementClient,
)
from raftkit.llm.files import UploadedFile, content_hash, hashed_filename
from raftkit.llm.polling import PollPolicy

__all__ = [
    "ARM_API_VERSION",
    "FINE_TUNE_METHODS",
    "KNOWN_STATUSES",
    "MANAGEMENT_SCOPE",
    "TERMINAL_STATUSES",
    "AzureAccount",
    "AzureFineTuneProvider",
    "AzureFineTuningCatalog",
    "AzureManagementClient",
    "Checkpoint",
    "Deployment",
    "DeploymentFailedError",
    "DeploymentType",
    "EventCallback",
    "FileRejectedError",
    "FileSource",
    "FineTuneError",
    "FineTuneJob",
    "FineTuneJobFailedError",
    "FineTuneMethod",
    "FineTuneProvider",
    "FineTunedModel",
    "Hyperparameters",
    "Inventory",
    "JobCallback",
    "JobError",
    "JobEvent",
    "LifecycleReport",
    "LifecycleTable",
    "LocalLoRAProvider",
    "ModelLifecycleError",
    "OpenAIFineTuneProvider",
    "PollPolicy",
    "StepMetrics",
    "TierChoice",
    "TrainingMetrics",
    "TrainingTier",
    "UploadedFile",
    "WaitTimeoutError",
    "check_model",
    "content_hash",
    "fine_tuned_inventory",
    "hashed_filename",
    "normalise_status",
    "parse_result_csv",
    "summary_markdown",
    "training_curve_csv",
    "training_curve_svg",
]

#: Names that moved to :mod:`raftkit.batch`: batching teacher calls is not fine-tuning.
_MOVED_TO_BATCH = frozenset(
    {"BatchFailedError", "BatchLineFailure", "BatchRequest", "BatchResult", "BatchRunner"}
)


def __getattr__(name: str) -> Any:
    if name not in _MOVED_TO_BATCH:
        raise AttributeError(f"module 'raftkit.finetune' has no attribute {name!r}")
    warnings.warn(
        f"raftkit.finetune.{name} moved to raftkit.batch.{name}",
        DeprecationWarning,
        stacklevel=2,
    )
    # a compatibility alias, declared as the one exception in the import-linter contract
    import raftkit.batch

    return getattr(raftkit.batch, name)
