"""``monitor record OUT``: stream the native venues and write their raw frames to JSONL."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from monitor.clock import Clock, SystemClock
from monitor.errors import ConfigError, InputError
from monitor.logs import configure_logging, reset_logging
from monitor.model.events import Event
from monitor.units import duration_arg
from monitor.venues.dydx.feed import DydxFeed
from monitor.venues.dydx.feed import default_ws_settings as dydx_ws
from monitor.venues.feed import Feed
from monitor.venues.hyperliquid.feed import HyperliquidFeed, HyperliquidOptions
from monitor.venues.hyperliquid.feed import default_ws_settings as hyperliquid_ws
from monitor.venues.recording import JsonlRecorder

HELP = "record the raw frames of the native venue feeds to a JSONL file (for replay)"
DESCRIPTION = """\
Connect to Hyperliquid and/or dYdX v4 exactly as the daemon does (REST bootstrap, websocket
subscriptions, reconnects) and append every raw frame and REST body to OUT, one JSON object
per line: {"ts_recv": <epoch seconds>, "venue": ..., "channel": ..., "frame": "<raw text>"}.
`monitor replay OUT` plays it back through the engine.

What to record comes from --config (the [venues.hyperliquid]/[venues.dydx] sections and
their address accounts; ccxt venues are not recorded: ccxt parses their frames itself) or
from the flags below. Stops after --duration seconds, or on Ctrl-C; the file is flushed every
second and on exit.
"""
EPILOG = """\
examples:
  monitor record btc.jsonl --hyperliquid-coin BTC --hyperliquid-address 0x7a3b…9e0f --duration 600
  monitor record dydx.jsonl --dydx-subaccount dydx1…/0
  monitor record all.jsonl --config /etc/monitor/monitor.toml

exit codes: 0 recorded; 2 bad arguments or configuration (one line on stderr).
"""


#: seconds between two progress lines on stderr
PROGRESS_EVERY = 10


def register(sub: Any) -> None:
    p = sub.add_parser(
        "record",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", metavar="OUT", type=Path, help="JSONL file to append to")
    p.add_argument("--config", type=Path, metavar="FILE", help="take venues and accounts from FILE")
    p.add_argument(
        "--hyperliquid-coin",
        action="append",
        default=[],
        metavar="COIN",
        help="Hyperliquid coin to stream (repeatable; HIP-3: dex:COIN)",
    )
    p.add_argument(
        "--hyperliquid-address",
        action="append",
        default=[],
        metavar="0x…",
        help="Hyperliquid address whose account and funding to stream (repeatable)",
    )
    p.add_argument(
        "--dydx-subaccount",
        action="append",
        default=[],
        metavar="ADDR/N",
        help="dYdX subaccount to stream (repeatable)",
    )
    p.add_argument(
        "--dydx-parent-subaccount",
        action="append",
        default=[],
        metavar="ADDR/N",
        help="dYdX parent subaccount (with its isolated children) (repeatable)",
    )
    p.add_argument(
        "--dydx-markets", action="store_true", help="record dYdX markets even without subaccounts"
    )
    p.add_argument("--hyperliquid-ws-url", metavar="URL", help="override the websocket URL")
    p.add_argument("--hyperliquid-rest-url", metavar="URL", help="override the REST base URL")
    p.add_argument("--dydx-ws-url", metavar="URL", help="override the websocket URL")
    p.add_argument("--dydx-rest-url", metavar="URL", help="override the REST base URL (…/v4)")
    p.add_argument(
        "--duration",
        type=duration_arg,
        metavar="DURATION",
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    p.set_defaults(func=run)


def feeds_from_args(args: argparse.Namespace, recorder: JsonlRecorder, clock: Clock) -> list[Feed]:
    """The feeds the flags (or --config) ask for; raises InputError/ConfigError."""
    if args.config is not None:
        from monitor.config import load_config  # noqa: PLC0415  (config pulls in the rules)
        from monitor.venues.registry import NATIVE_FEEDS  # noqa: PLC0415

        config = load_config(args.config)
        feeds: list[Feed] = []
        for venue in config.enabled_venues:
            builder = NATIVE_FEEDS.get(venue.name)
            if builder is None:
                print(f"monitor record: skipping ccxt venue {venue.name!r}", file=sys.stderr)
                continue
            accounts = [a for a in config.accounts if a.feed == venue.name and a.address]
            feeds.append(builder(venue, accounts, clock, recorder))
        if not feeds:
            raise ConfigError(str(args.config), "venues", "no native venue (hyperliquid, dydx)")
        return feeds
    feeds = []
    if args.hyperliquid_coin or args.hyperliquid_address:
        options = HyperliquidOptions(
            coins=tuple(args.hyperliquid_coin), addresses=tuple(args.hyperliquid_address)
        )
        if args.hyperliquid_rest_url:
            options = replace(options, rest_url=args.hyperliquid_rest_url)
        ws = hyperliquid_ws(args.hyperliquid_ws_url) if args.hyperliquid_ws_url else None
        feeds.append(HyperliquidFeed(options, ws, clock=clock, recorder=recorder))
    if args.dydx_subaccount or args.dydx_parent_subaccount or args.dydx_markets:
        ws = dydx_ws(args.dydx_ws_url) if args.dydx_ws_url else None
        kwargs = {"rest_url": args.dydx_rest_url} if args.dydx_rest_url else {}
        feeds.append(
            DydxFeed(
                tuple(args.dydx_subaccount),
                tuple(args.dydx_parent_subaccount),
                ws,
                clock=clock,
                recorder=recorder,
                **kwargs,
            )
        )
    if not feeds:
        raise InputError("monitor record", None, "nothing to record: give --config or venue flags")
    return feeds


async def record(
    feeds: list[Feed], recorder: JsonlRecorder, duration: float | None, clock: Clock
) -> int:
    """Run ``feeds`` (their events are only counted) for ``duration`` seconds or until
    cancelled, flushing ``recorder`` every second. Returns the number of events seen."""
    seen = 0

    def count(_: Event) -> None:
        nonlocal seen
        seen += 1

    async def flusher() -> None:
        ticks = 0
        while True:
            await clock.sleep(1.0)
            recorder.flush()
            ticks += 1
            if ticks % PROGRESS_EVERY == 0:  # long work shows progress
                print(
                    f"monitor record: {recorder.count} frames, {seen} events so far ({ticks} s)",
                    file=sys.stderr,
                )

    tasks = [asyncio.create_task(f.run(count)) for f in feeds]
    tasks.append(asyncio.create_task(flusher()))
    try:
        if duration is None:
            await asyncio.gather(*tasks)
        else:
            await clock.sleep(duration)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        recorder.flush()
    return seen


def run(args: argparse.Namespace) -> int:
    if args.duration is not None and not args.duration > 0:
        print("monitor record: --duration must be positive", file=sys.stderr)
        return 2
    clock = SystemClock()
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        recorder = JsonlRecorder(args.out)
    except OSError as exc:
        print(f"monitor record: {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        feeds = feeds_from_args(args, recorder, clock)
    except InputError as exc:
        recorder.close()
        print(f"monitor record: {exc}", file=sys.stderr)
        return 2
    events = 0
    configure_logging("info", stream=sys.stderr)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            events = asyncio.run(record(feeds, recorder, args.duration, clock))
    finally:
        recorder.close()
        reset_logging()
    venues = ", ".join(f"{v}: {n}" for v, n in sorted(recorder.by_venue.items())) or "none"
    print(
        f"monitor record: {recorder.count} frames ({venues}), {events} events, to {args.out}",
        file=sys.stderr,
    )
    return 0
