"""Hyperliquid ``clearinghouseState`` → ``AccountSnapshot`` (pure).

Accepts the REST body of ``POST /info {"type":"clearinghouseState"}`` or the WebSocket push
``{"channel":"clearinghouseState","data":{"user":…,"clearinghouseState":{…}}}`` (identical
inner object). Field meanings, margin-math.md §1.3:

* mark = ``positionValue / |szi|`` (no mark is sent);
* maintenance rate = ``1 / (2·maxLeverage)`` of the position's current tier (a stand-in: in the
  daemon the instrument's margin table from ``metaAndAssetCtxs``, with its deductions, wins);
* cross collateral (excl. uPnL) = ``crossMarginSummary.totalRawUsd + Σ_cross szi·entryPx``,
  so cross equity = ``totalRawUsd + Σ szi·mark`` = ``crossMarginSummary.accountValue``;
* isolated margin (excl. uPnL) = ``leverage.rawUsd + szi·entryPx``, so its equity is
  ``rawUsd + szi·mark`` = ``marginUsed``.

The venue's own ``liquidationPx``, ``marginUsed``, cross ``accountValue``,
``crossMaintenanceMarginUsed`` and ``withdrawable`` are kept beside ours.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import msgspec

from monitor.errors import InputError
from monitor.jsonfields import as_list, as_mapping, field, join, number, opt_number, string
from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule, MarginMode
from monitor.model.positions import Position

VENUE = "hyperliquid"


def is_clearinghouse_state(doc: Any) -> bool:
    if not isinstance(doc, Mapping):
        return False
    if doc.get("channel") == "clearinghouseState":
        return True
    return "assetPositions" in doc and "crossMarginSummary" in doc


def unwrap(doc: Mapping[str, Any], source: str) -> tuple[Mapping[str, Any], str, str | None]:
    """(inner state, its key path, user address if the document names one)."""
    if doc.get("channel") == "clearinghouseState":
        data = as_mapping(field(doc, "data", source, ""), source, "data")
        inner = as_mapping(
            field(data, "clearinghouseState", source, "data"), source, "data.clearinghouseState"
        )
        user = data.get("user")
        return inner, "data.clearinghouseState", user if isinstance(user, str) else None
    return doc, "", None


# -- the fast path: a typed conversion of a well-formed document ------------------------------
_Num = str | float | int


class _Lev(msgspec.Struct):
    type: str
    value: _Num | None = None
    rawUsd: _Num | None = None


class _Pos(msgspec.Struct):
    coin: str
    szi: _Num
    leverage: _Lev
    entryPx: _Num
    positionValue: _Num
    maxLeverage: _Num
    liquidationPx: _Num | None = None
    marginUsed: _Num | None = None


class _Entry(msgspec.Struct):
    position: _Pos


class _Summary(msgspec.Struct):
    totalRawUsd: _Num
    accountValue: _Num | None = None


class _State(msgspec.Struct):
    crossMarginSummary: _Summary
    assetPositions: list[_Entry]
    crossMaintenanceMarginUsed: _Num | None = None
    withdrawable: _Num | None = None
    time: int | None = None


class _Slow(Exception):
    """Anything unusual: take the validating path, which names the field."""


def _f(x: _Num) -> float:
    v = float(x)
    if not math.isfinite(v):
        raise _Slow
    return v


def _of(x: _Num | None) -> float | None:
    return None if x is None else _f(x)


@functools.lru_cache(maxsize=256)
def _schedule(max_leverage: float) -> MaintenanceSchedule:
    return MaintenanceSchedule.from_max_leverage(max_leverage)


def _fast(inner: Mapping[str, Any], account: str, ts_recv: float) -> AccountSnapshot:
    try:
        st = msgspec.convert(inner, _State)
    except msgspec.ValidationError:
        raise _Slow from None
    positions: list[Position] = []
    cross_entry = 0.0
    for e in st.assetPositions:
        p = e.position
        szi = _f(p.szi)
        if szi == 0.0:
            continue
        entry, value, max_lev = _f(p.entryPx), _f(p.positionValue), _f(p.maxLeverage)
        lev = p.leverage
        lev_value = _of(lev.value)
        if (
            entry <= 0.0
            or value <= 0.0
            or max_lev <= 0.0
            or (lev_value is not None and lev_value <= 0.0)
        ):
            raise _Slow
        if lev.type == "cross":
            mode, iso = MarginMode.CROSS, None
            cross_entry += szi * entry
        elif lev.type == "isolated" and lev.rawUsd is not None:
            mode, iso = MarginMode.ISOLATED, _f(lev.rawUsd) + szi * entry
        else:
            raise _Slow
        positions.append(
            Position(
                symbol=p.coin,
                size=szi,
                entry_price=entry,
                margin_mode=mode,
                isolated_margin=iso,
                leverage=lev_value,
                maintenance=_schedule(max_lev),
                mark_price=value / abs(szi),
                funding_interval_hours=1.0,
                venue_liquidation_price=_of(p.liquidationPx),
                venue_margin_used=_of(p.marginUsed),
                maintenance_fallback=True,
            )
        )
    cms = st.crossMarginSummary
    return AccountSnapshot(
        venue=VENUE,
        account=account,
        cross_collateral=_f(cms.totalRawUsd) + cross_entry,
        positions=tuple(positions),
        ts_event=st.time / 1000.0 if st.time is not None else None,
        ts_recv=ts_recv,
        venue_equity=_of(cms.accountValue),
        venue_free_collateral=_of(st.withdrawable),
        venue_maintenance=_of(st.crossMaintenanceMarginUsed),
    )


def clearinghouse_to_snapshot(
    doc: Mapping[str, Any], source: str, *, account: str | None = None, ts_recv: float = 0.0
) -> AccountSnapshot:
    """The snapshot of a well-formed document through a typed fast path; anything unusual
    goes through the validating reader, which raises an ``InputError`` naming the field."""
    inner, _, user = unwrap(doc, source)
    try:
        return _fast(inner, account or user or "hyperliquid", ts_recv)
    except (_Slow, ValueError, TypeError):
        return _validated(doc, source, account=account, ts_recv=ts_recv)


def _validated(
    doc: Mapping[str, Any], source: str, *, account: str | None = None, ts_recv: float = 0.0
) -> AccountSnapshot:
    inner, base, user = unwrap(doc, source)
    account = account or user or "hyperliquid"
    cms = as_mapping(
        field(inner, "crossMarginSummary", source, base), source, join(base, "crossMarginSummary")
    )
    cms_path = join(base, "crossMarginSummary")
    total_raw = number(cms, "totalRawUsd", source, cms_path)
    venue_equity = opt_number(cms, "accountValue", source, cms_path)
    venue_mm = opt_number(inner, "crossMaintenanceMarginUsed", source, base)
    venue_free = opt_number(inner, "withdrawable", source, base)
    t = inner.get("time")
    ts_event = float(t) / 1000.0 if isinstance(t, int | float) and not isinstance(t, bool) else None

    positions: list[Position] = []
    cross_entry = 0.0
    aps_path = join(base, "assetPositions")
    for i, entry in enumerate(
        as_list(field(inner, "assetPositions", source, base), source, aps_path)
    ):
        ppath = join(join(aps_path, i), "position")
        pos = as_mapping(
            field(
                as_mapping(entry, source, join(aps_path, i)), "position", source, join(aps_path, i)
            ),
            source,
            ppath,
        )
        pos_obj = _position(pos, source, ppath)
        if pos_obj is None:
            continue
        if pos_obj.margin_mode is MarginMode.CROSS:
            cross_entry += pos_obj.size * pos_obj.entry_price
        positions.append(pos_obj)

    return AccountSnapshot(
        venue=VENUE,
        account=account,
        cross_collateral=total_raw + cross_entry,
        positions=tuple(positions),
        ts_event=ts_event,
        ts_recv=ts_recv,
        venue_equity=venue_equity,
        venue_free_collateral=venue_free,
        venue_maintenance=venue_mm,
    )


def _position(pos: Mapping[str, Any], source: str, path: str) -> Position | None:
    coin = string(pos, "coin", source, path)
    szi = number(pos, "szi", source, path)
    if szi == 0.0:
        return None
    entry = number(pos, "entryPx", source, path, positive=True)
    value = number(pos, "positionValue", source, path, non_negative=True)
    max_lev = number(pos, "maxLeverage", source, path, positive=True)
    lev = as_mapping(field(pos, "leverage", source, path), source, join(path, "leverage"))
    lpath = join(path, "leverage")
    kind = string(lev, "type", source, lpath)
    lev_value = opt_number(lev, "value", source, lpath, positive=True)
    mark = value / abs(szi)
    if mark <= 0.0:
        raise InputError(
            source, join(path, "positionValue"), "must be positive for an open position"
        )
    common: dict[str, Any] = {
        "symbol": coin,
        "size": szi,
        "entry_price": entry,
        "leverage": lev_value,
        "maintenance": MaintenanceSchedule.from_max_leverage(max_lev),
        # the margin table (metaAndAssetCtxs), when known, adds the tier deductions
        "maintenance_fallback": True,
        "mark_price": mark,
        "funding_interval_hours": 1.0,
        "venue_liquidation_price": opt_number(pos, "liquidationPx", source, path),
        "venue_margin_used": opt_number(pos, "marginUsed", source, path),
    }
    if kind == "cross":
        return Position(margin_mode=MarginMode.CROSS, **common)
    if kind == "isolated":
        raw = number(lev, "rawUsd", source, lpath)
        return Position(
            margin_mode=MarginMode.ISOLATED, isolated_margin=raw + szi * entry, **common
        )
    raise InputError(source, join(lpath, "type"), f"expected 'cross' or 'isolated', got {kind!r}")
