"""The training process: ``python -m raftkit.students.train JOB_DIR``.

:class:`~raftkit.finetune.LocalLoRAProvider` starts it through ``--detach`` (which starts the
real trainer in its own session and returns at once, so the caller's event loop never waits on
it and the training survives the caller, like a hosted job). The trainer holds the job's lock
while it lives, reports through the job directory (:mod:`raftkit.students.jobdir`) and ends in
one of ``succeeded``, ``failed`` (with a one-line reason) or ``cancelled`` (SIGTERM/SIGINT).
A SIGKILL leaves the last checkpoint; starting the same job again resumes from it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from raftkit.dataset.export import MissingExtraError
from raftkit.errors import DatasetError, InputError, UsageError
from raftkit.students.jobdir import (
    CURVE_CSV,
    CURVE_SVG,
    EventWriter,
    JobDir,
    LocalJobSpec,
    write_json_atomically,
)

__all__ = ["detach", "main"]


def detach(job_dir: Path, lock_fd: int) -> int:
    """Start the trainer in a new session with the (locked) ``lock_fd`` and return at once."""
    jobdir = JobDir(job_dir)
    with jobdir.log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "raftkit.students.train",
                str(job_dir),
                "--lock-fd",
                str(lock_fd),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(lock_fd,),
        )
    # written before the caller hears back, so cancel_job never signals a stale pid
    write_json_atomically(jobdir.pid_path, str(process.pid))
    return 0


def _stop_flag() -> Callable[[], bool]:
    stopped = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return lambda: stopped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raftkit.students.train")
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--lock-fd", type=int, help="an inherited, already locked descriptor")
    parser.add_argument("--detach", action="store_true", help="start the trainer and return")
    args = parser.parse_args(argv)
    if args.detach:
        if args.lock_fd is None:
            parser.error("--detach needs --lock-fd")
        return detach(args.job_dir, args.lock_fd)
    jobdir = JobDir(args.job_dir)
    if args.lock_fd is None:
        jobdir.take_lock()
    write_json_atomically(jobdir.pid_path, str(os.getpid()))
    return _Trainer(jobdir, _stop_flag()).run()


class _Trainer:
    def __init__(self, jobdir: JobDir, should_stop: Callable[[], bool]) -> None:
        self.jobdir = jobdir
        self.should_stop = should_stop
        self.spec: LocalJobSpec = jobdir.read_spec()
        self.events = EventWriter(jobdir)
        self.status = jobdir.read_status()
        self.estimate: str | None = None

    def _set(self, state: str, **changes: Any) -> None:
        # one status object, shared with the loop, which updates step and tokens in place
        self.status.status = state
        for key, value in changes.items():
            setattr(self.status, key, value)
        self.jobdir.write_status(self.status)

    def _fail(self, code: str, message: str) -> int:
        self.events.emit(message, level="error", type="error", data={"code": code})
        self._set("failed", error_code=code, error=message, finished_at=int(time.time()))
        return 1

    def run(self) -> int:
        attempt = self.status.attempt + 1
        self._set(
            "validating_files",
            attempt=attempt,
            error=None,
            error_code=None,
            finished_at=None,
            started_at=self.status.started_at or int(time.time()),
        )
        self.events.emit(f"training process {os.getpid()} started (attempt {attempt})")
        try:
            import torch
        except ImportError as e:
            return self._fail("missing_extra", f"torch is not installed: {e}")
        try:
            return self._train()
        except _Stop:
            self.events.emit("training cancelled", type="cancelled")
            self._set("cancelled", finished_at=int(time.time()))
            return 0
        except torch.OutOfMemoryError:
            estimate = f"the estimate was {self.estimate}; " if self.estimate else ""
            return self._fail(
                "out_of_memory",
                f"out of memory: {estimate}lower batch_size or max_seq_length, turn on "
                "gradient_checkpointing, or use a smaller base",
            )
        except MissingExtraError as e:
            return self._fail("missing_extra", str(e).splitlines()[0])
        except UsageError as e:
            first = str(e).splitlines()[0]
            return self._fail(
                "invalid_base" if first.startswith("BASE ") else "invalid_settings", first
            )
        except InputError as e:
            return self._fail("invalid_training_file", str(e).splitlines()[0])
        except Exception as e:
            traceback.print_exc()  # into train.log
            first = (str(e).strip() or type(e).__name__).splitlines()[0]
            return self._fail("training_error", f"{type(e).__name__}: {first}")

    def _train(self) -> int:
        import torch
        from peft import LoraConfig, get_peft_model

        from raftkit.students.base import load_causal_lm
        from raftkit.students.hardware import (
            available_memory,
            choose_device,
            choose_precision,
            estimate_training_memory,
        )
        from raftkit.students.loop import Cancelled

        spec, config = self.spec, self.spec.config
        device = choose_device(config.device)
        precision = choose_precision(config.precision, device)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
        torch.manual_seed(config.seed)
        self.events.emit(f"loading {spec.base.spec} ({spec.base.kind}) for {device}, {precision}")
        model, tokenizer = load_causal_lm(spec.base, dtype=dtype, cache_dir=spec.cache_dir)
        window = spec.base.context_window or getattr(model.config, "max_position_embeddings", None)
        read = self._pairs if spec.method == "dpo" else self._rows
        train = read(spec.training_file, tokenizer, window, required=True)
        valid = (
            read(spec.validation_file, tokenizer, window, required=False)
            if spec.validation_file
            else []
        )
        if self.should_stop():
            raise _Stop
        tokens = [row.n_tokens for row in train]
        self.events.emit(
            f"training file: {len(train)} rows, {sum(tokens):,} tokens (longest {max(tokens):,}); "
            f"validation: {len(valid)} rows"
        )
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
            model.enable_input_require_grads()
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.target_modules) if config.target_modules else "all-linear",
            task_type="CAUSAL_LM",
        )
        if spec.from_adapter:  # DPO on top of a supervised adapter: it trains on
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, spec.from_adapter, is_trainable=True)
        else:
            model = get_peft_model(model, lora)
        trainable, total = model.get_nb_trainable_parameters()
        pairs = 2 if spec.method == "dpo" else 1  # a pair is two sequences in one batch
        longest = config.max_seq_length if config.packing else max(tokens) // pairs
        if config.packing:  # a packed sequence holds rows at the data's average answer share
            share = sum(row.n_trained for row in train) / max(1, sum(tokens))
            answer_tokens = math.ceil(longest * share)
        else:
            answer_tokens = max(row.n_trained for row in train)
        estimate = estimate_training_memory(
            model.config,
            total_params=int(total),
            trainable_params=int(trainable),
            precision=precision,
            batch_size=config.batch_size * pairs,
            seq_len=longest,
            gradient_checkpointing=config.gradient_checkpointing,
            logit_tokens=config.batch_size * answer_tokens,
            lora_dropout=config.lora_dropout > 0,
        )
        self.estimate = estimate.render()
        self.events.emit(
            f"memory estimate: {self.estimate}; {trainable:,} trainable of {total:,} parameters",
            data={"estimate_bytes": estimate.total, "trainable_parameters": int(trainable)},
        )
        capacity = available_memory(device)
        if capacity is not None and estimate.total > capacity:
            return self._fail(
                "out_of_memory",
                f"the memory estimate {self.estimate} is more than the {capacity / 2**30:.1f} "
                f"GiB of {device}: lower batch_size or max_seq_length, turn on "
                "gradient_checkpointing, or use a smaller base",
            )
        model.to(device)
        loop = self._loop(
            model,
            train=train,
            valid=valid,
            config=config,
            device=device,
            precision=precision,
            pad_id=int(tokenizer.pad_token_id),
            jobdir=self.jobdir,
            events=self.events,
            status=self.status,
            should_stop=self.should_stop,
        )
        self._set("running", total_steps=loop.total_steps)
        try:
            result = loop.run()
        except Cancelled as e:
            raise _Stop from e
        self._write_outputs(model, tokenizer, device, precision, len(train), len(valid))
        peak = _peak_memory(device)
        self.events.emit(
            f"training succeeded: {result.steps} steps, {result.trained_tokens:,} trained "
            f"tokens, peak memory {peak / 2**30:.2f} GiB ({device}); adapter in "
            f"{self.jobdir.adapter_dir}",
            type="succeeded",
            data={"peak_memory_bytes": peak, "estimate_bytes": estimate.total},
        )
        self._set(
            "succeeded",
            finished_at=int(time.time()),
            step=result.steps,
            trained_tokens=result.trained_tokens,
        )
        return 0

    def _loop(self, model: Any, **settings: Any) -> Any:
        from raftkit.students.loop import TrainingLoop

        if self.spec.method != "dpo":
            return TrainingLoop(model, **settings)
        from raftkit.students.dpo import DEFAULT_BETA, DpoLoop

        if self.spec.config.packing:
            raise UsageError("DPO trains on pairs of whole rows: train it with packing=False")
        return DpoLoop(
            model,
            beta=self.spec.beta or DEFAULT_BETA,
            reference_from_adapter=self.spec.from_adapter is not None,
            **settings,
        )

    def _pairs(self, path: str, tokenizer: Any, window: int | None, *, required: bool) -> list[Any]:
        from raftkit.students.pairs import load_preference_pairs

        limit = min(self.spec.config.max_seq_length, window or self.spec.config.max_seq_length)
        try:
            return load_preference_pairs(path, tokenizer, max_tokens=limit)
        except DatasetError as e:
            if required:
                raise
            self.events.emit(f"validation file left out: {e}", level="warn")
            return []

    def _rows(self, path: str, tokenizer: Any, window: int | None, *, required: bool) -> list[Any]:
        from raftkit.students.audit import audit_chat_jsonl
        from raftkit.students.template import render_chat_row

        audit = audit_chat_jsonl(
            path,
            tokenizer,
            base=self.spec.base.spec,
            context_window=window,
            max_seq_length=self.spec.config.max_seq_length,
        )
        if not audit.ok:
            first = audit.errors[0] if audit.errors else None
            where = f"line {first.line}: {first.message}" if first else "it has no rows"
            message = f"{len(audit.errors)} of {audit.rows} rows fail the template audit; {where}"
            if required:
                raise DatasetError(message, path=path)
            self.events.emit(f"validation file left out: {message}", level="warn")
            return []
        rows = []
        for line in Path(path).read_text(encoding="utf-8-sig").splitlines():
            if line.strip():
                rows.append(render_chat_row(tokenizer, json.loads(line)["messages"]))
        return rows

    def _write_outputs(
        self, model: Any, tokenizer: Any, device: str, precision: str, n_train: int, n_valid: int
    ) -> None:
        from raftkit import __version__
        from raftkit.students.report import curve_csv, curve_rows, curve_svg, model_card

        spec, jobdir = self.spec, self.jobdir
        rows = curve_rows(jobdir.events())
        staging = _fresh(jobdir.root / ".adapter.partial")
        for config in model.peft_config.values():
            config.base_model_name_or_path = spec.base.spec
        model.save_pretrained(staging)
        (staging / CURVE_CSV).write_text(curve_csv(rows), encoding="utf-8")
        title = f"{spec.suffix or 'RAFT student'} on {Path(spec.base.spec).name}"
        (staging / CURVE_SVG).write_text(curve_svg(rows, title=title), encoding="utf-8")
        card = model_card(
            spec,
            rows=rows,
            train_rows=n_train,
            valid_rows=n_valid,
            trained_tokens=self.status.trained_tokens,
            device=device,
            precision=precision,
            version=__version__,
        )
        (staging / "README.md").write_text(card, encoding="utf-8")
        identity = {
            "base": spec.base.spec,
            "base_fingerprint": spec.base.fingerprint,
            "job": spec.id,
            "raftkit_version": __version__,
        }
        (staging / "raftkit.json").write_text(json.dumps(identity, indent=2), encoding="utf-8")
        _swap(staging, jobdir.adapter_dir)
        # llama.cpp's convert_lora_to_gguf.py --base needs the base's config.json
        base_config = _fresh(jobdir.root / ".base_config.partial")
        model.get_base_model().config.save_pretrained(base_config)
        tokenizer.save_pretrained(base_config)
        _swap(base_config, jobdir.base_config_dir)
        if spec.config.merge:
            self.events.emit("merging the adapter into the base")
            merged = _fresh(jobdir.root / ".merged.partial")
            plain = model.merge_and_unload()
            plain.save_pretrained(merged)
            tokenizer.save_pretrained(merged)
            _swap(merged, jobdir.merged_dir)


class _Stop(Exception):
    pass


def _peak_memory(device: str) -> int:
    """Peak bytes of this attempt: GPU memory allocated on CUDA, else the process's peak RSS."""
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS counts bytes


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _swap(staging: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)


if __name__ == "__main__":
    sys.exit(main())
