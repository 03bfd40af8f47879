"""Floor 3: from RAFT examples to files a fine-tuning service accepts.

- :mod:`~raftkit.dataset.io` — stream ``examples.jsonl`` in, write JSONL atomically.
- :mod:`~raftkit.dataset.split` — train/validation/test split grouped by oracle chunk (or
  document), deterministic for a seed whatever the input order.
- :mod:`~raftkit.dataset.export` — the :class:`Exporter` plug-in point and its formats (chat,
  completion, the RAFT reference format, eval, Hugging Face), registered by name.
- :mod:`~raftkit.dataset.manifest` — ``export.json``: the system prompt and formats an export
  used, so evaluation asks the student as it was trained.
- :mod:`~raftkit.dataset.open_formats` — ``messages``, ``prompt-completion``, ``sharegpt`` and
  ``alpaca`` for the open trainers, a provenance sidecar and LLaMA-Factory's
  ``dataset_info.json``.
- :mod:`~raftkit.dataset.preference` — preference pairs and their ``dpo`` (OpenAI/Azure) and
  ``dpo-trl`` (TRL) formats, and a check of ``dpo`` files.
- :mod:`~raftkit.dataset.validate` — check a chat JSONL file as the service would.
- :mod:`~raftkit.dataset.cost` and :mod:`~raftkit.dataset.preflight` — billed tokens, epochs
  and dollars before anything is uploaded.
- :func:`prepare_dataset` — all of it in one async call.
"""

from raftkit.dataset.cost import (
    DEFAULT_MAX_TOKENS_PER_EXAMPLE,
    MAX_TOKENS_PER_EXAMPLE,
    Epochs,
    TrainingCost,
    billed_tokens,
    default_epochs,
    estimate_training_cost,
    max_tokens_per_example,
    training_price_per_million,
)
from raftkit.dataset.export import (
    ChatExporter,
    CompletionExporter,
    EvalExporter,
    Exporter,
    HuggingFaceExporter,
    JsonlExporter,
    MissingExtraError,
    RaftReferenceExporter,
    SplitExporter,
    export_split,
    exporter_names,
    format_context,
    format_instruction,
    get_exporter,
    push_hf_dataset,
    register_exporter,
    to_hf_dataset,
)
from raftkit.dataset.io import iter_examples, read_examples, write_examples, write_jsonl
from raftkit.dataset.manifest import ExportManifest, read_export_manifest
from raftkit.dataset.open_formats import (
    OPEN_FORMATS,
    AlpacaExporter,
    MessagesExporter,
    PromptCompletionExporter,
    ShareGPTExporter,
    dataset_info,
    write_open_format_extras,
    write_provenance,
)
from raftkit.dataset.preference import (
    DpoExporter,
    PreferencePair,
    PreferenceReport,
    TrlDpoExporter,
    validate_preference_jsonl,
)
from raftkit.dataset.preflight import PreflightReport, chat_token_counts, preflight
from raftkit.dataset.prepare import PreparedDataset, prepare_dataset
from raftkit.dataset.split import (
    DEFAULT_RATIOS,
    GroupBy,
    Ratios,
    Split,
    SplitName,
    SplitReport,
    assign_groups,
    leaked_groups,
    split_examples,
    split_groups,
)
from raftkit.dataset.validate import (
    Issue,
    IssueKind,
    TokenStats,
    ValidationReport,
    check_chat_example,
    validate_chat_jsonl,
)

__all__ = [
    "DEFAULT_MAX_TOKENS_PER_EXAMPLE",
    "DEFAULT_RATIOS",
    "MAX_TOKENS_PER_EXAMPLE",
    "OPEN_FORMATS",
    "AlpacaExporter",
    "ChatExporter",
    "CompletionExporter",
    "DpoExporter",
    "Epochs",
    "EvalExporter",
    "ExportManifest",
    "Exporter",
    "GroupBy",
    "HuggingFaceExporter",
    "Issue",
    "IssueKind",
    "JsonlExporter",
    "MessagesExporter",
    "MissingExtraError",
    "PreferencePair",
    "PreferenceReport",
    "PreflightReport",
    "PreparedDataset",
    "PromptCompletionExporter",
    "RaftReferenceExporter",
    "Ratios",
    "ShareGPTExporter",
    "Split",
    "SplitExporter",
    "SplitName",
    "SplitReport",
    "TokenStats",
    "TrainingCost",
    "TrlDpoExporter",
    "ValidationReport",
    "assign_groups",
    "billed_tokens",
    "chat_token_counts",
    "check_chat_example",
    "dataset_info",
    "default_epochs",
    "estimate_training_cost",
    "export_split",
    "exporter_names",
    "format_context",
    "format_instruction",
    "get_exporter",
    "iter_examples",
    "leaked_groups",
    "max_tokens_per_example",
    "preflight",
    "prepare_dataset",
    "push_hf_dataset",
    "read_examples",
    "read_export_manifest",
    "register_exporter",
    "split_examples",
    "split_groups",
    "to_hf_dataset",
    "training_price_per_million",
    "validate_chat_jsonl",
    "validate_preference_jsonl",
    "write_examples",
    "write_jsonl",
    "write_open_format_extras",
    "write_provenance",
]

# the preference formats live in their own module, which imports the registry's
register_exporter(DpoExporter.name, DpoExporter)
register_exporter(TrlDpoExporter.name, TrlDpoExporter)
