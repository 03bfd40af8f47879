"""``raftkit finetune RUN_DIR --provider local`` and ``raftkit jobs --run RUN_DIR``: the flags and
the provider of local LoRA training, kept apart from the hosted services' set-up.

The provider keeps everything in ``RUN_DIR/finetune/local/`` (:attr:`RunDir.local_training`):
uploaded files, one folder per job (adapter, checkpoints, events) and GGUF bases dequantized
once. ``FineTuneRun`` records the adapter's folder as the fine-tuned model, so ``raftkit serve
--run RUN_DIR`` and ``raftkit eval RUN_DIR --model tuned=@finetuned@URL`` find it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pydantic import ValidationError

from raftkit.errors import UsageError
from raftkit.finetune import FineTuneJob, LocalLoRAProvider
from raftkit.llm import PollPolicy
from raftkit.run_dir import RunDir
from raftkit.students import LocalTrainingConfig

__all__ = [
    "add_local_arguments",
    "local_base",
    "local_from_adapter",
    "local_job_lines",
    "local_provider",
    "local_training_config",
    "next_steps",
]

# flag → LocalTrainingConfig field, for the flags that map one to one
_FIELDS = (
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "max_steps",
    "learning_rate",
    "lr_schedule",
    "warmup_ratio",
    "gradient_accumulation_steps",
    "max_seq_length",
    "device",
    "precision",
    "save_every",
    "eval_every",
)


def add_local_arguments(parser: argparse.ArgumentParser) -> None:
    """The training flags of ``--provider local`` (defaults: :class:`LocalTrainingConfig`'s)."""
    defaults = LocalTrainingConfig()
    group = parser.add_argument_group(
        "local LoRA training (--provider local; --model is the BASE: a model folder, a model "
        "id in the local Hugging Face cache, or a .gguf file)"
    )
    group.add_argument("--lora-r", type=int, help=f"LoRA rank (default {defaults.lora_r})")
    group.add_argument("--lora-alpha", type=int, help=f"default {defaults.lora_alpha}")
    group.add_argument("--lora-dropout", type=float, help=f"default {defaults.lora_dropout}")
    group.add_argument(
        "--target-modules",
        nargs="+",
        metavar="NAME",
        help="modules LoRA adapts (default: every linear layer but the output head)",
    )
    group.add_argument("--max-steps", type=int, help="optimizer steps (overrides --epochs)")
    group.add_argument(
        "--learning-rate",
        type=float,
        help=f"default {defaults.learning_rate:g}; see also --learning-rate-multiplier",
    )
    group.add_argument("--lr-schedule", choices=["cosine", "linear", "constant"])
    group.add_argument("--warmup-ratio", type=float, help=f"default {defaults.warmup_ratio}")
    group.add_argument(
        "--gradient-accumulation-steps",
        type=int,
        help=f"micro-batches per optimizer step (default {defaults.gradient_accumulation_steps})",
    )
    group.add_argument(
        "--max-seq-length",
        type=int,
        help=f"a longer row is an error, never cut (default {defaults.max_seq_length})",
    )
    group.add_argument("--packing", action="store_true", help="pack rows into sequences")
    group.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"])
    group.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    group.add_argument("--gradient-checkpointing", action="store_true")
    group.add_argument(
        "--save-every", type=int, help=f"checkpoint every N steps (default {defaults.save_every})"
    )
    group.add_argument("--eval-every", type=int, help="validation loss every N steps")
    group.add_argument("--merge", action="store_true", help="also write the merged model")
    group.add_argument(
        "--from-adapter",
        metavar="PATH|@finetuned",
        help="--method dpo: start from this supervised LoRA adapter (@finetuned: the one "
        "finetune.json records), which is then DPO's reference too (default: a fresh adapter, "
        "the base as reference)",
    )
    group.add_argument(
        "--cache-dir",
        type=Path,
        help="keep a GGUF base dequantized here (default: RUN_DIR/finetune/local/bases)",
    )


def local_training_config(args: argparse.Namespace) -> LocalTrainingConfig:
    """The settings the flags ask for (epochs, batch size and the learning-rate multiplier
    travel as ``Hyperparameters``, as for a hosted job)."""
    given: dict[str, object] = {
        name: getattr(args, name) for name in _FIELDS if getattr(args, name, None) is not None
    }
    if args.target_modules:
        given["target_modules"] = tuple(args.target_modules)
    for flag in ("packing", "gradient_checkpointing", "merge"):
        if getattr(args, flag, False):
            given[flag] = True
    try:
        return LocalTrainingConfig.model_validate(given)
    except ValidationError as e:
        error = e.errors()[0]
        flag = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "a flag"
        raise UsageError(f"{flag}: {error['msg']}") from None


def local_base(model: str | None) -> str:
    """The BASE as recorded: an existing path made absolute (so ``raftkit serve --run`` and
    ``@base`` work from any directory), a cache id as given."""
    if not model:
        raise UsageError(
            "--provider local needs --model BASE: a model folder, a model id in the local "
            "Hugging Face cache, or a .gguf file"
        )
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def local_from_adapter(value: str | None, run: RunDir) -> str | None:
    """``--from-adapter``: a folder as given, or ``@finetuned`` — the adapter of the run's
    finished local supervised job (read before the DPO job replaces ``finetune.json``)."""
    if value is None:
        return None
    if value != "@finetuned":
        folder = Path(value).expanduser()
        if not (folder / "adapter_config.json").is_file():  # said before anything is checked
            raise UsageError(f"--from-adapter: {folder} is not a LoRA adapter folder")
        return str(folder.resolve())
    try:
        state = json.loads(run.finetune_state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    if not isinstance(state, dict):
        state = {}
    if state.get("provider") == "local" and isinstance(state.get("from_adapter"), str):
        return str(state["from_adapter"])  # the DPO job started from it: run it again
    adapter = state.get("fine_tuned_model")
    if (
        not isinstance(adapter, str)
        or state.get("provider") != "local"
        or state.get("method", "supervised") != "supervised"
    ):
        raise UsageError(
            f"--from-adapter @finetuned: {run.finetune_state} records no finished local "
            f"supervised adapter; train one with `raftkit finetune {run.root} --provider local "
            "--wait`, or give the adapter's folder"
        )
    return adapter


def local_provider(args: argparse.Namespace, run: RunDir) -> LocalLoRAProvider:
    """The local provider of ``run``; ``--poll-interval`` and ``--timeout`` when given."""
    interval: float | None = getattr(args, "poll_interval", None)
    timeout: float | None = getattr(args, "timeout", None)
    poll = None
    if interval is not None or timeout is not None:
        first = interval if interval is not None else LocalLoRAProvider.default_poll.initial
        if first <= 0:
            raise UsageError("--poll-interval must be positive")
        poll = PollPolicy(initial=first, maximum=max(5.0, first), timeout=timeout)
    config = local_training_config(args) if hasattr(args, "lora_r") else None
    return LocalLoRAProvider(
        run.local_training, config=config, cache_dir=getattr(args, "cache_dir", None), poll=poll
    )


def local_job_lines(job: FineTuneJob) -> list[str]:
    """What ``raftkit jobs show`` adds for a local job: progress, folder, adapter."""
    step, total = job.raw.get("step"), job.raw.get("total_steps")
    lines = [f"  step: {step} of {total or '?'} (attempt {job.raw.get('attempt')})"]
    lines.append(f"  job folder: {job.raw.get('job_dir')} (train.log, events.jsonl)")
    return lines


def next_steps(run: RunDir) -> list[str]:
    """How to serve and evaluate a run's adapter once it is trained."""
    url = "http://127.0.0.1:8000/v1"
    return [
        f"serve base and adapter: raftkit serve --run {run.root} --port 8000",
        f"compare them: raftkit eval {run.root} --model base=@base@{url} "
        f"--model tuned=@finetuned@{url}",
    ]
