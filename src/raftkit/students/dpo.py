"""Direct Preference Optimization of a LoRA adapter (Rafailov et al., 2023), written in torch.

For a pair with chosen answer ``c`` and rejected answer ``r`` to prompt ``x``:

    loss = -log sigmoid(beta * ((log pi(c|x) - log ref(c|x)) - (log pi(r|x) - log ref(r|x))))

- ``log pi(y|x)`` is the sum of the token log-probabilities of the answer and its end-of-turn
  token only (the trained span of :func:`~raftkit.students.template.render_chat_row`), never of
  the prompt; a batch holds the chosen rows then the rejected rows, padded to one length.
- The reference is the same base with the adapter switched off (peft's ``disable_adapter``):
  one copy of the model in memory. A reference never changes, so its log-probabilities are
  computed once, before the first step, and kept in the job folder (a resumed job reads them
  instead of asking an adapter that has moved). Starting from a supervised adapter
  (``from_adapter``), the reference is that adapter as loaded — the usual SFT-then-DPO recipe.
- The reported rewards are ``beta * (log pi - log ref)``; accuracy is the share of pairs whose
  chosen reward is above the rejected one; the margin is their mean difference.

No TRL: the loss is a few lines and the loop (schedule, accumulation, checkpoints, resume) is
:class:`~raftkit.students.loop.TrainingLoop`'s. Runs in the training process only (torch).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from raftkit.students.jobdir import write_json_atomically
from raftkit.students.loop import TrainingLoop
from raftkit.students.pairs import RenderedPair
from raftkit.students.template import IGNORE_INDEX

__all__ = ["DEFAULT_BETA", "DpoLoop", "dpo_loss", "pair_batch", "sequence_logps"]

#: beta when none is given: the DPO paper's and TRL's default.
DEFAULT_BETA = 0.1


@dataclass
class _PairMicro:
    """One forward pass over some pairs (their indexes kept for the reference log-probs)."""

    pairs: list[RenderedPair]
    indexes: list[int]

    @property
    def trained(self) -> int:
        return sum(pair.n_trained for pair in self.pairs)

    @property
    def tokens(self) -> int:
        return sum(pair.n_tokens for pair in self.pairs)

    @property
    def units(self) -> int:
        return len(self.pairs)


def pair_batch(pairs: Sequence[RenderedPair], pad_id: int, device: str = "cpu") -> dict[str, Any]:
    """``input_ids``, ``attention_mask`` and ``labels`` of the chosen rows then the rejected
    rows, right-padded; labels are :data:`IGNORE_INDEX` outside the answer spans."""
    rows = [pair.chosen for pair in pairs] + [pair.rejected for pair in pairs]
    width = max(row.n_tokens for row in rows)
    ids, mask, labels = [], [], []
    for row in rows:
        pad = width - row.n_tokens
        ids.append(row.input_ids + [pad_id] * pad)
        mask.append([1] * row.n_tokens + [0] * pad)
        labels.append(row.labels + [IGNORE_INDEX] * pad)
    return {
        "input_ids": torch.tensor(ids, device=device),
        "attention_mask": torch.tensor(mask, device=device),
        "labels": torch.tensor(labels, device=device),
    }


def sequence_logps(model: Any, batch: dict[str, Any], *, slices_logits: bool = False) -> Any:
    """The summed log-probability of each row's trained tokens (one value per row). Logits
    are computed only where some row has a trained next token (``slices_logits``: the model
    takes ``logits_to_keep``), which skips the vocabulary projection of the documents."""
    targets = batch["labels"][:, 1:]
    keep = (targets != IGNORE_INDEX).any(dim=0).nonzero().flatten()
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if slices_logits:
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
    else:
        logits = model(**inputs, use_cache=False).logits[:, :-1][:, keep]
    targets = targets[:, keep]
    trained = targets != IGNORE_INDEX
    picked = torch.gather(
        torch.log_softmax(logits.float(), dim=-1), 2, targets.clamp(min=0).unsqueeze(-1)
    ).squeeze(-1)
    return (picked * trained).sum(dim=-1)


def dpo_loss(
    policy_chosen: Any, policy_rejected: Any, ref_chosen: Any, ref_rejected: Any, beta: float
) -> tuple[Any, Any, Any]:
    """Per-pair DPO losses and the chosen and rejected rewards (detached)."""
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    losses = -torch.nn.functional.logsigmoid(chosen - rejected)
    return losses, chosen.detach(), rejected.detach()


class DpoLoop(TrainingLoop):
    """:class:`TrainingLoop` over preference pairs with the DPO loss (see the module
    docstring). ``train``/``valid`` are :class:`RenderedPair` lists; packing is refused."""

    def __init__(
        self,
        model: Any,
        *,
        train: Sequence[RenderedPair],
        valid: Sequence[RenderedPair],
        beta: float,
        reference_from_adapter: bool,
        **settings: Any,
    ) -> None:
        # set before TrainingLoop.__init__, which builds the first epoch from them
        self.pairs = list(train)
        self.valid_pairs = list(valid)[: settings["config"].max_eval_rows]
        self.beta = beta
        self.reference_from_adapter = reference_from_adapter
        self._sums = [0.0, 0.0, 0]  # chosen rewards, rejected rewards, pairs of this step
        super().__init__(model, train=[], valid=[], **settings)
        self.reference = self._reference()

    def _epoch(self, epoch: int) -> list[Any]:
        if epoch not in self._epochs:
            order = list(range(len(self.pairs)))
            random.Random(self.config.seed * 1_000_003 + epoch).shuffle(order)
            size = self.config.batch_size
            self._epochs[epoch] = [
                _PairMicro([self.pairs[i] for i in chunk], chunk)  # type: ignore[misc]
                for chunk in (order[i : i + size] for i in range(0, len(order), size))
            ]
            self._epochs.pop(epoch - 2, None)
        return self._epochs[epoch]

    # ------------------------------------------------------------------ the reference

    @torch.no_grad()
    def _logps(self, pairs: Sequence[RenderedPair], *, reference: bool) -> list[float]:
        out: list[float] = []
        self.model.eval()
        for start in range(0, len(pairs), self.config.batch_size):
            batch = pair_batch(pairs[start : start + self.config.batch_size], self.pad_id)
            batch = {k: v.to(self.device) for k, v in batch.items()}
            with self._autocast():
                if reference and not self.reference_from_adapter:
                    with self.model.disable_adapter():
                        values = sequence_logps(self.model, batch, slices_logits=self.slices_logits)
                else:
                    values = sequence_logps(self.model, batch, slices_logits=self.slices_logits)
            half = len(values) // 2
            out += [
                float(v) for pair in zip(values[:half], values[half:], strict=True) for v in pair
            ]
        self.model.train()
        return out  # chosen, rejected, chosen, rejected, ...

    def _reference(self) -> dict[str, list[float]]:
        path = self.jobdir.root / "reference_logps.json"
        if path.is_file():
            stored: dict[str, list[float]] = json.loads(path.read_text(encoding="utf-8"))
            return stored
        source = "the starting adapter" if self.reference_from_adapter else "adapter off"
        self.events.emit(
            f"reference log-probabilities ({source}) of {len(self.pairs)} train and "
            f"{len(self.valid_pairs)} validation pairs"
        )
        found = {
            "train": self._logps(self.pairs, reference=True),
            "valid": self._logps(self.valid_pairs, reference=True),
        }
        write_json_atomically(path, json.dumps(found))
        return found

    def _autocast(self) -> Any:
        return torch.autocast(
            device_type=self.device,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        )

    # ------------------------------------------------------------------ the loss

    def _pair_loss(
        self, micro: _PairMicro, part: str
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = {k: v.to(self.device) for k, v in pair_batch(micro.pairs, self.pad_id).items()}
        with self._autocast():
            values = sequence_logps(self.model, batch, slices_logits=self.slices_logits)
        half = len(micro.pairs)
        stored = self.reference[part]
        ref = torch.tensor(
            [[stored[2 * i], stored[2 * i + 1]] for i in micro.indexes], device=self.device
        )
        return dpo_loss(values[:half], values[half:], ref[:, 0], ref[:, 1], self.beta)

    def _micro_loss(self, micro: Any) -> tuple[torch.Tensor, int, int]:
        losses, chosen, rejected = self._pair_loss(micro, "train")
        self._sums[0] += float(chosen.sum())
        self._sums[1] += float(rejected.sum())
        self._sums[2] += len(micro.pairs)
        return losses.sum(), len(micro.pairs), int((chosen > rejected).sum())

    def _step_metrics(self) -> tuple[dict[str, float], str]:
        chosen, rejected, count = self._sums
        self._sums = [0.0, 0.0, 0]
        n = max(1, int(count))
        data = {
            "chosen_reward": chosen / n,
            "rejected_reward": rejected / n,
            "reward_margin": (chosen - rejected) / n,
        }
        return data, f", reward margin {data['reward_margin']:.4f}"

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float] | None:
        """Mean DPO loss and preference accuracy over the validation pairs."""
        if not self.valid_pairs:
            return None
        self.model.eval()
        total = right = 0.0
        size = self.config.batch_size
        for start in range(0, len(self.valid_pairs), size):
            indexes = list(range(start, min(start + size, len(self.valid_pairs))))
            micro = _PairMicro([self.valid_pairs[i] for i in indexes], indexes)
            losses, chosen, rejected = self._pair_loss(micro, "valid")
            total += float(losses.sum())
            right += float((chosen > rejected).sum())
        self.model.train()
        return total / len(self.valid_pairs), right / len(self.valid_pairs)
