"""``raftkit simulator start | stop | status``: the loopback simulator as a background service.

``start`` runs the simulator detached from the terminal with its state (files, fine-tuning
jobs, batches, deployments, the clock) in a state directory, so that it outlives the command:
with no credentials set, every other command then talks to it (``raftkit finetune --wait``,
then ``raftkit jobs list`` shows the job). ``stop`` ends it; the state stays on disk and the
next ``start`` carries on from it (jobs in progress continue by the clock).
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import anyio.to_thread

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "simulator",
        help="run the loopback OpenAI/Azure simulator in the background",
        description="Start, stop or inspect a simulator that serves in the background, keeping "
        "its files, jobs and clock in a state directory (default: $RAFTKIT_SIMULATOR_DIR, else "
        "~/.local/state/raftkit/simulator).",
    )
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--state-dir", type=Path, help="where the simulator keeps its state")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    p.add_argument(
        "--dialect",
        choices=["openai", "llama.cpp", "vllm"],
        default="openai",
        help="the server to imitate (default: openai)",
    )
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    # the server stack is imported only by the command that needs it
    from raftkit.testing.service import find_running, start_background, stop_background

    directory: Path | None = args.state_dir
    if args.action == "start":
        already = await anyio.to_thread.run_sync(partial(find_running, directory))
        extra = ("--dialect", args.dialect)
        simulator = await anyio.to_thread.run_sync(
            partial(start_background, directory, port=args.port, extra_args=extra)
        )
        verb = "is already running" if already is not None else "started"
        print(f"simulator {verb} (pid {simulator.pid}) at {simulator.base_url}")
        print(f"  state: {simulator.state_dir}; stop it with: raftkit simulator stop")
        return 0
    if args.action == "stop":
        stopped = await anyio.to_thread.run_sync(partial(stop_background, directory))
        print("simulator stopped" if stopped else "no simulator is running")
        return 0
    found = await anyio.to_thread.run_sync(partial(find_running, directory))
    if found is None:
        print("no simulator is running")
        return 1
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(found.started))
    print(f"simulator running (pid {found.pid}, {found.dialect}) at {found.base_url}")
    print(f"  azure endpoint: {found.azure_endpoint}")
    print(f"  state: {found.state_dir}; started {since}")
    return 0
