"""``monitor mute`` and ``monitor unmute``: silence alerts for a while, persisted in the store.

Both subcommands live here (``register`` adds the two parsers).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path
from typing import Any

from monitor.alerts.mutes import Mute
from monitor.alerts.rules import RuleKind, parse_duration
from monitor.clock import SystemClock
from monitor.errors import ConfigError, FatalError
from monitor.logs import configure_logging
from monitor.notify.render import iso
from monitor.store.db import open_store
from monitor.store.mutes import active_mutes, add_mute, remove_mutes

TARGET_HELP = (
    "what to mute: an account 'venue:account', a scope 'venue:account/cross' or "
    "'venue:account/isolated:SYMBOL', a position 'venue:account/cross#SYMBOL', a feed "
    "'feed:venue', or 'monitor'"
)
MUTE_DESCRIPTION = """\
Silence the alerts of a target for a while. Muted alerts are still evaluated and recorded, but
not sent; when the mute ends, an alert still active is sent at once. Critical alerts still go
out unless --critical is given. The mute is stored in the daemon's store, so it takes effect in
a running daemon within a second and survives restarts.
"""
MUTE_EPILOG = """\
examples:
  monitor mute hyperliquid:0xabc --for 2h --store /var/lib/monitor/monitor.db
  monitor mute binance_usdm:main/isolated:ETHUSDT --rule funding_rate --for 1d --store s.db
  monitor mute feed:okx --for 30m --critical --reason "venue maintenance" --store s.db
  monitor mute --list --store s.db

exit codes: 0 done; 2 bad arguments; 1 the store cannot be opened.
"""
UNMUTE_EPILOG = """\
examples:
  monitor unmute hyperliquid:0xabc --store /var/lib/monitor/monitor.db
  monitor unmute hyperliquid:0xabc --rule shock --store s.db
"""
_TARGET = re.compile(r"^(monitor|feed:[^/\s]+(/[^\s]+)?|[a-z0-9_]+:[^/\s#]+(/[^\s#]+(#\S+)?)?)$")
RULES = tuple(k.value for k in RuleKind)


#: the longest mute, seconds
MAX_MUTE = 366 * 86400.0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "mute",
        help="silence a target's alerts for a while",
        description=MUTE_DESCRIPTION,
        epilog=MUTE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="TARGET", nargs="?", help=TARGET_HELP)
    p.add_argument("--rule", metavar="RULE", help=f"only this rule ({', '.join(RULES)})")
    p.add_argument(
        "--for", dest="duration", metavar="DURATION", help="how long: seconds or 90s, 30m, 2h, 1d"
    )
    p.add_argument("--critical", action="store_true", help="silence critical alerts too")
    p.add_argument("--reason", default="", help="a note kept with the mute")
    p.add_argument(
        "--store", metavar="PATH", type=Path, required=True, help="the daemon's SQLite store"
    )
    p.add_argument("--list", action="store_true", help="list the mutes in force and exit")
    p.set_defaults(func=run_mute)

    u = sub.add_parser(
        "unmute",
        help="remove the mutes of a target",
        description="Remove the mutes of exactly TARGET (and --rule, when given).",
        epilog=UNMUTE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    u.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    u.add_argument("--rule", metavar="RULE", help="only the mutes of this rule")
    u.add_argument(
        "--store", metavar="PATH", type=Path, required=True, help="the daemon's SQLite store"
    )
    u.set_defaults(func=run_unmute)


def _check(target: str | None, rule: str | None) -> str:
    if target is None or not _TARGET.match(target):
        raise ConfigError("mute", "TARGET", f"not a target: {target!r} ({TARGET_HELP})")
    if rule is not None and rule not in RULES:
        raise ConfigError("mute", "--rule", f"unknown rule {rule!r}; one of {', '.join(RULES)}")
    return target


def run_mute(args: argparse.Namespace) -> int:
    configure_logging("warning", stream=sys.stderr)  # stdout is for the result
    try:
        if args.list:
            return asyncio.run(_list(args.store))
        target = _check(args.target, args.rule)
        if args.duration is None:
            raise ConfigError("mute", "--for", "say for how long, e.g. --for 2h")
        secs = parse_duration(args.duration, "mute", "--for")
        if secs <= 0:
            raise ConfigError("mute", "--for", "must be > 0")
        if secs > MAX_MUTE:
            raise ConfigError("mute", "--for", "at most 366 days (unmute when you want it back)")
    except ConfigError as exc:
        print(f"monitor mute: {exc}", file=sys.stderr)
        return 2
    now = SystemClock().now()
    mute = Mute(target, now + secs, args.rule, args.critical, args.reason)
    try:
        asyncio.run(_add(args.store, mute, now))
    except FatalError as exc:
        print(f"monitor mute: {exc}", file=sys.stderr)
        return 1
    what = f"{target}" + (f" (rule {args.rule})" if args.rule else "")
    crit = ", critical included" if args.critical else ", critical still sent"
    print(f"muted {what} until {iso(mute.until)}{crit}")
    return 0


def run_unmute(args: argparse.Namespace) -> int:
    configure_logging("warning", stream=sys.stderr)  # stdout is for the result
    try:
        target = _check(args.target, args.rule)
    except ConfigError as exc:
        print(f"monitor unmute: {exc}", file=sys.stderr)
        return 2
    try:
        n = asyncio.run(_remove(args.store, target, args.rule))
    except FatalError as exc:
        print(f"monitor unmute: {exc}", file=sys.stderr)
        return 1
    print(f"removed {n} mute{'s' if n != 1 else ''} of {target}")
    return 0


async def _add(path: Path, mute: Mute, now: float) -> None:
    store = await open_store(path, lock=False)
    try:
        await add_mute(store, mute, now)
    finally:
        await store.close()


async def _remove(path: Path, target: str, rule: str | None) -> int:
    store = await open_store(path, lock=False)
    try:
        return await remove_mutes(store, target, rule)
    finally:
        await store.close()


async def _list(path: Path) -> int:
    store = await open_store(path, lock=False)
    try:
        mutes = await active_mutes(store, SystemClock().now())
    finally:
        await store.close()
    for m in mutes:
        rule = m.rule or "all rules"
        crit = "incl. critical" if m.critical else "critical sent"
        reason = f"  ({m.reason})" if m.reason else ""
        print(f"{m.target}  {rule}  until {iso(m.until)}  {crit}{reason}")
    if not mutes:
        print("no mutes in force")
    return 0
