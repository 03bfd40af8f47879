"""``raftkit serve BASE [--adapter [NAME=]PATH] [--port P] [--host 127.0.0.1]``, or
``raftkit serve --run RUN_DIR``.

Loads an open-weight model (a Hugging Face model folder, a model id in the local HF cache, or
a .gguf file) with its LoRA adapters and serves ``/v1/models`` and ``/v1/chat/completions``
until interrupted. The base answers under its BASE (or ``--served-model-name``), each adapter
under its NAME (default ``raft``), like vLLM's ``--lora-modules``. With ``--run RUN_DIR`` the
BASE and the adapter are those ``raftkit finetune RUN_DIR --provider local`` recorded
(``@finetuned`` in an ``--adapter`` stands for that adapter), so ``raftkit eval RUN_DIR --model
base=@base@URL --model tuned=@finetuned@URL`` finds both. Needs the ``train`` extra.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import anyio.to_thread

from raftkit.errors import UsageError

__all__ = ["add_parser", "parse_adapters", "run"]

_NAME = re.compile(r"^[A-Za-z0-9][\w.:-]*$")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "serve",
        help="serve a local model and LoRA adapters over an OpenAI-compatible API",
        description="Serve BASE (and each --adapter on it) at http://HOST:PORT/v1 for "
        "`raftkit eval` and any OpenAI client. Generation runs one request at a time: enough "
        "for small models and tests; use vLLM or llama.cpp for throughput (docs/open-models.md).",
    )
    p.add_argument(
        "base",
        nargs="?",
        help="a model folder, a model id in the local HF cache, or a .gguf (default with "
        "--run: the base the run's adapter was trained on)",
    )
    p.add_argument(
        "--run",
        type=Path,
        metavar="RUN_DIR",
        help="serve the LoRA adapter `raftkit finetune RUN_DIR --provider local` trained, as "
        "'raft', beside its base",
    )
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="a PEFT LoRA adapter folder (or @finetuned, with --run), served as NAME "
        "(default: raft); repeatable",
    )
    p.add_argument("--served-model-name", help="the base model's name (default: BASE)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], default="auto")
    p.add_argument(
        "--cache-dir",
        type=Path,
        help="keep a GGUF base dequantized here (with --run: where its training keeps it)",
    )
    p.add_argument(
        "--max-tokens-default",
        type=int,
        default=1024,
        help="completion tokens when a request sets no max_tokens",
    )
    p.set_defaults(handler=run)


def parse_adapters(specs: list[str], finetuned: Path | None = None) -> dict[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named ``raft``, then ``raft-2``, ...) → name to folder; a
    PATH ``@finetuned`` is ``finetuned`` (the run's adapter)."""
    adapters: dict[str, Path] = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        if not path or not _NAME.match(name) or Path(spec).exists():
            name, path = "", spec
        if path == "@finetuned":
            if finetuned is None:
                raise UsageError(f"--adapter {spec}: @finetuned needs --run RUN_DIR")
            path = str(finetuned)
        if not name:
            name = "raft" if "raft" not in adapters else f"raft-{len(adapters) + 1}"
        if name in adapters:
            raise UsageError(f"--adapter name {name!r} is given twice")
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise UsageError(f"--adapter {spec}: {folder} is not a folder")
        adapters[name] = folder
    return adapters


async def run(args: argparse.Namespace) -> int:
    import uvicorn

    from raftkit.serve import LocalChatModel, create_app

    base, cache_dir = args.base, args.cache_dir
    finetuned = None
    if args.run is not None:
        from raftkit.eval_run import finetuned_adapter
        from raftkit.run_dir import RunDir

        recorded = finetuned_adapter(RunDir(args.run))
        finetuned = recorded.adapter
        base = base or recorded.base
        cache_dir = cache_dir or recorded.cache_dir
        if not args.adapter:
            args.adapter = [f"{recorded.name}=@finetuned"]
    if base is None:
        raise UsageError("name the BASE to serve, or --run RUN_DIR (a locally fine-tuned run)")
    adapters = parse_adapters(args.adapter, finetuned)
    if args.host not in _LOOPBACK:
        print(
            f"raftkit serve: listening on {args.host} without authentication: anyone who can "
            "reach this port can use the model",
            file=sys.stderr,
        )
    print(f"loading {base} ...", flush=True)
    model = await anyio.to_thread.run_sync(
        lambda: LocalChatModel.load(
            base,
            adapters=adapters,
            served_name=args.served_model_name,
            device=args.device,
            cache_dir=cache_dir,
            default_max_tokens=args.max_tokens_default,
        )
    )
    url = f"http://{args.host}:{args.port}/v1"
    print(f"serving {', '.join(repr(n) for n in model.names)} on {model.device} at {url}")
    config = uvicorn.Config(
        create_app(model), host=args.host, port=args.port, log_level="warning", lifespan="off"
    )
    await uvicorn.Server(config).serve()
    return 0
