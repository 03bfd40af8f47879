"""What a BASE is, before anything heavy is imported: resolve_base, the GGUF header reader,
the missing-extra message, and that raftkit imports without torch."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from raftkit.dataset import MissingExtraError
from raftkit.errors import UsageError
from raftkit.finetune import LocalLoRAProvider
from raftkit.students import TRAIN_INSTALL_HINT, require_train, resolve_base
from raftkit.students.gguf_header import read_gguf_metadata
from students_support import requires_student, smollm_gguf


def _gguf(path: Path, pairs: list[tuple[str, int, bytes]], *, version: int = 3) -> Path:
    """A GGUF file holding only a header with ``pairs`` of (key, value type, packed value)."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, 0, len(pairs)))
    for key, kind, value in pairs:
        raw = key.encode()
        out += struct.pack("<Q", len(raw)) + raw + struct.pack("<I", kind) + value
    path.write_bytes(bytes(out))
    return path


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def test_gguf_header_reads_scalars_past_arrays(tmp_path: Path) -> None:
    strings = struct.pack("<IQ", 8, 2) + _string("a") + _string("bc")
    numbers = struct.pack("<IQ", 5, 3) + struct.pack("<3i", 1, 2, 3)
    path = _gguf(
        tmp_path / "m.gguf",
        [
            ("general.architecture", 8, _string("qwen2")),
            ("tokenizer.ggml.tokens", 9, strings),
            ("tokenizer.ggml.scores", 9, numbers),
            ("qwen2.context_length", 4, struct.pack("<I", 32768)),
        ],
    )
    meta = read_gguf_metadata(path, ["{arch}.context_length"])
    assert meta == {"{arch}.context_length": 32768, "general.architecture": "qwen2"}


def test_resolve_a_gguf_base_reads_its_header(tmp_path: Path) -> None:
    path = _gguf(
        tmp_path / "tiny.gguf",
        [
            ("general.architecture", 8, _string("llama")),
            ("llama.context_length", 4, struct.pack("<I", 4096)),
        ],
    )
    base = resolve_base(path)
    assert (base.kind, base.architecture, base.context_window) == ("gguf", "llama", 4096)
    assert base.fingerprint == resolve_base(str(path)).fingerprint
    path.write_bytes(path.read_bytes() + b"\0")
    assert resolve_base(path).fingerprint != base.fingerprint


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nowhere", "is neither a file, a folder, nor a model"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "without config.json"),
        (lambda d: _write(d / "notes.gguf", b"not a model"), "not a GGUF model"),
        (lambda d: _write(d / "weights.bin", b"\0" * 64), "not a GGUF model"),
        (
            lambda d: _folder(d / "bert", {"architectures": ["BertModel"]}),
            "is a BertModel model, not a causal language model",
        ),
        (
            lambda d: _folder(d / "noweights", {"architectures": ["LlamaForCausalLM"]}, []),
            "no weight files",
        ),
        (
            lambda d: _gguf(d / "enc.gguf", [("general.architecture", 8, _string("bert"))]),
            "an encoder, not a causal language model",
        ),
        (
            lambda d: _gguf(
                d / "old.gguf", [("general.architecture", 8, _string("llama"))], version=1
            ),
            "GGUF version 1",
        ),
    ],
)
def test_bad_base_is_one_line(tmp_path: Path, make: object, message: str) -> None:
    target = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(UsageError) as caught:
        resolve_base(target)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _folder(path: Path, config: dict[str, object], weights: list[str] | None = None) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    for name in ["model.safetensors"] if weights is None else weights:
        (path / name).write_bytes(b"\0" * 16)
    return path


def test_missing_train_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = __import__("importlib.util").util.find_spec
    monkeypatch.setattr(
        "raftkit.students.extra.importlib.util.find_spec",
        lambda name, *a: None if name == "peft" else real(name, *a),
    )
    with pytest.raises(MissingExtraError) as caught:
        require_train("local LoRA training")
    assert str(caught.value) == (
        f"local LoRA training needs peft (the 'train' extra): {TRAIN_INSTALL_HINT}"
    )


@pytest.mark.anyio
async def test_create_job_without_the_extra_writes_no_job(
    anyio_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = _folder(tmp_path / "model", {"architectures": ["LlamaForCausalLM"]})
    real = __import__("importlib.util").util.find_spec
    monkeypatch.setattr(
        "raftkit.students.extra.importlib.util.find_spec",
        lambda name, *a: None if name == "torch" else real(name, *a),
    )
    async with LocalLoRAProvider(tmp_path / "out") as provider:
        uploaded = await provider.upload_file(b'{"messages": []}\n', filename="train.jsonl")
        with pytest.raises(MissingExtraError, match=r"pip install 'raftkit\[train\]'"):
            await provider.create_job(model=str(base), training_file=uploaded.id)
        with pytest.raises(UsageError, match="is neither a file"):
            await provider.create_job(model=str(tmp_path / "nope"), training_file=uploaded.id)
    assert not (tmp_path / "out" / "jobs").exists()


def test_raftkit_imports_without_torch() -> None:
    code = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'peft', 'gguf', 'safetensors'):\n"
        "    sys.modules[name] = None\n"
        "import raftkit, raftkit.students, raftkit.finetune, raftkit.serve, raftkit.cli\n"
        "from raftkit.cli import build_parser\n"
        "build_parser()\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ok", done.stderr


@requires_student()
def test_resolve_the_smollm_gguf() -> None:
    path = smollm_gguf()
    assert path is not None
    base = resolve_base(path)
    assert (base.kind, base.architecture, base.context_window) == ("gguf", "llama", 8192)


def test_public_names_are_exported() -> None:
    import importlib

    for package, modules in (
        (
            "raftkit.students",
            (
                "audit",
                "base",
                "config",
                "extra",
                "gguf_header",
                "hardware",
                "jobdir",
                "report",
                "template",
                "train",
            ),
        ),
        ("raftkit.serve", ("app", "model", "server")),
    ):
        root = importlib.import_module(package)
        for name in root.__all__:
            assert hasattr(root, name), f"{package}.{name}"
        for module_name in modules:
            module = importlib.import_module(f"{package}.{module_name}")
            for name in module.__all__:
                assert hasattr(module, name), f"{package}.{module_name}.{name}"
