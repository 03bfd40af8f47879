"""What starting the ``raftkit`` command costs: CPU time and peak memory of a few invocations.

Each invocation runs in a fresh Python process (so nothing is imported already), ``--rounds``
times; the best round's CPU time (user + system, this process) and its peak resident memory are
reported. ``eager`` builds every command's parser, which imports every command's module — what
every invocation paid before the commands were loaded lazily — so its ratio to ``raftkit --help``
is the saving, measured in one run.

    .venv/bin/python benchmarks/cli_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

_PROBE = """
import json, resource, sys
{body}
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}}),
      file=sys.stderr)
"""

CASES = {
    "eager (every command's parser)": "from raftkit.cli import build_parser\nbuild_parser()",
    "raftkit --help": "from raftkit.cli import main\nmain(['--help'])",
    "raftkit --version": "from raftkit.cli import main\nmain(['--version'])",
    "raftkit show --help": "from raftkit.cli import main\nmain(['show', '--help'])",
    "raftkit validate --help": "from raftkit.cli import main\nmain(['validate', '--help'])",
    "raftkit generate --help": "from raftkit.cli import main\nmain(['generate', '--help'])",
}


def measure(body: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(body=body)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stderr.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):  # alternate the cases, so a busy moment hits them all alike
        for name, body in CASES.items():
            got = measure(body)
            if name not in best or got["cpu"] < best[name]["cpu"]:
                best[name] = got
    eager = best["eager (every command's parser)"]
    print(f"{'invocation':<32} {'CPU s':>7} {'peak MB':>8} {'CPU vs eager':>13}")
    for name, got in best.items():
        ratio = got["cpu"] / eager["cpu"]
        print(f"{name:<32} {got['cpu']:>7.2f} {got['rss_mb']:>8.0f} {ratio:>12.2f}x")


if __name__ == "__main__":
    main()
