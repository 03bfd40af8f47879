"""The layout of a run directory, in one place (floor 1).

A run directory is where one corpus's work accumulates, command after command::

    RUN_DIR/
      settings.json                 the data-shaping settings the run was started with
      journal.jsonl                 every paid teacher response (the journal)
      completion_caps.json          the completion caps learned so far (kept across resumes)
      chunks.jsonl                  the corpus's chunks, in corpus order
      examples.jsonl                verified RAFT examples, in corpus order
      rejections.jsonl              questions whose answers failed verification, and why
      report.json, report.md        what the generation did and cost
      report.html                   the run viewer's page (``raftkit show``)
      <name>.batch.json             the Batch API batch in flight (``generate --batch``)
      dataset/<format>/<part>.jsonl the exported splits (``raftkit export``), dataset/split.json
      finetune.json                 the fine-tuning job (``raftkit finetune``), to resume it
      eval/                         ``raftkit eval``: its own journal and report.{md,html,json}
      retrieval/                    ``raftkit retrieval``: pairs.jsonl, split.json, cache/,
                                    adapter-<kind>.npz, bi-encoder/, cross-encoder/,
                                    report.{md,html}

Every command and library function that reads or writes one of these asks :class:`RunDir`
for its path, so the layout is spelled out here and nowhere else.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["RunDir"]


class RunDir(os.PathLike[str]):
    """The paths of one run directory. Only names paths: creates and reads nothing.

    A :class:`RunDir` is an ``os.PathLike``, so it can be passed wherever a directory is
    expected (``Journal(run)``, ``open(run.examples)``, ``Path(run)``).
    """

    __slots__ = ("root",)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    # ------------------------------------------------------------------ generation

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    @property
    def journal(self) -> Path:
        return self.root / "journal.jsonl"

    @property
    def completion_caps(self) -> Path:
        """What :class:`~raftkit.llm.caps.CompletionCaps` learned, so a resumed run keeps it."""
        return self.root / "completion_caps.json"

    @property
    def chunks(self) -> Path:
        return self.root / "chunks.jsonl"

    @property
    def examples(self) -> Path:
        return self.root / "examples.jsonl"

    @property
    def rejections(self) -> Path:
        return self.root / "rejections.jsonl"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        """The page ``raftkit show`` writes to look at the run."""
        return self.root / "report.html"

    def batch_state(self, name: str) -> Path:
        """The state file of the batch called ``name`` (its id, whether it was merged)."""
        return self.root / f"{name}.batch.json"

    # ------------------------------------------------------------------ export and fine-tuning

    @property
    def dataset(self) -> Path:
        """Where ``raftkit export`` writes ``<format>/<part>.jsonl`` and ``split.json``."""
        return self.root / "dataset"

    def dataset_file(self, format: str, part: str, suffix: str = ".jsonl") -> Path:
        """One exported file: ``dataset/<format>/<part><suffix>``."""
        return self.dataset / format / f"{part}{suffix}"

    @property
    def finetune_state(self) -> Path:
        """The fine-tuning job a ``raftkit finetune`` started, so a second one resumes it."""
        return self.root / "finetune.json"

    # ------------------------------------------------------------------ evaluation

    @property
    def eval(self) -> Path:
        """``raftkit eval``'s directory: its own journal and ``report.{md,html,json}``."""
        return self.root / "eval"

    # ------------------------------------------------------------------ retrieval

    @property
    def retrieval(self) -> Path:
        return self.root / "retrieval"

    @property
    def pairs(self) -> Path:
        """(question, chunk) pairs with their split."""
        return self.retrieval / "pairs.jsonl"

    @property
    def pair_split(self) -> Path:
        """The report of the pairs' split."""
        return self.retrieval / "split.json"

    @property
    def embedding_cache(self) -> Path:
        return self.retrieval / "cache"

    def adapter(self, kind: str) -> Path:
        """A trained embedding adapter: ``retrieval/adapter-<kind>.npz``."""
        return self.retrieval / f"adapter-{kind}.npz"

    @property
    def bi_encoder(self) -> Path:
        return self.retrieval / "bi-encoder"

    @property
    def cross_encoder(self) -> Path:
        return self.retrieval / "cross-encoder"

    @property
    def retrieval_report_md(self) -> Path:
        return self.retrieval / "report.md"

    @property
    def retrieval_report_html(self) -> Path:
        return self.retrieval / "report.html"
