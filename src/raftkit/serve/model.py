"""A local causal LM, and LoRA adapters on it, answering chat requests with ``generate``.

One model is loaded; each adapter is attached under a name (as vLLM's ``--lora-modules``
does), and a request chooses the base or an adapter by its ``model`` field — the base runs with
the adapters switched off, so comparing base and tuned models needs one load, not two.

The prompt is the student's own chat template with ``add_generation_prompt=True``, tokenized
exactly as training tokenized it (:mod:`raftkit.students.template`), so the served model sees
what it was trained on. Generation is blocking and not thread-safe: callers serialise it (the
app runs one request at a time in a worker thread).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from raftkit.errors import UsageError
from raftkit.students import Device, StudentBase, load_causal_lm, require_train, resolve_base

__all__ = ["ChatRequest", "Completion", "LocalChatModel", "RequestError"]

logger = logging.getLogger("raftkit.serve")

FinishReason = Literal["stop", "length"]


class RequestError(Exception):
    """A request the model cannot serve; becomes an OpenAI-shaped error response."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, str]]
    model: str
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


class LocalChatModel:
    """A loaded base model with optional adapters; see the module docstring."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        base: StudentBase,
        base_name: str,
        adapters: Sequence[str] = (),
        device: str = "cpu",
        default_max_tokens: int = 1024,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.base = base
        self.base_name = base_name
        self.adapters = list(adapters)
        self.device = device
        self.default_max_tokens = default_max_tokens
        window = base.context_window or getattr(model.config, "max_position_embeddings", None)
        self.context_window = int(window or 2048)
        eos = getattr(model.generation_config, "eos_token_id", None) or tokenizer.eos_token_id
        self.eos_ids = {int(i) for i in (eos if isinstance(eos, list) else [eos])}

    @classmethod
    def load(
        cls,
        base: str | os.PathLike[str],
        *,
        adapters: Mapping[str, str | os.PathLike[str]] | None = None,
        served_name: str | None = None,
        device: Device = "auto",
        cache_dir: str | os.PathLike[str] | None = None,
        default_max_tokens: int = 1024,
    ) -> LocalChatModel:
        """Load ``base`` and attach ``adapters`` (name → PEFT adapter folder). Blocking."""
        student = resolve_base(base)
        require_train("serving a local model", gguf=student.is_gguf)
        from raftkit.students.hardware import choose_device

        chosen = choose_device(device)
        model, tokenizer = load_causal_lm(student, cache_dir=cache_dir)
        names = dict(adapters or {})
        base_name = served_name or student.spec
        if base_name in names:
            raise UsageError(f"adapter name {base_name!r} is the base model's name")
        if names:
            model = _attach(model, student, names)
        model.to(chosen)
        model.eval()
        return cls(
            model,
            tokenizer,
            base=student,
            base_name=base_name,
            adapters=list(names),
            device=chosen,
            default_max_tokens=default_max_tokens,
        )

    @property
    def names(self) -> list[str]:
        """The model names requests may use: the base first, then the adapters."""
        return [self.base_name, *self.adapters]

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        try:
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        except Exception as e:
            raise RequestError(
                400, f"the chat template cannot render these messages: {e}", param="messages"
            ) from e
        return [int(i) for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]

    def complete(self, request: ChatRequest) -> Completion:
        """One chat completion (blocking)."""
        import torch

        if request.model not in self.names:
            raise RequestError(
                404,
                f"the model {request.model!r} does not exist; this server has "
                f"{', '.join(repr(n) for n in self.names)}",
                code="model_not_found",
                param="model",
            )
        prompt = self.prompt_ids(request.messages)
        room = self.context_window - len(prompt)
        if room <= 0:
            raise RequestError(
                400,
                f"the prompt is {len(prompt):,} tokens; the model's context window is "
                f"{self.context_window:,}",
                code="context_length_exceeded",
                param="messages",
            )
        wanted = request.max_tokens if request.max_tokens is not None else self.default_max_tokens
        limit = min(wanted, room)
        options: dict[str, Any] = {
            "max_new_tokens": limit,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": sorted(self.eos_ids),
        }
        temperature = 1.0 if request.temperature is None else request.temperature
        if temperature > 0:
            top_p = 1.0 if request.top_p is None else request.top_p
            options.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if request.stop:
            options.update(stop_strings=list(request.stop), tokenizer=self.tokenizer)
        if request.seed is not None:
            torch.manual_seed(request.seed)
        ids = torch.tensor([prompt], device=self.device)
        with torch.inference_mode(), self._switched(request.model):
            output = self.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), **options
            )
        new = [int(t) for t in output[0, len(prompt) :]]
        finish: FinishReason = "length" if len(new) >= limit else "stop"
        if new and new[-1] in self.eos_ids:
            finish = "stop"
            new_text_ids = new[:-1]
        else:
            new_text_ids = new
        text = str(self.tokenizer.decode(new_text_ids, skip_special_tokens=True))
        cut = min((text.find(s) for s in request.stop if s and s in text), default=-1)
        if cut >= 0:  # OpenAI leaves the stop sequence out of the answer
            text, finish = text[:cut], "stop"
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=len(prompt),
            completion_tokens=len(new),
        )

    def _switched(self, name: str) -> contextlib.AbstractContextManager[Any]:
        if not self.adapters:
            return contextlib.nullcontext()
        if name == self.base_name:
            return self.model.disable_adapter()  # type: ignore[no-any-return]
        self.model.set_adapter(name)
        return contextlib.nullcontext()


def _attach(
    model: Any, student: StudentBase, adapters: Mapping[str, str | os.PathLike[str]]
) -> Any:
    from peft import PeftModel

    peft_model: Any = None
    for name, folder in adapters.items():
        path = Path(folder)
        if not (path / "adapter_config.json").is_file():
            raise UsageError(
                f"adapter {name}: {path} has no adapter_config.json (not a PEFT adapter)"
            )
        _check_base(name, path, student)
        try:
            if peft_model is None:
                peft_model = PeftModel.from_pretrained(model, str(path), adapter_name=name)
            else:
                peft_model.load_adapter(str(path), adapter_name=name)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            first = (str(e).strip() or type(e).__name__).splitlines()[0]
            raise UsageError(f"adapter {name} ({path}) does not fit {student.spec}: {first}") from e
    return peft_model


def _check_base(name: str, path: Path, student: StudentBase) -> None:
    try:
        recorded = json.loads((path / "raftkit.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # an adapter raftkit did not train: PEFT checks the shapes
    fingerprint = recorded.get("base_fingerprint")
    if fingerprint and fingerprint != student.fingerprint:
        logger.warning(
            "adapter %s was trained on %s, not on %s; serving it anyway",
            name,
            recorded.get("base"),
            student.spec,
        )
