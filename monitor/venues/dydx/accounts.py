"""dYdX v4 indexer documents → instruments and ``AccountSnapshot`` (pure).

Accepted forms:

* markets: the REST body of ``GET /v4/perpetualMarkets`` (``{"markets": {ticker: …}}``) or the
  ``subscribed`` message of WS ``v4_markets`` (same object under ``contents``);
* a subaccount: the REST body of ``GET /v4/addresses/{a}/subaccountNumber/{n}``
  (``{"subaccount": {…}}``) or the ``subscribed`` message of WS ``v4_subaccounts``; a parent
  subaccount (``/parentSubaccountNumber/{n}``: ``childSubaccounts``) is read as one account
  whose children numbered ≥ 128 hold isolated positions (margin-math.md §2.4).

Arithmetic (margin-math.md §2.2): Q = signed USDC asset position (SHORT is negative);
equity = Q + Σ s·oracle; cross collateral (excl. uPnL) = Q + Σ s·entry; maintenance = MMF;
initial margin = IMF, scaled by open interest when the market has OI caps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.errors import InputError
from monitor.jsonfields import as_mapping, field, join, number, opt_number, string
from monitor.model.events import AccountSnapshot
from monitor.model.instruments import Instrument, MaintenanceSchedule, MarginMode
from monitor.model.positions import Position
from monitor.model.venues import DYDX

VENUE = DYDX
ISOLATED_CHILD_MIN = 128


@dataclass(frozen=True, slots=True)
class MarketInfo:
    instrument: Instrument
    oracle_price: float
    next_funding_rate: float | None
    isolated_market: bool


def is_markets(doc: Any) -> bool:
    if not isinstance(doc, Mapping):
        return False
    if doc.get("channel") == "v4_markets" and isinstance(doc.get("contents"), Mapping):
        return "markets" in doc["contents"]
    return isinstance(doc.get("markets"), Mapping)


def is_subaccount(doc: Any) -> bool:
    if not isinstance(doc, Mapping):
        return False
    if doc.get("channel") in ("v4_subaccounts", "v4_parent_subaccounts"):
        return isinstance(doc.get("contents"), Mapping)
    return isinstance(doc.get("subaccount"), Mapping)


def effective_imf(m: Mapping[str, Any], source: str, path: str) -> float:
    """IMF scaled by open interest (margin-math.md §2.1); the base IMF without OI caps."""
    imf = number(m, "initialMarginFraction", source, path, non_negative=True)
    lower = opt_number(m, "openInterestLowerCap", source, path, non_negative=True)
    upper = opt_number(m, "openInterestUpperCap", source, path, non_negative=True)
    oi = opt_number(m, "openInterest", source, path, non_negative=True)
    oracle = opt_number(m, "oraclePrice", source, path, positive=True)
    if lower is None or upper is None or oi is None or oracle is None or upper <= lower:
        return imf
    f = (oi * oracle - lower) / (upper - lower)
    return min(imf + max(f, 0.0) * (1.0 - imf), 1.0)


def markets_from_doc(doc: Mapping[str, Any], source: str) -> dict[str, MarketInfo]:
    base = ""
    if doc.get("channel") == "v4_markets":
        doc = as_mapping(doc["contents"], source, "contents")
        base = "contents"
    mpath = join(base, "markets")
    markets = as_mapping(field(doc, "markets", source, base), source, mpath)
    out: dict[str, MarketInfo] = {}
    for ticker, raw in markets.items():
        path = join(mpath, ticker)
        m = as_mapping(raw, source, path)
        out[ticker] = market_info(ticker, m, source, path)
    return out


def market_info(ticker: str, m: Mapping[str, Any], source: str, path: str) -> MarketInfo:
    mmf = number(m, "maintenanceMarginFraction", source, path, non_negative=True)
    if mmf >= 1.0:
        raise InputError(source, join(path, "maintenanceMarginFraction"), "must be below 1")
    inst = Instrument(
        venue=VENUE,
        symbol=ticker,
        maintenance=MaintenanceSchedule.flat(mmf),
        funding_interval_hours=1.0,
        initial_margin_rate=effective_imf(m, source, path),
    )
    return MarketInfo(
        instrument=inst,
        oracle_price=number(m, "oraclePrice", source, path, positive=True),
        next_funding_rate=opt_number(m, "nextFundingRate", source, path),
        isolated_market=m.get("marketType") == "ISOLATED",
    )


def _signed(obj: Mapping[str, Any], source: str, path: str) -> float:
    size = number(obj, "size", source, path)
    side = obj.get("side")
    if side == "SHORT" and size > 0:
        size = -size
    elif side == "LONG" and size < 0:
        raise InputError(source, join(path, "size"), "negative size on a LONG position")
    return size


def _usdc(sub: Mapping[str, Any], source: str, path: str) -> float:
    assets = sub.get("assetPositions") or {}
    apath = join(path, "assetPositions")
    assets = as_mapping(assets, source, apath)
    usdc = assets.get("USDC")
    if usdc is None:
        return 0.0
    return _signed(as_mapping(usdc, source, join(apath, "USDC")), source, join(apath, "USDC"))


def _positions(
    sub: Mapping[str, Any],
    markets: Mapping[str, MarketInfo],
    source: str,
    path: str,
    markets_source: str,
    *,
    isolated: bool,
    cash: float,
) -> list[Position]:
    opp = join(path, "openPerpetualPositions")
    perps = as_mapping(sub.get("openPerpetualPositions") or {}, source, opp)
    out: list[Position] = []
    for ticker, raw in perps.items():
        ppath = join(opp, ticker)
        p = as_mapping(raw, source, ppath)
        if p.get("status", "OPEN") != "OPEN":
            continue
        size = _signed(p, source, ppath)
        if size == 0.0:
            continue
        market = string(p, "market", source, ppath) if "market" in p else ticker
        info = markets.get(market)
        if info is None:
            raise InputError(markets_source, f"markets.{market}", "market not found")
        entry = number(p, "entryPrice", source, ppath, positive=True)
        out.append(
            Position(
                symbol=market,
                size=size,
                entry_price=entry,
                margin_mode=MarginMode.ISOLATED if isolated else MarginMode.CROSS,
                isolated_margin=(cash + size * entry) if isolated else None,
                maintenance=info.instrument.maintenance,
                initial_margin_rate=info.instrument.initial_margin_rate,
                mark_price=info.oracle_price,
                oracle_price=info.oracle_price,
                funding_rate=info.next_funding_rate,
                funding_interval_hours=1.0,
            )
        )
    return out


def subaccount_to_snapshot(
    doc: Mapping[str, Any],
    markets: Mapping[str, MarketInfo],
    source: str,
    *,
    markets_source: str = "markets",
    account: str | None = None,
    ts_recv: float = 0.0,
) -> AccountSnapshot:
    base = ""
    if doc.get("channel") in ("v4_subaccounts", "v4_parent_subaccounts"):
        doc = as_mapping(doc["contents"], source, "contents")
        base = "contents"
    spath = join(base, "subaccount")
    sub = as_mapping(field(doc, "subaccount", source, base), source, spath)
    address = sub.get("address") if isinstance(sub.get("address"), str) else "dydx"
    venue_equity = opt_number(sub, "equity", source, spath)
    venue_free = opt_number(sub, "freeCollateral", source, spath)

    positions: list[Position] = []
    cash = 0.0
    if "childSubaccounts" in sub:
        number_key = sub.get("parentSubaccountNumber", 0)
        account = account or f"{address}/{number_key}"
        children = sub["childSubaccounts"]
        cpath = join(spath, "childSubaccounts")
        if not isinstance(children, list):
            raise InputError(source, cpath, "expected a list")
        for i, raw in enumerate(children):
            path = join(cpath, i)
            child = as_mapping(raw, source, path)
            num = int(number(child, "subaccountNumber", source, path, non_negative=True))
            q = _usdc(child, source, path)
            if num >= ISOLATED_CHILD_MIN:
                legs = _positions(
                    child, markets, source, path, markets_source, isolated=True, cash=q
                )
                if len(legs) > 1:
                    raise InputError(
                        source, path, "an isolated child subaccount holds more than one position"
                    )
                if legs:
                    # one isolated position per child; its margin is the child's USDC
                    positions.extend(legs)
                else:
                    # an empty child's collateral is swept back to the parent by the frontend
                    cash += q
            else:
                cash += q
                positions.extend(
                    _positions(
                        child, markets, source, path, markets_source, isolated=False, cash=0.0
                    )
                )
    else:
        num = sub.get("subaccountNumber", 0)
        account = account or f"{address}/{num}"
        cash = _usdc(sub, source, spath)
        positions = _positions(
            sub, markets, source, spath, markets_source, isolated=False, cash=0.0
        )

    cross_entry = sum(
        p.size * p.entry_price for p in positions if p.margin_mode is MarginMode.CROSS
    )
    return AccountSnapshot(
        venue=VENUE,
        account=account,
        cross_collateral=cash + cross_entry,
        positions=tuple(positions),
        ts_recv=ts_recv,
        venue_equity=venue_equity,
        venue_free_collateral=venue_free,
    )
