"""The settings of a local LoRA training run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Device", "LocalTrainingConfig", "LrSchedule", "Precision"]

Device = Literal["auto", "cuda", "mps", "cpu"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
LrSchedule = Literal["cosine", "linear", "constant"]

# Settings that change where or how visibly a run happens, not the weights it produces: a job
# started again with other values of these is the same job and resumes.
_NOT_IDENTITY = frozenset(
    {"device", "gradient_checkpointing", "save_every", "keep_checkpoints", "merge"}
)


class LocalTrainingConfig(BaseModel):
    """LoRA, schedule, batching, device and bookkeeping settings of a local training run.

    The defaults suit a 0.1–8 B parameter instruct model on one GPU; on a CPU use short rows,
    a small ``max_steps`` and a smaller ``gradient_accumulation_steps``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    lora_r: int = Field(default=16, ge=1, le=1024)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] | None = Field(
        default=None, description="None: every linear layer except the output head"
    )
    epochs: int = Field(default=3, ge=1, le=100)
    max_steps: int | None = Field(
        default=None, ge=1, description="optimizer steps; overrides epochs when set"
    )
    learning_rate: float = Field(default=2e-4, gt=0, lt=1)
    lr_schedule: LrSchedule = "cosine"
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    batch_size: int = Field(default=1, ge=1, le=1024)
    gradient_accumulation_steps: int = Field(default=8, ge=1, le=4096)
    max_seq_length: int = Field(default=2048, ge=16)
    packing: bool = Field(
        default=False,
        description="concatenate rows into sequences of up to max_seq_length (each row still "
        "attends only to itself)",
    )
    device: Device = "auto"
    precision: Precision = Field(
        default="auto", description="auto: bf16 on a GPU that has it, else fp16 on CUDA, fp32"
    )
    gradient_checkpointing: bool = False
    save_every: int = Field(default=50, ge=1, description="checkpoint every N optimizer steps")
    eval_every: int | None = Field(
        default=None, ge=1, description="validation loss every N steps (None: at checkpoints)"
    )
    keep_checkpoints: int = Field(default=2, ge=1)
    max_eval_rows: int = Field(default=256, ge=1)
    merge: bool = Field(default=False, description="also write the base with the adapter merged")
    seed: int = 0

    def identity(self) -> dict[str, Any]:
        """The settings that make a run a different job (everything but device and
        bookkeeping)."""
        return {
            key: value
            for key, value in self.model_dump(mode="json").items()
            if key not in _NOT_IDENTITY
        }

    @property
    def evaluation_interval(self) -> int:
        return self.eval_every or self.save_every
