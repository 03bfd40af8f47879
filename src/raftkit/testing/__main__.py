"""``python -m raftkit.testing [--port N] [--rpm N] [--tpm N] [--dialect D] [--state-dir DIR]
...``: serve until interrupted (SIGINT or SIGTERM)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from raftkit.testing._clock import DEFAULT_START_TIME
from raftkit.testing._server import Simulator
from raftkit.testing._state import SimulatorConfig

__all__ = ["main"]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m raftkit.testing",
        description="Serve the loopback OpenAI / Azure OpenAI simulator until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--rpm", type=int, default=None, help="requests per minute per model")
    parser.add_argument("--tpm", type=int, default=None, help="tokens per minute per model")
    parser.add_argument("--window-seconds", type=float, default=None)
    parser.add_argument("--background-load", type=float, default=0.0)
    parser.add_argument("--latency-base", type=float, default=0.0)
    parser.add_argument("--latency-per-token", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dialect",
        choices=["openai", "llama.cpp", "vllm"],
        default="openai",
        help="the server to imitate (default: openai)",
    )
    parser.add_argument("--slots", type=int, help="requests served at once (default: dialect's)")
    parser.add_argument("--context-window", type=int, help="tokens (default: dialect's / model's)")
    parser.add_argument("--runaway-share", type=float, help="share of replies that never stop")
    parser.add_argument(
        "--served-model",
        action="append",
        dest="served_models",
        help="a model name a local dialect serves (repeat for more)",
    )
    parser.add_argument(
        "--default-max-tokens",
        type=int,
        default=1024,
        help="completion tokens charged at admission without max_tokens (default: 1024)",
    )
    parser.add_argument("--prompt-cache-ttl", type=float, default=600.0)
    parser.add_argument(
        "--accept-unknown-models", action="store_true", help="answer any model name"
    )
    parser.add_argument("--start-time", help="the simulated date to start at (ISO 8601)")
    parser.add_argument(
        "--real-time", action="store_true", help="start the simulated clock at the real time"
    )
    parser.add_argument("--state-dir", help="keep files, jobs and the clock in this directory")
    args = parser.parse_args(argv)
    start_time = None if args.real_time else args.start_time or DEFAULT_START_TIME.isoformat()
    try:
        config = SimulatorConfig(
            host=args.host,
            port=args.port,
            rpm=args.rpm,
            tpm=args.tpm,
            window_seconds=args.window_seconds,
            background_load=args.background_load,
            latency_base=args.latency_base,
            latency_per_token=args.latency_per_token,
            seed=args.seed,
            dialect=args.dialect,
            slots=args.slots,
            context_window=args.context_window,
            runaway_share=args.runaway_share,
            served_models=tuple(args.served_models) if args.served_models else None,
            default_max_tokens=args.default_max_tokens,
            prompt_cache_ttl=args.prompt_cache_ttl,
            accept_unknown_models=args.accept_unknown_models,
            start_time=start_time,
            state_dir=args.state_dir,
        )
    except ValueError as e:
        parser.error(str(e))
    signal.signal(signal.SIGTERM, _interrupt)
    simulator = Simulator(config)
    try:
        simulator.start()
    except RuntimeError as e:
        print(f"raftkit simulator: {e}", file=sys.stderr)
        return 1
    # The key is a fixed fake one, printed so a user can paste it into their client.
    print(f"raftkit simulator: base_url={simulator.base_url}", flush=True)
    print(f"azure_endpoint={simulator.azure_endpoint} api_key={simulator.api_key}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
