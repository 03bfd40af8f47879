"""Every prompt raftkit sends to a teacher model, in one place.

:class:`Prompts` holds the templates; override any field to change one prompt and keep the rest::

    prompts = Prompts(question_system="You write exam questions for radiologists. ...")

Templates are :meth:`str.format` strings. The placeholders each one must contain are checked when
a :class:`Prompts` is built; a literal brace in a template is written ``{{`` or ``}}``. The text
put into a placeholder (a chunk, a question) is never itself formatted, so braces in documents
are safe.

The prompts are language-neutral: they ask for questions and answers in the language of the
document, so a Chinese chunk gets Chinese questions and a Chinese answer.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, model_validator

from raftkit.llm import ChatMessage, reply_excerpt

__all__ = [
    "BEGIN_QUOTE",
    "END_QUOTE",
    "Prompts",
    "answer_messages",
    "answer_retry_messages",
    "answers_messages",
    "chunk_cache_key",
    "flawed_answer_messages",
    "format_documents",
    "question_messages",
    "question_retry_messages",
]

BEGIN_QUOTE = "##begin_quote##"
END_QUOTE = "##end_quote##"

_QUESTION_SYSTEM = (
    "You are a synthetic question generator. Given a chunk of a document, write {n} different "
    "questions that a user could ask and that are answered by information in the chunk. Each "
    "question must be answerable from the chunk alone, in a few words or a short sentence, and "
    "must make sense without seeing the chunk (name the subject instead of saying 'the text' or "
    "'this passage'). Write the questions in the same language as the chunk. Return them as a "
    'JSON object of the form {{"questions": ["...", "..."]}} with exactly {n} questions.'
)
_QUESTION_USER = "Chunk:\n{chunk}"
_QUESTION_RETRY = (
    "These questions were already written for this chunk:\n{existing}\n"
    "Write {n} more questions about the chunk, each different from all of the above, in the "
    "same language as the chunk. Return exactly {n} questions in the same JSON form."
)
_ANSWER_SYSTEM = (
    "You are a careful question answerer. You are given documents and a question, and you "
    "answer the question using the information in the documents. Follow these rules:\n"
    "- First reason step by step about how to answer the question.\n"
    "- When your reasoning uses a sentence or phrase from the documents, copy it exactly, "
    "character for character, between {begin_quote} and {end_quote}. Text outside "
    "{begin_quote} and {end_quote} is not a quotation. Quote at least once.\n"
    "- Write the reasoning and the answer in the same language as the question.\n"
    "- End your response with the final answer on its own line, in the form "
    "<ANSWER>: $answer. The answer must be short.\n"
    'You MUST begin your final answer with the tag "<ANSWER>:".'
)
_ANSWER_USER = "{documents}\nQuestion: {question}"
_ANSWERS_INSTRUCTION = (
    "You are given {n} questions about the same documents. Answer each one on its own, "
    "following every rule above, as if it were the only question: its own reasoning, its "
    "own quotes and its own final line <ANSWER>: $answer. Return a JSON object "
    '{{"answers": ["...", "..."]}} with exactly {n} answers, the i-th answering question i.'
)
_ANSWERS_USER = "{documents}\n{questions}"
_ANSWERS_QUESTION = "Question {number}: {question}"
_ANSWER_RETRY = (
    "Your answer cannot be used: {problem}\n"
    "Answer the question again, following every rule: quote the documents exactly between "
    "{begin_quote} and {end_quote}, and end with a line <ANSWER>: $answer."
)
_DOCUMENT = "<DOCUMENT>{text}</DOCUMENT>"
# The flawed answers of synthetic preference pairs (raftkit.preference_pairs): not Prompts
# fields, so that a run's recorded prompts stay as they were.
_UNSUPPORTED_ANSWER = (
    "Question: {question}\n\n"
    "Answer the question from memory: no documents are given. Reason step by step, support "
    "the reasoning with a quotation between {begin_quote} and {end_quote} written as you "
    "remember the source, and end with the final answer on its own line, in the form "
    "<ANSWER>: $answer."
)
# Question quality (raftkit.synth.critique, question_mix, multihop): kept short, as the judge
# call is paid once per chunk on top of a run.
_CRITIQUE_SYSTEM = (
    "Rate each numbered question 1-5 for: self_contained (clear without the document; no "
    "'the text'), answerable (by the excerpts), specific (not vague, trivial or yes/no about "
    "the title), language (5 if the excerpts' language, else 1). Reply "
    '{{"ratings": ["5535", ...], "notes": "N: problem; ..."}}, one string per question; '
    "notes for ratings under 3."
)
_CRITIQUE_USER = "Document excerpts:\n{documents}\nQuestions:\n{questions}"
_TYPED_QUESTION_SYSTEM = (
    "You are a synthetic question generator. Given a chunk of a document, write {n} different "
    "questions that a user could ask and that are answered by information in the chunk, of "
    "these types:\n{types}\nEach question must be answerable from the chunk alone and must "
    "make sense without seeing the chunk (name the subject instead of saying 'the text' or "
    "'this passage'). Write the questions in the same language as the chunk. Return them as a "
    'JSON object of the form {{"questions": [{{"type": "...", "question": "..."}}, ...]}} with '
    "exactly {n} questions, each with its type."
)
_TYPED_QUESTION_RETRY = (
    "These questions were already written for this chunk:\n{existing}\n"
    "Write {n} more questions about the chunk, each different from all of the above, of these "
    "types:\n{types}\nReturn exactly {n} questions in the same JSON form."
)
_PERSONA = "Write every question as {persona} would ask it."
_MULTI_HOP_SYSTEM = (
    "You write one question that can only be answered by combining information from BOTH "
    "documents below: neither document alone answers it. The question must make sense without "
    "seeing the documents (name the subjects), be answerable in a few words or a short "
    "sentence, and be written in the language of the documents. Return it as a JSON object of "
    'the form {{"questions": ["..."]}}.'
)
_MULTI_HOP_USER = "{documents}"
_MULTI_HOP_ANSWER = (
    "The question needs every document above: quote each of them, copying exactly the "
    "sentence each one contributes."
)

_REQUIRED: dict[str, frozenset[str]] = {
    "question_system": frozenset({"n"}),
    "question_user": frozenset({"chunk"}),
    "question_retry": frozenset({"n", "existing"}),
    "answer_system": frozenset(),
    "answer_user": frozenset({"documents", "question"}),
    "answer_retry": frozenset({"problem"}),
    "answers_instruction": frozenset({"n"}),
    "answers_user": frozenset({"documents", "questions"}),
    "answers_question": frozenset({"number", "question"}),
    "document": frozenset({"text"}),
    "critique_system": frozenset(),
    "critique_user": frozenset({"documents", "questions"}),
    "typed_question_system": frozenset({"n", "types"}),
    "typed_question_retry": frozenset({"n", "existing", "types"}),
    "persona": frozenset({"persona"}),
    "multi_hop_system": frozenset(),
    "multi_hop_user": frozenset({"documents"}),
    "multi_hop_answer": frozenset(),
}
_ALLOWED: dict[str, frozenset[str]] = {
    "question_system": frozenset({"n"}),
    "question_user": frozenset({"chunk", "n"}),
    "question_retry": frozenset({"n", "existing"}),
    "answer_system": frozenset({"begin_quote", "end_quote"}),
    "answer_user": frozenset({"documents", "question", "begin_quote", "end_quote"}),
    "answer_retry": frozenset({"problem", "begin_quote", "end_quote"}),
    "answers_instruction": frozenset({"n", "begin_quote", "end_quote"}),
    "answers_user": frozenset({"documents", "questions"}),
    "answers_question": frozenset({"number", "question"}),
    "document": frozenset({"text", "title"}),
    "critique_system": frozenset(),
    "critique_user": frozenset({"documents", "questions"}),
    "typed_question_system": frozenset({"n", "types"}),
    "typed_question_retry": frozenset({"n", "existing", "types"}),
    "persona": frozenset({"persona"}),
    "multi_hop_system": frozenset(),
    "multi_hop_user": frozenset({"documents"}),
    "multi_hop_answer": frozenset(),
}


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


class Prompts(BaseModel):
    """The teacher prompts. Each field is a :meth:`str.format` template.

    - ``question_system`` (``{n}``) and ``question_user`` (``{chunk}``): ask for ``n`` questions
      about one chunk, as JSON ``{"questions": [...]}``.
    - ``question_retry`` (``{n}``, ``{existing}``): ask for ``n`` more, unlike ``existing``.
    - ``answer_system`` (the rules, optionally ``{begin_quote}``/``{end_quote}``) and
      ``answer_user`` (``{documents}``, ``{question}``): the RAFT chain-of-thought answer
      prompt. What a chunk's questions share comes first (the rules, then the oracle) and the
      question last, so that providers' prompt caches can reuse the shared prefix; keep that
      order in your own templates.
    - ``answer_retry`` (``{problem}``): feedback sent after an answer failed verification.
    - ``answers_instruction`` (``{n}``), ``answers_user`` (``{documents}``, ``{questions}``)
      and ``answers_question`` (``{number}``, ``{question}``): one call answering ``n``
      questions of a chunk (``answers_per_call``); the instruction follows ``answer_system``.
    - ``document`` (``{text}``, optionally ``{title}``): how one document is wrapped.
    - ``critique_system`` and ``critique_user`` (``{documents}``, ``{questions}``): the judge
      that rates a chunk's questions (:mod:`~raftkit.synth.critique`).
    - ``typed_question_system`` (``{n}``, ``{types}``), ``typed_question_retry`` (``{n}``,
      ``{existing}``, ``{types}``) and ``persona`` (``{persona}``): questions of given types
      (:mod:`~raftkit.synth.question_mix`).
    - ``multi_hop_system``, ``multi_hop_user`` (``{documents}``) and ``multi_hop_answer`` (added
      to the answer prompt): a question that needs two chunks (:mod:`~raftkit.synth.multihop`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    question_system: str = _QUESTION_SYSTEM
    question_user: str = _QUESTION_USER
    question_retry: str = _QUESTION_RETRY
    answer_system: str = _ANSWER_SYSTEM
    answer_user: str = _ANSWER_USER
    answer_retry: str = _ANSWER_RETRY
    answers_instruction: str = _ANSWERS_INSTRUCTION
    answers_user: str = _ANSWERS_USER
    answers_question: str = _ANSWERS_QUESTION
    document: str = _DOCUMENT
    critique_system: str = _CRITIQUE_SYSTEM
    critique_user: str = _CRITIQUE_USER
    typed_question_system: str = _TYPED_QUESTION_SYSTEM
    typed_question_retry: str = _TYPED_QUESTION_RETRY
    persona: str = _PERSONA
    multi_hop_system: str = _MULTI_HOP_SYSTEM
    multi_hop_user: str = _MULTI_HOP_USER
    multi_hop_answer: str = _MULTI_HOP_ANSWER

    @model_validator(mode="after")
    def _check_placeholders(self) -> Prompts:
        for name, required in _REQUIRED.items():
            try:
                found = _fields(getattr(self, name))
            except ValueError as e:
                raise ValueError(f"prompt {name!r} is not a valid format string: {e}") from e
            missing = required - found
            unknown = found - _ALLOWED[name]
            if missing:
                raise ValueError(f"prompt {name!r} lacks placeholder(s) {sorted(missing)}")
            if unknown:
                allowed = sorted(_ALLOWED[name])
                raise ValueError(
                    f"prompt {name!r} has unknown placeholder(s) {sorted(unknown)}; "
                    f"allowed: {allowed}"
                )
        return self


_MARKERS = {"begin_quote": BEGIN_QUOTE, "end_quote": END_QUOTE}


def chunk_cache_key(chunk_id: str) -> str:
    """The ``prompt_cache_key`` of a chunk's calls: they share its text as a prompt prefix,
    so a provider that routes by this key serves them from one cache."""
    return "raftkit-" + hashlib.sha256(chunk_id.encode("utf-8")).hexdigest()[:24]


def format_documents(texts: Sequence[str], prompts: Prompts, titles: Sequence[str] = ()) -> str:
    """The documents, each wrapped by ``prompts.document``, one per line."""
    return "\n".join(
        prompts.document.format(text=text, title=titles[i] if i < len(titles) else "")
        for i, text in enumerate(texts)
    )


def question_messages(chunk_text: str, n: int, prompts: Prompts) -> list[ChatMessage]:
    """Messages asking for ``n`` questions about ``chunk_text``."""
    return [
        {"role": "system", "content": prompts.question_system.format(n=n)},
        {"role": "user", "content": prompts.question_user.format(chunk=chunk_text, n=n)},
    ]


def question_retry_messages(
    chunk_text: str, n: int, existing: Sequence[str], prompts: Prompts
) -> list[ChatMessage]:
    """Messages asking for ``n`` more questions, different from ``existing``."""
    listed = "\n".join(f"- {q}" for q in existing) if existing else "(none)"
    return [
        *question_messages(chunk_text, n, prompts),
        {"role": "user", "content": prompts.question_retry.format(n=n, existing=listed)},
    ]


def answer_messages(
    question: str, documents: Sequence[str], prompts: Prompts, titles: Sequence[str] = ()
) -> list[ChatMessage]:
    """The RAFT chain-of-thought answer request for ``question`` over ``documents``."""
    return [
        {"role": "system", "content": prompts.answer_system.format(**_MARKERS)},
        {
            "role": "user",
            "content": prompts.answer_user.format(
                documents=format_documents(documents, prompts, titles),
                question=question,
                **_MARKERS,
            ),
        },
    ]


def answers_messages(
    questions: Sequence[str], documents: Sequence[str], prompts: Prompts, titles: Sequence[str] = ()
) -> list[ChatMessage]:
    """One request for answers to several ``questions`` over the same ``documents``."""
    system = prompts.answer_system.format(**_MARKERS)
    instruction = prompts.answers_instruction.format(n=len(questions), **_MARKERS)
    listed = "\n".join(
        prompts.answers_question.format(number=number, question=question)
        for number, question in enumerate(questions, start=1)
    )
    user = prompts.answers_user.format(
        documents=format_documents(documents, prompts, titles), questions=listed
    )
    return [
        {"role": "system", "content": f"{system}\n\n{instruction}"},
        {"role": "user", "content": user},
    ]


def answer_retry_messages(
    messages: Sequence[ChatMessage], previous_answer: str, problem: str, prompts: Prompts
) -> list[ChatMessage]:
    """``messages`` followed by (an excerpt of) the rejected answer and feedback naming its
    ``problem``: a runaway reply is never sent back whole."""
    return [
        *messages,
        {"role": "assistant", "content": reply_excerpt(previous_answer)},
        {"role": "user", "content": prompts.answer_retry.format(problem=problem, **_MARKERS)},
    ]


def flawed_answer_messages(
    question: str,
    kind: str,
    prompts: Prompts,
    documents: Sequence[str] = (),
    titles: Sequence[str] = (),
) -> list[ChatMessage]:
    """A request for a deliberately flawed answer, the rejected side of a synthetic preference
    pair: ``wrong_document`` asks the usual RAFT question over ``documents`` that are not the
    oracle (the answer then rests on a distractor); ``unsupported_quote`` asks for an answer
    from memory with a quotation (which cannot be verbatim in the oracle)."""
    if kind == "wrong_document":
        if not documents:
            raise ValueError("a wrong_document request needs the documents to answer from")
        return answer_messages(question, documents, prompts, titles)
    if kind == "unsupported_quote":
        return [
            {"role": "system", "content": prompts.answer_system.format(**_MARKERS)},
            {"role": "user", "content": _UNSUPPORTED_ANSWER.format(question=question, **_MARKERS)},
        ]
    raise ValueError(f"unknown flaw {kind!r}: wrong_document or unsupported_quote")
