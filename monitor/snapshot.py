"""Reading account documents: normalized snapshots and venue bodies (contracts.md §1–2).

``load_document(path, markets=None)`` auto-detects the kind of a JSON file:

1. a Hyperliquid ``clearinghouseState`` (REST body or WS push);
2. a dYdX v4 subaccount (REST body or WS ``subscribed``), with ``markets`` naming a
   ``/v4/perpetualMarkets`` body;
3. a normalized account snapshot, or a JSON list of them.

A list names each account once. Each snapshot of a list is its own moment: with
``own_marks=True`` (``inspect``, which prices every snapshot with its own marks) snapshots may
give different ``mark_price``/``oracle_price`` for one instrument; otherwise (callers that price
the whole list together) such a list is refused with a message naming both snapshots.

Every error is an ``InputError`` naming the file, the field and the problem.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.errors import InputError
from monitor.jsonfields import as_list, as_mapping, field, join, number, opt_number, string
from monitor.margin.registry import VENUES
from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule, MarginMode, Tier
from monitor.model.positions import Position
from monitor.model.venues import VENUES as VENUE_TABLE
from monitor.model.venues import canonical
from monitor.venues.dydx import accounts as dydx
from monitor.venues.hyperliquid import accounts as hyperliquid

SNAPSHOT_KEYS = frozenset({"venue", "account", "cross_collateral", "positions", "version"})
POSITION_KEYS = frozenset(
    {
        "symbol",
        "size",
        "entry_price",
        "mark_price",
        "oracle_price",
        "margin_mode",
        "isolated_margin",
        "leverage",
        "maintenance",
        "fee_rate",
        "initial_margin_rate",
        "funding_rate",
        "funding_interval_hours",
        "liquidation_price",
    }
)


def read_json(path: Path) -> Any:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(source, None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source, None, f"cannot read: {exc}") from None
    if not text.strip():
        raise InputError(source, None, "empty file")
    try:
        # NaN/Infinity parse here and are refused by the field readers, which name the field
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            source, None, f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None


def load_document(
    path: Path, markets: Path | None = None, *, own_marks: bool = False
) -> list[AccountSnapshot]:
    source = str(path)
    doc = read_json(path)
    if hyperliquid.is_clearinghouse_state(doc):
        return [hyperliquid.clearinghouse_to_snapshot(doc, source)]
    if dydx.is_subaccount(doc):
        if markets is None:
            raise InputError(
                source,
                "subaccount",
                "a dYdX subaccount needs --markets FILE (a /v4/perpetualMarkets body) "
                "for oracle prices and margin fractions",
            )
        mdoc = read_json(markets)
        if not dydx.is_markets(mdoc):
            raise InputError(str(markets), "markets", "not a /v4/perpetualMarkets body")
        read = dydx.read_markets(mdoc, str(markets))
        return dydx.subaccount_snapshots(
            doc, read.infos, source, markets_source=str(markets), skipped=read.skipped
        )
    if dydx.is_markets(doc):
        raise InputError(source, "markets", "this is a markets body; pass it with --markets")
    if isinstance(doc, list):
        if not doc:
            raise InputError(source, None, "empty list: expected account snapshots")
        snaps = [snapshot_from_json(item, source, f"[{i}]") for i, item in enumerate(doc)]
        check_list(snaps, source, own_marks=own_marks)
        return snaps
    if isinstance(doc, Mapping):
        return [snapshot_from_json(doc, source, "")]
    raise InputError(source, None, "expected a JSON object or list of account snapshots")


def check_list(snaps: list[AccountSnapshot], source: str, *, own_marks: bool) -> None:
    """Refuse a list naming one account twice and, unless ``own_marks``, a list giving one
    instrument different prices in different snapshots (it could only be priced with one)."""
    accounts: dict[tuple[str, str], int] = {}
    prices: dict[tuple[str, str, str], tuple[float, int]] = {}
    for i, snap in enumerate(snaps):
        first = accounts.setdefault((snap.venue, snap.account), i)
        if first != i:
            raise InputError(
                source,
                f"[{i}].account",
                f"account {snap.venue}:{snap.account} is already snapshot [{first}]; "
                "a list names each account once",
            )
        if own_marks:
            continue
        for j, pos in enumerate(snap.positions):
            for kind, value in (("mark_price", pos.mark_price), ("oracle_price", pos.oracle_price)):
                if value is None:
                    continue
                seen = prices.setdefault((snap.venue, pos.symbol, kind), (value, i))
                if seen[0] != value:
                    raise InputError(
                        source,
                        f"[{i}].positions[{j}].{kind}",
                        f"{snap.venue} {pos.symbol} {kind} is {value:g} here but {seen[0]:g} in "
                        f"snapshot [{seen[1]}]: one list is priced with one {kind} per "
                        "instrument; give the same price or use separate files",
                    )


def snapshot_from_json(obj: Any, source: str, path: str) -> AccountSnapshot:
    """A normalized account snapshot (contracts.md §2)."""
    o = as_mapping(obj, source, path)
    _reject_unknown(o, SNAPSHOT_KEYS, source, path)
    venue = string(o, "venue", source, path)
    if venue not in VENUES and canonical(venue) not in VENUE_TABLE:
        # a rule-set name (binance_usdm, dydx_v4) or the venue as in [venues] (binanceusdm)
        raise InputError(
            source,
            join(path, "venue"),
            f"unknown venue {venue!r} (known: {', '.join(VENUE_TABLE)}; the rule-set names "
            f"{', '.join(v for v in VENUES if v not in VENUE_TABLE)} are accepted too)",
        )
    account = o.get("account", "default")
    if not isinstance(account, str | int) or isinstance(account, bool):
        raise InputError(source, join(path, "account"), "expected a string")
    collateral = number(o, "cross_collateral", source, path, default=0.0)
    ppath = join(path, "positions")
    positions: list[Position] = []
    for i, item in enumerate(as_list(field(o, "positions", source, path), source, ppath)):
        pos = position_from_json(item, source, join(ppath, i))
        if pos.size != 0.0:
            positions.append(pos)
    seen: set[str] = set()
    for i, pos in enumerate(positions):
        if pos.symbol in seen:
            raise InputError(
                source,
                join(join(ppath, i), "symbol"),
                f"duplicate position in {pos.symbol!r} (one-way mode)",
            )
        seen.add(pos.symbol)
    return AccountSnapshot(
        venue=venue, account=str(account), cross_collateral=collateral, positions=tuple(positions)
    )


def position_from_json(obj: Any, source: str, path: str) -> Position:
    o = as_mapping(obj, source, path)
    _reject_unknown(o, POSITION_KEYS, source, path)
    # interned: a large book names a few hundred instruments a million times over
    symbol = sys.intern(string(o, "symbol", source, path))
    size = number(o, "size", source, path)
    entry = number(o, "entry_price", source, path, positive=True)
    mode_raw = o.get("margin_mode", "cross")
    try:
        mode = MarginMode(mode_raw)
    except ValueError:
        raise InputError(
            source, join(path, "margin_mode"), f"expected 'cross' or 'isolated', got {mode_raw!r}"
        ) from None
    iso = opt_number(o, "isolated_margin", source, path)
    if mode is MarginMode.ISOLATED and iso is None:
        raise InputError(source, join(path, "isolated_margin"), "required for an isolated position")
    interval = opt_number(o, "funding_interval_hours", source, path, positive=True)
    maint = o.get("maintenance")
    return Position(
        symbol=symbol,
        size=size,
        entry_price=entry,
        margin_mode=mode,
        isolated_margin=iso if mode is MarginMode.ISOLATED else None,
        leverage=opt_number(o, "leverage", source, path, positive=True),
        maintenance=None
        if maint is None
        else maintenance_from_json(maint, source, join(path, "maintenance")),
        fee_rate=opt_number(o, "fee_rate", source, path, non_negative=True),
        initial_margin_rate=opt_number(o, "initial_margin_rate", source, path, non_negative=True),
        mark_price=shared_price(opt_number(o, "mark_price", source, path, positive=True)),
        oracle_price=shared_price(opt_number(o, "oracle_price", source, path, positive=True)),
        funding_rate=opt_number(o, "funding_rate", source, path),
        funding_interval_hours=interval,
        venue_liquidation_price=opt_number(o, "liquidation_price", source, path),
    )


#: one float object per price value (``shared_price``); cleared past ``_PRICES_MAX`` entries so
#: a book of distinct prices cannot grow it without bound
_PRICES: dict[float, float] = {}
_PRICES_MAX = 65536


def shared_price(value: float | None) -> float | None:
    """``value`` itself, or an equal float read before: a book gives every position on one
    instrument the same ``mark_price``, and a million positions would otherwise hold a
    million copies of a few hundred prices (32 bytes each). For prices > 0 only (a dict
    finds -0.0 equal to 0.0; the readers refuse a price ≤ 0 and a NaN)."""
    if value is None:
        return None
    got = _PRICES.get(value)
    if got is not None:
        return got
    if len(_PRICES) >= _PRICES_MAX:
        _PRICES.clear()
    _PRICES[value] = value
    return value


def maintenance_from_json(obj: Any, source: str, path: str) -> MaintenanceSchedule:
    """``{"rate", "deduction"}``, ``{"tiers": [...]}`` or ``{"max_leverage": n}``."""
    o = as_mapping(obj, source, path)
    try:
        if "max_leverage" in o:
            _reject_unknown(o, frozenset({"max_leverage"}), source, path)
            return MaintenanceSchedule.from_max_leverage(
                number(o, "max_leverage", source, path, positive=True)
            )
        if "tiers" in o:
            _reject_unknown(o, frozenset({"tiers"}), source, path)
            tpath = join(path, "tiers")
            raw = as_list(o["tiers"], source, tpath)
            if not raw:
                raise InputError(source, tpath, "needs at least one tier")
            tiers = []
            with_deduction = True
            for i, item in enumerate(raw):
                ip = join(tpath, i)
                t = as_mapping(item, source, ip)
                _reject_unknown(t, frozenset({"floor", "rate", "deduction"}), source, ip)
                if "deduction" not in t:
                    with_deduction = False
                tiers.append(
                    Tier(
                        number(t, "floor", source, ip, non_negative=True, default=0.0)
                        if i
                        else 0.0,
                        _rate(t, source, ip),
                        number(t, "deduction", source, ip, default=0.0),
                    )
                )
            if with_deduction:
                return MaintenanceSchedule(tuple(tiers), kind="tiers")
            return MaintenanceSchedule.continuous([(t.floor, t.rate) for t in tiers])
        if "rate" in o:
            _reject_unknown(o, frozenset({"rate", "deduction"}), source, path)
            return MaintenanceSchedule.flat(
                _rate(o, source, path), number(o, "deduction", source, path, default=0.0)
            )
    except ValueError as exc:
        raise InputError(source, path, str(exc)) from None
    raise InputError(source, path, "expected one of 'rate', 'tiers' or 'max_leverage'")


def _rate(o: Mapping[str, Any], source: str, path: str) -> float:
    r = number(o, "rate", source, path, non_negative=True)
    if r >= 1.0:
        raise InputError(source, join(path, "rate"), f"must be below 1, got {o['rate']!r}")
    return r


def _reject_unknown(o: Mapping[str, Any], known: frozenset[str], source: str, path: str) -> None:
    for key in o:
        if key not in known:
            near = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise InputError(source, join(path, str(key)), f"unknown key{hint}")
