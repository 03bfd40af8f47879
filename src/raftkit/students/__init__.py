"""Floor 3: open-weight students — the model a RAFT dataset trains on your own hardware.

- :mod:`~raftkit.students.base` — what a BASE is (a Hugging Face model folder, a model in the
  local HF cache, or a GGUF file) and loading it offline.
- :mod:`~raftkit.students.template` — a chat row rendered with the student's own chat template
  and the assistant-only loss mask.
- :mod:`~raftkit.students.audit` — the chat-template audit of a whole chat JSONL file.
- :mod:`~raftkit.students.config`, :mod:`~raftkit.students.hardware` — training settings,
  device, precision and the memory estimate.
- :mod:`~raftkit.students.train` (with ``loop``, ``jobdir`` and ``report``) — the training
  process that :class:`raftkit.finetune.LocalLoRAProvider` starts.

Used by ``raftkit.finetune`` (training) and ``raftkit.serve`` (serving). Everything that needs
torch, transformers or peft (the ``train`` extra) imports them when called, never at import.
"""

from raftkit.students.audit import (
    NO_MARKERS_WARNING,
    AuditIssue,
    AuditIssueKind,
    TemplateAudit,
    TokenSummary,
    audit_chat_jsonl,
    audit_student,
)
from raftkit.students.base import (
    BaseKind,
    StudentBase,
    dequantized_dir,
    load_causal_lm,
    load_tokenizer,
    resolve_base,
)
from raftkit.students.config import Device, LocalTrainingConfig, LrSchedule, Precision
from raftkit.students.extra import TRAIN_INSTALL_HINT, missing_train_modules, require_train
from raftkit.students.hardware import MemoryEstimate, estimate_training_memory
from raftkit.students.template import (
    IGNORE_INDEX,
    MaskSource,
    RenderedRow,
    TemplateError,
    chat_template_of,
    decoded_spans,
    has_generation_markers,
    render_chat_row,
)

__all__ = [
    "IGNORE_INDEX",
    "NO_MARKERS_WARNING",
    "TRAIN_INSTALL_HINT",
    "AuditIssue",
    "AuditIssueKind",
    "BaseKind",
    "Device",
    "LocalTrainingConfig",
    "LrSchedule",
    "MaskSource",
    "MemoryEstimate",
    "Precision",
    "RenderedRow",
    "StudentBase",
    "TemplateAudit",
    "TemplateError",
    "TokenSummary",
    "audit_chat_jsonl",
    "audit_student",
    "chat_template_of",
    "decoded_spans",
    "dequantized_dir",
    "estimate_training_memory",
    "has_generation_markers",
    "load_causal_lm",
    "load_tokenizer",
    "missing_train_modules",
    "render_chat_row",
    "require_train",
    "resolve_base",
]
