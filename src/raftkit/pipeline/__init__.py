"""Floor 4: the RAFT generation pipeline — a folder of documents in, verified examples out.

::

    documents ─Extractor→ Document ─Chunker→ Chunk ─QuestionSynthesizer→ Question
    Question + corpus ─DistractorSampler→ context (oracle kept with probability p, k distractors)
    Question + oracle ─AnswerGenerator→ verified chain-of-thought answer ─→ RaftExample

- :mod:`~raftkit.pipeline.config` — :class:`RaftConfig`, :class:`Progress` and the chunker
  the settings name;
- :mod:`~raftkit.pipeline.plugins` — the plug-ins of a run (given, or named by the config)
  and what ``settings.json`` records of them;
- :mod:`~raftkit.pipeline.run` — :class:`RaftPipeline`, the resumable run (online, or in
  Batch API rounds through :func:`raftkit.batch.run_in_rounds`);
- :mod:`~raftkit.pipeline.feed` — the corpus fed to the workers as it is found;
- :mod:`~raftkit.pipeline.output` — examples in corpus order, rejections, the report;
- :mod:`~raftkit.pipeline.plan` — :func:`estimate_cost`, the dry run.
"""

from raftkit.pipeline.config import Progress, RaftConfig, default_chunker
from raftkit.pipeline.plan import estimate_cost
from raftkit.pipeline.run import RaftPipeline

__all__ = ["Progress", "RaftConfig", "RaftPipeline", "default_chunker", "estimate_cost"]
