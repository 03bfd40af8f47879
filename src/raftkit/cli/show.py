"""``raftkit show RUN_DIR``: write (and open) RUN_DIR/report.html, a page to look at a run."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path

from raftkit.run_viewer import DEFAULT_SAMPLE, write_run_viewer

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "show",
        help="write RUN_DIR/report.html: a page that shows what a generation run made",
        description="Write RUN_DIR/report.html, one self-contained page: sample examples with "
        "the verified quotes highlighted in their oracle, rejections by reason, coverage per "
        "document, length and token distributions, cost. It samples, so it stays small and "
        "fast for runs of any size; the same --seed draws the same examples.",
    )
    p.add_argument("run_dir", type=Path, help="the run directory of raftkit generate")
    p.add_argument("--open", action="store_true", help="open the page in a web browser")
    p.add_argument(
        "--sample",
        type=int,
        default=DEFAULT_SAMPLE,
        help=f"examples shown (default {DEFAULT_SAMPLE})",
    )
    p.add_argument("--seed", type=int, default=0, help="which examples are drawn (default 0)")
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    path = await write_run_viewer(args.run_dir, sample=args.sample, seed=args.seed)
    print(path)
    if args.open and not webbrowser.open(path.resolve().as_uri()):
        print("raftkit show: no web browser found; open the file above yourself")
    return 0
