"""Floor 3: from chunks to verified RAFT training material.

- :mod:`~raftkit.synth.prompts` — every teacher prompt; :class:`Prompts` overrides field by field.
- :mod:`~raftkit.synth.questions` — :class:`QuestionSynthesizer` and the teacher-backed default.
- :mod:`~raftkit.synth.distractors` — :class:`DistractorSampler`, three samplers and
  :func:`build_context` (oracle kept with probability ``p`` beside ``k`` distractors).
- :mod:`~raftkit.synth.answers` — :class:`AnswerGenerator` and the teacher-backed default that
  re-asks until the answer verifies (:class:`MultiAnswerGenerator`: several answers a call).
- :mod:`~raftkit.synth.verify` — :func:`verify_answer`, a pure check of quotes and answer line;
  :class:`VerifyRules` holds its thresholds.
"""

from raftkit.synth.answers import (
    AnswerGenerator,
    AnswerResult,
    MultiAnswerGenerator,
    TeacherAnswerGenerator,
)
from raftkit.synth.distractors import (
    BM25Sampler,
    Context,
    DistractorSampler,
    EmbeddingSampler,
    UniformSampler,
    build_context,
    question_rng,
)
from raftkit.synth.prompts import BEGIN_QUOTE, END_QUOTE, Prompts
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
    "END_QUOTE",
    "NORMALISATIONS",
    "REJECTION_REASONS",
    "AnswerGenerator",
    "AnswerResult",
    "BM25Sampler",
    "Context",
    "DistractorSampler",
    "EmbeddingSampler",
    "MultiAnswerGenerator",
    "Normalisation",
    "Prompts",
    "QuestionSynthesizer",
    "QuoteCheck",
    "RejectionReason",
    "TeacherAnswerGenerator",
    "TeacherQuestionSynthesizer",
    "UniformSampler",
    "Verification",
    "VerifyRules",
    "build_context",
    "question_id",
    "question_rng",
    "quote_in_text",
    "verify_answer",
]
