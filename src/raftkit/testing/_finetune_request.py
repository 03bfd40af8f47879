"""Reading ``POST /fine_tuning/jobs``: what the service accepts, and what it refuses at once.

Refused with a 400 before a job exists (in the dialect's error shape):

- after the provider's fine-tuning cut-off (``SimulatorConfig.fine_tuning_cutoffs``: OpenAI
  accepts no new jobs from 2027-01-06) — ``code: "fine_tuning_unavailable"``;
- a base model that is unknown, retired, or not fine-tunable with the requested method —
  ``code: "model_not_available"`` (a fine-tune of a fine-tunable model may be trained further);
- a method other than ``supervised`` or ``dpo``, or bad hyper-parameters (DPO's ``beta`` is
  ``"auto"`` or a number in (0, 2]);
- a missing or unusable file;
- Azure's ``trainingType`` (a top-level field; ``Standard``, ``GlobalStandard`` or
  ``developerTier``, compared without case) that is unknown or that the model does not take.
  OpenAI refuses the field as an unrecognized argument; Azure's versioned surface before
  ``2025-04-01-preview`` ignores it (the job trains as ``Standard``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from raftkit.testing._catalog import AZURE_TRAINING_TYPES
from raftkit.testing._files import Dialect, FileRecord, api_error, file_store
from raftkit.testing._state import SimulatorState
from raftkit.testing._training_data import inspect_training_data

__all__ = ["JobRequest", "read_job_request"]

_METHODS = frozenset({"supervised", "dpo"})
_TRAINING_TYPE_SINCE = "2025-04-01-preview"
_DEFAULT_TRAINING_TYPE = "Standard"


@dataclass(frozen=True)
class JobRequest:
    """A job creation request that passed every check."""

    model: str
    training: FileRecord
    validation: FileRecord | None
    suffix: str | None
    seed: int | None
    method: str
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    beta: float | None
    metadata: dict[str, str] | None
    integrations: list[Any] | None
    training_type: str | None
    """Azure's ``trainingType`` as it will be echoed (``None`` on OpenAI)."""


def _hyperparameter(
    dialect: Dialect,
    values: dict[str, Any],
    name: str,
    default: float,
    low: float,
    high: float,
    *,
    integer: bool,
    low_open: bool = False,
) -> float:
    value = values.get(name, "auto")
    if value is None or value == "auto":
        return default
    number_ok = isinstance(value, int) or (not integer and isinstance(value, float))
    in_range = number_ok and (low < value if low_open else low <= value) and value <= high
    if isinstance(value, bool) or not in_range:
        bounds = (
            f"greater than {low:g} and at most {high:g}"
            if low_open
            else f"between {low:g} and {high:g}"
        )
        raise api_error(
            dialect,
            400,
            f"Invalid value for hyperparameter '{name}': {value!r}. Expected 'auto' or a "
            f"{'whole ' if integer else ''}number {bounds}.",
            param=f"hyperparameters.{name}",
        )
    return float(value)


def _file_for_job(
    state: SimulatorState, dialect: Dialect, body: dict[str, Any], param: str
) -> FileRecord | None:
    file_id = body.get(param)
    if file_id is None and param == "validation_file":
        return None
    if not isinstance(file_id, str) or not file_id:
        raise api_error(dialect, 400, f"Missing required parameter: '{param}'.", param=param)
    store = file_store(state)
    record = store.get(file_id)
    if record is None:
        raise api_error(
            dialect,
            400,
            f"Invalid file ID: {file_id} does not exist.",
            param=param,
            code="invalid_file_id",
        )
    if record.purpose != "fine-tune":
        raise api_error(
            dialect,
            400,
            f"File {file_id} has purpose '{record.purpose}'; {param} needs purpose 'fine-tune'.",
            param=param,
        )
    if store.status(record) == "error":
        raise api_error(
            dialect,
            400,
            f"File {file_id} failed validation: {record.problem}",
            param=param,
            azure_code="jsonlValidationFailed",
        )
    return record


def _check_cutoff(state: SimulatorState, dialect: Dialect) -> None:
    provider = "azure" if dialect.azure else "openai"
    cutoff = state.config.fine_tuning_cutoffs.get(provider)
    if cutoff is not None and state.today() >= cutoff:
        name = "Azure OpenAI" if dialect.azure else "OpenAI"
        raise api_error(
            dialect,
            400,
            f"Fine-tuning is no longer available: {name} accepts no new fine-tuning jobs since "
            f"{cutoff.isoformat()}. Existing fine-tuned models keep serving until their "
            "shutdown dates.",
            code="fine_tuning_unavailable",
            azure_code="invalidPayload",
        )


def _check_model(
    state: SimulatorState, dialect: Dialect, model: str, method: str, allowed: frozenset[str] | None
) -> None:
    def refuse(why: str) -> None:
        raise api_error(
            dialect,
            400,
            f"Model {model} is not available for fine-tuning or does not exist. {why}".strip(),
            param="model",
            code="model_not_available",
        )

    if allowed is not None:
        if model not in allowed:
            refuse("")
        return
    if state.config.accept_unknown_models:
        return
    resolved = state.model(model)
    card = resolved.card
    if card is None or card.kind != "chat" or not card.fine_tuning:
        refuse("")
        return
    shutdown = card.shutdown_date
    if shutdown is not None and state.today() >= shutdown:
        refuse(f"It was shut down on {shutdown.isoformat()}.")
    if method not in card.fine_tuning:
        refuse(f"It does not support the '{method}' method.")


def _training_type(
    state: SimulatorState, dialect: Dialect, body: dict[str, Any], model: str
) -> str | None:
    given = body.get("trainingType")
    if not dialect.azure:
        if given is not None:
            raise api_error(dialect, 400, "Unrecognized request argument supplied: trainingType")
        return None
    if dialect.versioned and (dialect.api_version or "") < _TRAINING_TYPE_SINCE:
        return _DEFAULT_TRAINING_TYPE  # older API versions do not know the field
    if given is None:
        return _DEFAULT_TRAINING_TYPE
    by_lower = {t.lower(): t for t in AZURE_TRAINING_TYPES}
    canonical = by_lower.get(given.lower()) if isinstance(given, str) else None
    if canonical is None:
        raise api_error(
            dialect,
            400,
            f"Invalid value for 'trainingType': {given!r}. Supported values are: "
            f"{', '.join(AZURE_TRAINING_TYPES)}.",
            param="trainingType",
        )
    card = state.model(model).card
    supported = (card.azure_training_types if card is not None else frozenset()) or {
        _DEFAULT_TRAINING_TYPE
    }
    if canonical not in supported and not state.config.accept_unknown_models:
        raise api_error(
            dialect,
            400,
            f"Training type '{canonical}' is not available for model {model}; it supports "
            f"{', '.join(sorted(supported))}.",
            param="trainingType",
        )
    return canonical


def _method(dialect: Dialect, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    method = body.get("method") or {"type": "supervised"}
    kind = method.get("type") if isinstance(method, dict) else method
    if not isinstance(method, dict) or kind not in _METHODS:
        raise api_error(
            dialect,
            400,
            f"Fine-tuning method {kind!r} is not simulated; use 'supervised' or 'dpo'.",
            param="method.type",
        )
    settings = method.get(kind) or {}
    values = settings.get("hyperparameters") if isinstance(settings, dict) else None
    if values is None:
        values = body.get("hyperparameters") or {}
    if not isinstance(values, dict):
        raise api_error(
            dialect, 400, "'hyperparameters' must be an object.", param="hyperparameters"
        )
    return str(kind), values


def read_job_request(
    state: SimulatorState, dialect: Dialect, body: dict[str, Any], *, allowed: frozenset[str] | None
) -> JobRequest:
    """Check a job creation request (see the module docstring); ``allowed`` is the
    ``fine_tunable_models`` setting, which replaces the catalog's answer when set."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise api_error(dialect, 400, "Missing required parameter: 'model'.", param="model")
    _check_cutoff(state, dialect)
    method, values = _method(dialect, body)
    _check_model(state, dialect, model, method, allowed)
    training_type = _training_type(state, dialect, body, model)
    training = _file_for_job(state, dialect, body, "training_file")
    validation = _file_for_job(state, dialect, body, "validation_file")
    assert training is not None
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or not 1 <= len(suffix) <= 64):
        raise api_error(dialect, 400, "'suffix' must be 1 to 64 characters.", param="suffix")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise api_error(dialect, 400, "'seed' must be an integer.", param="seed")
    metadata = body.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise api_error(dialect, 400, "'metadata' must map strings to strings.", param="metadata")
    examples = max(1, inspect_training_data(training.content).examples)
    # "auto" follows OpenAI's published behaviour: more epochs for small datasets
    auto_epochs = 3 if examples >= 100 else min(25, math.ceil(300 / examples))
    auto_batch = max(1, min(256, round(examples * 0.002)))
    n_epochs = int(_hyperparameter(dialect, values, "n_epochs", auto_epochs, 1, 50, integer=True))
    batch_size = int(
        _hyperparameter(dialect, values, "batch_size", auto_batch, 1, 256, integer=True)
    )
    learning_rate = _hyperparameter(
        dialect, values, "learning_rate_multiplier", 1.8, 1e-9, 1e6, integer=False
    )
    beta = None
    if method == "dpo":
        beta = _hyperparameter(dialect, values, "beta", 0.1, 0.0, 2.0, integer=False, low_open=True)
    return JobRequest(
        model=model,
        training=training,
        validation=validation,
        suffix=suffix,
        seed=seed,
        method=method,
        n_epochs=n_epochs,
        batch_size=batch_size,
        learning_rate_multiplier=learning_rate,
        beta=beta,
        metadata=metadata,
        integrations=body.get("integrations"),
        training_type=training_type,
    )
