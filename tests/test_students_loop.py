"""The training loop's arithmetic on a tiny random Llama: the loss equals transformers' own,
packed rows do not see each other, the batch stream is seeded and covers every row, and the
learning-rate schedule has the promised shape."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from raftkit.students import IGNORE_INDEX, LocalTrainingConfig, RenderedRow
from raftkit.students.jobdir import EventWriter, JobDir, LocalJobStatus
from students_support import requires_student

pytestmark = [requires_student()]


def _row(rng: random.Random, prompt: int, answer: int) -> RenderedRow:
    ids = [rng.randrange(3, 120) for _ in range(prompt + answer)]
    labels = [IGNORE_INDEX] * prompt + ids[prompt:]
    return RenderedRow(ids, labels, [(prompt, prompt + answer)], ["x"], "prompt prefix")


def _loop(tmp_path: Path, rows: list[RenderedRow], **settings: Any) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from raftkit.students.loop import TrainingLoop

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    model = get_peft_model(
        LlamaForCausalLM(config),
        LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear"),
    )
    jobdir = JobDir(tmp_path / "job")
    return TrainingLoop(
        model,
        train=rows,
        valid=rows[:1],
        config=LocalTrainingConfig(**settings),
        device="cpu",
        precision="fp32",
        pad_id=0,
        jobdir=jobdir,
        events=EventWriter(jobdir),
        status=LocalJobStatus(),
        should_stop=lambda: False,
    )


def test_the_loss_is_transformers_own_over_answer_tokens(tmp_path: Path) -> None:
    import torch

    from raftkit.students.loop import _Micro

    rng = random.Random(1)
    rows = [_row(rng, 20, 7), _row(rng, 12, 9)]
    loop = _loop(tmp_path, rows, batch_size=2)
    batch = loop._tensors(_Micro([[r] for r in rows]))
    labels = batch["labels"].clone()
    with torch.no_grad():
        summed, count, _ = loop._forward(dict(batch))
        reference = loop.model(**batch).loss  # mean over the shifted, non-ignored labels
    assert count == 16
    assert float(summed) / count == pytest.approx(float(reference), rel=1e-5)
    assert int((labels != IGNORE_INDEX).sum()) == 16  # padding is never trained


def test_packed_rows_do_not_see_each_other(tmp_path: Path) -> None:
    import torch

    from raftkit.students.loop import _Micro

    rng = random.Random(2)
    first, second = _row(rng, 15, 5), _row(rng, 10, 6)
    loop = _loop(tmp_path, [first, second], packing=True, max_seq_length=64)
    assert [len(group) for group in loop._pack([first, second])] == [2]
    packed = loop._tensors(_Micro([[first, second]]))
    assert packed["position_ids"][0].tolist() == list(range(20)) + list(range(16))
    alone = loop._tensors(_Micro([[second]]))
    loop.model.eval()
    with torch.no_grad():
        together = loop.model(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
        ).logits[0, 20:]
        apart = loop.model(
            input_ids=alone["input_ids"], position_ids=alone["position_ids"], use_cache=False
        ).logits[0]
    assert torch.allclose(together, apart, atol=1e-4)
    loop.check_packing()  # the same check, on the model, before a packed run trains


def test_the_batch_stream_is_seeded_and_covers_each_epoch(tmp_path: Path) -> None:
    rng = random.Random(3)
    rows = [_row(rng, 4, 2) for _ in range(7)]
    settings = {"batch_size": 2, "gradient_accumulation_steps": 2, "epochs": 2, "seed": 5}
    loop = _loop(tmp_path / "a", rows, **settings)
    again = _loop(tmp_path / "b", rows, **settings)
    assert loop.total_steps == 4  # 4 micro-batches an epoch, 2 a step, 2 epochs
    per_step = [loop._micro_batches(step) for step in range(loop.total_steps)]
    for epoch in (per_step[:2], per_step[2:]):  # each epoch is every row once
        seen = [id(r) for step in epoch for micro in step for g in micro.sequences for r in g]
        assert sorted(seen) == sorted(id(row) for row in rows)
    assert per_step[0][0].sequences != per_step[2][0].sequences  # reshuffled per epoch
    replay = again._micro_batches(3)  # a resumed run sees the same batches
    assert [[r.input_ids for g in m.sequences for r in g] for m in replay] == [
        [r.input_ids for g in m.sequences for r in g] for m in per_step[3]
    ]


def test_learning_rate_schedule() -> None:
    from raftkit.students.loop import lr_factor

    assert [lr_factor(s, 10, 2, "constant") for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]
    assert lr_factor(2, 10, 2, "cosine") == pytest.approx(1.0)
    assert lr_factor(9, 10, 2, "cosine") < 0.05
    assert lr_factor(6, 10, 2, "linear") == pytest.approx(0.5)
