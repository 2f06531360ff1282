"""``monitor status``: what the daemon last knew, read from its store, and whether it still runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import fmt
from monitor.commands._store import add_store_args, store_location
from monitor.errors import ConfigError, FatalError
from monitor.logs import configure_logging
from monitor.store import history
from monitor.store.db import open_store

DESCRIPTION = """\
Show whether the daemon runs; per margin scope, the latest equity, margin ratio (maintenance /
equity; 100 % means liquidatable), nearest liquidation distance, shock to liquidation (the
market-wide move that would liquidate the scope) and the alerts firing; per feed, its state
and the age of its last message; the funding the venues booked. Read from the daemon's store
(it writes it every second) while it runs, or after it stopped: the first lines say which store
was read and whether the daemon is running ("not running since ..." when its process is gone
or it has not written for 20 s, and then the figures are that old). Channel secrets are not
needed: --config is read without its [channels].
"""
EPILOG = """\
examples:
  monitor status --config /etc/monitor/monitor.toml
  monitor status --store /var/lib/monitor/monitor.sqlite3 --json

exit codes: 0 shown; 1 the store cannot be opened; 2 bad configuration.
"""

#: the daemon writes its status every second; no write for this long means it is not running
STALE_AFTER = 20.0
#: the terminal width the tables are fitted to
WIDTH = 120


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


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (signal 0 probes without sending). A
    process of another user (systemd's DynamicUser) exists: PermissionError counts as alive."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, OSError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class DaemonState:
    """``running``; ``pid`` as the daemon wrote it; ``since`` its last write (epoch seconds,
    None when it never wrote); ``why`` the reason it is taken as not running ("" if it is)."""

    running: bool
    pid: int | None
    since: float | None
    why: str


def daemon_state(
    doc: Mapping[str, Any] | None,
    updated_at: float | None,
    now: float,
    alive: Callable[[int], bool] = pid_alive,
) -> DaemonState:
    """Running means: it wrote a status, its pid exists, and its last write is at most
    :data:`STALE_AFTER` seconds old."""
    if doc is None or updated_at is None:
        return DaemonState(False, None, None, "it never wrote a status to this store")
    raw = doc.get("pid")
    pid = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    age = now - updated_at
    if pid is None:
        return DaemonState(False, None, updated_at, "its status names no process")
    if not alive(pid):
        return DaemonState(False, pid, updated_at, f"process {pid} is gone")
    if age > STALE_AFTER:
        return DaemonState(
            False,
            pid,
            updated_at,
            f"no update for {fmt.duration(age)}; process {pid} exists but is not writing",
        )
    return DaemonState(True, pid, updated_at, "")


def main(args: argparse.Namespace) -> int:
    configure_logging("warning", stream=sys.stderr)
    try:
        path, origin = store_location(args)
    except ConfigError as exc:
        print(f"monitor status: {exc}", file=sys.stderr)
        return 2
    if not path.exists():
        print(
            f"monitor status: {path} ({origin}): no store yet (has the daemon run?)",
            file=sys.stderr,
        )
        return 1
    try:
        view = asyncio.run(_read(path))
    except FatalError as exc:
        print(f"monitor status: {exc}", file=sys.stderr)
        return 1
    now = time.time()
    state = daemon_state(view.daemon, view.daemon_updated_at, now)
    if args.json:
        print(
            json.dumps(
                {
                    "store": str(path.resolve()),
                    "daemon_running": state.running,
                    "daemon_not_running_because": state.why or None,
                    "daemon": view.daemon,
                    "daemon_updated_at": view.daemon_updated_at,
                    "scopes": view.scopes,
                    "feeds": view.feeds,
                    "funding_paid": view.funding_paid,
                }
            )
        )
    else:
        print(render(view, now, store=path.resolve(), origin=origin, state=state))
    return 0


async def _read(path: Path) -> history.StatusView:
    store = await open_store(path, lock=False)
    try:
        return await history.read_status(store)
    finally:
        await store.close()


def _iso(ts: float | None) -> str:
    if ts is None:
        return fmt.DASH
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(ts: float | None, now: float) -> str:
    return fmt.DASH if ts is None else fmt.ago(max(now - ts, 0.0))


def _daemon_line(view: history.StatusView, state: DaemonState, now: float) -> list[str]:
    summary = (view.daemon or {}).get("summary") or ""
    if state.running:
        line = f"daemon: running, pid {state.pid}, updated {_age(state.since, now)}"
        return _wrap(f"{line}: {summary}" if summary else line)
    if state.since is None:
        return _wrap(f"daemon: not running ({state.why})")
    lines = _wrap(f"daemon: not running since {_iso(state.since)} ({state.why})")
    if summary:
        lines += _wrap(f"  its last summary: {summary}")
    lines.append(f"  the figures below are as of then ({_age(state.since, now)}), not live")
    return lines


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, subsequent_indent="    ", break_on_hyphens=False) or [""]


def _ratio_cell(s: Mapping[str, Any]) -> str:
    ratio = s.get("margin_ratio")
    if s.get("positions") == 0:
        # an empty pool cannot be liquidated; only a negative balance is a problem
        eq = s.get("equity")
        return "negative balance" if isinstance(eq, float | int) and eq < 0 else "no positions"
    if ratio is None:
        return "LIQUIDATABLE (equity ≤ 0)" if s.get("equity") is not None else fmt.DASH
    text = fmt.pct(ratio, 1)
    # 100 % is the boundary itself: maintenance ≥ equity is liquidatable
    if s.get("liquidatable") or ratio >= 1.0:
        text += " LIQUIDATABLE"
    return text


def _liq_cell(s: Mapping[str, Any], key: str) -> str:
    if s.get("positions") == 0:
        return fmt.DASH
    if s.get("liquidatable") or (s.get("margin_ratio") or 0.0) >= 1.0:
        return "past"
    return fmt.pct(s.get(key), 1)


def render(
    view: history.StatusView,
    now: float,
    *,
    store: Path | None = None,
    origin: str = "",
    state: DaemonState | None = None,
) -> str:
    """The status as text fitted to :data:`WIDTH` columns (long account ids shortened to
    ``0x1111…1111``, long cells cut with ``…``)."""
    if state is None:
        state = daemon_state(view.daemon, view.daemon_updated_at, now)
    lines: list[str] = []
    if store is not None:
        lines.append(f"store: {store}" + (f" ({origin})" if origin else ""))
    lines.extend(_daemon_line(view, state, now))
    lines.append("")
    rows = [("scope", "equity", "margin ratio", "nearest liq", "shock to liq", "alerts", "as of")]
    for s in view.scopes:
        rows.append(
            (
                fmt.short_scope(str(s["scope_key"])),
                fmt.money(s.get("equity")),
                _ratio_cell(s),
                _liq_cell(s, "nearest_liquidation_distance"),
                _liq_cell(s, "shock_to_liquidation"),
                ", ".join(s.get("active_alerts") or []) or fmt.DASH,
                _age(s.get("updated_at"), now),
            )
        )
    lines.extend(_table(rows, shrink=(5, 0)) if view.scopes else ["no scopes yet"])
    lines.append("")
    if view.feeds:
        frows = [("feed", "state", "last message", "detail")]
        for f in view.feeds:
            name = f["venue"] + ("" if f["channel"] == "*" else f"/{f['channel']}")
            frows.append(
                (
                    name,
                    f["state"],
                    _age(f["last_message_at"], now),
                    f["detail"] or fmt.DASH,
                )
            )
        lines.extend(_table(frows, shrink=(3, 0)))
    else:
        lines.append("no feed has reported yet")
    if view.funding_paid:
        lines.append("")
        prow = [("funding booked", "symbol", "amount", "payments")]
        for p in view.funding_paid:
            prow.append(
                (
                    f"{p['venue']}:{fmt.short_id(str(p['account']))}",
                    p["symbol"],
                    fmt.money(p["amount"]),
                    str(p["payments"]),
                )
            )
        lines.extend(_table(prow, shrink=(0, 1)))
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _table(
    rows: Sequence[Sequence[str]], *, shrink: Sequence[int] = (), width: int = WIDTH
) -> list[str]:
    """Columns separated by two spaces, at most ``width`` characters a line: when too wide,
    the columns in ``shrink`` (first listed first) are cut, never below 8 characters."""
    ncols = len(rows[0])
    widths = [max(len(r[i]) for r in rows) for i in range(ncols)]
    excess = sum(widths) + 2 * (ncols - 1) - width
    for col in shrink:
        if excess <= 0:
            break
        give = min(excess, max(widths[col] - 8, 0))
        widths[col] -= give
        excess -= give
    return [
        "  ".join(_cut(c, w).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]
