"""The LoRA training loop: batches, the assistant-only loss, the schedule, checkpoints, resume.

Written out instead of delegated to a trainer library so every choice that decides what the
student learns is on this page:

- the loss is the sum of token cross-entropies over the trained (assistant) tokens of all the
  micro-batches of one optimizer step, divided by their count — each trained token weighs the
  same whatever the batch size, padding or gradient accumulation;
- the micro-batch sequence is a pure function of the seed (rows shuffled per epoch), so a run
  resumed from the checkpoint of step ``k`` trains step ``k + 1`` on the very batches an
  uninterrupted run would; the optimizer, schedule, loss scaler and random states are restored
  with the adapter weights;
- with ``packing`` rows share a sequence with positions restarting at 0 per row and no padding
  mask, which transformers turns into a block-diagonal attention: no row sees another.

Runs in the training process only (it imports torch).
"""

from __future__ import annotations

import inspect
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from raftkit.errors import UsageError
from raftkit.students.config import LocalTrainingConfig
from raftkit.students.jobdir import EventWriter, JobDir, LocalJobStatus, write_json_atomically
from raftkit.students.template import IGNORE_INDEX, RenderedRow

__all__ = ["Cancelled", "LoopResult", "TrainingLoop", "lr_factor"]


class Cancelled(Exception):
    """The trainer was asked to stop (SIGTERM, SIGINT)."""


@dataclass(frozen=True)
class LoopResult:
    steps: int
    trained_tokens: int
    train_loss: float | None
    valid_loss: float | None


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """The learning-rate multiplier before optimizer step ``step`` (0-based)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class _Micro:
    """One forward pass: rows (or packed groups of rows) padded to one length."""

    sequences: list[list[RenderedRow]]

    @property
    def trained(self) -> int:
        return sum(row.n_trained for group in self.sequences for row in group)

    @property
    def tokens(self) -> int:
        return sum(row.n_tokens for group in self.sequences for row in group)

    @property
    def units(self) -> int:
        """What a step's loss is averaged over: trained tokens here, pairs in DPO."""
        return self.trained


class TrainingLoop:
    """Trains the PEFT ``model`` on ``train`` rows; see the module docstring."""

    def __init__(
        self,
        model: Any,
        *,
        train: Sequence[RenderedRow],
        valid: Sequence[RenderedRow],
        config: LocalTrainingConfig,
        device: str,
        precision: str,
        pad_id: int,
        jobdir: JobDir,
        events: EventWriter,
        status: LocalJobStatus,
        should_stop: Callable[[], bool],
    ) -> None:
        self.model = model
        self.train_rows = list(train)
        self.valid_rows = list(valid)[: config.max_eval_rows]
        self.config = config
        self.device = device
        self.precision = precision
        self.pad_id = pad_id
        self.jobdir = jobdir
        self.events = events
        self.status = status
        self.should_stop = should_stop
        self._epochs: dict[int, list[_Micro]] = {}
        per_epoch = len(self._epoch(0))
        accumulation = config.gradient_accumulation_steps
        self.total_steps = config.max_steps or math.ceil(
            sum(len(self._epoch(e)) for e in range(config.epochs)) / accumulation
        )
        self.per_epoch = per_epoch
        self.warmup = round(config.warmup_ratio * self.total_steps)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: lr_factor(step, self.total_steps, self.warmup, config.lr_schedule),
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        forward = model.get_base_model().forward
        self.slices_logits = "logits_to_keep" in inspect.signature(forward).parameters

    # ------------------------------------------------------------------ batches

    def _epoch(self, epoch: int) -> list[_Micro]:
        if epoch not in self._epochs:
            order = list(range(len(self.train_rows)))
            random.Random(self.config.seed * 1_000_003 + epoch).shuffle(order)
            rows = [self.train_rows[i] for i in order]
            groups = self._pack(rows) if self.config.packing else [[row] for row in rows]
            size = self.config.batch_size
            self._epochs[epoch] = [
                _Micro(groups[i : i + size]) for i in range(0, len(groups), size)
            ]
            self._epochs.pop(epoch - 2, None)  # keep memory flat over many epochs
        return self._epochs[epoch]

    def _pack(self, rows: list[RenderedRow]) -> list[list[RenderedRow]]:
        groups: list[list[RenderedRow]] = []
        length = 0
        for row in rows:
            if groups and length + row.n_tokens <= self.config.max_seq_length:
                groups[-1].append(row)
                length += row.n_tokens
            else:
                groups.append([row])
                length = row.n_tokens
        return groups

    def _micro_batches(self, step: int) -> list[_Micro]:
        """The micro-batches of optimizer step ``step``: the seeded stream, epoch after
        epoch, cut into runs of ``gradient_accumulation_steps``."""
        accumulation = self.config.gradient_accumulation_steps
        first = step * accumulation
        epoch, offset = divmod(first, self.per_epoch) if not self.config.packing else (0, first)
        if self.config.packing:  # packed epochs differ in length: walk them
            while offset >= len(self._epoch(epoch)):
                offset -= len(self._epoch(epoch))
                epoch += 1
        out: list[_Micro] = []
        while len(out) < accumulation:
            batches = self._epoch(epoch)
            out.extend(batches[offset : offset + accumulation - len(out)])
            offset = 0
            epoch += 1
            if self.config.max_steps is None and epoch >= self.config.epochs:
                break
        return out

    def _tensors(self, micro: _Micro) -> dict[str, torch.Tensor]:
        ids: list[list[int]] = []
        labels: list[list[int]] = []
        positions: list[list[int]] = []
        for group in micro.sequences:
            ids.append([t for row in group for t in row.input_ids])
            labels.append([t for row in group for t in row.labels])
            positions.append([p for row in group for p in range(row.n_tokens)])
        width = max(len(seq) for seq in ids)
        mask = [[1] * len(seq) + [0] * (width - len(seq)) for seq in ids]
        for seq, lab, pos in zip(ids, labels, positions, strict=True):
            pad = width - len(seq)
            seq += [self.pad_id] * pad
            lab += [IGNORE_INDEX] * pad
            pos += list(range(pad))
        batch = {
            "input_ids": torch.tensor(ids, device=self.device),
            "labels": torch.tensor(labels, device=self.device),
        }
        if self.config.packing:
            batch["position_ids"] = torch.tensor(positions, device=self.device)
        else:
            batch["attention_mask"] = torch.tensor(mask, device=self.device)
        return batch

    # ------------------------------------------------------------------ one pass

    def _micro_loss(self, micro: Any) -> tuple[torch.Tensor, int, int]:
        """The summed loss of one micro-batch, its units and how many were right."""
        return self._forward(self._tensors(micro))

    def _forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, int]:
        """Summed cross-entropy over trained tokens, their count, and how many were argmax-
        correct. Logits are computed only where the next token is trained: in RAFT rows most
        tokens are documents, and the vocabulary projection of those would be wasted."""
        labels = batch.pop("labels")
        targets = labels[:, 1:]
        keep = (targets != IGNORE_INDEX).any(dim=0).nonzero().flatten()
        with torch.autocast(
            device_type=self.device,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            if self.slices_logits:
                logits = self.model(**batch, use_cache=False, logits_to_keep=keep).logits
            else:
                logits = self.model(**batch, use_cache=False).logits[:, :-1][:, keep]
        kept = logits.float()
        targets = targets[:, keep]
        loss = torch.nn.functional.cross_entropy(
            kept.reshape(-1, kept.size(-1)),
            targets.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        trained = targets != IGNORE_INDEX
        correct = int(((kept.argmax(-1) == targets) & trained).sum())
        return loss, int(trained.sum()), correct

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float] | None:
        """Mean loss and token accuracy over the validation rows."""
        if not self.valid_rows:
            return None
        self.model.eval()
        total = count = correct = 0.0
        size = self.config.batch_size
        for start in range(0, len(self.valid_rows), size):
            chunk = [[row] for row in self.valid_rows[start : start + size]]
            loss, n, right = self._forward(self._tensors(_Micro(chunk)))
            total += float(loss)
            count += n
            correct += right
        self.model.train()
        return (total / count, correct / count) if count else None

    # ------------------------------------------------------------------ the loop

    @torch.no_grad()
    def check_packing(self) -> None:
        """Refuse to pack where this transformers version would let packed rows attend to
        each other (it isolates them only for position ids that restart and no cache)."""
        ids = torch.arange(5, 13, device=self.device).unsqueeze(0)
        positions = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3]], device=self.device)
        self.model.eval()
        packed = self.model(input_ids=ids, position_ids=positions, use_cache=False).logits
        alone = self.model(
            input_ids=ids[:, 4:], position_ids=positions[:, 4:], use_cache=False
        ).logits
        self.model.train()
        if not torch.allclose(packed[0, 4:].float(), alone[0].float(), rtol=1e-2, atol=1e-2):
            raise UsageError(
                "packing is not safe with this model and transformers version (packed rows "
                "would attend to each other); train with packing=False"
            )

    def run(self) -> LoopResult:
        if self.config.packing:
            self.check_packing()
        start = self._resume()
        if start == 0:
            self.events.emit(f"training started: {self.total_steps} steps")
        self.model.train()
        train_loss: float | None = None
        valid: tuple[float, float] | None = None
        for step in range(start, self.total_steps):
            began = time.perf_counter()
            micros = self._micro_batches(step)
            trained_total = sum(m.trained for m in micros)
            units = sum(m.units for m in micros)
            loss_sum = 0.0
            correct = 0
            for micro in micros:
                if self.should_stop():
                    raise Cancelled
                loss, _, right = self._micro_loss(micro)
                scaled: Any = self.scaler.scale(loss / max(1, units))
                scaled.backward()
                loss_sum += float(loss.detach())
                correct += right
            self.scaler.unscale_(self.optimizer)
            if self.config.max_grad_norm is not None:
                params = [p for g in self.optimizer.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            learning_rate = float(self.scheduler.get_last_lr()[0])
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            elapsed = time.perf_counter() - began
            done = step + 1
            tokens = sum(m.tokens for m in micros)
            train_loss = loss_sum / max(1, units)
            last = done == self.total_steps
            valid = self.evaluate() if last or done % self.config.evaluation_interval == 0 else None
            self.status.step = done
            self.status.trained_tokens += trained_total
            self._report(
                done,
                train_loss,
                correct / max(1, units),
                valid,
                learning_rate,
                tokens / elapsed if elapsed > 0 else 0.0,
            )
            if done % self.config.save_every == 0 and not last:
                self._save_checkpoint(done, train_loss, valid)
            self.jobdir.write_status(self.status)
        return LoopResult(
            steps=self.total_steps,
            trained_tokens=self.status.trained_tokens,
            train_loss=train_loss,
            valid_loss=valid[0] if valid else None,
        )

    def _report(
        self,
        step: int,
        train_loss: float,
        train_accuracy: float,
        valid: tuple[float, float] | None,
        learning_rate: float,
        tokens_per_second: float,
    ) -> None:
        data: dict[str, Any] = {
            "step": step,
            "total_steps": self.total_steps,
            "epoch": round(step * self.config.gradient_accumulation_steps / self.per_epoch, 3),
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "learning_rate": learning_rate,
            "tokens_per_second": tokens_per_second,
        }
        text = (
            f"step {step}/{self.total_steps}: train loss {train_loss:.4f}, lr "
            f"{learning_rate:.2e}, {tokens_per_second:,.0f} tokens/s"
        )
        extra, said = self._step_metrics()
        data.update(extra)
        text += said
        if valid is not None:
            data["valid_loss"], data["valid_accuracy"] = valid
            text += f", valid loss {valid[0]:.4f}"
        self.events.emit(text, type="metrics", data=data)

    def _step_metrics(self) -> tuple[dict[str, float], str]:
        """More metrics of the step just made, and how the status line says them."""
        return {}, ""

    # ------------------------------------------------------------------ checkpoints

    def _save_checkpoint(
        self, step: int, train_loss: float, valid: tuple[float, float] | None
    ) -> None:
        root = self.jobdir.checkpoints_dir
        root.mkdir(parents=True, exist_ok=True)
        target = root / f"step-{step:06d}"
        staging = root / f".step-{step:06d}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        self.model.save_pretrained(staging)
        torch.save(
            {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if self.device == "cuda" else [],
                "trained_tokens": self.status.trained_tokens,
            },
            staging / "trainer_state.pt",
        )
        metrics = {"train_loss": train_loss}
        if valid is not None:
            metrics["valid_loss"] = valid[0]
        state = {"step": step, "created_at": int(time.time()), "metrics": metrics}
        write_json_atomically(staging / "state.json", _json(state))
        shutil.rmtree(target, ignore_errors=True)
        staging.replace(target)
        for _, old in list(self.jobdir.checkpoints())[self.config.keep_checkpoints :]:
            shutil.rmtree(old, ignore_errors=True)
        self.events.emit(
            f"checkpoint saved at step {step}",
            type="checkpoint",
            data={"step": step, "path": str(target)},
        )

    def _resume(self) -> int:
        latest = next(iter(self.jobdir.checkpoints()), None)
        if latest is None:
            return 0
        step, folder = latest
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(
            self.model, load_file(str(folder / "adapter_model.safetensors"), device=self.device)
        )
        state = torch.load(folder / "trainer_state.pt", map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.device == "cuda" and state["cuda_rng"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        self.status.trained_tokens = int(state["trained_tokens"])
        self.status.step = step
        self.events.emit(
            f"resumed from the checkpoint at step {step}",
            type="resume",
            data={"step": step, "path": str(folder)},
        )
        return step


def _json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2)
