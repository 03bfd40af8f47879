"""The student's BASE: a Hugging Face model folder, a model in the local HF cache, or a GGUF file.

:func:`resolve_base` answers "what is this BASE?" without importing torch: it checks that the
path exists and holds a causal language model, reads the architecture and context window from
``config.json`` or the GGUF header, and fingerprints the files (the job identity of a local
training run includes it). Loading (:func:`load_causal_lm`, :func:`load_tokenizer`) needs the
``train`` extra.

A GGUF file is dequantized by transformers on every load, which takes a while; given a
``cache_dir``, the dequantized model is saved there once as an ordinary model folder (in the
dtype it was loaded in) and later loads read that folder instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from raftkit.errors import UsageError
from raftkit.students.extra import require_train
from raftkit.students.gguf_header import GGUF_MAGIC, read_gguf_metadata

__all__ = [
    "BaseKind",
    "StudentBase",
    "dequantized_dir",
    "load_causal_lm",
    "load_tokenizer",
    "resolve_base",
]

BaseKind = Literal["folder", "hf-cache", "gguf"]

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
# llama.cpp architectures that are encoders, not causal language models
_GGUF_ENCODERS = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder"})
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_SAMPLE = 8 << 20  # bytes hashed at the head of each weight file (the GGUF metadata lives there)
_TAIL = 1 << 20
_TEXT_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


class StudentBase(BaseModel):
    """A resolved BASE. ``path`` is the model folder (or the GGUF file)."""

    model_config = ConfigDict(frozen=True)

    spec: str
    """The BASE as the caller wrote it."""
    kind: BaseKind
    path: str
    architecture: str | None = None
    context_window: int | None = None
    fingerprint: str
    """sha256 over the config, tokenizer and a sample of every weight file: moving the files
    keeps it, changing them changes it."""

    @property
    def is_gguf(self) -> bool:
        return self.kind == "gguf"

    @property
    def folder(self) -> Path:
        """The folder transformers loads from (the GGUF file's folder for a GGUF base)."""
        path = Path(self.path)
        return path.parent if self.is_gguf else path


def resolve_base(spec: str | os.PathLike[str]) -> StudentBase:
    """What ``spec`` names; a :class:`~raftkit.errors.UsageError` in one line when it is not a
    usable causal language model. Reads only small files and the GGUF header."""
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.is_file():
        return _resolve_gguf(text, path)
    if path.is_dir():
        return _resolve_folder(text, path, "folder")
    if _HUB_ID.match(text) and not text.startswith((".", "~")):
        snapshot = _cached_snapshot(text)
        if snapshot is not None:
            return _resolve_folder(text, snapshot, "hf-cache")
    raise UsageError(
        f"BASE {text!r} is neither a file, a folder, nor a model in the local Hugging Face "
        "cache; give a model folder, a .gguf file, or download the model first "
        f"(huggingface-cli download {text})"
    )


def _resolve_gguf(spec: str, path: Path) -> StudentBase:
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise UsageError(
            f"BASE {spec} is a file but not a GGUF model; give a .gguf file, a Hugging Face "
            "model folder or a model id in the local Hugging Face cache"
        )
    meta = read_gguf_metadata(path, ["{arch}.context_length"])
    architecture = meta.get("general.architecture")
    if not isinstance(architecture, str):
        raise UsageError(f"BASE {spec}: the GGUF header names no general.architecture")
    if architecture in _GGUF_ENCODERS:
        raise UsageError(
            f"BASE {spec} is a GGUF '{architecture}' model, an encoder, not a causal language model"
        )
    window = meta.get("{arch}.context_length")
    digest = hashlib.sha256(b"gguf\0")
    _hash_sample(digest, path)
    return StudentBase(
        spec=spec,
        kind="gguf",
        path=str(path.resolve()),
        architecture=architecture,
        context_window=int(window) if isinstance(window, int) else None,
        fingerprint=digest.hexdigest(),
    )


def _resolve_folder(spec: str, folder: Path, kind: BaseKind) -> StudentBase:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UsageError(
            f"BASE {spec} is a folder without config.json, not a Hugging Face model folder"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise UsageError(f"BASE {spec}: config.json is not readable JSON ({e})") from e
    if not isinstance(config, dict):
        raise UsageError(f"BASE {spec}: config.json is not a JSON object")
    architectures = [str(a) for a in config.get("architectures") or []]
    if architectures and not any(a.endswith(_CAUSAL_SUFFIXES) for a in architectures):
        raise UsageError(
            f"BASE {spec} is a {', '.join(architectures)} model, not a causal language model "
            "(a *ForCausalLM model is needed)"
        )
    weights = sorted(
        p for p in folder.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)
    )
    if not weights:
        raise UsageError(f"BASE {spec} has a config.json but no weight files")
    digest = hashlib.sha256(b"folder\0")
    for name in _TEXT_FILES:
        candidate = folder / name
        if candidate.is_file():
            digest.update(name.encode() + b"\0" + candidate.read_bytes() + b"\0")
    for weight in weights:
        digest.update(weight.name.encode() + b"\0")
        _hash_sample(digest, weight)
    text_config = config.get("text_config")
    window = _window_of(config) or (
        _window_of(text_config) if isinstance(text_config, dict) else None
    )
    return StudentBase(
        spec=spec,
        kind=kind,
        path=str(folder.resolve()),
        architecture=architectures[0] if architectures else config.get("model_type"),
        context_window=window,
        fingerprint=digest.hexdigest(),
    )


def _window_of(config: dict[str, Any]) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _hash_sample(digest: Any, path: Path) -> None:
    """Size, the first 8 MiB and the last 1 MiB: enough to tell model files apart, fast for
    files of many gigabytes."""
    size = path.stat().st_size
    digest.update(str(size).encode() + b"\0")
    with path.open("rb") as handle:
        digest.update(handle.read(_SAMPLE))
        if size > _SAMPLE + _TAIL:
            handle.seek(size - _TAIL)
            digest.update(handle.read(_TAIL))


def _cached_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        return Path(snapshot_download(repo_id=repo_id, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError and friends: not in the cache
        return None


# ---------------------------------------------------------------------------- loading


def dequantized_dir(base: StudentBase, cache_dir: str | os.PathLike[str], dtype: str) -> Path:
    """Where :func:`load_causal_lm` keeps a GGUF base dequantized to ``dtype``."""
    stem = Path(base.path).stem
    return Path(cache_dir) / f"{stem}-{base.fingerprint[:16]}-{dtype}"


def _any_dequantized(base: StudentBase, cache_dir: str | os.PathLike[str] | None) -> Path | None:
    if cache_dir is None or not base.is_gguf:
        return None
    root = Path(cache_dir)
    if not root.is_dir():
        return None
    prefix = f"{Path(base.path).stem}-{base.fingerprint[:16]}-"
    for candidate in sorted(root.iterdir()):
        if candidate.name.startswith(prefix) and (candidate / "config.json").is_file():
            return candidate
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _quiet_transformers() -> Any:
    # The hub must be offline before transformers is first imported: it reads the flag then.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import transformers

    logs: Any = transformers.logging
    logs.set_verbosity_error()
    logs.disable_progress_bar()
    return transformers


def load_tokenizer(base: StudentBase, *, cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """The base's tokenizer (with its chat template), offline; a pad token is set if missing."""
    require_train("loading a student's tokenizer", gguf=base.is_gguf)
    transformers = _quiet_transformers()
    cached = _any_dequantized(base, cache_dir)
    try:
        if cached is not None:
            tokenizer = transformers.AutoTokenizer.from_pretrained(cached)
        elif base.is_gguf:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                base.folder, gguf_file=Path(base.path).name
            )
        else:
            tokenizer = transformers.AutoTokenizer.from_pretrained(base.path)
    # transformers reports a missing, unreadable or unsupported checkpoint through any of
    # these; each becomes one line naming the BASE (the cause stays chained for -v)
    except (OSError, ValueError, KeyError, NotImplementedError, TypeError) as e:
        raise UsageError(
            f"BASE {base.spec}: transformers cannot load its tokenizer: {_first_line(e)}"
        ) from e
    return _with_pad(tokenizer)


def _with_pad(tokenizer: Any) -> Any:
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    base: StudentBase,
    *,
    dtype: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of the base, offline, on the CPU, in ``dtype`` (a torch dtype;
    ``None``: the checkpoint's). A GGUF base is dequantized; with ``cache_dir`` the result is
    kept there for the next load."""
    require_train("loading a student model", gguf=base.is_gguf)
    transformers = _quiet_transformers()
    import torch

    if dtype is None:  # the checkpoint's dtype: any earlier dequantization will do
        cached = _any_dequantized(base, cache_dir)
    elif cache_dir is not None and base.is_gguf:
        cached = dequantized_dir(base, cache_dir, str(dtype).replace("torch.", ""))
    else:
        cached = None
    try:
        if base.is_gguf and (cached is None or not (cached / "config.json").is_file()):
            model = _load_gguf(transformers, base, dtype)
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                base.folder, gguf_file=Path(base.path).name
            )
            if cache_dir is not None:
                target = dequantized_dir(base, cache_dir, str(model.dtype).replace("torch.", ""))
                _save_atomically(model, tokenizer, target)
        else:
            source = cached if cached is not None else Path(base.path)
            model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
            tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    except torch.OutOfMemoryError:
        raise
    # as in load_tokenizer, plus RuntimeError: a state dict that does not fit the architecture
    except (OSError, ValueError, KeyError, NotImplementedError, TypeError, RuntimeError) as e:
        raise UsageError(
            f"BASE {base.spec}: transformers cannot load it as a causal language model: "
            f"{_first_line(e)}"
        ) from e
    return model, _with_pad(tokenizer)


def _load_gguf(transformers: Any, base: StudentBase, dtype: Any) -> Any:
    options: dict[str, Any] = {"gguf_file": Path(base.path).name, "dtype": dtype}
    gguf_config = getattr(transformers, "GgufConfig", None)
    if gguf_config is not None:
        # newer transformers keeps GGUF weights packed when it can; training needs them dense
        options["quantization_config"] = gguf_config(dequantize=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(base.folder, **options)
    # a dequantized model is a plain model: let it be saved and merged like one
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def _save_atomically(model: Any, tokenizer: Any, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if not target.exists():  # another process may have finished the same work first
            staging.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
