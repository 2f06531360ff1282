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

Magnitude bounds (fail closed, issue 10): a size beyond ``MAX_SIZE`` (1e12 base units), a
price beyond ``MAX_PRICE`` (1e12 quote per base) or a USD amount beyond ``MAX_USD`` (1e15)
is no figure any venue produces; the document is refused (``InputError`` naming the field),
so such values never reach the engine, where ``1e200 · 1e200`` is infinite and ``1e303``
sizes overflow ``math.fsum``.

Unified and portfolio-margin accounts (:func:`pooled_snapshots`): see its docstring.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from monitor.errors import InputError
from monitor.jsonfields import (
    as_list,
    as_mapping,
    field,
    join,
    number,
    opt_number,
    string,
    to_float,
)
from monitor.model.events import AccountSnapshot, VenueMarginRatio
from monitor.model.instruments import MaintenanceSchedule, MarginMode
from monitor.model.positions import Position

VENUE = "hyperliquid"

MAX_SIZE = 1e12
"""Largest |size| (base units) accepted in a position."""
MAX_PRICE = 1e12
"""Largest price (quote per base) accepted."""
MAX_USD = 1e15
"""Largest |USD amount| (balances, margins, position values) accepted."""
LEVERAGE_RANGE = (1.0, 1000.0)
"""Accepted ``maxLeverage`` and leverage ``value`` (Hyperliquid: integers from 1 to 50)."""


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


def _f(x: _Num, limit: float = MAX_USD) -> float:
    v = float(x)
    if not -limit <= v <= limit:  # also refuses NaN
        raise _Slow
    return v


def _of(x: _Num | None, limit: float = MAX_USD) -> float | None:
    return None if x is None else _f(x, limit)


def _mark(value: float, szi: float) -> float:
    mark = value / abs(szi)
    if not 0.0 < mark <= MAX_PRICE:
        raise _Slow
    return mark


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
        szi = _f(p.szi, MAX_SIZE)
        if szi == 0.0:
            continue
        entry, value = _f(p.entryPx, MAX_PRICE), _f(p.positionValue)
        max_lev = _f(p.maxLeverage)
        if not LEVERAGE_RANGE[0] <= max_lev <= LEVERAGE_RANGE[1]:
            raise _Slow
        lev = p.leverage
        lev_value = _of(lev.value)
        if (
            entry <= 0.0
            or value <= 0.0
            or (lev_value is not None and not 0.0 < lev_value <= LEVERAGE_RANGE[1])
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
                mark_price=_mark(value, szi),
                funding_interval_hours=1.0,
                venue_liquidation_price=_of(p.liquidationPx, MAX_PRICE),
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
    total_raw = _bounded(
        number(cms, "totalRawUsd", source, cms_path), MAX_USD, source, join(cms_path, "totalRawUsd")
    )
    venue_equity = _opt_bounded(cms, "accountValue", MAX_USD, source, cms_path)
    venue_mm = _opt_bounded(inner, "crossMaintenanceMarginUsed", MAX_USD, source, base)
    venue_free = _opt_bounded(inner, "withdrawable", MAX_USD, source, base)
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
    szi = _bounded(number(pos, "szi", source, path), MAX_SIZE, source, join(path, "szi"))
    if szi == 0.0:
        return None
    entry = number(pos, "entryPx", source, path, positive=True)
    _bounded(entry, MAX_PRICE, source, join(path, "entryPx"))
    value = number(pos, "positionValue", source, path, non_negative=True)
    _bounded(value, MAX_USD, source, join(path, "positionValue"))
    max_lev = number(pos, "maxLeverage", source, path, positive=True)
    if not LEVERAGE_RANGE[0] <= max_lev <= LEVERAGE_RANGE[1]:
        raise InputError(
            source, join(path, "maxLeverage"), f"must be within {LEVERAGE_RANGE}, got {max_lev:g}"
        )
    lev = as_mapping(field(pos, "leverage", source, path), source, join(path, "leverage"))
    lpath = join(path, "leverage")
    kind = string(lev, "type", source, lpath)
    lev_value = opt_number(lev, "value", source, lpath, positive=True)
    if lev_value is not None:
        _bounded(lev_value, LEVERAGE_RANGE[1], source, join(lpath, "value"))
    mark = value / abs(szi)
    if mark <= 0.0:
        raise InputError(
            source, join(path, "positionValue"), "must be positive for an open position"
        )
    _bounded(mark, MAX_PRICE, source, join(path, "positionValue"))
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
        "venue_liquidation_price": _opt_bounded(pos, "liquidationPx", MAX_PRICE, source, path),
        "venue_margin_used": _opt_bounded(pos, "marginUsed", MAX_USD, source, path),
    }
    if kind == "cross":
        return Position(margin_mode=MarginMode.CROSS, **common)
    if kind == "isolated":
        raw = _bounded(number(lev, "rawUsd", source, lpath), MAX_USD, source, join(lpath, "rawUsd"))
        return Position(
            margin_mode=MarginMode.ISOLATED, isolated_margin=raw + szi * entry, **common
        )
    raise InputError(source, join(lpath, "type"), f"expected 'cross' or 'isolated', got {kind!r}")


def _bounded(value: float, limit: float, source: str, path: str) -> float:
    """``value`` if ``|value| <= limit``, else an ``InputError`` (no venue sends such figures)."""
    if not -limit <= value <= limit:
        raise InputError(source, path, f"magnitude {value:.3g} beyond the bound {limit:g}")
    return value


def _opt_bounded(
    obj: Mapping[str, Any], key: str, limit: float, source: str, path: str
) -> float | None:
    v = opt_number(obj, key, source, path)
    return None if v is None else _bounded(v, limit, source, join(path, key))


# -- unified and portfolio-margin accounts --------------------------------------------------
POOLED_MODES = frozenset({"unifiedAccount", "portfolioMargin"})
"""``userAbstraction`` answers under which balances live in the spot clearinghouse state and
each collateral token is one cross pool across every perp dex that posts it."""
KNOWN_MODES = POOLED_MODES | {"disabled", "default", "dexAbstraction"}
PORTFOLIO_LIQUIDATION_RATIO = 0.95
"""Portfolio margin: the account is liquidatable once ``portfolio_margin_ratio`` > 0.95
(Hyperliquid docs, "Portfolio margin", Liquidations)."""
USDC_TOKEN = 0


def abstraction_mode(doc: Any, source: str) -> str:
    """The account abstraction mode of a ``POST /info {"type":"userAbstraction"}`` body: a bare
    JSON string, one of ``unifiedAccount``, ``portfolioMargin``, ``disabled``, ``default``,
    ``dexAbstraction`` (Hyperliquid docs, info endpoint, "userAbstraction"). Anything else is an
    ``InputError`` (the mode decides which documents hold the balances: never guessed)."""
    if not isinstance(doc, str) or doc not in KNOWN_MODES:
        raise InputError(source, None, f"unknown account abstraction mode {str(doc)[:40]!r}")
    return doc


def is_pooled(mode: str | None) -> bool:
    return mode in POOLED_MODES


@dataclass(frozen=True, slots=True)
class SpotBalance:
    """One row of ``spotClearinghouseState.balances``: ``total`` and ``hold`` in token units."""

    coin: str
    token: int
    total: float
    hold: float


@dataclass(frozen=True, slots=True)
class SpotState:
    """A ``spotClearinghouseState`` (REST body, or the ``spotState`` of a WS ``spotState``
    push). ``balances`` by token index (rows without a token, HIP-4 outcome sides, are not
    collateral and are left out); ``available_after_maintenance`` is the venue's
    ``tokenToAvailableAfterMaintenance``; ``portfolio_margin_ratio`` the venue's
    ``portfolioMarginRatio`` (portfolio-margin accounts only)."""

    balances: Mapping[int, SpotBalance]
    available_after_maintenance: Mapping[int, float]
    portfolio_margin_enabled: bool | None = None
    portfolio_margin_ratio: float | None = None


def spot_state(doc: Any, source: str) -> tuple[SpotState, str | None]:
    """Read a spot clearinghouse state; the second item is the user when the document is
    the WS push ``{"channel":"spotState","data":{"user":…,"spotState":{…}}}``."""
    user: str | None = None
    base = ""
    body = as_mapping(doc, source, "")
    if body.get("channel") == "spotState":
        data = as_mapping(field(body, "data", source, ""), source, "data")
        u = data.get("user")
        user = u.lower() if isinstance(u, str) else None
        body = as_mapping(field(data, "spotState", source, "data"), source, "data.spotState")
        base = "data.spotState"
    bpath = join(base, "balances")
    balances: dict[int, SpotBalance] = {}
    for i, raw in enumerate(as_list(field(body, "balances", source, base), source, bpath)):
        row = as_mapping(raw, source, join(bpath, i))
        rpath = join(bpath, i)
        token = row.get("token")
        if token is None:
            continue  # an outcome side ("+14720"): not collateral
        if not isinstance(token, int) or isinstance(token, bool) or token < 0:
            raise InputError(source, join(rpath, "token"), "expected a token index")
        balances[token] = SpotBalance(
            coin=string(row, "coin", source, rpath),
            token=token,
            total=_bounded(number(row, "total", source, rpath), MAX_USD, source, rpath),
            hold=_bounded(number(row, "hold", source, rpath, default=0.0), MAX_USD, source, rpath),
        )
    available: dict[int, float] = {}
    apath = join(base, "tokenToAvailableAfterMaintenance")
    for i, raw in enumerate(
        as_list(body.get("tokenToAvailableAfterMaintenance") or [], source, apath)
    ):
        pair = as_list(raw, source, join(apath, i))
        if len(pair) != 2 or not isinstance(pair[0], int) or isinstance(pair[0], bool):
            raise InputError(source, join(apath, i), "expected [token, amount]")
        value = _bounded(to_float(pair[1], source, join(apath, i)), MAX_USD, source, apath)
        available[pair[0]] = value
    pm = body.get("portfolioMarginEnabled")
    ratio = _opt_bounded(body, "portfolioMarginRatio", MAX_USD, source, base)
    return (
        SpotState(
            balances=balances,
            available_after_maintenance=available,
            portfolio_margin_enabled=pm if isinstance(pm, bool) else None,
            portfolio_margin_ratio=ratio,
        ),
        user,
    )


def pool_account(user: str, token: int, spot: SpotState | None) -> str:
    """The account key of ``user``'s cross pool in collateral ``token``: the address itself
    for USDC (token 0, so a unified account keeps the name of its configuration entry),
    ``<address>@<COIN>`` for another collateral (e.g. ``0x…@USDT0``), ``@token<N>`` when the
    spot state does not name it."""
    user = user.lower()
    if token == USDC_TOKEN:
        return user
    row = spot.balances.get(token) if spot is not None else None
    return f"{user}@{row.coin}" if row is not None else f"{user}@token{token}"


def pooled_snapshots(
    user: str,
    mode: str,
    dex_states: Mapping[str, Mapping[str, Any]],
    spot: SpotState,
    collateral: Mapping[str, int],
    *,
    source: str = "hyperliquid",
    ts_recv: float = 0.0,
) -> list[AccountSnapshot | VenueMarginRatio]:
    """The pools of a unified or portfolio-margin account (pure).

    Inputs: ``dex_states`` maps each perp dex name (``""`` the first dex) to its inner
    ``clearinghouseState``; ``spot`` the account's spot clearinghouse state; ``collateral``
    maps each dex to its ``collateralToken`` (``meta.collateralToken`` of
    ``metaAndAssetCtxs``; a dex missing from it posts USDC, token 0).

    Hyperliquid docs, "Account abstraction modes": in these modes all balances and holds are
    in the spot state and the per-dex perp states are not meaningful as collateral; the
    *Unified Account Ratio* of collateral token ``T`` is

        UAR_T = Σ_{dex posting T} crossMaintenanceMarginUsed(dex)
                / (spot total_T − Σ_{dex posting T} marginUsed of its isolated positions)

    and the account is liquidatable at ``UAR_T ≥ 1``. So each collateral token is one cross
    pool whose equity is ``spot total_T − isolated margin_T`` (the venue's figure, which moves
    with the cross positions' unrealized PnL) and whose positions are the cross positions of
    every dex posting ``T`` (HIP-3 dexes included). Expressed as one ``AccountSnapshot`` per
    pool, with ``cross_collateral`` excluding uPnL as everywhere (contracts.md §2):

        cross_collateral_T = spot total_T − isolated margin_T − Σ_cross s·(mark − entry)

    Isolated positions stay isolated scopes of the same snapshot. ``venue_equity`` is the
    denominator above and ``venue_maintenance`` the numerator, so the venue's UAR reads
    ``venue_maintenance / venue_equity`` beside our margin ratio. Unlike the docs' reference
    code, a pool whose denominator is ≤ 0 is not skipped: its equity is ≤ 0 and it alarms.

    Portfolio margin adds HYPE/BTC collateral with LTVs, borrowing and caps whose live values
    the public state does not carry: the pools above count only the collateral token's own
    balance (conservative: more alarming, never less), and the venue's ``portfolioMarginRatio``
    is carried as a :class:`VenueMarginRatio` (liquidatable above 0.95): the venue's figure.

    Pools: one per collateral token holding positions, and always the USDC pool (the address
    itself). Errors: ``InputError`` naming the document and field.
    """
    per_token: dict[int, list[Position]] = {}
    iso_margin: dict[int, float] = {}
    venue_mm: dict[int, float | None] = {}
    times: list[float] = []
    for dex, inner in dex_states.items():
        token = collateral.get(dex, USDC_TOKEN)
        snap = clearinghouse_to_snapshot(inner, f"{source} {dex or 'main'} dex", account=user)
        if snap.ts_event is not None:
            times.append(snap.ts_event)
        held = per_token.setdefault(token, [])
        for pos in snap.positions:
            held.append(pos)
            if pos.margin_mode is MarginMode.ISOLATED:
                assert pos.isolated_margin is not None and pos.mark_price is not None
                iso_margin[token] = iso_margin.get(token, 0.0) + (
                    pos.isolated_margin + pos.size * (pos.mark_price - pos.entry_price)
                )
        mm = snap.venue_maintenance
        prev = venue_mm.get(token, 0.0)
        venue_mm[token] = None if mm is None or prev is None else prev + mm
    per_token.setdefault(USDC_TOKEN, [])
    ts_event = max(times) if times else None
    out: list[AccountSnapshot | VenueMarginRatio] = []
    for token in sorted(per_token):
        positions = per_token[token]
        row = spot.balances.get(token)
        total = row.total if row is not None else 0.0
        equity = total - iso_margin.get(token, 0.0)
        upnl = math.fsum(
            p.size * (p.mark_price - p.entry_price)
            for p in positions
            if p.margin_mode is MarginMode.CROSS and p.mark_price is not None
        )
        out.append(
            AccountSnapshot(
                venue=VENUE,
                account=pool_account(user, token, spot),
                cross_collateral=equity - upnl,
                positions=tuple(positions),
                ts_event=ts_event,
                ts_recv=ts_recv,
                venue_equity=equity,
                venue_maintenance=venue_mm.get(token),
            )
        )
    if mode == "portfolioMargin" and spot.portfolio_margin_ratio is not None:
        out.append(
            VenueMarginRatio(
                VENUE,
                user.lower(),
                spot.portfolio_margin_ratio,
                PORTFOLIO_LIQUIDATION_RATIO,
                "spotClearinghouseState.portfolioMarginRatio",
                ts_event,
                ts_recv,
            )
        )
    return out


def collateral_token(meta_doc: Any, source: str) -> int:
    """``meta.collateralToken`` of a ``meta`` or ``metaAndAssetCtxs`` body (0, USDC, when the
    document does not say: the first dex's ``meta`` predates the field)."""
    meta = meta_doc[0] if isinstance(meta_doc, list) and meta_doc else meta_doc
    token = as_mapping(meta, source, "meta").get("collateralToken", USDC_TOKEN)
    if not isinstance(token, int) or isinstance(token, bool) or token < 0:
        raise InputError(source, "collateralToken", "expected a token index")
    return token


def account_documents(
    user: str,
    abstraction: Any,
    clearinghouse_states: Mapping[str, Any],
    spot: Any | None = None,
    metas: Mapping[str, Any] | None = None,
    *,
    source: str = "hyperliquid",
    ts_recv: float = 0.0,
) -> list[AccountSnapshot | VenueMarginRatio]:
    """The events of one Hyperliquid address from its raw ``/info`` documents (pure), for
    one-shot reports such as ``monitor inspect``.

    ``abstraction``: the ``userAbstraction`` body (a JSON string); ``clearinghouse_states``:
    ``clearinghouseState`` bodies by dex name (``""`` the first dex); ``spot``: the
    ``spotClearinghouseState`` body (required for a unified or portfolio-margin account);
    ``metas``: ``meta``/``metaAndAssetCtxs`` bodies by dex, for each dex's collateral token.

    A standard account gives one snapshot per dex (``<address>`` and ``<address>@<dex>``),
    exactly as the feed does; a unified / portfolio-margin account gives its pools
    (:func:`pooled_snapshots`), each snapshot carrying the venue's figures
    (``venue_equity`` = spot total − isolated margin, ``venue_maintenance`` = the cross
    maintenance of the dexes posting that collateral) beside ours. Errors: ``InputError``
    naming the document and field (a unified account without its spot state included).
    """
    user = user.lower()
    mode = abstraction_mode(abstraction, f"{source} userAbstraction")
    if not is_pooled(mode):
        return [
            clearinghouse_to_snapshot(
                doc,
                f"{source} clearinghouseState {dex or 'main'}",
                account=f"{user}@{dex}" if dex else user,
                ts_recv=ts_recv,
            )
            for dex, doc in clearinghouse_states.items()
        ]
    if spot is None:
        raise InputError(
            source, "spotClearinghouseState", f"required: the account is in {mode} mode"
        )
    state, _ = spot_state(spot, f"{source} spotClearinghouseState")
    collateral = {
        dex: collateral_token(doc, f"{source} meta {dex or 'main'}")
        for dex, doc in (metas or {}).items()
    }
    return pooled_snapshots(
        user, mode, clearinghouse_states, state, collateral, source=source, ts_recv=ts_recv
    )
