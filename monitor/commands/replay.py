"""``monitor replay FILE``: push a recording through the parsers and the engine, print what
the engine decided (see :mod:`monitor.venues.recording` for the file format)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.errors import InputError
from monitor.logs import configure_logging, reset_logging
from monitor.venues.recording import Batch, ReplayStats, replay, risk_line
from monitor.venues.registry import PARSERS

HELP = "replay a recording of venue frames through the engine and print its decisions"
DESCRIPTION = """\
Replay FILE, a JSONL recording written by `monitor record` (one object per line:
ts_recv, venue, channel, frame), through the same parsers and margin engine as the daemon.
For every frame that changes a margin scope (an account's cross pool or an isolated
position) one line is printed: recorded time, scope, equity, maintenance margin, margin ratio
(maintenance / equity; 100 % means liquidatable) and the distance to the nearest liquidation
price. Only recorded times are used: the same recording always prints the same output.

Frames a parser refuses are counted and skipped (logged on stderr); the summary goes to
stderr at the end.
"""
EPILOG = """\
examples:
  monitor replay config/demo_recording.jsonl
  monitor replay session.jsonl --speed 10 --json

exit codes: 0 replayed; 2 the file is missing or not a recording (one line on stderr).
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", type=Path, help="JSONL recording")
    p.add_argument(
        "--speed",
        type=float,
        default=0.0,
        metavar="X",
        help="1 = recorded speed, 10 = ten times faster, 0 = as fast as possible (default 0)",
    )
    p.add_argument(
        "--json", action="store_true", help="one JSON object per line instead of text lines"
    )
    p.set_defaults(func=run)


def printer(as_json: bool, write: Callable[[str], Any] | None = None) -> Callable[[Batch], None]:
    """The ``on_batch`` callback that prints one line per touched scope (to ``write``,
    standard output by default)."""

    def on_batch(batch: Batch) -> None:
        out = write or sys.stdout.write
        for key in batch.touched:
            line = risk_line(batch, key, as_json=as_json)
            if line is not None:
                out(line + "\n")

    return on_batch


def run(args: argparse.Namespace) -> int:
    configure_logging("warning", stream=sys.stderr)  # stdout carries only the output lines
    try:
        stats: ReplayStats = asyncio.run(
            replay(args.file, PARSERS, printer(args.json), speed=args.speed)
        )
    except InputError as exc:
        print(f"monitor replay: {exc}", file=sys.stderr)
        return 2
    finally:
        reset_logging()
    sys.stdout.flush()
    print(
        f"monitor replay: {stats.frames} frames, {stats.events} events, "
        f"{stats.bad_frames} refused, {stats.unknown_venue} of unknown venues",
        file=sys.stderr,
    )
    return 0
