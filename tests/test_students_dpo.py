"""Local DPO on the real SmolLM2-135M: pairs rendered with its chat template, the batch's
response-only mask, a few steps that raise the reward margin, a reference that stays where it
was while the policy moves, and one-line errors for files without pairs. Rows are tens of
tokens; the model is loaded once per module."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from raftkit.errors import DatasetError
from raftkit.students import IGNORE_INDEX, LocalTrainingConfig
from raftkit.students.jobdir import EventWriter, JobDir, LocalJobStatus
from raftkit.students.pairs import RenderedPair, load_preference_pairs, render_pair
from students_support import Trained, requires_student, smollm_gguf

pytestmark = [requires_student()]

SYSTEM = "Answer from the documents."
ROWS: list[dict[str, Any]] = [
    {
        "prompt": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "<DOCUMENT>The sky is blue.</DOCUMENT>\nSky colour?"},
        ],
        "chosen": [{"role": "assistant", "content": "It says blue.\n<ANSWER>: blue"}],
        "rejected": [{"role": "assistant", "content": "Maybe green.\n<ANSWER>: green"}],
    },
    {
        "input": {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": "<DOCUMENT>Bats fly at night.</DOCUMENT>\nWhen?"},
            ]
        },
        "preferred_output": [{"role": "assistant", "content": "At night.\n<ANSWER>: night"}],
        "non_preferred_output": [{"role": "assistant", "content": "At noon.\n<ANSWER>: noon"}],
    },
]


@dataclass
class Student:
    model: Any
    tokenizer: Any


@pytest.fixture(scope="module")
def student(trained: Trained) -> Student:
    """The base in float32, read from the session's trained run's dequantized copy (loading
    the GGUF itself takes a minute on a busy CPU)."""
    import torch

    from raftkit.students import load_causal_lm, resolve_base

    base = resolve_base(str(smollm_gguf()))
    model, tokenizer = load_causal_lm(base, dtype=torch.float32, cache_dir=trained.out / "bases")
    return Student(model, tokenizer)


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_both_formats_render_one_prompt_and_train_only_the_answers(student: Student) -> None:
    from raftkit.students.dpo import pair_batch

    tokenizer = student.tokenizer
    pairs = [render_pair(tokenizer, row) for row in ROWS]
    for pair, record in zip(pairs, ROWS, strict=True):
        chosen, rejected = pair.chosen, pair.rejected
        start_c, start_r = chosen.spans[0][0], rejected.spans[0][0]
        assert start_c == start_r  # one prompt, tokenized once, as the SFT rows are
        assert chosen.input_ids[:start_c] == rejected.input_ids[:start_r]
        answer = (record.get("chosen") or record["preferred_output"])[0]["content"]
        decoded = tokenizer.decode(chosen.input_ids[start_c:], skip_special_tokens=False)
        assert decoded == answer + "<|im_end|>"  # the answer and its end-of-turn token
    batch = pair_batch(pairs, pad_id=int(tokenizer.pad_token_id))
    labels, ids, mask = batch["labels"], batch["input_ids"], batch["attention_mask"]
    assert labels.shape == ids.shape == mask.shape
    assert labels.shape[0] == 4  # chosen, chosen, rejected, rejected
    rendered = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    for index, row in enumerate(rendered):
        trained = (labels[index] != IGNORE_INDEX).nonzero().flatten().tolist()
        ((start, end),) = row.spans
        assert trained == list(range(start, end))  # the response tokens, nothing else
        assert labels[index, start:end].tolist() == row.input_ids[start:end]
        assert int(mask[index].sum()) == row.n_tokens  # padding is masked out
        assert row.n_tokens < 80  # tens of tokens: CPU steps stay short


def _loop(tmp_path: Path, model: Any, pairs: list[RenderedPair], pad_id: int) -> Any:
    from peft import LoraConfig, get_peft_model

    from raftkit.students.dpo import DpoLoop

    peft = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear")
    )
    jobdir = JobDir(tmp_path / "job")
    jobdir.root.mkdir(parents=True)
    config = LocalTrainingConfig(
        max_steps=4,
        batch_size=2,
        gradient_accumulation_steps=1,
        learning_rate=3e-3,
        lr_schedule="constant",
        warmup_ratio=0.0,
        lora_r=8,
        lora_dropout=0.0,
        save_every=100,
    )
    return DpoLoop(
        peft,
        train=pairs,
        valid=pairs[:1],
        beta=0.5,
        reference_from_adapter=False,
        config=config,
        device="cpu",
        precision="fp32",
        pad_id=pad_id,
        jobdir=jobdir,
        events=EventWriter(jobdir),
        status=LocalJobStatus(),
        should_stop=lambda: False,
    )


def test_steps_raise_the_margin_and_the_reference_stays_put(
    student: Student, tmp_path: Path
) -> None:
    pairs = [render_pair(student.tokenizer, row) for row in ROWS]
    loop = _loop(tmp_path, student.model, pairs, int(student.tokenizer.pad_token_id))
    before_policy = loop._logps(pairs, reference=False)
    reference = loop.reference["train"]
    # a fresh LoRA adapter changes nothing yet: policy == reference, loss log 2
    assert before_policy == pytest.approx(reference, abs=1e-3)
    loop.run()
    steps = [e.data for e in loop.jobdir.events() if e.type == "metrics"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    assert steps[0]["train_loss"] == pytest.approx(math.log(2), abs=1e-3)
    losses = [s["train_loss"] for s in steps]
    margins = [s["reward_margin"] for s in steps]
    assert losses[-1] < losses[0]
    assert margins[-1] > margins[0] >= -1e-6
    assert steps[-1]["train_accuracy"] == 1.0
    assert steps[-1]["chosen_reward"] - steps[-1]["rejected_reward"] == pytest.approx(margins[-1])
    assert "valid_loss" in steps[-1]
    assert "reward margin" in loop.jobdir.events()[-1].message
    after_policy = loop._logps(pairs, reference=False)
    after_reference = loop._logps(pairs, reference=True)
    assert after_reference == pytest.approx(reference, abs=1e-3)  # the adapter is off
    moved = max(abs(a - b) for a, b in zip(after_policy, before_policy, strict=True))
    assert moved > 0.5  # while the policy moved
    stored = json.loads((loop.jobdir.root / "reference_logps.json").read_text(encoding="utf-8"))
    assert stored["train"] == reference  # kept for a resumed job: its adapter has moved
    student.model = loop.model.unload()  # the base, without LoRA layers, for other tests


def test_a_file_without_pairs_is_one_line_naming_it(student: Student, tmp_path: Path) -> None:
    tokenizer = student.tokenizer
    chat = {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A"}]}
    cases: dict[str, tuple[list[dict[str, Any]], str]] = {
        "chat.jsonl": ([chat], ":1: not a preference row"),
        "empty.jsonl": ([], ": has no preference pairs"),
        "two.jsonl": ([ROWS[0], {**ROWS[0], "chosen": []}], ":2: chosen must be"),
    }
    for name, (rows, said) in cases.items():
        path = _write(tmp_path / name, rows)
        with pytest.raises(DatasetError) as caught:
            load_preference_pairs(path, tokenizer)
        message = str(caught.value)
        assert message.startswith(f"{path}{said}"), message
        assert "\n" not in message
    with pytest.raises(DatasetError, match="more than max_seq_length 16"):
        load_preference_pairs(_write(tmp_path / "long.jsonl", ROWS), tokenizer, max_tokens=16)
