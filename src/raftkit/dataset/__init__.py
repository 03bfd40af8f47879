"""Floor 3: from RAFT examples to files a fine-tuning service accepts.

- :mod:`~raftkit.dataset.io` — stream ``examples.jsonl`` in, write JSONL atomically.
- :mod:`~raftkit.dataset.split` — train/validation/test split grouped by oracle chunk (or
  document), deterministic for a seed whatever the input order.
- :mod:`~raftkit.dataset.export` — the :class:`Exporter` plug-in point and its formats (chat,
  completion, the RAFT reference format, eval, Hugging Face), registered by name.
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
    export_split,
    exporter_names,
    format_context,
    format_instruction,
    get_exporter,
    register_exporter,
    to_hf_dataset,
)
from raftkit.dataset.io import iter_examples, read_examples, write_examples, write_jsonl
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
    "ChatExporter",
    "CompletionExporter",
    "DpoExporter",
    "Epochs",
    "EvalExporter",
    "Exporter",
    "GroupBy",
    "HuggingFaceExporter",
    "Issue",
    "IssueKind",
    "JsonlExporter",
    "MissingExtraError",
    "PreferencePair",
    "PreferenceReport",
    "PreflightReport",
    "PreparedDataset",
    "RaftReferenceExporter",
    "Ratios",
    "Split",
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
    "read_examples",
    "register_exporter",
    "split_examples",
    "split_groups",
    "to_hf_dataset",
    "training_price_per_million",
    "validate_chat_jsonl",
    "validate_preference_jsonl",
    "write_examples",
    "write_jsonl",
]

# the preference formats live in their own module, which imports the registry's
register_exporter(DpoExporter.name, DpoExporter)
register_exporter(TrlDpoExporter.name, TrlDpoExporter)
