"""``python -m raftkit.testing [--port N] [--rpm N] [--tpm N]``: serve until interrupted."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from types import FrameType

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
    args = parser.parse_args(argv)
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
    )
    signal.signal(signal.SIGTERM, _interrupt)
    simulator = Simulator(config)
    simulator.start()
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
