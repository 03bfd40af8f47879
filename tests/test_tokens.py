"""Token counting: the script-aware estimate, the exact counters, chat framing."""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

import pytest

from raftkit.llm import tokens
from raftkit.llm.tokens import (
    count_message_tokens,
    count_tokens,
    encoding_for_model,
    estimate_tokens,
    exact_counter,
)

EN = (
    "Bats are mammals of the order Chiroptera. With their forelimbs adapted as wings, they are "
    "the only mammals capable of true and sustained flight. Bats are more agile in flight than "
    "most birds, flying with their very long spread-out digits covered with a thin membrane or "
    "patagium. The smallest bat, and arguably the smallest extant mammal, is Kitti's hog-nosed "
    "bat, which is 29-34 millimetres (1.14-1.34 in) in length, 150 mm (5.91 in) across the "
    "wings and 2-2.6 g (0.07-0.09 oz) in mass.\n"
    "Surfing is a surface water sport in which an individual, a surfer, uses a board to ride on "
    "the forward section, or face, of a moving wave of water, which usually carries the surfer "
    "towards the shore. Waves suitable for surfing are primarily found on ocean shores, but can "
    "also be found in standing waves in the open ocean, in lakes, in rivers in the form of a "
    "tidal bore, and in wave pools."
)
ZH = (
    "蝙蝠是翼手目动物的统称，是唯一能够真正飞行的哺乳动物。全世界已知的蝙蝠约有一千四"
    "百多种，占哺乳动物种类的五分之一左右。蝙蝠的前肢特化为翼，指骨延长，之间连有薄而"
    "有弹性的翼膜。大多数蝙蝠在夜间活动，白天则倒挂在洞穴、树洞或建筑物的缝隙中休息。"
    "检索增强微调（RAFT）是一种训练大语言模型的方法。它在训练数据中为每个问题提供"
    "若干文档，其中可能包含正确的“神谕”文档，也可能只包含干扰文档。模型需要学会引用"
    "相关的原文片段，并给出带有推理过程的答案。实验表明，这种方法在医学、法律和软件文"
    "档等专业领域的问答任务上明显优于普通的监督微调。"
)
JA = (
    "コウモリは翼手目に属する哺乳類の総称で、鳥類と同じように空を飛ぶことがで"
    "きる唯一の哺乳類である。多くの種は夜行性で、超音波を使って周囲の状況を把"
    "握する。"
)
KO = (
    "서핑은 파도를 타는 수상 스포츠이다. 서퍼는 서프보드 위에 서서 "
    "파도의 힘을 이용해 앞으로 나아간다. 현대 서핑은 하와이에서 시작"
    "되었다."
)

# Exact counts of the texts above, measured with OpenAI's vocabularies (the official
# o200k_base and cl100k_base files, through bpe-openai).
EXACT = {
    "EN": (EN, 224, 228),
    "ZH": (ZH, 221, 329),
    "JA": (JA, 70, 99),
    "KO": (KO, 47, 70),
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_estimate_is_close_to_the_real_vocabularies(name: str) -> None:
    text, o200k, cl100k = EXACT[name]
    assert estimate_tokens(text) == pytest.approx(o200k, rel=0.10)
    assert estimate_tokens(text, "gpt-4o") == estimate_tokens(text)
    assert estimate_tokens(text, "gpt-4") == pytest.approx(cl100k, rel=0.10)


def test_chinese_is_not_counted_four_characters_a_token() -> None:
    per_char = estimate_tokens(ZH) / len(ZH)
    assert 0.6 < per_char < 1.0
    assert estimate_tokens(ZH, "gpt-3.5-turbo") / len(ZH) > 1.1
    # full-width punctuation and a PDF's stray spaces and line breaks between characters
    spaced = " ".join(ZH[:60]).replace("。", "。\n")
    assert estimate_tokens(spaced) == pytest.approx(estimate_tokens(ZH[:60]), rel=0.25)


def test_estimate_edge_cases() -> None:
    assert estimate_tokens("") == 0
    assert 1 <= estimate_tokens("   \n ") <= 2  # a line break is a token of its own
    assert estimate_tokens("a") == 1
    assert estimate_tokens("1234567") == 3  # numbers go in groups of three digits
    assert estimate_tokens("hello " * 1000) == pytest.approx(1000, rel=0.2)


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:org::abc", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("my-deployment", "o200k_base"),
        (None, "o200k_base"),
    ],
)
def test_encoding_for_model(model: str | None, encoding: str) -> None:
    assert encoding_for_model(model) == encoding


def test_exact_counts_where_a_vocabulary_is_installed() -> None:
    counter = exact_counter("gpt-4o")
    if importlib.util.find_spec("bpe_openai") is not None:
        assert counter is not None
        for text, o200k, cl100k in EXACT.values():
            assert count_tokens(text, "gpt-4o") == o200k
            assert count_tokens(text, "gpt-4") == cl100k
    else:
        # without an offline vocabulary the estimate stands in
        for text, _, _ in EXACT.values():
            assert count_tokens(text, "gpt-4") == estimate_tokens(text, "gpt-4")
    assert count_tokens(EN) == estimate_tokens(EN)


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
def test_special_token_text_is_counted_as_ordinary_text(model: str) -> None:
    # user content that spells a special token is billed as the ordinary text it is
    text = "The end of a GPT-2 document is marked <|endoftext|>; FIM uses <|fim_prefix|>."
    counted = count_tokens(text, model)
    spelled_out = count_tokens(text.replace("<|", "< |"), model)
    assert 15 < counted <= spelled_out + 2
    assert count_tokens("<|endoftext|>", model) > 1  # not the one special token
    messages = [{"role": "user", "content": f"{EN} <|endoftext|> {ZH}"}]
    assert count_message_tokens(messages, model) > count_tokens(EN, model)


def test_texts_longer_than_the_tokenizer_takes_at_once_are_counted() -> None:
    # bpe-openai refuses one input of a million characters or 200k tokens
    text = "word " * 250_000 + "终" * 10
    if importlib.util.find_spec("bpe_openai") is None:
        assert count_tokens(text, "gpt-4o") == estimate_tokens(text, "gpt-4o")
        return
    assert count_tokens(text, "gpt-4o") == 250_000 + count_tokens("终" * 10, "gpt-4o") + 1
    assert count_tokens(EN * 3000, "gpt-4o") == pytest.approx(3000 * 224, rel=0.01)


def test_exact_counter_prefers_the_offline_vocabulary(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    class FakeEncoding:
        def encode_ordinary(self, text: str) -> list[int]:
            return list(range(len(text.split())))

    def get_encoding(name: str) -> FakeEncoding:
        asked.append(name)
        return FakeEncoding()

    fake = types.ModuleType("bpe_openai")
    fake.get_encoding = get_encoding  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bpe_openai", fake)
    tokens.exact_counter.cache_clear()
    tokens._bpe_openai_counter.cache_clear()
    try:
        assert count_tokens("one two three", "gpt-4-0613") == 3
        assert asked == ["cl100k_base"]
    finally:
        tokens.exact_counter.cache_clear()
        tokens._bpe_openai_counter.cache_clear()


def test_message_framing() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": ZH}]},
        {"role": "user", "content": "hi", "name": "alice"},
    ]
    total = count_message_tokens(messages)
    content = estimate_tokens("Answer briefly.") + estimate_tokens(ZH) + estimate_tokens("hi")
    assert total == 3 + 3 * 4 + content + estimate_tokens("alice")
    image: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
    ]
    assert count_message_tokens(image) == 3 + 4 + 765
