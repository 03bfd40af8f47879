"""The assistant-only loss mask and the chat-template audit, with SmolLM2's real tokenizer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from raftkit.cli import main
from raftkit.dataset import ChatExporter, prepare_dataset, read_examples
from raftkit.students import (
    IGNORE_INDEX,
    NO_MARKERS_WARNING,
    TemplateError,
    audit_chat_jsonl,
    decoded_spans,
    load_tokenizer,
    render_chat_row,
    resolve_base,
)
from students_support import EXAMPLES, requires_student, smollm_gguf

pytestmark = [requires_student()]

SYSTEM = "Answer from the documents; quote them."
# SmolLM2's template with its assistant turns wrapped in {% generation %} markers
MARKED = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{{ '\n' }}{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return load_tokenizer(resolve_base(smollm_gguf()))  # type: ignore[arg-type]


@pytest.fixture
def template(tokenizer: Any) -> Iterator[Any]:
    """The tokenizer, its chat template restored after the test."""
    original = tokenizer.chat_template
    yield tokenizer
    tokenizer.chat_template = original


def _rows(system: str | None = SYSTEM) -> list[list[dict[str, str]]]:
    exporter = ChatExporter(system)
    return [exporter.messages(e) for e in read_examples(EXAMPLES)]


def test_loss_only_on_the_answer_and_end_of_turn(tokenizer: Any) -> None:
    for messages in _rows()[:6] + _rows()[-2:]:  # English and Chinese rows
        row = render_chat_row(tokenizer, messages)
        assert row.mask_source == "prompt prefix"
        ((start, end),) = row.spans
        assert all(label == IGNORE_INDEX for label in row.labels[:start])
        assert row.labels[start:end] == row.input_ids[start:end]
        assert end == len(row.input_ids)  # nothing after the end-of-turn token
        answer = messages[-1]["content"]
        assert decoded_spans(tokenizer, row) == [answer + "<|im_end|>"]
        prompt = tokenizer.decode(row.input_ids[:start])
        assert SYSTEM in prompt
        assert messages[1]["content"] in prompt
        assert prompt.endswith("<|im_start|>assistant\n")
        # the trained prompt is the served prompt, token for token
        served = tokenizer.apply_chat_template(
            messages[:-1], tokenize=False, add_generation_prompt=True
        )
        assert row.input_ids[:start] == tokenizer(served, add_special_tokens=False)["input_ids"]


def test_without_a_system_prompt_the_template_default_is_prompt(tokenizer: Any) -> None:
    messages = _rows(system=None)[0]
    row = render_chat_row(tokenizer, messages)
    prompt = tokenizer.decode(row.input_ids[: row.spans[0][0]])
    assert "You are a helpful AI assistant named SmolLM" in prompt
    assert decoded_spans(tokenizer, row) == [messages[-1]["content"] + "<|im_end|>"]


def test_generation_markers_give_the_same_mask(template: Any) -> None:
    messages = _rows()[3]
    by_prefix = render_chat_row(template, messages)
    template.chat_template = MARKED
    by_markers = render_chat_row(template, messages)
    assert by_markers.mask_source == "generation markers"
    assert by_markers.input_ids == by_prefix.input_ids
    assert by_markers.labels == by_prefix.labels


def test_every_assistant_turn_is_trained(tokenizer: Any) -> None:
    messages = [
        {"role": "user", "content": "Two plus two?"},
        {"role": "assistant", "content": "<ANSWER>: 4"},
        {"role": "user", "content": "And three plus three?"},
        {"role": "assistant", "content": "<ANSWER>: 6"},
    ]
    row = render_chat_row(tokenizer, messages)
    assert decoded_spans(tokenizer, row) == ["<ANSWER>: 4<|im_end|>", "<ANSWER>: 6<|im_end|>"]


@pytest.mark.parametrize(
    ("chat_template", "message"),
    [
        (
            # the generation prompt opens a turn the full rendering writes otherwise
            "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + "
            "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|im_start|>bot\n' }}{% endif %}",
            "not a prefix",
        ),
        (
            "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}",
            "no end-of-turn token",
        ),
        ("{{ raise_exception('roles must alternate') }}", "cannot render this row"),
        ("", "has no chat template"),
    ],
)
def test_templates_that_cannot_be_masked_are_refused(
    template: Any, chat_template: str, message: str
) -> None:
    template.chat_template = chat_template or None
    with pytest.raises(TemplateError, match=message):
        render_chat_row(template, _rows()[0])


def test_rows_that_are_not_conversations_are_refused(tokenizer: Any) -> None:
    with pytest.raises(TemplateError, match="end with the assistant"):
        render_chat_row(tokenizer, [{"role": "user", "content": "hi"}])
    with pytest.raises(TemplateError, match="user message before"):
        render_chat_row(tokenizer, [{"role": "assistant", "content": "hi"}])


# ---------------------------------------------------------------------------- the audit


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit") / "dataset"
    anyio.run(lambda: prepare_dataset(EXAMPLES, out, system_prompt=SYSTEM))
    return out / "chat"


def test_audit_of_an_export_passes_and_explains_the_mask(tokenizer: Any, exported: Path) -> None:
    audit = audit_chat_jsonl(
        exported / "train.jsonl",
        tokenizer,
        base="smollm",
        context_window=8192,
        max_seq_length=1024,
    )
    assert audit.ok, audit.render()
    assert audit.rows == sum(1 for _ in (exported / "train.jsonl").open())
    assert audit.mask_source == "prompt prefix"
    assert audit.warnings == [NO_MARKERS_WARNING]
    assert audit.tokens is not None
    assert 100 < audit.tokens.min <= audit.tokens.max < 1024
    assert 0 < audit.tokens.trained_total < audit.tokens.total
    assert "loss mask from: prompt prefix" in audit.render()


def test_audit_reports_rows_that_would_be_truncated(tokenizer: Any, exported: Path) -> None:
    audit = audit_chat_jsonl(
        exported / "train.jsonl",
        tokenizer,
        base="smollm",
        context_window=8192,
        max_seq_length=200,
    )
    assert not audit.ok
    assert audit.tokens is not None
    long = [e for e in audit.errors if e.kind == "too_long"]
    assert long
    assert all(e.kind == "too_long" for e in audit.errors)
    assert len(long) == sum(1 for _ in _lengths_over(tokenizer, exported / "train.jsonl", 200))
    first = long[0].message
    assert "more than max_seq_length 200" in first
    assert "fewer distractors" in first
    assert "smaller chunks" in first


def _lengths_over(tokenizer: Any, path: Path, limit: int) -> Iterator[int]:
    for line in path.read_text(encoding="utf-8").splitlines():
        row = render_chat_row(tokenizer, json.loads(line)["messages"])
        if row.n_tokens > limit:
            yield row.n_tokens


def test_audit_names_bad_lines(tokenizer: Any, tmp_path: Path) -> None:
    good = json.dumps({"messages": _rows()[0]})
    path = tmp_path / "train.jsonl"
    path.write_text(f'{good}\nnot json\n{{"rows": 1}}\n{good}\n', encoding="utf-8")
    audit = audit_chat_jsonl(path, tokenizer, base="smollm")
    assert [(e.line, e.kind) for e in audit.errors] == [(2, "invalid_row"), (3, "invalid_row")]
    assert audit.rows == 4


def test_audit_with_generation_markers_has_no_warning(template: Any, exported: Path) -> None:
    template.chat_template = MARKED
    audit = audit_chat_jsonl(exported / "validation.jsonl", template, base="smollm")
    assert audit.ok
    assert audit.mask_source == "generation markers"
    assert not audit.warnings


def test_validate_student_command(exported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = str(exported / "train.jsonl")
    code = main(["validate", train, "--student", str(smollm_gguf()), "--max-seq-length", "200"])
    out = capsys.readouterr().out
    assert code == 1
    assert "would be truncated" in out
    assert "context window 8,192" in out
    assert main(["validate", train, "--student", str(exported / "missing")]) == 2
    assert "is neither a file" in capsys.readouterr().err
