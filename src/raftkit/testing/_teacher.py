"""The deterministic "teacher" model: answers derived from the prompt alone.

Three kinds of answers:

- structured output (``response_format`` json_schema, or json_object with a schema in the
  prompt): an instance valid under the schema, its strings made from the prompt's text;
- a RAFT chain-of-thought answer: a short reasoning that quotes one sentence of the documents
  verbatim between ``##begin_quote##`` and ``##end_quote##``, then ``<ANSWER>: ...``;
- for a message with images: a Markdown page (a heading and a small table).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from raftkit.testing._question_quality import (
    combined_question,
    rating_answer,
    requested_types,
)
from raftkit.testing._schema_fill import QuestionFlaws, fill_schema, short_answer
from raftkit.testing._text import is_cjk, split_sentences, stable_hash, word_set

__all__ = [
    "Passage",
    "Teaching",
    "documents_in",
    "find_schema",
    "message_text",
    "pick_passage",
    "raft_answer",
    "structured_answer",
    "vision_answer",
]

# Wikipedia's citation markers: part of a quote, never of an answer ("... fins.[1]" → no "1").
_CITATION = re.compile(r"\[(?:\d{1,4}|[a-z])\]")
_DOCUMENT = re.compile(r"<DOCUMENT>(.*?)</DOCUMENT>", re.DOTALL | re.IGNORECASE)
_SCHEMA_KEYS = ("properties", "$schema", "items", "$defs")
# raftkit's multi-hop answer prompt: the answer must quote every document it was given.
_EVERY_DOCUMENT = re.compile(r"quote each of them", re.IGNORECASE)


@dataclass(frozen=True)
class Teaching:
    """What the teacher is asked to do wrong this time."""

    invalid_json: bool = False
    missing_answer: bool = False
    invented_quote: bool = False


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message, whether ``content`` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _image_urls(messages: Sequence[dict[str, Any]]) -> list[str]:
    urls: list[str] = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else image
                urls.append(str(url))
    return urls


def documents_in(messages: Sequence[dict[str, Any]]) -> list[str]:
    """The texts inside ``<DOCUMENT>`` tags in any message."""
    found: list[str] = []
    for message in messages:
        found.extend(match.strip() for match in _DOCUMENT.findall(message_text(message)))
    return [doc for doc in found if doc]


def _user_text(messages: Sequence[dict[str, Any]]) -> str:
    texts = [message_text(m) for m in messages if m.get("role") == "user"]
    return "\n".join(texts) if texts else "\n".join(message_text(m) for m in messages)


def find_schema(text: str) -> tuple[dict[str, Any], tuple[int, int]] | None:
    """The first JSON object in ``text`` that looks like a JSON schema, and where it lies."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, end = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict) and (
            any(key in value for key in _SCHEMA_KEYS) or value.get("type") == "object"
        ):
            return value, (match.start(), end)
    return None


def structured_answer(
    messages: Sequence[dict[str, Any]],
    schema: dict[str, Any] | None,
    *,
    variation: int,
    teaching: Teaching,
    flaws: QuestionFlaws | None = None,
) -> str:
    """A JSON text valid under ``schema`` (or under the schema written in the prompt)."""
    documents = documents_in(messages)
    source = "\n".join(documents) if documents else _user_text(messages)
    if schema is None:
        found = find_schema(source) or find_schema("\n".join(message_text(m) for m in messages))
        if found is not None:
            schema, (start, end) = found
            if not documents:
                # the schema's own text is no source for answers
                source = source[:start] + source[end:]
    special = rating_answer(messages, schema, documents) or combined_question(
        messages, schema, documents
    )
    if special is not None:
        instance: Any = special
    elif schema is None:
        sentences = split_sentences(source) or [source]
        sentence = sentences[variation % len(sentences)]
        instance = {"answer": short_answer(sentence), "evidence": sentence}
    else:
        instance = fill_schema(
            schema, source, seed=variation, flaws=flaws, types=requested_types(messages)
        )
    rendered = json.dumps(instance, ensure_ascii=False)
    if teaching.invalid_json:
        # cut before the closing bracket so no JSON parser accepts it
        return rendered[: max(1, len(rendered) // 2)]
    return rendered


def _question(messages: Sequence[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _DOCUMENT.sub(" ", message_text(message)).strip()
    return ""


def _cjk(text: str) -> bool:
    letters = [c for c in text if not c.isspace()]
    return bool(letters) and sum(map(is_cjk, letters)) / len(letters) > 0.3


@dataclass(frozen=True)
class Passage:
    """What an answer rests on: the question, the documents and the sentence picked."""

    question: str
    documents: list[str]
    document: int
    """Index of the document the answer reads."""
    sentence: str
    """The picked sentence, verbatim."""
    evidence: int
    """Content words the question shares with the picked document."""
    chinese: bool


def pick_passage(
    messages: Sequence[dict[str, Any]], *, variation: int, explore: bool, document_rank: int = 0
) -> Passage:
    """The sentence a RAFT answer quotes: from the document that overlaps the question most
    (or the ``document_rank``-th best one: a model that read a distractor), the sentence that
    overlaps it most (with ``explore``, one of the best three)."""
    question = _question(messages)
    documents = documents_in(messages) or [question or _user_text(messages)]
    asked = word_set(question)
    shared = [len(asked & word_set(document)) for document in documents]
    ranked_documents = sorted(range(len(documents)), key=lambda i: (-shared[i], i))
    chosen = ranked_documents[min(document_rank, len(ranked_documents) - 1)]
    sentences = [s for s in split_sentences(documents[chosen]) if len(s) > 1]
    # raftkit's verifier wants substance: prefer sentences of 3 words, 12 letters or 6 CJK ones
    sentences = [s for s in sentences if _substantial(s)] or sentences
    if not sentences:
        sentences = [documents[chosen].strip() or "(empty)"]
    ranked = sorted(
        range(len(sentences)),
        key=lambda i: (-len(asked & word_set(sentences[i])), i),
    )
    pick = ranked[variation % min(3, len(ranked))] if explore else ranked[0]
    quote = sentences[pick]
    return Passage(
        question=question,
        documents=documents,
        document=chosen,
        sentence=quote,
        evidence=shared[chosen],
        chinese=_cjk(question + quote),
    )


def raft_answer(
    messages: Sequence[dict[str, Any]],
    *,
    variation: int,
    explore: bool,
    teaching: Teaching,
    document_rank: int = 0,
    passage: Passage | None = None,
) -> str:
    """A RAFT chain-of-thought answer quoting a sentence of the best-matching document (or of
    ``passage``, when it was already picked); asked to quote each document, a sentence of each
    of the two best-matching ones."""
    every = any(_EVERY_DOCUMENT.search(message_text(m)) for m in messages)
    if every and len(documents_in(messages)) >= 2:
        return _two_document_answer(messages, variation=variation, teaching=teaching)
    if passage is None:
        passage = pick_passage(
            messages, variation=variation, explore=explore, document_rank=document_rank
        )
    quote = passage.sentence
    chinese = passage.chinese
    if teaching.invented_quote:
        quote = _invent(quote, passage.documents, chinese=chinese)
    answer = short_answer(_CITATION.sub("", passage.sentence), passage.question)
    answer = _whole_numbers(answer, passage.sentence)
    if chinese:
        reasoning = (
            "为了回答这个问题，我在上下文中找到了相关的句子："
            f"##begin_quote##{quote}##end_quote##。这句话直接给出了答案。"
        )
    else:
        reasoning = (
            "To answer the question, I look for the passage in the context that addresses it. "
            f"The relevant sentence is ##begin_quote##{quote}##end_quote## "
            "It states the answer directly."
        )
    if teaching.missing_answer:
        return reasoning
    return f"{reasoning}\n<ANSWER>: {answer}"


def _two_document_answer(
    messages: Sequence[dict[str, Any]], *, variation: int, teaching: Teaching
) -> str:
    passages = [
        pick_passage(messages, variation=variation, explore=False, document_rank=rank)
        for rank in (0, 1)
    ]
    quotes = [p.sentence for p in passages]
    chinese = passages[0].chinese
    if teaching.invented_quote:
        quotes[0] = _invent(quotes[0], passages[0].documents, chinese=chinese)
    answers = [
        _whole_numbers(short_answer(_CITATION.sub("", p.sentence), p.question), p.sentence)
        for p in passages
    ]
    if chinese:
        reasoning = (
            f"第一篇文档说：##begin_quote##{quotes[0]}##end_quote##。"
            f"另一篇文档说：##begin_quote##{quotes[1]}##end_quote##。两者合起来回答了这个问题。"
        )
        final = "；".join(answers)
    else:
        reasoning = (
            f"One document says ##begin_quote##{quotes[0]}##end_quote## and another says "
            f"##begin_quote##{quotes[1]}##end_quote## Together they answer the question."
        )
        final = "; ".join(answers)
    if teaching.missing_answer:
        return reasoning
    return f"{reasoning}\n<ANSWER>: {final}"


def _substantial(sentence: str) -> bool:
    letters = sum(c.isalnum() for c in sentence)
    cjk = sum(map(is_cjk, sentence))
    return len(sentence.split()) >= 3 or letters - cjk >= 12 or cjk >= 6


def _whole_numbers(answer: str, sentence: str) -> str:
    """``answer`` without number pieces the sentence does not state (``14`` of ``14.5``)."""
    kept = [
        word
        for word in answer.split()
        if not word.isdigit() or re.search(rf"(?<![\d.,]){word}(?![.,]?\d)", sentence)
    ]
    return " ".join(kept) or answer


def _invent(quote: str, documents: Sequence[str], *, chinese: bool) -> str:
    invented = f"据说{quote}而且众所周知" if chinese else f"It is widely claimed that {quote}"
    while any(invented in document for document in documents):
        invented += " Indeed." if not chinese else "确实。"
    return invented


def vision_answer(messages: Sequence[dict[str, Any]], *, variation: int) -> str | None:
    """A Markdown transcription of the images in ``messages``, or ``None`` without images."""
    urls = _image_urls(messages)
    if not urls:
        return None
    lines = ["# Transcribed page", ""]
    prompt = _user_text(messages).strip()
    if prompt:
        lines += [f"Requested: {prompt.splitlines()[0][:80]}", ""]
    lines += ["| image | value |", "| --- | --- |"]
    for index, url in enumerate(urls, start=1):
        lines.append(f"| {index} | {stable_hash(url, variation) % 100_000} |")
    return "\n".join(lines)
