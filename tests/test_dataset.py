"""raftkit.dataset: JSONL I/O, grouped splits, exporters, pre-flight and prepare_dataset."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from raftkit.dataset import (
    ChatExporter,
    CompletionExporter,
    EvalExporter,
    HuggingFaceExporter,
    MissingExtraError,
    RaftReferenceExporter,
    Split,
    SplitReport,
    assign_groups,
    chat_token_counts,
    export_split,
    exporter_names,
    format_instruction,
    get_exporter,
    iter_examples,
    leaked_groups,
    preflight,
    prepare_dataset,
    read_examples,
    register_exporter,
    split_examples,
    split_groups,
    to_hf_dataset,
    validate_chat_jsonl,
    write_examples,
    write_jsonl,
)
from raftkit.dataset.io import iter_jsonl_lines
from raftkit.errors import DatasetError, UsageError
from raftkit.llm.tokens import count_message_tokens
from raftkit.types import ContextDocument, RaftExample

pytestmark = pytest.mark.anyio

# ---------------------------------------------------------------- a small factory


def make_example(
    n: int,
    *,
    chunk: str = "doc#0",
    document: str = "doc",
    chinese: bool = False,
    oracle_present: bool = True,
) -> RaftExample:
    """An example whose oracle (if present) sits at position 1 of three, listed out of order."""
    if chinese:
        question = f"蝙蝠第{n}次飞行在什么时候？"
        oracle_text = "蝙蝠是唯一能真正飞行的哺乳动物。"
        distractors = ["熊猫以竹子为食。", "长城位于中国北方。"]
        cot = "##begin_quote##蝙蝠是唯一能真正飞行的哺乳动物。##end_quote## <ANSWER>: 夜间"
        final = "夜间"
    else:
        question = f"When does bat {n} fly?"
        oracle_text = "Bats are the only mammals capable of true flight."
        distractors = ["Pandas eat bamboo.", "The Great Wall is in northern China."]
        cot = (
            "##begin_quote##Bats are the only mammals capable of true flight.##end_quote##"
            " <ANSWER>: at night"
        )
        final = "at night"
    docs = [
        ContextDocument(chunk_id="other#2", position=2, is_oracle=False, text=distractors[1]),
        ContextDocument(chunk_id="other#1", position=0, is_oracle=False, text=distractors[0]),
    ]
    if oracle_present:
        docs.append(
            ContextDocument(
                chunk_id=chunk, position=1, is_oracle=True, title="Bat", text=oracle_text
            )
        )
    else:
        docs.append(
            ContextDocument(chunk_id="other#3", position=1, is_oracle=False, text="Owls hoot.")
        )
    return RaftExample(
        id=f"ex-{n}",
        question_id=f"q-{n}",
        question=question,
        chunk_id=chunk,
        document_id=document,
        documents=docs,
        oracle_present=oracle_present,
        cot_answer=cot,
        final_answer=final,
        quotes=[oracle_text],
        teacher_model="gpt-4o",
    )


def many_examples(rng: random.Random, *, chunks: int = 40, documents: int = 8) -> list[RaftExample]:
    """Many questions per chunk (1 to 12), chunks spread over documents."""
    out: list[RaftExample] = []
    n = 0
    for c in range(chunks):
        doc = f"doc{c % documents}"
        for _ in range(rng.randint(1, 12)):
            out.append(make_example(n, chunk=f"{doc}#{c}", document=doc, chinese=n % 3 == 0))
            n += 1
    return out


# ---------------------------------------------------------------- io


def test_examples_roundtrip_utf8_unescaped(tmp_path: Path) -> None:
    examples = [make_example(1), make_example(2, chinese=True)]
    path = tmp_path / "examples.jsonl"
    assert write_examples(path, examples) == 2
    assert read_examples(path) == examples
    assert "蝙蝠是唯一能真正飞行的哺乳动物" in path.read_text(encoding="utf-8")


def test_reading_streams_and_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "examples.jsonl"
    good = make_example(1).model_dump_json()
    path.write_text(f"{good}\n\n{good}\n{{not json\n{good}\n", encoding="utf-8")
    stream = iter_examples(path)
    assert next(stream).id == "ex-1"  # the first record arrives before the bad line is read
    assert next(stream).id == "ex-1"  # blank line 2 skipped
    with pytest.raises(DatasetError) as caught:
        next(stream)
    assert caught.value.path == str(path)
    assert caught.value.line == 4
    assert str(caught.value).startswith(f"{path}:4: invalid JSON")


def test_a_record_that_is_not_an_example_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "examples.jsonl"
    record = json.loads(make_example(1).model_dump_json())
    del record["question"]
    path.write_text(make_example(0).model_dump_json() + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DatasetError) as caught:
        read_examples(path)
    assert caught.value.line == 2
    assert "question" in str(caught.value)


def test_torn_last_line_is_tolerated_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    good = make_example(1).model_dump_json()
    path.write_text(good + "\n" + good[: len(good) // 2], encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        read_examples(path)
    assert caught.value.line == 2
    assert [e.id for e in read_examples(path, allow_torn_tail=True)] == ["ex-1"]


def test_a_complete_bad_last_line_is_an_error_even_when_torn_lines_are_allowed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(make_example(1).model_dump_json() + "\n{broken}\n", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        read_examples(path, allow_torn_tail=True)
    assert caught.value.line == 2


def test_bad_utf8_and_missing_files_are_dataset_errors(tmp_path: Path) -> None:
    path = tmp_path / "examples.jsonl"
    path.write_bytes(make_example(1).model_dump_json().encode() + b"\n\xff\xfe{}\n")
    with pytest.raises(DatasetError) as caught:
        read_examples(path)
    assert caught.value.line == 2
    assert "UTF-8" in str(caught.value)
    with pytest.raises(DatasetError) as missing:
        read_examples(tmp_path / "nope.jsonl")
    assert missing.value.path == str(tmp_path / "nope.jsonl")


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "examples.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + make_example(1, chinese=True).model_dump_json().encode())
    assert [e.id for e in read_examples(path)] == ["ex-1"]
    assert [line.complete for line in iter_jsonl_lines(path)] == [False]


def test_writing_is_atomic_when_the_rows_fail(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"a": 1}])

    def rows() -> Any:
        yield {"a": 2}
        raise RuntimeError("generator died")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert path.read_text() == '{"a":1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary file left


# ---------------------------------------------------------------- split


@pytest.mark.parametrize("seed", range(12))
def test_no_held_out_question_shares_an_oracle_chunk_with_training(seed: int) -> None:
    examples = many_examples(random.Random(1000 + seed))
    split = split_examples(examples, seed=seed)
    train_chunks = {e.chunk_id for e in split.train}
    for held_out in (split.validation, split.test):
        assert not train_chunks & {e.chunk_id for e in held_out}
    assert not {e.chunk_id for e in split.validation} & {e.chunk_id for e in split.test}
    assert leaked_groups(split, lambda e: e.chunk_id) == set()
    # every example exactly once, labelled with its part
    assert sorted(e.id for e in split.train + split.validation + split.test) == sorted(
        e.id for e in examples
    )
    for name, part in split.parts().items():
        assert {e.split for e in part} <= {name}
    assert split.validation
    assert split.test


@pytest.mark.parametrize("seed", range(6))
def test_grouping_by_document_keeps_documents_whole(seed: int) -> None:
    examples = many_examples(random.Random(seed), chunks=60, documents=20)
    split = split_examples(examples, seed=seed, group_by="document")
    assert leaked_groups(split, lambda e: e.document_id) == set()
    assert split.report().group_by == "document"
    assert sum(split.report().groups.values()) == 20


def test_split_is_the_same_whatever_the_input_order() -> None:
    examples = many_examples(random.Random(7))
    shuffled = list(examples)
    random.Random(99).shuffle(shuffled)
    first = split_examples(examples, seed=3)
    second = split_examples(reversed(shuffled), seed=3)
    for name in ("train", "validation", "test"):
        assert [e.id for e in first.parts()[name]] == [e.id for e in second.parts()[name]]
    assert first.report() == second.report()


def test_different_seeds_give_different_splits() -> None:
    examples = many_examples(random.Random(7))
    tests = {tuple(sorted(e.id for e in split_examples(examples, seed=s).test)) for s in range(5)}
    assert len(tests) > 1


def test_achieved_ratios_are_reported_and_close_with_many_groups() -> None:
    examples = [
        make_example(n, chunk=f"d#{n // 5}", document="d") for n in range(1000)
    ]  # 200 chunks of 5
    split = split_examples(examples, ratios=(0.7, 0.2, 0.1), seed=11)
    report = split.report()
    assert report.requested == {"train": 0.7, "validation": 0.2, "test": 0.1}
    assert report.items == {"train": 700, "validation": 200, "test": 100}
    assert report.achieved == pytest.approx({"train": 0.7, "validation": 0.2, "test": 0.1})
    assert report.groups == {"train": 140, "validation": 40, "test": 20}
    assert "validation" in report.render()
    assert SplitReport.model_validate_json(report.model_dump_json()) == report


def test_uneven_groups_get_near_the_target() -> None:
    examples = many_examples(random.Random(5), chunks=200)
    achieved = split_examples(examples, seed=0).achieved
    assert achieved["train"] == pytest.approx(0.8, abs=0.03)
    assert achieved["validation"] == pytest.approx(0.1, abs=0.03)
    assert achieved["test"] == pytest.approx(0.1, abs=0.03)
    assert sum(achieved.values()) == pytest.approx(1.0)


def test_zero_ratio_leaves_a_part_empty() -> None:
    examples = many_examples(random.Random(2))
    split = split_examples(examples, ratios=(0.9, 0.1, 0.0), seed=0)
    assert split.test == []
    assert split.train
    assert split.validation


@pytest.mark.parametrize(
    "ratios", [(0.8, 0.1, 0.2), (1.1, -0.05, -0.05), (0.5, 0.5), (float("nan"), 0.5, 0.5)]
)
def test_bad_ratios_are_usage_errors(ratios: Any) -> None:
    with pytest.raises(UsageError):
        split_examples([make_example(1)], ratios=ratios)


def test_split_groups_is_generic_over_the_key() -> None:
    pairs = [(f"question {q}", f"chunk {q % 17}") for q in range(300)]
    split: Split[tuple[str, str]] = split_groups(
        pairs, key=lambda pair: pair[1], seed=4, order=lambda pair: pair[0]
    )
    assert leaked_groups(split, lambda pair: pair[1]) == set()
    assert len(split) == 300
    again = split_groups(reversed(pairs), key=lambda pair: pair[1], seed=4, order=lambda p: p[0])
    assert again.train == split.train


def test_empty_input_splits_into_empty_parts() -> None:
    split = split_examples([], seed=0)
    assert len(split) == 0
    assert split.achieved == {"train": 0.0, "validation": 0.0, "test": 0.0}


# ---------------------------------------------------------------- exporters

ZH_INSTRUCTION = (
    "<DOCUMENT>熊猫以竹子为食。</DOCUMENT>\n"
    "<DOCUMENT>蝙蝠是唯一能真正飞行的哺乳动物。</DOCUMENT>\n"
    "<DOCUMENT>长城位于中国北方。</DOCUMENT>\n"
    "蝙蝠第7次飞行在什么时候？"
)
ZH_COT = "##begin_quote##蝙蝠是唯一能真正飞行的哺乳动物。##end_quote## <ANSWER>: 夜间"


def test_instruction_puts_documents_in_their_recorded_positions() -> None:
    assert format_instruction(make_example(7, chinese=True)) == ZH_INSTRUCTION


def test_chat_rows_exactly() -> None:
    example = make_example(7, chinese=True)
    assert ChatExporter(system_prompt="你是一个乐于助人的助手。").row(example) == {
        "messages": [
            {"role": "system", "content": "你是一个乐于助人的助手。"},
            {"role": "user", "content": ZH_INSTRUCTION},
            {"role": "assistant", "content": ZH_COT},
        ]
    }
    assert ChatExporter().row(example) == {
        "messages": [
            {"role": "user", "content": ZH_INSTRUCTION},
            {"role": "assistant", "content": ZH_COT},
        ]
    }


def test_completion_rows_end_with_the_stop_marker() -> None:
    example = make_example(7, chinese=True)
    assert CompletionExporter().row(example) == {
        "prompt": ZH_INSTRUCTION,
        "completion": ZH_COT + "<STOP>",
    }
    custom = CompletionExporter(stop=" END", prompt_field="input", completion_field="output")
    assert custom.row(example) == {"input": ZH_INSTRUCTION, "output": ZH_COT + " END"}
    with pytest.raises(UsageError):
        CompletionExporter(prompt_field="x", completion_field="x")


def test_raft_reference_rows_field_for_field() -> None:
    example = make_example(7, chinese=True)
    row = RaftReferenceExporter().row(example)
    # the columns gorilla's raft.py writes, and nothing else
    assert list(row) == [
        "id",
        "type",
        "question",
        "context",
        "oracle_context",
        "cot_answer",
        "instruction",
    ]
    assert row == {
        "id": "ex-7",
        "type": "general",
        "question": "蝙蝠第7次飞行在什么时候？",
        "context": {
            "title": [["placeholder_title", "Bat", "placeholder_title"]],
            "sentences": [
                ["熊猫以竹子为食。", "蝙蝠是唯一能真正飞行的哺乳动物。", "长城位于中国北方。"]
            ],
        },
        "oracle_context": "蝙蝠是唯一能真正飞行的哺乳动物。",
        "cot_answer": ZH_COT,
        "instruction": ZH_INSTRUCTION,
    }
    # gorilla's format.py builds its chat and completion files from these columns
    chat = ChatExporter().row(example)["messages"]
    assert chat[0]["content"] == row["instruction"]
    assert chat[1]["content"] == row["cot_answer"]


def test_raft_reference_oracle_text_when_the_oracle_was_left_out() -> None:
    example = make_example(3, oracle_present=False)
    assert RaftReferenceExporter().row(example)["oracle_context"] is None
    filled = RaftReferenceExporter(chunk_texts={"doc#0": "the oracle text"}).row(example)
    assert filled["oracle_context"] == "the oracle text"
    assert "the oracle text" not in filled["instruction"]


def test_eval_rows_match_gorillas_eval_columns() -> None:
    example = make_example(7, chinese=True)
    row = EvalExporter().row(example)
    assert row == {
        "id": "ex-7",
        "question_id": "q-7",
        "chunk_id": "doc#0",
        "document_id": "doc",
        "question": "蝙蝠第7次飞行在什么时候？",
        "context": ZH_INSTRUCTION.rsplit("\n", 1)[0],
        "instruction": ZH_INSTRUCTION,
        "gold_final_answer": "夜间",
        "oracle_present": True,
    }
    # gorilla's format.py derives the same two columns from a raft row
    reference = RaftReferenceExporter().row(example)
    assert row["context"] == "\n".join(reference["instruction"].split("\n")[:-1])
    assert row["gold_final_answer"] == reference["cot_answer"].split("<ANSWER>: ")[-1]


def test_exported_file_is_utf8_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    examples = [make_example(1), make_example(2, chinese=True)]
    assert ChatExporter().export(examples, path) == 2
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [ChatExporter().row(e) for e in examples]
    assert "蝙蝠" in lines[1]


def test_registry_by_format_name() -> None:
    names = exporter_names()
    assert names == sorted(names)
    assert {"alpaca", "chat", "completion", "dpo", "dpo-trl", "eval", "hf"} | {
        "messages",
        "prompt-completion",
        "raft",
        "sharegpt",
    } <= set(names)
    chat = get_exporter("chat", system_prompt="S")
    assert isinstance(chat, ChatExporter)
    assert chat.system_prompt == "S"
    with pytest.raises(UsageError, match="known: alpaca, chat, completion"):
        get_exporter("parquet")
    with pytest.raises(UsageError, match="bad options"):
        get_exporter("eval", system_prompt="S")
    with pytest.raises(UsageError):
        register_exporter("bad name!", EvalExporter)


def test_a_registered_exporter_is_found_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import raftkit.dataset.export as export_module

    monkeypatch.setattr(export_module, "_REGISTRY", dict(export_module._REGISTRY))
    register_exporter("eval-copy", EvalExporter)
    assert isinstance(get_exporter("eval-copy"), EvalExporter)
    assert "eval-copy" in exporter_names()


def test_export_split_writes_one_file_per_non_empty_part(tmp_path: Path) -> None:
    split = split_examples(many_examples(random.Random(3)), ratios=(0.9, 0.1, 0.0), seed=0)
    written = export_split(split, tmp_path / "chat", ChatExporter())
    assert set(written) == {"train", "validation"}
    assert written["train"] == tmp_path / "chat" / "train.jsonl"
    assert len(written["validation"].read_text().splitlines()) == len(split.validation)
    everything = export_split(split, tmp_path / "all", EvalExporter(), include_empty=True)
    assert everything["test"].read_text() == ""


def test_missing_datasets_extra_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(MissingExtraError) as caught:
        HuggingFaceExporter().export([make_example(1)], tmp_path / "hf")
    assert "pip install 'raftkit[datasets]'" in str(caught.value)
    assert isinstance(caught.value, ImportError)
    assert isinstance(caught.value, UsageError)


def test_hugging_face_export_when_datasets_is_installed(tmp_path: Path) -> None:
    examples = [
        make_example(1),
        make_example(2, chinese=True),
        make_example(3, oracle_present=False),
    ]
    try:
        import datasets
    except ImportError:
        with pytest.raises(MissingExtraError):
            to_hf_dataset(examples)
        return
    assert HuggingFaceExporter().export(examples, tmp_path / "hf") == 3
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert loaded.to_list() == list(RaftReferenceExporter().rows(examples))
    chat = to_hf_dataset(examples, rows=ChatExporter())
    assert chat.column_names == ["messages"]


# ---------------------------------------------------------------- pre-flight and prepare


def test_preflight_agrees_with_the_validator_on_the_written_file(tmp_path: Path) -> None:
    split = split_examples(many_examples(random.Random(4)), seed=2)
    exporter = ChatExporter(system_prompt="Answer from the documents.")
    report = preflight(split, exporter=exporter, model="gpt-4o-mini", epochs=2)
    written = export_split(split, tmp_path, exporter)
    checked = validate_chat_jsonl(written["train"], model="gpt-4o-mini", epochs=2)
    assert report.train == checked.example_tokens
    assert report.training == checked.cost
    assert report.training is not None
    assert report.training.epochs == 2
    expected = [count_message_tokens(exporter.messages(e), "gpt-4o-mini") for e in split.validation]
    assert report.validation is not None
    assert report.validation.total == sum(expected)
    assert chat_token_counts(split.validation, exporter=exporter, model="gpt-4o-mini") == expected
    assert "pre-flight" in report.render()


async def test_prepare_dataset_splits_exports_and_checks(tmp_path: Path) -> None:
    examples = many_examples(random.Random(8))
    source = tmp_path / "examples.jsonl"
    write_examples(source, examples)
    out = tmp_path / "dataset"
    prepared = await prepare_dataset(
        source, out, formats=("chat", "raft"), system_prompt="S", seed=5, price_per_million=2.0
    )
    expected = split_examples(examples, seed=5)
    assert prepared.split == expected.report()
    assert SplitReport.model_validate_json((out / "split.json").read_text()) == prepared.split
    train_rows = (out / "raft" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(r)["id"] for r in train_rows] == [e.id for e in expected.train]
    assert set(prepared.files) == {"chat", "raft"}
    assert set(prepared.validation) == {"train", "validation"}
    assert prepared.ok
    assert prepared.preflight.training is not None
    assert prepared.preflight.training.price_per_million == 2.0
    assert "split by chunk" in prepared.render()


async def test_prepare_dataset_needs_a_format(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        await prepare_dataset(tmp_path / "x.jsonl", tmp_path, formats=())


def test_public_names_are_exported() -> None:
    import importlib

    import raftkit.dataset as package

    for module_name in (
        "cost",
        "export",
        "io",
        "open_formats",
        "preflight",
        "prepare",
        "split",
        "validate",
    ):
        module = importlib.import_module(f"raftkit.dataset.{module_name}")
        for name in module.__all__:
            assert hasattr(module, name), f"{module_name}.{name}"
    for name in package.__all__:
        assert hasattr(package, name), name
    assert sorted(package.__all__) == sorted(set(package.__all__))


def test_assign_groups_is_the_decision_split_groups_makes() -> None:
    examples = many_examples(random.Random(6))
    sizes: dict[str, int] = {}
    for e in examples:
        sizes[e.chunk_id] = sizes.get(e.chunk_id, 0) + 1
    placement = assign_groups(sizes, seed=9)
    split = split_examples(examples, seed=9)
    for name, part in split.parts().items():
        assert {placement[e.chunk_id] for e in part} <= {name}
    with pytest.raises(UsageError):
        assign_groups(sizes, ratios=(0.5, 0.5, 0.5))
