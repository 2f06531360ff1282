"""dYdX v4 indexer documents → instruments and ``AccountSnapshot``s (pure).

Accepted forms:

* markets: the REST body of ``GET /v4/perpetualMarkets`` (``{"markets": {ticker: …}}``) or the
  ``subscribed`` message of WS ``v4_markets`` (same object under ``contents``). The list degrades
  per entry: a market whose ``oraclePrice`` is null or missing (a new listing) or whose fields
  are unusable is *skipped* (not priced, reason kept in :attr:`Markets.skipped`); the others
  are read. An account holding a position in a skipped market is refused (fail closed);
* a subaccount: the REST body of ``GET /v4/addresses/{a}/subaccountNumber/{n}``
  (``{"subaccount": {…}}``) or the ``subscribed`` message of WS ``v4_subaccounts``;
* a parent subaccount: ``/parentSubaccountNumber/{n}`` or WS ``v4_parent_subaccounts``
  (``childSubaccounts``).

Pools: on chain every subaccount is its own margin pool (protocol ``IsLiquidatable`` is per
subaccount; margin-math.md §2.3). So every subaccount — a parent 0–127 and each child numbered
``parent + 128·k`` alike, however many positions the child holds — is one account whose cross
scope is that subaccount's pool. Account ids are ``<address>/<subaccount number>`` (so
``dydx:ADDR/128`` is child 128 of parent ``dydx:ADDR/0``). A child's USDC never backs another
subaccount's positions; the venue's ``equity``/``freeCollateral`` are read per subaccount.

Arithmetic (margin-math.md §2.2): Q = signed USDC asset position (SHORT is negative);
equity = Q + Σ s·oracle; cross collateral (excl. uPnL) = Q + Σ s·entry; maintenance = MMF;
initial margin = IMF, scaled by open interest when the market has OI caps.

Magnitudes: any size, price or balance with ``|x| > MAX_MAGNITUDE`` (1e15) is one no venue can
produce and is refused as an ``InputError`` (the parser turns it into a counted ParseError).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.errors import InputError
from monitor.jsonfields import as_mapping, join, number, opt_number, string
from monitor.jsonfields import field as get_field
from monitor.model.events import AccountSnapshot
from monitor.model.instruments import Instrument, MaintenanceSchedule, MarginMode
from monitor.model.positions import Position
from monitor.model.venues import DYDX

VENUE = DYDX
#: a child subaccount ``n`` belongs to parent ``n mod CHILD_STRIDE`` (frontend convention)
CHILD_STRIDE = 128
#: the highest subaccount number the protocol allows
MAX_SUBACCOUNT = 128_000
#: no venue produces a size, price or balance larger than this (absolute value)
MAX_MAGNITUDE = 1e15


@dataclass(frozen=True, slots=True)
class MarketInfo:
    instrument: Instrument
    oracle_price: float
    next_funding_rate: float | None
    isolated_market: bool


@dataclass(frozen=True, slots=True)
class Markets:
    """The priced markets of a markets document and the ones skipped (ticker → reason)."""

    infos: dict[str, MarketInfo]
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SubaccountState:
    """One subaccount as a document states it: ``usdc`` signed (SHORT < 0), ``positions``
    market → (signed size, entry price), the venue's own equity and free collateral."""

    number: int
    usdc: float = 0.0
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)
    venue_equity: float | None = None
    venue_free_collateral: float | None = None


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


def parent_account(account: str) -> str:
    """The parent subscription a subaccount pool belongs to: ``ADDR/n`` → ``ADDR/(n mod 128)``
    (``ADDR/128`` and ``ADDR/256`` → ``ADDR/0``; ``ADDR/5`` → itself). Anything that is not
    ``<address>/<number>`` is returned unchanged. Account ids carry no venue prefix."""
    address, _, n = account.rpartition("/")
    if not address or not (n.isascii() and n.isdigit()) or len(n) > 6:
        return account
    return f"{address}/{int(n) % CHILD_STRIDE}"


def bounded(value: float, source: str, path: str) -> float:
    """``value`` if ``|value| ≤ MAX_MAGNITUDE``, else an InputError naming the field."""
    if abs(value) > MAX_MAGNITUDE:
        raise InputError(
            source, path, f"magnitude {value:.4g} is beyond any venue's (limit {MAX_MAGNITUDE:g})"
        )
    return value


def _num(m: Mapping[str, Any], key: str, source: str, path: str, **kw: bool) -> float:
    return bounded(number(m, key, source, path, **kw), source, join(path, key))


def _opt(m: Mapping[str, Any], key: str, source: str, path: str, **kw: bool) -> float | None:
    v = opt_number(m, key, source, path, **kw)
    return None if v is None else bounded(v, source, join(path, key))


def effective_imf(m: Mapping[str, Any], source: str, path: str) -> float:
    """IMF scaled by open interest (margin-math.md §2.1); the base IMF without OI caps."""
    imf = _num(m, "initialMarginFraction", source, path, non_negative=True)
    lower = _opt(m, "openInterestLowerCap", source, path, non_negative=True)
    upper = _opt(m, "openInterestUpperCap", source, path, non_negative=True)
    oi = _opt(m, "openInterest", source, path, non_negative=True)
    oracle = _opt(m, "oraclePrice", source, path, positive=True)
    if lower is None or upper is None or oi is None or oracle is None or upper <= lower:
        return imf
    f = (oi * oracle - lower) / (upper - lower)
    return min(imf + max(f, 0.0) * (1.0 - imf), 1.0)


def read_markets(doc: Mapping[str, Any], source: str) -> Markets:
    """Every usable market of a markets document; one bad or unpriced entry costs only that
    entry (its ticker and the reason go to ``skipped``). Raises InputError only when the
    document has no ``markets`` object at all."""
    base = ""
    if doc.get("channel") == "v4_markets":
        doc = as_mapping(doc["contents"], source, "contents")
        base = "contents"
    mpath = join(base, "markets")
    markets = as_mapping(get_field(doc, "markets", source, base), source, mpath)
    out: dict[str, MarketInfo] = {}
    skipped: dict[str, str] = {}
    for ticker, raw in markets.items():
        path = join(mpath, ticker)
        try:
            m = as_mapping(raw, source, path)
            if m.get("oraclePrice") is None:
                skipped[ticker] = "no oracle price yet"
                continue
            out[ticker] = market_info(ticker, m, source, path)
        except InputError as exc:
            skipped[ticker] = f"{exc.field or path}: {exc.problem}"
    return Markets(out, skipped)


def markets_from_doc(doc: Mapping[str, Any], source: str) -> dict[str, MarketInfo]:
    """The priced markets of ``doc`` (see :func:`read_markets`)."""
    return read_markets(doc, source).infos


def market_info(ticker: str, m: Mapping[str, Any], source: str, path: str) -> MarketInfo:
    mmf = _num(m, "maintenanceMarginFraction", source, path, non_negative=True)
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
        oracle_price=_num(m, "oraclePrice", source, path, positive=True),
        next_funding_rate=_opt(m, "nextFundingRate", source, path),
        isolated_market=m.get("marketType") == "ISOLATED",
    )


def _signed(obj: Mapping[str, Any], source: str, path: str) -> float:
    size = _num(obj, "size", source, path)
    side = obj.get("side")
    if side == "SHORT" and size > 0:
        size = -size
    elif side == "LONG" and size < 0:
        raise InputError(source, join(path, "size"), "negative size on a LONG position")
    return size


def subaccount_number(value: Any, source: str, path: str) -> int:
    """A subaccount number: an integer 0…MAX_SUBACCOUNT (JSON number or ASCII digits)."""
    if type(value) is int and 0 <= value <= MAX_SUBACCOUNT:
        return value
    if type(value) is float and value.is_integer() and 0 <= value <= MAX_SUBACCOUNT:
        return int(value)
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 6:
        n = int(value)
        if n <= MAX_SUBACCOUNT:
            return n
    raise InputError(source, path, f"expected a subaccount number 0…{MAX_SUBACCOUNT}")


def read_subaccount(
    sub: Mapping[str, Any], number_: int, source: str, path: str
) -> SubaccountState:
    """The USDC, open positions and venue figures of one subaccount object."""
    state = SubaccountState(
        number_,
        venue_equity=_opt(sub, "equity", source, path),
        venue_free_collateral=_opt(sub, "freeCollateral", source, path),
    )
    apath = join(path, "assetPositions")
    assets = as_mapping(sub.get("assetPositions") or {}, source, apath)
    usdc = assets.get("USDC")
    if usdc is not None:
        upath = join(apath, "USDC")
        state.usdc = _signed(as_mapping(usdc, source, upath), source, upath)
    opp = join(path, "openPerpetualPositions")
    perps = as_mapping(sub.get("openPerpetualPositions") or {}, source, opp)
    for ticker, raw in perps.items():
        ppath = join(opp, ticker)
        p = as_mapping(raw, source, ppath)
        if p.get("status", "OPEN") != "OPEN":
            continue
        size = _signed(p, source, ppath)
        if size == 0.0:
            continue
        market = string(p, "market", source, ppath) if "market" in p else ticker
        entry = _num(p, "entryPrice", source, ppath, positive=True)
        state.positions[market] = (size, entry)
    return state


def read_subaccounts(
    doc: Mapping[str, Any], source: str, *, default_number: int = 0
) -> tuple[str | None, int, bool, list[SubaccountState]]:
    """(address, subscribed number, is a parent document, every subaccount it states).

    ``default_number`` stands in for a missing ``subaccountNumber``/``parentSubaccountNumber``.
    For a parent document every child must satisfy ``child mod 128 = parent`` and appear once;
    the parent's own subaccount is listed (empty) even when the document omits it."""
    base = ""
    if doc.get("channel") in ("v4_subaccounts", "v4_parent_subaccounts"):
        doc = as_mapping(doc["contents"], source, "contents")
        base = "contents"
    spath = join(base, "subaccount")
    sub = as_mapping(get_field(doc, "subaccount", source, base), source, spath)
    address = sub.get("address") if isinstance(sub.get("address"), str) else None
    if "childSubaccounts" not in sub:
        n = subaccount_number(
            sub.get("subaccountNumber", default_number), source, join(spath, "subaccountNumber")
        )
        return address, n, False, [read_subaccount(sub, n, source, spath)]
    parent = subaccount_number(
        sub.get("parentSubaccountNumber", default_number),
        source,
        join(spath, "parentSubaccountNumber"),
    )
    if parent >= CHILD_STRIDE:
        raise InputError(
            source, join(spath, "parentSubaccountNumber"), f"a parent is below {CHILD_STRIDE}"
        )
    cpath = join(spath, "childSubaccounts")
    children = sub["childSubaccounts"]
    if not isinstance(children, list):
        raise InputError(source, cpath, "expected a list")
    states: dict[int, SubaccountState] = {}
    for i, raw in enumerate(children):
        path = join(cpath, i)
        child = as_mapping(raw, source, path)
        npath = join(path, "subaccountNumber")
        n = subaccount_number(get_field(child, "subaccountNumber", source, path), source, npath)
        if n % CHILD_STRIDE != parent:
            raise InputError(source, npath, f"subaccount {n} is not a child of parent {parent}")
        if n in states:
            raise InputError(source, npath, f"subaccount {n} is listed twice")
        if address is None and isinstance(child.get("address"), str):
            address = child["address"]
        states[n] = read_subaccount(child, n, source, path)
    states.setdefault(parent, SubaccountState(parent))
    return address, parent, True, [states[n] for n in sorted(states)]


def position_of(
    market: str, size: float, entry: float, markets: Mapping[str, MarketInfo]
) -> Position | None:
    """The position, priced at the market's oracle; None when the market is not priced."""
    info = markets.get(market)
    if info is None:
        return None
    return Position(
        symbol=market,
        size=size,
        entry_price=entry,
        margin_mode=MarginMode.CROSS,
        maintenance=info.instrument.maintenance,
        initial_margin_rate=info.instrument.initial_margin_rate,
        mark_price=info.oracle_price,
        oracle_price=info.oracle_price,
        funding_rate=info.next_funding_rate,
        funding_interval_hours=1.0,
    )


def state_to_snapshot(
    state: SubaccountState,
    account: str,
    markets: Mapping[str, MarketInfo],
    markets_source: str,
    *,
    skipped: Mapping[str, str] | None = None,
    ts_recv: float = 0.0,
) -> AccountSnapshot:
    """One subaccount's pool: cross collateral (excl. uPnL) = Q + Σ s·entry. A position in a
    market that is not priced refuses the snapshot (InputError naming the market)."""
    positions: list[Position] = []
    for market, (size, entry) in state.positions.items():
        pos = position_of(market, size, entry, markets)
        if pos is None:
            why = (skipped or {}).get(market)
            problem = f"market not priced: {why}" if why else "market not found"
            raise InputError(markets_source, f"markets.{market}", problem)
        positions.append(pos)
    return AccountSnapshot(
        venue=VENUE,
        account=account,
        cross_collateral=state.usdc + sum(p.size * p.entry_price for p in positions),
        positions=tuple(positions),
        ts_recv=ts_recv,
        venue_equity=state.venue_equity,
        venue_free_collateral=state.venue_free_collateral,
    )


def subaccount_snapshots(
    doc: Mapping[str, Any],
    markets: Mapping[str, MarketInfo],
    source: str,
    *,
    markets_source: str = "markets",
    skipped: Mapping[str, str] | None = None,
    address: str | None = None,
    ts_recv: float = 0.0,
) -> list[AccountSnapshot]:
    """One ``AccountSnapshot`` per subaccount of ``doc`` (one for a subaccount document, the
    parent and every child for a parent document), account ``<address>/<number>``;
    ``address`` overrides the document's."""
    doc_address, _, _, states = read_subaccounts(doc, source)
    addr = address or doc_address or "dydx"
    return [
        state_to_snapshot(
            s, f"{addr}/{s.number}", markets, markets_source, skipped=skipped, ts_recv=ts_recv
        )
        for s in states
    ]
