"""A chat row rendered with the student's own chat template, with the assistant-only loss mask.

The student learns only the assistant's answer (the chain of thought and the ``<ANSWER>:``
line) and the end-of-turn token that teaches it to stop — never the system prompt, the
documents or the question, and never a literal ``assistant:`` prefix (the template writes the
turn header, and the header is prompt, not answer).

Two ways to find the answer's tokens:

- **generation markers**: a template that wraps assistant turns in ``{% generation %}`` lets
  transformers return the mask itself (``return_assistant_tokens_mask``);
- **prompt prefix** (most templates): the conversation up to the answer is rendered with
  ``add_generation_prompt=True`` — exactly the prompt the model sees when it is served — and
  must be a prefix of the rendering with the answer; what follows it, up to and including the
  first special token after the answer text, is trained. A template for which that prefix
  property fails is refused with :class:`TemplateError`, never guessed around.

Token ids after the last trained token are dropped: they cannot change the loss.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from raftkit.errors import InputError

__all__ = [
    "IGNORE_INDEX",
    "MaskSource",
    "RenderedRow",
    "TemplateError",
    "chat_template_of",
    "decoded_spans",
    "has_generation_markers",
    "render_chat_row",
]

#: The label of a token that is not trained (what torch's cross-entropy ignores).
IGNORE_INDEX = -100

MaskSource = Literal["generation markers", "prompt prefix"]

_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")


class TemplateError(InputError):
    """The student's chat template cannot render a row, or its answer cannot be located."""


@dataclass(frozen=True)
class RenderedRow:
    """Token ids and labels of one row; ``labels[i]`` is ``input_ids[i]`` where trained, else
    :data:`IGNORE_INDEX` (the model's loss shifts them by one itself)."""

    input_ids: list[int]
    labels: list[int]
    spans: list[tuple[int, int]]
    """``[start, end)`` token ranges that are trained, one per assistant turn."""
    expected: list[str]
    """What each span must decode to: the assistant's text plus the end-of-turn token."""
    mask_source: MaskSource

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def n_trained(self) -> int:
        return sum(end - start for start, end in self.spans)


def has_generation_markers(template: str | None) -> bool:
    """Whether a chat template marks assistant turns with ``{% generation %}``."""
    return bool(template) and _GENERATION.search(template or "") is not None


def chat_template_of(tokenizer: Any) -> str:
    """The tokenizer's chat template; :class:`TemplateError` when it has none."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates: the default one is used
        template = template.get("default")
    if not isinstance(template, str) or not template.strip():
        raise TemplateError(
            "the student's tokenizer has no chat template; use an instruct (chat) model, or "
            "add a chat_template to its tokenizer_config.json"
        )
    return template


def render_chat_row(tokenizer: Any, messages: Sequence[Mapping[str, Any]]) -> RenderedRow:
    """Render ``messages`` (system/user/assistant, ending with the assistant's answer) with the
    tokenizer's chat template and mask everything but the assistant turns."""
    conversation = _checked(messages)
    template = chat_template_of(tokenizer)
    full = _apply(tokenizer, conversation, add_generation_prompt=False)
    expected = _expected_spans(tokenizer, conversation, full)
    if has_generation_markers(template):
        return _by_markers(tokenizer, conversation, expected)
    return _by_prompt_prefix(tokenizer, conversation, expected)


def decoded_spans(tokenizer: Any, row: RenderedRow) -> list[str]:
    """The text of each trained span, special tokens kept: what the audit compares with
    :attr:`RenderedRow.expected`."""
    return [
        str(tokenizer.decode(row.input_ids[start:end], skip_special_tokens=False))
        for start, end in row.spans
    ]


# ---------------------------------------------------------------------------- internals


def _checked(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    conversation: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise TemplateError(f"messages[{index}] needs a string role and string content")
        conversation.append({"role": role, "content": content})
    if not conversation or conversation[-1]["role"] != "assistant":
        raise TemplateError("a training row must end with the assistant's answer")
    if conversation[0]["role"] == "assistant" or all(
        m["role"] in ("assistant", "system") for m in conversation
    ):
        raise TemplateError("a training row needs a user message before the assistant's")
    return conversation


def _apply(tokenizer: Any, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
    try:
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except Exception as e:  # jinja raises whatever the template author chose
        raise TemplateError(f"the chat template cannot render this row: {e}") from e
    if not isinstance(text, str):
        raise TemplateError("the chat template did not render to text")
    return text


def _end_tokens(tokenizer: Any) -> list[str]:
    """Special token strings, the end-of-sequence token first."""
    tokens: list[str] = []
    eos = getattr(tokenizer, "eos_token", None)
    if isinstance(eos, str) and eos:
        tokens.append(eos)
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    for added in decoder.values():
        if getattr(added, "special", False) and str(added) not in tokens:
            tokens.append(str(added))
    for token in getattr(tokenizer, "all_special_tokens", []) or []:
        if token not in tokens:
            tokens.append(token)
    return [t for t in tokens if t]


def _end_of_turn(tokenizer: Any, rest: str) -> str:
    """The text after an answer up to and including its end-of-turn token."""
    found: tuple[int, str] | None = None
    for token in _end_tokens(tokenizer):
        at = rest.find(token)
        if at >= 0 and (found is None or at < found[0]):
            found = (at, token)
    if found is None:
        raise TemplateError(
            "the chat template writes no end-of-turn token after the assistant's answer, so "
            "the student would never learn to stop"
        )
    at, token = found
    if rest[:at].strip():
        raise TemplateError(
            f"the chat template writes {rest[:at].strip()[:40]!r} between the answer and its "
            "end-of-turn token"
        )
    return rest[: at + len(token)]


def _expected_spans(
    tokenizer: Any, conversation: list[dict[str, str]], full: str
) -> list[tuple[int, str]]:
    """``(character offset in full, answer + end-of-turn)`` of each assistant turn."""
    spans: list[tuple[int, str]] = []
    cursor = 0
    for message in conversation:
        if message["role"] != "assistant":
            continue
        at = full.find(message["content"], cursor)
        if at < 0:
            raise TemplateError(
                "the chat template does not write the assistant's answer verbatim, so its "
                "tokens cannot be found"
            )
        after = at + len(message["content"])
        text = message["content"] + _end_of_turn(tokenizer, full[after:])
        spans.append((at, text))
        cursor = at + len(text)
    return spans


def _ids(tokenizer: Any, text: str) -> list[int]:
    # the template already wrote every special token the model needs (BOS included)
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def _by_prompt_prefix(
    tokenizer: Any, conversation: list[dict[str, str]], expected: list[tuple[int, str]]
) -> RenderedRow:
    input_ids: list[int] = []
    labels: list[int] = []
    spans: list[tuple[int, int]] = []
    done = ""  # the rendered text consumed so far
    turns = [i for i, m in enumerate(conversation) if m["role"] == "assistant"]
    for index, (offset, answer) in zip(turns, expected, strict=True):
        prompt = _apply(tokenizer, conversation[:index], add_generation_prompt=True)
        if not prompt.startswith(done):
            raise TemplateError(
                "the chat template renders earlier turns differently once a later turn is "
                "added; the loss mask cannot be built from prompt prefixes"
            )
        full = _apply(tokenizer, conversation[: index + 1], add_generation_prompt=False)
        if not full.startswith(prompt) or offset < len(prompt):
            raise TemplateError(
                "the prompt rendered with add_generation_prompt=True is not a prefix of the "
                "conversation rendered with the answer, so the answer's tokens cannot be told "
                "apart from the prompt's; use a model whose template has {% generation %} "
                "markers or fix the template"
            )
        head = _ids(tokenizer, full[len(done) : offset])
        trained = _ids(tokenizer, answer)
        input_ids += head
        labels += [IGNORE_INDEX] * len(head)
        spans.append((len(input_ids), len(input_ids) + len(trained)))
        input_ids += trained
        labels += trained
        done = full[: offset + len(answer)]
    return RenderedRow(
        input_ids=input_ids,
        labels=labels,
        spans=spans,
        expected=[text for _, text in expected],
        mask_source="prompt prefix",
    )


def _by_markers(
    tokenizer: Any, conversation: list[dict[str, str]], expected: list[tuple[int, str]]
) -> RenderedRow:
    try:
        encoded = tokenizer.apply_chat_template(
            conversation, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
    except Exception as e:
        raise TemplateError(f"the chat template cannot render this row: {e}") from e
    ids = [int(i) for i in encoded["input_ids"]]
    mask = [int(m) for m in encoded["assistant_masks"]]
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for position, flag in enumerate([*mask, 0]):
        if flag and start is None:
            start = position
        elif not flag and start is not None:
            spans.append((start, position))
            start = None
    if len(spans) != len(expected):
        raise TemplateError(
            f"the template's generation markers cover {len(spans)} spans for "
            f"{len(expected)} assistant turns"
        )
    end = spans[-1][1]
    labels = [IGNORE_INDEX] * end
    for first, last in spans:
        labels[first:last] = ids[first:last]
    return RenderedRow(
        input_ids=ids[:end],
        labels=labels,
        spans=spans,
        expected=[text for _, text in expected],
        mask_source="generation markers",
    )
