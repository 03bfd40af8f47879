"""Floor 3: from chunks to verified RAFT training material.

- :mod:`~raftkit.synth.prompts` — every teacher prompt; :class:`Prompts` overrides field by field.
- :mod:`~raftkit.synth.questions` — :class:`QuestionSynthesizer` and the teacher-backed default.
- :mod:`~raftkit.synth.distractors` — :class:`DistractorSampler` and three samplers;
  :mod:`~raftkit.synth.context` — :func:`build_context` (oracle kept with probability ``p``
  beside ``k`` distractors).
- :mod:`~raftkit.synth.answers` — :class:`AnswerGenerator` and the teacher-backed default that
  re-asks until the answer verifies (:class:`MultiAnswerGenerator`: several answers a call).
- :mod:`~raftkit.synth.verify` — :func:`verify_answer`, a pure check of quotes and answer line;
  :class:`VerifyRules` holds its thresholds.
- :mod:`~raftkit.synth.critique` — :class:`QuestionCritic`: free question filters, then a judge.
- :mod:`~raftkit.synth.dedup` — near-duplicate questions across a corpus, chunks sharing text.
- :mod:`~raftkit.synth.abstain` — refusals for contexts without the oracle.
- :mod:`~raftkit.synth.multihop` — questions that need two related chunks.
- :mod:`~raftkit.synth.question_mix` — question types and personas.
"""

from raftkit.synth.abstain import REFUSAL_LANGUAGES, AbstentionRules, refusal_answer, refusal_result
from raftkit.synth.answers import (
    AnswerGenerator,
    AnswerResult,
    MultiAnswerGenerator,
    MultiOracleAnswerGenerator,
    TeacherAnswerGenerator,
)
from raftkit.synth.context import Context, build_context
from raftkit.synth.critique import (
    QUESTION_REJECTION_REASONS,
    CritiqueRules,
    QuestionCritic,
    QuestionRejectionReason,
    Review,
    Reviews,
    filter_question,
)
from raftkit.synth.dedup import (
    DedupRules,
    Duplicate,
    QuestionDeduplicator,
    duplicate_chunk_groups,
    duplicate_chunk_links,
    question_key,
)
from raftkit.synth.distractors import (
    BM25Sampler,
    DistractorSampler,
    EmbeddingSampler,
    UniformSampler,
    oracle_kept,
    question_rng,
)
from raftkit.synth.multihop import (
    MULTI_HOP_TYPE,
    MultiHopQuestionWriter,
    multi_hop_pairs,
    multi_hop_selected,
)
from raftkit.synth.prompts import BEGIN_QUOTE, END_QUOTE, Prompts
from raftkit.synth.question_mix import (
    BUILTIN_TYPES,
    QuestionMix,
    QuestionType,
    TypedQuestionSynthesizer,
)
from raftkit.synth.questions import (
    QuestionSynthesizer,
    TeacherQuestionSynthesizer,
    question_id,
)
from raftkit.synth.verify import (
    NORMALISATIONS,
    REJECTION_REASONS,
    Normalisation,
    QuoteCheck,
    RejectionReason,
    Verification,
    VerifyRules,
    quote_in_text,
    verify_answer,
)

__all__ = [
    "BEGIN_QUOTE",
    "BUILTIN_TYPES",
    "END_QUOTE",
    "MULTI_HOP_TYPE",
    "NORMALISATIONS",
    "QUESTION_REJECTION_REASONS",
    "REFUSAL_LANGUAGES",
    "REJECTION_REASONS",
    "AbstentionRules",
    "AnswerGenerator",
    "AnswerResult",
    "BM25Sampler",
    "Context",
    "CritiqueRules",
    "DedupRules",
    "DistractorSampler",
    "Duplicate",
    "EmbeddingSampler",
    "MultiAnswerGenerator",
    "MultiHopQuestionWriter",
    "MultiOracleAnswerGenerator",
    "Normalisation",
    "Prompts",
    "QuestionCritic",
    "QuestionDeduplicator",
    "QuestionMix",
    "QuestionRejectionReason",
    "QuestionSynthesizer",
    "QuestionType",
    "QuoteCheck",
    "RejectionReason",
    "Review",
    "Reviews",
    "TeacherAnswerGenerator",
    "TeacherQuestionSynthesizer",
    "TypedQuestionSynthesizer",
    "UniformSampler",
    "Verification",
    "VerifyRules",
    "build_context",
    "duplicate_chunk_groups",
    "duplicate_chunk_links",
    "filter_question",
    "multi_hop_pairs",
    "multi_hop_selected",
    "oracle_kept",
    "question_id",
    "question_key",
    "question_rng",
    "quote_in_text",
    "refusal_answer",
    "refusal_result",
    "verify_answer",
]
