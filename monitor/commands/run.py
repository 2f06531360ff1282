"""``monitor run``: the daemon."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from monitor.app import RunOptions, run

DESCRIPTION = """\
Run the monitor: stream prices, funding and public account state from the configured venues,
recompute every margin scope on every tick, and send alerts through the durable outbox.

Under systemd (Type=notify) it reports READY once the first snapshots are in, pings the
watchdog from its event loop, and shows a one-line STATUS. SIGTERM/SIGINT stop it cleanly
(the outbox is drained within daemon.drain_deadline); SIGHUP re-reads rules, channels and
manual accounts without dropping feed connections (an invalid file keeps the old one).

With --replay FILE it runs the same engine, alerts and delivery on a recording (see
`monitor record`) instead of live feeds, then exits: the offline demo.
"""
EPILOG = """\
examples:
  monitor run --config /etc/monitor/monitor.toml
  monitor run --config config/demo.toml --replay config/demo_recording.jsonl

exit codes: 0 clean stop (or end of the replay); 1 runtime failure (store unusable, a task
crashed); 2 invalid configuration or recording; 3 another instance holds the store.
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run the monitor daemon (or replay a recording through it)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        "-c",
        type=Path,
        required=True,
        metavar="FILE",
        help="the TOML configuration (see config/example.toml)",
    )
    p.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="replay this recording instead of connecting to the venues",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=0.0,
        metavar="X",
        help="replay speed: 0 as fast as possible (default), 1 real time, 60 = 1 h/min",
    )
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="override [logging] level",
    )
    p.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        help="override [logging] format (auto: console on a terminal, else JSON)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.speed < 0:
        args.speed = 0.0
    opts = RunOptions(
        args.config,
        replay=args.replay,
        speed=args.speed,
        log_level=args.log_level,
        log_format=args.log_format,
    )
    return asyncio.run(run(opts))
