"""``monitor status``: what the daemon last knew, read from its store."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from monitor.commands._store import add_store_args, store_path
from monitor.errors import ConfigError, FatalError
from monitor.logs import configure_logging
from monitor.store import history
from monitor.store.db import open_store

DESCRIPTION = """\
Show, per margin scope, the latest equity, margin ratio (maintenance / equity; 100 % means
liquidatable), nearest liquidation distance, shock to liquidation (the market-wide move that
would liquidate the scope) and the alerts firing; per feed, its state and the age of its last
message; the funding the venues booked. Read from the daemon's store while it runs (the daemon
writes it every second), or after it stopped.
"""
EPILOG = """\
examples:
  monitor status --config /etc/monitor/monitor.toml
  monitor status --store /var/lib/monitor/monitor.sqlite3 --json

exit codes: 0 shown; 1 the store cannot be opened; 2 bad configuration.
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="show every scope's margin and every feed's health",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_store_args(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    configure_logging("warning", stream=sys.stderr)
    try:
        path = store_path(args)
    except ConfigError as exc:
        print(f"monitor status: {exc}", file=sys.stderr)
        return 2
    if not path.exists():
        print(f"monitor status: {path}: no store yet (has the daemon run?)", file=sys.stderr)
        return 1
    try:
        view = asyncio.run(_read(path))
    except FatalError as exc:
        print(f"monitor status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "daemon": view.daemon,
                    "daemon_updated_at": view.daemon_updated_at,
                    "scopes": view.scopes,
                    "feeds": view.feeds,
                    "funding_paid": view.funding_paid,
                }
            )
        )
    else:
        print(render(view, time.time()))
    return 0


async def _read(path: Any) -> history.StatusView:
    store = await open_store(path, lock=False)
    try:
        return await history.read_status(store)
    finally:
        await store.close()


def _iso(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def _age(ts: float | None, now: float) -> str:
    if ts is None:
        return "—"
    s = max(now - ts, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s / size:.1f}{unit} ago"
    return f"{s:.0f}s ago"


def render(view: history.StatusView, now: float) -> str:
    lines: list[str] = []
    if view.daemon:
        lines.append(
            f"daemon: pid {view.daemon.get('pid')}, updated "
            f"{_age(view.daemon_updated_at, now)}: {view.daemon.get('summary', '')}"
        )
    else:
        lines.append("daemon: no status written yet")
    lines.append("")
    rows = [("scope", "equity", "margin ratio", "nearest liq", "shock to liq", "alerts", "as of")]
    for s in view.scopes:
        eq = s.get("equity")
        rows.append(
            (
                s["scope_key"],
                "—" if eq is None else f"{eq:,.2f}",
                _pct(s.get("margin_ratio")) + (" LIQUIDATABLE" if s.get("liquidatable") else ""),
                _pct(s.get("nearest_liquidation_distance")),
                _pct(s.get("shock_to_liquidation")),
                ", ".join(s.get("active_alerts") or []) or "—",
                _iso(s.get("updated_at")),
            )
        )
    lines.extend(_table(rows) if view.scopes else ["no scopes yet"])
    lines.append("")
    if view.feeds:
        frows = [("feed", "state", "detail", "last message")]
        for f in view.feeds:
            name = f["venue"] + ("" if f["channel"] == "*" else f"/{f['channel']}")
            frows.append(
                (
                    name,
                    f["state"],
                    f["detail"] or "—",
                    f"{_iso(f['last_message_at'])} ({_age(f['last_message_at'], now)})",
                )
            )
        lines.extend(_table(frows))
    else:
        lines.append("no feed has reported yet")
    if view.funding_paid:
        lines.append("")
        prow = [("funding booked", "symbol", "amount", "payments")]
        for p in view.funding_paid:
            prow.append(
                (
                    f"{p['venue']}:{p['account']}",
                    p["symbol"],
                    f"{p['amount']:,.4f}",
                    str(p["payments"]),
                )
            )
        lines.extend(_table(prow))
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
