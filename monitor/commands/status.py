"""``monitor status``: what the daemon last knew, read from its store, and whether it still runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import fmt
from monitor.commands._store import Names, add_store_args, clean, locate
from monitor.errors import ConfigError, FatalError
from monitor.logs import configure_logging
from monitor.model.ids import AccountKey, IdError, parse_subject
from monitor.model.venues import GENERIC
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
    if _finite(updated_at) is None:
        return DaemonState(False, pid, None, f"its last write time {updated_at!r} is not a time")
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


#: how bad a channel state is, for a venue's state (the worst of its channels)
_RANK = {"live": 0, "recovered": 0, "connecting": 1, "stale": 2, "down": 3}


@dataclass(frozen=True, slots=True)
class VenueHealth:
    """A venue's state derived from its channels: ``down`` when any channel is down or the
    venue never connected (no message ever, or configured and never reported), else
    ``stale`` when any is stale, ``connecting`` while a channel that has had messages
    reconnects, else ``live``. ``detail`` says why (the channels' own details), ``since``
    when the worst channel entered its state (epoch s; None: unknown), ``last_message_at``
    the receive time of the venue's last event."""

    venue: str
    state: str
    detail: str
    since: float | None
    last_message_at: float | None


def venue_health(
    feeds: Iterable[Mapping[str, Any]], configured: Iterable[str] = ()
) -> list[VenueHealth]:
    """Per venue (sorted), its state from the ``feed_status`` rows (``venue``, ``channel``,
    ``state``, ``detail``, ``updated_at``, ``last_message_at``; channel ``*`` is the
    venue-wide last-message row, its own state is not used), plus every ``configured`` venue
    that never reported (``down``, never connected)."""
    rows: dict[str, list[Mapping[str, Any]]] = {}
    for f in feeds:
        rows.setdefault(str(f["venue"]), []).append(f)
    for v in configured:
        rows.setdefault(v, [])
    out = []
    for venue in sorted(rows):
        lasts = [_finite(r.get("last_message_at")) for r in rows[venue]]
        last = max((x for x in lasts if x is not None), default=None)
        channels = [r for r in rows[venue] if r["channel"] != "*"]
        if not channels and last is None:
            out.append(VenueHealth(venue, "down", "never connected", None, None))
            continue
        if not channels:
            out.append(VenueHealth(venue, "live", "", None, last))
            continue
        worst = max(_RANK.get(str(r["state"]), 3) for r in channels)
        bad = [r for r in channels if _RANK.get(str(r["state"]), 3) == worst]
        state = str(bad[0]["state"]) if worst > 0 else "live"
        if state not in _RANK:
            state = "down"  # a state this version does not know: never reassuring
        detail = "; ".join(
            f"{r['channel']} {r['state']}" + (f": {r['detail']}" if r["detail"] else "")
            for r in bad
        )
        if last is None and worst < _RANK["down"]:
            state, detail = "down", f"never connected ({detail})"
        times = [t for t in (_finite(r.get("updated_at")) for r in bad) if t is not None]
        since = min(times) if times else None
        out.append(
            VenueHealth(venue, state, detail if worst > 0 or state == "down" else "", since, last)
        )
    return out


def _finite(x: object) -> float | None:
    if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def _json_safe(x: Any) -> Any:
    """``x`` with non-finite numbers as None (strict JSON has no NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def configured_venues(config: Any) -> list[str]:
    """The enabled venues of a configuration that have a feed."""
    if config is None:
        return []
    return [v.name for v in config.enabled_venues if v.name != GENERIC]


def configured_accounts(config: Any) -> list[AccountKey]:
    """The accounts of a configuration (none without one)."""
    if config is None:
        return []
    return [a.key for a in config.accounts]


def without_figures(
    scopes: Iterable[Mapping[str, Any]], accounts: Iterable[AccountKey]
) -> list[AccountKey]:
    """The ``accounts`` no scope of the store belongs to (a Hyperliquid dex account
    ``0x…@dex`` counts for its address): their margin is unknown, never "fine"."""
    seen: set[AccountKey] = set()
    for s in scopes:
        key = _account(str(s.get("scope_key")))
        if isinstance(key, AccountKey):
            seen.add(key)
            seen.add(AccountKey(key.venue, key.account.partition("@")[0]))
    return [a for a in accounts if a not in seen]


def main(args: argparse.Namespace) -> int:
    configure_logging("warning", stream=sys.stderr)
    try:
        where = locate(args)
        path, origin = where.path, where.origin
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
    configured = configured_venues(where.config)
    names = Names.of(where.config)
    missing = without_figures(view.scopes, configured_accounts(where.config))
    if args.json:
        venues = [asdict(v) for v in venue_health(view.feeds, configured)]
        for s in view.scopes:
            s["label"] = names.label(_account(str(s.get("scope_key"))))
        doc = {
            "store": str(path.resolve()),
            "daemon_running": state.running,
            "daemon_not_running_because": state.why or None,
            "daemon": view.daemon,
            "daemon_updated_at": view.daemon_updated_at,
            "scopes": view.scopes,
            "accounts_without_figures": [
                {"account": str(a), "label": names.label(a)} for a in missing
            ],
            "venues": venues,
            "feeds": view.feeds,
            "funding_paid": view.funding_paid,
        }
        print(json.dumps(_json_safe(doc)))
    else:
        text = render(
            view,
            now,
            store=path.resolve(),
            origin=origin,
            state=state,
            configured=configured,
            names=names,
            missing=missing,
        )
        print(text)
    return 0


def _account(scope_key: str) -> Any:
    try:
        key = parse_subject(scope_key)
    except IdError:
        return None
    return getattr(key, "account_key", None)


async def _read(path: Path) -> history.StatusView:
    store = await open_store(path, lock=False, create=False)
    try:
        return await history.read_status(store)
    finally:
        await store.close()


#: ages beyond this (seconds, about 1000 years) are not a time the daemon wrote
_ABSURD = 1000 * 366 * 86400.0


def _iso(ts: object) -> str:
    """An epoch time as ISO 8601 UTC; ``—`` for None, and the raw number for a time no
    calendar holds (1e300, negative years, NaN in a store row): never an exception."""
    t = _finite(ts)
    if t is None:
        return fmt.DASH if ts is None else clean(f"{ts!r} (not a time)")
    try:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"{t:.6g} (epoch s, not a calendar time)"


def _age(ts: object, now: float) -> str:
    """How long ago ``ts`` was; ``—`` when unknown or absurd, ``in the future`` when ahead
    of this host's clock."""
    t = _finite(ts)
    if t is None:
        return fmt.DASH
    age = now - t
    if abs(age) > _ABSURD:
        return fmt.DASH
    if age < -1.0:
        return f"{fmt.duration(-age)} in the future"
    return fmt.ago(max(age, 0.0))


_SUMMARY_SCOPE = re.compile(r"\(([a-z0-9_.-]+:[^()\s;]+)\)")


def _named_summary(summary: str, names: Names) -> str:
    """The daemon's summary line with the scope it names (``worst margin ratio 24.4%
    (hyperliquid:0x2222…/isolated:SOL)``) shortened and followed by its account's label."""

    def sub(m: re.Match[str]) -> str:
        try:
            subject = parse_subject(m.group(1))
        except IdError:
            return m.group(0)
        return f"({names.show(subject, short=True)})"

    return _SUMMARY_SCOPE.sub(sub, summary)


def _daemon_line(
    view: history.StatusView, state: DaemonState, now: float, names: Names | None = None
) -> list[str]:
    raw = str((view.daemon or {}).get("summary") or "")
    summary = clean(_named_summary(raw, names or Names()))
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
    configured: Iterable[str] = (),
    names: Names | None = None,
    missing: Sequence[AccountKey] = (),
) -> str:
    """The status as text fitted to :data:`WIDTH` columns (long account ids shortened to
    ``0x1111…1111`` and followed by the account's label when ``names`` has one, long cells
    cut with ``…``). Per venue, its state derived from its channels (:func:`venue_health`),
    how long it has been so and why; then each channel. Every venue-chosen string is
    neutralised (:func:`~monitor.commands._store.clean`). ``missing``: configured accounts
    without a scope in the store (:func:`without_figures`), listed as UNKNOWN under the
    scopes."""
    names = names or Names()
    if state is None:
        state = daemon_state(view.daemon, view.daemon_updated_at, now)
    lines: list[str] = []
    if store is not None:
        lines.append(f"store: {store}" + (f" ({origin})" if origin else ""))
    lines.extend(_daemon_line(view, state, now, names))
    lines.append("")
    rows = [("scope", "equity", "margin ratio", "nearest liq", "shock to liq", "alerts", "as of")]
    for s in view.scopes:
        scope_text = fmt.short_scope(str(s["scope_key"]))
        label = names.label(_account(str(s["scope_key"])))
        rows.append(
            (
                clean(scope_text + (f" ({label})" if label else "")),
                fmt.money(s.get("equity")),
                _ratio_cell(s),
                _liq_cell(s, "nearest_liquidation_distance"),
                _liq_cell(s, "shock_to_liquidation"),
                clean(", ".join(s.get("active_alerts") or []) or fmt.DASH),
                _age(s.get("updated_at"), now),
            )
        )
    lines.extend(_table(rows, shrink=(5, 0)) if view.scopes else ["no scopes yet"])
    for key in missing:
        lines.extend(
            _wrap(
                clean(
                    f"{names.show(key, short=True)}: UNKNOWN, no figures yet (no snapshot "
                    "from the venue, or the daemon has not run with this account)"
                )
            )
        )
    lines.append("")
    health = venue_health(view.feeds, configured)
    if health:
        frows = [("feed", "state", "for", "last message", "detail")]
        channels: dict[str, list[Mapping[str, Any]]] = {}
        for f in view.feeds:
            if f["channel"] != "*":
                channels.setdefault(str(f["venue"]), []).append(f)
        for h in health:
            frows.append(
                (
                    clean(h.venue),
                    h.state,
                    fmt.duration(now - h.since)
                    if h.since is not None and abs(now - h.since) < _ABSURD
                    else fmt.DASH,
                    _age(h.last_message_at, now),
                    clean(h.detail) or fmt.DASH,
                )
            )
            for ch in channels.get(h.venue, []):
                frows.append(
                    (
                        clean(f"  /{ch['channel']}"),
                        clean(ch["state"]),
                        fmt.DASH,
                        _age(ch["last_message_at"], now),
                        clean(ch["detail"]) or fmt.DASH,
                    )
                )
        lines.extend(_table(frows, shrink=(4, 0)))
    else:
        lines.append("no feed has reported yet")
    if view.funding_paid:
        lines.append("")
        prow = [("funding booked", "symbol", "amount", "payments")]
        for p in view.funding_paid:
            prow.append(
                (
                    clean(f"{p['venue']}:{fmt.short_id(str(p['account']))}"),
                    clean(p["symbol"]),
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
